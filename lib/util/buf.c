/* Growable buffers with a mandatory maximum. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/util.h"

void veil_buf_init(struct veil_buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
}

void veil_buf_init_secret(struct veil_buf *b, size_t max)
{
	veil_buf_init(b, max);
	b->secret = 1;
}

void veil_buf_release(struct veil_buf *b)
{
	if (b->p != NULL && b->secret)
		sodium_memzero(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

void veil_buf_reset(struct veil_buf *b)
{
	if (b->p != NULL && b->secret)
		sodium_memzero(b->p, b->len);
	b->len = 0;
}

int veil_buf_reserve(struct veil_buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return VEIL_ELIMIT;
	size_t need = b->len + extra;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > b->max / 2 ? b->max : cap * 2;
	if (cap < need)
		cap = need;
	uint8_t *p = malloc(cap);
	if (p == NULL)
		return VEIL_ENOMEM;
	if (b->len > 0)
		memcpy(p, b->p, b->len);
	/* A secret buffer is copied by hand so the old block can be wiped. */
	if (b->p != NULL && b->secret)
		sodium_memzero(b->p, b->cap);
	free(b->p);
	b->p = p;
	b->cap = cap;
	return 0;
}

int veil_buf_append(struct veil_buf *b, const void *p, size_t n)
{
	int rc = veil_buf_reserve(b, n);
	if (rc != 0)
		return rc;
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int veil_buf_append_u8(struct veil_buf *b, uint8_t v)
{
	return veil_buf_append(b, &v, 1);
}

int veil_buf_append_u16le(struct veil_buf *b, uint16_t v)
{
	uint8_t t[2];
	veil_store_u16le(t, v);
	return veil_buf_append(b, t, sizeof t);
}

int veil_buf_append_u32le(struct veil_buf *b, uint32_t v)
{
	uint8_t t[4];
	veil_store_u32le(t, v);
	return veil_buf_append(b, t, sizeof t);
}

int veil_buf_append_u64le(struct veil_buf *b, uint64_t v)
{
	uint8_t t[8];
	veil_store_u64le(t, v);
	return veil_buf_append(b, t, sizeof t);
}

void veil_buf_consume(struct veil_buf *b, size_t n)
{
	if (n >= b->len) {
		veil_buf_reset(b);
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	if (b->secret)
		sodium_memzero(b->p + b->len, n);
}

struct veil_buf *veil_buf_lazy(struct veil_buf **b, size_t max)
{
	if (*b == NULL && (*b = malloc(sizeof **b)) != NULL)
		veil_buf_init(*b, max);
	return *b;
}

void veil_buf_drop(struct veil_buf **b)
{
	if (*b == NULL)
		return;
	veil_buf_release(*b);
	free(*b);
	*b = NULL;
}
