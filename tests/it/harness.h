/*
 * Loopback integration test helpers: start veild on free ports with a
 * fresh data directory, stop it by PID, and a small blocking CSP client
 * written straight on lib/csp (independent of lib/client).
 */
#ifndef VEIL_IT_HARNESS_H
#define VEIL_IT_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "veil/csp.h"
#include "veil/dir.h"
#include "veil/e2e.h"

struct it_server {
	pid_t pid;
	uint16_t chat_port, http_port;
	char data[256];
	char http_url[128];
	char dir_url[160];
	uint8_t csp_pk[32];
	const char *extra[8]; /* more veild arguments, NULL-terminated */
	char store[640];      /* under VEIL_IT_PG: the database of this server */
};

/* 1 when veild keeps its store in PostgreSQL (VEIL_IT_STORE or VEIL_IT_PG). */
static inline int it_on_pg(void)
{
	const char *a = getenv("VEIL_IT_STORE"), *b = getenv("VEIL_IT_PG");
	return (a != NULL && a[0] != '\0') || (b != NULL && b[0] != '\0');
}

/* Runs psql on VEIL_IT_PG's postgres database with one SQL command. */
static inline int it_psql(const char *sql)
{
	char url[600];
	snprintf(url, sizeof url, "%s/postgres", getenv("VEIL_IT_PG"));
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(127);
		execlp("psql", "psql", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql,
		       (char *)NULL);
		_exit(127);
	}
	int st;
	if (waitpid(p, &st, 0) != p)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The databases this test made under VEIL_IT_PG, dropped when it exits. */
static char it_pg_dbs[16][48];
static int it_pg_ndbs;
static pid_t it_pg_owner; /* a forked child that exits leaves them alone */

static inline void it_pg_drop_all(void)
{
	char sql[128];
	if (getpid() != it_pg_owner)
		return;
	for (int i = 0; i < it_pg_ndbs; i++) {
		snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %.47s WITH (FORCE)",
		         it_pg_dbs[i]);
		(void)it_psql(sql);
	}
	it_pg_ndbs = 0;
}

/*
 * VEIL_IT_PG=postgresql://USER:PW@HOST:PORT (tests/run-pg sets it): a fresh
 * database for a server's first start, kept across its restarts.
 */
static inline int it_pg_store(struct it_server *srv)
{
	const char *base = getenv("VEIL_IT_PG");
	char sql[128];
	if (base == NULL || base[0] == '\0' || srv->store[0] != '\0')
		return 0;
	if (it_pg_ndbs == (int)(sizeof it_pg_dbs / sizeof it_pg_dbs[0]))
		return -1;
	char *name = it_pg_dbs[it_pg_ndbs];
	snprintf(name, sizeof it_pg_dbs[0], "veil_it_%ld_%u", (long)getpid(),
	         (unsigned)randombytes_uniform(1000000000));
	snprintf(sql, sizeof sql, "CREATE DATABASE %.47s", name);
	if (it_psql(sql) != 0)
		return -1;
	if (it_pg_ndbs++ == 0) {
		it_pg_owner = getpid();
		atexit(it_pg_drop_all);
	}
	snprintf(srv->store, sizeof srv->store, "%s/%s", base, name);
	return 0;
}

/*
 * A free port below the ephemeral range (32768 and up), so that the
 * TIME_WAIT sockets of earlier connections cannot collide with a listener.
 */
static inline uint16_t it_free_port(void)
{
	for (int i = 0; i < 1000; i++) {
		uint16_t p = (uint16_t)(20000 + randombytes_uniform(12000));
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons(p),
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (fd < 0)
			abort();
		int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
		close(fd);
		if (ok)
			return p;
	}
	abort();
}

static inline int it_tcp_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static inline const char *it_bin(void)
{
	const char *b = getenv("VEIL_BIN");
	return b ? b : "build";
}

/* Starts veild (keeping srv->data if already set) and waits until both ports answer. */
static inline int it_start(struct it_server *srv)
{
	char exe[512], cport[8], hport[8];
	if (srv->data[0] == 0) {
		snprintf(srv->data, sizeof srv->data, "/tmp/veil-it-XXXXXX");
		if (mkdtemp(srv->data) == NULL)
			return -1;
		srv->chat_port = it_free_port();
		srv->http_port = it_free_port();
	}
	snprintf(exe, sizeof exe, "%s/veild", it_bin());
	snprintf(cport, sizeof cport, "%u", srv->chat_port);
	snprintf(hport, sizeof hport, "%u", srv->http_port);
	snprintf(srv->http_url, sizeof srv->http_url, "http://127.0.0.1:%u", srv->http_port);
	snprintf(srv->dir_url, sizeof srv->dir_url, "%s/directory/", srv->http_url);
	if (it_pg_store(srv) != 0)
		return -1;
	srv->pid = fork();
	if (srv->pid < 0)
		return -1;
	if (srv->pid == 0) {
		char logp[300];
		snprintf(logp, sizeof logp, "%s/veild.log", srv->data);
		if (freopen(logp, "a", stdout) == NULL || freopen(logp, "a", stderr) == NULL)
			_exit(127);
		const char *argv[24] = {exe,      "--data",           srv->data, "--chat-port",
		                        cport,    "--http-port",      hport,     "--dir-rate",
		                        "100000", "--http-conn-rate", "1000000"};
		size_t k = 11;
		/* VEIL_IT_CHAT_THREADS=N: N chat loops (default: one per CPU; the test's own flags come after). */
		const char *loops = getenv("VEIL_IT_CHAT_THREADS");
		if (loops != NULL && loops[0] != '\0') {
			argv[k++] = "--chat-threads";
			argv[k++] = loops;
		}
		for (size_t i = 0; i < 8 && srv->extra[i] != NULL; i++)
			argv[k++] = srv->extra[i];
		/* VEIL_IT_STORE=postgresql://...: the whole test runs on that store. */
		const char *store = getenv("VEIL_IT_STORE");
		if (srv->store[0] != '\0')
			store = srv->store;
		if (store != NULL && store[0] != '\0') {
			argv[k++] = "--store";
			argv[k++] = store;
		}
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int fd = it_tcp_connect(srv->chat_port);
		int fd2 = fd >= 0 ? it_tcp_connect(srv->http_port) : -1;
		if (fd >= 0)
			close(fd);
		if (fd2 >= 0) {
			close(fd2);
			struct veil_dir_provisioning p;
			if (veil_dir_fetch_provisioning(srv->http_url, NULL, NULL, &p) != 0)
				return -1;
			memcpy(srv->csp_pk, p.csp_pk, 32);
			return 0;
		}
		int st;
		if (waitpid(srv->pid, &st, WNOHANG) == srv->pid)
			return -1;
		usleep(50000);
	}
	return -1;
}

/* Stops veild with sig (SIGTERM: clean; SIGKILL: crash) and waits for it. */
static inline int it_stop(struct it_server *srv, int sig)
{
	int st = 0;
	if (srv->pid <= 0)
		return 0;
	kill(srv->pid, sig);
	waitpid(srv->pid, &st, 0);
	srv->pid = 0;
	if (sig == SIGTERM)
		return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
	return 0;
}

/* An identity registered in the directory. */
struct it_user {
	uint8_t id[8];
	uint8_t pk[32], sk[32];
};

static inline int it_register(struct it_server *srv, struct it_user *u)
{
	veil_keypair(u->pk, u->sk);
	return veil_dir_create_identity(srv->dir_url, u->pk, u->sk, NULL, u->id);
}

/* A blocking CSP connection built directly on lib/csp. */
struct it_conn {
	int fd;
	struct veil_csp_client hs;
	uint8_t buf[2 + VEIL_CSP_MAX_FRAME];
	size_t len;
};

static inline int it_read_exact(int fd, uint8_t *p, size_t n, int timeout_ms)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, timeout_ms);
		if (r == 0)
			return VEIL_ETIMEOUT;
		if (r < 0)
			return VEIL_EIO;
		ssize_t k = read(fd, p + got, n - got);
		if (k == 0)
			return VEIL_ECLOSED;
		if (k < 0)
			return errno == ECONNRESET ? VEIL_ECLOSED : VEIL_EIO;
		got += (size_t)k;
	}
	return 0;
}

static inline int it_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k <= 0)
			return VEIL_EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/*
 * Connects and logs in as u with secret key sk (which may be wrong on
 * purpose); a device_id other than 0 is sent as the csp-device-id login
 * extension (a multi-device session, which receives only once unblocked).
 */
static inline int it_login_device(struct it_conn *c, struct it_server *srv, const uint8_t id[8],
                                  const uint8_t sk[32], uint64_t device_id)
{
	uint8_t ch[48], sh[80], ack[32];
	struct veil_buf login;
	int rc;
	memset(c, 0, sizeof *c);
	c->fd = it_tcp_connect(srv->chat_port);
	if (c->fd < 0)
		return VEIL_EIO;
	veil_csp_client_hello(&c->hs, srv->csp_pk, ch);
	if ((rc = it_write_all(c->fd, ch, sizeof ch)) != 0 ||
	    (rc = it_read_exact(c->fd, sh, sizeof sh, 5000)) != 0 ||
	    (rc = veil_csp_client_server_hello(&c->hs, sh)) != 0)
		return rc;
	veil_buf_init(&login, 8192);
	rc = veil_csp_client_login(&c->hs, &login, id, sk, "0.1;B;en/CH;it;test", device_id, NULL);
	if (rc == 0)
		rc = it_write_all(c->fd, login.p, login.len);
	veil_buf_release(&login);
	if (rc != 0)
		return rc;
	if ((rc = it_read_exact(c->fd, ack, sizeof ack, 5000)) != 0)
		return rc;
	return veil_csp_client_login_ack(&c->hs, ack);
}

static inline int it_login(struct it_conn *c, struct it_server *srv, const uint8_t id[8],
                           const uint8_t sk[32])
{
	return it_login_device(c, srv, id, sk, 0);
}

static inline int it_send(struct it_conn *c, uint8_t type, const uint8_t *d, size_t n)
{
	uint8_t plain[VEIL_CSP_MAX_PAYLOAD], frame[2 + VEIL_CSP_MAX_FRAME];
	if (n + 4 > sizeof plain)
		return VEIL_ELIMIT;
	veil_csp_payload_header(plain, type);
	if (n > 0) /* an empty payload (0x03) may come with no buffer */
		memcpy(plain + 4, d, n);
	int rc = veil_csp_frame_seal(&c->hs.sess, frame, plain, n + 4);
	if (rc != 0)
		return rc;
	return it_write_all(c->fd, frame, 2 + VEIL_MAC_LEN + n + 4);
}

/*
 * Receives one payload into c->buf (type at c->buf[0], data from c->buf+4,
 * c->len = whole container length).
 */
static inline int it_recv(struct it_conn *c, int timeout_ms)
{
	uint8_t hdr[2], box[VEIL_CSP_MAX_FRAME];
	int rc = it_read_exact(c->fd, hdr, 2, timeout_ms);
	if (rc != 0)
		return rc;
	size_t n = veil_load_u16le(hdr);
	if (n < VEIL_MAC_LEN || n > VEIL_CSP_MAX_FRAME)
		return VEIL_EPROTO;
	if ((rc = it_read_exact(c->fd, box, n, timeout_ms)) != 0)
		return rc;
	if ((rc = veil_csp_frame_open(&c->hs.sess, c->buf, box, n)) != 0)
		return rc;
	c->len = n - VEIL_MAC_LEN;
	return 0;
}

/* Receives payloads until one of the wanted type arrives (others are skipped). */
static inline int it_expect(struct it_conn *c, uint8_t type, int timeout_ms)
{
	for (;;) {
		int rc = it_recv(c, timeout_ms);
		if (rc != 0)
			return rc;
		if (c->buf[0] == type)
			return 0;
		if (c->buf[0] == VEIL_CSP_CLOSE_ERROR)
			return VEIL_ECLOSED;
	}
}

static inline void it_close(struct it_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Seals a text message from a to b. */
static inline int it_text(struct veil_buf *out, const struct it_user *a, const struct it_user *b,
                          uint64_t msg_id, const char *text, uint8_t flags)
{
	struct veil_e2e_out o = {.msg_id = msg_id,
	                         .created_at_ms = veil_now_ms(),
	                         .flags = flags,
	                         .nickname = "it",
	                         .type = VEIL_E2E_TEXT};
	memcpy(o.sender, a->id, 8);
	memcpy(o.receiver, b->id, 8);
	return veil_e2e_seal(out, &o, a->sk, b->pk, (const uint8_t *)text, strlen(text));
}

/* Opens the incoming message in c->buf for b from a; returns the text in out. */
static inline int it_open_text(struct it_conn *c, const struct it_user *b, const struct it_user *a,
                               char *out, size_t cap, uint64_t *msg_id)
{
	struct veil_msgbox m;
	struct veil_buf body;
	struct veil_e2e_meta meta;
	uint8_t type;
	int rc = veil_msgbox_parse(&m, c->buf + 4, c->len - 4);
	if (rc != 0)
		return rc;
	veil_buf_init(&body, 8192);
	rc = veil_e2e_open(&m, b->sk, a->pk, &type, &body, &meta);
	if (rc == 0 && (type != VEIL_E2E_TEXT || body.len >= cap))
		rc = VEIL_EPROTO;
	if (rc == 0) {
		memcpy(out, body.p, body.len);
		out[body.len] = 0;
		*msg_id = m.msg_id;
	}
	veil_buf_release(&body);
	return rc;
}

/* Acks an incoming message (sender id || msg id). */
static inline int it_ack(struct it_conn *c, const uint8_t sender[8], uint64_t msg_id)
{
	uint8_t ack[16];
	veil_csp_ack_encode(ack, sender, msg_id);
	return it_send(c, VEIL_CSP_INCOMING_ACK, ack, sizeof ack);
}

#define IT_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

#endif
