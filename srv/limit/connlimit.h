/*
 * Per-address limits on the connections of one listener: how many may be
 * open at once from one address, and how many new ones an address may open
 * a minute. An address is an IPv4 address or the /64 prefix of an IPv6
 * address (one host usually holds a whole /64). Addresses are kept only as
 * a keyed hash with a random per-process key, never in clear. Memory is a
 * fixed table sized for the listener's connection cap. Not thread-safe: the
 * listener's thread owns it.
 */
#ifndef VEIL_SRV_CONNLIMIT_H
#define VEIL_SRV_CONNLIMIT_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

struct veil_connlimit;

/*
 * per_addr: open connections per address (0 = no cap); rate_per_min: new
 * connections per address and minute (0 = no cap); max_conns: the most
 * connections the listener ever holds (sizes the table). Returns 0 or
 * VEIL_ENOMEM / VEIL_EINVAL; *out is NULL on failure.
 */
int veil_connlimit_new(struct veil_connlimit **out, uint32_t per_addr, uint32_t rate_per_min,
                       size_t max_conns);
/* NULL is a no-op. */
void veil_connlimit_free(struct veil_connlimit *cl);

/*
 * Whether a new connection from sa may be accepted at now_ms (monotonic):
 * 0 (one token of the address's rate is taken), VEIL_ELIMIT (the address
 * already has per_addr open) or VEIL_EAGAIN (it opened rate_per_min in the
 * last minute). Nothing is counted as open yet: see veil_connlimit_open.
 */
int veil_connlimit_check(struct veil_connlimit *cl, const struct sockaddr *sa, socklen_t len,
                         uint64_t now_ms);
/*
 * Counts an accepted connection from sa as open and sets *token (non-zero)
 * for veil_connlimit_close; 0 on success, VEIL_ELIMIT if the table is full
 * (the caller should drop the connection), VEIL_EINVAL for an address that
 * is neither IPv4 nor IPv6 (*token is 0 then and the connection is not
 * counted).
 */
int veil_connlimit_open(struct veil_connlimit *cl, const struct sockaddr *sa, socklen_t len,
                        uintptr_t *token);
/* The connection of token (from veil_connlimit_open) has ended; 0 is a no-op. */
void veil_connlimit_close(struct veil_connlimit *cl, uintptr_t token);
/* Open connections counted for sa (tests). */
uint32_t veil_connlimit_count(struct veil_connlimit *cl, const struct sockaddr *sa, socklen_t len);

#endif
