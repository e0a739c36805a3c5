/*
 * Directory authentication tokens and challenge responses.
 *
 * A token is version(1) | random(16) | expires u64-le ms(8) | MAC(32). The
 * MAC is BLAKE2b-256 keyed with KDF(dir secret key, salt "tok", personal
 * "veil-dir") over the first 25 bytes, the public key the token was issued
 * for and the endpoint name. Nothing is stored at issue time, so phase 1
 * costs the server no state; single use is enforced by the store when the
 * token is redeemed.
 */
#include <string.h>

#include <sodium.h>

#include "directory.h"

#define TOKEN_VERSION 1
#define TOKEN_BODY 25 /* version + random + expires */

static int token_mac(uint8_t mac[static 32], const struct veil_server_keys *keys,
                     const char *endpoint, const uint8_t pk[static VEIL_KEY_LEN],
                     const uint8_t body[static TOKEN_BODY])
{
	uint8_t k[32];
	int rc = veil_kdf(k, sizeof k, keys->dir_sk, VEIL_KEY_LEN, "tok", 3, "veil-dir", 8);
	if (rc != 0)
		return rc;
	crypto_generichash_state st;
	crypto_generichash_init(&st, k, sizeof k, 32);
	crypto_generichash_update(&st, body, TOKEN_BODY);
	crypto_generichash_update(&st, pk, VEIL_KEY_LEN);
	crypto_generichash_update(&st, (const unsigned char *)endpoint, strlen(endpoint));
	crypto_generichash_final(&st, mac, 32);
	sodium_memzero(&st, sizeof st);
	sodium_memzero(k, sizeof k);
	return 0;
}

int veil_dirsvc_token_issue(const struct veil_server_keys *keys, const char *endpoint,
                            const uint8_t pk[static VEIL_KEY_LEN], uint64_t now_ms,
                            uint8_t out[static VEIL_DIRSVC_TOKEN_LEN])
{
	out[0] = TOKEN_VERSION;
	veil_random(out + 1, 16);
	veil_store_u64le(out + 17, now_ms + VEIL_DIRSVC_TOKEN_TTL_MS);
	return token_mac(out + TOKEN_BODY, keys, endpoint, pk, out);
}

int veil_dirsvc_token_check(const struct veil_server_keys *keys, const char *endpoint,
                            const uint8_t pk[static VEIL_KEY_LEN], const uint8_t *token, size_t len,
                            uint64_t now_ms, uint64_t *expires_ms)
{
	*expires_ms = 0;
	if (len != VEIL_DIRSVC_TOKEN_LEN || token[0] != TOKEN_VERSION)
		return VEIL_ECRYPTO;
	uint8_t mac[32];
	int rc = token_mac(mac, keys, endpoint, pk, token);
	if (rc != 0)
		return rc;
	if (veil_memcmp(mac, token + TOKEN_BODY, sizeof mac) != 0)
		return VEIL_ECRYPTO;
	uint64_t exp = veil_load_u64le(token + 17);
	if (now_ms >= exp)
		return VEIL_ETIMEOUT;
	*expires_ms = exp;
	return 0;
}

int veil_dirsvc_response_check(const struct veil_server_keys *keys,
                               const uint8_t pk[static VEIL_KEY_LEN], const uint8_t *token,
                               size_t len, const uint8_t response[static 32])
{
	uint8_t ss[VEIL_KEY_LEN], k[32], want[32];
	int rc = veil_shared_key(ss, keys->dir_sk, pk);
	if (rc != 0)
		goto out;
	rc = veil_kdf(k, sizeof k, ss, sizeof ss, "dir", 3, "3ma-csp", 7);
	if (rc != 0)
		goto out;
	veil_blake2b_mac(want, k, token, len);
	rc = veil_memcmp(want, response, sizeof want) == 0 ? 0 : VEIL_ECRYPTO;
out:
	sodium_memzero(ss, sizeof ss);
	sodium_memzero(k, sizeof k);
	sodium_memzero(want, sizeof want);
	return rc != 0 ? VEIL_ECRYPTO : 0;
}
