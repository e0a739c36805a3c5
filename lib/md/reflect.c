/*
 * The reflection structs (container types 0x80..0x83). All integers are
 * little-endian; reflect and reflected start with the length of their own
 * header, which may grow in later versions, so the parsers skip whatever
 * lies between the fields they know and that length.
 */
#include <string.h>

#include "md_int.h"

static int parse_dynamic(struct veil_md_reflect *r, const uint8_t *p, size_t n, size_t min,
                         int has_timestamp)
{
	memset(r, 0, sizeof *r);
	if (n < 1)
		return VEIL_ETRUNC;
	size_t hdr = p[0];
	if (hdr < min)
		return VEIL_EPROTO;
	if (n < hdr)
		return VEIL_ETRUNC;
	/* p[1] is reserved and ignored. */
	r->flags = veil_load_u16le(p + 2);
	r->id = veil_load_u32le(p + 4);
	if (has_timestamp)
		r->timestamp = veil_load_u64le(p + 8);
	r->envelope = p + hdr;
	r->envelope_len = n - hdr;
	return 0;
}

int veil_md_reflect_parse(struct veil_md_reflect *r, const uint8_t *p, size_t n)
{
	return parse_dynamic(r, p, n, VEIL_MD_REFLECT_HDR_LEN, 0);
}

int veil_md_reflected_parse(struct veil_md_reflect *r, const uint8_t *p, size_t n)
{
	return parse_dynamic(r, p, n, VEIL_MD_REFLECTED_HDR_LEN, 1);
}

int veil_md_reflect_ack_parse(struct veil_md_reflect *r, const uint8_t *p, size_t n)
{
	memset(r, 0, sizeof *r);
	if (n < VEIL_MD_REFLECT_ACK_LEN)
		return VEIL_ETRUNC;
	if (n > VEIL_MD_REFLECT_ACK_LEN)
		return VEIL_EPROTO;
	r->id = veil_load_u32le(p + 4);
	r->timestamp = veil_load_u64le(p + 8);
	return 0;
}

int veil_md_reflected_ack_parse(struct veil_md_reflect *r, const uint8_t *p, size_t n)
{
	memset(r, 0, sizeof *r);
	if (n < VEIL_MD_REFLECTED_ACK_LEN)
		return VEIL_ETRUNC;
	if (n > VEIL_MD_REFLECTED_ACK_LEN)
		return VEIL_EPROTO;
	r->id = veil_load_u32le(p + 4);
	return 0;
}

static int encode_dynamic(struct veil_buf *out, uint8_t type, size_t hdr, uint16_t flags,
                          uint32_t id, uint64_t timestamp, const uint8_t *envelope, size_t len)
{
	int rc;
	if (envelope == NULL && len > 0)
		return VEIL_EINVAL;
	if (len > VEIL_MD_MAX_PAYLOAD - hdr)
		return VEIL_ELIMIT;
	if ((rc = veil_md_container_begin(out, type, hdr + len)) != 0)
		return rc;
	uint8_t *p = out->p + out->len;
	p[0] = (uint8_t)hdr;
	p[1] = 0;
	veil_store_u16le(p + 2, flags);
	veil_store_u32le(p + 4, id);
	if (hdr == VEIL_MD_REFLECTED_HDR_LEN)
		veil_store_u64le(p + 8, timestamp);
	if (len > 0)
		memcpy(p + hdr, envelope, len);
	out->len += hdr + len;
	return 0;
}

int veil_md_reflect_encode(struct veil_buf *out, uint16_t flags, uint32_t id,
                           const uint8_t *envelope, size_t len)
{
	return encode_dynamic(out, VEIL_MD_REFLECT, VEIL_MD_REFLECT_HDR_LEN, flags, id, 0, envelope,
	                      len);
}

int veil_md_reflected_encode(struct veil_buf *out, uint16_t flags, uint32_t id, uint64_t timestamp,
                             const uint8_t *envelope, size_t len)
{
	return encode_dynamic(out, VEIL_MD_REFLECTED, VEIL_MD_REFLECTED_HDR_LEN, flags, id,
	                      timestamp, envelope, len);
}

int veil_md_reflect_ack_encode(struct veil_buf *out, uint32_t id, uint64_t timestamp)
{
	int rc = veil_md_container_begin(out, VEIL_MD_REFLECT_ACK, VEIL_MD_REFLECT_ACK_LEN);
	if (rc != 0)
		return rc;
	uint8_t *p = out->p + out->len;
	memset(p, 0, 4);
	veil_store_u32le(p + 4, id);
	veil_store_u64le(p + 8, timestamp);
	out->len += VEIL_MD_REFLECT_ACK_LEN;
	return 0;
}

int veil_md_reflected_ack_encode(struct veil_buf *out, uint32_t id)
{
	int rc = veil_md_container_begin(out, VEIL_MD_REFLECTED_ACK, VEIL_MD_REFLECTED_ACK_LEN);
	if (rc != 0)
		return rc;
	uint8_t *p = out->p + out->len;
	memset(p, 0, 4);
	veil_store_u32le(p + 4, id);
	out->len += VEIL_MD_REFLECTED_ACK_LEN;
	return 0;
}
