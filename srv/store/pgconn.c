/* A libpq connection with prepared statements (see pgconn.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pgconn.h"
#include "veil/err.h"
#include "veil/util.h"

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
	const struct veil_pgconn *p = arg;
	char line[200];
	first_line(msg, line, sizeof line);
	veil_log_debug("%s: PostgreSQL: %s", p->tag, line);
}

/* Connects (again after a loss) and prepares: 0, VEIL_ENOMEM or VEIL_EIO. */
static int up(struct veil_pgconn *p)
{
	if (p->c != NULL && PQstatus(p->c) == CONNECTION_OK)
		return 0;
	bool again = p->c != NULL;
	PQfinish(p->c);
	char app[64];
	snprintf(app, sizeof app, "veild-%s", p->tag);
	const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *const vals[] = {"5", app, p->url, NULL};
	p->c = PQconnectdbParams(keys, vals, 1);
	if (p->c == NULL)
		return VEIL_ENOMEM;
	PQsetNoticeProcessor(p->c, on_notice, p);
	char msg[200];
	if (PQstatus(p->c) != CONNECTION_OK)
		goto fail;
	for (int i = 0; i < p->nsql; i++) {
		char name[16];
		snprintf(name, sizeof name, "%c%d", p->prefix, i);
		PGresult *r = PQprepare(p->c, name, p->sql[i], 0, NULL);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (!ok)
			goto fail;
	}
	p->epoch++;
	if (again)
		veil_log_info("%s: the PostgreSQL connection is back", p->tag);
	return 0;
fail:
	first_line(PQerrorMessage(p->c), msg, sizeof msg);
	veil_log_error("%s: cannot use PostgreSQL: %s", p->tag, msg);
	PQfinish(p->c);
	p->c = NULL;
	return VEIL_EIO;
}

int veil_pgconn_open(struct veil_pgconn *p, const char *url)
{
	p->c = NULL;
	p->epoch = 0;
	p->url = strdup(url);
	if (p->url == NULL)
		return VEIL_ENOMEM;
	int rc = up(p);
	if (rc != 0)
		veil_pgconn_close(p);
	return rc;
}

void veil_pgconn_close(struct veil_pgconn *p)
{
	PQfinish(p->c);
	p->c = NULL;
	free(p->url);
	p->url = NULL;
}

PGresult *veil_pgconn_run(struct veil_pgconn *p, int q, const struct veil_pg_args *a)
{
	if (up(p) != 0)
		return NULL;
	char name[16];
	snprintf(name, sizeof name, "%c%d", p->prefix, q);
	PGresult *r = PQexecPrepared(p->c, name, a->n, a->v, a->l, a->f, 1);
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	char msg[200];
	first_line(PQerrorMessage(p->c), msg, sizeof msg);
	veil_log_error("%s: a PostgreSQL statement failed: %s", p->tag, msg);
	PQclear(r);
	return NULL;
}

void veil_pg_bytes(struct veil_pg_args *a, const void *p, size_t len)
{
	if (a->n >= VEIL_PG_ARGS_MAX)
		abort(); /* a programming error: a statement has a fixed number of parameters */
	a->v[a->n] = p != NULL ? (const char *)p : "";
	a->l[a->n] = (int)len;
	a->f[a->n++] = 1;
}

void veil_pg_i64(struct veil_pg_args *a, int64_t v)
{
	uint64_t u = (uint64_t)v;
	if (a->n >= VEIL_PG_ARGS_MAX)
		abort();
	for (int i = 0; i < 8; i++)
		a->ib[a->n][i] = (uint8_t)(u >> (56 - 8 * i));
	veil_pg_bytes(a, a->ib[a->n], 8);
}

int64_t veil_pg_get_i64(const PGresult *r, int row, int col)
{
	const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
		return 0;
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u = u << 8 | p[i];
	return (int64_t)u;
}
