/*
 * A streaming multipart/form-data parser (RFC 7578 over RFC 2046) that
 * keeps O(1) state: it never buffers part data, only a held-back prefix of
 * the delimiter (at most 74 bytes, which live in mp->delim) and one header
 * line.
 *
 * The delimiter is CRLF "--" boundary. Its first byte, CR, occurs nowhere
 * else in it (boundary characters exclude CR and LF), so when a partial
 * match fails the held-back bytes are plain data and matching restarts at
 * the current byte: no backtracking table is needed. The body is treated
 * as if preceded by CRLF, so a first boundary at offset 0 matches.
 */
#include <string.h>
#include <strings.h>

#include "blob.h"

enum { MP_PREAMBLE = 0, MP_AFTER_DELIM, MP_AFTER_DASH, MP_AFTER_CR, MP_HEADERS, MP_DATA, MP_DONE };

static int bchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       strchr("'()+_,-./:=? ", c) != NULL;
}

int veil_multipart_init(struct veil_multipart *mp, const char *content_type, const char *field,
                        int (*on_data)(void *ctx, const uint8_t *p, size_t n), void *ctx)
{
	memset(mp, 0, sizeof *mp);
	if (strlen(field) >= sizeof mp->field)
		return VEIL_EINVAL;
	memcpy(mp->field, field, strlen(field) + 1);
	mp->on_data = on_data;
	mp->ctx = ctx;
	static const char pre[] = "multipart/form-data";
	if (strncasecmp(content_type, pre, sizeof pre - 1) != 0)
		return VEIL_EPROTO;
	/* Find the boundary parameter. */
	const char *p = content_type + sizeof pre - 1;
	for (;;) {
		p = strchr(p, ';');
		if (p == NULL)
			return VEIL_EPROTO;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) == 0)
			break;
	}
	p += 9;
	char b[VEIL_MP_BOUNDARY_MAX + 1];
	size_t n = 0;
	if (*p == '"') {
		p++;
		while (*p != '\0' && *p != '"') {
			if (n >= VEIL_MP_BOUNDARY_MAX || !bchar((unsigned char)*p))
				return VEIL_EPROTO;
			b[n++] = *p++;
		}
		if (*p != '"')
			return VEIL_EPROTO;
	} else {
		while (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t') {
			if (n >= VEIL_MP_BOUNDARY_MAX || !bchar((unsigned char)*p))
				return VEIL_EPROTO;
			b[n++] = *p++;
		}
	}
	if (n == 0 || b[n - 1] == ' ')
		return VEIL_EPROTO;
	memcpy(mp->delim, "\r\n--", 4);
	memcpy(mp->delim + 4, b, n);
	mp->dlen = 4 + n;
	mp->delim[mp->dlen] = '\0';
	mp->state = MP_PREAMBLE;
	mp->match = 2; /* the virtual CRLF before the body */
	return 0;
}

/* Data of the current part (or of the preamble). */
static int emit(struct veil_multipart *mp, const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	if (mp->state == MP_PREAMBLE) {
		mp->preamble += n;
		return mp->preamble > VEIL_MP_PREAMBLE_MAX ? VEIL_ELIMIT : 0;
	}
	if (!mp->in_field) {
		mp->other += n;
		return mp->other > VEIL_MP_OTHER_MAX ? VEIL_ELIMIT : 0;
	}
	return mp->on_data(mp->ctx, p, n);
}

/* Looks at one complete header line of a part. */
static int header_line(struct veil_multipart *mp)
{
	const char *l = mp->line;
	if (++mp->nheaders > VEIL_MP_HEADERS_MAX)
		return VEIL_ELIMIT;
	static const char cd[] = "content-disposition:";
	if (strncasecmp(l, cd, sizeof cd - 1) != 0)
		return 0;
	/* form-data; name="field"[; filename="..."] */
	const char *p = l + sizeof cd - 1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "form-data", 9) != 0)
		return VEIL_EPROTO;
	p += 9;
	for (;;) {
		p = strchr(p, ';');
		if (p == NULL)
			return VEIL_EPROTO; /* no name */
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "name=", 5) == 0)
			break;
	}
	p += 5;
	char name[sizeof mp->field];
	size_t n = 0;
	int quoted = *p == '"';
	if (quoted)
		p++;
	while (*p != '\0' && (quoted ? *p != '"' : (*p != ';' && *p != ' '))) {
		if (n + 1 >= sizeof name)
			return 0; /* longer than any field we want: not ours */
		name[n++] = *p++;
	}
	if (quoted && *p != '"')
		return VEIL_EPROTO;
	name[n] = '\0';
	if (strcmp(name, mp->field) == 0) {
		if (mp->found)
			return VEIL_EPROTO; /* the field twice */
		mp->found = 1;
		mp->in_field = 1;
	}
	return 0;
}

int veil_multipart_feed(struct veil_multipart *mp, const uint8_t *p, size_t n)
{
	size_t i = 0;
	int rc;
	while (i < n) {
		switch (mp->state) {
		case MP_PREAMBLE:
		case MP_DATA: {
			if (mp->match == 0) {
				/* Fast path: everything before the next CR is data. */
				const uint8_t *cr = memchr(p + i, '\r', n - i);
				size_t span = cr != NULL ? (size_t)(cr - (p + i)) : n - i;
				if ((rc = emit(mp, p + i, span)) != 0)
					return rc;
				i += span;
				if (i == n)
					break;
			}
			uint8_t c = p[i];
			if (c == (uint8_t)mp->delim[mp->match]) {
				mp->match++;
				i++;
				if (mp->match == mp->dlen) {
					mp->match = 0;
					if (mp->state == MP_DATA)
						mp->in_field = 0;
					mp->state = MP_AFTER_DELIM;
				}
				break;
			}
			/* The held-back bytes were data after all. */
			size_t held = mp->match;
			mp->match = 0;
			if (mp->state == MP_PREAMBLE && held == 2 && mp->preamble == 0 &&
			    mp->other == 0) {
				/* Only the virtual CRLF was held: not real data. */
			} else if ((rc = emit(mp, (const uint8_t *)mp->delim, held)) != 0) {
				return rc;
			}
			if (c == '\r') {
				mp->match = 1;
				i++;
			}
			break;
		}
		case MP_AFTER_DELIM: {
			uint8_t c = p[i++];
			if (c == '-')
				mp->state = MP_AFTER_DASH;
			else if (c == '\r')
				mp->state = MP_AFTER_CR;
			else if (c != ' ' && c != '\t')
				return VEIL_EPROTO;
			break;
		}
		case MP_AFTER_DASH:
			if (p[i++] != '-')
				return VEIL_EPROTO;
			mp->state = MP_DONE;
			break;
		case MP_AFTER_CR:
			if (p[i++] != '\n')
				return VEIL_EPROTO;
			if (++mp->nparts > VEIL_MP_PARTS_MAX)
				return VEIL_ELIMIT;
			mp->state = MP_HEADERS;
			mp->line_len = 0;
			mp->nheaders = 0;
			break;
		case MP_HEADERS: {
			uint8_t c = p[i++];
			if (c != '\n') {
				if (c == '\0')
					return VEIL_EPROTO;
				if (mp->line_len >= VEIL_MP_LINE_MAX)
					return VEIL_ELIMIT;
				mp->line[mp->line_len++] = (char)c;
				break;
			}
			if (mp->line_len == 0 || mp->line[mp->line_len - 1] != '\r')
				return VEIL_EPROTO;
			mp->line[--mp->line_len] = '\0';
			if (mp->line_len == 0) {
				mp->state = MP_DATA;
				mp->match = 0;
				break;
			}
			if ((rc = header_line(mp)) != 0)
				return rc;
			mp->line_len = 0;
			break;
		}
		case MP_DONE:
		default:
			/* The epilogue is ignored (its length is bounded by Content-Length). */
			return 0;
		}
	}
	return 0;
}

int veil_multipart_finish(const struct veil_multipart *mp)
{
	if (mp->state != MP_DONE)
		return VEIL_ETRUNC;
	return mp->found ? 0 : VEIL_EPROTO;
}
