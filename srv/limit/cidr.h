/*
 * IPv4 and IPv6 address ranges (an address, or ADDR/BITS), for the list of
 * trusted proxies (--trusted-proxy). An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) matches as the IPv4 address it carries.
 */
#ifndef VEIL_SRV_CIDR_H
#define VEIL_SRV_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#define VEIL_CIDR_TEXT_MAX 64 /* longest text veil_cidr_parse accepts */

struct veil_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits; /* prefix length: up to 32 (IPv4) or 128 (IPv6) */
};

/*
 * Parses "ADDR" (a whole address) or "ADDR/BITS". Bits below the prefix
 * must be zero ("10.1.2.3/8" is refused: write 10.0.0.0/8). 0 or VEIL_EINVAL.
 */
int veil_cidr_parse(const char *s, struct veil_cidr *out);
/* Whether the textual address addr lies in one of the n ranges. */
bool veil_cidr_match_text(const struct veil_cidr *set, size_t n, const char *addr);
/* Whether the socket address sa lies in one of the n ranges. */
bool veil_cidr_match_sa(const struct veil_cidr *set, size_t n, const struct sockaddr *sa,
                        socklen_t len);
/*
 * Parses a textual IPv4 or IPv6 address and writes it in canonical form
 * (inet_ntop; an IPv4-mapped IPv6 address as IPv4) to out. 0 or VEIL_EINVAL.
 */
int veil_addr_canon(const char *addr, char *out, size_t cap);

#endif
