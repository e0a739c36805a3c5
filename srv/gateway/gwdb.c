/* Gateway accounts in SQLite, or PostgreSQL through gwdb_pg.c; see gwdb.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "gwdb.h"
#include "gwdb_pg.h"
#include "veil/util.h"

enum gw_stmt { ST_GET, ST_CHARGE, ST_COUNT };

static const char *const stmt_sql[ST_COUNT] = {
    [ST_GET] =
        "SELECT modes, credits, callback, secret_salt, secret_hash, secret_sealed, "
        "sk_sealed, created_ms, cb_failures, cb_error, cb_error_ms FROM gw_accounts WHERE id = ?1",
    [ST_CHARGE] = "UPDATE gw_accounts SET credits = credits - ?2 WHERE id = ?1 AND "
                  "credits >= ?2",
};

struct veil_gwdb {
	pthread_mutex_t mu;
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT]; /* the statements of the hot path, prepared once */
	uint8_t *seal_key;          /* sodium_malloc'd, 32 bytes */
	struct gw_pg *pg;           /* with a PostgreSQL store: the accounts are there */
};

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    /*
     * NORMAL: a crash may lose the last credit decrements (a few messages
     * sent for free), never an account; accounts are added with FULL below.
     */
    "PRAGMA synchronous=NORMAL;"
    /* One process at a time has the file (veild.lock): no file lock per transaction. */
    "PRAGMA locking_mode=EXCLUSIVE;"
    "CREATE TABLE IF NOT EXISTS gw_accounts ("
    " id BLOB PRIMARY KEY, modes INTEGER NOT NULL, credits INTEGER NOT NULL,"
    " callback TEXT NOT NULL, secret_salt BLOB NOT NULL, secret_hash BLOB NOT NULL,"
    " secret_sealed BLOB NOT NULL, sk_sealed BLOB, created_ms INTEGER NOT NULL,"
    /* Callback failures in a row, and the last one (for veilctl gateway list). */
    " cb_failures INTEGER NOT NULL DEFAULT 0, cb_error TEXT NOT NULL DEFAULT '',"
    " cb_error_ms INTEGER NOT NULL DEFAULT 0);";

void veil_gwdb_seal_key(uint8_t out[static 32], const uint8_t dir_sk[static VEIL_KEY_LEN])
{
	static const uint8_t ctx[] = "veil gateway account seal v1";
	crypto_generichash(out, 32, ctx, sizeof ctx - 1, dir_sk, VEIL_KEY_LEN);
}

int veil_gwdb_open(struct veil_gwdb **out, const char *path, const uint8_t seal_key[static 32])
{
	*out = NULL;
	struct veil_gwdb *db = calloc(1, sizeof *db);
	if (db == NULL)
		return VEIL_ENOMEM;
	db->seal_key = sodium_malloc(32);
	if (db->seal_key == NULL) {
		free(db);
		return VEIL_ENOMEM;
	}
	memcpy(db->seal_key, seal_key, 32);
	pthread_mutex_init(&db->mu, NULL);
	if (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0) {
		int rc = gw_pg_open(&db->pg, path);
		if (rc != 0) {
			veil_gwdb_close(db);
			return rc;
		}
		*out = db;
		return 0;
	}
	if (sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	        SQLITE_OK ||
	    sqlite3_busy_timeout(db->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(db->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db->db, stmt_sql[ST_GET], -1, SQLITE_PREPARE_PERSISTENT,
	                       &db->st[ST_GET], NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db->db, stmt_sql[ST_CHARGE], -1, SQLITE_PREPARE_PERSISTENT,
	                       &db->st[ST_CHARGE], NULL) != SQLITE_OK) {
		veil_log_error("gateway: cannot open %s: %s", path,
		               db->db != NULL ? sqlite3_errmsg(db->db) : "out of memory");
		veil_gwdb_close(db);
		return VEIL_EIO;
	}
	*out = db;
	return 0;
}

void veil_gwdb_close(struct veil_gwdb *db)
{
	if (db == NULL)
		return;
	gw_pg_close(db->pg);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(db->st[i]);
	sqlite3_close(db->db);
	sodium_free(db->seal_key);
	pthread_mutex_destroy(&db->mu);
	free(db);
}

void veil_gw_secret_new(char out[static VEIL_GW_SECRET_LEN + 1])
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	for (size_t i = 0; i < VEIL_GW_SECRET_LEN; i++)
		out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
	out[VEIL_GW_SECRET_LEN] = '\0';
}

static void secret_hash(uint8_t out[static 32], const uint8_t salt[static 16], const char *s,
                        size_t len)
{
	crypto_generichash(out, 32, (const uint8_t *)s, len, salt, 16);
}

int veil_gwdb_check_secret(const struct veil_gw_account *a, const char *secret, size_t len)
{
	uint8_t h[32];
	if (len > VEIL_GW_SECRET_MAX)
		len = VEIL_GW_SECRET_MAX;
	secret_hash(h, a->secret_salt, secret, len);
	int rc = sodium_memcmp(h, a->secret_hash, 32) == 0 ? 0 : VEIL_EAUTH;
	sodium_memzero(h, sizeof h);
	return rc;
}

/* nonce || secretbox(p) into out (cap >= n + 40). */
static void seal(const struct veil_gwdb *db, uint8_t *out, const uint8_t *p, size_t n)
{
	randombytes_buf(out, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, p, n, out, db->seal_key);
}

static int unseal(const struct veil_gwdb *db, uint8_t *out, size_t cap, size_t *n, const uint8_t *p,
                  size_t len)
{
	size_t over = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
	if (len < over || len - over > cap)
		return VEIL_ECRYPTO;
	if (crypto_secretbox_open_easy(out, p + crypto_secretbox_NONCEBYTES,
	                               len - crypto_secretbox_NONCEBYTES, p, db->seal_key) != 0)
		return VEIL_ECRYPTO;
	*n = len - over;
	return 0;
}

#define SEAL_OVER (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
_Static_assert(SEAL_OVER == GW_SEAL_OVER, "gwdb_pg.h's sealing overhead");

/* The account on PostgreSQL (see veil_gwdb_add), under the mutex. */
static int add_pg(struct veil_gwdb *db, const struct veil_gw_account *a, const uint8_t *salt,
                  const uint8_t *hash, const uint8_t *ssealed, size_t slen, const uint8_t *ksealed)
{
	struct gw_row *r = calloc(1, sizeof *r);
	if (r == NULL)
		return VEIL_ENOMEM;
	r->modes = a->modes;
	r->credits = a->credits;
	snprintf(r->callback, sizeof r->callback, "%s", a->callback);
	memcpy(r->salt, salt, 16);
	memcpy(r->hash, hash, 32);
	memcpy(r->ssealed, ssealed, slen + SEAL_OVER);
	r->ssealed_len = slen + SEAL_OVER;
	r->has_sk = a->has_sk;
	if (a->has_sk) {
		memcpy(r->ksealed, ksealed, VEIL_KEY_LEN + SEAL_OVER);
		r->ksealed_len = VEIL_KEY_LEN + SEAL_OVER;
	}
	r->created_ms = veil_now_ms();
	pthread_mutex_lock(&db->mu);
	int rc = gw_pg_insert(db->pg, a->id, r);
	pthread_mutex_unlock(&db->mu);
	free(r);
	return rc;
}

/* veil_gwdb_get on PostgreSQL. */
static int get_pg(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN], int want_secret,
                  struct veil_gw_account *a)
{
	struct gw_row *r = calloc(1, sizeof *r);
	if (r == NULL)
		return VEIL_ENOMEM;
	pthread_mutex_lock(&db->mu);
	int rc = gw_pg_get(db->pg, id, r);
	pthread_mutex_unlock(&db->mu);
	if (rc == 0) {
		memcpy(a->id, id, VEIL_ID_LEN);
		a->modes = r->modes;
		a->credits = r->credits;
		snprintf(a->callback, sizeof a->callback, "%s", r->callback);
		memcpy(a->secret_salt, r->salt, 16);
		memcpy(a->secret_hash, r->hash, 32);
		a->has_sk = r->has_sk;
		a->created_ms = r->created_ms;
		a->cb_failures = r->cb_failures;
		snprintf(a->cb_error, sizeof a->cb_error, "%s", r->cb_error);
		a->cb_error_ms = r->cb_error_ms;
	}
	if (rc == 0 && want_secret) {
		size_t n;
		rc = unseal(db, (uint8_t *)a->secret, VEIL_GW_SECRET_MAX, &n, r->ssealed,
		            r->ssealed_len);
		if (rc == 0)
			a->secret[n] = '\0';
		if (rc == 0 && a->has_sk) {
			rc = unseal(db, a->sk, VEIL_KEY_LEN, &n, r->ksealed, r->ksealed_len);
			if (rc == 0 && n != VEIL_KEY_LEN)
				rc = VEIL_ECRYPTO;
		}
		if (rc != 0)
			sodium_memzero(a, sizeof *a);
	}
	free(r);
	return rc;
}

/* gw_pg_update under the mutex. */
static int update_pg(struct veil_gwdb *db, int what, const uint8_t id[static VEIL_ID_LEN],
                     int64_t n, const char *text)
{
	pthread_mutex_lock(&db->mu);
	int rc = gw_pg_update(db->pg, what, id, n, text);
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int veil_gwdb_add(struct veil_gwdb *db, const struct veil_gw_account *a)
{
	size_t slen = strlen(a->secret);
	if (slen == 0 || slen > VEIL_GW_SECRET_MAX || strlen(a->callback) > VEIL_GW_URL_MAX)
		return VEIL_EINVAL;
	uint8_t salt[16], hash[32], ssealed[VEIL_GW_SECRET_MAX + SEAL_OVER],
	    ksealed[VEIL_KEY_LEN + SEAL_OVER];
	randombytes_buf(salt, sizeof salt);
	secret_hash(hash, salt, a->secret, slen);
	seal(db, ssealed, (const uint8_t *)a->secret, slen);
	if (a->has_sk)
		seal(db, ksealed, a->sk, VEIL_KEY_LEN);
	if (db->pg != NULL)
		return add_pg(db, a, salt, hash, ssealed, slen, ksealed);
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EIO;
	pthread_mutex_lock(&db->mu);
	if (sqlite3_prepare_v2(db->db,
	                       "INSERT OR IGNORE INTO gw_accounts (id, modes, credits, callback, "
	                       "secret_salt, secret_hash, secret_sealed, sk_sealed, created_ms) "
	                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_blob(st, 1, a->id, VEIL_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, a->modes);
	sqlite3_bind_int64(st, 3, a->credits);
	sqlite3_bind_text(st, 4, a->callback, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, salt, sizeof salt, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, hash, sizeof hash, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, ssealed, (int)(slen + SEAL_OVER), SQLITE_STATIC);
	if (a->has_sk)
		sqlite3_bind_blob(st, 8, ksealed, sizeof ksealed, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 8);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)veil_now_ms());
	(void)sqlite3_exec(db->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = sqlite3_changes(db->db) == 1 ? 0 : VEIL_EEXIST;
	(void)sqlite3_exec(db->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int veil_gwdb_get(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN], int want_secret,
                  struct veil_gw_account *a)
{
	memset(a, 0, sizeof *a);
	if (db->pg != NULL)
		return get_pg(db, id, want_secret, a);
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EIO;
	pthread_mutex_lock(&db->mu);
	st = db->st[ST_GET];
	sqlite3_bind_blob(st, 1, id, VEIL_ID_LEN, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_DONE) {
		rc = VEIL_ENOTFOUND;
		goto out;
	}
	if (s != SQLITE_ROW || sqlite3_column_bytes(st, 3) != 16 ||
	    sqlite3_column_bytes(st, 4) != 32)
		goto out;
	memcpy(a->id, id, VEIL_ID_LEN);
	a->modes = sqlite3_column_int(st, 0);
	a->credits = sqlite3_column_int64(st, 1);
	const unsigned char *cb = sqlite3_column_text(st, 2);
	if (cb != NULL)
		snprintf(a->callback, sizeof a->callback, "%s", (const char *)cb);
	memcpy(a->secret_salt, sqlite3_column_blob(st, 3), 16);
	memcpy(a->secret_hash, sqlite3_column_blob(st, 4), 32);
	a->has_sk = sqlite3_column_type(st, 6) != SQLITE_NULL;
	a->created_ms = (uint64_t)sqlite3_column_int64(st, 7);
	a->cb_failures = sqlite3_column_int64(st, 8);
	const unsigned char *ce = sqlite3_column_text(st, 9);
	if (ce != NULL)
		snprintf(a->cb_error, sizeof a->cb_error, "%s", (const char *)ce);
	a->cb_error_ms = (uint64_t)sqlite3_column_int64(st, 10);
	rc = 0;
	if (want_secret) {
		size_t n;
		rc = unseal(db, (uint8_t *)a->secret, VEIL_GW_SECRET_MAX, &n,
		            sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5));
		if (rc == 0)
			a->secret[n] = '\0';
		if (rc == 0 && a->has_sk) {
			rc = unseal(db, a->sk, VEIL_KEY_LEN, &n, sqlite3_column_blob(st, 6),
			            (size_t)sqlite3_column_bytes(st, 6));
			if (rc == 0 && n != VEIL_KEY_LEN)
				rc = VEIL_ECRYPTO;
		}
		if (rc != 0)
			sodium_memzero(a, sizeof *a);
	}
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_unlock(&db->mu);
	return rc;
}

/* Runs an UPDATE with (id, value) parameters; 0, VEIL_ENOTFOUND or VEIL_EIO. */
static int update(struct veil_gwdb *db, const char *sql, const uint8_t id[static VEIL_ID_LEN],
                  int64_t n, const char *text)
{
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EIO, cached = sql == stmt_sql[ST_CHARGE];
	pthread_mutex_lock(&db->mu);
	if (cached)
		st = db->st[ST_CHARGE];
	else if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_blob(st, 1, id, VEIL_ID_LEN, SQLITE_STATIC);
	if (text != NULL)
		sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 2, n);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = sqlite3_changes(db->db) == 1 ? 0 : VEIL_ENOTFOUND;
out:
	if (cached) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	} else {
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int veil_gwdb_charge(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN], int64_t n)
{
	int rc = db->pg != NULL ? update_pg(db, GW_PG_CHARGE, id, n, NULL)
	                        : update(db, stmt_sql[ST_CHARGE], id, n, NULL);
	if (rc == VEIL_ENOTFOUND) {
		struct veil_gw_account a;
		if (veil_gwdb_get(db, id, 0, &a) == 0)
			rc = VEIL_EQUOTA;
	}
	return rc;
}

int veil_gwdb_set_callback(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN],
                           const char *url)
{
	if (strlen(url) > VEIL_GW_URL_MAX)
		return VEIL_EINVAL;
	if (db->pg != NULL)
		return update_pg(db, GW_PG_SET_CALLBACK, id, 0, url);
	return update(db, "UPDATE gw_accounts SET callback = ?2 WHERE id = ?1", id, 0, url);
}

int veil_gwdb_note_callback(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN],
                            const char *error)
{
	if (db->pg != NULL) {
		pthread_mutex_lock(&db->mu);
		int prc = gw_pg_note(db->pg, id, error, veil_now_ms());
		pthread_mutex_unlock(&db->mu);
		return prc;
	}
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EIO;
	pthread_mutex_lock(&db->mu);
	const char *sql =
	    error != NULL ? "UPDATE gw_accounts SET cb_failures = cb_failures + 1, cb_error = ?2, "
	                    "cb_error_ms = ?3 WHERE id = ?1"
	                  : "UPDATE gw_accounts SET cb_failures = 0 WHERE id = ?1 AND "
	                    "cb_failures != 0";
	if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_blob(st, 1, id, VEIL_ID_LEN, SQLITE_STATIC);
	if (error != NULL) {
		sqlite3_bind_text(st, 2, error, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)veil_now_ms());
	}
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int veil_gwdb_add_credits(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN], int64_t n)
{
	if (db->pg != NULL)
		return update_pg(db, GW_PG_ADD_CREDITS, id, n, NULL);
	return update(db, "UPDATE gw_accounts SET credits = MAX(0, credits + ?2) WHERE id = ?1", id,
	              n, NULL);
}

static int list(struct veil_gwdb *db, const char *sql, uint8_t (*ids)[VEIL_ID_LEN], size_t max,
                size_t *n)
{
	*n = 0;
	sqlite3_stmt *st = NULL;
	int rc = VEIL_EIO, s;
	pthread_mutex_lock(&db->mu);
	if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	while (*n < max && (s = sqlite3_step(st)) == SQLITE_ROW)
		if (sqlite3_column_bytes(st, 0) == VEIL_ID_LEN)
			memcpy(ids[(*n)++], sqlite3_column_blob(st, 0), VEIL_ID_LEN);
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int veil_gwdb_with_callback(struct veil_gwdb *db, uint8_t (*ids)[VEIL_ID_LEN], size_t max,
                            size_t *n)
{
	if (db->pg != NULL) {
		pthread_mutex_lock(&db->mu);
		int rc = gw_pg_list(db->pg, 1, ids, max, n);
		pthread_mutex_unlock(&db->mu);
		return rc;
	}
	return list(db, "SELECT id FROM gw_accounts WHERE callback != '' ORDER BY id", ids, max, n);
}

int veil_gwdb_claim_callback(struct veil_gwdb *db, const uint8_t id[static VEIL_ID_LEN],
                             uint64_t *epoch)
{
	if (db->pg == NULL)
		return 1; /* SQLite: one node */
	pthread_mutex_lock(&db->mu);
	int rc = gw_pg_claim(db->pg, id, epoch);
	pthread_mutex_unlock(&db->mu);
	return rc;
}

int veil_gwdb_list(struct veil_gwdb *db, uint8_t (*ids)[VEIL_ID_LEN], size_t max, size_t *n)
{
	if (db->pg != NULL) {
		pthread_mutex_lock(&db->mu);
		int rc = gw_pg_list(db->pg, 0, ids, max, n);
		pthread_mutex_unlock(&db->mu);
		return rc;
	}
	return list(db, "SELECT id FROM gw_accounts ORDER BY id", ids, max, n);
}
