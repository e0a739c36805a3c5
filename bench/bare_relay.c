/*
 * The bare relay: the ceiling a chat relay can reach on this machine. Plain
 * TCP, no crypto, no storage, no acks: a client announces its number
 * (u32-le, echoed back once registered), then sends frames u16-le length || u32-le destination ||
 * payload, which the relay copies to the destination's socket unchanged.
 * One epoll loop. By default each frame is written to its destination as
 * it arrives, as a minimal C relay is written (the relay measured in
 * ../shared/reference/machine-limits.md). With --coalesce, output is
 * collected while one batch of events is handled and written with one
 * write per connection after it, the coalescing veild does: then it is a
 * pure copying pump, the ceiling of the kernel and the generator.
 *
 * Usage: bare_relay PORT [--coalesce]   (runs until killed)
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 65536
#define BUF 65536

struct rconn {
	int fd;
	int32_t num; /* announced number, -1 until known */
	size_t in_len;
	uint8_t in[BUF];
	size_t out_len;
	uint8_t *out; /* output not yet written */
	size_t out_cap;
	int dirty;   /* on the list written after this batch */
	int pollout; /* the kernel did not take everything: waiting for EPOLLOUT */
};

static struct rconn *by_fd[MAX_CONNS];
static struct rconn *by_num[MAX_CONNS];
static int dirty[MAX_CONNS], ndirty;
static int coalesce;

static void queue_out(struct rconn *d, const uint8_t *p, size_t n)
{
	if (!coalesce && d->out_len == 0 && !d->pollout) {
		ssize_t k = write(d->fd, p, n);
		if (k == (ssize_t)n)
			return;
		if (k < 0)
			k = 0;
		p += k;
		n -= (size_t)k;
	}
	if (d->out_len + n > d->out_cap) {
		d->out_cap = (d->out_len + n) * 2;
		d->out = realloc(d->out, d->out_cap);
		if (d->out == NULL)
			abort();
	}
	memcpy(d->out + d->out_len, p, n);
	d->out_len += n;
	if (!d->dirty && !d->pollout) {
		d->dirty = 1;
		dirty[ndirty++] = d->fd;
	}
}

static void flush_out(int ep, struct rconn *c)
{
	ssize_t k = write(c->fd, c->out, c->out_len);
	if (k > 0) {
		memmove(c->out, c->out + k, c->out_len - (size_t)k);
		c->out_len -= (size_t)k;
	}
	int want = c->out_len > 0;
	if (want != c->pollout) {
		c->pollout = want;
		struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
		                         .data.fd = c->fd};
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

static void flush_dirty(int ep)
{
	for (int i = 0; i < ndirty; i++) {
		struct rconn *c = by_fd[dirty[i]];
		if (c == NULL || !c->dirty)
			continue;
		c->dirty = 0;
		if (c->out_len > 0)
			flush_out(ep, c);
	}
	ndirty = 0;
}

static void drop(int ep, struct rconn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	by_fd[c->fd] = NULL;
	if (c->num >= 0 && by_num[c->num] == c)
		by_num[c->num] = NULL;
	free(c->out);
	free(c);
}

static void on_input(int ep, struct rconn *c)
{
	ssize_t k = read(c->fd, c->in + c->in_len, BUF - c->in_len);
	if (k <= 0) {
		if (k < 0 && errno == EAGAIN)
			return;
		drop(ep, c);
		return;
	}
	c->in_len += (size_t)k;
	size_t off = 0;
	if (c->num < 0 && c->in_len >= 4) {
		uint32_t n;
		memcpy(&n, c->in, 4);
		if (n >= MAX_CONNS) {
			drop(ep, c);
			return;
		}
		c->num = (int32_t)n;
		by_num[n] = c;
		off = 4;
		/* Confirm, so that the client sends only once its peer is reachable. */
		queue_out(c, c->in, 4);
	}
	while (c->num >= 0 && c->in_len - off >= 2) {
		size_t len = (size_t)c->in[off] | ((size_t)c->in[off + 1] << 8);
		if (len < 4 || len > BUF - 2) {
			drop(ep, c);
			return;
		}
		if (c->in_len - off < 2 + len)
			break;
		uint32_t dest;
		memcpy(&dest, c->in + off + 2, 4);
		if (dest < MAX_CONNS && by_num[dest] != NULL)
			queue_out(by_num[dest], c->in + off, 2 + len);
		off += 2 + len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--coalesce") != 0)) {
		fprintf(stderr, "usage: bare_relay PORT [--coalesce]\n");
		return 2;
	}
	coalesce = argc == 3;
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)strtoul(argv[1], NULL, 10)),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 4096) != 0) {
		perror("bare_relay: listen");
		return 1;
	}
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls) {
				int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
				if (c < 0 || c >= MAX_CONNS) {
					if (c >= 0)
						close(c);
					continue;
				}
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
				struct rconn *rc = calloc(1, sizeof *rc);
				rc->fd = c;
				rc->num = -1;
				by_fd[c] = rc;
				struct epoll_event e2 = {.events = EPOLLIN, .data.fd = c};
				epoll_ctl(ep, EPOLL_CTL_ADD, c, &e2);
				continue;
			}
			struct rconn *c = by_fd[fd];
			if (c == NULL)
				continue;
			if (evs[i].events & EPOLLOUT)
				flush_out(ep, c);
			if (by_fd[fd] != NULL && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_input(ep, c);
		}
		flush_dirty(ep);
	}
}
