/*
 * The HTTP listener on its own (srv/http): which address it binds, and the
 * per-address connection limits in front of every route; the marks that
 * exempt veild's own connections to the chat port from them.
 * The HTTP listener on its own (srv/http): which address it binds, the
 * per-address connection limits in front of every route, and deferred
 * answers (veil_http_defer / veil_http_resume).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "veil/client.h"
#include "veil/crypto.h"
#include "veil/util.h"
#include "../../srv/limit/connlimit.h"
#include "../../srv/http/forwarded.h"
#include "../../srv/http/http.h"
#include "../../srv/http/http_int.h"
#include "../../srv/limit/cidr.h"
#include "../../srv/server.h"
#include "t.h"

static void cfg_init(struct veil_server *s, const char *listen)
{
	memset(s, 0, sizeof *s);
	snprintf(s->cfg.listen, sizeof s->cfg.listen, "%s", listen);
	s->cfg.http_port = 0;
}

/* 0 if a TCP connection to addr:port (IPv4) is accepted, else errno. */
static int tcp_connect4(const char *addr, uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (fd < 0 || inet_pton(AF_INET, addr, &a.sin_addr) != 1)
		return EINVAL;
	int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
	close(fd);
	return rc;
}

static void test_listen_exact(void)
{
	static struct veil_server s;
	struct veil_http *h = NULL;
	cfg_init(&s, "127.0.0.1");
	CHECK_RC(veil_http_new(&h, &s), 0);
	uint16_t port = veil_http_port(h);
	int ok = tcp_connect4("127.0.0.1", port), other = tcp_connect4("127.0.0.2", port);
	veil_http_stop(h);
	CHECK_RC(ok, 0);
	CHECK_RC(other, ECONNREFUSED);
}

static void test_listen_refused(void)
{
	static struct veil_server s;
	struct veil_http *h = NULL;
	/* An address this machine does not have (TEST-NET-1): no silent wildcard. */
	cfg_init(&s, "192.0.2.1");
	CHECK_RC(veil_http_new(&h, &s), VEIL_EIO);
	CHECK(h == NULL);
	/* Not an address (lws would take it as an interface name). */
	cfg_init(&s, "lo");
	CHECK_RC(veil_http_new(&h, &s), VEIL_EINVAL);
	cfg_init(&s, "");
	CHECK_RC(veil_http_new(&h, &s), VEIL_EINVAL);
}

/* A connected TCP socket to 127.0.0.1:port with a 3 s receive timeout, or -1. */
static int open_conn(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {3, 0};
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * Sends one request on fd and reads the answer: 1 if an HTTP response came
 * back, 0 if the server closed the connection instead.
 */
static int request(int fd, int keepalive)
{
	char req[160], buf[2048];
	snprintf(req, sizeof req, "GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n\r\n",
	         keepalive ? "keep-alive" : "close");
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		return 0;
	/* Read the whole answer (headers and Content-Length bytes) so that none is left over. */
	size_t got = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
		if (n <= 0)
			return 0;
		got += (size_t)n;
		buf[got] = '\0';
		const char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "content-length: ");
		if (end != NULL && cl != NULL &&
		    got >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
			break;
		if (got == sizeof buf - 1)
			return 0;
	}
	return strncmp(buf, "HTTP/1.1 404", 12) == 0;
}

/* One request on a fresh connection that is closed afterwards. */
static int request_once(uint16_t port)
{
	int fd = open_conn(port);
	if (fd < 0)
		return 0;
	int ok = request(fd, 0);
	close(fd);
	return ok;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_conn_per_addr(void)
{
	static struct veil_server s;
	struct veil_http *h = NULL;
	int fds[5];
	cfg_init(&s, "127.0.0.1");
	s.cfg.http_conn_per_addr = 4;
	CHECK_RC(veil_http_new(&h, &s), 0);
	CHECK_RC(veil_http_run(h), 0);
	uint16_t port = veil_http_port(h);
	int held = 0, fifth = -1, after_close = 0, still = 0;
	for (int i = 0; i < 4; i++) {
		fds[i] = open_conn(port);
		held += fds[i] >= 0 && request(fds[i], 1);
	}
	/* The fifth is closed before it is read. */
	fds[4] = open_conn(port);
	if (fds[4] >= 0) {
		fifth = request(fds[4], 1);
		close(fds[4]);
	}
	/* The four held ones still work; once one closes, a new one is let in. */
	for (int i = 0; i < 4; i++)
		still += fds[i] >= 0 && request(fds[i], 1);
	close(fds[0]);
	for (int k = 0; k < 50 && !after_close; k++) {
		sleep_ms(20);
		after_close = request_once(port);
	}
	for (int i = 1; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	veil_http_stop(h);
	CHECK(held == 4);
	CHECK(fifth == 0);
	CHECK(still == 4);
	CHECK(after_close == 1);
}

static void test_conn_rate(void)
{
	static struct veil_server s;
	struct veil_http *h = NULL;
	cfg_init(&s, "127.0.0.1");
	s.cfg.http_conn_rate_per_min = 5;
	CHECK_RC(veil_http_new(&h, &s), 0);
	CHECK_RC(veil_http_run(h), 0);
	uint16_t port = veil_http_port(h);
	int ok = 0;
	for (int i = 0; i < 5; i++)
		ok += request_once(port);
	int sixth = request_once(port);
	veil_http_stop(h);
	CHECK(ok == 5);
	CHECK(sixth == 0);
}

/* The counting table on its own: many addresses in a small table, opened and closed. */
static void test_connlimit_table(void)
{
	struct veil_connlimit *cl = NULL;
	enum { N = 12 };
	struct sockaddr_in a[N];
	uintptr_t tok[N][3];
	CHECK_RC(veil_connlimit_new(&cl, 3, 0, 8), 0); /* 16 slots */
	for (int i = 0; i < N; i++) {
		a[i] = (struct sockaddr_in){.sin_family = AF_INET};
		a[i].sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)i);
	}
	const struct sockaddr *sa;
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < N; i++) {
			sa = (const struct sockaddr *)&a[i];
			CHECK_RC(veil_connlimit_check(cl, sa, sizeof a[i], 0), 0);
			CHECK_RC(veil_connlimit_open(cl, sa, sizeof a[i], &tok[i][r]), 0);
			CHECK(tok[i][r] != 0);
		}
	for (int i = 0; i < N; i++) {
		sa = (const struct sockaddr *)&a[i];
		CHECK_RC(veil_connlimit_check(cl, sa, sizeof a[i], 0), VEIL_ELIMIT);
	}
	/* Close in an order that empties slots in the middle of probe runs. */
	for (int r = 0; r < 3; r++)
		for (int i = r % 2; i < N; i += 2) {
			veil_connlimit_close(cl, tok[i][r]);
			sa = (const struct sockaddr *)&a[i];
			/* Even addresses are closed at rounds 0 and 2, odd ones at round 1. */
			CHECK(veil_connlimit_count(cl, sa, sizeof a[i]) == (r == 2 ? 1u : 2u));
		}
	for (int i = 0; i < N; i++) {
		sa = (const struct sockaddr *)&a[i];
		CHECK(veil_connlimit_count(cl, sa, sizeof a[i]) == (uint32_t)(i % 2 == 0 ? 1 : 2));
	}
	/* IPv6 addresses of one /64 are one client. */
	struct sockaddr_in6 x = {.sin6_family = AF_INET6}, y;
	inet_pton(AF_INET6, "2001:db8::1", &x.sin6_addr);
	y = x;
	inet_pton(AF_INET6, "2001:db8::ffff:2", &y.sin6_addr);
	uintptr_t tx, ty;
	CHECK_RC(veil_connlimit_open(cl, (struct sockaddr *)&x, sizeof x, &tx), 0);
	CHECK_RC(veil_connlimit_open(cl, (struct sockaddr *)&y, sizeof y, &ty), 0);
	CHECK(tx == ty && veil_connlimit_count(cl, (struct sockaddr *)&x, sizeof x) == 2);
	/*
	 * An IPv4 client of a dual-stack listener (::ffff:a.b.c.d) is its IPv4
	 * address, not the /64 ::ffff:0:0 that every IPv4 client shares.
	 */
	struct sockaddr_in6 m1 = {.sin6_family = AF_INET6}, m2 = m1;
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &m1.sin6_addr);
	inet_pton(AF_INET6, "::ffff:10.9.9.9", &m2.sin6_addr);
	CHECK(veil_connlimit_count(cl, (struct sockaddr *)&m1, sizeof m1) ==
	      veil_connlimit_count(cl, (const struct sockaddr *)&a[0], sizeof a[0]));
	CHECK(veil_connlimit_count(cl, (struct sockaddr *)&m2, sizeof m2) == 0);
	veil_connlimit_free(cl);
}

static void test_cidr(void)
{
	struct veil_cidr c[4];
	CHECK_RC(veil_cidr_parse("10.0.0.0/8", &c[0]), 0);
	CHECK_RC(veil_cidr_parse("192.0.2.7", &c[1]), 0);
	CHECK_RC(veil_cidr_parse("2001:db8:1::/48", &c[2]), 0);
	CHECK_RC(veil_cidr_parse("fd00::1", &c[3]), 0);
	CHECK(veil_cidr_match_text(c, 4, "10.200.3.4"));
	CHECK(veil_cidr_match_text(c, 4, "::ffff:10.1.1.1"));
	CHECK(!veil_cidr_match_text(c, 4, "11.0.0.1"));
	CHECK(veil_cidr_match_text(c, 4, "192.0.2.7"));
	CHECK(!veil_cidr_match_text(c, 4, "192.0.2.8"));
	CHECK(veil_cidr_match_text(c, 4, "2001:db8:1:ffff::9"));
	CHECK(!veil_cidr_match_text(c, 4, "2001:db8:2::9"));
	CHECK(veil_cidr_match_text(c, 4, "fd00:0::1"));
	CHECK(!veil_cidr_match_text(c, 4, "fd00::2"));
	CHECK(!veil_cidr_match_text(c, 4, "not an address"));
	CHECK(!veil_cidr_match_text(c, 0, "10.0.0.1"));
	struct veil_cidr odd;
	CHECK_RC(veil_cidr_parse("172.16.0.0/12", &odd), 0);
	CHECK(veil_cidr_match_text(&odd, 1, "172.31.255.255"));
	CHECK(!veil_cidr_match_text(&odd, 1, "172.32.0.0"));
	static const char *const bad[] = {
	    "",        "10.0.0.0/33",  "10.1.2.3/8",  "10.0.0.0/",  "10.0.0.0/x",
	    "::1/129", "host.example", "10.0.0.0/-1", "1.2.3.4/08x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (veil_cidr_parse(bad[i], &odd) != VEIL_EINVAL) {
			fprintf(stderr, "accepted %s\n", bad[i]);
			CHECK(0);
		}
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, "10.9.8.7", &sa.sin_addr);
	CHECK(veil_cidr_match_sa(c, 4, (struct sockaddr *)&sa, sizeof sa));
	inet_pton(AF_INET, "9.9.8.7", &sa.sin_addr);
	CHECK(!veil_cidr_match_sa(c, 4, (struct sockaddr *)&sa, sizeof sa));
}

/* Which address the headers may name, and from whom. */
static void test_forwarded_parse(void)
{
	struct veil_cidr t[2];
	char out[64];
	CHECK_RC(veil_cidr_parse("127.0.0.1", &t[0]), 0);
	CHECK_RC(veil_cidr_parse("10.0.0.0/8", &t[1]), 0);
	/* Not from a trusted peer: the headers are ignored. */
	CHECK(veil_http_forwarded_client(t, 2, "198.51.100.9", "203.0.113.5", NULL, out,
	                                 sizeof out) == 0);
	CHECK(strcmp(out, "198.51.100.9") == 0);
	CHECK(veil_http_forwarded_client(NULL, 0, "127.0.0.1", "203.0.113.5", NULL, out,
	                                 sizeof out) == 0);
	CHECK(strcmp(out, "127.0.0.1") == 0);
	/* From a trusted peer: the rightmost untrusted hop. */
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", "203.0.113.5", NULL, out, sizeof out) ==
	      1);
	CHECK(strcmp(out, "203.0.113.5") == 0);
	/* A client-supplied entry on the left does not win over what the proxies added. */
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", "1.1.1.1, 203.0.113.5 ,10.2.3.4", NULL,
	                                 out, sizeof out) == 1);
	CHECK(strcmp(out, "203.0.113.5") == 0);
	/* Ports, brackets, IPv4-mapped and the canonical IPv6 text. */
	CHECK(veil_http_forwarded_client(t, 2, "::ffff:127.0.0.1", "203.0.113.5:4711", NULL, out,
	                                 sizeof out) == 1);
	CHECK(strcmp(out, "203.0.113.5") == 0);
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", "[2001:DB8:0::1]:80", NULL, out,
	                                 sizeof out) == 1);
	CHECK(strcmp(out, "2001:db8::1") == 0);
	/* Garbage ends the walk at the last trusted hop, never at the garbage. */
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", "evil, 10.0.0.3", NULL, out,
	                                 sizeof out) == 1);
	CHECK(strcmp(out, "10.0.0.3") == 0);
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", "unknown", NULL, out, sizeof out) == 0);
	CHECK(strcmp(out, "127.0.0.1") == 0);
	/* Forwarded (RFC 7239), only without X-Forwarded-For. */
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", NULL,
	                                 "for=192.0.2.60;proto=http;by=203.0.113.43, "
	                                 "For=\"[2001:db8:cafe::17]:4711\"",
	                                 out, sizeof out) == 1);
	CHECK(strcmp(out, "2001:db8:cafe::17") == 0);
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", "", "proto=https;for=192.0.2.60", out,
	                                 sizeof out) == 1);
	CHECK(strcmp(out, "192.0.2.60") == 0);
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", "203.0.113.5", "for=192.0.2.60", out,
	                                 sizeof out) == 1);
	CHECK(strcmp(out, "203.0.113.5") == 0);
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", NULL, "for=_hidden", out, sizeof out) ==
	      0);
	CHECK(strcmp(out, "127.0.0.1") == 0);
	/* An over-long header is ignored as a whole. */
	char big[VEIL_HTTP_FORWARDED_MAX + 16];
	memset(big, ' ', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(big + sizeof big - 12, "203.0.113.5", 11);
	CHECK(veil_http_forwarded_client(t, 2, "127.0.0.1", big, NULL, out, sizeof out) == 0);
	CHECK(strcmp(out, "127.0.0.1") == 0);
}

static void echo_client(void *arg, const struct veil_http_req *req, struct veil_http_resp *resp)
{
	(void)arg;
	resp->status = 200;
	resp->content_type = "text/plain";
	if (veil_buf_append(&resp->body, req->client, strlen(req->client)) != 0)
		resp->status = 500;
}

/*
 * One request to /echo with extra header lines; the status in *status and
 * the body (the client address the route saw) in body.
 */
static int echo(uint16_t port, const char *headers, int *status, char *body, size_t cap)
{
	char req[512], buf[4096];
	int fd = open_conn(port);
	*status = 0;
	body[0] = '\0';
	if (fd < 0)
		return -1;
	snprintf(req, sizeof req, "GET /echo HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
	         headers);
	size_t got = 0;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req))
		for (;;) {
			ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
			if (n <= 0)
				break;
			got += (size_t)n;
			if (got == sizeof buf - 1)
				break;
		}
	close(fd);
	buf[got] = '\0';
	const char *end = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.1 ", 9) != 0 || end == NULL)
		return -1;
	*status = (int)strtol(buf + 9, NULL, 10);
	snprintf(body, cap, "%s", end + 4);
	return 0;
}

/*
 * --trusted-proxy: behind a trusted proxy the per-address request limit
 * counts each client the proxy names, and the proxy's connections are not
 * capped; a peer that is not trusted cannot pick its address.
 */
static void test_trusted_proxy(void)
{
	static struct veil_server s;
	struct veil_http *h = NULL;
	char body[128];
	int st;
	for (int trusted = 1; trusted >= 0; trusted--) {
		cfg_init(&s, "127.0.0.1");
		s.cfg.http_conn_per_addr = 2;
		if (trusted) {
			CHECK_RC(veil_cidr_parse("127.0.0.0/8", &s.cfg.trusted_proxies[0]), 0);
			s.cfg.n_trusted_proxies = 1;
		}
		CHECK_RC(veil_http_new(&h, &s), 0);
		CHECK_RC(veil_http_route(h, "GET", "/echo", echo_client, NULL), 0);
		CHECK_RC(veil_http_limit(h, "/echo", 2), 0);
		CHECK_RC(veil_http_run(h), 0);
		uint16_t port = veil_http_port(h);
		int ok = 1;
		/* Two requests for 203.0.113.5 use up its bucket... */
		for (int i = 0; i < 2; i++) {
			ok &= echo(port, "X-Forwarded-For: 203.0.113.5\r\n", &st, body,
			           sizeof body) == 0;
			ok &= st == 200 && strcmp(body, trusted ? "203.0.113.5" : "127.0.0.1") == 0;
		}
		int third = echo(port, "X-Forwarded-For: 203.0.113.5\r\n", &st, body, sizeof body);
		ok &= third == 0 && st == 429;
		/* ...another client behind the same proxy still gets through (when trusted). */
		echo(port, "Forwarded: for=\"[2001:db8::5]:1234\"\r\n", &st, body, sizeof body);
		int other_st = st;
		char other[128];
		snprintf(other, sizeof other, "%s", body);
		/* Held connections beyond http-conn-per-addr: a trusted proxy is not capped. */
		int fds[3], held = 0;
		for (int i = 0; i < 3; i++) {
			fds[i] = open_conn(port);
			held += fds[i] >= 0 && request(fds[i], 1);
		}
		for (int i = 0; i < 3; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		veil_http_stop(h);
		h = NULL;
		CHECK(ok);
		if (trusted) {
			CHECK(other_st == 200 && strcmp(other, "2001:db8::5") == 0);
			CHECK(held == 3);
		} else {
			CHECK(other_st == 429);
			CHECK(held == 2);
		}
	}
}

/* Deferred answers: the handler keeps the ticket, the test answers from its own thread. */
static _Atomic uint64_t deferred_ticket;

static void defer_handler(void *arg, const struct veil_http_req *req, struct veil_http_resp *resp)
{
	(void)arg;
	(void)req;
	deferred_ticket = veil_http_defer(resp);
}

/* Waits up to 3 s for the handler to have deferred a request other than prev. */
static uint64_t wait_ticket(uint64_t prev)
{
	for (int i = 0; i < 300; i++) {
		uint64_t t = deferred_ticket;
		if (t != 0 && t != prev)
			return t;
		sleep_ms(10);
	}
	return 0;
}

/* Reads one whole answer from fd into buf (cap): its length, or 0. */
static size_t read_answer(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
		if (n <= 0)
			return 0;
		got += (size_t)n;
		buf[got] = '\0';
		const char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "content-length: ");
		if (end != NULL && cl != NULL &&
		    got >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
			return got;
		if (got == cap - 1)
			return 0;
	}
}

static void test_deferred_answer(void)
{
	static struct veil_server s;
	struct veil_http *h = NULL;
	char buf[2048];
	static const char req[] = "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n";
	cfg_init(&s, "127.0.0.1");
	deferred_ticket = 0;
	CHECK_RC(veil_http_new(&h, &s), 0);
	CHECK_RC(veil_http_route(h, "GET", "/defer", defer_handler, NULL), 0);
	CHECK_RC(veil_http_run(h), 0);
	uint16_t port = veil_http_port(h);
	int fd = open_conn(port);
	int ok = fd >= 0 && send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req);
	uint64_t t1 = ok ? wait_ticket(0) : 0;
	/* Deferred: nothing to read until it is resumed. */
	ssize_t early = t1 != 0 ? recv(fd, buf, sizeof buf, MSG_DONTWAIT) : 0;
	int early_errno = errno;
	int rc1 = t1 != 0 ? veil_http_resume(h, t1, 202, "text/plain", "later", 5) : -1;
	size_t n1 = rc1 == 0 ? read_answer(fd, buf, sizeof buf) : 0;
	int answered =
	    n1 > 0 && strncmp(buf, "HTTP/1.1 202", 12) == 0 && strcmp(buf + n1 - 5, "later") == 0;
	/* The same connection serves the next request (keep-alive), with a new ticket. */
	ok = answered && send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req);
	uint64_t t2 = ok ? wait_ticket(t1) : 0;
	/* The client goes away before the answer: resuming it later is harmless. */
	if (fd >= 0)
		close(fd);
	sleep_ms(100);
	int rc2 = t2 != 0 ? veil_http_resume(h, t2, 200, "text/plain", "gone", 4) : -1;
	/* A stale ticket, resumed twice, changes nothing either. */
	int rc3 = t1 != 0 ? veil_http_resume(h, t1, 200, "text/plain", "twice", 5) : -1;
	/* And the listener still answers. */
	fd = open_conn(port);
	ok = fd >= 0 && send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req);
	uint64_t t3 = ok ? wait_ticket(t2) : 0;
	int rc4 = t3 != 0 ? veil_http_resume(h, t3, 200, "text/plain", "ok", 2) : -1;
	size_t n3 = rc4 == 0 ? read_answer(fd, buf, sizeof buf) : 0;
	int alive = n3 > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0;
	if (fd >= 0)
		close(fd);
	veil_http_stop(h);
	CHECK(t1 != 0);
	CHECK(early < 0 && (early_errno == EAGAIN || early_errno == EWOULDBLOCK));
	CHECK_RC(rc1, 0);
	CHECK(answered);
	CHECK(t2 != 0 && t2 != t1);
	CHECK_RC(rc2, 0);
	CHECK_RC(rc3, 0);
	CHECK(alive);
}

/*
 * A WebSocket connection with many messages queued gets them as bursts of
 * frames written together (srv/http/ws.c): every message arrives whole and
 * in order, across each length form of a frame header (7-bit, 16-bit and
 * 64-bit lengths) and across bursts.
 */
#define BURST_N 300
static size_t burst_len(int i)
{
	static const size_t odd[] = {0, 1, 125, 126, 127, 65535, 65536, 300, 4000};
	return i < (int)VEIL_ARRAY_LEN(odd) ? odd[i] : (size_t)(i * 37 % 1000);
}

static int burst_open(void *arg, struct veil_http_ws *c, const char *path, const char *client,
                      void **ctx)
{
	(void)path;
	(void)client;
	static uint8_t m[65536];
	for (int i = 0; i < BURST_N; i++) {
		for (size_t k = 0; k < burst_len(i); k++)
			m[k] = (uint8_t)(i + k);
		if (veil_http_ws_send(c, m, burst_len(i)) != 0)
			return -1;
	}
	*ctx = arg;
	return 0;
}

static void burst_message(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
}

static void burst_closed(void *ctx)
{
	(void)ctx;
}

static void test_ws_burst(void)
{
	static struct veil_server s;
	static const struct veil_http_ws_ops ops = {
	    .open = burst_open, .message = burst_message, .closed = burst_closed};
	static int token;
	struct veil_http *h = NULL;
	struct veil_ws *w = calloc(1, sizeof *w);
	char url[64];
	int ok = 1, got = 0;
	CHECK(w != NULL);
	cfg_init(&s, "127.0.0.1");
	CHECK_RC(veil_http_new(&h, &s), 0);
	CHECK_RC(veil_http_ws_route(h, "/burst", 1024, &ops, &token), 0);
	CHECK_RC(veil_http_run(h), 0);
	snprintf(url, sizeof url, "ws://127.0.0.1:%u/burst", veil_http_port(h));
	if (veil_ws_open(w, url, NULL, 10000) == 0) {
		for (int i = 0; i < BURST_N && ok; i++) {
			const uint8_t *msg;
			size_t len;
			ok = veil_ws_recv(w, &msg, &len, 10000) == 0 && len == burst_len(i);
			for (size_t k = 0; ok && k < len; k++)
				ok = msg[k] == (uint8_t)(i + k);
			got += ok;
		}
		veil_ws_close(w, 1000);
	}
	veil_http_stop(h);
	free(w);
	CHECK(got == BURST_N);
}

/*
 * Idle WebSockets give memory back (srv/http/ws.c, lwsmem.c): lws's 64 KiB
 * receive buffer is untouched until a control frame arrives, and a sweep
 * gives back the page a ping touched. A ping whose payload is split across
 * sweeps (lws holds the first part in that buffer) is answered with its
 * whole payload, and a message of nearly the 64 KiB limit sent in two
 * fragments with sweeps in between arrives intact.
 */
static int echo_open(void *arg, struct veil_http_ws *c, const char *path, const char *client,
                     void **ctx)
{
	(void)arg;
	(void)path;
	(void)client;
	*ctx = c;
	return 0;
}

static void echo_message(void *ctx, const uint8_t *p, size_t n)
{
	if (veil_http_ws_send(ctx, p, n) != 0)
		veil_http_ws_close(ctx, 1011);
}

/* Writes a client frame with a zero mask (the payload needs no XOR); fin 0 leaves it open. */
static int raw_frame(int fd, int fin, uint8_t op, const uint8_t *p, size_t n, size_t send_n)
{
	uint8_t h[8];
	size_t hl = 0;
	h[hl++] = (uint8_t)((fin ? 0x80 : 0) | op);
	if (n < 126) {
		h[hl++] = (uint8_t)(0x80 | n);
	} else {
		h[hl++] = 0x80 | 126;
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	}
	memset(h + hl, 0, 4);
	hl += 4;
	return write(fd, h, hl) == (ssize_t)hl &&
	               (send_n == 0 || write(fd, p, send_n) == (ssize_t)send_n)
	           ? 0
	           : -1;
}

/* Reads exactly n bytes within 10 s. */
static int read_n(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 10000) <= 0)
			return -1;
		ssize_t r = read(fd, p + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Waits (up to 10 s) until the receive buffers have at most max resident pages. */
static size_t resident_at_most(size_t max)
{
	size_t r = http_lwsmem_resident();
	for (int i = 0; i < 1000 && r > max; i++) {
		usleep(10000);
		r = http_lwsmem_resident();
	}
	return r;
}

/* Waits (up to 10 s) until they have at least min resident pages. */
static size_t resident_at_least(size_t min)
{
	size_t r = http_lwsmem_resident();
	for (int i = 0; i < 1000 && r < min; i++) {
		usleep(10000);
		r = http_lwsmem_resident();
	}
	return r;
}

/* Waits (up to 10 s) for two more sweeps of h; 1 if they came. */
static int two_sweeps(struct veil_http *h)
{
	unsigned n0 = http_sweeps(h);
	for (int i = 0; i < 1000; i++) {
		if (http_sweeps(h) - n0 >= 2)
			return 1;
		usleep(10000);
	}
	return 0;
}

static void test_ws_idle_sweep(void)
{
	static struct veil_server s;
	static const struct veil_http_ws_ops ops = {
	    .open = echo_open, .message = echo_message, .closed = burst_closed};
	enum { BIG = 65000, FIRST = 40000 };
	struct veil_http *h = NULL;
	struct veil_ws *w = calloc(1, sizeof *w);
	uint8_t *big = malloc(BIG), pong[6];
	const uint8_t *msg = NULL;
	size_t len = 0, maps = 0, res_open = 99, res_ping = 0, res_swept = 99;
	char url[64];
	int echo = -1, ping_ok = 0, big_ok = 0, swept1 = 0, swept2 = 0;
	CHECK(w != NULL && big != NULL);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	size_t maps0 = http_lwsmem_count();
	cfg_init(&s, "127.0.0.1");
	CHECK_RC(veil_http_new(&h, &s), 0);
	veil_http_ws_sweep_ms(h, 20);
	CHECK_RC(veil_http_ws_route(h, "/echo", 65536, &ops, NULL), 0);
	CHECK_RC(veil_http_run(h), 0);
	snprintf(url, sizeof url, "ws://127.0.0.1:%u/echo", veil_http_port(h));
	if (veil_ws_open(w, url, NULL, 10000) == 0) {
		int fd = veil_ws_fd(w);
		echo = veil_ws_send(w, (const uint8_t *)"hello", 5) == 0 &&
		               veil_ws_recv(w, &msg, &len, 10000) == 0 && len == 5 &&
		               memcmp(msg, "hello", 5) == 0
		           ? 0
		           : -1;
		maps = http_lwsmem_count() - maps0;
		res_open = http_lwsmem_resident();
		/* A ping of "abcd": "ab" now (lws keeps it in the buffer), "cd" after two sweeps. */
		if (raw_frame(fd, 1, 0x9, (const uint8_t *)"ab", 4, 2) == 0) {
			res_ping = resident_at_least(1);
			swept1 = two_sweeps(h);
			ping_ok = write(fd, "cd", 2) == 2 && read_n(fd, pong, sizeof pong) == 0 &&
			          pong[0] == 0x8a && pong[1] == 4 &&
			          memcmp(pong + 2, "abcd", 4) == 0;
		}
		res_swept = resident_at_most(0);
		/* Nearly the limit, in two fragments, the first one cut short for a while. */
		if (raw_frame(fd, 0, 0x2, big, FIRST, FIRST - 1000) == 0) {
			swept2 = two_sweeps(h);
			big_ok = write(fd, big + FIRST - 1000, 1000) == 1000;
			swept2 = swept2 && two_sweeps(h);
			big_ok =
			    big_ok &&
			    raw_frame(fd, 1, 0x0, big + FIRST, BIG - FIRST, BIG - FIRST) == 0 &&
			    veil_ws_recv(w, &msg, &len, 10000) == 0 && len == BIG &&
			    memcmp(msg, big, BIG) == 0;
		}
		veil_ws_close(w, 1000);
	}
	veil_http_stop(h);
	CHECK_RC(echo, 0);
	CHECK(maps == 1);     /* the receive buffer got a mapping of its own */
	CHECK(res_open == 0); /* untouched while only data frames came */
	CHECK(res_ping >= 1); /* the ping's payload went through it */
	CHECK(swept1 && swept2);
	CHECK(ping_ok);
	CHECK(res_swept == 0);
	CHECK(big_ok);
	CHECK(http_lwsmem_count() == maps0);
	free(big);
	free(w);
}

T_MAIN_BEGIN
{
	RUN(test_ws_idle_sweep);
	RUN(test_ws_burst);
	RUN(test_cidr);
	RUN(test_forwarded_parse);
	RUN(test_trusted_proxy);
	RUN(test_deferred_answer);
	RUN(test_listen_exact);
	RUN(test_listen_refused);
	RUN(test_conn_per_addr);
	RUN(test_conn_rate);
	RUN(test_connlimit_table);
}
T_MAIN_END
