/* Hex and base64 through libsodium's constant-time codecs. */
#include <string.h>

#include <sodium.h>

#include "veil/util.h"

int veil_hex_encode(char *out, size_t outcap, const uint8_t *in, size_t n)
{
	if (outcap < n * 2 + 1)
		return VEIL_ELIMIT;
	sodium_bin2hex(out, outcap, in, n);
	return 0;
}

int veil_hex_decode(uint8_t *out, size_t want, const char *in, size_t inlen)
{
	size_t got = 0;
	const char *end = NULL;
	if (inlen != want * 2)
		return VEIL_EPROTO;
	if (sodium_hex2bin(out, want, in, inlen, NULL, &got, &end) != 0 || got != want ||
	    end != in + inlen) {
		sodium_memzero(out, want);
		return VEIL_EPROTO;
	}
	return 0;
}

int veil_b64_encode(char *out, size_t outcap, const uint8_t *in, size_t n)
{
	if (outcap < sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL))
		return VEIL_ELIMIT;
	sodium_bin2base64(out, outcap, in, n, sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

int veil_b64_decode_var(uint8_t *out, size_t cap, size_t *outlen, const char *in, size_t inlen)
{
	const char *end = NULL;
	size_t got = 0;
	*outlen = 0;
	if (sodium_base642bin(out, cap, in, inlen, NULL, &got, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != in + inlen) {
		sodium_memzero(out, cap);
		return VEIL_EPROTO;
	}
	*outlen = got;
	return 0;
}

int veil_b64_decode(uint8_t *out, size_t want, const char *in, size_t inlen)
{
	size_t got;
	int rc = veil_b64_decode_var(out, want, &got, in, inlen);
	if (rc != 0)
		return rc;
	if (got != want) {
		sodium_memzero(out, want);
		return VEIL_EPROTO;
	}
	return 0;
}
