/* Thin, checked wrappers around libsodium. */
#include <string.h>

#include <sodium.h>

#include "veil/crypto.h"

int veil_crypto_init(void)
{
	return sodium_init() < 0 ? VEIL_ECRYPTO : 0;
}

void veil_random(void *out, size_t n)
{
	randombytes_buf(out, n);
}

uint64_t veil_random_u64(void)
{
	uint64_t v;
	do
		randombytes_buf(&v, sizeof v);
	while (v == 0);
	return v;
}

/* crypto_box_keypair's steps, with the faster fixed-base multiplication. */
void veil_keypair(uint8_t pk[static VEIL_KEY_LEN], uint8_t sk[static VEIL_KEY_LEN])
{
	randombytes_buf(sk, VEIL_KEY_LEN);
	(void)veil_x25519_base(pk, sk);
}

void veil_pubkey(uint8_t pk[static VEIL_KEY_LEN], const uint8_t sk[static VEIL_KEY_LEN])
{
	(void)veil_x25519_base(pk, sk);
}

int veil_shared_key(uint8_t k[static VEIL_KEY_LEN], const uint8_t sk[static VEIL_KEY_LEN],
                    const uint8_t pk[static VEIL_KEY_LEN])
{
	if (crypto_box_beforenm(k, pk, sk) != 0) {
		sodium_memzero(k, VEIL_KEY_LEN);
		return VEIL_ECRYPTO;
	}
	return 0;
}

void veil_box_seal(uint8_t *out, const uint8_t *in, size_t n,
                   const uint8_t nonce[static VEIL_NONCE_LEN], const uint8_t k[static VEIL_KEY_LEN])
{
	crypto_box_easy_afternm(out, in, n, nonce, k);
}

int veil_box_open(uint8_t *out, const uint8_t *in, size_t n,
                  const uint8_t nonce[static VEIL_NONCE_LEN], const uint8_t k[static VEIL_KEY_LEN])
{
	if (n < VEIL_MAC_LEN)
		return VEIL_ETRUNC;
	if (crypto_box_open_easy_afternm(out, in, n, nonce, k) != 0)
		return VEIL_ECRYPTO;
	return 0;
}

void veil_secretbox_seal(uint8_t *out, const uint8_t *in, size_t n,
                         const uint8_t nonce[static VEIL_NONCE_LEN],
                         const uint8_t k[static VEIL_KEY_LEN])
{
	crypto_secretbox_easy(out, in, n, nonce, k);
}

int veil_secretbox_open(uint8_t *out, const uint8_t *in, size_t n,
                        const uint8_t nonce[static VEIL_NONCE_LEN],
                        const uint8_t k[static VEIL_KEY_LEN])
{
	if (n < VEIL_MAC_LEN)
		return VEIL_ETRUNC;
	if (crypto_secretbox_open_easy(out, in, n, nonce, k) != 0)
		return VEIL_ECRYPTO;
	return 0;
}

int veil_kdf(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen, const char *salt,
             size_t saltlen, const char *personal, size_t personallen)
{
	uint8_t s[crypto_generichash_blake2b_SALTBYTES] = {0};
	uint8_t p[crypto_generichash_blake2b_PERSONALBYTES] = {0};
	if (saltlen > sizeof s || personallen > sizeof p || outlen < 16 || outlen > 64 ||
	    keylen > crypto_generichash_blake2b_KEYBYTES_MAX)
		return VEIL_EINVAL;
	memcpy(s, salt, saltlen);
	memcpy(p, personal, personallen);
	if (crypto_generichash_blake2b_salt_personal(out, outlen, NULL, 0, key, keylen, s, p) != 0)
		return VEIL_ECRYPTO;
	return 0;
}

void veil_blake2b_mac(uint8_t out[static 32], const uint8_t key[static 32], const uint8_t *in,
                      size_t n)
{
	crypto_generichash_blake2b(out, 32, in, n, key, 32);
}

void veil_hmac_sha256(uint8_t out[static 32], const uint8_t *key, size_t keylen, const uint8_t *in,
                      size_t n)
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, in, n);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

int veil_memcmp(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n);
}

static int id_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int veil_id_valid(const uint8_t id[static VEIL_ID_LEN])
{
	if (!(id_char(id[0]) || id[0] == '*'))
		return 0;
	for (int i = 1; i < VEIL_ID_LEN; i++)
		if (!id_char(id[i]))
			return 0;
	return 1;
}

void veil_id_str(char out[static VEIL_ID_LEN + 1], const uint8_t id[static VEIL_ID_LEN])
{
	memcpy(out, id, VEIL_ID_LEN);
	out[VEIL_ID_LEN] = 0;
}

int veil_id_parse(uint8_t id[static VEIL_ID_LEN], const char *s)
{
	if (strlen(s) != VEIL_ID_LEN)
		return VEIL_EINVAL;
	memcpy(id, s, VEIL_ID_LEN);
	if (!veil_id_valid(id)) {
		memset(id, 0, VEIL_ID_LEN);
		return VEIL_EINVAL;
	}
	return 0;
}
