/* Threema Safe key derivation (scrypt of the password, salted with the ID). */
#include <string.h>

#include <sodium.h>

#include "veil/e2e.h"

#define SAFE_SCRYPT_N ((uint64_t)1 << 16)
#define SAFE_SCRYPT_R 8
#define SAFE_SCRYPT_P 1
#define SAFE_MASTER_LEN 64

int veil_safe_derive(uint8_t backup_id[static 32], uint8_t key[static 32], const char *password,
                     size_t password_len, const uint8_t id[static VEIL_ID_LEN])
{
	uint8_t master[SAFE_MASTER_LEN];
	int rc = 0;

	if (password == NULL || password_len == 0 || password_len > VEIL_SAFE_PASSWORD_MAX)
		return VEIL_EINVAL;
	if (crypto_pwhash_scryptsalsa208sha256_ll((const uint8_t *)password, password_len, id,
	                                          VEIL_ID_LEN, SAFE_SCRYPT_N, SAFE_SCRYPT_R,
	                                          SAFE_SCRYPT_P, master, sizeof master) != 0) {
		rc = VEIL_ENOMEM; /* scrypt fails only when it cannot get its memory */
		goto out;
	}
	memcpy(backup_id, master, 32);
	memcpy(key, master + 32, 32);
out:
	sodium_memzero(master, sizeof master);
	return rc;
}
