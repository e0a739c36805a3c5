/*
 * Threema Safe backups in PostgreSQL (see safe_pg.h). One connection, each
 * statement prepared once per connection, binary parameters; a lost
 * connection fails the request that saw it (500) and the next reconnects.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "safe_pg.h"
#include "store/pgconn.h"
#include "veil/err.h"
#include "veil/util.h"

enum { S_STATE, S_PUT, S_GET, S_DEL, S_SWEEP, S_COUNT };

static const char *const ssql[S_COUNT] = {
    [S_STATE] = "SELECT (SELECT COUNT(*) FROM safe_backups WHERE id = $1::bytea AND "
                "updated_ms > $2::int8), (SELECT COUNT(*) FROM safe_backups WHERE "
                "updated_ms > $2::int8)",
    [S_PUT] = "INSERT INTO safe_backups (id, data, updated_ms) VALUES ($1::bytea, $2::bytea, "
              "$3::int8) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, "
              "updated_ms = EXCLUDED.updated_ms",
    [S_GET] = "SELECT data FROM safe_backups WHERE id = $1::bytea AND updated_ms > $2::int8",
    [S_DEL] = "DELETE FROM safe_backups WHERE id = $1::bytea",
    [S_SWEEP] = "DELETE FROM safe_backups WHERE updated_ms <= $1::int8",
};

struct safe_pg {
	struct veil_pgconn pg;
};

/* Runs statement q: its result or NULL (logged). */
static PGresult *run(struct safe_pg *p, int q, const struct veil_pg_args *a)
{
	return veil_pgconn_run(&p->pg, q, a);
}

int safe_pg_open(struct safe_pg **out, const char *url)
{
	*out = NULL;
	struct safe_pg *p = calloc(1, sizeof *p);
	if (p == NULL)
		return VEIL_ENOMEM;
	p->pg = (struct veil_pgconn){.tag = "safe", .sql = ssql, .nsql = S_COUNT, .prefix = 's'};
	int rc = veil_pgconn_open(&p->pg, url);
	if (rc != 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void safe_pg_close(struct safe_pg *p)
{
	if (p == NULL)
		return;
	veil_pgconn_close(&p->pg);
	free(p);
}

int safe_pg_state(struct safe_pg *p, const uint8_t id[static 32], uint64_t live_after, int *exists,
                  uint64_t *count)
{
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, 32);
	veil_pg_i64(&a, (int64_t)live_after);
	PGresult *r = run(p, S_STATE, &a);
	if (r == NULL)
		return VEIL_EIO;
	*exists = veil_pg_get_i64(r, 0, 0) > 0;
	*count = (uint64_t)veil_pg_get_i64(r, 0, 1);
	PQclear(r);
	return 0;
}

int safe_pg_put(struct safe_pg *p, const uint8_t id[static 32], const uint8_t *data, size_t len,
                uint64_t now_ms)
{
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, 32);
	veil_pg_bytes(&a, data, len);
	veil_pg_i64(&a, (int64_t)now_ms);
	PGresult *r = run(p, S_PUT, &a);
	PQclear(r);
	return r != NULL ? 0 : VEIL_EIO;
}

int64_t safe_pg_get(struct safe_pg *p, const uint8_t id[static 32], uint64_t live_after, int fd)
{
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, 32);
	veil_pg_i64(&a, (int64_t)live_after);
	PGresult *r = run(p, S_GET, &a);
	if (r == NULL)
		return VEIL_EIO;
	int64_t rc = VEIL_ENOTFOUND;
	if (PQntuples(r) == 1) {
		const char *d = PQgetvalue(r, 0, 0);
		size_t n = (size_t)PQgetlength(r, 0, 0), o = 0;
		while (o < n) {
			ssize_t w = write(fd, d + o, n - o);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			o += (size_t)w;
		}
		rc = o == n ? (int64_t)n : VEIL_EIO;
	}
	PQclear(r);
	return rc;
}

int safe_pg_del(struct safe_pg *p, const uint8_t id[static 32])
{
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, 32);
	PGresult *r = run(p, S_DEL, &a);
	if (r == NULL)
		return VEIL_EIO;
	int rc = strcmp(PQcmdTuples(r), "0") == 0 ? VEIL_ENOTFOUND : 0;
	PQclear(r);
	return rc;
}

int64_t safe_pg_sweep(struct safe_pg *p, uint64_t dead_upto)
{
	struct veil_pg_args a = {0};
	veil_pg_i64(&a, (int64_t)dead_upto);
	PGresult *r = run(p, S_SWEEP, &a);
	if (r == NULL)
		return VEIL_EIO;
	int64_t n = (int64_t)strtoull(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return n;
}
