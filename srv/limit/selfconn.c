/*
 * veild's connections to itself (see selfconn.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "selfconn.h"
#include "veil/err.h"

int veil_selfconn_addr(const char *listen, uint16_t port, struct sockaddr_storage *ss,
                       socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET6, listen, &a6->sin6_addr) == 1) {
		if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
			a6->sin6_addr = in6addr_loopback;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof *a6;
		return 0;
	}
	if (inet_pton(AF_INET, listen, &a4->sin_addr) == 1) {
		if (a4->sin_addr.s_addr == htonl(INADDR_ANY))
			a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof *a4;
		return 0;
	}
	return VEIL_EINVAL;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void mark(struct veil_selfconn *sc, uint16_t port)
{
	atomic_fetch_or(&sc->ports[port / 64], (uint64_t)1 << (port % 64));
}

void veil_selfconn_unmark(struct veil_selfconn *sc, uint16_t port)
{
	if (sc != NULL)
		atomic_fetch_and(&sc->ports[port / 64], ~((uint64_t)1 << (port % 64)));
}

int veil_selfconn_connect(struct veil_selfconn *sc, const struct sockaddr_storage *to,
                          socklen_t len, uint16_t *local_port)
{
	struct sockaddr_storage from;
	socklen_t flen = len;
	int one = 1;
	int fd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* The listener's own address, port 0: the kernel picks a free port, bound from now on. */
	memcpy(&from, to, sizeof from);
	if (from.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&from)->sin6_port = 0;
	else
		((struct sockaddr_in *)&from)->sin_port = 0;
	if (bind(fd, (struct sockaddr *)&from, len) != 0 ||
	    getsockname(fd, (struct sockaddr *)&from, &flen) != 0 || flen > sizeof from) {
		close(fd);
		return -1;
	}
	*local_port = port_of(&from);
	if (sc != NULL)
		mark(sc, *local_port);
	if (connect(fd, (const struct sockaddr *)to, len) != 0) {
		veil_selfconn_unmark(sc, *local_port);
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int veil_selfconn_take(struct veil_selfconn *sc, const struct sockaddr_storage *self,
                       const struct sockaddr *peer, socklen_t len)
{
	if (sc == NULL || peer->sa_family != self->ss_family)
		return 0;
	uint16_t port;
	if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;
		if (len < (socklen_t)sizeof *p ||
		    memcmp(&p->sin6_addr, &((const struct sockaddr_in6 *)self)->sin6_addr,
		           sizeof p->sin6_addr) != 0)
			return 0;
		port = ntohs(p->sin6_port);
	} else if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *p = (const struct sockaddr_in *)peer;
		if (len < (socklen_t)sizeof *p ||
		    p->sin_addr.s_addr != ((const struct sockaddr_in *)self)->sin_addr.s_addr)
			return 0;
		port = ntohs(p->sin_port);
	} else {
		return 0;
	}
	uint64_t bit = (uint64_t)1 << (port % 64);
	return (atomic_fetch_and(&sc->ports[port / 64], ~bit) & bit) != 0;
}
