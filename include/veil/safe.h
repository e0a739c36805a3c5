/*
 * Threema Safe backups: the encrypted container (lib/e2e/safe_fmt.c) and the
 * backup of a profile built on it (lib/client/backup.c).
 *
 * Container, as the specification: nonce(24) || secretbox(key, gzip(JSON)),
 * with key from veil_safe_derive (veil/e2e.h). Beyond the specification the
 * whole container is padded to a size bucket (veil_safe_bucket): the gzip
 * member carries the padding in its header's comment field (FCOMMENT, RFC
 * 1952), which every gzip reader skips, so a padded backup is still a
 * valid Threema Safe backup and an unpadded one restores here.
 */
#ifndef VEIL_SAFE_H
#define VEIL_SAFE_H

#include <stddef.h>
#include <stdint.h>

#include "veil/client.h"
#include "veil/crypto.h"
#include "veil/util.h"

#define VEIL_SAFE_ID_LEN 32  /* the backup ID */
#define VEIL_SAFE_KEY_LEN 32 /* the secretbox key */
#define VEIL_SAFE_BUCKET_MIN 4096u
/* The largest container written or read, and the largest JSON it may inflate to. */
#define VEIL_SAFE_BLOB_MAX (8u * 1024u * 1024u)
#define VEIL_SAFE_JSON_MAX (16u * 1024u * 1024u)
/* Bytes the container adds to the gzip data: nonce and MAC. */
#define VEIL_SAFE_OVERHEAD (VEIL_NONCE_LEN + VEIL_MAC_LEN)

/*
 * The padded size of a container of n bytes: the next power of two, at
 * least VEIL_SAFE_BUCKET_MIN. 0 if that would exceed VEIL_SAFE_BLOB_MAX.
 */
size_t veil_safe_bucket(size_t n);

/*
 * Compresses json (gzip), pads it so that the container fills its bucket
 * (pad non-zero; pad 0 gives the specification's unpadded form) and
 * encrypts it under key with a random nonce. out (initialised by the
 * caller, any content replaced) receives the container. VEIL_ELIMIT if
 * json exceeds VEIL_SAFE_JSON_MAX or the container VEIL_SAFE_BLOB_MAX.
 */
int veil_safe_seal(struct veil_buf *out, const uint8_t key[static VEIL_SAFE_KEY_LEN],
                   const uint8_t *json, size_t len, int pad) VEIL_WUR;
/* As veil_safe_seal with a given nonce (known-answer tests). */
int veil_safe_seal_nonce(struct veil_buf *out, const uint8_t key[static VEIL_SAFE_KEY_LEN],
                         const uint8_t nonce[static VEIL_NONCE_LEN], const uint8_t *json,
                         size_t len, int pad) VEIL_WUR;
/*
 * Decrypts and inflates a container into json (initialised by the caller
 * with a secret buffer of any maximum; content replaced). VEIL_ETRUNC if it
 * is shorter than nonce and MAC, VEIL_ECRYPTO if the MAC is wrong (wrong
 * password or tampered), VEIL_EPROTO if the plaintext is not one whole
 * gzip member (trailing bytes included), VEIL_ELIMIT over the maxima.
 */
int veil_safe_open(struct veil_buf *json, const uint8_t key[static VEIL_SAFE_KEY_LEN],
                   const uint8_t *blob, size_t len) VEIL_WUR;
/* Inflates one whole gzip member (the step of veil_safe_open after decryption). */
int veil_safe_gunzip(struct veil_buf *out, const uint8_t *gz, size_t len) VEIL_WUR;

/* ---------------------------------------------------------------------- */
/* The backup of a profile (lib/client/backup.c)                          */
/* ---------------------------------------------------------------------- */

#define VEIL_BACKUP_MAX_CONTACTS 20000
#define VEIL_BACKUP_MAX_GROUPS 2000
#define VEIL_BACKUP_JSON_DEPTH 8
#define VEIL_BACKUP_DEVICE "veil/0.1"

/* A contact as the backup holds it. level: enum veil_level (1..3). */
struct veil_backup_contact {
	uint8_t id[VEIL_ID_LEN];
	uint8_t pk[VEIL_KEY_LEN];
	int has_pk;
	int level;
	uint64_t created_ms;
	char nickname[VEIL_PROFILE_NICK_MAX + 1];
	char name[VEIL_PROFILE_NICK_MAX + 1]; /* the local name ("" if none) */
};

/*
 * A group as the backup lists it: g.members holds the listed members other
 * than the creator; whether this profile is in the group (left) is settled
 * by veil_backup_apply, which knows the profile's own ID.
 */
struct veil_backup_group {
	struct veil_group g;
	int deleted;
	int creator_listed;
};

/* A parsed backup; sk is in sodium_malloc memory, wiped by veil_backup_free. */
struct veil_backup {
	uint8_t *sk;
	char nickname[VEIL_PROFILE_NICK_MAX + 1];
	size_t n_contacts, n_groups;
	struct veil_backup_contact *contacts;
	struct veil_backup_group *groups;
};

/*
 * Builds the backup JSON of p (schema of the specification, version 1):
 * the secret key and nickname, every contact with its key, verification
 * level (0..2 for red..green), nickname and local name (as firstname), and
 * every group with its creator, name and members (a group this profile
 * left lists no own ID; one it disbanded as creator is deleted). json is
 * initialised by the caller as a secret buffer; its content is replaced.
 */
int veil_backup_export(struct veil_profile *p, struct veil_buf *json) VEIL_WUR;
/*
 * Parses a backup JSON (bounded: depth, counts, string lengths; unknown
 * fields ignored). Contacts without a public key keep has_pk 0. VEIL_EPROTO
 * for anything that is not a version-1 backup with a valid private key,
 * VEIL_ELIMIT over the maxima. *out is freed with veil_backup_free.
 */
int veil_backup_parse(const uint8_t *json, size_t len, struct veil_backup **out) VEIL_WUR;
void veil_backup_free(struct veil_backup *b);
/*
 * Stores b's contacts (with keys), levels, nicknames, local names and
 * groups in p. A contact already known with another key is VEIL_EKEY.
 */
int veil_backup_apply(struct veil_profile *p, const struct veil_backup *b) VEIL_WUR;
/*
 * Restores an identity into an empty home: fetches the provisioning of
 * o->server_url (as veil_msgr_init), checks that the directory knows id with
 * the public key of b's secret key, writes the profile and applies b
 * (contacts without a key are looked up in the directory). On success m is
 * open as with veil_msgr_open; errtext says why otherwise.
 */
int veil_msgr_restore(struct veil_msgr *m, const char *home, const struct veil_msgr_init_opts *o,
                      const uint8_t id[static VEIL_ID_LEN], const struct veil_backup *b) VEIL_WUR;

/* ---------------------------------------------------------------------- */
/* Where backups go (lib/client/backup_net.c)                             */
/* ---------------------------------------------------------------------- */

enum veil_backup_kind { VEIL_BACKUP_SAFE = 1, VEIL_BACKUP_WEBDAV = 2 };
#define VEIL_BACKUP_CRED_MAX 256
#define VEIL_BACKUP_TIMEOUT_S 60
/* Re-upload at most this often, and even unchanged after half the retention. */
#define VEIL_BACKUP_MIN_INTERVAL_MS (23ull * 3600 * 1000)
#define VEIL_BACKUP_DEFAULT_RETENTION_DAYS 180

/*
 * A backup target: a Safe server (the specification's API: GET config,
 * PUT/GET/DELETE backups/<hex backup ID>) or a WebDAV collection (the same
 * paths; an upload is a PUT to a temporary name and a MOVE onto the final
 * one, so an interrupted upload never replaces the previous backup). user
 * and password give HTTP basic auth (both empty: none). cacert: a PEM file
 * for https, "" for the system store.
 */
struct veil_backup_target {
	char url[VEIL_PROFILE_URL_MAX]; /* ends with '/' */
	char user[VEIL_BACKUP_CRED_MAX + 1];
	char password[VEIL_BACKUP_CRED_MAX + 1];
	char cacert[VEIL_PROFILE_PATH_MAX + 16];
	int kind;                /* enum veil_backup_kind, 0 until probed */
	uint64_t max_bytes;      /* from the server's config, 0 if none */
	uint32_t retention_days; /* from the server's config, 0 if none */
};

/*
 * Sets t->url from url (http:// or https://, '/' appended) and asks the
 * server what it is: an OPTIONS answer with a DAV header makes it WebDAV
 * (its config file, if any, is read too), else GET config must answer the
 * Safe server's JSON. errtext gets one sentence on failure.
 */
int veil_backup_probe(struct veil_backup_target *t, const char *url, char *errtext,
                      size_t cap) VEIL_WUR;
int veil_backup_upload(const struct veil_backup_target *t,
                       const uint8_t backup_id[static VEIL_SAFE_ID_LEN], const uint8_t *blob,
                       size_t len, char *errtext, size_t cap) VEIL_WUR;
/* VEIL_ENOTFOUND if there is no backup under backup_id. */
int veil_backup_download(const struct veil_backup_target *t,
                         const uint8_t backup_id[static VEIL_SAFE_ID_LEN], struct veil_buf *out,
                         char *errtext, size_t cap) VEIL_WUR;

/*
 * The backup settings of a profile, a sealed record of its encrypted store
 * (they hold what opens the backup, which holds the secret key): the target
 * with its WebDAV credentials, the backup ID and key derived from the backup
 * password (never the password itself), and the state of the last upload.
 */
struct veil_backup_cfg {
	struct veil_backup_target t;
	uint8_t backup_id[VEIL_SAFE_ID_LEN];
	uint8_t key[VEIL_SAFE_KEY_LEN];
	uint64_t last_ok_ms, last_try_ms, last_size;
	char last_hash[VEIL_HEX_LEN(32)]; /* SHA-256 of the last JSON uploaded */
	char last_error[256];
};
/* VEIL_ENOTFOUND if the profile has no backup settings. */
int veil_backup_cfg_load(struct veil_profile *p, struct veil_backup_cfg *c) VEIL_WUR;
int veil_backup_cfg_save(struct veil_profile *p, const struct veil_backup_cfg *c) VEIL_WUR;
/* Wipes the key material of c. */
void veil_backup_cfg_wipe(struct veil_backup_cfg *c);
/*
 * When the next automatic upload is due (ms since the epoch): 23 hours
 * after the last success; 0 if never uploaded.
 */
uint64_t veil_backup_next_ms(const struct veil_backup_cfg *c);
/*
 * Makes a backup of p and uploads it, padded, unless (without force) it was
 * uploaded less than VEIL_BACKUP_MIN_INTERVAL_MS ago, or its JSON is
 * unchanged and younger than half the retention time: then 1 (nothing
 * done). Records the outcome in the backup settings. 0 after an upload.
 */
int veil_backup_run(struct veil_profile *p, int force, char *errtext, size_t cap) VEIL_WUR;

#endif
