/*
 * Internal to lib/client: the sealed records of the profile database
 * (vault.c), used by profile.c, contacts.c, group.c and vault_io.c.
 */
#ifndef VEIL_VAULT_INT_H
#define VEIL_VAULT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "veil/client.h"
#include "veil/vault.h"

/*
 * Kinds of record. A record's row is found by a keyed hash of its kind and
 * natural key; the kind is also authenticated with the record, so a row
 * cannot be passed off as another kind's.
 */
enum veil_rec_kind {
	VEIL_REC_CONTACT = 1, /* key: ID; contact */
	VEIL_REC_NAME = 2,    /* key: ID; the local name */
	VEIL_REC_LEVEL = 3,   /* key: ID; verification level */
	VEIL_REC_LINK = 4,    /* key: link kind (u8); a pending e-mail/phone link */
	VEIL_REC_GROUP = 5,   /* key: creator || gid; the group with its members */
	VEIL_REC_RESYNC = 6,  /* key: creator || gid || peer; a resync mark */
	VEIL_REC_MD = 7,      /* key: none; the device group (what md.json held) */
	VEIL_REC_NONCE = 8,   /* key: nonce; no value (the replay store) */
	VEIL_REC_MSG = 9,     /* key: dir || peer || msg_id; a message (table msg) */
	VEIL_REC_PEER = 10,   /* key: peer; the hash that groups a peer's messages */
	VEIL_REC_SELF = 11,   /* key: none; our own nickname (profile.json holds "") */
	VEIL_REC_BACKUP = 12, /* key: none; the backup settings and key (JSON, backup_net.c) */
	VEIL_REC_PREFS = 13,  /* key: none; the user's settings (sync.c) */
	VEIL_REC_NHASH = 14,  /* key: hashed nonce; scope || hash (the replay store) */
};

#define VEIL_REC_HASH_LEN 16
/* Largest plaintext record (a message with the longest body and its header). */
#define VEIL_REC_MAX (VEIL_LOG_BODY_MAX + 64)
/* Records are padded to a multiple of this, so that lengths say little. */
#define VEIL_REC_PAD 64

/* The store's keys, in sodium_malloc memory (p->vault). */
struct veil_vault_keys {
	uint8_t store[32]; /* the random store key */
	uint8_t enc[32];   /* XChaCha20-Poly1305 key of the records */
	uint8_t hash[32];  /* BLAKE2b key of the row hashes */
	int level;         /* enum veil_kdf_level of the wrap */
	void *stmt[16];    /* prepared statements kept for the life of the connection */
};

/* The statements veil_vault_prep keeps. */
enum veil_vault_stmt {
	VEIL_ST_REC_GET,
	VEIL_ST_REC_PUT,
	VEIL_ST_REC_DEL,
	VEIL_ST_REC_MARK,
	VEIL_ST_REC_MARKED,
	VEIL_ST_MSG_FIND,
	VEIL_ST_MSG_INSERT,
	VEIL_ST_MSG_UPDATE,
};

/*
 * A prepared statement of p's connection, prepared once (sql must always be
 * the same for one which) and reset with its bindings cleared by
 * veil_vault_done. veil_vault_finalize drops them all (before the
 * connection changes journal mode or closes).
 */
struct sqlite3_stmt;
int veil_vault_prep(struct veil_profile *p, int which, const char *sql,
                    struct sqlite3_stmt **st) VEIL_WUR;
void veil_vault_done(struct sqlite3_stmt *st);
void veil_vault_finalize(struct veil_profile *p);

void veil_vault_hash(const struct veil_profile *p, int kind, const void *key, size_t n,
                     uint8_t h[static VEIL_REC_HASH_LEN]);
/* Seals plain (n <= VEIL_REC_MAX) for row h of kind into out (nonce || ciphertext). */
int veil_vault_seal(const struct veil_profile *p, int kind, const uint8_t h[VEIL_REC_HASH_LEN],
                    const uint8_t *plain, size_t n, struct veil_buf *out) VEIL_WUR;
/* Opens a sealed record into out (a secret buffer); VEIL_ECORRUPT if it does not open. */
int veil_vault_unseal(const struct veil_profile *p, int kind, const uint8_t h[VEIL_REC_HASH_LEN],
                      const uint8_t *ct, size_t n, struct veil_buf *out) VEIL_WUR;

/* Records of table rec: put replaces, get gives VEIL_ENOTFOUND, del VEIL_ENOTFOUND if none. */
int veil_rec_put(struct veil_profile *p, int kind, const void *key, size_t klen, const uint8_t *val,
                 size_t vlen) VEIL_WUR;
int veil_rec_get(struct veil_profile *p, int kind, const void *key, size_t klen,
                 struct veil_buf *out) VEIL_WUR;
int veil_rec_del(struct veil_profile *p, int kind, const void *key, size_t klen) VEIL_WUR;
/* Calls fn with every record of kind (in no particular order); fn's non-zero return stops. */
int veil_rec_scan(struct veil_profile *p, int kind,
                  int (*fn)(const uint8_t *v, size_t n, void *ctx), void *ctx) VEIL_WUR;
/* Adds a value-less record; VEIL_EEXIST if it is there (the nonce store). */
int veil_rec_mark(struct veil_profile *p, int kind, const void *key, size_t klen) VEIL_WUR;
int veil_rec_marked(struct veil_profile *p, int kind, const void *key, size_t klen) VEIL_WUR;

/*
 * The database: create makes veil.db at path (which must not hold one) with
 * the schema, a new store key and its wrap (level, pass); unlock opens
 * home's veil.db, asks the passphrase source if it has one and unwraps the
 * store key and the secret key into p. Both leave p->db open.
 */
int veil_vault_create(struct veil_profile *p, const char *path, int level, const uint8_t *pass,
                      size_t len) VEIL_WUR;
int veil_vault_unlock(struct veil_profile *p) VEIL_WUR;
void veil_vault_release(struct veil_profile *p);
/* The passphrase source (veil_vault_set_passphrase_fn, else the file). */
int veil_vault_get_pass(uint8_t *buf, size_t cap, size_t *len, int why) VEIL_WUR;
int veil_vault_new_level(void);
/* The Argon2id opslimit and memlimit of a level other than none; VEIL_EINVAL for none. */
int veil_kdf_params(int level, uint64_t *ops, uint64_t *mem) VEIL_WUR;

/* Writes home/name atomically (temporary file, fsync, rename, directory fsync). */
int veil_profile_write_atomic(const char *home, const char *name, const void *data, size_t len,
                              unsigned mode) VEIL_WUR;

/* Message records (profile.c): encode an entry, decode one (body points into v). */
int veil_log_encode(const struct veil_log_entry *e, struct veil_buf *out) VEIL_WUR;
int veil_log_decode(const uint8_t *v, size_t n, struct veil_log_entry *e) VEIL_WUR;
/*
 * Inserts an entry inside the caller's transaction; VEIL_EEXIST if a
 * message of that direction, peer and ID is there (replace_raw: unless that
 * one is a type-0 raw payload and e is not, which e then replaces).
 */
int veil_log_put_locked(struct veil_profile *p, const struct veil_log_entry *e,
                        int replace_raw) VEIL_WUR;

#endif
