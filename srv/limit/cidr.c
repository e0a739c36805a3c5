/* Address ranges for the trusted proxies (see cidr.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "veil/util.h"
#include "cidr.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses addr into family and 4 or 16 bytes, unmapping ::ffff:a.b.c.d. */
static int parse_addr(const char *addr, int *family, uint8_t out[16])
{
	if (inet_pton(AF_INET, addr, out) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, out) == 1) {
		if (memcmp(out, v4mapped, sizeof v4mapped) == 0) {
			memmove(out, out + 12, 4);
			*family = AF_INET;
		} else {
			*family = AF_INET6;
		}
		return 0;
	}
	return VEIL_EINVAL;
}

int veil_cidr_parse(const char *s, struct veil_cidr *out)
{
	char a[VEIL_CIDR_TEXT_MAX];
	memset(out, 0, sizeof *out);
	size_t n = strlen(s);
	if (n == 0 || n >= sizeof a)
		return VEIL_EINVAL;
	memcpy(a, s, n + 1);
	char *slash = strchr(a, '/');
	if (slash != NULL)
		*slash = '\0';
	if (parse_addr(a, &out->family, out->addr) != 0)
		return VEIL_EINVAL;
	unsigned max = out->family == AF_INET ? 32 : 128;
	out->bits = max;
	if (slash != NULL) {
		char *end;
		const char *b = slash + 1;
		if (*b < '0' || *b > '9' || strlen(b) > 3)
			return VEIL_EINVAL;
		errno = 0;
		unsigned long v = strtoul(b, &end, 10);
		if (errno != 0 || *end != '\0' || v > max)
			return VEIL_EINVAL;
		out->bits = (unsigned)v;
	}
	/* No host bits below the prefix: a typo there would trust the wrong range. */
	for (unsigned i = out->bits; i < max; i++)
		if (out->addr[i / 8] & (0x80u >> (i % 8)))
			return VEIL_EINVAL;
	return 0;
}

static bool match(const struct veil_cidr *set, size_t n, int family, const uint8_t a[16])
{
	for (size_t k = 0; k < n; k++) {
		const struct veil_cidr *c = &set[k];
		if (c->family != family)
			continue;
		unsigned full = c->bits / 8, rest = c->bits % 8;
		if (memcmp(c->addr, a, full) != 0)
			continue;
		if (rest != 0 && ((c->addr[full] ^ a[full]) & (0xffu << (8 - rest)) & 0xffu) != 0)
			continue;
		return true;
	}
	return false;
}

bool veil_cidr_match_text(const struct veil_cidr *set, size_t n, const char *addr)
{
	uint8_t a[16];
	int family;
	if (n == 0 || parse_addr(addr, &family, a) != 0)
		return false;
	return match(set, n, family, a);
}

bool veil_cidr_match_sa(const struct veil_cidr *set, size_t n, const struct sockaddr *sa,
                        socklen_t len)
{
	uint8_t a[16];
	if (n == 0 || sa == NULL)
		return false;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		memcpy(a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return match(set, n, AF_INET, a);
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
			memmove(a, a + 12, 4);
			return match(set, n, AF_INET, a);
		}
		return match(set, n, AF_INET6, a);
	}
	return false;
}

int veil_addr_canon(const char *addr, char *out, size_t cap)
{
	uint8_t a[16];
	int family;
	if (parse_addr(addr, &family, a) != 0 ||
	    inet_ntop(family, a, out, (socklen_t)(cap > 0x7fffffff ? 0x7fffffff : cap)) == NULL)
		return VEIL_EINVAL;
	return 0;
}
