/*
 * Internal to mstore.c: the mediator's store on PostgreSQL, used when veild
 * runs with --store postgresql://... (the tables are made by the chat
 * store's migrations, srv/store/pg.c). Each md_pg_* function does what the
 * md_store_* function of the same name does (mstore.h); mstore.c passes
 * the calls through. The functions for several nodes (leader, transaction
 * lock, events) are declared in mstore.h.
 */
#ifndef VEIL_SRV_MEDIATOR_MSTORE_PG_H
#define VEIL_SRV_MEDIATOR_MSTORE_PG_H

#include "mstore.h"

struct md_pg;

/* Connects (three connections: queries, queue reads, LISTEN). 0 or VEIL_EIO / VEIL_ENOMEM. */
int md_pg_open(struct md_pg **out, const char *url);
void md_pg_close(struct md_pg *p);

int md_pg_device_exists(struct md_pg *p, const uint8_t gid[static 32], uint64_t did);
int md_pg_device_count(struct md_pg *p, const uint8_t gid[static 32]);
int md_pg_devices(struct md_pg *p, const uint8_t gid[static 32], struct md_device_row *rows,
                  size_t cap);
int md_pg_device_login(struct md_pg *p, const uint8_t gid[static 32], uint64_t did,
                       int expiration_policy, const uint8_t *info, size_t info_len, uint64_t now);
int md_pg_device_seen(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint64_t now);
int md_pg_device_drop(struct md_pg *p, const uint8_t gid[static 32], uint64_t did);
int md_pg_shared_data(struct md_pg *p, const uint8_t gid[static 32], uint8_t *out, size_t cap,
                      size_t *len);
int md_pg_set_shared_data(struct md_pg *p, const uint8_t gid[static 32], const uint8_t *box,
                          size_t len);
int md_pg_device_infos(struct md_pg *p, const uint8_t gid[static 32],
                       int (*fn)(void *arg, const struct md_device_row *row, const uint8_t *info,
                                 size_t info_len),
                       void *arg);
int md_pg_reflect(struct md_pg *p, const uint8_t gid[static 32], uint64_t sender, uint16_t flags,
                  uint64_t ts, const uint8_t *env, size_t env_len, uint32_t *rid);
int md_pg_next_rid(struct md_pg *p, const uint8_t gid[static 32], uint32_t *rid);
void md_pg_set_queue_limit(struct md_pg *p, uint32_t limit);
int md_pg_queue_count(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint64_t *n);
int md_pg_over_limit(struct md_pg *p, const uint8_t gid[static 32], uint64_t *ids, size_t cap);
int md_pg_queue_len(struct md_pg *p, const uint8_t gid[static 32], uint64_t did);
int md_pg_queue_after(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, int64_t after,
                      int max, int (*fn)(void *arg, const struct md_queued *q), void *arg);
void md_pg_on_batch(struct md_pg *p, void (*fn)(void *ctx, int rc), void *ctx);
int md_pg_batch_open(const struct md_pg *p);
int md_pg_batch_reflect(struct md_pg *p, const uint8_t gid[static 32], uint64_t sender,
                        uint16_t flags, uint64_t ts, const uint8_t *env, size_t env_len,
                        uint32_t *rid);
int md_pg_batch_ack(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint32_t rid);
int md_pg_batch_commit(struct md_pg *p);
int md_pg_queue_ack(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint32_t rid);

int md_pg_leader_take(struct md_pg *p, const uint8_t gid[static 32]);
int md_pg_leader_release(struct md_pg *p, const uint8_t gid[static 32]);
int md_pg_tx_take(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, const uint8_t *scope,
                  size_t scope_len, uint64_t *holder, uint8_t *hscope, size_t hcap, size_t *hlen);
int md_pg_tx_release(struct md_pg *p, const uint8_t gid[static 32], uint64_t did,
                     const uint8_t *scope, size_t scope_len);
int md_pg_ping(struct md_pg *p);
int md_pg_leader_try(struct md_pg *p, const uint8_t (*gids)[32], size_t n, uint8_t *taken);
int md_pg_tx_reap(struct md_pg *p, const uint8_t gid[static 32], uint64_t *holder, uint8_t *hscope,
                  size_t hcap, size_t *hlen);
/*
 * Parses a veil_md payload (NUL-terminated, from the database) into ev:
 * 1, or 0 for one from node (16 hex digits: this node) or a bad one.
 */
int md_pg_parse_event(const char *node, const char *pl, struct md_event *ev);
void md_pg_on_event(struct md_pg *p, void (*wake)(void *ctx), void *ctx);
int md_pg_events(struct md_pg *p, void (*fn)(void *arg, const struct md_event *ev), void *arg);

#endif
