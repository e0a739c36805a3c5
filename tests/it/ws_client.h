/*
 * A minimal blocking WebSocket client (RFC 6455, client side) for the
 * loopback tests of veild's WebSocket services (mediator, rendezvous
 * relay): connect with an upgrade request, send masked binary messages,
 * read whole messages or a close frame's code.
 */
#ifndef VEIL_IT_WS_CLIENT_H
#define VEIL_IT_WS_CLIENT_H

#include "harness.h"

/* Connects to 127.0.0.1:port from src and upgrades path; the socket or -1 (no 101). */
static inline int it_tcp_connect_from(uint16_t port, const char *src)
{
	if (src == NULL)
		return it_tcp_connect(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in l = {.sin_family = AF_INET};
	if (fd < 0)
		return -1;
	if (inet_pton(AF_INET, src, &l.sin_addr) != 1 ||
	    bind(fd, (struct sockaddr *)&l, sizeof l) != 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/*
 * Like it_ws_connect, from the local address src (another loopback address
 * such as "127.0.0.2" gives the server a second client address), or from
 * any if src is NULL.
 */
static inline int it_ws_connect_from(uint16_t port, const char *path, const char *src)
{
	int fd = it_tcp_connect_from(port, src);
	if (fd < 0)
		return -1;
	char req[1024];
	int n = snprintf(req, sizeof req,
	                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
	                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                 "Sec-WebSocket-Version: 13\r\n\r\n",
	                 path, port);
	if (it_write_all(fd, (const uint8_t *)req, (size_t)n) != 0)
		goto fail;
	/* The response head, a byte at a time so that no frame byte is swallowed. */
	char head[2048];
	size_t len = 0;
	while (len + 1 < sizeof head) {
		if (it_read_exact(fd, (uint8_t *)head + len, 1, 5000) != 0)
			goto fail;
		len++;
		if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	head[len] = 0;
	if (strncmp(head, "HTTP/1.1 101", 12) != 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* Connects to 127.0.0.1:port and upgrades path; the socket or -1 (no 101). */
static inline int it_ws_connect(uint16_t port, const char *path)
{
	return it_ws_connect_from(port, path, NULL);
}

static inline int it_ws_send(int fd, const uint8_t *p, size_t n)
{
	uint8_t hdr[14], mask[4];
	size_t h = 0;
	hdr[h++] = 0x82; /* FIN, binary */
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
	randombytes_buf(mask, 4);
	memcpy(hdr + h, mask, 4);
	h += 4;
	uint8_t *buf = malloc(h + n);
	if (buf == NULL)
		return VEIL_ENOMEM;
	memcpy(buf, hdr, h);
	for (size_t i = 0; i < n; i++)
		buf[h + i] = p[i] ^ mask[i & 3];
	int rc = it_write_all(fd, buf, h + n);
	free(buf);
	return rc;
}

/*
 * Reads one whole message into out (cap bytes). Returns 0 with *len, the
 * close code (> 0) for a close frame (1006 if the socket just ended), or a
 * negative veil_err (VEIL_ETIMEOUT).
 */
static inline int it_ws_recv(int fd, uint8_t *out, size_t cap, size_t *len, int timeout_ms)
{
	size_t got = 0;
	for (;;) {
		uint8_t h[8];
		int rc = it_read_exact(fd, h, 2, timeout_ms);
		if (rc == VEIL_ECLOSED)
			return 1006;
		if (rc != 0)
			return rc;
		int op = h[0] & 0x0f, fin = h[0] & 0x80;
		uint64_t n = h[1] & 0x7f;
		if (n == 126) {
			if (it_read_exact(fd, h, 2, timeout_ms) != 0)
				return 1006;
			n = (uint64_t)h[0] << 8 | h[1];
		} else if (n == 127) {
			if (it_read_exact(fd, h, 8, timeout_ms) != 0)
				return 1006;
			n = 0;
			for (int i = 0; i < 8; i++)
				n = n << 8 | h[i];
		}
		if (got + n > cap)
			return VEIL_ELIMIT;
		if (n > 0 && it_read_exact(fd, out + got, (size_t)n, timeout_ms) != 0)
			return 1006;
		if (op == 8)
			return n >= 2 ? (out[got] << 8 | out[got + 1]) : 1005;
		if (op == 9 || op == 10)
			continue; /* ping / pong: not used by our servers */
		got += (size_t)n;
		if (fin) {
			*len = got;
			return 0;
		}
	}
}

/* Sends a close frame with code (masked, as a client must). */
static inline int it_ws_close(int fd, int code)
{
	uint8_t f[8] = {0x88, 0x82}, mask[4];
	randombytes_buf(mask, 4);
	memcpy(f + 2, mask, 4);
	f[6] = (uint8_t)((code >> 8) ^ mask[0]);
	f[7] = (uint8_t)(code ^ mask[1]);
	return it_write_all(fd, f, sizeof f);
}

#endif
