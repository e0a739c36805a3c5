/* X-Forwarded-For and Forwarded from trusted proxies (see forwarded.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "forwarded.h"

struct span {
	const char *p;
	size_t n;
};

static void trim(struct span *s)
{
	while (s->n > 0 && (s->p[0] == ' ' || s->p[0] == '\t')) {
		s->p++;
		s->n--;
	}
	while (s->n > 0 && (s->p[s->n - 1] == ' ' || s->p[s->n - 1] == '\t'))
		s->n--;
}

/*
 * The address in one hop, "1.2.3.4", "1.2.3.4:80", "2001:db8::1" or
 * "[2001:db8::1]:80", possibly in double quotes, as NUL-terminated text in
 * out (cap >= 64). 0, or -1 if it is not an address.
 */
static int hop_addr(struct span s, char *out, size_t cap)
{
	trim(&s);
	if (s.n >= 2 && s.p[0] == '"' && s.p[s.n - 1] == '"') {
		s.p++;
		s.n -= 2;
	}
	if (s.n > 0 && s.p[0] == '[') {
		const char *close = memchr(s.p, ']', s.n);
		if (close == NULL)
			return -1;
		s.n = (size_t)(close - s.p) - 1;
		s.p++;
	} else {
		const char *colon = memchr(s.p, ':', s.n);
		/* IPv4 with a port: exactly one colon. */
		if (colon != NULL &&
		    memchr(colon + 1, ':', s.n - (size_t)(colon + 1 - s.p)) == NULL)
			s.n = (size_t)(colon - s.p);
	}
	if (s.n == 0 || s.n >= cap)
		return -1;
	char tmp[VEIL_CIDR_TEXT_MAX];
	if (s.n >= sizeof tmp)
		return -1;
	memcpy(tmp, s.p, s.n);
	tmp[s.n] = '\0';
	return veil_addr_canon(tmp, out, cap) == 0 ? 0 : -1;
}

/* Splits text on ',' into at most max spans, keeping the rightmost ones. */
static size_t split(const char *text, struct span *out, size_t max)
{
	size_t n = 0;
	const char *end = text + strlen(text);
	while (end > text && n < max) {
		const char *c = end;
		while (c > text && c[-1] != ',')
			c--;
		out[n].p = c;
		out[n].n = (size_t)(end - c);
		n++;
		end = c > text ? c - 1 : text;
		if (c == text)
			break;
	}
	return n; /* out[0] is the rightmost */
}

/* The for= parameter of one Forwarded element, or an empty span. */
static struct span forwarded_for(struct span el)
{
	struct span none = {el.p, 0};
	while (el.n > 0) {
		const char *semi = memchr(el.p, ';', el.n);
		struct span pair = {el.p, semi != NULL ? (size_t)(semi - el.p) : el.n};
		el.n -= pair.n + (semi != NULL);
		el.p += pair.n + (semi != NULL);
		trim(&pair);
		if (pair.n > 4 && strncasecmp(pair.p, "for=", 4) == 0) {
			pair.p += 4;
			pair.n -= 4;
			return pair;
		}
	}
	return none;
}

int veil_http_forwarded_client(const struct veil_cidr *trusted, size_t n, const char *peer,
                               const char *xff, const char *fwd, char *out, size_t cap)
{
	struct span hops[VEIL_HTTP_FORWARDED_HOPS];
	char addr[VEIL_CIDR_TEXT_MAX];
	if (veil_addr_canon(peer, out, cap) != 0)
		snprintf(out, cap, "%s", peer);
	if (n == 0 || !veil_cidr_match_text(trusted, n, out))
		return 0;
	int use_xff = xff != NULL && xff[0] != '\0';
	const char *h = use_xff ? xff : fwd;
	if (h == NULL || h[0] == '\0' || strlen(h) > VEIL_HTTP_FORWARDED_MAX)
		return 0;
	size_t nh = split(h, hops, VEIL_HTTP_FORWARDED_HOPS);
	int from_header = 0;
	for (size_t i = 0; i < nh; i++) {
		struct span s = use_xff ? hops[i] : forwarded_for(hops[i]);
		if (hop_addr(s, addr, sizeof addr) != 0)
			break;
		snprintf(out, cap, "%s", addr);
		from_header = 1;
		if (!veil_cidr_match_text(trusted, n, addr))
			break;
	}
	return from_header;
}
