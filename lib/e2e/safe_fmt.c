/*
 * The Threema Safe container: nonce || secretbox(gzip(JSON)), padded to a
 * size bucket through the gzip header's comment field (include/veil/safe.h).
 *
 * The gzip member is written by hand around a raw deflate stream, so that
 * the header can be sized after compression: the padding must be known
 * only once the compressed length is.
 */
#include <string.h>

#include <sodium.h>
#include <zlib.h>

#include "veil/safe.h"

#define GZ_HEADER 10
#define GZ_TRAILER 8
#define GZ_FCOMMENT 0x10
#define GZ_OS_UNKNOWN 0xff
#define PAD_BYTE 0x20 /* the comment is spaces: any non-zero byte would do */

size_t veil_safe_bucket(size_t n)
{
	size_t b = VEIL_SAFE_BUCKET_MIN;
	while (b < n) {
		if (b > VEIL_SAFE_BLOB_MAX / 2)
			return 0;
		b *= 2;
	}
	return b <= VEIL_SAFE_BLOB_MAX ? b : 0;
}

/* Raw deflate of in into out (replacing its content). */
static int deflate_raw(struct veil_buf *out, const uint8_t *in, size_t len)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return VEIL_ENOMEM;
	int rc = 0;
	uLong bound = deflateBound(&z, (uLong)len);
	veil_buf_reset(out);
	if ((rc = veil_buf_reserve(out, bound)) != 0)
		goto out;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out->p;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	out->len = (size_t)z.total_out;
out:
	deflateEnd(&z);
	return rc;
}

int veil_safe_seal_nonce(struct veil_buf *out, const uint8_t key[static VEIL_SAFE_KEY_LEN],
                         const uint8_t nonce[static VEIL_NONCE_LEN], const uint8_t *json,
                         size_t len, int pad)
{
	struct veil_buf def, gz;
	int rc;

	veil_buf_reset(out);
	if (len > VEIL_SAFE_JSON_MAX)
		return VEIL_ELIMIT;
	veil_buf_init_secret(&def, VEIL_SAFE_JSON_MAX + 1024);
	veil_buf_init_secret(&gz, VEIL_SAFE_BLOB_MAX);
	if ((rc = deflate_raw(&def, json, len)) != 0)
		goto out;
	size_t base = GZ_HEADER + def.len + GZ_TRAILER, comment = 0;
	if (base + VEIL_SAFE_OVERHEAD > VEIL_SAFE_BLOB_MAX) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	if (pad) {
		/* One byte at least: the comment's terminating zero. */
		size_t b = veil_safe_bucket(VEIL_SAFE_OVERHEAD + base + 1);
		if (b == 0) {
			rc = VEIL_ELIMIT;
			goto out;
		}
		comment = b - VEIL_SAFE_OVERHEAD - base;
	}
	uint8_t hdr[GZ_HEADER] = {0x1f, 0x8b, 8, pad ? GZ_FCOMMENT : 0, 0, 0,
	                          0,    0,    0, GZ_OS_UNKNOWN};
	uint8_t trl[GZ_TRAILER];
	uLong crc = crc32(crc32(0L, Z_NULL, 0), json, (uInt)len);
	veil_store_u32le(trl, (uint32_t)crc);
	veil_store_u32le(trl + 4, (uint32_t)len); /* ISIZE: the length modulo 2^32 */
	if ((rc = veil_buf_reserve(&gz, base + comment)) != 0 ||
	    (rc = veil_buf_append(&gz, hdr, sizeof hdr)) != 0)
		goto out;
	if (comment > 0) {
		memset(gz.p + gz.len, PAD_BYTE, comment - 1);
		gz.p[gz.len + comment - 1] = 0;
		gz.len += comment;
	}
	if ((rc = veil_buf_append(&gz, def.p, def.len)) != 0 ||
	    (rc = veil_buf_append(&gz, trl, sizeof trl)) != 0)
		goto out;
	if ((rc = veil_buf_reserve(out, VEIL_SAFE_OVERHEAD + gz.len)) != 0)
		goto out;
	memcpy(out->p, nonce, VEIL_NONCE_LEN);
	veil_secretbox_seal(out->p + VEIL_NONCE_LEN, gz.p, gz.len, nonce, key);
	out->len = VEIL_SAFE_OVERHEAD + gz.len;
out:
	veil_buf_release(&def);
	veil_buf_release(&gz);
	return rc;
}

int veil_safe_seal(struct veil_buf *out, const uint8_t key[static VEIL_SAFE_KEY_LEN],
                   const uint8_t *json, size_t len, int pad)
{
	uint8_t nonce[VEIL_NONCE_LEN];
	randombytes_buf(nonce, sizeof nonce);
	return veil_safe_seal_nonce(out, key, nonce, json, len, pad);
}

int veil_safe_gunzip(struct veil_buf *out, const uint8_t *gz, size_t len)
{
	z_stream z;
	uint8_t chunk[16384];
	int rc = 0, zr;

	veil_buf_reset(out);
	if (len > VEIL_SAFE_BLOB_MAX)
		return VEIL_ELIMIT;
	memset(&z, 0, sizeof z);
	/* 16 + 15: a gzip member only (zlib checks the header, CRC and length). */
	if (inflateInit2(&z, 16 + 15) != Z_OK)
		return VEIL_ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)gz;
	z.avail_in = (uInt)len;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			rc = zr == Z_MEM_ERROR ? VEIL_ENOMEM : VEIL_EPROTO;
			goto out;
		}
		size_t got = sizeof chunk - z.avail_out;
		if (out->len + got > VEIL_SAFE_JSON_MAX) {
			rc = VEIL_ELIMIT;
			goto out;
		}
		if ((rc = veil_buf_append(out, chunk, got)) != 0)
			goto out;
		/* Input used up before the end of the member: truncated. */
		if (zr == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
			rc = VEIL_ETRUNC;
			goto out;
		}
	} while (zr != Z_STREAM_END);
	if (z.avail_in != 0)
		rc = VEIL_EPROTO; /* bytes after the member */
out:
	sodium_memzero(chunk, sizeof chunk);
	inflateEnd(&z);
	if (rc != 0)
		veil_buf_reset(out);
	return rc;
}

int veil_safe_open(struct veil_buf *json, const uint8_t key[static VEIL_SAFE_KEY_LEN],
                   const uint8_t *blob, size_t len)
{
	struct veil_buf gz;
	int rc;

	veil_buf_reset(json);
	if (len < VEIL_SAFE_OVERHEAD)
		return VEIL_ETRUNC;
	if (len > VEIL_SAFE_BLOB_MAX)
		return VEIL_ELIMIT;
	veil_buf_init_secret(&gz, VEIL_SAFE_BLOB_MAX);
	if ((rc = veil_buf_reserve(&gz, len - VEIL_SAFE_OVERHEAD)) != 0)
		goto out;
	if (veil_secretbox_open(gz.p, blob + VEIL_NONCE_LEN, len - VEIL_NONCE_LEN, blob, key) !=
	    0) {
		rc = VEIL_ECRYPTO;
		goto out;
	}
	gz.len = len - VEIL_SAFE_OVERHEAD;
	rc = veil_safe_gunzip(json, gz.p, gz.len);
out:
	veil_buf_release(&gz);
	return rc;
}
