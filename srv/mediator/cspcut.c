/* CSP message boundaries in the chat service's byte stream (see cspcut.h). */
#include "cspcut.h"
#include "veil/csp.h"

#define MD_CSPCUT_MAX (128u * 1024u)

void md_cspcut_init(struct md_cspcut *c)
{
	c->stage = 0;
	veil_buf_init(&c->buf, MD_CSPCUT_MAX);
}

void md_cspcut_release(struct md_cspcut *c)
{
	veil_buf_release(&c->buf);
}

int md_cspcut_feed(struct md_cspcut *c, const uint8_t *p, size_t n,
                   int (*fn)(void *arg, const uint8_t *msg, size_t len), void *arg)
{
	if (n > 0 && veil_buf_append(&c->buf, p, n) != 0)
		return VEIL_ELIMIT;
	for (;;) {
		size_t want;
		if (c->stage == 0)
			want = VEIL_CSP_SERVER_HELLO_LEN;
		else if (c->stage == 1)
			want = VEIL_CSP_LOGIN_ACK_LEN;
		else if (c->buf.len < 2)
			return 0;
		else {
			size_t flen = veil_load_u16le(c->buf.p);
			if (flen > VEIL_CSP_MAX_FRAME)
				return VEIL_EPROTO;
			want = 2 + flen;
		}
		if (c->buf.len < want)
			return 0;
		int rc = fn(arg, c->buf.p, want);
		if (rc != 0)
			return rc;
		veil_buf_consume(&c->buf, want);
		if (c->stage < 2)
			c->stage++;
	}
}
