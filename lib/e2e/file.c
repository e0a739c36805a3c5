/*
 * File messages: the secretbox of a blob computed in pieces, and the JSON
 * body of the file message (type 0x17).
 *
 * A secretbox (XSalsa20-Poly1305) is one pass of the XSalsa20 keystream for
 * (key, nonce): its first 32 bytes are the Poly1305 key, the message is
 * XORed with the keystream from byte 32 on, and the tag is Poly1305 over
 * the ciphertext. The combined form is tag(16) || ciphertext. Computing it
 * chunk by chunk with crypto_stream_xsalsa20_xor_ic (which starts at a
 * 64-byte block boundary) and the incremental Poly1305 gives exactly the
 * bytes of crypto_secretbox_easy, in constant memory.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "veil/e2e.h"

_Static_assert(sizeof(crypto_onetimeauth_poly1305_state) <= VEIL_SBSTREAM_MAC_STATE,
               "poly1305 state does not fit");
_Static_assert(crypto_secretbox_xsalsa20poly1305_ZEROBYTES == 32, "secretbox layout");

#define BLOCK 64u

void veil_file_nonce(uint8_t nonce[static VEIL_NONCE_LEN], int which)
{
	memset(nonce, 0, VEIL_NONCE_LEN);
	nonce[VEIL_NONCE_LEN - 1] = (uint8_t)which;
}

static crypto_onetimeauth_poly1305_state *mac_state(struct veil_sbstream *s)
{
	return (crypto_onetimeauth_poly1305_state *)(void *)s->mac;
}

int veil_sbstream_init(struct veil_sbstream *s, const uint8_t key[static VEIL_FILE_KEY_LEN],
                       const uint8_t nonce[static VEIL_NONCE_LEN])
{
	uint8_t block0[32];
	memset(s, 0, sizeof *s);
	memcpy(s->key, key, VEIL_FILE_KEY_LEN);
	memcpy(s->nonce, nonce, VEIL_NONCE_LEN);
	memset(block0, 0, sizeof block0);
	crypto_stream_xsalsa20_xor_ic(block0, block0, sizeof block0, s->nonce, 0, s->key);
	int rc = crypto_onetimeauth_poly1305_init(mac_state(s), block0);
	sodium_memzero(block0, sizeof block0);
	s->off = 32;
	return rc == 0 ? 0 : VEIL_ECRYPTO;
}

/* XORs len bytes with the keystream at s->off (out may equal in). */
static void stream_xor(struct veil_sbstream *s, uint8_t *out, const uint8_t *in, size_t len)
{
	size_t in_block = (size_t)(s->off % BLOCK);
	if (in_block != 0 && len > 0) {
		uint8_t ks[BLOCK];
		memset(ks, 0, sizeof ks);
		crypto_stream_xsalsa20_xor_ic(ks, ks, sizeof ks, s->nonce, s->off / BLOCK, s->key);
		size_t n = BLOCK - in_block;
		if (n > len)
			n = len;
		for (size_t i = 0; i < n; i++)
			out[i] = in[i] ^ ks[in_block + i];
		sodium_memzero(ks, sizeof ks);
		s->off += n;
		out += n;
		in += n;
		len -= n;
	}
	if (len > 0) {
		crypto_stream_xsalsa20_xor_ic(out, in, len, s->nonce, s->off / BLOCK, s->key);
		s->off += len;
	}
}

void veil_sbstream_encrypt(struct veil_sbstream *s, uint8_t *out, const uint8_t *in, size_t len)
{
	stream_xor(s, out, in, len);
	crypto_onetimeauth_poly1305_update(mac_state(s), out, len);
}

void veil_sbstream_decrypt(struct veil_sbstream *s, uint8_t *out, const uint8_t *in, size_t len)
{
	crypto_onetimeauth_poly1305_update(mac_state(s), in, len);
	stream_xor(s, out, in, len);
}

void veil_sbstream_final(struct veil_sbstream *s, uint8_t tag[static VEIL_MAC_LEN])
{
	crypto_onetimeauth_poly1305_final(mac_state(s), tag);
	veil_sbstream_wipe(s);
}

int veil_sbstream_verify(struct veil_sbstream *s, const uint8_t tag[static VEIL_MAC_LEN])
{
	uint8_t want[VEIL_MAC_LEN];
	crypto_onetimeauth_poly1305_final(mac_state(s), want);
	veil_sbstream_wipe(s);
	int rc = veil_memcmp(want, tag, VEIL_MAC_LEN) == 0 ? 0 : VEIL_ECRYPTO;
	sodium_memzero(want, sizeof want);
	return rc;
}

void veil_sbstream_wipe(struct veil_sbstream *s)
{
	sodium_memzero(s, sizeof *s);
}

/* ---------------------------------------------------------------------- */
/* File message JSON                                                      */
/* ---------------------------------------------------------------------- */

static int set_hex(json_t *o, const char *k, const uint8_t *p, size_t n)
{
	char hex[VEIL_HEX_LEN(VEIL_FILE_KEY_LEN)];
	if (n > VEIL_FILE_KEY_LEN || veil_hex_encode(hex, sizeof hex, p, n) != 0)
		return VEIL_EINVAL;
	int rc = json_object_set_new(o, k, json_string(hex)) == 0 ? 0 : VEIL_ENOMEM;
	sodium_memzero(hex, sizeof hex);
	return rc;
}

/* A string field: valid UTF-8 of 1..max bytes (0 allowed if empty_ok) without NUL. */
static int str_ok(const char *s, size_t max, int empty_ok)
{
	size_t n = strnlen(s, max + 1);
	if (n > max || (n == 0 && !empty_ok))
		return 0;
	return veil_utf8_valid((const uint8_t *)s, n);
}

static int set_str(json_t *o, const char *k, const char *v)
{
	return json_object_set_new(o, k, json_string(v)) == 0 ? 0 : VEIL_ENOMEM;
}

int veil_e2e_file_encode(struct veil_buf *out, const struct veil_e2e_file *f)
{
	json_t *o = json_object();
	char *text = NULL;
	int rc = VEIL_ENOMEM;
	if (o == NULL)
		goto out;
	rc = VEIL_EINVAL;
	if (f->rendering < 0 || f->rendering > VEIL_FILE_RENDER_STICKER ||
	    f->size > VEIL_FILE_SIZE_MAX || !str_ok(f->mime, VEIL_FILE_MIME_MAX, 0) ||
	    !str_ok(f->name, VEIL_FILE_NAME_MAX, 1) ||
	    !str_ok(f->caption, VEIL_FILE_CAPTION_MAX, 1) ||
	    !str_ok(f->correlation, VEIL_FILE_CORRELATION_MAX, 1) ||
	    (f->has_thumb && !str_ok(f->thumb_mime, VEIL_FILE_MIME_MAX, 0)))
		goto out;
	json_t *x = NULL;
	if (f->meta_json[0] != '\0') {
		x = json_loads(f->meta_json, JSON_REJECT_DUPLICATES, NULL);
		if (x == NULL || !json_is_object(x)) {
			json_decref(x);
			goto out;
		}
	}
	/* Readers that know only "i" see media (1) or a plain file (0). */
	if ((rc = set_hex(o, "b", f->blob_id, VEIL_BLOB_ID_LEN)) != 0 ||
	    (rc = set_hex(o, "k", f->key, VEIL_FILE_KEY_LEN)) != 0 ||
	    (rc = set_str(o, "m", f->mime)) != 0 ||
	    (f->name[0] != '\0' && (rc = set_str(o, "n", f->name)) != 0) ||
	    (rc = json_object_set_new(o, "s", json_integer((json_int_t)f->size)) == 0
	              ? 0
	              : VEIL_ENOMEM) != 0 ||
	    (rc = json_object_set_new(
	              o, "i", json_integer(f->rendering == VEIL_FILE_RENDER_MEDIA ? 1 : 0)) == 0
	              ? 0
	              : VEIL_ENOMEM) != 0 ||
	    (rc = json_object_set_new(o, "j", json_integer(f->rendering)) == 0 ? 0 : VEIL_ENOMEM) !=
	        0 ||
	    (f->has_thumb && (rc = set_hex(o, "t", f->thumb_blob_id, VEIL_BLOB_ID_LEN)) != 0) ||
	    (f->has_thumb && (rc = set_str(o, "p", f->thumb_mime)) != 0) ||
	    (f->caption[0] != '\0' && (rc = set_str(o, "d", f->caption)) != 0) ||
	    (f->correlation[0] != '\0' && (rc = set_str(o, "c", f->correlation)) != 0)) {
		json_decref(x);
		goto out;
	}
	if (x != NULL && json_object_set_new(o, "x", x) != 0) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	text = json_dumps(o, JSON_COMPACT);
	if (text == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	size_t n = strlen(text);
	rc = n > VEIL_FILE_JSON_MAX ? VEIL_ELIMIT : veil_buf_append(out, text, n);
out:
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	json_decref(o);
	return rc;
}

/* Copies string field k (required or not) into dst; 1 if present. */
static int get_str(json_t *o, const char *k, char *dst, size_t max, int required, int *rc)
{
	json_t *v = json_object_get(o, k);
	if (v == NULL) {
		if (required)
			*rc = VEIL_EPROTO;
		return 0;
	}
	if (!json_is_string(v)) {
		*rc = VEIL_EPROTO;
		return 0;
	}
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	if (n > max) {
		*rc = VEIL_ELIMIT;
		return 0;
	}
	if (memchr(s, 0, n) != NULL) {
		*rc = VEIL_EPROTO;
		return 0;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 1;
}

static int get_hex(json_t *o, const char *k, uint8_t *dst, size_t n)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_string(v) || json_string_length(v) != 2 * n)
		return VEIL_EPROTO;
	return veil_hex_decode(dst, n, json_string_value(v), 2 * n) == 0 ? 0 : VEIL_EPROTO;
}

int veil_e2e_file_decode(const uint8_t *p, size_t len, struct veil_e2e_file *f)
{
	memset(f, 0, sizeof *f);
	if (len > VEIL_FILE_JSON_MAX)
		return VEIL_ELIMIT;
	if (veil_json_depth_ok(p, len, VEIL_FILE_JSON_DEPTH) != 0)
		return VEIL_ELIMIT;
	json_t *o = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, NULL);
	int rc = 0;
	if (o == NULL || !json_is_object(o)) {
		rc = VEIL_EPROTO;
		goto out;
	}
	if ((rc = get_hex(o, "b", f->blob_id, VEIL_BLOB_ID_LEN)) != 0 ||
	    (rc = get_hex(o, "k", f->key, VEIL_FILE_KEY_LEN)) != 0)
		goto out;
	get_str(o, "m", f->mime, VEIL_FILE_MIME_MAX, 1, &rc);
	get_str(o, "n", f->name, VEIL_FILE_NAME_MAX, 0, &rc);
	get_str(o, "d", f->caption, VEIL_FILE_CAPTION_MAX, 0, &rc);
	get_str(o, "c", f->correlation, VEIL_FILE_CORRELATION_MAX, 0, &rc);
	if (rc != 0)
		goto out;
	json_t *s = json_object_get(o, "s");
	if (!json_is_integer(s) || json_integer_value(s) < 0 ||
	    (uint64_t)json_integer_value(s) > VEIL_FILE_SIZE_MAX) {
		rc = VEIL_EPROTO;
		goto out;
	}
	f->size = (uint64_t)json_integer_value(s);
	/* "j" wins over the older "i"; values beyond the known ones mean a plain file. */
	json_t *j = json_object_get(o, "j");
	if (j == NULL)
		j = json_object_get(o, "i");
	if (j != NULL && !json_is_integer(j)) {
		rc = VEIL_EPROTO;
		goto out;
	}
	json_int_t r = j != NULL ? json_integer_value(j) : 0;
	f->rendering = r >= 0 && r <= VEIL_FILE_RENDER_STICKER ? (int)r : VEIL_FILE_RENDER_FILE;
	if (json_object_get(o, "t") != NULL) {
		if ((rc = get_hex(o, "t", f->thumb_blob_id, VEIL_BLOB_ID_LEN)) != 0)
			goto out;
		f->has_thumb = 1;
		if (!get_str(o, "p", f->thumb_mime, VEIL_FILE_MIME_MAX, 0, &rc) && rc == 0)
			memcpy(f->thumb_mime, "image/jpeg", sizeof "image/jpeg");
		if (rc != 0)
			goto out;
	}
	json_t *x = json_object_get(o, "x");
	if (x != NULL) {
		if (!json_is_object(x)) {
			rc = VEIL_EPROTO;
			goto out;
		}
		char *t = json_dumps(x, JSON_COMPACT);
		if (t == NULL) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		size_t n = strlen(t);
		if (n > VEIL_FILE_META_MAX)
			rc = VEIL_ELIMIT;
		else
			memcpy(f->meta_json, t, n + 1);
		free(t);
	}
out:
	json_decref(o);
	if (rc != 0)
		sodium_memzero(f, sizeof *f);
	return rc;
}
