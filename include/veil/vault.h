/*
 * The encrypted local store of a client profile.
 *
 * Every record of veil.db (contacts, their names and levels, groups and
 * their members, the device group, the message log) is sealed with
 * XChaCha20-Poly1305 under a subkey of a random 32-byte store key; rows are
 * found by keyed BLAKE2b hashes of their natural keys (a contact's ID, a
 * message's direction, peer and ID), never by the keys themselves. The store
 * key and the identity's secret key are wrapped together under a key
 * encryption key (KEK): Argon2id of the passphrase (crypto_pwhash, with its
 * parameters and salt stored beside the wrap), or, for a profile without
 * passphrase, 32 random bytes in the file "store.key" (mode 0600). Both go
 * through the same unwrap. See docs/PROTOCOL.md, "The client's local store".
 */
#ifndef VEIL_VAULT_H
#define VEIL_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "veil/util.h"

struct veil_profile;

/* The cost of deriving the KEK from a passphrase (crypto_pwhash's levels). */
enum veil_kdf_level {
	VEIL_KDF_NONE = 0,    /* no passphrase: the KEK lies in store.key */
	VEIL_KDF_MIN,         /* 1 pass over 1 MiB: tests and throwaway profiles only */
	VEIL_KDF_INTERACTIVE, /* libsodium's OPSLIMIT/MEMLIMIT_INTERACTIVE: 64 MiB */
	VEIL_KDF_MODERATE,    /* _MODERATE: 256 MiB (the default of veil init) */
	VEIL_KDF_SENSITIVE,   /* _SENSITIVE: 1 GiB */
};

#define VEIL_PASSPHRASE_MAX 1024 /* bytes */

/* Why the library asks for a passphrase. */
enum veil_pass_why {
	VEIL_PASS_OPEN = 0, /* to open a profile that has one */
	VEIL_PASS_NEW = 1,  /* a new one (a caller on a terminal asks twice) */
};

/*
 * Sets the process's passphrase source: fn writes at most cap bytes to buf
 * and their count to *len, or returns a negative veil_err (VEIL_EAUTH: none
 * given). Without a source (fn NULL, the default) the library reads the
 * file named by $VEIL_PASSPHRASE_FILE (its first line), else fails with
 * VEIL_ELOCKED.
 */
void veil_vault_set_passphrase_fn(int (*fn)(uint8_t *buf, size_t cap, size_t *len, int why,
                                            void *ctx),
                                  void *ctx);
/*
 * The KDF level profiles created from now on in this process get
 * (veil_profile_create). VEIL_KDF_NONE (the default) makes profiles without
 * passphrase; any other level asks the source for a new passphrase.
 */
void veil_vault_set_new_level(int level);
/* "none", "min", "interactive", "moderate", "sensitive"; -1 for another name. */
int veil_kdf_level_parse(const char *name);
const char *veil_kdf_level_name(int level);

/*
 * Reads a passphrase from the file at path: its first line (at most cap
 * bytes, the newline dropped; it must not be empty). The default source
 * reads $VEIL_PASSPHRASE_FILE this way. VEIL_ENOTFOUND if path is NULL or
 * empty, VEIL_EIO if the file cannot be read, VEIL_EINVAL if it is empty.
 */
int veil_vault_passphrase_file(const char *path, uint8_t *buf, size_t cap, size_t *len) VEIL_WUR;

/*
 * Gives an open profile a new passphrase (pass, len, with level), or takes
 * it away (level VEIL_KDF_NONE, pass ignored). Only the wrap of the keys
 * changes, in one transaction: the data stays as it is and a daemon that has
 * the profile open keeps working.
 */
int veil_profile_passphrase_set(struct veil_profile *p, const uint8_t *pass, size_t len,
                                int level) VEIL_WUR;
/* The level of an open profile (VEIL_KDF_NONE if it has no passphrase). */
int veil_profile_kdf_level(const struct veil_profile *p);

/*
 * 1 if home holds a profile of the first, plaintext format (a "key" file
 * and a database without a wrapped key), 0 if not.
 */
int veil_profile_is_plaintext(const char *home);

/* Steps of a conversion that veil_profile_migrate reports to its progress function. */
enum veil_migrate_step {
	VEIL_MIGRATE_COPY = 0,    /* n records copied into the new database so far */
	VEIL_MIGRATE_RENAMED = 1, /* the new database replaced the old; cleanup follows */
};
/*
 * Converts the plaintext profile in home into the encrypted format with
 * pass and level (VEIL_KDF_NONE: without passphrase). Builds the new
 * database beside the old one ("veil.db.new"), syncs it and renames it over
 * veil.db, then removes the plaintext key and md.json: a crash at any point
 * leaves either the old profile or the new one. progress (may be NULL) is
 * called as it goes. VEIL_EINVAL if home holds no plaintext profile,
 * VEIL_EAGAIN if the old database is in use (its write-ahead log is not
 * empty after closing it).
 */
int veil_profile_migrate(const char *home, const uint8_t *pass, size_t len, int level,
                         void (*progress)(int step, uint64_t n, void *ctx), void *ctx) VEIL_WUR;

/*
 * The message history as a file: a header (magic, Argon2id parameters and
 * salt of the export passphrase) and the messages as a libsodium
 * secretstream, one message per chunk, the last chunk (TAG_FINAL) carrying
 * their count. Memory stays constant whatever the size.
 *
 * export: writes every logged message to fd; *count gets their number.
 * import: reads such a file from fd with the passphrase and adds the
 * messages the profile does not have yet, all in one transaction: a
 * tampered, truncated or over-long file (VEIL_ECRYPTO, VEIL_ETRUNC,
 * VEIL_EPROTO), or a wrong passphrase (VEIL_EPASS), adds nothing.
 * *added and *skipped count the new and the already known messages.
 */
int veil_profile_export(struct veil_profile *p, int fd, const uint8_t *pass, size_t len, int level,
                        uint64_t *count) VEIL_WUR;
int veil_profile_import(struct veil_profile *p, int fd, const uint8_t *pass, size_t len,
                        uint64_t *added, uint64_t *skipped) VEIL_WUR;

#define VEIL_EXPORT_MAGIC "VEILHIS1"

#endif
