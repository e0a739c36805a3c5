/*
 * Internal: the table of functions a storage backend provides. The public
 * functions in store.h dispatch through it: SQLite (sqlite.c, the default)
 * and PostgreSQL (pg.c) sit behind the same interface. Not for services; they use store.h.
 *
 * The generic layer (store.c) owns the store thread, the job queue and the
 * completion list. A backend keeps two kinds of state: the queue side, used
 * only by the store thread (batch_*, q_*), and the synchronous side (s_*),
 * which the backend itself must make safe to call from any thread.
 */
#ifndef VEIL_SRV_STORE_BACKEND_H
#define VEIL_SRV_STORE_BACKEND_H

#include "store.h"

/*
 * How a backend reports an event from another node (store.h's
 * veil_store_event_kind): from any thread; store.c queues it as a
 * completion and wakes the loop. Events after close has begun are dropped.
 */
struct veil_store_sink {
	void (*emit)(void *ctx, int kind, const uint8_t id[VEIL_ID_LEN], uint64_t gen);
	void *ctx;
};

/* One write of a batch, for q_writes. */
enum veil_store_write_type {
	VEIL_STORE_W_PUT,
	VEIL_STORE_W_ACK,
	VEIL_STORE_W_EXPIRE,
	VEIL_STORE_W_LOGIN
};

struct veil_store_write {
	enum veil_store_write_type type;
	const struct veil_msg_rec
	    *msg;         /* put: the message; ack: recipient, sender, msg_id; login: recipient */
	uint64_t now_ms;  /* expire, login */
	uint64_t seq;     /* put: the result */
	uint64_t deleted; /* expire: the result */
	int rc;           /* 0 or the per-job veil_err */
};

struct veil_store_ops {
	const char *name;
	bool shared; /* other nodes may write the same store */
	/*
	 * The limits are final: queue_limit >= 1, 1 <= sender_limit <= queue_limit.
	 * sink is NULL when nobody listens for events.
	 */
	int (*open)(void **be, const struct veil_store_opts *opts, uint32_t queue_limit,
	            uint32_t sender_limit, const struct veil_store_sink *sink);
	void (*close)(void *be);

	/*
	 * Queue side, store thread only. A batch is one transaction. Each q_*
	 * call returns 0 or a per-job veil_err (VEIL_EEXIST, VEIL_ELIMIT,
	 * VEIL_EQUOTA, VEIL_ENOTFOUND leave the transaction usable; VEIL_EIO or VEIL_ENOMEM
	 * mean the batch must be rolled back). batch_rollback must also forget
	 * any cached state the rolled-back jobs changed.
	 */
	int (*batch_begin)(void *be);
	int (*batch_commit)(void *be);
	void (*batch_rollback)(void *be);
	int (*q_put)(void *be, const struct veil_msg_rec *m, uint64_t *seq);
	int (*q_ack)(void *be, const uint8_t recipient[static VEIL_ID_LEN],
	             const uint8_t sender[static VEIL_ID_LEN], uint64_t msg_id);
	int (*q_expire)(void *be, uint64_t now_ms, uint64_t *deleted);
	/*
	 * Reads outside a batch, after the commit, so it returns only durable
	 * messages. On success *out is one malloc'd block holding the records
	 * and their data (free(*out) releases all), or NULL when *n is 0.
	 */
	int (*q_fetch)(void *be, const uint8_t recipient[static VEIL_ID_LEN], uint64_t after_seq,
	               size_t limit, uint64_t now_ms, struct veil_msg_rec **out, size_t *n);

	/* Synchronous side, any thread. */
	/* want_id: the ID to create (gateway IDs), or NULL for a random one. */
	int (*s_identity_create)(void *be, const uint8_t *want_id,
	                         const uint8_t pk[static VEIL_KEY_LEN],
	                         struct veil_identity_rec *rec);
	int (*s_identity_get)(void *be, const uint8_t id[static VEIL_ID_LEN],
	                      struct veil_identity_rec *rec);
	int (*s_identity_set_state)(void *be, const uint8_t id[static VEIL_ID_LEN], int state);
	int (*s_identity_set_features)(void *be, const uint8_t id[static VEIL_ID_LEN],
	                               uint64_t mask);
	int (*s_push_token_set)(void *be, const uint8_t id[static VEIL_ID_LEN], uint8_t type,
	                        const uint8_t *token, size_t len);
	int (*s_push_token_get)(void *be, const uint8_t id[static VEIL_ID_LEN], uint8_t *type,
	                        uint8_t token[static VEIL_STORE_MAX_PUSH_TOKEN], size_t *len);
	int (*s_token_use)(void *be, const uint8_t hash[static 32], uint64_t expires_ms,
	                   uint64_t now_ms);
	int (*s_msg_count)(void *be, const uint8_t recipient[static VEIL_ID_LEN], uint64_t now_ms,
	                   uint64_t *count);
	/* Linked contact data and revocation (see store.h). */
	int (*s_link_pending_put)(void *be, const struct veil_link_pending *p);
	int (*s_link_confirm)(void *be, const uint8_t vid[static VEIL_STORE_VID_LEN],
	                      const uint8_t code_mac[static 32], uint32_t max_attempts,
	                      uint64_t now_ms, struct veil_link_pending *out);
	int (*s_link_get)(void *be, const uint8_t id[static VEIL_ID_LEN], int kind,
	                  uint8_t hash[static 32]);
	int (*s_link_delete)(void *be, const uint8_t id[static VEIL_ID_LEN], int kind);
	int (*s_link_find)(void *be, int kind, int by_prf, const uint8_t value[static 32],
	                   uint8_t (*ids)[VEIL_ID_LEN], size_t max, size_t *n);
	int (*s_revocation_set)(void *be, const uint8_t id[static VEIL_ID_LEN],
	                        const uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t now_ms);
	int (*s_revocation_get)(void *be, const uint8_t id[static VEIL_ID_LEN],
	                        uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t *changed_ms);
	int (*s_identity_revoke)(void *be, const uint8_t id[static VEIL_ID_LEN]);
	/* Invite codes (see store.h). */
	int (*s_invite_put)(void *be, const struct veil_invite_rec *r);
	int (*s_invite_use)(void *be, const uint8_t hash[static 32], uint64_t now_ms);
	int (*s_invite_unuse)(void *be, const uint8_t hash[static 32]);
	int (*s_invite_list)(void *be, struct veil_invite_rec **out, size_t *n);
	int (*s_invite_revoke)(void *be, const char *handle);
	/* Administration (see store.h). */
	int (*s_identity_list)(void *be, const uint8_t *only, const uint8_t *after, size_t max,
	                       struct veil_identity_info **out, size_t *n);
	int (*s_identity_delete)(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t *dropped);
	int (*s_queue_stats)(void *be, uint64_t now_ms, struct veil_queue_stats *st);
	int (*s_ping)(void *be);
	/*
	 * Optional: all of a batch's writes at once, in job order, right after
	 * batch_begin (so the backend may roll its transaction back and start
	 * it again). Each w[i].rc (and seq, deleted) ends as the q_* call would
	 * have left it had the writes run one by one in that order. Returns 0,
	 * or a veil_err that fails the whole batch as a fatal per-job outcome
	 * does. NULL: store.c calls the q_* functions one by one.
	 */
	int (*q_writes)(void *be, struct veil_store_write *w, size_t n);
	/* Store thread, inside a batch; optional (NULL: logins are recorded elsewhere). */
	int (*q_login)(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t now_ms);
	/* Optional (NULL: *gen stays 0). */
	int (*s_session_claim)(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t *gen);
};

extern const struct veil_store_ops veil_store_sqlite_ops;
extern const struct veil_store_ops veil_store_pg_ops;

#endif
