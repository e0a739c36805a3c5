/*
 * Internal to gwdb.c: the Gateway accounts in PostgreSQL (the table
 * gw_accounts, made by the chat store's migrations, srv/store/pg.c), used
 * when veild runs with --store postgresql://... so that every node sees the
 * same accounts and credits. Rows only: hashing and sealing stay in gwdb.c.
 * Not thread-safe: gwdb.c calls it under its mutex.
 */
#ifndef VEIL_SRV_GWDB_PG_H
#define VEIL_SRV_GWDB_PG_H

#include "gwdb.h"

#define GW_SEAL_OVER 40 /* crypto_secretbox nonce + MAC */

/* An account's row as stored. */
struct gw_row {
	int modes;
	int64_t credits;
	char callback[VEIL_GW_URL_MAX + 1];
	uint8_t salt[16], hash[32];
	uint8_t ssealed[VEIL_GW_SECRET_MAX + GW_SEAL_OVER];
	size_t ssealed_len;
	int has_sk;
	uint8_t ksealed[VEIL_KEY_LEN + GW_SEAL_OVER];
	size_t ksealed_len;
	uint64_t created_ms;
	int64_t cb_failures;
	char cb_error[128];
	uint64_t cb_error_ms;
};

enum gw_pg_update {
	GW_PG_CHARGE,       /* credits - n where credits >= n */
	GW_PG_ADD_CREDITS,  /* credits + n, not below 0 */
	GW_PG_SET_CALLBACK, /* callback = text */
};

struct gw_pg;

int gw_pg_open(struct gw_pg **out, const char *url);
void gw_pg_close(struct gw_pg *p);
/* 0, VEIL_EEXIST or VEIL_EIO. */
int gw_pg_insert(struct gw_pg *p, const uint8_t id[static VEIL_ID_LEN], const struct gw_row *r);
/* 0, VEIL_ENOTFOUND or VEIL_EIO. */
int gw_pg_get(struct gw_pg *p, const uint8_t id[static VEIL_ID_LEN], struct gw_row *r);
/* 0, VEIL_ENOTFOUND (no row changed) or VEIL_EIO. */
int gw_pg_update(struct gw_pg *p, int what, const uint8_t id[static VEIL_ID_LEN], int64_t n,
                 const char *text);
/* error NULL: a success (failures back to 0). */
int gw_pg_note(struct gw_pg *p, const uint8_t id[static VEIL_ID_LEN], const char *error,
               uint64_t now_ms);
/*
 * 1 if this node delivers id's callbacks (it holds id's advisory lock on
 * its connection; *epoch remembers which connection), 0 if another node
 * does, VEIL_EIO. Several identities may share a lock: one node then
 * delivers for them all.
 */
int gw_pg_claim(struct gw_pg *p, const uint8_t id[static VEIL_ID_LEN], uint64_t *epoch);
int gw_pg_list(struct gw_pg *p, int with_callback, uint8_t (*ids)[VEIL_ID_LEN], size_t max,
               size_t *n);

#endif
