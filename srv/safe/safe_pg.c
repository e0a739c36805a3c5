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
	char *url;
	PGconn *c;
};

static void first_line(const char *msg, char *out, size_t cap)
{
	size_t n = strcspn(msg, "\r\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, msg, n);
	out[n] = '\0';
}

static void on_notice(void *arg, const char *msg)
{
	char line[200];
	(void)arg;
	first_line(msg, line, sizeof line);
	veil_log_debug("safe: PostgreSQL: %s", line);
}

static int up(struct safe_pg *p)
{
	if (p->c != NULL && PQstatus(p->c) == CONNECTION_OK)
		return 0;
	bool again = p->c != NULL;
	PQfinish(p->c);
	const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *const vals[] = {"5", "veild-safe", p->url, NULL};
	p->c = PQconnectdbParams(keys, vals, 1);
	if (p->c == NULL)
		return VEIL_ENOMEM;
	PQsetNoticeProcessor(p->c, on_notice, NULL);
	char msg[200];
	if (PQstatus(p->c) != CONNECTION_OK)
		goto fail;
	for (int i = 0; i < S_COUNT; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", i);
		PGresult *r = PQprepare(p->c, name, ssql[i], 0, NULL);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (!ok)
			goto fail;
	}
	if (again)
		veil_log_info("safe: the PostgreSQL connection is back");
	return 0;
fail:
	first_line(PQerrorMessage(p->c), msg, sizeof msg);
	veil_log_error("safe: cannot use PostgreSQL: %s", msg);
	PQfinish(p->c);
	p->c = NULL;
	return VEIL_EIO;
}

struct args {
	int n;
	const char *v[3];
	int l[3];
	int f[3];
	uint8_t ib[3][8];
};

static void a_bytes(struct args *a, const void *p, size_t len)
{
	a->v[a->n] = p != NULL ? (const char *)p : "";
	a->l[a->n] = (int)len;
	a->f[a->n++] = 1;
}

static void a_i64(struct args *a, int64_t v)
{
	uint64_t u = (uint64_t)v;
	for (int i = 0; i < 8; i++)
		a->ib[a->n][i] = (uint8_t)(u >> (56 - 8 * i));
	a_bytes(a, a->ib[a->n], 8);
}

static int64_t get_i64(const PGresult *r, int row, int col)
{
	const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
		return 0;
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u = u << 8 | p[i];
	return (int64_t)u;
}

static PGresult *run(struct safe_pg *p, int q, const struct args *a)
{
	if (up(p) != 0)
		return NULL;
	char name[16];
	snprintf(name, sizeof name, "s%d", q);
	PGresult *r = PQexecPrepared(p->c, name, a->n, a->v, a->l, a->f, 1);
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	char msg[200];
	first_line(PQerrorMessage(p->c), msg, sizeof msg);
	veil_log_error("safe: a PostgreSQL statement failed: %s", msg);
	PQclear(r);
	return NULL;
}

int safe_pg_open(struct safe_pg **out, const char *url)
{
	*out = NULL;
	struct safe_pg *p = calloc(1, sizeof *p);
	if (p == NULL)
		return VEIL_ENOMEM;
	p->url = strdup(url);
	int rc = p->url == NULL ? VEIL_ENOMEM : up(p);
	if (rc != 0) {
		safe_pg_close(p);
		return rc;
	}
	*out = p;
	return 0;
}

void safe_pg_close(struct safe_pg *p)
{
	if (p == NULL)
		return;
	PQfinish(p->c);
	free(p->url);
	free(p);
}

int safe_pg_state(struct safe_pg *p, const uint8_t id[static 32], uint64_t live_after, int *exists,
                  uint64_t *count)
{
	struct args a = {0};
	a_bytes(&a, id, 32);
	a_i64(&a, (int64_t)live_after);
	PGresult *r = run(p, S_STATE, &a);
	if (r == NULL)
		return VEIL_EIO;
	*exists = get_i64(r, 0, 0) > 0;
	*count = (uint64_t)get_i64(r, 0, 1);
	PQclear(r);
	return 0;
}

int safe_pg_put(struct safe_pg *p, const uint8_t id[static 32], const uint8_t *data, size_t len,
                uint64_t now_ms)
{
	struct args a = {0};
	a_bytes(&a, id, 32);
	a_bytes(&a, data, len);
	a_i64(&a, (int64_t)now_ms);
	PGresult *r = run(p, S_PUT, &a);
	PQclear(r);
	return r != NULL ? 0 : VEIL_EIO;
}

int64_t safe_pg_get(struct safe_pg *p, const uint8_t id[static 32], uint64_t live_after, int fd)
{
	struct args a = {0};
	a_bytes(&a, id, 32);
	a_i64(&a, (int64_t)live_after);
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
	struct args a = {0};
	a_bytes(&a, id, 32);
	PGresult *r = run(p, S_DEL, &a);
	if (r == NULL)
		return VEIL_EIO;
	int rc = strcmp(PQcmdTuples(r), "0") == 0 ? VEIL_ENOTFOUND : 0;
	PQclear(r);
	return rc;
}

int64_t safe_pg_sweep(struct safe_pg *p, uint64_t dead_upto)
{
	struct args a = {0};
	a_i64(&a, (int64_t)dead_upto);
	PGresult *r = run(p, S_SWEEP, &a);
	if (r == NULL)
		return VEIL_EIO;
	int64_t n = (int64_t)strtoull(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return n;
}
