/*
 * The mediator's store: its own SQLite file (DATA/mediator.db, WAL,
 * synchronous=NORMAL: its WAL is synced before a write returns, or by the
 * sync thread for the batch), or with a PostgreSQL store (a postgresql:// URL as
 * the path) tables in that database (mstore_pg.c), used from the HTTP
 * thread only (SQLite: but for its sync thread, see the batch). It holds device groups
 * (keyed by the device group ID, DGPK.public), their devices (ID, expiration
 * policy, the encrypted device info, connected-since and last-seen times),
 * the encrypted shared device data and one durable reflection queue per
 * device. It never holds an identity or an identity's public key: the
 * mediator never learns them.
 *
 * Every write but the batch's is one transaction and durable when the call
 * returns (with every batch committed before it), so a reflect-ack sent
 * after md_store_reflect survives kill -9 and power loss. With PostgreSQL
 * a commit returns once the server made it durable (synchronous_commit
 * on, its default).
 */
#ifndef VEIL_SRV_MEDIATOR_MSTORE_H
#define VEIL_SRV_MEDIATOR_MSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "veil/md.h"

struct md_store;

struct md_device_row {
	uint64_t device_id;
	int expiration_policy;
	uint64_t connected_since, last_seen;
};

/* One queued reflected message; envelope points into the store's row (valid until the next call). */
struct md_queued {
	int64_t seq; /* order of the device's queue */
	uint32_t rid;
	uint16_t flags;
	uint64_t ts;
	const uint8_t *envelope;
	size_t envelope_len;
};

/* Opens or creates path. Returns 0 or VEIL_EIO / VEIL_ENOMEM. */
int md_store_open(struct md_store **out, const char *path);
void md_store_close(struct md_store *s);

/* 1 if the device is registered in the group, 0 if not, negative on error. */
int md_store_device_exists(struct md_store *s, const uint8_t gid[static 32], uint64_t did);
/* Number of registered devices of the group, or a negative veil_err. */
int md_store_device_count(struct md_store *s, const uint8_t gid[static 32]);
/*
 * The devices of a group, least recently seen first: at most cap rows.
 * Returns the count or a negative veil_err.
 */
int md_store_devices(struct md_store *s, const uint8_t gid[static 32], struct md_device_row *rows,
                     size_t cap);
/*
 * Registers the device (creating the group if it is new) or updates it:
 * policy, encrypted info and connected_since = last_seen = now.
 */
int md_store_device_login(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                          int expiration_policy, const uint8_t *info, size_t info_len,
                          uint64_t now) VEIL_WUR;
/* Sets last_seen = now (at disconnect). */
int md_store_device_seen(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                         uint64_t now);
/* Removes the device and its queue. */
int md_store_device_drop(struct md_store *s, const uint8_t gid[static 32], uint64_t did) VEIL_WUR;

/*
 * The group's encrypted shared device data into out (cap bytes); *len = 0
 * if none. Returns 0 or a negative veil_err.
 */
int md_store_shared_data(struct md_store *s, const uint8_t gid[static 32], uint8_t *out, size_t cap,
                         size_t *len);

/* Replaces the group's encrypted shared device data (len 0: none). */
int md_store_set_shared_data(struct md_store *s, const uint8_t gid[static 32], const uint8_t *box,
                             size_t len) VEIL_WUR;
/*
 * Calls fn for every device of the group in device ID order with its
 * encrypted device info (valid for the call only); fn returning non-zero
 * stops. Returns the number of devices given to fn or a negative veil_err.
 */
int md_store_device_infos(struct md_store *s, const uint8_t gid[static 32],
                          int (*fn)(void *arg, const struct md_device_row *row, const uint8_t *info,
                                    size_t info_len),
                          void *arg);

/*
 * Queues one reflected message for every device of the group but the
 * sender, under a fresh reflected ID of the group (*rid). Durable on return.
 */
int md_store_reflect(struct md_store *s, const uint8_t gid[static 32], uint64_t sender,
                     uint16_t flags, uint64_t ts, const uint8_t *env, size_t env_len,
                     uint32_t *rid) VEIL_WUR;
/* A fresh reflected ID without queueing anything (for ephemeral reflects). */
int md_store_next_rid(struct md_store *s, const uint8_t gid[static 32], uint32_t *rid) VEIL_WUR;
/*
 * The most reflects queued for one device (default: no limit). A reflect
 * finding a device's queue full is not stored for it, but counted: see
 * md_store_queue_count and md_store_over_limit.
 */
void md_store_set_queue_limit(struct md_store *s, uint32_t limit);
/*
 * Reflects queued for the device since it registered and not acked,
 * counting those not stored because the queue was full (so more than the
 * limit = the device missed some); 0 for an unknown device. 0 or a
 * negative veil_err.
 */
int md_store_queue_count(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                         uint64_t *n) VEIL_WUR;
/* The group's devices whose count is over the limit, up to cap: how many, or a negative veil_err. */
int md_store_over_limit(struct md_store *s, const uint8_t gid[static 32], uint64_t *ids,
                        size_t cap);
/* Queue length of a device, or a negative veil_err. */
int md_store_queue_len(struct md_store *s, const uint8_t gid[static 32], uint64_t did);
/*
 * Calls fn for up to max queued messages of the device after seq (in order).
 * fn returning non-zero stops. Returns the number given to fn or a negative
 * veil_err.
 */
int md_store_queue_after(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                         int64_t after, int max, int (*fn)(void *arg, const struct md_queued *q),
                         void *arg);
/*
 * The batch (group commit): md_store_batch_reflect and md_store_batch_ack
 * do what md_store_reflect and md_store_queue_ack do inside one open
 * transaction, which md_store_batch_commit commits without waiting for the
 * disk. Batches are numbered ("gens", from 1; md_store_batch_gen is the
 * number of the open batch, or of the next one). With SQLite, the store's
 * sync thread makes every batch committed so far durable with one fsync
 * and calls wake(ctx) (from its thread); md_store_batch_poll, on the HTTP
 * thread, then reports them to fn: fn(ctx, upto, rc) means every batch up
 * to gen upto not reported before is durable (rc 0) or failed (rolled
 * back, or its sync failed): only then may their reflects be acked.
 * md_store_batch_sync commits and makes everything durable on the calling
 * thread, then polls. With PostgreSQL a commit is durable when it returns
 * and fn is called from md_store_batch_commit (or from any call that ends
 * the batch). A write that fails in the batch fails all of it: the commit
 * rolls it back and reports the error. Any other write commits the batch
 * first. Queue rows with a seq above md_store_committed_seq may not be
 * durable yet.
 */
void md_store_on_batch(struct md_store *s, void (*fn)(void *ctx, uint64_t upto, int rc),
                       void (*wake)(void *ctx), void *ctx);
int md_store_batch_open(const struct md_store *s);
uint64_t md_store_batch_gen(const struct md_store *s);
int64_t md_store_committed_seq(const struct md_store *s);
/*
 * For fn, during a report: the highest queue row of the batches reported
 * (the rows of their reflects are all at or below it, and every row at or
 * below it is durable), so fn may send them from memory to devices that
 * had every earlier row. -1 when the devices must be fed from the store:
 * with a PostgreSQL store (other nodes write into the queues too), or
 * when rows outside the batches came in between.
 */
int64_t md_store_batch_top(const struct md_store *s);
int md_store_batch_reflect(struct md_store *s, const uint8_t gid[static 32], uint64_t sender,
                           uint16_t flags, uint64_t ts, const uint8_t *env, size_t env_len,
                           uint32_t *rid) VEIL_WUR;
int md_store_batch_ack(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                       uint32_t rid);
int md_store_batch_commit(struct md_store *s);
/*
 * 1 while the sync thread syncs: a batch committed now would wait for the
 * next fsync anyway, so it may as well stay open and grow until then.
 */
int md_store_batch_syncing(struct md_store *s);
void md_store_batch_poll(struct md_store *s);
int md_store_batch_sync(struct md_store *s);
/* Removes a queued message: 1 if it was there, 0 if not, negative on error. */
int md_store_queue_ack(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                       uint32_t rid);

/*
 * Several nodes on one PostgreSQL store (--store postgresql://...; on
 * SQLite these always succeed and there are no events). A group's leader
 * and its transaction lock are PostgreSQL advisory locks of the node's
 * connection, so a node that dies frees them; what another node does that
 * a node must act on arrives as an event (LISTEN/NOTIFY, sent on commit).
 */
enum md_event_kind {
	MD_EV_REFLECTED = 'R',   /* reflects were stored for the group: pump its devices */
	MD_EV_CLOSE = 'X',       /* close device did of the group here with code */
	MD_EV_LEADER_FREE = 'L', /* the group's leader went: elect one here */
	MD_EV_TX_ENDED = 'E',    /* did's transaction with scope ended: tell the devices here */
	/*
	 * Not from another node but from the store itself (no group): a tick
	 * about every MD_STORE_TICK_MS (nothing tells a node that a dead
	 * node's advisory locks were freed: it checks), and a resync when the
	 * listener reconnected or had to drop events (what was sent meanwhile
	 * is lost: read everything again from the store).
	 */
	MD_EV_TICK = 'K',
	MD_EV_RESYNC = 'S',
	/*
	 * The connection that holds this node's locks was lost and is back:
	 * every leadership and transaction lock held here is gone (another
	 * node may have taken it). Until this event is taken, no lock is
	 * taken (a take answers "held elsewhere"), so none is counted twice.
	 */
	MD_EV_LOCKS_LOST = 'O',
};
#define MD_STORE_TICK_MS 1000
struct md_event {
	int kind;
	uint8_t gid[32];
	uint64_t did;
	int code;
	uint8_t scope[VEIL_MD_SCOPE_MAX];
	size_t scope_len;
};
/* 1 if other nodes may share the store. */
int md_store_shared(const struct md_store *s);
/* Takes the group's leadership for this node: 1 taken (or held here), 0 held elsewhere, < 0 error. */
int md_store_leader_take(struct md_store *s, const uint8_t gid[static 32]);
/* Gives it back; the other nodes are told (MD_EV_LEADER_FREE). */
int md_store_leader_release(struct md_store *s, const uint8_t gid[static 32]);
/*
 * Tries to take the leadership of n groups at once (one round trip): sets
 * taken[i] to 1 for each one taken (or held here), 0 for those held
 * elsewhere. The number taken or a negative veil_err.
 */
int md_store_leader_try(struct md_store *s, const uint8_t (*gids)[32], size_t n, uint8_t *taken);
/*
 * Takes the group's transaction lock for device did with its encrypted
 * scope: 1 taken; 0 held on another node, with the holder's device ID and
 * scope (at most hcap bytes) filled in; < 0 error.
 */
int md_store_tx_take(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                     const uint8_t *scope, size_t scope_len, uint64_t *holder, uint8_t *hscope,
                     size_t hcap, size_t *hlen);
/* Releases it; the other nodes are told (MD_EV_TX_ENDED). */
int md_store_tx_release(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                        const uint8_t *scope, size_t scope_len);
/*
 * For a group whose lock is not held on this node: if it is held nowhere
 * (its holder's node died, or the end's event was lost), removes the
 * holder left behind, tells the other nodes (MD_EV_TX_ENDED) and returns 1
 * with that holder's device ID and scope (*holder = 0, *hlen = 0 if none
 * was left); 0 if a live node holds it; < 0 on error.
 */
int md_store_tx_reap(struct md_store *s, const uint8_t gid[static 32], uint64_t *holder,
                     uint8_t *hscope, size_t hcap, size_t *hlen);
/*
 * Runs a trivial statement on the connection that holds the locks, so that
 * its loss shows (and MD_EV_LOCKS_LOST follows) without waiting for the
 * next write. 0 or a negative veil_err.
 */
int md_store_ping(struct md_store *s);
/* wake(ctx) is called from another thread when events wait for md_store_events. */
void md_store_on_event(struct md_store *s, void (*wake)(void *ctx), void *ctx);
/* Calls fn for every event from other nodes that has arrived; the count or a negative veil_err. */
int md_store_events(struct md_store *s, void (*fn)(void *arg, const struct md_event *ev),
                    void *arg);

#endif
