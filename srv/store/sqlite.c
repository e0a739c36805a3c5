/*
 * The SQLite backend (the embedded default).
 *
 * Two connections to one WAL database: q is used only by the store thread
 * (message queue, batched into one transaction per group commit); sy serves
 * the synchronous calls from any thread under a mutex. WAL lets sy read
 * while q writes; both wait for the write lock through the busy timeout.
 * synchronous=FULL makes every COMMIT fsync the WAL, so a committed batch is
 * durable. Every statement is prepared once at open and bound per call.
 *
 * The schema version lives in PRAGMA user_version; migrations[] holds the
 * steps from each version to the next, applied in one transaction at open.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "store_backend.h"
#include "veil/err.h"
#include "veil/util.h"

#define SQ_BUSY_TIMEOUT_MS 10000
#define SQ_ID_ATTEMPTS 32      /* fresh random IDs tried before giving up */
#define SQ_CACHE_SLOTS 8192    /* slots of each count cache, a power of two */
#define SQ_CACHE_MAX_USED 6144 /* a cache is cleared when this full */
#define SQ_KEY_LEN (2 * VEIL_ID_LEN)
#define SQ_WAL_PAGES 8192 /* autocheckpoint (32 MiB of WAL), unless the disk reserve is small */
#define SQ_STR_(x) #x
#define SQ_STR(x) SQ_STR_(x)

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE identities ("
    " id TEXT PRIMARY KEY,"
    " pk BLOB NOT NULL UNIQUE,"
    " state INTEGER NOT NULL DEFAULT 0,"
    " feature_mask INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE push_tokens ("
    " id TEXT PRIMARY KEY REFERENCES identities(id),"
    " type INTEGER NOT NULL,"
    " token BLOB NOT NULL);"
    "CREATE TABLE used_tokens ("
    " hash BLOB PRIMARY KEY,"
    " expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX used_tokens_expires ON used_tokens(expires_ms);"
    "CREATE TABLE messages ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " recipient TEXT NOT NULL,"
    " sender TEXT NOT NULL,"
    " msg_id INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL,"
    " flags INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " UNIQUE(recipient, sender, msg_id));"
    "CREATE INDEX messages_recipient_seq ON messages(recipient, seq);"
    "CREATE INDEX messages_expires ON messages(expires_ms) WHERE expires_ms != 0;",
    /* 1 -> 2: linked e-mail addresses and phone numbers, revocation keys */
    "CREATE TABLE links ("
    " id TEXT NOT NULL REFERENCES identities(id),"
    " kind INTEGER NOT NULL,"
    " hash BLOB NOT NULL,"
    " prf BLOB NOT NULL,"
    " linked_ms INTEGER NOT NULL,"
    " PRIMARY KEY (id, kind));"
    "CREATE INDEX links_hash ON links(kind, hash);"
    "CREATE INDEX links_prf ON links(kind, prf);"
    "CREATE TABLE link_pending ("
    " vid BLOB PRIMARY KEY,"
    " id TEXT NOT NULL REFERENCES identities(id),"
    " kind INTEGER NOT NULL,"
    " hash BLOB NOT NULL,"
    " prf BLOB NOT NULL,"
    " code_mac BLOB NOT NULL,"
    " expires_ms INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (id, kind));"
    "CREATE TABLE revocation_keys ("
    " id TEXT PRIMARY KEY REFERENCES identities(id),"
    " rkey BLOB NOT NULL,"
    " changed_ms INTEGER NOT NULL);",
    /* 2 -> 3: invite codes, by the hash of the code */
    "CREATE TABLE invites ("
    " hash BLOB PRIMARY KEY,"
    " handle TEXT NOT NULL,"
    " uses INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE INDEX invites_handle ON invites(handle);",
    /* 3 -> 4: the last login of each identity (veilctl list) */
    "CREATE TABLE logins ("
    " id TEXT PRIMARY KEY,"
    " last_ms INTEGER NOT NULL) WITHOUT ROWID;",
};
#define SQ_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum sq_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_MSG_FIND,
	ST_MSG_COUNT_ALL,
	ST_MSG_COUNT_PAIR,
	ST_MSG_MIN_EXP_PAIR,
	ST_MSG_COUNT_LIVE,
	ST_MSG_PURGE_RCPT,
	ST_MSG_PURGE_PAIR,
	ST_MSG_INSERT,
	ST_MSG_DELETE,
	ST_MSG_EXPIRE,
	ST_MSG_FETCH,
	ST_ID_BY_PK,
	ST_ID_BY_ID,
	ST_ID_INSERT,
	ST_ID_SET_STATE,
	ST_ID_SET_FEATURES,
	ST_PUSH_SET,
	ST_PUSH_DELETE,
	ST_PUSH_GET,
	ST_TOKEN_PURGE,
	ST_TOKEN_INSERT,
	ST_PEND_PUT,
	ST_PEND_GET,
	ST_PEND_ATTEMPT,
	ST_PEND_DELETE,
	ST_PEND_DELETE_ID,
	ST_LINK_PUT,
	ST_LINK_GET,
	ST_LINK_DELETE,
	ST_LINK_DELETE_ALL,
	ST_LINK_FIND_HASH,
	ST_LINK_FIND_PRF,
	ST_REVKEY_SET,
	ST_REVKEY_GET,
	ST_INV_PUT,
	ST_INV_USE,
	ST_INV_GET,
	ST_INV_UNUSE,
	ST_INV_LIST,
	ST_INV_REVOKE,
	ST_ID_LIST,
	ST_LOGIN,
	ST_MSG_DELETE_RCPT,
	ST_REVKEY_DELETE,
	ST_QSTATS,
	ST_QMAX,
	ST_PING,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_MSG_FIND] = "SELECT seq FROM messages WHERE recipient = ?1 AND sender = ?2 "
                    "AND msg_id = ?3",
    [ST_MSG_COUNT_ALL] = "SELECT count(*) FROM messages WHERE recipient = ?1",
    /* Both served by the UNIQUE (recipient, sender, msg_id) index; the count from it alone. */
    [ST_MSG_COUNT_PAIR] = "SELECT count(*) FROM messages WHERE recipient = ?1 AND sender = ?2",
    [ST_MSG_MIN_EXP_PAIR] = "SELECT min(expires_ms) FROM messages WHERE recipient = ?1 "
                            "AND sender = ?2 AND expires_ms != 0",
    [ST_MSG_COUNT_LIVE] = "SELECT count(*) FROM messages WHERE recipient = ?1 "
                          "AND (expires_ms = 0 OR expires_ms > ?2)",
    [ST_MSG_PURGE_RCPT] = "DELETE FROM messages WHERE recipient = ?1 AND expires_ms != 0 "
                          "AND expires_ms <= ?2",
    [ST_MSG_PURGE_PAIR] = "DELETE FROM messages WHERE recipient = ?1 AND sender = ?2 "
                          "AND expires_ms != 0 AND expires_ms <= ?3",
    [ST_MSG_INSERT] = "INSERT INTO messages (recipient, sender, msg_id, expires_ms, flags, "
                      "data) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                      "ON CONFLICT (recipient, sender, msg_id) DO NOTHING",
    [ST_MSG_DELETE] = "DELETE FROM messages WHERE recipient = ?1 AND sender = ?2 "
                      "AND msg_id = ?3",
    [ST_MSG_EXPIRE] = "DELETE FROM messages WHERE expires_ms != 0 AND expires_ms <= ?1",
    [ST_MSG_FETCH] = "SELECT seq, sender, msg_id, expires_ms, flags, data FROM messages "
                     "WHERE recipient = ?1 AND seq > ?2 AND (expires_ms = 0 OR expires_ms > ?3) "
                     "ORDER BY seq LIMIT ?4",
    [ST_ID_BY_PK] = "SELECT id, pk, state, feature_mask, created_ms FROM identities "
                    "WHERE pk = ?1",
    [ST_ID_BY_ID] = "SELECT id, pk, state, feature_mask, created_ms FROM identities "
                    "WHERE id = ?1",
    [ST_ID_INSERT] = "INSERT OR IGNORE INTO identities (id, pk, state, feature_mask, "
                     "created_ms) VALUES (?1, ?2, 0, 0, ?3)",
    [ST_ID_SET_STATE] = "UPDATE identities SET state = ?2 WHERE id = ?1",
    [ST_ID_SET_FEATURES] = "UPDATE identities SET feature_mask = ?2 WHERE id = ?1",
    [ST_PUSH_SET] = "INSERT INTO push_tokens (id, type, token) SELECT id, ?2, ?3 "
                    "FROM identities WHERE id = ?1 ON CONFLICT (id) DO UPDATE "
                    "SET type = excluded.type, token = excluded.token",
    [ST_PUSH_DELETE] = "DELETE FROM push_tokens WHERE id = ?1",
    [ST_PUSH_GET] = "SELECT type, token FROM push_tokens WHERE id = ?1",
    [ST_TOKEN_PURGE] = "DELETE FROM used_tokens WHERE expires_ms <= ?1",
    [ST_TOKEN_INSERT] = "INSERT OR IGNORE INTO used_tokens (hash, expires_ms) VALUES (?1, ?2)",
    [ST_PEND_PUT] = "INSERT OR REPLACE INTO link_pending (vid, id, kind, hash, prf, code_mac, "
                    "expires_ms, attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
    [ST_PEND_GET] = "SELECT id, kind, hash, prf, code_mac, expires_ms, attempts FROM link_pending "
                    "WHERE vid = ?1",
    [ST_PEND_ATTEMPT] = "UPDATE link_pending SET attempts = attempts + 1 WHERE vid = ?1",
    [ST_PEND_DELETE] = "DELETE FROM link_pending WHERE vid = ?1",
    [ST_PEND_DELETE_ID] = "DELETE FROM link_pending WHERE id = ?1 AND (kind = ?2 OR ?2 < 0)",
    [ST_LINK_PUT] = "INSERT OR REPLACE INTO links (id, kind, hash, prf, linked_ms) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_LINK_GET] = "SELECT hash FROM links WHERE id = ?1 AND kind = ?2",
    [ST_LINK_DELETE] = "DELETE FROM links WHERE id = ?1 AND kind = ?2",
    [ST_LINK_DELETE_ALL] = "DELETE FROM links WHERE id = ?1",
    [ST_LINK_FIND_HASH] = "SELECT id FROM links WHERE kind = ?1 AND hash = ?2 ORDER BY id LIMIT ?3",
    [ST_LINK_FIND_PRF] = "SELECT id FROM links WHERE kind = ?1 AND prf = ?2 ORDER BY id LIMIT ?3",
    [ST_REVKEY_SET] = "INSERT INTO revocation_keys (id, rkey, changed_ms) SELECT id, ?2, ?3 "
                      "FROM identities WHERE id = ?1 ON CONFLICT (id) DO UPDATE "
                      "SET rkey = excluded.rkey, changed_ms = excluded.changed_ms",
    [ST_REVKEY_GET] = "SELECT rkey, changed_ms FROM revocation_keys WHERE id = ?1",
    [ST_INV_PUT] = "INSERT INTO invites (hash, handle, uses, used, created_ms, expires_ms, "
                   "revoked) VALUES (?1, ?2, ?3, 0, ?4, ?5, 0)",
    [ST_INV_USE] = "UPDATE invites SET used = used + 1 WHERE hash = ?1 AND revoked = 0 "
                   "AND used < uses AND (expires_ms = 0 OR expires_ms > ?2)",
    [ST_INV_GET] = "SELECT uses, used, expires_ms, revoked FROM invites WHERE hash = ?1",
    [ST_INV_UNUSE] = "UPDATE invites SET used = used - 1 WHERE hash = ?1 AND used > 0",
    [ST_INV_LIST] = "SELECT hash, handle, uses, used, created_ms, expires_ms, revoked "
                    "FROM invites ORDER BY created_ms, handle LIMIT ?1",
    [ST_INV_REVOKE] = "UPDATE invites SET revoked = 1 WHERE handle = ?1 AND revoked = 0",
    [ST_ID_LIST] = "SELECT i.id, i.pk, i.state, i.feature_mask, i.created_ms, "
                   "coalesce(l.last_ms, 0), (SELECT count(*) FROM messages m WHERE "
                   "m.recipient = i.id) FROM identities i LEFT JOIN logins l ON l.id = i.id "
                   "WHERE (?1 = '' OR i.id = ?1) AND i.id > ?2 ORDER BY i.id LIMIT ?3",
    [ST_LOGIN] = "INSERT INTO logins (id, last_ms) VALUES (?1, ?2) ON CONFLICT (id) "
                 "DO UPDATE SET last_ms = excluded.last_ms",
    [ST_MSG_DELETE_RCPT] = "DELETE FROM messages WHERE recipient = ?1",
    [ST_REVKEY_DELETE] = "DELETE FROM revocation_keys WHERE id = ?1",
    [ST_QSTATS] = "SELECT count(*), coalesce(sum(length(data)), 0), count(DISTINCT recipient), "
                  "coalesce(sum(expires_ms != 0 AND expires_ms <= ?1), 0) FROM messages",
    [ST_QMAX] = "SELECT recipient, count(*) AS n FROM messages GROUP BY recipient "
                "ORDER BY n DESC LIMIT 1",
    [ST_PING] = "SELECT 1",
};

struct sq_conn {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

/*
 * A count cache: rows per key (a recipient, or a recipient and a sender) as
 * the q connection sees them, including the open batch's changes. Open
 * addressing with linear probing; it is cleared on rollback and whenever
 * unsure, then refilled from the table one key at a time.
 */
struct sq_cache_slot {
	uint8_t key[SQ_KEY_LEN];
	uint8_t used;
	uint32_t count;
	/*
	 * Pair cache only: no row of the pair expires before this; 0 = not
	 * looked up yet, UINT64_MAX = none expires. It may be too early, never
	 * too late: an insert lowers it and a delete leaves it.
	 */
	uint64_t min_exp;
};

struct sq_cache {
	struct sq_cache_slot *slot;
	size_t used;
};

struct sq_backend {
	struct sq_conn q;  /* store thread only */
	struct sq_conn sy; /* under mu */
	pthread_mutex_t mu;
	bool mu_init;
	uint32_t queue_limit;
	uint32_t sender_limit; /* <= queue_limit */
	/* Rows (expired ones included) per recipient, and per (recipient, sender). */
	struct sq_cache rcpt;
	/*
	 * Filled only for recipients holding at least sender_limit rows: below
	 * that no sender can have used up its share, and the pair is not
	 * looked at.
	 */
	struct sq_cache pair;
	uint8_t cache_key[crypto_shorthash_KEYBYTES];
	/*
	 * Disk full (store thread only). A reserve file holds reserve_bytes of
	 * the disk; when a write finds the disk full it is deleted, so that
	 * acks and expiry (which need a little room in the WAL to delete) go
	 * on, and new messages are refused without a try except one probe a
	 * second, until one fits again.
	 */
	char reserve_path[1100];
	uint64_t reserve_bytes;
	bool reserve_present;
	bool full;
	uint64_t full_probe_ms;    /* next put tried while full */
	uint64_t reserve_check_ms; /* next attempt to make the reserve again */
	uint64_t refused_full;     /* puts refused since the disk filled */
	unsigned batch_puts_ok;    /* puts stored in the open batch */
	/* identity_delete removed rows behind the count caches (set under mu, any thread) */
	atomic_bool caches_stale;
};

static int sq_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM: return VEIL_ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return VEIL_EAGAIN;
	case SQLITE_FULL: return VEIL_ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return VEIL_ECORRUPT;
	default: return VEIL_EIO;
	}
}

/* The veil_err of db's last error (or of rc when db has none). */
static int db_err(sqlite3 *db, int rc)
{
	return sq_err(db != NULL ? sqlite3_extended_errcode(db) : rc);
}

static sqlite3_stmt *stmt(struct sq_conn *c, enum sq_stmt i)
{
	sqlite3_stmt *st = c->st[i];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static void done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int bind_id(sqlite3_stmt *st, int i, const uint8_t id[static VEIL_ID_LEN])
{
	return sqlite3_bind_text(st, i, (const char *)id, VEIL_ID_LEN, SQLITE_STATIC);
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	/* Stored as the same 64 bits, read back with the inverse cast. */
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t)sqlite3_column_int64(st, i);
}

static int col_id(sqlite3_stmt *st, int i, uint8_t id[static VEIL_ID_LEN])
{
	const unsigned char *t = sqlite3_column_text(st, i);
	if (t == NULL || sqlite3_column_bytes(st, i) != VEIL_ID_LEN)
		return VEIL_EIO;
	memcpy(id, t, VEIL_ID_LEN);
	return 0;
}

/* Runs a statement that returns no row; returns 0 or a veil_err. */
static int exec_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_DONE ? 0 : sq_err(rc);
}

/* Runs a statement returning one integer (count(*) etc.). */
static int exec_int(sqlite3_stmt *st, uint64_t *v)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = col_u64(st, 0);
		done(st);
		return 0;
	}
	done(st);
	return rc == SQLITE_DONE ? VEIL_ENOTFOUND : sq_err(rc);
}

/* --- count caches (store thread only) --- */

static void rcpt_key(uint8_t key[static SQ_KEY_LEN], const uint8_t id[static VEIL_ID_LEN])
{
	/* No ID is all zero bytes, so the recipient's key is never a pair's. */
	memcpy(key, id, VEIL_ID_LEN);
	memset(key + VEIL_ID_LEN, 0, VEIL_ID_LEN);
}

static void pair_key(uint8_t key[static SQ_KEY_LEN], const uint8_t rcpt[static VEIL_ID_LEN],
                     const uint8_t sender[static VEIL_ID_LEN])
{
	memcpy(key, rcpt, VEIL_ID_LEN);
	memcpy(key + VEIL_ID_LEN, sender, VEIL_ID_LEN);
}

static struct sq_cache_slot *cache_slot(struct sq_backend *b, struct sq_cache *c,
                                        const uint8_t key[static SQ_KEY_LEN])
{
	/* Keyed SipHash: a sender cannot aim many keys at one chain. */
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;
	crypto_shorthash(h, key, SQ_KEY_LEN, b->cache_key);
	memcpy(&v, h, sizeof(v));
	size_t i = (size_t)(v & (SQ_CACHE_SLOTS - 1));
	while (c->slot[i].used && memcmp(c->slot[i].key, key, SQ_KEY_LEN) != 0)
		i = (i + 1) & (SQ_CACHE_SLOTS - 1);
	return &c->slot[i];
}

static void cache_clear(struct sq_cache *c)
{
	if (c->used == 0)
		return;
	memset(c->slot, 0, SQ_CACHE_SLOTS * sizeof(*c->slot));
	c->used = 0;
}

static void caches_clear(struct sq_backend *b)
{
	cache_clear(&b->rcpt);
	cache_clear(&b->pair);
}

/* The cached entry for key, or NULL. */
static struct sq_cache_slot *cache_get(struct sq_backend *b, struct sq_cache *c,
                                       const uint8_t key[static SQ_KEY_LEN])
{
	if (c->used == 0)
		return NULL;
	struct sq_cache_slot *e = cache_slot(b, c, key);
	return e->used ? e : NULL;
}

static void cache_set(struct sq_backend *b, struct sq_cache *c,
                      const uint8_t key[static SQ_KEY_LEN], uint32_t count, uint64_t min_exp)
{
	struct sq_cache_slot *e = cache_slot(b, c, key);
	if (!e->used) {
		if (c->used >= SQ_CACHE_MAX_USED) {
			cache_clear(c);
			e = cache_slot(b, c, key);
		}
		e->used = 1;
		memcpy(e->key, key, SQ_KEY_LEN);
		c->used++;
	}
	e->count = count;
	e->min_exp = min_exp;
}

/* Current row count for recipient on the q connection, from cache or table. */
static int q_count(struct sq_backend *b, const uint8_t id[static VEIL_ID_LEN], uint32_t *count)
{
	uint8_t key[SQ_KEY_LEN];
	rcpt_key(key, id);
	struct sq_cache_slot *e = cache_get(b, &b->rcpt, key);
	if (e != NULL) {
		*count = e->count;
		return 0;
	}
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_COUNT_ALL);
	uint64_t v = 0;
	bind_id(st, 1, id);
	int rc = exec_int(st, &v);
	if (rc != 0)
		return rc;
	*count = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	cache_set(b, &b->rcpt, key, *count, 0);
	return 0;
}

/*
 * Rows from sender to recipient on the q connection, from cache or from the
 * table (a count over one range of the unique index, without the rows).
 */
static int q_pair_count(struct sq_backend *b, const uint8_t key[static SQ_KEY_LEN], uint32_t *count)
{
	struct sq_cache_slot *e = cache_get(b, &b->pair, key);
	if (e != NULL) {
		*count = e->count;
		return 0;
	}
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_COUNT_PAIR);
	uint64_t v = 0;
	bind_id(st, 1, key);
	bind_id(st, 2, key + VEIL_ID_LEN);
	int rc = exec_int(st, &v);
	if (rc != 0)
		return rc;
	*count = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	cache_set(b, &b->pair, key, *count, 0);
	return 0;
}

/*
 * The earliest expiry among the pair's rows (UINT64_MAX if none expires),
 * looked up once and then kept with the pair's cached count. Only a sender
 * whose share is used up gets here.
 */
static int q_pair_min_exp(struct sq_backend *b, const uint8_t key[static SQ_KEY_LEN],
                          uint64_t *min_exp)
{
	struct sq_cache_slot *e = cache_get(b, &b->pair, key);
	if (e != NULL && e->min_exp != 0) {
		*min_exp = e->min_exp;
		return 0;
	}
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_MIN_EXP_PAIR);
	bind_id(st, 1, key);
	bind_id(st, 2, key + VEIL_ID_LEN);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		done(st);
		return rc == SQLITE_DONE ? VEIL_EIO : sq_err(rc);
	}
	*min_exp = sqlite3_column_type(st, 0) == SQLITE_NULL ? UINT64_MAX : col_u64(st, 0);
	done(st);
	if (e != NULL)
		e->min_exp = *min_exp;
	return 0;
}

/* Keeps both caches right after m was inserted; count is the recipient's new count. */
static void cache_row_added(struct sq_backend *b, const struct veil_msg_rec *m, uint32_t count)
{
	uint8_t key[SQ_KEY_LEN];
	rcpt_key(key, m->recipient);
	cache_set(b, &b->rcpt, key, count, 0);
	pair_key(key, m->recipient, m->sender);
	struct sq_cache_slot *e = cache_get(b, &b->pair, key);
	if (e != NULL) {
		e->count++;
		if (m->expires_ms != 0 && e->min_exp != 0 && m->expires_ms < e->min_exp)
			e->min_exp = m->expires_ms;
	}
}

/* Keeps both caches right after one row of (rcpt, sender) was deleted. */
static void cache_row_deleted(struct sq_backend *b, const uint8_t rcpt[static VEIL_ID_LEN],
                              const uint8_t sender[static VEIL_ID_LEN])
{
	uint8_t key[SQ_KEY_LEN];
	rcpt_key(key, rcpt);
	struct sq_cache_slot *e = cache_get(b, &b->rcpt, key);
	if (e != NULL && e->count > 0)
		e->count--;
	pair_key(key, rcpt, sender);
	e = cache_get(b, &b->pair, key);
	if (e != NULL && e->count > 0)
		e->count--;
}

/* --- opening --- */

static void conn_close(struct sq_conn *c)
{
	for (size_t i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(c->st[i]);
		c->st[i] = NULL;
	}
	sqlite3_close(c->db);
	c->db = NULL;
}

static int get_user_version(sqlite3 *db, int *v)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_err(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int(st, 0);
		rc = 0;
	} else {
		rc = sq_err(rc);
	}
	sqlite3_finalize(st);
	return rc;
}

static int set_wal(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_err(rc);
	int r = sqlite3_step(st);
	rc = r == SQLITE_ROW ? VEIL_EIO : db_err(db, r);
	if (r == SQLITE_ROW) {
		const unsigned char *mode = sqlite3_column_text(st, 0);
		if (mode && strcmp((const char *)mode, "wal") == 0)
			rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Brings the schema up to SQ_SCHEMA_VERSION in one transaction. */
static int migrate(sqlite3 *db, char *err, size_t errcap)
{
	int v = 0, rc, from = 0;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return VEIL_EIO;
	/* Read inside the write lock: another process may have migrated. */
	rc = get_user_version(db, &v);
	if (rc != 0)
		goto out;
	if (v < 0 || v > SQ_SCHEMA_VERSION) {
		snprintf(err, errcap, "schema version %d is newer than this veild knows (%d)", v,
		         SQ_SCHEMA_VERSION);
		rc = VEIL_EIO; /* written by a newer build */
		goto out;
	}
	from = v;
	for (; v < SQ_SCHEMA_VERSION; v++) {
		if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK) {
			rc = VEIL_EIO;
			goto out;
		}
	}
	/* PRAGMA takes no parameters; the value is our own constant. */
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SQ_SCHEMA_VERSION);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		rc = VEIL_EIO;
		goto out;
	}
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
	if (rc == 0 && from > 0 && from < SQ_SCHEMA_VERSION)
		veil_log_info("store: schema upgraded from version %d to %d", from,
		              SQ_SCHEMA_VERSION);
out:
	if (rc != 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * Reads every page of the database with PRAGMA quick_check, for at most
 * limit_ms (a larger store is checked in part: the rest is skipped with a
 * warning). Returns 0, VEIL_ECORRUPT with the first problem in err, or the
 * error that stopped the check.
 */
static int progress_stop(void *arg)
{
	return veil_mono_ms() > *(const uint64_t *)arg;
}

static int quick_check(sqlite3 *db, uint32_t limit_ms, char *err, size_t errcap)
{
	uint64_t until = veil_mono_ms() + limit_ms;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errcap, "%s", sqlite3_errmsg(db));
		return db_err(db, rc);
	}
	sqlite3_progress_handler(db, 1000, progress_stop, &until);
	rc = sqlite3_step(st);
	sqlite3_progress_handler(db, 0, NULL, NULL);
	int out = 0;
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		if (v == NULL || strcmp(v, "ok") != 0) {
			snprintf(err, errcap, "integrity check failed: %s", v ? v : "?");
			for (char *p = err; *p != '\0'; p++)
				if (*p == '\n' || *p == '\r')
					*p = ' '; /* one line */
			out = VEIL_ECORRUPT;
		}
	} else if (rc == SQLITE_INTERRUPT) {
		veil_log_warn("store: the integrity check did not finish within %u ms; the rest of "
		              "the store was not checked (see --store-check-ms)",
		              (unsigned)limit_ms);
	} else {
		snprintf(err, errcap, "%s", sqlite3_errmsg(db));
		out = db_err(db, rc);
	}
	sqlite3_finalize(st);
	return out;
}

static int conn_open(struct sq_conn *c, const char *path, bool create, uint32_t check_ms, char *err,
                     size_t errcap)
{
	int rc;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	err[0] = '\0';
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
		rc = db_err(c->db, SQLITE_CANTOPEN);
		goto out;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
	rc = set_wal(c->db);
	if (rc != 0)
		goto out;
	if (check_ms > 0 && (rc = quick_check(c->db, check_ms, err, errcap)) != 0)
		goto out;
	/*
	 * FULL: every COMMIT fsyncs the WAL, so a committed batch survives a
	 * power cut. A 32 MiB page cache and checkpoints every 8192 pages (32
	 * MiB of WAL, trimmed back to 64 MiB at most afterwards) keep random
	 * per-recipient index pages from being rewritten at every commit.
	 */
	if (sqlite3_exec(c->db,
	                 "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
	                 "PRAGMA cache_size=-32768; PRAGMA wal_autocheckpoint=" SQ_STR(
	                     SQ_WAL_PAGES) ";"
	                                   "PRAGMA journal_size_limit=67108864",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		rc = VEIL_EIO;
		goto out;
	}
	if (create) {
		rc = migrate(c->db, err, errcap);
		if (rc != 0)
			goto out;
	}
	for (size_t i = 0; i < ST_COUNT; i++) {
		int r = sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                           &c->st[i], NULL);
		if (r != SQLITE_OK) {
			rc = sq_err(r);
			goto out;
		}
	}
	return 0;
out:
	if (err[0] == '\0' && c->db != NULL && sqlite3_system_errno(c->db) != 0)
		snprintf(err, errcap, "%s (%s)", sqlite3_errmsg(c->db),
		         strerror(sqlite3_system_errno(c->db)));
	else if (err[0] == '\0')
		snprintf(err, errcap, "%s",
		         c->db != NULL ? sqlite3_errmsg(c->db) : veil_strerror(rc));
	conn_close(c);
	return rc;
}

static void sq_close(void *be)
{
	struct sq_backend *b = be;
	if (b == NULL)
		return;
	conn_close(&b->sy);
	conn_close(&b->q);
	if (b->mu_init)
		pthread_mutex_destroy(&b->mu);
	free(b->rcpt.slot);
	free(b->pair.slot);
	free(b);
}

static int reserve_make(struct sq_backend *b);

static int sq_open(void **out, const struct veil_store_opts *opts, uint32_t queue_limit,
                   uint32_t sender_limit, const struct veil_store_sink *sink)
{
	(void)sink; /* one node per SQLite file: no events from others */
	struct sq_backend *b;
	int rc;

	*out = NULL;
	if (!sqlite3_threadsafe())
		return VEIL_EIO;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return VEIL_ENOMEM;
	rc = VEIL_ENOMEM;
	b->rcpt.slot = calloc(SQ_CACHE_SLOTS, sizeof(*b->rcpt.slot));
	b->pair.slot = calloc(SQ_CACHE_SLOTS, sizeof(*b->pair.slot));
	if (b->rcpt.slot == NULL || b->pair.slot == NULL)
		goto out;
	if (pthread_mutex_init(&b->mu, NULL) != 0)
		goto out;
	b->mu_init = true;
	b->queue_limit = queue_limit;
	b->sender_limit = sender_limit;
	randombytes_buf(b->cache_key, sizeof(b->cache_key));
	char ebuf[256], *err = opts->err != NULL ? opts->err : ebuf;
	size_t errcap = opts->err != NULL ? opts->errcap : sizeof ebuf;
	rc = conn_open(&b->q, opts->path, true, opts->check_ms, err, errcap);
	if (rc != 0)
		goto out;
	rc = conn_open(&b->sy, opts->path, false, 0, err, errcap);
	if (rc != 0)
		goto out;
	snprintf(b->reserve_path, sizeof b->reserve_path, "%s.reserve", opts->path);
	b->reserve_bytes = opts->reserve_bytes;
	/*
	 * The WAL is checkpointed before it holds half the reserve, so that on a
	 * full disk the released reserve can take a checkpoint (which grows the
	 * database by what the WAL holds) and the WAL is then reused from its
	 * start instead of growing.
	 */
	if (b->reserve_bytes > 0 && b->reserve_bytes / 8192 < SQ_WAL_PAGES) {
		char sql[64];
		uint64_t pages = b->reserve_bytes / 8192 < 64 ? 64 : b->reserve_bytes / 8192;
		snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint=%llu",
		         (unsigned long long)pages);
		sqlite3_exec(b->q.db, sql, NULL, NULL, NULL);
	}
	if (b->reserve_bytes > 0 && reserve_make(b) != 0)
		veil_log_warn(
		    "store: no room for the %llu-byte disk reserve beside %s: a full disk "
		    "may stop acks from freeing space",
		    (unsigned long long)b->reserve_bytes, opts->path);
	else if (b->reserve_bytes == 0)
		unlink(b->reserve_path);
	*out = b;
	return 0;
out:
	sq_close(b);
	return rc;
}

/* --- queue side (store thread) --- */

static int sq_batch_begin(void *be)
{
	struct sq_backend *b = be;
	return exec_done(stmt(&b->q, ST_BEGIN));
}

static int sq_batch_commit(void *be)
{
	struct sq_backend *b = be;
	return exec_done(stmt(&b->q, ST_COMMIT));
}

/*
 * While the disk is full: move what the WAL holds into the database, so the
 * next writes reuse the WAL from its start instead of needing more disk.
 */
static void full_checkpoint(struct sq_backend *b)
{
	if (b->full && sqlite3_get_autocommit(b->q.db) != 0)
		sqlite3_wal_checkpoint_v2(b->q.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static void sq_batch_rollback(void *be)
{
	struct sq_backend *b = be;
	/* SQLite may have rolled back already (I/O error); then this fails harmlessly. */
	if (sqlite3_get_autocommit(b->q.db) == 0)
		(void)exec_done(stmt(&b->q, ST_ROLLBACK));
	caches_clear(b);
	full_checkpoint(b);
}

/* Looks up a queued message's seq; 0 = found (VEIL_EEXIST for the caller). */
static int q_find(struct sq_backend *b, const struct veil_msg_rec *m, uint64_t *seq)
{
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_FIND);
	bind_id(st, 1, m->recipient);
	bind_id(st, 2, m->sender);
	bind_u64(st, 3, m->msg_id);
	return exec_int(st, seq);
}

/*
 * The pair's share is used up: deletes its expired rows, if its cached
 * earliest expiry says there can be any, and updates both counts.
 */
static int q_purge_pair(struct sq_backend *b, const struct veil_msg_rec *m, uint64_t now,
                        uint32_t *count, uint32_t *pcount)
{
	uint8_t key[SQ_KEY_LEN];
	uint64_t min_exp = 0;
	pair_key(key, m->recipient, m->sender);
	int rc = q_pair_min_exp(b, key, &min_exp);
	if (rc != 0 || min_exp > now)
		return rc;
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_PURGE_PAIR);
	bind_id(st, 1, m->recipient);
	bind_id(st, 2, m->sender);
	bind_u64(st, 3, now);
	rc = exec_done(st);
	if (rc != 0)
		return rc;
	uint32_t gone = (uint32_t)sqlite3_changes(b->q.db);
	*count = gone > *count ? 0 : *count - gone;
	*pcount = gone > *pcount ? 0 : *pcount - gone;
	cache_set(b, &b->pair, key, *pcount, 0); /* the earliest expiry is looked up again */
	rcpt_key(key, m->recipient);
	cache_set(b, &b->rcpt, key, *count, 0);
	return 0;
}

/* The recipient's queue is full: deletes its expired rows and updates the count. */
static int q_purge_rcpt(struct sq_backend *b, const uint8_t rcpt[static VEIL_ID_LEN], uint64_t now,
                        uint32_t *count)
{
	uint8_t key[SQ_KEY_LEN];
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_PURGE_RCPT);
	bind_id(st, 1, rcpt);
	bind_u64(st, 2, now);
	int rc = exec_done(st);
	if (rc != 0)
		return rc;
	uint32_t gone = (uint32_t)sqlite3_changes(b->q.db);
	*count = gone > *count ? 0 : *count - gone;
	rcpt_key(key, rcpt);
	cache_set(b, &b->rcpt, key, *count, 0);
	if (gone > 0)
		cache_clear(&b->pair); /* rows of any of its senders may be gone */
	return 0;
}

/*
 * Inserts first and looks for a duplicate only when the insert did nothing,
 * so the common case costs one statement. The sender's share is looked at
 * only once the recipient holds sender_limit rows: below that no sender can
 * have used it up (and never when the share is the whole queue, so that
 * case stays VEIL_ELIMIT). A sender whose share is used up gets
 * VEIL_EQUOTA even if the queue is full as well: the share is what it can
 * do something about. A resend of a queued message is answered with
 * VEIL_EEXIST and its seq even when a limit is reached.
 */
static int sq_q_put(void *be, const struct veil_msg_rec *m, uint64_t *seq)
{
	struct sq_backend *b = be;
	sqlite3_stmt *st;
	uint32_t count = 0, pcount = 0;
	int rc;

	*seq = 0;
	rc = q_count(b, m->recipient, &count);
	if (rc != 0)
		return rc;
	if (count >= b->sender_limit && b->sender_limit < b->queue_limit) {
		uint8_t key[SQ_KEY_LEN];
		pair_key(key, m->recipient, m->sender);
		rc = q_pair_count(b, key, &pcount);
		if (rc != 0)
			return rc;
	}
	if (pcount >= b->sender_limit || count >= b->queue_limit) {
		rc = q_find(b, m, seq);
		if (rc == 0)
			return VEIL_EEXIST;
		if (rc != VEIL_ENOTFOUND)
			return rc;
		uint64_t now = veil_now_ms();
		if (pcount >= b->sender_limit) {
			rc = q_purge_pair(b, m, now, &count, &pcount);
			if (rc != 0)
				return rc;
			if (pcount >= b->sender_limit)
				return VEIL_EQUOTA;
		}
		if (count >= b->queue_limit) {
			rc = q_purge_rcpt(b, m->recipient, now, &count);
			if (rc != 0)
				return rc;
			if (count >= b->queue_limit)
				return VEIL_ELIMIT;
		}
	}

	st = stmt(&b->q, ST_MSG_INSERT);
	bind_id(st, 1, m->recipient);
	bind_id(st, 2, m->sender);
	bind_u64(st, 3, m->msg_id);
	bind_u64(st, 4, m->expires_ms);
	sqlite3_bind_int(st, 5, m->flags);
	sqlite3_bind_blob(st, 6, m->len ? (const void *)m->data : "", (int)m->len, SQLITE_STATIC);
	rc = exec_done(st);
	if (rc != 0)
		return rc;
	if (sqlite3_changes(b->q.db) == 0) {
		rc = q_find(b, m, seq);
		return rc == 0 ? VEIL_EEXIST : rc;
	}
	*seq = (uint64_t)sqlite3_last_insert_rowid(b->q.db);
	cache_row_added(b, m, count + 1);
	return 0;
}

static int sq_q_ack(void *be, const uint8_t recipient[static VEIL_ID_LEN],
                    const uint8_t sender[static VEIL_ID_LEN], uint64_t msg_id)
{
	struct sq_backend *b = be;
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_DELETE);
	bind_id(st, 1, recipient);
	bind_id(st, 2, sender);
	bind_u64(st, 3, msg_id);
	int rc = exec_done(st);
	if (rc != 0)
		return rc;
	if (sqlite3_changes(b->q.db) == 0)
		return VEIL_ENOTFOUND;
	cache_row_deleted(b, recipient, sender);
	return 0;
}

static int sq_q_expire(void *be, uint64_t now_ms, uint64_t *deleted)
{
	struct sq_backend *b = be;
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_EXPIRE);
	bind_u64(st, 1, now_ms);
	*deleted = 0;
	int rc = exec_done(st);
	if (rc != 0)
		return rc;
	*deleted = (uint64_t)sqlite3_changes64(b->q.db);
	if (*deleted > 0)
		caches_clear(b);
	return 0;
}

static int sq_q_fetch(void *be, const uint8_t recipient[static VEIL_ID_LEN], uint64_t after_seq,
                      size_t limit, uint64_t now_ms, struct veil_msg_rec **out, size_t *n)
{
	struct sq_backend *b = be;
	struct veil_msg_rec *recs = NULL;
	uint8_t *data = NULL;
	size_t cnt = 0, used = 0, cap = 0;
	int rc = 0, r = SQLITE_DONE;

	*out = NULL;
	*n = 0;
	if (limit == 0 || limit > VEIL_STORE_MAX_FETCH)
		limit = VEIL_STORE_MAX_FETCH;
	recs = calloc(limit, sizeof(*recs));
	if (recs == NULL)
		return VEIL_ENOMEM;
	sqlite3_stmt *st = stmt(&b->q, ST_MSG_FETCH);
	bind_id(st, 1, recipient);
	bind_u64(st, 2, after_seq);
	bind_u64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
	while (cnt < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
		struct veil_msg_rec *m = &recs[cnt];
		int len = sqlite3_column_bytes(st, 5);
		const void *blob = sqlite3_column_blob(st, 5);
		if (len < 0 || len > VEIL_STORE_MAX_BOX || (len > 0 && blob == NULL)) {
			rc = len > 0 && blob == NULL ? VEIL_ENOMEM : VEIL_EIO;
			goto out;
		}
		m->seq = col_u64(st, 0);
		memcpy(m->recipient, recipient, VEIL_ID_LEN);
		rc = col_id(st, 1, m->sender);
		if (rc != 0)
			goto out;
		m->msg_id = col_u64(st, 2);
		m->expires_ms = col_u64(st, 3);
		m->flags = (uint8_t)sqlite3_column_int(st, 4);
		m->len = (size_t)len;
		if (used + m->len > cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			while (ncap < used + m->len)
				ncap *= 2;
			uint8_t *nd = realloc(data, ncap);
			if (nd == NULL) {
				rc = VEIL_ENOMEM;
				goto out;
			}
			data = nd;
			cap = ncap;
		}
		if (m->len)
			memcpy(data + used, blob, m->len);
		/* An offset for now; made a pointer once the block is final. */
		m->data = (uint8_t *)(uintptr_t)used;
		used += m->len;
		cnt++;
	}
	if (cnt < limit && r != SQLITE_DONE) {
		rc = sq_err(r);
		goto out;
	}
	if (cnt > 0) {
		/* One block: the records, then their data. */
		size_t hdr = cnt * sizeof(*recs);
		uint8_t *blk = malloc(hdr + used + 1);
		if (blk == NULL) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		struct veil_msg_rec *o = (struct veil_msg_rec *)(void *)blk;
		memcpy(o, recs, hdr);
		if (used)
			memcpy(blk + hdr, data, used);
		for (size_t i = 0; i < cnt; i++)
			o[i].data = blk + hdr + (uintptr_t)o[i].data;
		*out = o;
		*n = cnt;
	}
out:
	done(st);
	free(recs);
	free(data);
	return rc;
}

/* --- synchronous side (any thread, under mu) --- */

static int read_identity(sqlite3_stmt *st, struct veil_identity_rec *rec)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		done(st);
		return rc == SQLITE_DONE ? VEIL_ENOTFOUND : sq_err(rc);
	}
	rc = col_id(st, 0, rec->id);
	if (rc == 0 && sqlite3_column_bytes(st, 1) != VEIL_KEY_LEN)
		rc = VEIL_EIO;
	if (rc == 0) {
		memcpy(rec->pk, sqlite3_column_blob(st, 1), VEIL_KEY_LEN);
		rec->state = sqlite3_column_int(st, 2);
		rec->feature_mask = col_u64(st, 3);
		rec->created_ms = col_u64(st, 4);
	}
	done(st);
	return rc;
}

static int get_by_pk(struct sq_backend *b, const uint8_t pk[static VEIL_KEY_LEN],
                     struct veil_identity_rec *rec)
{
	sqlite3_stmt *st = stmt(&b->sy, ST_ID_BY_PK);
	sqlite3_bind_blob(st, 1, pk, VEIL_KEY_LEN, SQLITE_STATIC);
	return read_identity(st, rec);
}

static void random_id(uint8_t id[static VEIL_ID_LEN])
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	for (size_t i = 0; i < VEIL_ID_LEN; i++)
		id[i] = (uint8_t)alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
}

static int sq_identity_create(void *be, const uint8_t *want_id,
                              const uint8_t pk[static VEIL_KEY_LEN], struct veil_identity_rec *rec)
{
	struct sq_backend *b = be;
	int rc;

	pthread_mutex_lock(&b->mu);
	/* The write lock makes the lookup and the insert one step for every process. */
	rc = exec_done(stmt(&b->sy, ST_BEGIN));
	if (rc != 0)
		goto unlock;
	rc = get_by_pk(b, pk, rec);
	if (rc == 0) {
		rc = VEIL_EEXIST;
		goto out;
	}
	if (rc != VEIL_ENOTFOUND)
		goto out;
	rc = VEIL_EIO; /* if every attempt collides */
	for (int i = 0; i < (want_id != NULL ? 1 : SQ_ID_ATTEMPTS); i++) {
		uint8_t id[VEIL_ID_LEN];
		uint64_t now = veil_now_ms();
		if (want_id != NULL)
			memcpy(id, want_id, VEIL_ID_LEN);
		else
			random_id(id);
		sqlite3_stmt *st = stmt(&b->sy, ST_ID_INSERT);
		bind_id(st, 1, id);
		sqlite3_bind_blob(st, 2, pk, VEIL_KEY_LEN, SQLITE_STATIC);
		bind_u64(st, 3, now);
		rc = exec_done(st);
		if (rc != 0)
			goto out;
		if (sqlite3_changes(b->sy.db) == 1) {
			memcpy(rec->id, id, VEIL_ID_LEN);
			memcpy(rec->pk, pk, VEIL_KEY_LEN);
			rec->state = VEIL_IDENTITY_ACTIVE;
			rec->feature_mask = 0;
			rec->created_ms = now;
			rc = 0;
			break;
		}
		/* The ID was taken: draw another, or fail for a chosen one. */
		rc = want_id != NULL ? VEIL_EEXIST : VEIL_EIO;
	}
out:
	if (rc == 0) {
		rc = exec_done(stmt(&b->sy, ST_COMMIT));
		if (rc != 0)
			memset(rec, 0, sizeof(*rec));
	}
	/* Nothing to keep on any other path (EEXIST wrote nothing). */
	if (sqlite3_get_autocommit(b->sy.db) == 0)
		(void)exec_done(stmt(&b->sy, ST_ROLLBACK));
unlock:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_identity_get(void *be, const uint8_t id[static VEIL_ID_LEN],
                           struct veil_identity_rec *rec)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_ID_BY_ID);
	bind_id(st, 1, id);
	int rc = read_identity(st, rec);
	pthread_mutex_unlock(&b->mu);
	if (rc != 0)
		memset(rec, 0, sizeof(*rec));
	return rc;
}

static int update_identity(struct sq_backend *b, enum sq_stmt which,
                           const uint8_t id[static VEIL_ID_LEN], uint64_t v)
{
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, which);
	bind_id(st, 1, id);
	bind_u64(st, 2, v);
	int rc = exec_done(st);
	if (rc == 0 && sqlite3_changes(b->sy.db) == 0)
		rc = VEIL_ENOTFOUND;
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_identity_set_state(void *be, const uint8_t id[static VEIL_ID_LEN], int state)
{
	return update_identity(be, ST_ID_SET_STATE, id, (uint64_t)state);
}

static int sq_identity_set_features(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t mask)
{
	return update_identity(be, ST_ID_SET_FEATURES, id, mask);
}

static int sq_push_token_set(void *be, const uint8_t id[static VEIL_ID_LEN], uint8_t type,
                             const uint8_t *token, size_t len)
{
	struct sq_backend *b = be;
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&b->mu);
	if (len == 0) {
		st = stmt(&b->sy, ST_PUSH_DELETE);
		bind_id(st, 1, id);
		rc = exec_done(st);
	} else {
		/* Inserts nothing for an unknown identity. */
		st = stmt(&b->sy, ST_PUSH_SET);
		bind_id(st, 1, id);
		sqlite3_bind_int(st, 2, type);
		sqlite3_bind_blob(st, 3, token, (int)len, SQLITE_STATIC);
		rc = exec_done(st);
		if (rc == 0 && sqlite3_changes(b->sy.db) == 0)
			rc = VEIL_ENOTFOUND;
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_push_token_get(void *be, const uint8_t id[static VEIL_ID_LEN], uint8_t *type,
                             uint8_t token[static VEIL_STORE_MAX_PUSH_TOKEN], size_t *len)
{
	struct sq_backend *b = be;
	int rc;

	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_PUSH_GET);
	bind_id(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int n = sqlite3_column_bytes(st, 1);
		const void *p = sqlite3_column_blob(st, 1);
		if (n <= 0 || n > VEIL_STORE_MAX_PUSH_TOKEN || p == NULL) {
			rc = VEIL_EIO;
		} else {
			*type = (uint8_t)sqlite3_column_int(st, 0);
			memcpy(token, p, (size_t)n);
			*len = (size_t)n;
			rc = 0;
		}
	} else {
		rc = rc == SQLITE_DONE ? VEIL_ENOTFOUND : sq_err(rc);
	}
	done(st);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_token_use(void *be, const uint8_t hash[static 32], uint64_t expires_ms,
                        uint64_t now_ms)
{
	struct sq_backend *b = be;
	sqlite3_stmt *st;
	int rc;

	/* Past its expiry the record may be gone, so a replay could pass. */
	if (expires_ms <= now_ms)
		return VEIL_ETIMEOUT;
	pthread_mutex_lock(&b->mu);
	st = stmt(&b->sy, ST_TOKEN_PURGE);
	bind_u64(st, 1, now_ms);
	rc = exec_done(st);
	if (rc != 0)
		goto out;
	st = stmt(&b->sy, ST_TOKEN_INSERT);
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	bind_u64(st, 2, expires_ms);
	rc = exec_done(st);
	if (rc == 0 && sqlite3_changes(b->sy.db) == 0)
		rc = VEIL_EREPLAY;
out:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_msg_count(void *be, const uint8_t recipient[static VEIL_ID_LEN], uint64_t now_ms,
                        uint64_t *count)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_MSG_COUNT_LIVE);
	bind_id(st, 1, recipient);
	bind_u64(st, 2, now_ms);
	int rc = exec_int(st, count);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* --- linked contact data and revocation (any thread, under mu) --- */

/* Rolls back an open transaction of the sy connection, if any. */
static void sy_rollback(struct sq_backend *b)
{
	if (sqlite3_get_autocommit(b->sy.db) == 0)
		(void)exec_done(stmt(&b->sy, ST_ROLLBACK));
}

static int sq_link_pending_put(void *be, const struct veil_link_pending *p)
{
	struct sq_backend *b = be;
	struct veil_identity_rec rec;
	int rc;

	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_ID_BY_ID);
	bind_id(st, 1, p->id);
	rc = read_identity(st, &rec);
	if (rc != 0)
		goto out;
	st = stmt(&b->sy, ST_PEND_PUT);
	sqlite3_bind_blob(st, 1, p->vid, VEIL_STORE_VID_LEN, SQLITE_STATIC);
	bind_id(st, 2, p->id);
	sqlite3_bind_int(st, 3, p->kind);
	sqlite3_bind_blob(st, 4, p->hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, p->prf, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, p->code_mac, 32, SQLITE_STATIC);
	bind_u64(st, 7, p->expires_ms);
	rc = exec_done(st);
out:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* Copies a 32-byte blob column; VEIL_EIO if it has another size. */
static int col_blob32(sqlite3_stmt *st, int i, uint8_t out[static 32])
{
	const void *p = sqlite3_column_blob(st, i);
	if (p == NULL || sqlite3_column_bytes(st, i) != 32)
		return VEIL_EIO;
	memcpy(out, p, 32);
	return 0;
}

static int sq_link_confirm(void *be, const uint8_t vid[static VEIL_STORE_VID_LEN],
                           const uint8_t code_mac[static 32], uint32_t max_attempts,
                           uint64_t now_ms, struct veil_link_pending *out)
{
	struct sq_backend *b = be;
	uint8_t mac[32];
	uint64_t attempts = 0;
	int rc;

	pthread_mutex_lock(&b->mu);
	rc = exec_done(stmt(&b->sy, ST_BEGIN));
	if (rc != 0)
		goto unlock;
	sqlite3_stmt *st = stmt(&b->sy, ST_PEND_GET);
	sqlite3_bind_blob(st, 1, vid, VEIL_STORE_VID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? VEIL_ENOTFOUND : sq_err(rc);
		done(st);
		goto out;
	}
	memcpy(out->vid, vid, VEIL_STORE_VID_LEN);
	rc = col_id(st, 0, out->id);
	out->kind = sqlite3_column_int(st, 1);
	if (rc == 0)
		rc = col_blob32(st, 2, out->hash);
	if (rc == 0)
		rc = col_blob32(st, 3, out->prf);
	if (rc == 0)
		rc = col_blob32(st, 4, mac);
	out->expires_ms = col_u64(st, 5);
	attempts = col_u64(st, 6);
	done(st);
	if (rc != 0)
		goto out;
	if (out->expires_ms <= now_ms || attempts >= max_attempts) {
		/* Dead either way: remove it so that it cannot be tried again. */
		rc = out->expires_ms <= now_ms ? VEIL_ETIMEOUT : VEIL_ELIMIT;
		st = stmt(&b->sy, ST_PEND_DELETE);
		sqlite3_bind_blob(st, 1, vid, VEIL_STORE_VID_LEN, SQLITE_STATIC);
		if (exec_done(st) != 0 || exec_done(stmt(&b->sy, ST_COMMIT)) != 0)
			rc = VEIL_EIO;
		goto out;
	}
	if (veil_memcmp(mac, code_mac, sizeof(mac)) != 0) {
		st = stmt(&b->sy, ST_PEND_ATTEMPT);
		sqlite3_bind_blob(st, 1, vid, VEIL_STORE_VID_LEN, SQLITE_STATIC);
		rc = exec_done(st);
		if (rc == 0)
			rc = exec_done(stmt(&b->sy, ST_COMMIT));
		if (rc == 0)
			rc = VEIL_EAUTH;
		goto out;
	}
	st = stmt(&b->sy, ST_LINK_PUT);
	bind_id(st, 1, out->id);
	sqlite3_bind_int(st, 2, out->kind);
	sqlite3_bind_blob(st, 3, out->hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, out->prf, 32, SQLITE_STATIC);
	bind_u64(st, 5, now_ms);
	rc = exec_done(st);
	if (rc != 0)
		goto out;
	st = stmt(&b->sy, ST_PEND_DELETE);
	sqlite3_bind_blob(st, 1, vid, VEIL_STORE_VID_LEN, SQLITE_STATIC);
	rc = exec_done(st);
	if (rc == 0)
		rc = exec_done(stmt(&b->sy, ST_COMMIT));
out:
	sy_rollback(b);
unlock:
	pthread_mutex_unlock(&b->mu);
	sodium_memzero(mac, sizeof(mac));
	if (rc != 0 && rc != VEIL_EAUTH && rc != VEIL_ETIMEOUT && rc != VEIL_ELIMIT)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int sq_link_get(void *be, const uint8_t id[static VEIL_ID_LEN], int kind,
                       uint8_t hash[static 32])
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_LINK_GET);
	bind_id(st, 1, id);
	sqlite3_bind_int(st, 2, kind);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = col_blob32(st, 0, hash);
	else
		rc = rc == SQLITE_DONE ? VEIL_ENOTFOUND : sq_err(rc);
	done(st);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_link_delete(void *be, const uint8_t id[static VEIL_ID_LEN], int kind)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	int rc = exec_done(stmt(&b->sy, ST_BEGIN));
	if (rc != 0)
		goto unlock;
	sqlite3_stmt *st = stmt(&b->sy, ST_LINK_DELETE);
	bind_id(st, 1, id);
	sqlite3_bind_int(st, 2, kind);
	rc = exec_done(st);
	if (rc == 0) {
		st = stmt(&b->sy, ST_PEND_DELETE_ID);
		bind_id(st, 1, id);
		sqlite3_bind_int(st, 2, kind);
		rc = exec_done(st);
	}
	if (rc == 0)
		rc = exec_done(stmt(&b->sy, ST_COMMIT));
	sy_rollback(b);
unlock:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_link_find(void *be, int kind, int by_prf, const uint8_t value[static 32],
                        uint8_t (*ids)[VEIL_ID_LEN], size_t max, size_t *n)
{
	struct sq_backend *b = be;
	int rc;
	*n = 0;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, by_prf ? ST_LINK_FIND_PRF : ST_LINK_FIND_HASH);
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_blob(st, 2, value, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
		if (col_id(st, 0, ids[*n]) != 0) {
			rc = SQLITE_CORRUPT;
			break;
		}
		(*n)++;
	}
	rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sq_err(rc);
	done(st);
	pthread_mutex_unlock(&b->mu);
	if (rc != 0)
		*n = 0;
	return rc;
}

static int sq_revocation_set(void *be, const uint8_t id[static VEIL_ID_LEN],
                             const uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t now_ms)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_REVKEY_SET);
	bind_id(st, 1, id);
	sqlite3_bind_blob(st, 2, key, VEIL_STORE_REVKEY_LEN, SQLITE_STATIC);
	bind_u64(st, 3, now_ms);
	int rc = exec_done(st);
	if (rc == 0 && sqlite3_changes(b->sy.db) == 0)
		rc = VEIL_ENOTFOUND;
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_revocation_get(void *be, const uint8_t id[static VEIL_ID_LEN],
                             uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t *changed_ms)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_REVKEY_GET);
	bind_id(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		if (p == NULL || sqlite3_column_bytes(st, 0) != VEIL_STORE_REVKEY_LEN) {
			rc = VEIL_EIO;
		} else {
			memcpy(key, p, VEIL_STORE_REVKEY_LEN);
			*changed_ms = col_u64(st, 1);
			rc = 0;
		}
	} else {
		rc = rc == SQLITE_DONE ? VEIL_ENOTFOUND : sq_err(rc);
	}
	done(st);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* --- invite codes --- */

static int sq_invite_put(void *be, const struct veil_invite_rec *r)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_INV_PUT);
	sqlite3_bind_blob(st, 1, r->hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->handle, -1, SQLITE_STATIC);
	bind_u64(st, 3, r->uses);
	bind_u64(st, 4, r->created_ms);
	bind_u64(st, 5, r->expires_ms);
	int rc = sqlite3_step(st);
	done(st);
	pthread_mutex_unlock(&b->mu);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return VEIL_EEXIST;
	return rc == SQLITE_DONE ? 0 : sq_err(rc);
}

static int sq_invite_use(void *be, const uint8_t hash[static 32], uint64_t now_ms)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_INV_USE);
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	bind_u64(st, 2, now_ms);
	int rc = exec_done(st);
	if (rc == 0 && sqlite3_changes(b->sy.db) == 0) {
		/* Not taken: say why. */
		st = stmt(&b->sy, ST_INV_GET);
		sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			uint64_t uses = col_u64(st, 0), used = col_u64(st, 1), exp = col_u64(st, 2);
			if (sqlite3_column_int(st, 3) != 0)
				rc = VEIL_ENOTFOUND;
			else if (exp != 0 && exp <= now_ms)
				rc = VEIL_ETIMEOUT;
			else if (used >= uses)
				rc = VEIL_ELIMIT;
			else
				rc =
				    VEIL_EIO; /* changed between the two statements: cannot happen under mu */
		} else {
			rc = s == SQLITE_DONE ? VEIL_ENOTFOUND : sq_err(s);
		}
		done(st);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_invite_unuse(void *be, const uint8_t hash[static 32])
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_INV_UNUSE);
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	int rc = exec_done(st);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_invite_list(void *be, struct veil_invite_rec **out, size_t *n)
{
	struct sq_backend *b = be;
	struct veil_invite_rec *v = NULL;
	size_t cnt = 0, cap = 0;
	int rc = 0;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_INV_LIST);
	bind_u64(st, 1, VEIL_STORE_MAX_INVITES);
	for (;;) {
		int s = sqlite3_step(st);
		if (s == SQLITE_DONE)
			break;
		if (s != SQLITE_ROW) {
			rc = sq_err(s);
			break;
		}
		if (cnt == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct veil_invite_rec *nv = realloc(v, nc * sizeof *v);
			if (nv == NULL) {
				rc = VEIL_ENOMEM;
				break;
			}
			v = nv;
			cap = nc;
		}
		struct veil_invite_rec *r = &v[cnt];
		memset(r, 0, sizeof *r);
		const unsigned char *h = sqlite3_column_text(st, 1);
		if (sqlite3_column_bytes(st, 0) != 32 || h == NULL ||
		    sqlite3_column_bytes(st, 1) != VEIL_STORE_INVITE_HANDLE_LEN) {
			rc = VEIL_EIO;
			break;
		}
		memcpy(r->hash, sqlite3_column_blob(st, 0), 32);
		memcpy(r->handle, h, VEIL_STORE_INVITE_HANDLE_LEN);
		r->uses = (uint32_t)col_u64(st, 2);
		r->used = (uint32_t)col_u64(st, 3);
		r->created_ms = col_u64(st, 4);
		r->expires_ms = col_u64(st, 5);
		r->revoked = sqlite3_column_int(st, 6) != 0;
		cnt++;
	}
	done(st);
	pthread_mutex_unlock(&b->mu);
	if (rc != 0) {
		free(v);
		return rc;
	}
	*out = cnt > 0 ? v : NULL;
	if (cnt == 0)
		free(v);
	*n = cnt;
	return 0;
}

static int sq_invite_revoke(void *be, const char *handle)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_INV_REVOKE);
	sqlite3_bind_text(st, 1, handle, -1, SQLITE_STATIC);
	int rc = exec_done(st);
	if (rc == 0 && sqlite3_changes(b->sy.db) == 0)
		rc = VEIL_ENOTFOUND;
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_identity_revoke(void *be, const uint8_t id[static VEIL_ID_LEN])
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	int rc = exec_done(stmt(&b->sy, ST_BEGIN));
	if (rc != 0)
		goto unlock;
	sqlite3_stmt *st = stmt(&b->sy, ST_ID_SET_STATE);
	bind_id(st, 1, id);
	bind_u64(st, 2, VEIL_IDENTITY_INVALID);
	rc = exec_done(st);
	if (rc == 0 && sqlite3_changes(b->sy.db) == 0)
		rc = VEIL_ENOTFOUND;
	if (rc == 0) {
		st = stmt(&b->sy, ST_LINK_DELETE_ALL);
		bind_id(st, 1, id);
		rc = exec_done(st);
	}
	if (rc == 0) {
		st = stmt(&b->sy, ST_PEND_DELETE_ID);
		bind_id(st, 1, id);
		sqlite3_bind_int(st, 2, -1);
		rc = exec_done(st);
	}
	if (rc == 0)
		rc = exec_done(stmt(&b->sy, ST_COMMIT));
	sy_rollback(b);
unlock:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* --- administration (any thread, under mu; login on the store thread) --- */

static int sq_identity_list(void *be, const uint8_t *only, const uint8_t *after, size_t max,
                            struct veil_identity_info **out, size_t *n)
{
	struct sq_backend *b = be;
	struct veil_identity_info *v = NULL;
	size_t cnt = 0;
	int rc = 0;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_ID_LIST);
	sqlite3_bind_text(st, 1, only != NULL ? (const char *)only : "",
	                  only != NULL ? VEIL_ID_LEN : 0, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, after != NULL ? (const char *)after : "",
	                  after != NULL ? VEIL_ID_LEN : 0, SQLITE_STATIC);
	bind_u64(st, 3, max);
	v = calloc(max, sizeof *v);
	if (v == NULL)
		rc = VEIL_ENOMEM;
	while (rc == 0 && cnt < max) {
		int r = sqlite3_step(st);
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			rc = sq_err(r);
			break;
		}
		struct veil_identity_info *e = &v[cnt];
		rc = col_id(st, 0, e->rec.id);
		if (rc == 0 && sqlite3_column_bytes(st, 1) != VEIL_KEY_LEN)
			rc = VEIL_EIO;
		if (rc != 0)
			break;
		memcpy(e->rec.pk, sqlite3_column_blob(st, 1), VEIL_KEY_LEN);
		e->rec.state = sqlite3_column_int(st, 2);
		e->rec.feature_mask = col_u64(st, 3);
		e->rec.created_ms = col_u64(st, 4);
		e->last_login_ms = col_u64(st, 5);
		e->queued = col_u64(st, 6);
		cnt++;
	}
	done(st);
	pthread_mutex_unlock(&b->mu);
	if (rc == 0 && only != NULL && cnt == 0)
		rc = VEIL_ENOTFOUND;
	if (rc != 0 || cnt == 0) {
		free(v);
		v = NULL;
	}
	if (rc == 0) {
		*out = v;
		*n = cnt;
	}
	return rc;
}

static int sq_identity_delete(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t *dropped)
{
	struct sq_backend *b = be;
	static const enum sq_stmt wipe[] = {ST_LINK_DELETE_ALL, ST_PUSH_DELETE, ST_REVKEY_DELETE};
	pthread_mutex_lock(&b->mu);
	int rc = exec_done(stmt(&b->sy, ST_BEGIN));
	if (rc != 0)
		goto unlock;
	sqlite3_stmt *st = stmt(&b->sy, ST_ID_SET_STATE);
	bind_id(st, 1, id);
	bind_u64(st, 2, VEIL_IDENTITY_INVALID);
	rc = exec_done(st);
	if (rc == 0 && sqlite3_changes(b->sy.db) == 0)
		rc = VEIL_ENOTFOUND;
	if (rc == 0) {
		st = stmt(&b->sy, ST_MSG_DELETE_RCPT);
		bind_id(st, 1, id);
		rc = exec_done(st);
		*dropped = rc == 0 ? (uint64_t)sqlite3_changes(b->sy.db) : 0;
	}
	for (size_t i = 0; rc == 0 && i < VEIL_ARRAY_LEN(wipe); i++) {
		st = stmt(&b->sy, wipe[i]);
		bind_id(st, 1, id);
		rc = exec_done(st);
	}
	if (rc == 0) {
		st = stmt(&b->sy, ST_PEND_DELETE_ID);
		bind_id(st, 1, id);
		sqlite3_bind_int(st, 2, -1);
		rc = exec_done(st);
	}
	if (rc == 0)
		rc = exec_done(stmt(&b->sy, ST_COMMIT));
	sy_rollback(b);
	/* The store thread's counts of that queue are wrong now: it starts afresh. */
	if (rc == 0)
		atomic_store_explicit(&b->caches_stale, true, memory_order_release);
unlock:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_queue_stats(void *be, uint64_t now_ms, struct veil_queue_stats *q)
{
	struct sq_backend *b = be;
	pthread_mutex_lock(&b->mu);
	sqlite3_stmt *st = stmt(&b->sy, ST_QSTATS);
	bind_u64(st, 1, now_ms);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		q->messages = col_u64(st, 0);
		q->bytes = col_u64(st, 1);
		q->recipients = col_u64(st, 2);
		q->expired = col_u64(st, 3);
		rc = 0;
	} else {
		rc = sq_err(rc);
	}
	done(st);
	if (rc == 0) {
		st = stmt(&b->sy, ST_QMAX);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW && col_id(st, 0, q->max_id) == 0)
			q->max_queue = col_u64(st, 1);
		else if (r != SQLITE_ROW && r != SQLITE_DONE)
			rc = sq_err(r);
		done(st);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_ping(void *be)
{
	struct sq_backend *b = be;
	uint64_t one = 0;
	pthread_mutex_lock(&b->mu);
	int rc = exec_int(stmt(&b->sy, ST_PING), &one);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int sq_q_login(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t now_ms)
{
	struct sq_backend *b = be;
	sqlite3_stmt *st = stmt(&b->q, ST_LOGIN);
	bind_id(st, 1, id);
	bind_u64(st, 2, now_ms);
	return exec_done(st);
}

/* --- disk full --- */

/* Allocates the reserve file; 0, or -1 (nothing left behind) if there is no room. */
static int reserve_make(struct sq_backend *b)
{
	if (b->reserve_bytes == 0 || b->reserve_present)
		return 0;
	int fd = open(b->reserve_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = posix_fallocate(fd, 0, (off_t)b->reserve_bytes);
	if (rc == 0 && fsync(fd) != 0)
		rc = errno;
	close(fd);
	if (rc != 0) {
		unlink(b->reserve_path);
		return -1;
	}
	b->reserve_present = true;
	return 0;
}

static void full_enter(struct sq_backend *b)
{
	uint64_t now = veil_mono_ms();
	b->full_probe_ms = now + 1000;
	if (b->full)
		return;
	b->full = true;
	b->refused_full = 0;
	if (b->reserve_present) {
		unlink(b->reserve_path);
		b->reserve_present = false;
		veil_log_error(
		    "store: disk full: new messages are refused until space returns; the "
		    "%llu-byte reserve was released so that acks and expiry can go on",
		    (unsigned long long)b->reserve_bytes);
	} else {
		veil_log_error("store: disk full: new messages are refused until space returns (no "
		               "reserve was left to release)");
	}
}

static int sq_q_put_guarded(void *be, const struct veil_msg_rec *m, uint64_t *seq)
{
	struct sq_backend *b = be;
	if (b->full) {
		uint64_t now = veil_mono_ms();
		if (now < b->full_probe_ms) {
			*seq = 0;
			b->refused_full++;
			return VEIL_ENOSPC;
		}
		b->full_probe_ms = now + 1000; /* one try a second */
	}
	int rc = sq_q_put(be, m, seq);
	if (rc == VEIL_ENOSPC)
		full_enter(b);
	else if (rc == 0)
		b->batch_puts_ok++;
	return rc;
}

static int sq_batch_begin_guarded(void *be)
{
	struct sq_backend *b = be;
	b->batch_puts_ok = 0;
	if (atomic_exchange_explicit(&b->caches_stale, false, memory_order_acq_rel))
		caches_clear(b);
	int rc = sq_batch_begin(be);
	if (rc == VEIL_ENOSPC)
		full_enter(b);
	return rc;
}

static int sq_batch_commit_guarded(void *be)
{
	struct sq_backend *b = be;
	int rc = sq_batch_commit(be);
	if (rc == VEIL_ENOSPC) {
		full_enter(b);
		return rc;
	}
	if (rc != 0)
		return rc;
	full_checkpoint(b);
	uint64_t now = veil_mono_ms();
	if (b->full && b->batch_puts_ok > 0) {
		b->full = false;
		veil_log_info("store: disk space is back: messages are stored again (%llu refused "
		              "while the disk was full)",
		              (unsigned long long)b->refused_full);
	}
	/* Once there is room for it and some, the reserve is made again. */
	if (!b->full && !b->reserve_present && b->reserve_bytes > 0 && now >= b->reserve_check_ms) {
		struct statvfs vf;
		b->reserve_check_ms = now + 10000;
		if (statvfs(b->reserve_path, &vf) == 0 &&
		    (uint64_t)vf.f_bavail * vf.f_frsize >= 2 * b->reserve_bytes &&
		    reserve_make(b) == 0)
			veil_log_info("store: the disk reserve is in place again");
	}
	return 0;
}

static int sq_q_ack_checked(void *be, const uint8_t recipient[static VEIL_ID_LEN],
                            const uint8_t sender[static VEIL_ID_LEN], uint64_t msg_id)
{
	int rc = sq_q_ack(be, recipient, sender, msg_id);
	if (rc == VEIL_ENOSPC)
		full_enter(be);
	return rc;
}

static int sq_q_expire_checked(void *be, uint64_t now_ms, uint64_t *deleted)
{
	int rc = sq_q_expire(be, now_ms, deleted);
	if (rc == VEIL_ENOSPC)
		full_enter(be);
	return rc;
}

const struct veil_store_ops veil_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .batch_begin = sq_batch_begin_guarded,
    .batch_commit = sq_batch_commit_guarded,
    .batch_rollback = sq_batch_rollback,
    .q_put = sq_q_put_guarded,
    .q_ack = sq_q_ack_checked,
    .q_expire = sq_q_expire_checked,
    .q_fetch = sq_q_fetch,
    .s_identity_create = sq_identity_create,
    .s_identity_get = sq_identity_get,
    .s_identity_set_state = sq_identity_set_state,
    .s_identity_set_features = sq_identity_set_features,
    .s_push_token_set = sq_push_token_set,
    .s_push_token_get = sq_push_token_get,
    .s_token_use = sq_token_use,
    .s_msg_count = sq_msg_count,
    .s_link_pending_put = sq_link_pending_put,
    .s_link_confirm = sq_link_confirm,
    .s_link_get = sq_link_get,
    .s_link_delete = sq_link_delete,
    .s_link_find = sq_link_find,
    .s_revocation_set = sq_revocation_set,
    .s_revocation_get = sq_revocation_get,
    .s_identity_revoke = sq_identity_revoke,
    .s_invite_put = sq_invite_put,
    .s_invite_use = sq_invite_use,
    .s_invite_unuse = sq_invite_unuse,
    .s_invite_list = sq_invite_list,
    .s_invite_revoke = sq_invite_revoke,
    .s_identity_list = sq_identity_list,
    .s_identity_delete = sq_identity_delete,
    .s_queue_stats = sq_queue_stats,
    .s_ping = sq_ping,
    .q_login = sq_q_login,
};
