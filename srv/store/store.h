/*
 * The server's storage interface. Services talk only to this header; the
 * backend (SQLite by default, PostgreSQL for a postgresql:// URL) sits
 * behind struct veil_store_ops.
 *
 * Threading: identity and directory calls are synchronous and thread-safe
 * (any thread may call them; each backend serialises internally). Message
 * queue calls are asynchronous: they are queued to the store's own thread,
 * which batches writes into one transaction and one fsync (group commit).
 * Completions are not run on the store thread: the store appends them to a
 * completion list and calls the wake function given at open, and the owner
 * of the event loop then calls veil_store_run_completions() on its thread,
 * which runs the callbacks there. A write's callback runs only once the
 * write is durable.
 */
#ifndef VEIL_SRV_STORE_H
#define VEIL_SRV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"

#define VEIL_STORE_MAX_BOX 8192        /* largest stored message (a whole CSP message) */
#define VEIL_STORE_MAX_FETCH 256       /* most messages one fetch returns */
#define VEIL_STORE_MAX_PUSH_TOKEN 255  /* longest push token */
#define VEIL_STORE_DEFAULT_QUEUE 10000 /* queue_limit when opts gives 0 */
/* queue_sender_limit when opts gives 0: this fraction of queue_limit (at least 1). */
#define VEIL_STORE_SENDER_SHARE_DIV 10

enum veil_identity_state {
	VEIL_IDENTITY_ACTIVE = 0,
	VEIL_IDENTITY_INACTIVE = 1,
	VEIL_IDENTITY_INVALID = 2, /* revoked or deleted */
};

struct veil_identity_rec {
	uint8_t id[VEIL_ID_LEN];
	uint8_t pk[VEIL_KEY_LEN];
	int state; /* enum veil_identity_state */
	uint64_t feature_mask;
	uint64_t created_ms;
};

/* One queued message: the whole message-with-metadata-box, opaque to the store. */
struct veil_msg_rec {
	uint64_t seq; /* assigned by the store, increasing per recipient */
	uint8_t recipient[VEIL_ID_LEN];
	uint8_t sender[VEIL_ID_LEN];
	uint64_t msg_id;
	uint64_t expires_ms; /* absolute, 0 = never */
	uint8_t flags;
	size_t len;
	uint8_t *data; /* owned by whoever holds the record */
};

/*
 * Events from other nodes sharing the database (PostgreSQL only), run on the
 * loop thread by veil_store_run_completions() like any completion.
 */
enum veil_store_event_kind {
	/* Another node stored a message for id: fetch its queue if it is connected here. */
	VEIL_STORE_EV_PUT = 1,
	/*
	 * Events may have been missed (the listening connection was lost and is
	 * back): fetch the queue of every connected recipient.
	 */
	VEIL_STORE_EV_RESYNC = 2,
	/*
	 * Another node logged id in with session generation gen (see
	 * veil_store_session_claim): a connection of id here with a lower
	 * generation must close.
	 */
	VEIL_STORE_EV_SESSION = 3,
};
typedef void (*veil_store_event_cb)(void *arg, int kind, const uint8_t id[VEIL_ID_LEN],
                                    uint64_t gen);

struct veil_store_opts {
	/*
	 * SQLite file (created if missing), or a PostgreSQL URL
	 * (postgresql://... or postgres://...; the database must exist, the
	 * tables are created).
	 */
	const char *path;
	uint32_t queue_limit; /* max queued messages per recipient, 0 = default 10000 */
	/*
	 * Max queued messages from one sender to one recipient (its share of
	 * the recipient's queue), so that one sender cannot fill the queue for
	 * everyone else. 0 = queue_limit / VEIL_STORE_SENDER_SHARE_DIV, at
	 * least 1; a value of queue_limit or above means no share (one sender
	 * may fill the queue).
	 */
	uint32_t queue_sender_limit;
	void (*wake)(void *arg); /* called from the store thread when completions wait */
	void *wake_arg;
	/* Events from other nodes (may be NULL: none are listened for). */
	veil_store_event_cb event;
	void *event_arg;
	/*
	 * Integrity check at open: PRAGMA quick_check for at most this many
	 * milliseconds (0 = none; SQLite only). A corrupt store fails the open with
	 * VEIL_ECORRUPT.
	 */
	uint32_t check_ms;
	/*
	 * Bytes kept in a reserve file beside the database (0 = none), released
	 * when the disk fills so that acks and expiry can still free space
	 * (SQLite only: PostgreSQL manages its own disk).
	 */
	uint64_t reserve_bytes;
	char *err; /* if not NULL, why the open failed, in words (errcap bytes) */
	size_t errcap;
};

struct veil_store;

/* True if path names a PostgreSQL database (postgresql:// or postgres://). */
bool veil_store_is_url(const char *path);
/*
 * Copies path into out (cap bytes, always terminated) for a log line or an
 * error message: a URL's password (user:PASSWORD@ or password=) becomes ***.
 */
void veil_store_describe(const char *path, char *out, size_t cap);

/*
 * Opens the store and starts its thread. Returns 0 or a negative veil_err
 * (VEIL_EINVAL without a path or wake function, VEIL_ECORRUPT if it is not
 * a database or fails the integrity check, VEIL_ENOSPC if the disk is full,
 * VEIL_EIO if the database cannot be opened or has a newer schema than this
 * build knows).
 */
int veil_store_open(struct veil_store **out, const struct veil_store_opts *opts);
/*
 * Finishes every queued write (durably), stops the thread and frees the
 * store. Completions still pending are run on the calling thread.
 * veil_store_close(NULL) is a no-op.
 */
void veil_store_close(struct veil_store *s);

/* Runs the completions that are ready; call on the event-loop thread. */
void veil_store_run_completions(struct veil_store *s);

/*
 * Completion lanes, for a service that runs several event loops (the chat
 * loops, --chat-threads): a loop's thread binds its lane, and the
 * completions of the queueing calls made on that thread go to the lane and
 * wake its function instead, to be run on that thread with
 * veil_store_lane_run. Calls from a thread without a lane complete through
 * the store's own list as above. Lanes are made before the first queueing
 * call (at most 256) and freed by veil_store_close, which also runs what
 * is left in them on the calling thread.
 */
struct veil_store_lane;
/* Returns 0, VEIL_ENOMEM, or VEIL_ELIMIT (too many lanes, or no wake function). */
int veil_store_lane_new(struct veil_store *s, void (*wake)(void *arg), void *arg,
                        struct veil_store_lane **out);
/* Binds l to the calling thread (NULL: back to the store's own list). */
void veil_store_lane_bind(struct veil_store_lane *l);
/* Runs the completions that are ready in l; call on the thread that bound it. */
void veil_store_lane_run(struct veil_store *s, struct veil_store_lane *l);

/*
 * True if other nodes may store messages in this store (PostgreSQL): a
 * recipient's seqs may then come from several nodes, so a connected
 * recipient is served by reading its queue, never from a local seq alone.
 */
bool veil_store_shared(struct veil_store *s);
/*
 * Records that id logged in on this node (synchronous). In a shared store it
 * returns a session generation, increasing across all nodes, in *gen and
 * tells every other node (VEIL_STORE_EV_SESSION), once committed; otherwise
 * *gen is 0. Returns 0 or a negative veil_err.
 */
int veil_store_session_claim(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                             uint64_t *gen);

/* Counters for tests and benchmarks. */
struct veil_store_stats {
	uint64_t commits;   /* transactions committed by the store thread */
	uint64_t jobs;      /* queued jobs (put, fetch, ack, expire) finished */
	uint64_t max_batch; /* most jobs run in one batch */
};
void veil_store_stats(struct veil_store *s, struct veil_store_stats *st);

/* --- identities (synchronous, thread-safe) --- */

/*
 * Creates an identity for pk with a fresh random ID (8 characters of
 * [A-Z0-9], unique). If pk already has an identity, returns VEIL_EEXIST and
 * fills rec with it.
 */
int veil_store_identity_create(struct veil_store *s, const uint8_t pk[static VEIL_KEY_LEN],
                               struct veil_identity_rec *rec);
/*
 * As veil_store_identity_create with the ID chosen by the caller (a gateway
 * ID, '*' and 7 characters): VEIL_EINVAL if id is not valid, VEIL_EEXIST if
 * the ID is taken or pk already has an identity (rec then holds that one).
 */
int veil_store_identity_create_id(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                                  const uint8_t pk[static VEIL_KEY_LEN],
                                  struct veil_identity_rec *rec);
/* Returns 0 and fills rec, or VEIL_ENOTFOUND. */
int veil_store_identity_get(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                            struct veil_identity_rec *rec);
int veil_store_identity_set_state(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                                  int state);
int veil_store_identity_set_features(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                                     uint64_t mask);
/*
 * Push token (type + up to VEIL_STORE_MAX_PUSH_TOKEN bytes); an identity has
 * at most one token, a new one replaces it; len 0 deletes the token.
 * Returns 0, VEIL_ENOTFOUND for an unknown identity, VEIL_ELIMIT if too long.
 */
int veil_store_push_token_set(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                              uint8_t type, const uint8_t *token, size_t len);
/*
 * Reads the identity's push token into token (room for
 * VEIL_STORE_MAX_PUSH_TOKEN bytes). Returns 0, or VEIL_ENOTFOUND if the
 * identity has none.
 */
int veil_store_push_token_get(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                              uint8_t *type, uint8_t token[static VEIL_STORE_MAX_PUSH_TOKEN],
                              size_t *len);
/*
 * Marks a one-time token (e.g. a directory auth token) as used; only a hash
 * of it is kept. Returns 0 the first time, VEIL_EREPLAY after. A token is
 * remembered until expires_ms (absolute) and may be purged after it, so a
 * token whose expires_ms has already passed is refused with VEIL_ETIMEOUT.
 */
int veil_store_token_use(struct veil_store *s, const uint8_t *token, size_t len,
                         uint64_t expires_ms);

/*
 * --- linked contact data and revocation (synchronous, thread-safe) ---
 *
 * An identity may link one e-mail address and one phone number (kind). The
 * store never sees the address itself: only its contact-matching hash
 * (HMAC-SHA256 of the specification) and its private-matching output (the
 * OPRF of docs/PROTOCOL.md), both 32 bytes. A link is pending until the
 * code sent to the address is confirmed.
 */
enum veil_link_kind { VEIL_LINK_EMAIL = 0, VEIL_LINK_PHONE = 1 };
#define VEIL_STORE_VID_LEN 16     /* verification ID of a pending link */
#define VEIL_STORE_REVKEY_LEN 4   /* the specification's revocation key */
#define VEIL_STORE_MAX_MATCHES 16 /* identities returned for one hash */

struct veil_link_pending {
	uint8_t vid[VEIL_STORE_VID_LEN];
	uint8_t id[VEIL_ID_LEN];
	int kind; /* enum veil_link_kind */
	uint8_t hash[32];
	uint8_t prf[32];
	uint8_t code_mac[32]; /* a MAC of the code; the code itself is never stored */
	uint64_t expires_ms;
};

/*
 * Records a pending link, replacing any earlier pending link of the same
 * identity and kind. VEIL_ENOTFOUND for an unknown identity.
 */
int veil_store_link_pending_put(struct veil_store *s, const struct veil_link_pending *p);
/*
 * Confirms the pending link vid if code_mac matches: the link becomes
 * active (replacing the identity's earlier one of that kind) and the
 * pending record goes. Returns 0 and fills out, VEIL_ENOTFOUND (unknown
 * vid), VEIL_ETIMEOUT (expired; the record is removed), VEIL_ELIMIT (more
 * than max_attempts wrong codes; the record is removed), VEIL_EAUTH (wrong
 * code; the attempt is counted).
 */
int veil_store_link_confirm(struct veil_store *s, const uint8_t vid[static VEIL_STORE_VID_LEN],
                            const uint8_t code_mac[static 32], uint32_t max_attempts,
                            uint64_t now_ms, struct veil_link_pending *out);
/* The hash linked for (id, kind): 0, or VEIL_ENOTFOUND. */
int veil_store_link_get(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN], int kind,
                        uint8_t hash[static 32]);
/* Removes the link and any pending link of (id, kind); 0 even if there was none. */
int veil_store_link_delete(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN], int kind);
/*
 * Identities linked with value (the hash, or with by_prf the OPRF output)
 * of kind, in ID order, at most max (<= VEIL_STORE_MAX_MATCHES).
 */
int veil_store_link_find(struct veil_store *s, int kind, int by_prf, const uint8_t value[static 32],
                         uint8_t (*ids)[VEIL_ID_LEN], size_t max, size_t *n);
/* Sets the revocation key; VEIL_ENOTFOUND for an unknown identity. */
int veil_store_revocation_set(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                              const uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t now_ms);
/* Reads the revocation key and when it was set: 0, or VEIL_ENOTFOUND if none. */
int veil_store_revocation_get(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                              uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t *changed_ms);
/*
 * Revokes an identity in one transaction: state VEIL_IDENTITY_INVALID and
 * every link and pending link removed. VEIL_ENOTFOUND for an unknown one.
 */
int veil_store_identity_revoke(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN]);

/*
 * --- invite codes (sign-up control, --signup invite) ---
 *
 * The store keeps only a hash of each code. An invite may be used `uses`
 * times until expires_ms (0 = never), unless revoked.
 */
#define VEIL_STORE_INVITE_HANDLE_LEN 12 /* hex digits of the hash's start */
#define VEIL_STORE_MAX_INVITES 10000    /* most invites invite_list returns */
#define VEIL_STORE_INVITE_MAX_USES 1000000
struct veil_invite_rec {
	uint8_t hash[32]; /* veil_invite_hash of the code */
	/* the hash's first bytes in hex: names the invite in list and revoke */
	char handle[VEIL_STORE_INVITE_HANDLE_LEN + 1];
	uint32_t uses, used;
	uint64_t created_ms;
	uint64_t expires_ms; /* 0 = never */
	bool revoked;
};
/* Stores a new invite (r->handle is derived from r->hash). VEIL_EEXIST if the hash is known. */
int veil_store_invite_put(struct veil_store *s, const struct veil_invite_rec *r);
/*
 * Takes one use of the invite with this hash at now_ms, atomically: 0, or
 * VEIL_ENOTFOUND (unknown or revoked), VEIL_ETIMEOUT (expired), VEIL_ELIMIT
 * (every use taken).
 */
int veil_store_invite_use(struct veil_store *s, const uint8_t hash[static 32], uint64_t now_ms);
/* Gives back a use taken with invite_use (the sign-up failed after it). */
int veil_store_invite_unuse(struct veil_store *s, const uint8_t hash[static 32]);
/*
 * Every invite, oldest first, at most VEIL_STORE_MAX_INVITES: *out is
 * malloc'd (free(*out)), NULL when *n is 0.
 */
int veil_store_invite_list(struct veil_store *s, struct veil_invite_rec **out, size_t *n);
/* Revokes the invites whose handle is handle: 0, or VEIL_ENOTFOUND if none was live. */
int veil_store_invite_revoke(struct veil_store *s, const char *handle);

/*
 * --- administration (veilctl through srv/admin; synchronous, thread-safe) ---
 */
#define VEIL_STORE_MAX_LIST 1000 /* most identities one identity_list returns */
struct veil_identity_info {
	struct veil_identity_rec rec;
	uint64_t last_login_ms; /* last login of the identity's receiving connection, 0 = never */
	uint64_t queued;        /* messages in its queue (expired ones not yet purged included) */
};
/*
 * Identities in ID order: with only set, just that one (VEIL_ENOTFOUND if
 * unknown); else those with an ID after `after` (NULL: from the first), at
 * most max (<= VEIL_STORE_MAX_LIST + 1: a page and one to tell that more
 * follow). *out is malloc'd (free(*out)), NULL when *n is 0.
 */
int veil_store_identity_list(struct veil_store *s, const uint8_t *only, const uint8_t *after,
                             size_t max, struct veil_identity_info **out, size_t *n);
/*
 * Deletes an identity in one transaction: its state becomes
 * VEIL_IDENTITY_INVALID (the ID is never given out again) and its queue,
 * links, pending links, push token and revocation key are removed.
 * *dropped gets the number of queued messages removed. VEIL_ENOTFOUND for
 * an unknown identity.
 */
int veil_store_identity_delete(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                               uint64_t *dropped);
struct veil_queue_stats {
	uint64_t messages;   /* rows in the queue */
	uint64_t bytes;      /* their payload bytes */
	uint64_t recipients; /* identities with at least one */
	uint64_t expired;    /* rows past their expiry, not yet purged */
	uint64_t max_queue;  /* the longest queue */
	uint8_t max_id[VEIL_ID_LEN];
};
int veil_store_queue_stats(struct veil_store *s, struct veil_queue_stats *st);
/*
 * Records a login of id at now_ms for identity_list's last_login_ms,
 * asynchronously on the store thread (folded into the next group commit;
 * nothing waits for it). Returns 0 or a negative veil_err.
 */
int veil_store_login(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN], uint64_t now_ms);
/* "sqlite" or "postgresql". */
const char *veil_store_backend(struct veil_store *s);
/* 0 if the store answers a query now, else a negative veil_err (readiness). */
int veil_store_ping(struct veil_store *s);

/*
 * --- message queue (asynchronous, group-committed) ---
 *
 * Each queueing call returns 0 when the job was queued, and then its
 * callback runs exactly once, from veil_store_run_completions() (or from
 * veil_store_close()); or it returns a negative veil_err and the callback
 * never runs. They may be called from any thread, but not after
 * veil_store_close() has begun (callbacks run by close get VEIL_ECLOSED back
 * if they queue more).
 */

typedef void (*veil_store_put_cb)(void *arg, int rc, uint64_t seq);
typedef void (*veil_store_fetch_cb)(void *arg, int rc, struct veil_msg_rec *msgs, size_t n);
typedef void (*veil_store_done_cb)(void *arg, int rc);

/*
 * Queues m (data is copied). cb runs once the message is durable, with its
 * seq, or with VEIL_EQUOTA if the recipient's queue already holds
 * queue_sender_limit messages from m->sender, or VEIL_ELIMIT if it is full,
 * or VEIL_EEXIST if the same (recipient, sender, msg_id) is already queued
 * (the existing seq is passed then, so a resend is acked without a
 * duplicate, even when full), or VEIL_EIO. Both limits count every row
 * until it is acked or purged; expired rows are purged before a put is
 * refused. Returns VEIL_ELIMIT at once if m->len > VEIL_STORE_MAX_BOX.
 */
int veil_store_msg_put(struct veil_store *s, const struct veil_msg_rec *m, veil_store_put_cb cb,
                       void *arg);
/*
 * Reads up to limit unexpired messages for recipient with seq > after_seq,
 * in seq order (limit 0 or above VEIL_STORE_MAX_FETCH means
 * VEIL_STORE_MAX_FETCH). It sees only committed messages. The callback owns
 * nothing: msgs and their data stay valid only during the callback.
 */
int veil_store_msg_fetch(struct veil_store *s, const uint8_t recipient[static VEIL_ID_LEN],
                         uint64_t after_seq, size_t limit, veil_store_fetch_cb cb, void *arg);
/*
 * Deletes the message the recipient acked (by sender and msg_id). cb may be
 * NULL; it gets 0 once the deletion is durable, or VEIL_ENOTFOUND.
 */
int veil_store_msg_ack(struct veil_store *s, const uint8_t recipient[static VEIL_ID_LEN],
                       const uint8_t sender[static VEIL_ID_LEN], uint64_t msg_id,
                       veil_store_done_cb cb, void *arg);
/*
 * Deletes messages with 0 < expires_ms <= now_ms; returns how many, or a
 * negative veil_err (synchronous: it runs on the store thread and waits for
 * it, for a timer or a test).
 */
int veil_store_msg_expire(struct veil_store *s, uint64_t now_ms);
/* Number of unexpired queued messages for recipient (synchronous). */
int veil_store_msg_count(struct veil_store *s, const uint8_t recipient[static VEIL_ID_LEN],
                         uint64_t *count);

#endif
