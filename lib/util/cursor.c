/* Bounded little-endian readers and writers. */
#include <string.h>

#include "veil/util.h"

void veil_reader_init(struct veil_reader *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
}

size_t veil_reader_left(const struct veil_reader *r)
{
	return r->len - r->off;
}

int veil_read_view(struct veil_reader *r, const uint8_t **out, size_t n)
{
	if (n > r->len - r->off)
		return VEIL_ETRUNC;
	*out = r->p + r->off;
	r->off += n;
	return 0;
}

int veil_read_bytes(struct veil_reader *r, uint8_t *out, size_t n)
{
	const uint8_t *v;
	int rc = veil_read_view(r, &v, n);
	if (rc == 0 && n > 0)
		memcpy(out, v, n);
	return rc;
}

int veil_read_skip(struct veil_reader *r, size_t n)
{
	const uint8_t *v;
	return veil_read_view(r, &v, n);
}

int veil_read_u8(struct veil_reader *r, uint8_t *v)
{
	const uint8_t *p;
	int rc = veil_read_view(r, &p, 1);
	if (rc == 0)
		*v = p[0];
	return rc;
}

int veil_read_u16le(struct veil_reader *r, uint16_t *v)
{
	const uint8_t *p;
	int rc = veil_read_view(r, &p, 2);
	if (rc == 0)
		*v = veil_load_u16le(p);
	return rc;
}

int veil_read_u32le(struct veil_reader *r, uint32_t *v)
{
	const uint8_t *p;
	int rc = veil_read_view(r, &p, 4);
	if (rc == 0)
		*v = veil_load_u32le(p);
	return rc;
}

int veil_read_u64le(struct veil_reader *r, uint64_t *v)
{
	const uint8_t *p;
	int rc = veil_read_view(r, &p, 8);
	if (rc == 0)
		*v = veil_load_u64le(p);
	return rc;
}

int veil_reader_end(const struct veil_reader *r)
{
	return r->off == r->len ? 0 : VEIL_EPROTO;
}

void veil_writer_init(struct veil_writer *w, uint8_t *p, size_t cap)
{
	w->p = p;
	w->cap = cap;
	w->off = 0;
}

int veil_write_bytes(struct veil_writer *w, const void *p, size_t n)
{
	if (n > w->cap - w->off)
		return VEIL_ELIMIT;
	if (n > 0)
		memcpy(w->p + w->off, p, n);
	w->off += n;
	return 0;
}

int veil_write_zero(struct veil_writer *w, size_t n)
{
	if (n > w->cap - w->off)
		return VEIL_ELIMIT;
	memset(w->p + w->off, 0, n);
	w->off += n;
	return 0;
}

int veil_write_u8(struct veil_writer *w, uint8_t v)
{
	return veil_write_bytes(w, &v, 1);
}

int veil_write_u16le(struct veil_writer *w, uint16_t v)
{
	uint8_t b[2];
	veil_store_u16le(b, v);
	return veil_write_bytes(w, b, sizeof b);
}

int veil_write_u32le(struct veil_writer *w, uint32_t v)
{
	uint8_t b[4];
	veil_store_u32le(b, v);
	return veil_write_bytes(w, b, sizeof b);
}

int veil_write_u64le(struct veil_writer *w, uint64_t v)
{
	uint8_t b[8];
	veil_store_u64le(b, v);
	return veil_write_bytes(w, b, sizeof b);
}

void veil_store_u16le(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void veil_store_u32le(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void veil_store_u64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint16_t veil_load_u16le(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t veil_load_u32le(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t veil_load_u64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
