/*
 * Internal to safe.c: Threema Safe backups in PostgreSQL (the table
 * safe_backups, made by the chat store's migrations, srv/store/pg.c), used
 * when veild runs with --store postgresql://... so that every node serves
 * every backup. A backup is one bytea row (at most --safe-max-size bytes),
 * written in one statement after the upload is whole. HTTP thread only.
 */
#ifndef VEIL_SRV_SAFE_PG_H
#define VEIL_SRV_SAFE_PG_H

#include <stddef.h>
#include <stdint.h>

struct safe_pg;

int safe_pg_open(struct safe_pg **out, const char *url);
void safe_pg_close(struct safe_pg *p);
/* *exists: a live backup of that ID; *count: live backups in all. 0 or VEIL_EIO. */
int safe_pg_state(struct safe_pg *p, const uint8_t id[static 32], uint64_t live_after, int *exists,
                  uint64_t *count);
/* Stores (replaces) the backup, dated now. 0 or VEIL_EIO. */
int safe_pg_put(struct safe_pg *p, const uint8_t id[static 32], const uint8_t *data, size_t len,
                uint64_t now_ms);
/*
 * Writes a live backup (dated after live_after) into fd: its length, or
 * VEIL_ENOTFOUND, VEIL_EIO.
 */
int64_t safe_pg_get(struct safe_pg *p, const uint8_t id[static 32], uint64_t live_after, int fd);
/* 0, VEIL_ENOTFOUND or VEIL_EIO. */
int safe_pg_del(struct safe_pg *p, const uint8_t id[static 32]);
/* Deletes the backups dated up to dead_upto: how many, or a negative veil_err. */
int64_t safe_pg_sweep(struct safe_pg *p, uint64_t dead_upto);

#endif
