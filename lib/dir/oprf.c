/*
 * The private-matching OPRF (2HashDH on ristretto255) and the
 * normalisation of address-book entries. See include/veil/dir.h and
 * docs/PROTOCOL.md for the construction and its domain-separation strings.
 */
#include <string.h>

#include <sodium.h>

#include "veil/dir.h"
#include "veil/e2e.h"

static int kind_ok(int kind)
{
	return kind == VEIL_CONTACT_EMAIL || kind == VEIL_CONTACT_PHONE;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int norm_email(const char *in, size_t len, char *out, size_t *out_len)
{
	while (len > 0 && is_space(in[0])) {
		in++;
		len--;
	}
	while (len > 0 && is_space(in[len - 1]))
		len--;
	if (len < 3 || len > VEIL_CONTACT_MAX)
		return VEIL_EINVAL;
	size_t at = len;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f)
			return VEIL_EINVAL;
		if (c == '@') {
			if (at != len)
				return VEIL_EINVAL; /* a second '@' */
			at = i;
		}
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	if (at == len || at == 0 || at == len - 1)
		return VEIL_EINVAL;
	out[len] = 0;
	*out_len = len;
	return 0;
}

#define PHONE_MIN 7
#define PHONE_MAX 15
#define CC_MAX 3

static int norm_phone(const char *in, size_t len, const char *cc, char *out, size_t *out_len)
{
	char d[64];
	size_t n = 0;
	int plus = 0;
	while (len > 0 && is_space(in[0])) {
		in++;
		len--;
	}
	if (len > 0 && in[0] == '+') {
		plus = 1;
		in++;
		len--;
	}
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c >= '0' && c <= '9') {
			if (n >= sizeof d)
				return VEIL_EINVAL;
			d[n++] = c;
		} else if (!(c == ' ' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')' ||
		             is_space(c))) {
			return VEIL_EINVAL;
		}
	}
	const char *digits = d;
	size_t o = 0;
	if (!plus && n >= 2 && d[0] == '0' && d[1] == '0') {
		digits += 2; /* 00 = international prefix */
		n -= 2;
	} else if (!plus && n >= 1 && d[0] == '0') {
		size_t cl = cc != NULL ? strlen(cc) : 0;
		if (cl == 0 || cl > CC_MAX || cc[0] == '0')
			return VEIL_EINVAL;
		for (size_t i = 0; i < cl; i++) {
			if (cc[i] < '0' || cc[i] > '9')
				return VEIL_EINVAL;
			out[o++] = cc[i];
		}
		digits++;
		n--;
	} else if (!plus) {
		return VEIL_EINVAL; /* neither international nor national: ambiguous */
	}
	if (n == 0 || digits[0] == '0' || o + n < PHONE_MIN || o + n > PHONE_MAX)
		return VEIL_EINVAL;
	memcpy(out + o, digits, n);
	o += n;
	out[o] = 0;
	*out_len = o;
	return 0;
}

int veil_contact_normalize(int kind, const char *in, size_t len, const char *country_code,
                           char out[static VEIL_CONTACT_MAX + 1], size_t *out_len)
{
	*out_len = 0;
	out[0] = 0;
	if (in == NULL || !kind_ok(kind))
		return VEIL_EINVAL;
	int rc = kind == VEIL_CONTACT_EMAIL ? norm_email(in, len, out, out_len)
	                                    : norm_phone(in, len, country_code, out, out_len);
	if (rc != 0) {
		sodium_memzero(out, VEIL_CONTACT_MAX + 1);
		*out_len = 0;
	}
	return rc;
}

int veil_contact_hash(uint8_t out[static 32], int kind, const char *norm, size_t len)
{
	if (kind == VEIL_CONTACT_EMAIL)
		return veil_hash_email(out, norm, len);
	if (kind == VEIL_CONTACT_PHONE)
		return veil_hash_phone(out, norm, len);
	return VEIL_EINVAL;
}

/* Feeds DST | kind | u16-le len | x into a SHA-512 or SHA-256 state. */
static void absorb512(crypto_hash_sha512_state *st, const char *dst, int kind, const char *x,
                      size_t len)
{
	uint8_t hdr[3] = {(uint8_t)kind, (uint8_t)(len & 0xff), (uint8_t)(len >> 8)};
	crypto_hash_sha512_update(st, (const unsigned char *)dst, strlen(dst));
	crypto_hash_sha512_update(st, hdr, sizeof hdr);
	crypto_hash_sha512_update(st, (const unsigned char *)x, len);
}

int veil_oprf_hash_to_group(uint8_t out[static VEIL_OPRF_LEN], int kind, const char *x, size_t len)
{
	uint8_t h[crypto_hash_sha512_BYTES];
	crypto_hash_sha512_state st;
	if (x == NULL || !kind_ok(kind) || len == 0 || len > VEIL_CONTACT_MAX)
		return VEIL_EINVAL;
	crypto_hash_sha512_init(&st);
	absorb512(&st, VEIL_OPRF_DST_H2G, kind, x, len);
	crypto_hash_sha512_final(&st, h);
	int rc = crypto_core_ristretto255_from_hash(out, h) == 0 ? 0 : VEIL_ECRYPTO;
	sodium_memzero(h, sizeof h);
	sodium_memzero(&st, sizeof st);
	return rc;
}

int veil_oprf_blind(uint8_t blinded[static VEIL_OPRF_LEN], uint8_t r[static VEIL_OPRF_LEN],
                    int kind, const char *x, size_t len)
{
	uint8_t p[VEIL_OPRF_LEN];
	int rc = veil_oprf_hash_to_group(p, kind, x, len);
	if (rc != 0)
		return rc;
	/* scalar_random never returns zero; a failure would mean an identity point. */
	crypto_core_ristretto255_scalar_random(r);
	rc = crypto_scalarmult_ristretto255(blinded, r, p) == 0 ? 0 : VEIL_ECRYPTO;
	sodium_memzero(p, sizeof p);
	if (rc != 0)
		sodium_memzero(r, VEIL_OPRF_LEN);
	return rc;
}

int veil_oprf_evaluate(uint8_t out[static VEIL_OPRF_LEN], const uint8_t k[static VEIL_OPRF_LEN],
                       const uint8_t element[static VEIL_OPRF_LEN])
{
	/*
	 * libsodium decodes the element and refuses a non-canonical encoding;
	 * it also fails if the product is the identity (a zero key, or the
	 * identity element). A separate is_valid_point check would decode twice.
	 */
	if (crypto_scalarmult_ristretto255(out, k, element) != 0) {
		memset(out, 0, VEIL_OPRF_LEN);
		return VEIL_ECRYPTO;
	}
	return 0;
}

int veil_oprf_output(uint8_t out[static VEIL_OPRF_LEN], int kind, const char *x, size_t len,
                     const uint8_t n[static VEIL_OPRF_LEN])
{
	crypto_hash_sha256_state st;
	uint8_t hdr[3] = {(uint8_t)kind, (uint8_t)(len & 0xff), (uint8_t)(len >> 8)};
	if (x == NULL || !kind_ok(kind) || len == 0 || len > VEIL_CONTACT_MAX)
		return VEIL_EINVAL;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)VEIL_OPRF_DST_OUT,
	                          strlen(VEIL_OPRF_DST_OUT));
	crypto_hash_sha256_update(&st, hdr, sizeof hdr);
	crypto_hash_sha256_update(&st, (const unsigned char *)x, len);
	crypto_hash_sha256_update(&st, n, VEIL_OPRF_LEN);
	crypto_hash_sha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
	return 0;
}

int veil_oprf_finalize(uint8_t out[static VEIL_OPRF_LEN], int kind, const char *x, size_t len,
                       const uint8_t r[static VEIL_OPRF_LEN],
                       const uint8_t evaluated[static VEIL_OPRF_LEN])
{
	uint8_t rinv[VEIL_OPRF_LEN], n[VEIL_OPRF_LEN];
	int rc = VEIL_ECRYPTO;
	memset(out, 0, VEIL_OPRF_LEN);
	if (crypto_core_ristretto255_scalar_invert(rinv, r) != 0)
		goto out;
	if (crypto_core_ristretto255_is_valid_point(evaluated) != 1 ||
	    crypto_scalarmult_ristretto255(n, rinv, evaluated) != 0)
		goto out;
	rc = veil_oprf_output(out, kind, x, len, n);
out:
	sodium_memzero(rinv, sizeof rinv);
	sodium_memzero(n, sizeof n);
	return rc;
}

int veil_oprf_key_derive(uint8_t k[static VEIL_OPRF_LEN], const uint8_t seed[static 32])
{
	uint8_t wide[64];
	int rc = veil_kdf(wide, sizeof wide, seed, 32, "oprf", 4, VEIL_OPRF_DST_KEY,
	                  strlen(VEIL_OPRF_DST_KEY) > 16 ? 16 : strlen(VEIL_OPRF_DST_KEY));
	if (rc == 0) {
		crypto_core_ristretto255_scalar_reduce(k, wide);
		if (sodium_is_zero(k, VEIL_OPRF_LEN))
			rc = VEIL_ECRYPTO; /* probability 2^-252 */
	}
	sodium_memzero(wide, sizeof wide);
	return rc;
}
