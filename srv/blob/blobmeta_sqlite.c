/* Blob metadata in SQLite, <blob dir>/blobs.db (see blobmeta.h). */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "blobmeta.h"
#include "veil/err.h"
#include "veil/util.h"

enum { Q_INSERT, Q_GET, Q_DELETE, Q_USAGE, Q_EXPIRED, Q_COUNT };

static const char *const qsql[Q_COUNT] = {
    [Q_INSERT] = ("INSERT OR IGNORE INTO blobs (id, owner, size, created_ms, expires_ms, persist) "
                  "VALUES (?, ?, ?, ?, ?, ?)"),
    [Q_GET] = "SELECT size, expires_ms, persist FROM blobs WHERE id = ?",
    [Q_DELETE] = "DELETE FROM blobs WHERE id = ?",
    [Q_USAGE] = "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE owner = ? AND expires_ms > ?",
    [Q_EXPIRED] = "SELECT id FROM blobs WHERE expires_ms <= ? LIMIT ?",
};

struct meta_sqlite {
	struct veil_blobmeta base;
	sqlite3 *db;
	sqlite3_stmt *st[Q_COUNT];
};

/* Steps st once and leaves it ready for the next use: SQLite's result code. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int m_insert(struct veil_blobmeta *bm, const uint8_t id[static VEIL_BLOBMETA_ID_LEN],
                    const uint8_t owner[static VEIL_ID_LEN], uint64_t size, uint64_t created_ms,
                    uint64_t expires_ms, int persist)
{
	sqlite3_stmt *st = ((struct meta_sqlite *)bm)->st[Q_INSERT];
	sqlite3_bind_blob(st, 1, id, VEIL_BLOBMETA_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, owner, VEIL_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)created_ms);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)expires_ms);
	sqlite3_bind_int(st, 6, persist);
	return step_done(st) == SQLITE_DONE ? 0 : VEIL_EIO;
}

static int m_get(struct veil_blobmeta *bm, const uint8_t id[static VEIL_BLOBMETA_ID_LEN],
                 struct veil_blobmeta_row *r)
{
	sqlite3_stmt *st = ((struct meta_sqlite *)bm)->st[Q_GET];
	sqlite3_bind_blob(st, 1, id, VEIL_BLOBMETA_ID_LEN, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->size = (uint64_t)sqlite3_column_int64(st, 0);
		r->expires_ms = (uint64_t)sqlite3_column_int64(st, 1);
		r->persist = sqlite3_column_int(st, 2);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? VEIL_ENOTFOUND : VEIL_EIO;
}

static int m_del(struct veil_blobmeta *bm, const uint8_t id[static VEIL_BLOBMETA_ID_LEN])
{
	sqlite3_stmt *st = ((struct meta_sqlite *)bm)->st[Q_DELETE];
	sqlite3_bind_blob(st, 1, id, VEIL_BLOBMETA_ID_LEN, SQLITE_STATIC);
	return step_done(st) == SQLITE_DONE ? 0 : VEIL_EIO;
}

static int m_usage(struct veil_blobmeta *bm, const uint8_t owner[static VEIL_ID_LEN],
                   uint64_t now_ms, uint64_t *used)
{
	sqlite3_stmt *st = ((struct meta_sqlite *)bm)->st[Q_USAGE];
	*used = 0;
	sqlite3_bind_blob(st, 1, owner, VEIL_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*used = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW ? 0 : VEIL_EIO;
}

static int m_expired(struct veil_blobmeta *bm, uint64_t now_ms, uint8_t ids[][VEIL_BLOBMETA_ID_LEN],
                     int max)
{
	sqlite3_stmt *st = ((struct meta_sqlite *)bm)->st[Q_EXPIRED];
	int k = 0, rc = SQLITE_DONE;
	if (max > VEIL_BLOBMETA_EXPIRED_MAX)
		max = VEIL_BLOBMETA_EXPIRED_MAX;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now_ms);
	sqlite3_bind_int(st, 2, max);
	while (k < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if (sqlite3_column_bytes(st, 0) == VEIL_BLOBMETA_ID_LEN)
			memcpy(ids[k++], sqlite3_column_blob(st, 0), VEIL_BLOBMETA_ID_LEN);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return k < max && rc != SQLITE_DONE ? VEIL_EIO : k;
}

static void m_close(struct veil_blobmeta *bm)
{
	struct meta_sqlite *m = (struct meta_sqlite *)bm;
	if (m == NULL)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(m->st[i]);
	sqlite3_close(m->db);
	free(m);
}

static const struct veil_blobmeta_ops sqlite_ops = {
    .insert = m_insert,
    .get = m_get,
    .del = m_del,
    .usage = m_usage,
    .expired = m_expired,
    .close = m_close,
};

int veil_blobmeta_sqlite_open(struct veil_blobmeta **out, const char *path)
{
	*out = NULL;
	struct meta_sqlite *m = calloc(1, sizeof *m);
	if (m == NULL)
		return VEIL_ENOMEM;
	m->base.ops = &sqlite_ops;
	if (sqlite3_open_v2(path, &m->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	        SQLITE_OK ||
	    sqlite3_exec(m->db,
	                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                 "CREATE TABLE IF NOT EXISTS blobs (id BLOB PRIMARY KEY, owner BLOB NOT "
	                 "NULL, size INTEGER NOT NULL, created_ms INTEGER NOT NULL, expires_ms "
	                 "INTEGER NOT NULL, persist INTEGER NOT NULL);"
	                 "CREATE INDEX IF NOT EXISTS blobs_owner ON blobs(owner);"
	                 "CREATE INDEX IF NOT EXISTS blobs_expiry ON blobs(expires_ms);",
	                 NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (int i = 0; i < Q_COUNT; i++)
		if (sqlite3_prepare_v2(m->db, qsql[i], -1, &m->st[i], NULL) != SQLITE_OK)
			goto fail;
	*out = &m->base;
	return 0;
fail:
	m_close(&m->base);
	return VEIL_EIO;
}

int veil_blobmeta_sqlite_import(const char *path, struct veil_blobmeta *to, uint64_t now_ms)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = 0, rc;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "SELECT id, owner, size, created_ms, expires_ms, persist FROM blobs "
	                       "WHERE expires_ms > ?",
	                       -1, &st, NULL) != SQLITE_OK) {
		n = VEIL_EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != VEIL_BLOBMETA_ID_LEN ||
		    sqlite3_column_bytes(st, 1) != VEIL_ID_LEN)
			continue;
		if (to->ops->insert(to, sqlite3_column_blob(st, 0), sqlite3_column_blob(st, 1),
		                    (uint64_t)sqlite3_column_int64(st, 2),
		                    (uint64_t)sqlite3_column_int64(st, 3),
		                    (uint64_t)sqlite3_column_int64(st, 4),
		                    sqlite3_column_int(st, 5) != 0) != 0) {
			n = VEIL_EIO;
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE)
		n = VEIL_EIO;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}
