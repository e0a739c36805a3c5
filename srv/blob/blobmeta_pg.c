/*
 * Blob metadata in PostgreSQL, the table blobs (see blobmeta.h): one
 * connection through srv/store/pgconn.c (reconnect, statements prepared
 * once per connection, binary parameters); a lost connection fails the
 * request that saw it (500) and the next one reconnects.
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "blobmeta.h"
#include "store/pgconn.h"
#include "veil/err.h"
#include "veil/util.h"

enum { P_INSERT, P_GET, P_DELETE, P_USAGE, P_EXPIRED, P_COUNT };

static const char *const psql[P_COUNT] = {
    [P_INSERT] = "INSERT INTO blobs (id, dir, owner, size, created_ms, expires_ms, persist) "
                 "VALUES ($1::bytea, $2::bytea, $3::bytea, $4::int8, $5::int8, $6::int8, "
                 "$7::int8) ON CONFLICT (id) DO NOTHING",
    [P_GET] = "SELECT size, expires_ms, persist::int8 FROM blobs WHERE id = $1::bytea AND "
              "dir = $2::bytea",
    [P_DELETE] = "DELETE FROM blobs WHERE id = $1::bytea AND dir = $2::bytea",
    [P_USAGE] = "SELECT COALESCE(SUM(size), 0)::int8 FROM blobs WHERE owner = $1::bytea AND "
                "expires_ms > $2::int8",
    [P_EXPIRED] = "SELECT id FROM blobs WHERE dir = $1::bytea AND expires_ms <= $2::int8 "
                  "LIMIT $3::int8",
};

struct meta_pg {
	struct veil_blobmeta base;
	struct veil_pgconn pg;
	uint8_t dirid[VEIL_BLOBMETA_DIRID_LEN];
};

static int m_insert(struct veil_blobmeta *bm, const uint8_t id[static VEIL_BLOBMETA_ID_LEN],
                    const uint8_t owner[static VEIL_ID_LEN], uint64_t size, uint64_t created_ms,
                    uint64_t expires_ms, int persist)
{
	struct meta_pg *m = (struct meta_pg *)bm;
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, VEIL_BLOBMETA_ID_LEN);
	veil_pg_bytes(&a, m->dirid, sizeof m->dirid);
	veil_pg_bytes(&a, owner, VEIL_ID_LEN);
	veil_pg_i64(&a, (int64_t)size);
	veil_pg_i64(&a, (int64_t)created_ms);
	veil_pg_i64(&a, (int64_t)expires_ms);
	veil_pg_i64(&a, persist ? 1 : 0);
	PGresult *r = veil_pgconn_run(&m->pg, P_INSERT, &a);
	PQclear(r);
	return r != NULL ? 0 : VEIL_EIO;
}

static int m_get(struct veil_blobmeta *bm, const uint8_t id[static VEIL_BLOBMETA_ID_LEN],
                 struct veil_blobmeta_row *row)
{
	struct meta_pg *m = (struct meta_pg *)bm;
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, VEIL_BLOBMETA_ID_LEN);
	veil_pg_bytes(&a, m->dirid, sizeof m->dirid);
	PGresult *r = veil_pgconn_run(&m->pg, P_GET, &a);
	if (r == NULL)
		return VEIL_EIO;
	int rc = VEIL_ENOTFOUND;
	if (PQntuples(r) == 1) {
		row->size = (uint64_t)veil_pg_get_i64(r, 0, 0);
		row->expires_ms = (uint64_t)veil_pg_get_i64(r, 0, 1);
		row->persist = veil_pg_get_i64(r, 0, 2) != 0;
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int m_del(struct veil_blobmeta *bm, const uint8_t id[static VEIL_BLOBMETA_ID_LEN])
{
	struct meta_pg *m = (struct meta_pg *)bm;
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, VEIL_BLOBMETA_ID_LEN);
	veil_pg_bytes(&a, m->dirid, sizeof m->dirid);
	PGresult *r = veil_pgconn_run(&m->pg, P_DELETE, &a);
	PQclear(r);
	return r != NULL ? 0 : VEIL_EIO;
}

static int m_usage(struct veil_blobmeta *bm, const uint8_t owner[static VEIL_ID_LEN],
                   uint64_t now_ms, uint64_t *used)
{
	struct meta_pg *m = (struct meta_pg *)bm;
	struct veil_pg_args a = {0};
	*used = 0;
	veil_pg_bytes(&a, owner, VEIL_ID_LEN);
	veil_pg_i64(&a, (int64_t)now_ms);
	PGresult *r = veil_pgconn_run(&m->pg, P_USAGE, &a);
	if (r == NULL)
		return VEIL_EIO;
	int rc = VEIL_EIO;
	if (PQntuples(r) == 1) {
		*used = (uint64_t)veil_pg_get_i64(r, 0, 0);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int m_expired(struct veil_blobmeta *bm, uint64_t now_ms, uint8_t ids[][VEIL_BLOBMETA_ID_LEN],
                     int max)
{
	struct meta_pg *m = (struct meta_pg *)bm;
	struct veil_pg_args a = {0};
	if (max > VEIL_BLOBMETA_EXPIRED_MAX)
		max = VEIL_BLOBMETA_EXPIRED_MAX;
	veil_pg_bytes(&a, m->dirid, sizeof m->dirid);
	veil_pg_i64(&a, (int64_t)now_ms);
	veil_pg_i64(&a, max);
	PGresult *r = veil_pgconn_run(&m->pg, P_EXPIRED, &a);
	if (r == NULL)
		return VEIL_EIO;
	int k = 0, n = PQntuples(r);
	for (int i = 0; i < n && k < max; i++)
		if (PQgetlength(r, i, 0) == VEIL_BLOBMETA_ID_LEN)
			memcpy(ids[k++], PQgetvalue(r, i, 0), VEIL_BLOBMETA_ID_LEN);
	PQclear(r);
	return k;
}

static void m_close(struct veil_blobmeta *bm)
{
	struct meta_pg *m = (struct meta_pg *)bm;
	if (m == NULL)
		return;
	veil_pgconn_close(&m->pg);
	free(m);
}

static const struct veil_blobmeta_ops pg_ops = {
    .insert = m_insert,
    .get = m_get,
    .del = m_del,
    .usage = m_usage,
    .expired = m_expired,
    .close = m_close,
};

int veil_blobmeta_pg_open(struct veil_blobmeta **out, const char *url,
                          const uint8_t dirid[static VEIL_BLOBMETA_DIRID_LEN])
{
	*out = NULL;
	struct meta_pg *m = calloc(1, sizeof *m);
	if (m == NULL)
		return VEIL_ENOMEM;
	m->base.ops = &pg_ops;
	memcpy(m->dirid, dirid, sizeof m->dirid);
	m->pg = (struct veil_pgconn){.tag = "blob", .sql = psql, .nsql = P_COUNT, .prefix = 'b'};
	int rc = veil_pgconn_open(&m->pg, url);
	if (rc != 0) {
		free(m);
		return rc;
	}
	*out = &m->base;
	return 0;
}
