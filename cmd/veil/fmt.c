/* Formatting shared by the commands: status words, safe text, dates. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "veil/e2e.h"

#include "cli.h"

const char *cli_status_word(int status)
{
	switch (status) {
	case 0: return "sent";
	case VEIL_RECEIPT_RECEIVED: return "received";
	case VEIL_RECEIPT_READ: return "read";
	case VEIL_RECEIPT_ACK: return "acknowledged";
	case VEIL_RECEIPT_DECLINE: return "declined";
	default: return "unknown";
	}
}

void cli_put_text(FILE *f, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		fputc((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f ? '?' : ch, f);
	}
}

/* Reads exactly n digits at *s into *v; advances *s. */
static int digits(const char **s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*s)[i];
		if (c < '0' || c > '9')
			return -1;
		*v = *v * 10 + (c - '0');
	}
	*s += n;
	return 0;
}

int cli_parse_since(const char *s, uint64_t now_ms, uint64_t *out)
{
	size_t n = strlen(s);
	if (n == 0)
		return -1;
	/* A duration: digits and one unit. */
	char unit = s[n - 1];
	if (n >= 2 && strchr("smhdw", unit) != NULL && s[0] >= '0' && s[0] <= '9') {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(s, &end, 10);
		if (errno != 0 || end != s + n - 1)
			return -1;
		uint64_t mul = unit == 's'   ? 1000ULL
		               : unit == 'm' ? 60000ULL
		               : unit == 'h' ? 3600000ULL
		               : unit == 'd' ? 86400000ULL
		                             : 604800000ULL;
		if (v > now_ms / mul)
			*out = 0;
		else
			*out = now_ms - (uint64_t)v * mul;
		return 0;
	}
	/* A date in UTC: YYYY-MM-DD, optionally THH:MM or THH:MM:SS, optionally Z. */
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	memset(&tm, 0, sizeof tm);
	if (digits(&s, 4, &y) != 0 || *s++ != '-' || digits(&s, 2, &mo) != 0 || *s++ != '-' ||
	    digits(&s, 2, &d) != 0)
		return -1;
	if (*s == 'T' || *s == ' ') {
		s++;
		if (digits(&s, 2, &h) != 0 || *s++ != ':' || digits(&s, 2, &mi) != 0)
			return -1;
		if (*s == ':' && (s++, digits(&s, 2, &sec) != 0))
			return -1;
	}
	if (*s == 'Z')
		s++;
	if (*s != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    y < 1970)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t < 0)
		return -1;
	*out = (uint64_t)t * 1000;
	return 0;
}

void cli_put_who(FILE *f, struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN])
{
	char name[VEIL_PROFILE_NICK_MAX + 1];
	fprintf(f, "%.8s", (const char *)id);
	if (m != NULL && veil_profile_contact_name(&m->prof, id, name, sizeof name) == 0) {
		fputs(" (", f);
		cli_put_text(f, name, strlen(name));
		fputc(')', f);
	}
}

void cli_json_who(json_t *o, struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN])
{
	char name[VEIL_PROFILE_NICK_MAX + 1];
	if (o != NULL && m != NULL &&
	    veil_profile_contact_name(&m->prof, id, name, sizeof name) == 0)
		json_object_set_new(o, "contact_name", json_string(name));
}
