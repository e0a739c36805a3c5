/*
 * A blocking WebSocket client (RFC 6455), binary messages only, for the
 * mediator and the rendezvous relay. libcurl makes the connection in
 * CONNECT_ONLY mode (name resolution, connect timeout and, for wss://, TLS
 * with certificate verification against the system store or a given CA
 * file); the upgrade and the framing are done here over curl_easy_send and
 * curl_easy_recv. Reads always try curl first and poll only when it has
 * nothing: TLS may hold decrypted bytes that poll cannot see.
 */
#define _GNU_SOURCE /* memmem */
#include <poll.h>
#include <stddef.h>
#include <strings.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "veil/client.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_HEAD_MAX 4096

static void set_err(struct veil_ws *w, const char *fmt, ...) VEIL_PRINTF(2, 3);
static void set_err(struct veil_ws *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->errtext, sizeof w->errtext, fmt, ap);
	va_end(ap);
}

/* --- SHA-1, only to check Sec-WebSocket-Accept (RFC 6455 4.1) --- */

static uint32_t rol(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		uint32_t t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

/* SHA-1 of a short message (at most 119 bytes, enough for key + GUID). */
static void sha1_short(uint8_t out[20], const uint8_t *m, size_t n)
{
	uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
	uint8_t blk[128];
	size_t nb = n + 9 <= 64 ? 64 : 128;
	memset(blk, 0, sizeof blk);
	memcpy(blk, m, n);
	blk[n] = 0x80;
	uint64_t bits = (uint64_t)n * 8;
	for (int i = 0; i < 8; i++)
		blk[nb - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t off = 0; off < nb; off += 64)
		sha1_block(h, blk + off);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

/* --- I/O over curl --- */

static int left_ms(uint64_t deadline)
{
	uint64_t now = veil_mono_ms();
	if (deadline == 0)
		return -1;
	if (now >= deadline)
		return 0;
	return deadline - now > 0x7fffffff ? 0x7fffffff : (int)(deadline - now);
}

static int wait_fd(struct veil_ws *w, short ev, uint64_t deadline)
{
	struct pollfd pfd = {.fd = w->fd, .events = ev};
	int n = poll(&pfd, 1, left_ms(deadline));
	if (n > 0)
		return 0;
	if (n == 0) {
		set_err(w, "timed out");
		return VEIL_ETIMEOUT;
	}
	return 0; /* EINTR: the caller tries again */
}

static int write_all(struct veil_ws *w, const uint8_t *p, size_t n)
{
	uint64_t deadline = veil_mono_ms() + (uint64_t)w->io_timeout_ms;
	while (n > 0) {
		size_t sent = 0;
		CURLcode cc = curl_easy_send(w->curl, p, n, &sent);
		if (cc == CURLE_OK) {
			p += sent;
			n -= sent;
			continue;
		}
		if (cc == CURLE_AGAIN) {
			int rc = wait_fd(w, POLLOUT, deadline);
			if (rc != 0)
				return rc;
			continue;
		}
		set_err(w, "%s", curl_easy_strerror(cc));
		return VEIL_ECLOSED;
	}
	return 0;
}

/* Reads what is available into rbuf, waiting until deadline for at least a byte. */
static int read_some(struct veil_ws *w, uint64_t deadline)
{
	if (w->rlen == sizeof w->rbuf) {
		set_err(w, "%s", "receive buffer full");
		return VEIL_EPROTO;
	}
	for (;;) {
		size_t got = 0;
		CURLcode cc =
		    curl_easy_recv(w->curl, w->rbuf + w->rlen, sizeof w->rbuf - w->rlen, &got);
		if (cc == CURLE_OK) {
			if (got == 0) {
				set_err(w, "%s", "connection closed by the server");
				return VEIL_ECLOSED;
			}
			w->rlen += got;
			return 0;
		}
		if (cc != CURLE_AGAIN) {
			set_err(w, "%s", curl_easy_strerror(cc));
			return VEIL_ECLOSED;
		}
		int rc = wait_fd(w, POLLIN, deadline);
		if (rc != 0)
			return rc;
	}
}

static void consume(struct veil_ws *w, size_t n)
{
	memmove(w->rbuf, w->rbuf + n, w->rlen - n);
	w->rlen -= n;
}

/* --- opening --- */

/* Splits ws[s]://host[:port]/path into curl's http[s]://host[:port]/ and the path. */
static int split_url(const char *url, char *base, size_t bcap, const char **path)
{
	const char *scheme;
	size_t skip;
	if (strncmp(url, "ws://", 5) == 0) {
		scheme = "http://";
		skip = 5;
	} else if (strncmp(url, "wss://", 6) == 0) {
		scheme = "https://";
		skip = 6;
	} else {
		return VEIL_EINVAL;
	}
	const char *host = url + skip, *slash = strchr(host, '/');
	size_t hl = slash != NULL ? (size_t)(slash - host) : strlen(host);
	if (hl == 0 || strlen(scheme) + hl + 2 > bcap)
		return VEIL_EINVAL;
	snprintf(base, bcap, "%s%.*s/", scheme, (int)hl, host);
	*path = slash != NULL ? slash : "/";
	return 0;
}

/* Finds header name (case-insensitive) in the response head; copies its value. */
static int header_value(const char *head, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *l = strstr(head, "\r\n"); l != NULL; l = strstr(l, "\r\n")) {
		l += 2;
		if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
			const char *v = l + nl + 1, *e = strstr(v, "\r\n");
			while (*v == ' ' || *v == '\t')
				v++;
			size_t n = e != NULL ? (size_t)(e - v) : strlen(v);
			while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			if (n + 1 > cap)
				return VEIL_ELIMIT;
			memcpy(out, v, n);
			out[n] = 0;
			return 0;
		}
	}
	return VEIL_ENOTFOUND;
}

int veil_ws_open(struct veil_ws *w, const char *url, const char *cacert, int timeout_ms)
{
	char base[VEIL_WS_URL_MAX], req[VEIL_WS_URL_MAX + 512], key[32], want[32], got[64];
	const char *path;
	uint8_t nonce[16], digest[20];
	uint64_t deadline = veil_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000);
	int rc;

	memset(w, 0, offsetof(struct veil_ws, rbuf));
	w->fd = -1;
	w->io_timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	w->close_code = 0;
	if (strlen(url) >= VEIL_WS_URL_MAX || split_url(url, base, sizeof base, &path) != 0) {
		set_err(w, "not a ws:// or wss:// URL: %s", url);
		return VEIL_EINVAL;
	}
	CURL *c = curl_easy_init();
	if (c == NULL) {
		set_err(w, "%s", "out of memory");
		return VEIL_ENOMEM;
	}
	w->curl = c;
	curl_easy_setopt(c, CURLOPT_URL, base);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)w->io_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	if (cacert != NULL && cacert[0] != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
	CURLcode cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		set_err(w, "%s", curl_easy_strerror(cc));
		rc = cc == CURLE_OPERATION_TIMEDOUT ? VEIL_ETIMEOUT : VEIL_EIO;
		goto fail;
	}
	curl_socket_t s;
	if (curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK || s == CURL_SOCKET_BAD) {
		set_err(w, "%s", "no socket");
		rc = VEIL_EIO;
		goto fail;
	}
	w->fd = (int)s;

	randombytes_buf(nonce, sizeof nonce);
	if (veil_b64_encode(key, sizeof key, nonce, sizeof nonce) != 0) {
		rc = VEIL_EINVAL;
		goto fail;
	}
	const char *host = base + (strncmp(base, "https", 5) == 0 ? 8 : 7);
	int n = snprintf(req, sizeof req,
	                 "GET %s HTTP/1.1\r\nHost: %.*s\r\nUpgrade: websocket\r\n"
	                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	                 "Sec-WebSocket-Version: 13\r\nUser-Agent: veil\r\n\r\n",
	                 path, (int)(strlen(host) - 1), host, key);
	if (n < 0 || (size_t)n >= sizeof req) {
		set_err(w, "URL too long: %s", url);
		rc = VEIL_ELIMIT;
		goto fail;
	}
	if ((rc = write_all(w, (const uint8_t *)req, (size_t)n)) != 0)
		goto fail;
	/* The response head; bytes after it are frames and stay in rbuf. */
	char head[WS_HEAD_MAX + 1];
	size_t hl = 0;
	for (;;) {
		uint8_t *e = w->rlen >= 4 ? memmem(w->rbuf, w->rlen, "\r\n\r\n", 4) : NULL;
		if (e != NULL) {
			hl = (size_t)(e - w->rbuf) + 4;
			break;
		}
		if (w->rlen >= WS_HEAD_MAX) {
			set_err(w, "%s", "the server's HTTP response head is too long");
			rc = VEIL_EPROTO;
			goto fail;
		}
		if ((rc = read_some(w, deadline)) != 0)
			goto fail;
	}
	if (hl > WS_HEAD_MAX) {
		rc = VEIL_EPROTO;
		goto fail;
	}
	memcpy(head, w->rbuf, hl);
	head[hl] = 0;
	consume(w, hl);
	if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
		char *eol = strstr(head, "\r\n");
		if (eol != NULL)
			*eol = 0;
		set_err(w, "the server refused the WebSocket upgrade: %.150s", head);
		rc = VEIL_EPROTO;
		goto fail;
	}
	/* Sec-WebSocket-Accept = base64(SHA-1(key || GUID)). */
	char kg[96];
	snprintf(kg, sizeof kg, "%s%s", key, WS_GUID);
	sha1_short(digest, (const uint8_t *)kg, strlen(kg));
	if (veil_b64_encode(want, sizeof want, digest, sizeof digest) != 0 ||
	    header_value(head, "Sec-WebSocket-Accept", got, sizeof got) != 0 ||
	    strcmp(want, got) != 0) {
		set_err(w, "%s", "the server's WebSocket accept key is wrong");
		rc = VEIL_EPROTO;
		goto fail;
	}
	w->errtext[0] = 0;
	return 0;
fail:
	veil_ws_close(w, 0);
	return rc;
}

int veil_ws_is_open(const struct veil_ws *w)
{
	return w->curl != NULL;
}

int veil_ws_fd(const struct veil_ws *w)
{
	return w->curl != NULL ? w->fd : -1;
}

/* Sends one frame (client frames are masked). */
static int send_frame(struct veil_ws *w, uint8_t op, const uint8_t *p, size_t n)
{
	uint8_t hdr[14], mask[4];
	size_t h = 0;
	hdr[h++] = (uint8_t)(0x80 | op);
	if (n < 126) {
		hdr[h++] = (uint8_t)(0x80 | n);
	} else if (n < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(n >> 8);
		hdr[h++] = (uint8_t)n;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	randombytes_buf(mask, sizeof mask);
	memcpy(hdr + h, mask, 4);
	h += 4;
	uint8_t *buf = malloc(h + n);
	if (buf == NULL)
		return VEIL_ENOMEM;
	memcpy(buf, hdr, h);
	for (size_t i = 0; i < n; i++)
		buf[h + i] = p[i] ^ mask[i & 3];
	int rc = write_all(w, buf, h + n);
	sodium_memzero(buf, h + n);
	free(buf);
	return rc;
}

int veil_ws_send(struct veil_ws *w, const uint8_t *p, size_t n)
{
	if (w->curl == NULL) {
		set_err(w, "%s", "not connected");
		return VEIL_ECLOSED;
	}
	if (n > VEIL_WS_MAX_MESSAGE)
		return VEIL_ELIMIT;
	int rc = send_frame(w, 0x2, p, n);
	if (rc != 0)
		veil_ws_close(w, 0);
	return rc;
}

int veil_ws_recv(struct veil_ws *w, const uint8_t **msg, size_t *len, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? 0 : veil_mono_ms() + (uint64_t)timeout_ms;
	int rc;
	*msg = NULL;
	*len = 0;
	if (w->curl == NULL) {
		set_err(w, "%s", "not connected");
		return VEIL_ECLOSED;
	}
	if (w->deliver_done) {
		/* The previous message was handed out: forget it now. */
		w->mlen = 0;
		w->deliver_done = 0;
	}
	for (;;) {
		/* One frame header: 2 bytes, then 2 or 8 of length; server frames have no mask. */
		size_t need = 2;
		if (w->rlen >= 2) {
			uint8_t l7 = w->rbuf[1] & 0x7f;
			need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
		}
		if (w->rlen < need) {
			if ((rc = read_some(w, deadline)) != 0)
				goto fail;
			continue;
		}
		uint8_t b0 = w->rbuf[0], op = b0 & 0x0f;
		int fin = (b0 & 0x80) != 0;
		if ((b0 & 0x70) != 0 || (w->rbuf[1] & 0x80) != 0) {
			set_err(w, "%s", "the server sent a malformed WebSocket frame");
			rc = VEIL_EPROTO;
			goto fail;
		}
		uint64_t plen = w->rbuf[1] & 0x7f;
		if (plen == 126) {
			plen = (uint64_t)w->rbuf[2] << 8 | w->rbuf[3];
		} else if (plen == 127) {
			plen = 0;
			for (int i = 0; i < 8; i++)
				plen = plen << 8 | w->rbuf[2 + i];
		}
		int control = (op & 0x8) != 0;
		/* Compared without adding to plen, which a hostile peer may make huge. */
		if ((control && (plen > 125 || !fin)) ||
		    (!control && plen > VEIL_WS_MAX_MESSAGE - w->mlen)) {
			set_err(w, "%s", "the server sent an oversized WebSocket frame");
			rc = VEIL_ELIMIT;
			goto fail;
		}
		if (w->rlen < need + plen) {
			if ((rc = read_some(w, deadline)) != 0)
				goto fail;
			continue;
		}
		const uint8_t *p = w->rbuf + need;
		if (op == 0x8) {
			w->close_code = plen >= 2 ? (p[0] << 8 | p[1]) : 1005;
			snprintf(w->errtext, sizeof w->errtext,
			         "the server closed the connection (%d)", w->close_code);
			consume(w, need + (size_t)plen);
			uint8_t cb[2] = {(uint8_t)(w->close_code >> 8), (uint8_t)w->close_code};
			(void)send_frame(w, 0x8, cb, plen >= 2 ? 2 : 0);
			veil_ws_close(w, -1);
			return VEIL_ECLOSED;
		}
		if (op == 0x9) {
			uint8_t pong[125];
			memcpy(pong, p, (size_t)plen);
			consume(w, need + (size_t)plen);
			if ((rc = send_frame(w, 0xa, pong, (size_t)plen)) != 0)
				goto fail;
			continue;
		}
		if (op == 0xa) {
			consume(w, need + (size_t)plen);
			continue;
		}
		if ((op == 0x0) != (w->mop != 0) || (op != 0x0 && op != 0x2)) {
			set_err(w, "%s", "the server sent an unexpected WebSocket frame");
			rc = VEIL_EPROTO;
			goto fail;
		}
		memcpy(w->msg + w->mlen, p, (size_t)plen);
		w->mlen += (size_t)plen;
		consume(w, need + (size_t)plen);
		if (!fin) {
			w->mop = 0x2;
			continue;
		}
		w->mop = 0;
		*msg = w->msg;
		*len = w->mlen;
		w->deliver_done = 1;
		return 0;
	}
fail:
	if (rc == VEIL_ETIMEOUT)
		return rc;
	if (w->close_code == 0)
		w->close_code = 1006;
	veil_ws_close(w, -1);
	return rc;
}

void veil_ws_close(struct veil_ws *w, int code)
{
	if (w->curl == NULL)
		return;
	if (code > 0) {
		uint8_t cb[2] = {(uint8_t)(code >> 8), (uint8_t)code};
		int saved = w->io_timeout_ms;
		w->io_timeout_ms = 1000;
		(void)send_frame(w, 0x8, cb, sizeof cb);
		w->io_timeout_ms = saved;
	}
	curl_easy_cleanup(w->curl);
	w->curl = NULL;
	w->fd = -1;
	w->rlen = 0;
	w->mlen = 0;
	w->mop = 0;
	w->deliver_done = 0;
}
