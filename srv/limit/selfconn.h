/*
 * Connections veild opens to its own chat listener (the mediator's CSP
 * sessions, one per connected device), told apart from everyone else's so
 * that the chat service's per-address limits do not count them: they all
 * come from one address, and a busy mediator would otherwise hit
 * --chat-conn-per-addr. Everyone else on that address, a local user
 * included, stays limited.
 *
 * The opener binds its socket to the chat's address with a free port and
 * marks that port before it connects; the chat service takes the mark
 * when it accepts a connection from exactly that address and port. A mark
 * is only ever set while the marking socket holds that address and port,
 * so no other program can connect from it meanwhile; the opener clears it
 * before it closes the socket. The marks are a bitmap of atomic words: the
 * mediator and the chat service run on different threads.
 */
#ifndef VEIL_SRV_SELFCONN_H
#define VEIL_SRV_SELFCONN_H

#include <stdatomic.h>
#include <stdint.h>

#include <sys/socket.h>

struct veil_selfconn {
	_Atomic uint64_t ports[65536 / 64];
};

/*
 * The address veild's own clients reach a listener on when it listens on
 * listen (a wildcard is reached on loopback), with port. Returns 0 or
 * VEIL_EINVAL (listen is not an IP address).
 */
int veil_selfconn_addr(const char *listen, uint16_t port, struct sockaddr_storage *ss,
                       socklen_t *len);

/*
 * Connects to the listener at to (from veil_selfconn_addr), from its own
 * address and a marked port (sc NULL: not marked). Blocking: meant for
 * loopback, where connect returns at once. Returns the socket (the caller
 * clears the mark with veil_selfconn_unmark before closing it) with
 * *local_port, or -1.
 */
int veil_selfconn_connect(struct veil_selfconn *sc, const struct sockaddr_storage *to,
                          socklen_t len, uint16_t *local_port);

/* Clears the mark of port (a no-op for sc NULL or an unmarked port). */
void veil_selfconn_unmark(struct veil_selfconn *sc, uint16_t port);

/*
 * Whether peer, a connection just accepted by the listener at self (from
 * veil_selfconn_addr), was opened by veil_selfconn_connect: 1 (and the mark
 * is cleared) or 0. sc NULL: 0.
 */
int veil_selfconn_take(struct veil_selfconn *sc, const struct sockaddr_storage *self,
                       const struct sockaddr *peer, socklen_t len);

#endif
