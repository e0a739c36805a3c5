/* A blocking CSP client connection over POSIX sockets, with poll() deadlines. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/client.h"

/* Bound on a single write when the caller gave no deadline. */
#define CONN_IO_TIMEOUT_MS 15000

static void set_err(struct veil_conn *c, const char *text)
{
	snprintf(c->errtext, sizeof c->errtext, "%s", text);
}

int veil_conn_is_open(const struct veil_conn *c)
{
	return c->fd >= 0;
}

void veil_conn_close(struct veil_conn *c)
{
	if (c->md != NULL)
		veil_conn_md_free(c); /* closes the WebSocket and its socket */
	else if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->rlen = 0;
	veil_csp_session_wipe(&c->sess);
	sodium_memzero(c->plain, sizeof c->plain);
}

/* Milliseconds left until deadline (monotonic), or -1 for no deadline. */
static int left_ms(uint64_t deadline)
{
	if (deadline == 0)
		return -1;
	uint64_t now = veil_mono_ms();
	if (now >= deadline)
		return 0;
	uint64_t d = deadline - now;
	return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : veil_mono_ms() + (uint64_t)timeout_ms;
}

/* Waits for events on the socket; 0 when ready, VEIL_ETIMEOUT or VEIL_EIO. */
static int wait_fd(struct veil_conn *c, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = events};
		int ms = left_ms(deadline);
		int n = poll(&pfd, 1, ms);
		if (n > 0)
			return 0;
		if (n == 0) {
			set_err(c, "timed out");
			return VEIL_ETIMEOUT;
		}
		if (errno != EINTR) {
			set_err(c, strerror(errno));
			return VEIL_EIO;
		}
	}
}

static int write_all(struct veil_conn *c, const uint8_t *p, size_t n)
{
	if (c->md != NULL)
		return veil_conn_md_write(c, p, n); /* one CSP message per proxy container */
	uint64_t deadline =
	    deadline_of(c->io_timeout_ms > 0 ? c->io_timeout_ms : CONN_IO_TIMEOUT_MS);
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(c, POLLOUT, deadline);
			if (rc != 0)
				return rc;
			continue;
		}
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			set_err(c, "connection closed by the server");
			return VEIL_ECLOSED;
		}
		set_err(c, strerror(errno));
		return VEIL_EIO;
	}
	return 0;
}

/*
 * Reads until rbuf holds at least want bytes. Partial data stays buffered,
 * so a timeout does not lose stream position. Through the mediator, with
 * events set, it returns VEIL_EAGAIN as soon as a D2M message waits in the
 * inbox.
 */
static int fill_ev(struct veil_conn *c, size_t want, uint64_t deadline, int events)
{
	while (c->md != NULL && c->rlen < want) {
		if (veil_conn_md_unbacklog(c))
			continue; /* bytes that came while the buffer was full, first */
		if (events && veil_conn_md_pending(c))
			return VEIL_EAGAIN;
		int rc = veil_conn_md_read(c, deadline);
		if (rc != 0)
			return rc;
	}
	while (c->rlen < want) {
		ssize_t r = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
		if (r > 0) {
			c->rlen += (size_t)r;
			continue;
		}
		if (r == 0) {
			set_err(c, "connection closed by the server");
			return VEIL_ECLOSED;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = wait_fd(c, POLLIN, deadline);
			if (rc != 0)
				return rc;
			continue;
		}
		if (errno == ECONNRESET) {
			set_err(c, "connection reset by the server");
			return VEIL_ECLOSED;
		}
		set_err(c, strerror(errno));
		return VEIL_EIO;
	}
	return 0;
}

static int fill(struct veil_conn *c, size_t want, uint64_t deadline)
{
	return fill_ev(c, want, deadline, 0);
}

static void consume(struct veil_conn *c, size_t n)
{
	memmove(c->rbuf, c->rbuf + n, c->rlen - n);
	c->rlen -= n;
}

/* Tries each address of host:port with a non-blocking connect bounded by deadline. */
static int tcp_connect(struct veil_conn *c, const char *host, uint16_t port, uint64_t deadline)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[8];
	int rc = VEIL_EIO, err = 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
	int g = getaddrinfo(host, portstr, &hints, &res);
	if (g != 0) {
		set_err(c, g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return VEIL_EIO;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		                ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		c->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			rc = 0;
			break;
		}
		if (errno != EINPROGRESS) {
			err = errno;
			goto next;
		}
		rc = wait_fd(c, POLLOUT, deadline);
		if (rc == VEIL_ETIMEOUT) {
			err = ETIMEDOUT;
			goto next;
		}
		if (rc != 0) {
			err = errno;
			goto next;
		}
		socklen_t elen = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
			err = errno;
		if (err == 0) {
			rc = 0;
			break;
		}
	next:
		rc = VEIL_EIO;
		close(fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	if (rc != 0) {
		set_err(c, strerror(err != 0 ? err : ECONNREFUSED));
		return err == ETIMEDOUT ? VEIL_ETIMEOUT : VEIL_EIO;
	}
	int one = 1;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return 0;
}

/* The CSP handshake over the transport already open in c. */
static int csp_handshake(struct veil_conn *c, const uint8_t server_pk[static VEIL_KEY_LEN],
                         const uint8_t identity[static VEIL_ID_LEN],
                         const uint8_t ck_sk[static VEIL_KEY_LEN], const char *client_info,
                         uint64_t csp_device_id, uint64_t deadline)
{
	struct veil_csp_client hs;
	uint8_t hello[VEIL_CSP_CLIENT_HELLO_LEN];
	struct veil_buf login;
	int rc;

	veil_buf_init_secret(&login, VEIL_CSP_LOGIN_LEN + VEIL_CSP_MAX_EXT);
	memset(&hs, 0, sizeof hs);
	veil_csp_client_hello(&hs, server_pk, hello);
	if ((rc = write_all(c, hello, sizeof hello)) != 0)
		goto out;
	if ((rc = fill(c, VEIL_CSP_SERVER_HELLO_LEN, deadline)) != 0)
		goto out;
	rc = veil_csp_client_server_hello(&hs, c->rbuf);
	if (rc == VEIL_ECRYPTO) {
		set_err(c, "the server's hello does not open with the pinned server key");
		goto out;
	} else if (rc != 0) {
		set_err(c, "the server's hello is malformed");
		goto out;
	}
	consume(c, VEIL_CSP_SERVER_HELLO_LEN);

	if ((rc = veil_csp_client_login(&hs, &login, identity, ck_sk, client_info, csp_device_id,
	                                NULL)) != 0) {
		set_err(c, "cannot build the login");
		goto out;
	}
	if ((rc = write_all(c, login.p, login.len)) != 0)
		goto out;
	rc = fill(c, VEIL_CSP_LOGIN_ACK_LEN, deadline);
	if (rc == VEIL_ECLOSED && (c->md == NULL || c->md_close_code == VEIL_MD_CLOSE_CSP_CLOSED)) {
		/* The server has no way to say why before the session exists. */
		set_err(c, "the server refused the login (unknown identity or wrong key)");
		rc = VEIL_EAUTH;
		goto out;
	}
	if (rc != 0)
		goto out;
	if ((rc = veil_csp_client_login_ack(&hs, c->rbuf)) != 0) {
		set_err(c, "the server's login acknowledgement does not open");
		rc = VEIL_EPROTO;
		goto out;
	}
	consume(c, VEIL_CSP_LOGIN_ACK_LEN);
	c->sess = hs.sess;
	c->errtext[0] = 0;
out:
	sodium_memzero(&hs, sizeof hs);
	veil_buf_release(&login);
	return rc;
}

static void conn_reset(struct veil_conn *c, int timeout_ms)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->can_reconnect = 1;
	c->io_timeout_ms = timeout_ms > 0 ? timeout_ms : CONN_IO_TIMEOUT_MS;
}

int veil_conn_open(struct veil_conn *c, const char *host, uint16_t port,
                   const uint8_t server_pk[static VEIL_KEY_LEN],
                   const uint8_t identity[static VEIL_ID_LEN],
                   const uint8_t ck_sk[static VEIL_KEY_LEN], const char *client_info,
                   int timeout_ms)
{
	uint64_t deadline = deadline_of(timeout_ms);
	int rc;
	conn_reset(c, timeout_ms);
	if ((rc = tcp_connect(c, host, port, deadline)) == 0)
		rc = csp_handshake(c, server_pk, identity, ck_sk, client_info, 0, deadline);
	if (rc != 0 && c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	return rc;
}

int veil_conn_open_md(struct veil_conn *c, const struct veil_md_params *mp,
                      const uint8_t server_pk[static VEIL_KEY_LEN],
                      const uint8_t identity[static VEIL_ID_LEN],
                      const uint8_t ck_sk[static VEIL_KEY_LEN], const char *client_info,
                      int timeout_ms)
{
	uint64_t deadline = deadline_of(timeout_ms > 0 ? timeout_ms : CONN_IO_TIMEOUT_MS);
	int rc;
	conn_reset(c, timeout_ms);
	if ((rc = veil_conn_md_open(c, mp, deadline)) == 0)
		rc = csp_handshake(c, server_pk, identity, ck_sk, client_info, mp->csp_device_id,
		                   deadline);
	if (rc != 0) {
		char why[VEIL_CONN_ERRTEXT_MAX];
		int code = c->md_close_code, can = c->can_reconnect;
		memcpy(why, c->errtext, sizeof why);
		veil_conn_close(c);
		memcpy(c->errtext, why, sizeof why);
		c->md_close_code = code;
		c->can_reconnect = can;
	}
	return rc;
}

int veil_conn_send_payload(struct veil_conn *c, uint8_t type, const uint8_t *data, size_t len)
{
	uint8_t frame[2 + VEIL_CSP_MAX_FRAME];
	int rc;
	if (c->fd < 0) {
		set_err(c, "not connected");
		return VEIL_ECLOSED;
	}
	if (len > VEIL_CONN_MAX_DATA)
		return VEIL_ELIMIT;
	veil_csp_payload_header(c->plain, type);
	if (len > 0)
		memcpy(c->plain + 4, data, len);
	rc = veil_csp_frame_seal(&c->sess, frame, c->plain, len + 4);
	sodium_memzero(c->plain, len + 4);
	if (rc != 0)
		goto fail;
	if ((rc = write_all(c, frame, 2 + VEIL_MAC_LEN + len + 4)) != 0)
		goto fail;
	return 0;
fail:
	veil_conn_close(c);
	return rc;
}

int veil_conn_recv_payload(struct veil_conn *c, int timeout_ms, uint8_t *type,
                           uint8_t buf[static VEIL_CONN_MAX_DATA], size_t *len)
{
	uint64_t deadline = deadline_of(timeout_ms);
	int rc;
	*len = 0;
	*type = 0;
	if (c->fd < 0) {
		set_err(c, "not connected");
		return VEIL_ECLOSED;
	}
	for (;;) {
		if (veil_conn_md_pending(c)) {
			*type = VEIL_CONN_D2M;
			return 0;
		}
		if ((rc = fill_ev(c, 2, deadline, 1)) == VEIL_EAGAIN)
			continue;
		if (rc != 0)
			goto fail;
		size_t flen = veil_load_u16le(c->rbuf);
		if (flen < VEIL_MAC_LEN + 4 || flen > VEIL_CSP_MAX_FRAME) {
			set_err(c, "the server sent a frame of invalid length");
			rc = VEIL_EPROTO;
			goto fail;
		}
		if ((rc = fill_ev(c, 2 + flen, deadline, 0)) != 0)
			goto fail;
		if ((rc = veil_csp_frame_open(&c->sess, c->plain, c->rbuf + 2, flen)) != 0) {
			set_err(c, "a frame from the server does not decrypt");
			rc = VEIL_ECRYPTO;
			goto fail;
		}
		consume(c, 2 + flen);
		const uint8_t *data;
		size_t dlen;
		uint8_t t;
		if ((rc = veil_csp_payload_parse(c->plain, flen - VEIL_MAC_LEN, &t, &data,
		                                 &dlen)) != 0) {
			set_err(c, "the server sent a malformed payload");
			goto fail;
		}
		if (t == VEIL_CSP_ECHO_REQUEST) {
			uint8_t echo[VEIL_CONN_MAX_DATA];
			memcpy(echo, data, dlen);
			if ((rc = veil_conn_send_payload(c, VEIL_CSP_ECHO_RESPONSE, echo, dlen)) !=
			    0)
				return rc;
			continue;
		}
		if (t == VEIL_CSP_CLOSE_ERROR) {
			int can = 0;
			char text[VEIL_CONN_ERRTEXT_MAX];
			if (veil_csp_close_error_parse(data, dlen, &can, text, sizeof text) != 0) {
				/* Keep what we can: the flag and a generic reason. */
				can = dlen > 0 && data[0] != 0;
				snprintf(text, sizeof text, "%s", "unreadable close-error");
			}
			set_err(c, text);
			veil_conn_close(c);
			c->can_reconnect = can;
			c->close_error = 1;
			return VEIL_ECLOSED;
		}
		memcpy(buf, data, dlen);
		*len = dlen;
		*type = t;
		sodium_memzero(c->plain, flen - VEIL_MAC_LEN);
		return 0;
	}
fail:
	if (rc == VEIL_ETIMEOUT)
		return rc;
	veil_conn_close(c);
	return rc;
}
