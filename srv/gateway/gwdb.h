/*
 * Gateway accounts: the API identities of the Gateway (srv/gateway), kept in
 * <data>/gateway.db (SQLite, WAL). The identity itself (ID and public key)
 * lives in the directory like any other; this file holds what only the
 * Gateway needs: the API secret, the callback URL, credits and, for basic
 * mode, the identity's private key.
 *
 * The secret is stored twice, for two uses: a salted BLAKE2b hash that
 * requests are checked against (in constant time), and a copy sealed with a
 * key derived from the directory's secret key, needed because the callback
 * MAC of the published API is an HMAC keyed with the secret itself. A copy
 * of gateway.db alone thus gives neither the secrets nor a way to log in.
 * The basic-mode private key is sealed the same way.
 *
 * Thread-safe: one connection behind a mutex.
 */
#ifndef VEIL_SRV_GWDB_H
#define VEIL_SRV_GWDB_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"

#define VEIL_GW_SECRET_LEN 16 /* characters of [a-zA-Z0-9], as the published API issues */
#define VEIL_GW_SECRET_MAX 64 /* longest secret a request may carry */
#define VEIL_GW_URL_MAX 1024  /* longest callback URL */
#define VEIL_GW_DEFAULT_CREDITS 1000000

enum veil_gw_mode {
	VEIL_GW_MODE_E2E = 1,   /* send_e2e: the caller encrypts */
	VEIL_GW_MODE_BASIC = 2, /* send_simple: veild holds the private key */
};

struct veil_gw_account {
	uint8_t id[VEIL_ID_LEN];
	int modes;                          /* enum veil_gw_mode bits */
	int64_t credits;                    /* messages left to send */
	char callback[VEIL_GW_URL_MAX + 1]; /* "" = no callback */
	int has_sk;
	uint8_t sk[VEIL_KEY_LEN]; /* basic mode only; wipe after use */
	uint8_t secret_salt[16];
	uint8_t secret_hash[32];
	char secret[VEIL_GW_SECRET_MAX + 1]; /* filled by veil_gwdb_get with want_secret */
	uint64_t created_ms;
	int64_t cb_failures;  /* callback tries failed in a row (0 after a success) */
	char cb_error[128];   /* the last failure, in words ("" if none yet) */
	uint64_t cb_error_ms; /* when it happened */
};

struct veil_gwdb;

/*
 * Opens (creates) the accounts file at path; seal_key (32 bytes, copied)
 * seals secrets and private keys. Returns 0 or VEIL_EIO / VEIL_ENOMEM.
 */
int veil_gwdb_open(struct veil_gwdb **out, const char *path, const uint8_t seal_key[static 32]);
void veil_gwdb_close(struct veil_gwdb *db);

/* Derives the sealing key from the directory's secret key. */
void veil_gwdb_seal_key(uint8_t out[static 32], const uint8_t dir_sk[static VEIL_KEY_LEN]);

/*
 * Adds an account: a->id, modes, credits, callback, has_sk/sk and
 * a->secret (the clear secret; hashed and sealed here). VEIL_EEXIST if the
 * ID has an account.
 */
int veil_gwdb_add(struct veil_gwdb *db, const struct veil_gw_account *a);
/*
 * Reads an account into a (cleared first). With want_secret the clear
 * secret and private key are unsealed into it (wipe a afterwards).
 * VEIL_ENOTFOUND, VEIL_EIO, VEIL_ECRYPTO (sealed data does not open).
 */
int veil_gwdb_get(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN], int want_secret,
                  struct veil_gw_account *a);
/* Checks secret against the account's hash in constant time: 0 or VEIL_EAUTH. */
int veil_gwdb_check_secret(const struct veil_gw_account *a, const char *secret, size_t len);
/* Takes n credits: 0, VEIL_EQUOTA if fewer are left, VEIL_ENOTFOUND. */
int veil_gwdb_charge(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN], int64_t n);
/* Sets the callback URL ("" removes it): 0 or VEIL_ENOTFOUND. */
int veil_gwdb_set_callback(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN],
                           const char *url);
/*
 * Records a callback try: error NULL for a success (the failure count goes
 * back to 0), else what went wrong (counted, kept with the time).
 */
int veil_gwdb_note_callback(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN],
                            const char *error);
/* Adds n (may be negative) to the credits: 0 or VEIL_ENOTFOUND. */
int veil_gwdb_add_credits(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN], int64_t n);
/* IDs of the accounts with a callback URL, at most max, in ID order. */
int veil_gwdb_with_callback(struct veil_gwdb *db, uint8_t (*ids)[VEIL_ID_LEN], size_t max,
                            size_t *n);
/* Every account's ID, at most max, in ID order. */
/*
 * Whether this node delivers id's callbacks: always with SQLite; with
 * PostgreSQL only the node holding id's lock (1), so that several nodes
 * never POST one message twice and another node takes over when the
 * holder dies. *epoch starts at 0 and is kept by the caller per identity.
 */
int veil_gwdb_claim_callback(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN],
                             uint64_t *epoch);
int veil_gwdb_list(struct veil_gwdb *db, uint8_t (*ids)[VEIL_ID_LEN], size_t max, size_t *n);

/* A new random secret of VEIL_GW_SECRET_LEN characters, NUL-terminated. */
void veil_gw_secret_new(char out[static VEIL_GW_SECRET_LEN + 1]);

#endif
