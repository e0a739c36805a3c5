/* CSP message boundaries in the chat service's byte stream (see cspcut.h). */
#include "cspcut.h"
#include "veil/csp.h"

/* At most one message waits: a frame (2 + VEIL_CSP_MAX_FRAME bytes) at the most. */
#define MD_CSPCUT_MAX (2u + VEIL_CSP_MAX_FRAME)

void md_cspcut_init(struct md_cspcut *c)
{
	c->stage = 0;
	c->buf = NULL;
}

void md_cspcut_release(struct md_cspcut *c)
{
	veil_buf_drop(&c->buf);
}

/* Keeps n bytes of a message's start (appended to what waits). */
static int keep(struct md_cspcut *c, const uint8_t *p, size_t n)
{
	if (veil_buf_lazy(&c->buf, MD_CSPCUT_MAX) == NULL)
		return VEIL_ENOMEM;
	return veil_buf_append(c->buf, p, n) != 0 ? VEIL_ELIMIT : 0;
}

/*
 * The length of the message that starts with the n bytes at p: 0 if n is
 * too short to tell, VEIL_EPROTO (as a negative) for an oversize frame.
 */
static long want_of(const struct md_cspcut *c, const uint8_t *p, size_t n)
{
	if (c->stage == 0)
		return VEIL_CSP_SERVER_HELLO_LEN;
	if (c->stage == 1)
		return VEIL_CSP_LOGIN_ACK_LEN;
	if (n < 2)
		return 0;
	size_t flen = veil_load_u16le(p);
	if (flen > VEIL_CSP_MAX_FRAME)
		return -1;
	return (long)(2 + flen);
}

int md_cspcut_feed(struct md_cspcut *c, const uint8_t *p, size_t n,
                   int (*fn)(void *arg, const uint8_t *msg, size_t len), void *arg)
{
	/*
	 * Whole messages are cut from p where they lie; only a message's
	 * start that p ends in waits in buf (so any amount may come at once).
	 */
	while (n > 0) {
		const uint8_t *msg;
		size_t len;
		if (c->buf != NULL) {
			/* Completes the waiting message (its length first, for a frame). */
			long want = want_of(c, c->buf->p, c->buf->len);
			size_t need = want > 0 ? (size_t)want - c->buf->len : 2 - c->buf->len;
			if (want < 0)
				return VEIL_EPROTO;
			if (need > n)
				need = n;
			int rc = keep(c, p, need);
			if (rc != 0)
				return rc;
			p += need;
			n -= need;
			if (want <= 0 || c->buf->len < (size_t)want)
				continue;
			msg = c->buf->p;
			len = (size_t)want;
		} else {
			long want = want_of(c, p, n);
			if (want < 0)
				return VEIL_EPROTO;
			if (want == 0 || (size_t)want > n)
				return keep(c, p, n);
			msg = p;
			len = (size_t)want;
			p += len;
			n -= len;
		}
		int rc = fn(arg, msg, len);
		if (c->buf != NULL && msg == c->buf->p)
			md_cspcut_release(c); /* stage stays */
		if (rc != 0)
			return rc;
		if (c->stage < 2)
			c->stage++;
	}
	return 0;
}
