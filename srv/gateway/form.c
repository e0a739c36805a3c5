/* application/x-www-form-urlencoded fields, bounded; see gateway.h. */
#include <string.h>

#include "gateway.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..n) into out (cap with NUL); 0, VEIL_ELIMIT or VEIL_EPROTO. */
static int decode_into(const char *s, size_t n, int decode, char *out, size_t cap, size_t *outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (decode && c == '+') {
			c = ' ';
		} else if (decode && c == '%') {
			if (n - i < 3)
				return VEIL_EPROTO;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return VEIL_EPROTO;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0')
			return VEIL_EPROTO;
		if (o + 1 >= cap)
			return VEIL_ELIMIT;
		out[o++] = c;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

int veil_gw_form_get(const char *p, size_t len, const char *name, int decode, char *out, size_t cap,
                     size_t *outlen)
{
	size_t nlen = strlen(name), i = 0;
	int fields = 0;
	*outlen = 0;
	if (cap == 0)
		return VEIL_ELIMIT;
	out[0] = '\0';
	while (i < len) {
		const char *f = p + i;
		const char *amp = memchr(f, '&', len - i);
		size_t flen = amp != NULL ? (size_t)(amp - f) : len - i;
		i += flen + 1;
		if (flen == 0)
			continue;
		if (++fields > VEIL_GW_FORM_MAX_FIELDS)
			return VEIL_ELIMIT;
		const char *eq = memchr(f, '=', flen);
		size_t klen = eq != NULL ? (size_t)(eq - f) : flen;
		/* Field names of the API are plain; an encoded name is simply not one of them. */
		if (klen != nlen || memcmp(f, name, nlen) != 0)
			continue;
		if (eq == NULL)
			return decode_into("", 0, decode, out, cap, outlen);
		return decode_into(eq + 1, flen - klen - 1, decode, out, cap, outlen);
	}
	return VEIL_ENOTFOUND;
}
