/*
 * Gateway accounts in PostgreSQL (see gwdb_pg.h). One connection, used
 * under gwdb.c's mutex; every statement prepared once per connection and
 * run with binary parameters. A lost connection fails the call that saw
 * it (VEIL_EIO, logged) and the next call reconnects.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "gwdb_pg.h"
#include "store/pgconn.h"
#include "veil/err.h"
#include "veil/util.h"

enum {
	G_INSERT,
	G_GET,
	G_CHARGE,
	G_ADD_CREDITS,
	G_SET_CALLBACK,
	G_NOTE_FAIL,
	G_NOTE_OK,
	G_LIST,
	G_LIST_CB,
	G_CLAIM,
	G_COUNT
};

static const char *const gsql[G_COUNT] = {
    [G_INSERT] = "INSERT INTO gw_accounts (id, modes, credits, callback, secret_salt, "
                 "secret_hash, secret_sealed, sk_sealed, created_ms) VALUES ($1::bytea, "
                 "$2::int8, $3::int8, $4::text, $5::bytea, $6::bytea, $7::bytea, $8::bytea, "
                 "$9::int8) ON CONFLICT DO NOTHING",
    [G_GET] = "SELECT modes::int8, credits, callback, secret_salt, secret_hash, secret_sealed, "
              "sk_sealed, created_ms, cb_failures, cb_error, cb_error_ms FROM gw_accounts "
              "WHERE id = $1::bytea",
    [G_CHARGE] = "UPDATE gw_accounts SET credits = credits - $2::int8 WHERE id = $1::bytea "
                 "AND credits >= $2::int8",
    [G_ADD_CREDITS] = "UPDATE gw_accounts SET credits = GREATEST(0, credits + $2::int8) "
                      "WHERE id = $1::bytea",
    [G_SET_CALLBACK] = "UPDATE gw_accounts SET callback = $2::text WHERE id = $1::bytea",
    [G_NOTE_FAIL] = "UPDATE gw_accounts SET cb_failures = cb_failures + 1, cb_error = $2::text, "
                    "cb_error_ms = $3::int8 WHERE id = $1::bytea",
    [G_NOTE_OK] = "UPDATE gw_accounts SET cb_failures = 0 WHERE id = $1::bytea AND "
                  "cb_failures <> 0",
    [G_LIST] = "SELECT id FROM gw_accounts ORDER BY id LIMIT $1::int8",
    [G_LIST_CB] = "SELECT id FROM gw_accounts WHERE callback <> '' ORDER BY id LIMIT $1::int8",
    /* Held by this connection's session until it ends (a node that dies frees it). */
    [G_CLAIM] = "SELECT pg_try_advisory_lock($1::int8::int4, $2::int8::int4)::int::int8",
};

struct gw_pg {
	struct veil_pgconn pg;
};

/* Runs statement q: its result or NULL (logged). */
static PGresult *run(struct gw_pg *p, int q, const struct veil_pg_args *a)
{
	return veil_pgconn_run(&p->pg, q, a);
}

/* A statement changing rows: 0, VEIL_ENOTFOUND (none changed) or VEIL_EIO. */
static int run_changes(struct gw_pg *p, int q, const struct veil_pg_args *a)
{
	PGresult *r = run(p, q, a);
	if (r == NULL)
		return VEIL_EIO;
	int rc = strcmp(PQcmdTuples(r), "0") == 0 ? VEIL_ENOTFOUND : 0;
	PQclear(r);
	return rc;
}

int gw_pg_open(struct gw_pg **out, const char *url)
{
	*out = NULL;
	struct gw_pg *p = calloc(1, sizeof *p);
	if (p == NULL)
		return VEIL_ENOMEM;
	p->pg = (struct veil_pgconn){.tag = "gateway", .sql = gsql, .nsql = G_COUNT, .prefix = 'g'};
	int rc = veil_pgconn_open(&p->pg, url);
	if (rc != 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void gw_pg_close(struct gw_pg *p)
{
	if (p == NULL)
		return;
	veil_pgconn_close(&p->pg);
	free(p);
}

int gw_pg_insert(struct gw_pg *p, const uint8_t id[static VEIL_ID_LEN], const struct gw_row *r)
{
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, VEIL_ID_LEN);
	veil_pg_i64(&a, r->modes);
	veil_pg_i64(&a, r->credits);
	veil_pg_bytes(&a, r->callback, strlen(r->callback));
	veil_pg_bytes(&a, r->salt, sizeof r->salt);
	veil_pg_bytes(&a, r->hash, sizeof r->hash);
	veil_pg_bytes(&a, r->ssealed, r->ssealed_len);
	if (r->has_sk) {
		veil_pg_bytes(&a, r->ksealed, r->ksealed_len);
	} else {
		a.v[a.n] = NULL;
		a.l[a.n] = 0;
		a.f[a.n++] = 1;
	}
	veil_pg_i64(&a, (int64_t)r->created_ms);
	int rc = run_changes(p, G_INSERT, &a);
	return rc == VEIL_ENOTFOUND ? VEIL_EEXIST : rc;
}

/* Copies a bytea column of exactly want bytes (or at most cap with *len): false if it does not fit. */
static bool col_bytes(const PGresult *res, int col, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = (size_t)PQgetlength(res, 0, col);
	if (n > cap || (len == NULL && n != cap))
		return false;
	memcpy(out, PQgetvalue(res, 0, col), n);
	if (len != NULL)
		*len = n;
	return true;
}

int gw_pg_get(struct gw_pg *p, const uint8_t id[static VEIL_ID_LEN], struct gw_row *r)
{
	memset(r, 0, sizeof *r);
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, VEIL_ID_LEN);
	PGresult *res = run(p, G_GET, &a);
	if (res == NULL)
		return VEIL_EIO;
	int rc = VEIL_ENOTFOUND;
	if (PQntuples(res) == 1) {
		rc = VEIL_EIO;
		r->modes = (int)veil_pg_get_i64(res, 0, 0);
		r->credits = veil_pg_get_i64(res, 0, 1);
		snprintf(r->callback, sizeof r->callback, "%.*s", PQgetlength(res, 0, 2),
		         PQgetvalue(res, 0, 2));
		r->has_sk = !PQgetisnull(res, 0, 6);
		r->created_ms = (uint64_t)veil_pg_get_i64(res, 0, 7);
		r->cb_failures = veil_pg_get_i64(res, 0, 8);
		snprintf(r->cb_error, sizeof r->cb_error, "%.*s", PQgetlength(res, 0, 9),
		         PQgetvalue(res, 0, 9));
		r->cb_error_ms = (uint64_t)veil_pg_get_i64(res, 0, 10);
		if (col_bytes(res, 3, r->salt, sizeof r->salt, NULL) &&
		    col_bytes(res, 4, r->hash, sizeof r->hash, NULL) &&
		    col_bytes(res, 5, r->ssealed, sizeof r->ssealed, &r->ssealed_len) &&
		    (!r->has_sk ||
		     col_bytes(res, 6, r->ksealed, sizeof r->ksealed, &r->ksealed_len)))
			rc = 0;
	}
	PQclear(res);
	return rc;
}

int gw_pg_update(struct gw_pg *p, int what, const uint8_t id[static VEIL_ID_LEN], int64_t n,
                 const char *text)
{
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, VEIL_ID_LEN);
	if (what == GW_PG_SET_CALLBACK)
		veil_pg_bytes(&a, text, strlen(text));
	else
		veil_pg_i64(&a, n);
	int q = what == GW_PG_CHARGE        ? G_CHARGE
	        : what == GW_PG_ADD_CREDITS ? G_ADD_CREDITS
	                                    : G_SET_CALLBACK;
	return run_changes(p, q, &a);
}

int gw_pg_note(struct gw_pg *p, const uint8_t id[static VEIL_ID_LEN], const char *error,
               uint64_t now_ms)
{
	struct veil_pg_args a = {0};
	veil_pg_bytes(&a, id, VEIL_ID_LEN);
	if (error != NULL) {
		veil_pg_bytes(&a, error, strlen(error));
		veil_pg_i64(&a, (int64_t)now_ms);
	}
	int rc = run_changes(p, error != NULL ? G_NOTE_FAIL : G_NOTE_OK, &a);
	return rc == VEIL_ENOTFOUND ? 0 : rc;
}

int gw_pg_list(struct gw_pg *p, int with_callback, uint8_t (*ids)[VEIL_ID_LEN], size_t max,
               size_t *n)
{
	*n = 0;
	struct veil_pg_args a = {0};
	veil_pg_i64(&a, (int64_t)max);
	PGresult *r = run(p, with_callback ? G_LIST_CB : G_LIST, &a);
	if (r == NULL)
		return VEIL_EIO;
	for (int i = 0; i < PQntuples(r) && *n < max; i++)
		if (PQgetlength(r, i, 0) == VEIL_ID_LEN)
			memcpy(ids[(*n)++], PQgetvalue(r, i, 0), VEIL_ID_LEN);
	PQclear(r);
	return 0;
}

/*
 * The callbacks of one API identity are delivered by one node at a time:
 * the one whose connection holds the identity's advisory lock (the
 * two-key form, in a class of its own, so it never meets the mediator's
 * one-key locks). Asked again only after the connection was made anew.
 */
#define GW_PG_CLAIM_CLASS 0x56474342 /* "VGCB" */
int gw_pg_claim(struct gw_pg *p, const uint8_t id[static VEIL_ID_LEN], uint64_t *epoch)
{
	if (*epoch != 0 && *epoch == p->pg.epoch && p->pg.c != NULL &&
	    PQstatus(p->pg.c) == CONNECTION_OK)
		return 1;
	struct veil_pg_args a = {0};
	uint8_t h[4];
	crypto_generichash(h, sizeof h, id, VEIL_ID_LEN, NULL, 0);
	veil_pg_i64(&a, GW_PG_CLAIM_CLASS);
	veil_pg_i64(&a, (int64_t)(veil_load_u32le(h) & 0x7fffffffu));
	PGresult *r = run(p, G_CLAIM, &a);
	if (r == NULL)
		return VEIL_EIO;
	int held = PQntuples(r) == 1 && veil_pg_get_i64(r, 0, 0) == 1;
	PQclear(r);
	*epoch = held ? p->pg.epoch : 0;
	return held;
}
