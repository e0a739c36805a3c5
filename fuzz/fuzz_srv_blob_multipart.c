/*
 * Fuzzes the streaming multipart/form-data parser of the blob service. The
 * first byte picks how the body is cut into pieces; the rest is the body
 * (boundary "XyZ123"). Differential: the result and the data delivered must
 * not depend on where the body is cut (whole, byte by byte, or the chosen
 * piece size), and the data never exceeds the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../srv/blob/blob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	uint8_t *p;
	size_t len, cap;
};

static int on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct sink *s = ctx;
	if (n > s->cap - s->len)
		abort(); /* more data than body: a parser bug */
	memcpy(s->p + s->len, p, n);
	s->len += n;
	return 0;
}

static int run(const uint8_t *body, size_t len, size_t step, struct sink *s)
{
	struct veil_multipart mp;
	s->len = 0;
	if (veil_multipart_init(&mp, "multipart/form-data; boundary=XyZ123", "blob", on_data, s) !=
	    0)
		abort();
	for (size_t o = 0; o < len;) {
		size_t n = step == 0 || step > len - o ? len - o : step;
		int rc = veil_multipart_feed(&mp, body + o, n);
		if (rc != 0)
			return rc;
		o += n;
	}
	return veil_multipart_finish(&mp) == 0 ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = data[0];
	data++;
	size--;
	struct sink a = {malloc(size + 1), 0, size}, b = {malloc(size + 1), 0, size},
	            c = {malloc(size + 1), 0, size};
	if (a.p == NULL || b.p == NULL || c.p == NULL)
		abort();
	int ra = run(data, size, 0, &a), rb = run(data, size, 1, &b),
	    rc = run(data, size, step, &c);
	/* Errors are found at the same byte, so the outcome is the same whatever the cuts. */
	if (ra != rb || ra != rc)
		abort();
	if (ra == 0 && (a.len != b.len || a.len != c.len || memcmp(a.p, b.p, a.len) != 0 ||
	                memcmp(a.p, c.p, a.len) != 0))
		abort();
	free(a.p);
	free(b.p);
	free(c.p);
	return 0;
}
