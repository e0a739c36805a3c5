/*
 * One libpq connection with a fixed set of prepared statements, for the
 * services that keep a few tables of their own in the PostgreSQL store
 * (the Gateway's accounts, Safe backups): connected (again after a loss)
 * before each statement, every statement prepared once per connection,
 * binary parameters and results; a lost connection fails the statement
 * that saw it and the next one reconnects. Errors are logged under tag.
 */
#ifndef VEIL_SRV_PGCONN_H
#define VEIL_SRV_PGCONN_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct veil_pgconn {
	const char *tag;        /* "gateway": log lines and application_name veild-gateway */
	const char *const *sql; /* the statements, prepared as <prefix><index> */
	int nsql;
	char prefix;
	char *url;
	PGconn *c;
	uint64_t epoch; /* counts the connections made: session state (locks) is per epoch */
};

#define VEIL_PG_ARGS_MAX 9
struct veil_pg_args {
	int n;
	const char *v[VEIL_PG_ARGS_MAX];
	int l[VEIL_PG_ARGS_MAX];
	int f[VEIL_PG_ARGS_MAX];
	uint8_t ib[VEIL_PG_ARGS_MAX][8];
};

/* Copies url and connects: 0, VEIL_ENOMEM or VEIL_EIO (logged). */
int veil_pgconn_open(struct veil_pgconn *p, const char *url);
void veil_pgconn_close(struct veil_pgconn *p);
/* Runs statement q: its result (PGRES_COMMAND_OK or _TUPLES_OK) or NULL (logged). */
PGresult *veil_pgconn_run(struct veil_pgconn *p, int q, const struct veil_pg_args *a);
/* Appends a binary parameter: bytes, or a big-endian int8. */
void veil_pg_bytes(struct veil_pg_args *a, const void *p, size_t len);
void veil_pg_i64(struct veil_pg_args *a, int64_t v);
/* An int8 column of a binary result; 0 if NULL or not 8 bytes. */
int64_t veil_pg_get_i64(const PGresult *r, int row, int col);

#endif
