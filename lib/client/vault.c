/*
 * The encrypted store of a profile: the wrap of the store key and the
 * identity's secret key, and the sealed records of veil.db. Why columns
 * sealed with libsodium rather than SQLCipher: docs/PROTOCOL.md, "The
 * client's local store", with the figures of bench/vault_bench.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "vault_int.h"

#define STORE_KEY_FILE "store.key"
#define DB_FILE "veil.db"
#define KDF_BLOB_LEN (1 + 8 + 8 + crypto_pwhash_SALTBYTES)
#define WRAP_PLAIN_LEN (32 + VEIL_KEY_LEN)
#define WRAP_LEN                                                                                   \
	(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + WRAP_PLAIN_LEN +                           \
	 crypto_aead_xchacha20poly1305_ietf_ABYTES)
/* Sanity bounds on the stored KDF parameters (a sensitive level is 4 and 1 GiB). */
#define KDF_OPS_MAX 64
#define KDF_MEM_MAX (4ull << 30)

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS vault_meta(k TEXT PRIMARY KEY, v BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS rec(kind INTEGER NOT NULL, h BLOB NOT NULL, v BLOB NOT NULL,"
    " PRIMARY KEY(kind, h)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS msg(seq INTEGER PRIMARY KEY, k BLOB NOT NULL UNIQUE,"
    " ph BLOB NOT NULL, v BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS msg_ph ON msg(ph, seq);";

static int (*pass_fn)(uint8_t *buf, size_t cap, size_t *len, int why, void *ctx);
static void *pass_ctx;
static int new_level = VEIL_KDF_NONE;

static const struct {
	const char *name;
	unsigned long long ops;
	size_t mem;
} levels[] = {
    [VEIL_KDF_NONE] = {"none", 0, 0},
    [VEIL_KDF_MIN] = {"min", 1, 1u << 20},
    [VEIL_KDF_INTERACTIVE] = {"interactive", crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE},
    [VEIL_KDF_MODERATE] = {"moderate", crypto_pwhash_OPSLIMIT_MODERATE,
                           crypto_pwhash_MEMLIMIT_MODERATE},
    [VEIL_KDF_SENSITIVE] = {"sensitive", crypto_pwhash_OPSLIMIT_SENSITIVE,
                            crypto_pwhash_MEMLIMIT_SENSITIVE},
};

void veil_vault_set_passphrase_fn(int (*fn)(uint8_t *buf, size_t cap, size_t *len, int why,
                                            void *ctx),
                                  void *ctx)
{
	pass_fn = fn;
	pass_ctx = ctx;
}

void veil_vault_set_new_level(int level)
{
	if (level >= VEIL_KDF_NONE && level <= VEIL_KDF_SENSITIVE)
		new_level = level;
}

int veil_vault_new_level(void)
{
	return new_level;
}

int veil_kdf_level_parse(const char *name)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(levels); i++)
		if (strcmp(levels[i].name, name) == 0)
			return (int)i;
	return -1;
}

int veil_kdf_params(int level, uint64_t *ops, uint64_t *mem)
{
	if (level <= VEIL_KDF_NONE || (size_t)level >= VEIL_ARRAY_LEN(levels))
		return VEIL_EINVAL;
	*ops = levels[level].ops;
	*mem = levels[level].mem;
	return 0;
}

const char *veil_kdf_level_name(int level)
{
	if (level < 0 || (size_t)level >= VEIL_ARRAY_LEN(levels))
		return "unknown";
	return levels[level].name;
}

int veil_vault_passphrase_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	int rc = 0;
	*len = 0;
	if (path == NULL || path[0] == 0)
		return VEIL_ENOTFOUND;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return VEIL_EIO;
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = VEIL_EIO;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (rc != 0) {
		sodium_memzero(buf, cap);
		return rc;
	}
	/* The first line: a file written with echo or a text editor ends with a newline. */
	size_t line = 0;
	while (line < n && buf[line] != '\n')
		line++;
	if (line > 0 && buf[line - 1] == '\r')
		line--;
	sodium_memzero(buf + line, cap - line);
	if (line == 0)
		return VEIL_EINVAL;
	*len = line;
	return 0;
}

int veil_vault_get_pass(uint8_t *buf, size_t cap, size_t *len, int why)
{
	int rc;
	*len = 0;
	if (pass_fn != NULL)
		rc = pass_fn(buf, cap, len, why, pass_ctx);
	else if ((rc = veil_vault_passphrase_file(getenv("VEIL_PASSPHRASE_FILE"), buf, cap, len)) ==
	         VEIL_ENOTFOUND)
		rc = VEIL_ELOCKED;
	if (rc == 0 && (*len == 0 || *len > cap))
		rc = VEIL_EINVAL;
	if (rc != 0)
		sodium_memzero(buf, cap);
	return rc;
}

/* --- records --- */

static struct veil_vault_keys *keys_of(const struct veil_profile *p)
{
	return p->vault;
}

int veil_vault_prep(struct veil_profile *p, int which, const char *sql, sqlite3_stmt **st)
{
	struct veil_vault_keys *k = keys_of(p);
	*st = NULL;
	if (p->db == NULL || k == NULL || which < 0 || (size_t)which >= VEIL_ARRAY_LEN(k->stmt))
		return VEIL_EINVAL;
	if (k->stmt[which] == NULL) {
		sqlite3_stmt *s = NULL;
		if (sqlite3_prepare_v3(p->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
		    SQLITE_OK) {
			sqlite3_finalize(s);
			return VEIL_EIO;
		}
		k->stmt[which] = s;
	}
	*st = k->stmt[which];
	return 0;
}

void veil_vault_done(sqlite3_stmt *st)
{
	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

void veil_vault_finalize(struct veil_profile *p)
{
	struct veil_vault_keys *k = keys_of(p);
	if (k == NULL)
		return;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(k->stmt); i++) {
		sqlite3_finalize(k->stmt[i]);
		k->stmt[i] = NULL;
	}
}

void veil_vault_hash(const struct veil_profile *p, int kind, const void *key, size_t n,
                     uint8_t h[static VEIL_REC_HASH_LEN])
{
	crypto_generichash_state st;
	uint8_t k = (uint8_t)kind;
	crypto_generichash_init(&st, keys_of(p)->hash, 32, VEIL_REC_HASH_LEN);
	crypto_generichash_update(&st, &k, 1);
	if (n > 0)
		crypto_generichash_update(&st, key, n);
	crypto_generichash_final(&st, h, VEIL_REC_HASH_LEN);
}

static void rec_ad(uint8_t ad[1 + VEIL_REC_HASH_LEN], int kind, const uint8_t *h)
{
	ad[0] = (uint8_t)kind;
	memcpy(ad + 1, h, VEIL_REC_HASH_LEN);
}

int veil_vault_seal(const struct veil_profile *p, int kind, const uint8_t h[VEIL_REC_HASH_LEN],
                    const uint8_t *plain, size_t n, struct veil_buf *out)
{
	const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	uint8_t ad[1 + VEIL_REC_HASH_LEN];
	size_t padded = 0;
	unsigned long long clen = 0;
	int rc;
	if (n > VEIL_REC_MAX)
		return VEIL_ELIMIT;
	veil_buf_reset(out);
	size_t total = nb + n + VEIL_REC_PAD + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	if ((rc = veil_buf_reserve(out, total)) != 0)
		return rc;
	uint8_t *nonce = out->p, *body = out->p + nb;
	veil_random(nonce, nb);
	/* Pad in place after the nonce, then encrypt in place. */
	if (n > 0)
		memcpy(body, plain, n);
	if (sodium_pad(&padded, body, n, VEIL_REC_PAD, n + VEIL_REC_PAD) != 0)
		return VEIL_EINVAL;
	rec_ad(ad, kind, h);
	crypto_aead_xchacha20poly1305_ietf_encrypt(body, &clen, body, padded, ad, sizeof ad, NULL,
	                                           nonce, keys_of(p)->enc);
	out->len = nb + (size_t)clen;
	return 0;
}

int veil_vault_unseal(const struct veil_profile *p, int kind, const uint8_t h[VEIL_REC_HASH_LEN],
                      const uint8_t *ct, size_t n, struct veil_buf *out)
{
	const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	const size_t ab = crypto_aead_xchacha20poly1305_ietf_ABYTES;
	uint8_t ad[1 + VEIL_REC_HASH_LEN];
	unsigned long long plen = 0;
	size_t unpadded = 0;
	int rc;
	veil_buf_reset(out);
	if (n < nb + ab || n - nb - ab > VEIL_REC_MAX + VEIL_REC_PAD)
		return VEIL_ECORRUPT;
	if ((rc = veil_buf_reserve(out, n - nb - ab)) != 0)
		return rc;
	rec_ad(ad, kind, h);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out->p, &plen, NULL, ct + nb, n - nb, ad,
	                                               sizeof ad, ct, keys_of(p)->enc) != 0 ||
	    sodium_unpad(&unpadded, out->p, (size_t)plen, VEIL_REC_PAD) != 0)
		return VEIL_ECORRUPT;
	out->len = unpadded;
	return 0;
}

static int prep(struct veil_profile *p, sqlite3_stmt **st, const char *sql)
{
	*st = NULL;
	if (p->db == NULL || p->vault == NULL)
		return VEIL_EINVAL;
	return sqlite3_prepare_v2(p->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

int veil_rec_put(struct veil_profile *p, int kind, const void *key, size_t klen, const uint8_t *val,
                 size_t vlen)
{
	uint8_t h[VEIL_REC_HASH_LEN];
	struct veil_buf ct;
	sqlite3_stmt *st;
	int rc = veil_vault_prep(p, VEIL_ST_REC_PUT,
	                         "INSERT OR REPLACE INTO rec(kind, h, v) VALUES(?1, ?2, ?3)", &st);
	if (rc != 0)
		return rc;
	veil_buf_init(&ct, VEIL_REC_MAX + 256);
	veil_vault_hash(p, kind, key, klen, h);
	if ((rc = veil_vault_seal(p, kind, h, val, vlen, &ct)) == 0) {
		sqlite3_bind_int(st, 1, kind);
		sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, ct.p, (int)ct.len, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : VEIL_EIO;
	}
	veil_vault_done(st);
	veil_buf_release(&ct);
	return rc;
}

int veil_rec_get(struct veil_profile *p, int kind, const void *key, size_t klen,
                 struct veil_buf *out)
{
	uint8_t h[VEIL_REC_HASH_LEN];
	sqlite3_stmt *st;
	int rc = veil_vault_prep(p, VEIL_ST_REC_GET, "SELECT v FROM rec WHERE kind = ?1 AND h = ?2",
	                         &st);
	if (rc != 0)
		return rc;
	veil_vault_hash(p, kind, key, klen, h);
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		rc = veil_vault_unseal(p, kind, h, sqlite3_column_blob(st, 0),
		                       (size_t)sqlite3_column_bytes(st, 0), out);
	else
		rc = s == SQLITE_DONE ? VEIL_ENOTFOUND : VEIL_EIO;
	veil_vault_done(st);
	return rc;
}

int veil_rec_del(struct veil_profile *p, int kind, const void *key, size_t klen)
{
	uint8_t h[VEIL_REC_HASH_LEN];
	sqlite3_stmt *st;
	int rc =
	    veil_vault_prep(p, VEIL_ST_REC_DEL, "DELETE FROM rec WHERE kind = ?1 AND h = ?2", &st);
	if (rc != 0)
		return rc;
	veil_vault_hash(p, kind, key, klen, h);
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = VEIL_EIO;
	else if (sqlite3_changes(p->db) == 0)
		rc = VEIL_ENOTFOUND;
	veil_vault_done(st);
	return rc;
}

int veil_rec_scan(struct veil_profile *p, int kind,
                  int (*fn)(const uint8_t *v, size_t n, void *ctx), void *ctx)
{
	struct veil_buf pt;
	sqlite3_stmt *st;
	int rc = prep(p, &st, "SELECT h, v FROM rec WHERE kind = ?1");
	if (rc != 0)
		return rc;
	veil_buf_init_secret(&pt, VEIL_REC_MAX + VEIL_REC_PAD);
	sqlite3_bind_int(st, 1, kind);
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != VEIL_REC_HASH_LEN) {
			rc = VEIL_ECORRUPT;
			goto out;
		}
		if ((rc = veil_vault_unseal(p, kind, sqlite3_column_blob(st, 0),
		                            sqlite3_column_blob(st, 1),
		                            (size_t)sqlite3_column_bytes(st, 1), &pt)) != 0 ||
		    (rc = fn(pt.p, pt.len, ctx)) != 0)
			goto out;
	}
	if (s != SQLITE_DONE)
		rc = VEIL_EIO;
out:
	sqlite3_finalize(st);
	veil_buf_release(&pt);
	return rc;
}

int veil_rec_mark(struct veil_profile *p, int kind, const void *key, size_t klen)
{
	uint8_t h[VEIL_REC_HASH_LEN];
	sqlite3_stmt *st;
	int rc = veil_vault_prep(p, VEIL_ST_REC_MARK,
	                         "INSERT INTO rec(kind, h, v) VALUES(?1, ?2, x'')", &st);
	if (rc != 0)
		return rc;
	veil_vault_hash(p, kind, key, klen, h);
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_STATIC);
	int s = sqlite3_step(st);
	rc = s == SQLITE_DONE ? 0 : s == SQLITE_CONSTRAINT ? VEIL_EEXIST : VEIL_EIO;
	veil_vault_done(st);
	return rc;
}

int veil_rec_marked(struct veil_profile *p, int kind, const void *key, size_t klen)
{
	uint8_t h[VEIL_REC_HASH_LEN];
	sqlite3_stmt *st;
	int rc = veil_vault_prep(p, VEIL_ST_REC_MARKED,
	                         "SELECT 1 FROM rec WHERE kind = ?1 AND h = ?2", &st);
	if (rc != 0)
		return rc;
	veil_vault_hash(p, kind, key, klen, h);
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_blob(st, 2, h, sizeof h, SQLITE_STATIC);
	int s = sqlite3_step(st);
	rc = s == SQLITE_ROW ? VEIL_EEXIST : s == SQLITE_DONE ? 0 : VEIL_EIO;
	veil_vault_done(st);
	return rc;
}

/* --- the wrap of the keys --- */

static int path_of(char *out, size_t cap, const char *home, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", home, name);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

/* Reads store.key (32 bytes, private to its owner). */
static int read_store_key(const char *home, uint8_t kek[static 32])
{
	char path[VEIL_PROFILE_PATH_MAX + 32];
	struct stat st;
	int rc = path_of(path, sizeof path, home, STORE_KEY_FILE);
	if (rc != 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? VEIL_ECORRUPT : VEIL_EIO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 ||
	    st.st_size != 32)
		rc = VEIL_EIO;
	else if (read(fd, kek, 32) != 32)
		rc = VEIL_EIO;
	close(fd);
	return rc;
}

static void kdf_blob(uint8_t out[KDF_BLOB_LEN], int level, uint64_t ops, uint64_t mem,
                     const uint8_t salt[crypto_pwhash_SALTBYTES])
{
	out[0] = (uint8_t)level;
	veil_store_u64le(out + 1, ops);
	veil_store_u64le(out + 9, mem);
	memcpy(out + 17, salt, crypto_pwhash_SALTBYTES);
}

/* The KEK of a kdf blob: Argon2id of pass, or store.key for level none. */
static int derive_kek(const char *home, const uint8_t blob[KDF_BLOB_LEN], const uint8_t *pass,
                      size_t len, uint8_t kek[static 32])
{
	int level = blob[0];
	uint64_t ops = veil_load_u64le(blob + 1), mem = veil_load_u64le(blob + 9);
	if (level == VEIL_KDF_NONE)
		return read_store_key(home, kek);
	if (level > VEIL_KDF_SENSITIVE || ops < 1 || ops > KDF_OPS_MAX ||
	    mem < crypto_pwhash_MEMLIMIT_MIN || mem > KDF_MEM_MAX)
		return VEIL_ECORRUPT;
	if (crypto_pwhash(kek, 32, (const char *)pass, len, blob + 17, ops, (size_t)mem,
	                  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return VEIL_ENOMEM;
	return 0;
}

/* Writes a new random store.key (the KEK of a profile without passphrase). */
static int new_store_key(const char *home, uint8_t kek[static 32])
{
	veil_random(kek, 32);
	return veil_profile_write_atomic(home, STORE_KEY_FILE, kek, 32, 0600);
}

/* The row that holds the kdf blob and the wrap, sealed under kek. */
static int wrap_put(struct veil_profile *p, const uint8_t blob[KDF_BLOB_LEN],
                    const uint8_t kek[static 32])
{
	const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	uint8_t row[KDF_BLOB_LEN + WRAP_LEN];
	uint8_t *plain = sodium_malloc(WRAP_PLAIN_LEN);
	sqlite3_stmt *st = NULL;
	int rc;
	if (plain == NULL)
		return VEIL_ENOMEM;
	memcpy(plain, keys_of(p)->store, 32);
	memcpy(plain + 32, p->sk, VEIL_KEY_LEN);
	memcpy(row, blob, KDF_BLOB_LEN);
	uint8_t *nonce = row + KDF_BLOB_LEN;
	veil_random(nonce, nb);
	/* The parameters are the additional data: they cannot be swapped for weaker ones. */
	crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + nb, NULL, plain, WRAP_PLAIN_LEN, blob,
	                                           KDF_BLOB_LEN, NULL, nonce, kek);
	sodium_free(plain);
	if ((rc = prep(p, &st, "INSERT OR REPLACE INTO vault_meta(k, v) VALUES('keys', ?1)")) != 0)
		return rc;
	sqlite3_bind_blob(st, 1, row, sizeof row, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

static void keys_derive(struct veil_vault_keys *k)
{
	static const uint8_t enc_label[] = "veil store: record key";
	static const uint8_t hash_label[] = "veil store: row hash key";
	veil_blake2b_mac(k->enc, k->store, enc_label, sizeof enc_label - 1);
	veil_blake2b_mac(k->hash, k->store, hash_label, sizeof hash_label - 1);
}

static int keys_alloc(struct veil_profile *p)
{
	veil_vault_finalize(p);
	if (p->vault == NULL) {
		p->vault = sodium_malloc(sizeof(struct veil_vault_keys));
		if (p->vault == NULL)
			return VEIL_ENOMEM;
	}
	sodium_memzero(p->vault, sizeof(struct veil_vault_keys));
	return 0;
}

void veil_vault_release(struct veil_profile *p)
{
	veil_vault_finalize(p);
	if (p->vault != NULL)
		sodium_free(p->vault); /* wipes */
	p->vault = NULL;
}

/* Makes a kdf blob and the KEK for level and pass (a new salt, or a new store.key). */
static int kek_new(const char *home, int level, const uint8_t *pass, size_t len,
                   uint8_t blob[KDF_BLOB_LEN], uint8_t kek[static 32])
{
	uint8_t salt[crypto_pwhash_SALTBYTES];
	if (level < VEIL_KDF_NONE || level > VEIL_KDF_SENSITIVE)
		return VEIL_EINVAL;
	veil_random(salt, sizeof salt);
	kdf_blob(blob, level, levels[level].ops, levels[level].mem, salt);
	if (level == VEIL_KDF_NONE)
		return new_store_key(home, kek);
	if (pass == NULL || len == 0 || len > VEIL_PASSPHRASE_MAX)
		return VEIL_EINVAL;
	return derive_kek(home, blob, pass, len, kek);
}

static int db_connect(const char *path, sqlite3 **out)
{
	sqlite3 *db = NULL;
	/* Create the file ourselves so that it is private from the start. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return VEIL_EIO;
	close(fd);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		sqlite3_close_v2(db);
		return VEIL_EIO;
	}
	/* `veil send` and `veil recv` may run at the same time. */
	sqlite3_busy_timeout(db, 10000);
	/* Freed pages are zeroed, so that deleted records leave no trace in the file. */
	if (sqlite3_exec(db, "PRAGMA secure_delete=ON;", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_close_v2(db);
		return VEIL_EIO;
	}
	*out = db;
	return 0;
}

int veil_vault_create(struct veil_profile *p, const char *path, int level, const uint8_t *pass,
                      size_t len)
{
	uint8_t blob[KDF_BLOB_LEN], kek[32];
	sqlite3 *db = NULL;
	int rc;
	if ((rc = keys_alloc(p)) != 0)
		return rc;
	veil_random(keys_of(p)->store, 32);
	keys_derive(keys_of(p));
	keys_of(p)->level = level;
	if ((rc = db_connect(path, &db)) != 0)
		goto out;
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
	                 NULL) != SQLITE_OK ||
	    sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
		rc = VEIL_EIO;
		goto out;
	}
	p->db = db;
	db = NULL;
	if ((rc = kek_new(p->home, level, pass, len, blob, kek)) != 0 ||
	    (rc = wrap_put(p, blob, kek)) != 0)
		goto out;
out:
	sodium_memzero(kek, sizeof kek);
	sqlite3_close_v2(db);
	if (rc != 0) {
		sqlite3_close_v2(p->db);
		p->db = NULL;
		veil_vault_release(p);
	}
	return rc;
}

/* Reads the wrap row: 0, VEIL_EPLAIN (a first-format database), VEIL_ECORRUPT. */
static int wrap_get(sqlite3 *db, uint8_t row[KDF_BLOB_LEN + WRAP_LEN])
{
	sqlite3_stmt *st = NULL;
	int rc;
	if (sqlite3_prepare_v2(db, "SELECT v FROM vault_meta WHERE k = 'keys'", -1, &st, NULL) !=
	    SQLITE_OK) {
		sqlite3_finalize(st);
		/* No such table: the plaintext format, if its contacts table is there. */
		if (sqlite3_prepare_v2(db, "SELECT 1 FROM contacts LIMIT 0", -1, &st, NULL) ==
		    SQLITE_OK) {
			sqlite3_finalize(st);
			return VEIL_EPLAIN;
		}
		sqlite3_finalize(st);
		return VEIL_ECORRUPT;
	}
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW && sqlite3_column_bytes(st, 0) == KDF_BLOB_LEN + WRAP_LEN) {
		memcpy(row, sqlite3_column_blob(st, 0), KDF_BLOB_LEN + WRAP_LEN);
		rc = 0;
	} else {
		rc = s == SQLITE_ROW || s == SQLITE_DONE ? VEIL_ECORRUPT : VEIL_EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

int veil_vault_unlock(struct veil_profile *p)
{
	char path[VEIL_PROFILE_PATH_MAX + 32];
	uint8_t row[KDF_BLOB_LEN + WRAP_LEN], kek[32];
	uint8_t *plain = NULL, *pass = NULL;
	size_t plen = 0;
	sqlite3 *db = NULL;
	struct stat st;
	int rc;
	if ((rc = path_of(path, sizeof path, p->home, DB_FILE)) != 0)
		return rc;
	/* Opening would create an empty database where a damaged profile lost it. */
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? VEIL_EPROTO : VEIL_EIO;
	if ((rc = db_connect(path, &db)) != 0)
		return rc;
	if ((rc = wrap_get(db, row)) != 0)
		goto out;
	if (row[0] != VEIL_KDF_NONE) {
		pass = sodium_malloc(VEIL_PASSPHRASE_MAX);
		if (pass == NULL) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		if ((rc = veil_vault_get_pass(pass, VEIL_PASSPHRASE_MAX, &plen, VEIL_PASS_OPEN)) !=
		    0)
			goto out;
	}
	if ((rc = derive_kek(p->home, row, pass, plen, kek)) != 0)
		goto out;
	plain = sodium_malloc(WRAP_PLAIN_LEN);
	if (plain == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	const uint8_t *wrap = row + KDF_BLOB_LEN;
	const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, wrap + nb, WRAP_LEN - nb,
	                                               row, KDF_BLOB_LEN, wrap, kek) != 0) {
		/* Without passphrase, a store.key that does not open the wrap is damage. */
		rc = row[0] == VEIL_KDF_NONE ? VEIL_ECORRUPT : VEIL_EPASS;
		goto out;
	}
	if ((rc = keys_alloc(p)) != 0)
		goto out;
	memcpy(keys_of(p)->store, plain, 32);
	memcpy(p->sk, plain + 32, VEIL_KEY_LEN);
	keys_derive(keys_of(p));
	keys_of(p)->level = row[0];
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
	                 NULL) != SQLITE_OK ||
	    sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
		rc = VEIL_EIO;
		goto out;
	}
	p->db = db;
	db = NULL;
out:
	sodium_memzero(kek, sizeof kek);
	if (plain != NULL)
		sodium_free(plain);
	if (pass != NULL)
		sodium_free(pass);
	sqlite3_close_v2(db);
	if (rc != 0)
		veil_vault_release(p);
	return rc;
}

int veil_profile_kdf_level(const struct veil_profile *p)
{
	return p->vault != NULL ? keys_of(p)->level : VEIL_KDF_NONE;
}

int veil_profile_passphrase_set(struct veil_profile *p, const uint8_t *pass, size_t len, int level)
{
	char path[VEIL_PROFILE_PATH_MAX + 32];
	uint8_t blob[KDF_BLOB_LEN], kek[32];
	int rc;
	if (p->db == NULL || p->vault == NULL)
		return VEIL_EINVAL;
	/* A second store.key would replace the one the wrap is made with. */
	if (level == VEIL_KDF_NONE && keys_of(p)->level == VEIL_KDF_NONE)
		return 0;
	/*
	 * To none: store.key is written first (unused until the new wrap is
	 * committed). From none: store.key is removed only after the commit.
	 * A crash between leaves a spare file, never a profile that cannot open.
	 */
	if ((rc = kek_new(p->home, level, pass, len, blob, kek)) != 0)
		goto out;
	if ((rc = wrap_put(p, blob, kek)) != 0)
		goto out;
	keys_of(p)->level = level;
	if (level != VEIL_KDF_NONE && path_of(path, sizeof path, p->home, STORE_KEY_FILE) == 0)
		(void)unlink(path);
out:
	sodium_memzero(kek, sizeof kek);
	return rc;
}
