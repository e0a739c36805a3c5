/*
 * The chat service. One libuv loop owns every connection. A connection
 * walks through the handshake (client-hello, login, extensions), is then
 * authenticated, and exchanges encrypted frames.
 *
 * An outgoing message is acked to its sender only once it is durable: either
 * committed by the store (which group-commits on its own thread) or acked by
 * its recipient. A recipient connected here with nothing older waiting for
 * it gets the message at once ("hand-off"); the message then waits in memory
 * up to cfg.handoff_ms for the recipient's ack, and only if that does not
 * come (or the recipient goes away) is it written to the store. Every other
 * message is stored first and delivered from the store.
 *
 * A login with the csp-device-id extension is a device session of a
 * multi-device identity (one per device, through the mediator): it may
 * send at once, but receives nothing until it sends
 * unblock-incoming-messages; then it is the identity's receiving
 * connection, as a login without the extension is at once. An identity has
 * at most one receiving connection; a newer one closes the older, and a
 * device's newer session closes its older one.
 *
 * Memory per idle connection is kept small: the read buffer is shared by
 * the loop and a connection holds bytes only while a frame is incomplete.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "chat/chat.h"
#include "limit/connlimit.h"
#include "push/push.h"
#include "metrics/metrics.h"
#include "veil/csp.h"
#include "veil/e2e.h"

enum conn_state { ST_HELLO, ST_LOGIN, ST_LOGIN_EXT, ST_AUTHED };

struct conn {
	struct veil_chat *chat;
	struct veil_chat_pipe *pipe; /* an in-process session (the mediator's), or NULL: tcp */
	struct conn *prev, *next;    /* every connection */
	struct conn *hnext;          /* identity map chain */
	int refs;
	unsigned st : 2;
	unsigned closing : 1; /* close once writes drain */
	unsigned closed : 1;  /* uv_close called */
	unsigned in_map : 1;
	unsigned drain_done : 1; /* queued messages delivered, 0xd0 sent */
	unsigned fetch_pending : 1;
	unsigned fetch_wanted : 1; /* a fetch waits for writes to drain */
	unsigned refetch : 1;      /* a message was left in the store while fetching */
	unsigned in_handshake : 1; /* counted in addr->handshaking */
	unsigned device : 1;       /* logged in with a csp-device-id (a multi-device session) */
	unsigned receiving : 1;    /* the identity's receiving connection */
	unsigned working : 1;      /* a handshake step runs on the thread pool; input waits */
	unsigned
	    move_wanted : 1; /* logged in on a loop that is not its identity's: moves once writes drain */
	unsigned moved : 1; /* its pipe went with it to another loop: closing here ends nothing */
	unsigned dirty : 1; /* on the chat's list of connections to flush */
	unsigned inflight : 1; /* a uv_write is under way */
	uint32_t idle_ms;
	uint8_t features;
	uint8_t identity[VEIL_ID_LEN];
	uint64_t id_key;      /* the map key: the identity's, or dev_key() before unblocking */
	uint64_t device_id;   /* from the login's csp-device-id, if device */
	uint64_t deadline_ms; /* handshake deadline or idle deadline */
	uint64_t delivered_seq;
	uint64_t session_gen; /* from veil_store_session_claim (0: none or not shared) */
	struct put_ctx *live_head, *live_tail; /* handed off, not yet acked, oldest first */
	uint32_t live_n;
	uint32_t held_n;      /* of those, not written to the store yet */
	uint64_t live_after;  /* hand-off only once chat->puts_done reaches this */
	size_t write_pending; /* bytes in out plus bytes handed to uv_write */
	struct conn *dirty_next;
	struct veil_buf out;               /* frames sealed this loop pass, not yet written */
	struct veil_csp_session sess;      /* once logged in */
	struct veil_csp_server *hs;        /* only during the handshake */
	struct veil_csp_login_info *login; /* only during the handshake */
	struct veil_buf pend;              /* bytes of an incomplete unit */
};

/* A connection over TCP: its address's counts and its socket after it (a pipe's has none). */
struct tcp_conn {
	struct conn c;
	uintptr_t addr_tok, hs_tok; /* counted by chat->conns_per_addr and ->hs_per_addr */
	uv_tcp_t tcp;
};

static struct tcp_conn *tcp_of(struct conn *c)
{
	return (struct tcp_conn *)c;
}

static uv_tcp_t *conn_tcp(struct conn *c)
{
	return &tcp_of(c)->tcp;
}

/* The bytes of c's allocation. */
static size_t conn_size(const struct conn *c)
{
	return c->pipe != NULL ? sizeof(struct conn) : sizeof(struct tcp_conn);
}

/* The handshake's keys go (wiped). */
static void hs_forget(struct conn *c)
{
	if (c->hs == NULL)
		return;
	sodium_memzero(c->hs, sizeof *c->hs);
	free(c->hs);
	c->hs = NULL;
}

/* Logged in: the session's keys stay, the handshake's go. */
static void hs_keep_session(struct conn *c)
{
	c->sess = c->hs->sess;
	hs_forget(c);
}

/*
 * A pipe's output holds at most this: pipe_output stops the session at
 * VEIL_CHAT_MAX_PENDING_WRITE, and one flush adds at most a connection's
 * output limit.
 */
#define VEIL_CHAT_PIPE_OUT_MAX                                                                     \
	(3 * VEIL_CHAT_MAX_PENDING_WRITE + VEIL_CHAT_FETCH_BATCH * (2 + VEIL_CSP_MAX_FRAME))

/* A pipe's bytes (idle pipes are many: smaller than a struct veil_buf). */
struct pbuf {
	uint8_t *p;
	uint32_t len, cap;
};

/*
 * An in-process session (see chat.h): the mediator's CSP session for one
 * device, with the bytes passed in memory instead of over a loopback
 * socket. Shared by the consumer's thread and the session's loop; every
 * field under its group's pipe_lock (loop, which names the group, is also
 * read without it: see pipe_lock_of).
 */
struct veil_chat_pipe {
	struct veil_chat *loop;       /* where its session is, or goes next */
	struct conn *conn;            /* its session: NULL before it starts and once it ended */
	void *ctx;                    /* the consumer's, until it lets go */
	struct pbuf in, out;          /* to the session; from it, for the consumer */
	struct veil_chat_pipe *rnext; /* on grp->pipe_ready */
	unsigned refs : 3;            /* the consumer, the session, a post, the ready list */
	unsigned posted : 1;          /* an X_PIPE is on its way to loop */
	unsigned ready : 1;           /* on grp->pipe_ready */
	unsigned started : 1;         /* its session was made (or refused) */
	unsigned ended : 1;           /* the session ended (after its last output) */
	unsigned gone : 1;            /* the consumer let go */
	unsigned blocked : 1;         /* its output is full: the session waits until it is taken */
};

static uv_mutex_t *pipe_lock_of(const struct veil_chat_pipe *p);

static void pipe_ended(struct veil_chat_pipe *p);
static void pipe_output(struct conn *c);
static void pipe_pull(struct conn *c);
static void pipe_unref(struct veil_chat_pipe *p);
static void conn_unref_later(struct conn *c);

#define SECOND_LOGIN "Another connection for the same identity has been established"

/* At most one line this often says what the per-address limits refused. */
#define ADDR_LOG_EVERY_MS 10000

/*
 * Receivers known to exist, so that the hot path does not query the store
 * for every message. Direct-mapped; an entry is trusted for
 * VEIL_CHAT_ID_CACHE_MS, so a revocation reaches message routing within
 * that time (logins always ask the store).
 */
#define ID_CACHE_SLOTS 16384
#define VEIL_CHAT_ID_CACHE_MS 60000
struct id_cache_entry {
	uint64_t key;
	uint64_t until_ms;
};

/*
 * SS1 = X25519HSalsa20(SK, CK) of identities that logged in, keyed by ID and
 * checked against the identity's current key, so a reconnect costs one
 * X25519 less. Wiped when the service is freed.
 */
#define SS1_CACHE_SLOTS 4096
struct ss1_cache_entry {
	uint64_t key;
	uint8_t pk[VEIL_KEY_LEN];
	uint8_t ss1[VEIL_KEY_LEN];
};

/*
 * --- several loops (--chat-threads) ---
 *
 * Each chat loop is a struct veil_chat with its own libuv loop and thread
 * (the first one runs on veild's main loop). Every identity has a home loop
 * (a hash of its ID): once logged in, a connection moves to its identity's
 * home loop, so that all connections of an identity, and every message for
 * it, are on one loop, where the one-connection rules, the hand-off and the
 * order of the store work as with a single loop. A message whose recipient
 * has another home goes to that loop through its inbox (a list under a
 * mutex, and the loop's async handle as the wake-up); the recipient's loop
 * handles it as its own, and what the sender must hear (the ack, or why not)
 * goes back the same way to the sender's loop. Each sender's messages to
 * one recipient thus pass one FIFO inbox and then one loop in order.
 */
struct xmsg;
struct chat_group {
	unsigned n;
	struct veil_chat *loops[VEIL_CHAT_MAX_THREADS];
	unsigned next;    /* the loop the next accepted connection goes to (loop 0 only) */
	int started;      /* the loop threads run */
	int login_inline; /* VEIL_CHAT_LOGIN_INLINE=1: a login's X25519 on the loop (to measure) */
	uv_mutex_t lock;  /* the per-address limits and the SS1 cache, shared by the loops */
	/* In-process sessions (struct veil_chat_pipe): their state, under pipe_lock. */
	uv_mutex_t pipe_lock;
	void (*pipe_wake)(void *arg); /* the consumer's, or NULL */
	void *pipe_wake_arg;
	struct veil_chat_pipe *pipe_ready; /* pipes with output or an end for the consumer */
	unsigned pipe_next;                /* the loop the next pipe's session starts on */
};

struct veil_chat {
	uv_loop_t *loop;
	struct chat_group *grp;
	unsigned idx;
	uv_loop_t own_loop; /* the loop of a chat loop other than the first */
	uv_thread_t thread;
	struct veil_store_lane *lane;    /* store completions of this loop (not the first) */
	struct xmsg *in_head, **in_tail; /* the inbox, under async_lock */
	struct id_cache_entry id_cache[ID_CACHE_SLOTS];
	struct ss1_cache_entry *ss1_cache;
	struct veil_server *srv;
	uv_tcp_t listener;
	uv_async_t async;
	uv_timer_t sweep;
	uv_timer_t expire;
	uv_timer_t handoff;                    /* stores held messages whose wait is over */
	struct put_ctx *held_head, *held_tail; /* handed off, not in the store, by deadline */
	size_t held_bytes;
	uint64_t puts_issued, puts_done; /* store puts submitted and completed (FIFO) */
	uv_mutex_t async_lock;
	int async_alive;
	int listening;
	int stopping;
	struct conn *conns;
	struct conn *dirty; /* connections with output to flush before polling */
	uv_prepare_t flush;
	uv_check_t woke;  /* notes when the loop came out of its poll */
	uint64_t woke_ns; /* uv_hrtime() of that */
	struct conn **map;
	size_t map_size, map_count;
	struct veil_chat_stats st;
	struct veil_chat_stats st_logged; /* as of the last minute's log line */
	/* Per client address: connections (and new ones a minute), and handshakes. */
	struct veil_connlimit *conns_per_addr, *hs_per_addr;
	/* Connections refused by a per-address limit since the last log line. */
	uint64_t refused_total, refused_hs, refused_rate, refused_table;
	uint64_t refused_logged_ms, refused_since_ms;
	uint8_t rbuf[65536];
};

/* The lock of p's fields: its loop's group's (the same for every loop p may move to). */
static uv_mutex_t *pipe_lock_of(const struct veil_chat_pipe *p)
{
	return &__atomic_load_n(&p->loop, __ATOMIC_RELAXED)->grp->pipe_lock;
}

/* A write the kernel did not take at once; it owns the buffer's bytes. */
struct wreq {
	uv_write_t req;
	struct conn *c;
	struct veil_buf buf;
};

/*
 * Counters are written by their loop only and read by any (the status and
 * /metrics): single-writer stores and loads, atomic so that they never tear.
 */
#define STAT_INC(chat, f) __atomic_store_n(&(chat)->st.f, (chat)->st.f + 1, __ATOMIC_RELAXED)
#define STAT_DEC(chat, f) __atomic_store_n(&(chat)->st.f, (chat)->st.f - 1, __ATOMIC_RELAXED)

static void conn_unref(struct conn *c);
static void conn_close(struct conn *c);
static void wake_offline(struct veil_chat *chat, const uint8_t id[VEIL_ID_LEN]);
static uint64_t total_connections(const struct veil_chat *chat);
static void start_fetch(struct conn *c);
static void become_receiver(struct conn *c);
static void drop_live(struct conn *c);
static void on_acked(void *arg, int rc);
struct put_ctx;
static struct put_ctx *live_find(struct conn *c, const uint8_t sender[static VEIL_ID_LEN],
                                 uint64_t msg_id);

static uint64_t id_key(const uint8_t id[static VEIL_ID_LEN])
{
	return veil_load_u64le(id);
}

/*
 * The map key of a device session that does not receive (yet): the
 * identity's key mixed with the device ID, so that the sessions of one
 * identity spread over the map like any other keys.
 */
static uint64_t dev_key(uint64_t idk, uint64_t device_id)
{
	return idk ^ ((device_id + 1) * 0x9e3779b97f4a7c15ull);
}

/*
 * --- identity map ---
 *
 * One map holds every authenticated connection: the identity's receiving
 * connection (a legacy login, or a device session that sent
 * unblock-incoming-messages) under the identity's key, and each device
 * session that does not receive under dev_key(). Lookups for a receiver
 * match the receiving flag too, so a mixed key that equals some identity's
 * key is never taken for that identity's receiver.
 */

static size_t map_slot(const struct veil_chat *chat, uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (size_t)key & (chat->map_size - 1);
}

static struct conn *map_get(struct veil_chat *chat, uint64_t key)
{
	for (struct conn *c = chat->map[map_slot(chat, key)]; c != NULL; c = c->hnext)
		if (c->id_key == key && c->receiving)
			return c;
	return NULL;
}

/* The session of device_id of identity id that does not receive, if any. */
static struct conn *map_get_device(struct veil_chat *chat, const uint8_t id[static VEIL_ID_LEN],
                                   uint64_t device_id)
{
	uint64_t key = dev_key(id_key(id), device_id);
	for (struct conn *c = chat->map[map_slot(chat, key)]; c != NULL; c = c->hnext)
		if (c->id_key == key && !c->receiving && c->device_id == device_id &&
		    memcmp(c->identity, id, VEIL_ID_LEN) == 0)
			return c;
	return NULL;
}

/* Returns 1 if id may receive messages (exists and is not revoked), 0 if not, -1 if the store failed. */
static int receiver_ok(struct veil_chat *chat, const uint8_t id[static VEIL_ID_LEN])
{
	uint64_t key = id_key(id), h = key * 0x9e3779b97f4a7c15ull;
	struct id_cache_entry *e = &chat->id_cache[(h >> 32) & (ID_CACHE_SLOTS - 1)];
	uint64_t now = veil_mono_ms();
	struct veil_identity_rec rec;
	if (e->key == key && e->until_ms > now)
		return 1;
	int rc = veil_store_identity_get(chat->srv->store, id, &rec);
	if (rc != 0 && rc != VEIL_ENOTFOUND) {
		veil_log_error("chat: store error while looking up a recipient: %s",
		               veil_strerror(rc));
		return -1;
	}
	if (rc != 0 || rec.state == VEIL_IDENTITY_INVALID)
		return 0;
	e->key = key;
	e->until_ms = now + VEIL_CHAT_ID_CACHE_MS;
	return 1;
}

static void map_del(struct veil_chat *chat, struct conn *c)
{
	if (!c->in_map)
		return;
	struct conn **pp = &chat->map[map_slot(chat, c->id_key)];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	c->in_map = 0;
	chat->map_count--;
}

static int map_put(struct veil_chat *chat, struct conn *c)
{
	if (chat->map_count + 1 > chat->map_size) {
		size_t nsize = chat->map_size * 2;
		struct conn **nmap = calloc(nsize, sizeof *nmap);
		if (nmap == NULL)
			return VEIL_ENOMEM;
		struct conn **old = chat->map;
		size_t osize = chat->map_size;
		chat->map = nmap;
		chat->map_size = nsize;
		for (size_t i = 0; i < osize; i++) {
			struct conn *e = old[i];
			while (e != NULL) {
				struct conn *n = e->hnext;
				size_t s = map_slot(chat, e->id_key);
				e->hnext = nmap[s];
				nmap[s] = e;
				e = n;
			}
		}
		free(old);
	}
	size_t s = map_slot(chat, c->id_key);
	c->hnext = chat->map[s];
	chat->map[s] = c;
	c->in_map = 1;
	chat->map_count++;
	return 0;
}

/* --- writing --- */

/*
 * Frames are sealed straight into the connection's output buffer. Once per
 * loop pass, right before libuv polls, every connection with output gets one
 * write: under load many frames (acks, deliveries) share one system call.
 * What the kernel does not take at once goes to uv_write, which owns that
 * buffer until it completes; new frames collect in a fresh buffer meanwhile.
 */
/* Puts c on the list flushed before the next poll (the list holds a reference). */
static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = 1;
	c->refs++;
	c->dirty_next = c->chat->dirty;
	c->chat->dirty = c;
}

static void maybe_finish(struct conn *c)
{
	if (c->closing && !c->closed && c->out.len == 0 && !c->inflight)
		conn_close(c);
}

static void try_move(struct conn *c);

static void after_drain(struct conn *c)
{
	if (c->move_wanted && !c->inflight && !c->closing) {
		try_move(c);
		return;
	}
	if (!c->closing && c->fetch_wanted && c->write_pending < VEIL_CHAT_MAX_PENDING_WRITE) {
		c->fetch_wanted = 0;
		start_fetch(c);
	}
	maybe_finish(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *c = w->c;
	c->write_pending -= w->buf.len;
	c->inflight = 0;
	veil_buf_release(&w->buf);
	free(w);
	if (status != 0) {
		conn_close(c);
	} else {
		if (c->out.len > 0 && !c->closed)
			mark_dirty(c);
		after_drain(c);
	}
	conn_unref(c);
}

static void flush_conn(struct conn *c)
{
	if (c->closed || c->inflight || c->out.len == 0)
		return;
	if (c->pipe != NULL) {
		pipe_output(c);
		return;
	}
	uv_buf_t b = uv_buf_init((char *)c->out.p, (unsigned)c->out.len);
	int n = uv_try_write((uv_stream_t *)conn_tcp(c), &b, 1);
	if (n == UV_EAGAIN)
		n = 0;
	if (n < 0) {
		conn_close(c);
		return;
	}
	c->write_pending -= (size_t)n;
	if ((size_t)n == c->out.len) {
		/* Idle connections keep no output memory. */
		veil_buf_release(&c->out);
		after_drain(c);
		return;
	}
	struct wreq *w = malloc(sizeof *w);
	if (w == NULL) {
		conn_close(c);
		return;
	}
	w->c = c;
	w->buf = c->out;
	veil_buf_init(&c->out, c->out.max);
	veil_buf_consume(&w->buf, (size_t)n);
	b = uv_buf_init((char *)w->buf.p, (unsigned)w->buf.len);
	c->refs++;
	c->inflight = 1;
	if (uv_write(&w->req, (uv_stream_t *)conn_tcp(c), &b, 1, on_write) != 0) {
		c->inflight = 0;
		c->refs--;
		c->write_pending -= w->buf.len;
		veil_buf_release(&w->buf);
		free(w);
		conn_close(c);
	}
}

/*
 * Wake-up coalescing. At a quiet, steady rate every message would cost the
 * loop a sleep in epoll_wait and a wake-up of its own (a context switch, the
 * most expensive part of a small message on a virtual machine). When the
 * loop polled less than coalesce_ns ago, it first sleeps out the rest of
 * that window (its output already flushed), so that what arrives meanwhile
 * is read in one pass. A loop that was idle answers its first event at once;
 * a busy loop, whose passes take longer than the window, never sleeps. The
 * added latency is at most the window.
 */
static void on_woke(uv_check_t *h)
{
	struct veil_chat *chat = h->data;
	/* Off (the default): no clock read per loop pass. */
	if (__atomic_load_n(&chat->srv->cfg.chat_coalesce_us, __ATOMIC_RELAXED) != 0)
		chat->woke_ns = uv_hrtime();
}

static void coalesce(struct veil_chat *chat)
{
	/* SIGHUP changes it on the first loop; every loop reads it. */
	uint64_t window =
	    (uint64_t)__atomic_load_n(&chat->srv->cfg.chat_coalesce_us, __ATOMIC_RELAXED) * 1000;
	if (window == 0 || chat->stopping)
		return;
	uint64_t since = uv_hrtime() - chat->woke_ns;
	if (since >= window)
		return;
	uint64_t left = window - since;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left};
	nanosleep(&ts, NULL);
}

static void on_flush(uv_prepare_t *h)
{
	struct veil_chat *chat = h->data;
	while (chat->dirty != NULL) {
		struct conn *c = chat->dirty;
		chat->dirty = c->dirty_next;
		c->dirty = 0;
		flush_conn(c);
		conn_unref(c);
	}
	/* At shutdown the flusher lives until the last close-error is written. */
	if (chat->stopping && chat->conns == NULL && !uv_is_closing((uv_handle_t *)h)) {
		uv_close((uv_handle_t *)h, NULL);
		return;
	}
	coalesce(chat);
}

/* Reserves n bytes at the end of c's output and marks c for the next flush. */
static uint8_t *out_reserve(struct conn *c, size_t n)
{
	if (c->closed || veil_buf_reserve(&c->out, n) != 0)
		return NULL;
	mark_dirty(c);
	uint8_t *p = c->out.p + c->out.len;
	c->out.len += n;
	c->write_pending += n;
	return p;
}

/* Sends a raw handshake message (not framed). */
static int send_raw(struct conn *c, const uint8_t *p, size_t n)
{
	uint8_t *dst = out_reserve(c, n);
	if (dst == NULL)
		return VEIL_ELIMIT;
	memcpy(dst, p, n);
	return 0;
}

/* Seals type || reserved || a || b into one frame. */
static int send_payload2(struct conn *c, uint8_t type, const uint8_t *a, size_t alen,
                         const uint8_t *b, size_t blen)
{
	static _Thread_local uint8_t plain[VEIL_CSP_MAX_PAYLOAD];
	size_t n = 4 + alen + blen;
	if (c->closed || n > VEIL_CSP_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	veil_csp_payload_header(plain, type);
	if (alen > 0)
		memcpy(plain + 4, a, alen);
	if (blen > 0)
		memcpy(plain + 4 + alen, b, blen);
	uint8_t *dst = out_reserve(c, 2 + VEIL_MAC_LEN + n);
	int rc = dst ? veil_csp_frame_seal(&c->sess, dst, plain, n) : VEIL_ELIMIT;
	sodium_memzero(plain, n);
	return rc;
}

static int send_payload(struct conn *c, uint8_t type, const uint8_t *p, size_t n)
{
	return send_payload2(c, type, p, n, NULL, 0);
}

static void send_text(struct conn *c, uint8_t type, int reconnect, const char *text)
{
	uint8_t flag = reconnect ? 1 : 0;
	if (type == VEIL_CSP_CLOSE_ERROR)
		(void)send_payload2(c, type, &flag, 1, (const uint8_t *)text, strlen(text));
	else
		(void)send_payload(c, type, (const uint8_t *)text, strlen(text));
}

/*
 * Ends a connection for a protocol reason. An authenticated client gets a
 * close-error first; the socket closes once it is written.
 */
static void conn_fail(struct conn *c, int reconnect, const char *why)
{
	if (c->closing || c->closed)
		return;
	if (c->st == ST_AUTHED)
		send_text(c, VEIL_CSP_CLOSE_ERROR, reconnect, why);
	c->closing = 1;
	drop_live(c);
	if (c->pipe == NULL)
		uv_read_stop((uv_stream_t *)conn_tcp(c));
	maybe_finish(c);
}

/* --- per-address limits --- */

static void addr_log_refusals(struct veil_chat *chat, uint64_t now)
{
	uint64_t n =
	    chat->refused_total + chat->refused_hs + chat->refused_rate + chat->refused_table;
	if (n == 0 || now - chat->refused_logged_ms < ADDR_LOG_EVERY_MS)
		return;
	const struct veil_config *cfg = &chat->srv->cfg;
	veil_log_warn("chat: refused %llu connections over per-address limits in %llu s: "
	              "%llu over --chat-conn-per-addr %u, %llu over --chat-handshakes-per-addr %u, "
	              "%llu over --chat-conn-rate %u/min, %llu with the address table full",
	              (unsigned long long)n,
	              (unsigned long long)((now - chat->refused_since_ms + 999u) / 1000u),
	              (unsigned long long)chat->refused_total, (unsigned)cfg->chat_conn_per_addr,
	              (unsigned long long)chat->refused_hs, (unsigned)cfg->chat_handshakes_per_addr,
	              (unsigned long long)chat->refused_rate, (unsigned)cfg->chat_conn_rate_per_min,
	              (unsigned long long)chat->refused_table);
	chat->refused_total = chat->refused_hs = chat->refused_rate = chat->refused_table = 0;
	chat->refused_logged_ms = now;
}

/*
 * Counts a new connection against its address: every attempt takes one of
 * the address's new connections a minute; then it must be under the
 * address's caps on connections and on handshakes. Returns 0, or -1 if a
 * limit refuses it (counted for the log line).
 */
static int addr_admit_locked(struct veil_chat *chat, struct conn *c, const struct sockaddr *a,
                             socklen_t len, uint64_t now);
static int addr_admit(struct veil_chat *chat, struct conn *c)
{
	struct sockaddr_storage sa;
	int len = sizeof sa, rc;
	uint64_t now = veil_mono_ms();
	if (chat->refused_total + chat->refused_hs + chat->refused_rate + chat->refused_table == 0)
		chat->refused_since_ms = now;
	if (uv_tcp_getpeername(conn_tcp(c), (struct sockaddr *)&sa, &len) != 0)
		return -1;
	const struct sockaddr *a = (const struct sockaddr *)&sa;
	uv_mutex_lock(&chat->grp->lock);
	rc = addr_admit_locked(chat, c, a, (socklen_t)len, now);
	uv_mutex_unlock(&chat->grp->lock);
	return rc;
}

/* addr_admit under the group's lock (the tables are shared by the loops). */
static int addr_admit_locked(struct veil_chat *chat, struct conn *c, const struct sockaddr *a,
                             socklen_t len, uint64_t now)
{
	int rc = veil_connlimit_check(chat->conns_per_addr, a, (socklen_t)len, now);
	if (rc != 0) {
		if (rc == VEIL_EAGAIN)
			chat->refused_rate++;
		else
			chat->refused_total++;
		veil_metric_inc(VEIL_METRIC_REFUSE_CHAT_ADDR);
		return -1;
	}
	if (veil_connlimit_check(chat->hs_per_addr, a, (socklen_t)len, now) != 0) {
		chat->refused_hs++;
		veil_metric_inc(VEIL_METRIC_REFUSE_CHAT_ADDR);
		return -1;
	}
	struct tcp_conn *t = tcp_of(c);
	if (veil_connlimit_open(chat->conns_per_addr, a, (socklen_t)len, &t->addr_tok) ==
	        VEIL_ELIMIT ||
	    veil_connlimit_open(chat->hs_per_addr, a, (socklen_t)len, &t->hs_tok) == VEIL_ELIMIT) {
		veil_connlimit_close(chat->conns_per_addr, t->addr_tok);
		t->addr_tok = 0;
		chat->refused_table++;
		veil_metric_inc(VEIL_METRIC_REFUSE_CHAT_ADDR);
		return -1;
	}
	return 0;
}

/* The handshake is over (logged in): it no longer counts as one. */
static void addr_handshake_done(struct conn *c)
{
	if (c->pipe != NULL || tcp_of(c)->hs_tok == 0)
		return; /* a pipe's session has no address */
	uv_mutex_lock(&c->chat->grp->lock);
	veil_connlimit_close(c->chat->hs_per_addr, tcp_of(c)->hs_tok);
	uv_mutex_unlock(&c->chat->grp->lock);
	tcp_of(c)->hs_tok = 0;
}

static void addr_release(struct conn *c)
{
	addr_handshake_done(c);
	if (c->pipe != NULL || tcp_of(c)->addr_tok == 0)
		return;
	uv_mutex_lock(&c->chat->grp->lock);
	veil_connlimit_close(c->chat->conns_per_addr, tcp_of(c)->addr_tok);
	uv_mutex_unlock(&c->chat->grp->lock);
	tcp_of(c)->addr_tok = 0;
}

/* --- connection lifetime --- */

static void on_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void conn_close(struct conn *c)
{
	struct veil_chat *chat = c->chat;
	if (c->closed)
		return;
	c->closed = 1;
	c->closing = 1;
	drop_live(c);
	map_del(chat, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		chat->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	STAT_DEC(chat, connections);
	addr_release(c);
	if (c->pipe == NULL) {
		uv_close((uv_handle_t *)conn_tcp(c), on_closed);
		return;
	}
	/* Its consumer hears of the end; its last reference goes later, as on_closed's would. */
	if (!c->moved)
		pipe_ended(c->pipe);
	conn_unref_later(c);
}

static void conn_unref(struct conn *c)
{
	if (--c->refs > 0)
		return;
	veil_buf_release(&c->pend);
	veil_buf_release(&c->out);
	if (c->login != NULL) {
		sodium_memzero(c->login, sizeof *c->login);
		free(c->login);
	}
	hs_forget(c);
	sodium_memzero(&c->sess, sizeof c->sess);
	if (c->pipe != NULL && !c->moved)
		pipe_unref(c->pipe);
	free(c);
}

/* --- delivering queued messages --- */

/*
 * Sends one stored message to its recipient as an incoming message. A
 * client that did not announce metadata support gets the legacy form.
 */
static int deliver(struct conn *c, const uint8_t *data, size_t len)
{
	struct veil_msgbox m;
	if (!(c->features & VEIL_CSP_FEATURE_METADATA) && veil_msgbox_parse(&m, data, len) == 0 &&
	    m.metadata_len > 0) {
		uint8_t hdr[VEIL_MSGBOX_HDR_LEN];
		memcpy(hdr, data, sizeof hdr);
		veil_store_u16le(hdr + 30, 0);
		size_t tail = len - VEIL_MSGBOX_HDR_LEN - m.metadata_len;
		return send_payload2(c, VEIL_CSP_INCOMING_MESSAGE, hdr, sizeof hdr,
		                     data + VEIL_MSGBOX_HDR_LEN + m.metadata_len, tail);
	}
	return send_payload(c, VEIL_CSP_INCOMING_MESSAGE, data, len);
}

/* Messages sent without server acks are never acked by the client either. */
static void deliver_rec(struct conn *c, const struct veil_msg_rec *r)
{
	if (deliver(c, r->data, r->len) != 0) {
		conn_fail(c, 1, "Internal error while delivering");
		return;
	}
	c->delivered_seq = r->seq;
	STAT_INC(c->chat, messages_out);
	if (r->flags & VEIL_MSG_FLAG_NO_SERVER_ACK)
		(void)veil_store_msg_ack(c->chat->srv->store, c->identity, r->sender, r->msg_id,
		                         on_acked, NULL);
}

static void on_fetch(void *arg, int rc, struct veil_msg_rec *msgs, size_t n)
{
	struct conn *c = arg;
	c->fetch_pending = 0;
	if (c->closing) {
		conn_unref(c);
		return;
	}
	if (rc != 0) {
		veil_log_error("chat: queue read failed: %s", veil_strerror(rc));
		conn_fail(c, 1, "Temporary server error");
		conn_unref(c);
		return;
	}
	for (size_t i = 0; i < n && !c->closing; i++) {
		if (msgs[i].seq <= c->delivered_seq)
			continue;
		/* Handed off to this connection already and stored since, not yet acked. */
		if (c->live_n > 0 && live_find(c, msgs[i].sender, msgs[i].msg_id) != NULL)
			c->delivered_seq = msgs[i].seq;
		else
			deliver_rec(c, &msgs[i]);
	}
	/*
	 * Read again if the batch was full or if a message committed while this
	 * read was under way was left in the store for it: the read may have
	 * run before that commit.
	 */
	if (n == VEIL_CHAT_FETCH_BATCH || c->refetch) {
		c->refetch = 0;
		if (c->write_pending < VEIL_CHAT_MAX_PENDING_WRITE)
			start_fetch(c);
		else
			c->fetch_wanted = 1;
	} else if (!c->drain_done && !c->closing) {
		c->drain_done = 1;
		(void)send_payload(c, VEIL_CSP_QUEUE_SEND_COMPLETE, NULL, 0);
	}
	conn_unref(c);
}

static void start_fetch(struct conn *c)
{
	if (c->fetch_pending || c->closing)
		return;
	c->fetch_pending = 1;
	c->refs++;
	if (veil_store_msg_fetch(c->chat->srv->store, c->identity, c->delivered_seq,
	                         VEIL_CHAT_FETCH_BATCH, on_fetch, c) != 0) {
		c->fetch_pending = 0;
		c->refs--;
		conn_fail(c, 1, "Temporary server error");
	}
}

/* --- outgoing messages --- */

/*
 * One outgoing message on its way: to the store, to a recipient connected
 * here, or both. It is freed once no store operation is under way and no
 * list holds it.
 */
/*
 * A message from one loop to another, or something a loop must do for
 * another (see struct chat_group). Posted with xpost; handled in the order
 * posted by the receiving loop.
 */
enum xkind {
	X_CONN,  /* conn moves in: accepted on the first loop, or logged in elsewhere */
	X_FWD,   /* put: a message for a recipient whose home is this loop */
	X_NOTE,  /* to the sender's loop: the result of put for its sender (rc) */
	X_BACK,  /* to the sender's loop: put is done there (with its result if note) */
	X_EVENT, /* a store event (ev) for id, or ev X_WAKE_OFFLINE */
	X_KICK,  /* the operator closes id's connections (veil_chat_kick) */
	X_STOP,  /* veil_chat_shutdown */
	X_PIPE,  /* pipe: input, its start or its end from the consumer, for its session's loop */
	X_UNREF, /* conn, closed on a pipe: its last reference goes (as uv_close's callback would) */
};
#define X_WAKE_OFFLINE 100
struct xmsg {
	struct xmsg *next;
	int kind;
	int ev, rc, fd;
	struct conn *conn;
	struct put_ctx *put;
	struct veil_chat_pipe *pipe;
	uint64_t gen, msg_id;
	uint8_t flags;
	uint8_t id[VEIL_ID_LEN];
};

struct put_ctx {
	struct conn *sender;    /* holds a reference; touched on home only */
	struct veil_chat *home; /* the sender's loop */
	struct veil_chat *at;   /* the recipient's home loop, which handles it */
	struct xmsg x;          /* X_FWD to at, then X_BACK to home */
	uint8_t sender_id[VEIL_ID_LEN];
	struct conn *live;             /* handed off to it, not yet acked: on its list */
	struct put_ctx *lprev, *lnext; /* the recipient connection's list */
	struct put_ctx *hprev, *hnext; /* the chat's held list */
	uint64_t deadline;             /* uv_now() when a held message is stored */
	unsigned held : 1;             /* handed off and not written to the store */
	unsigned delivered : 1;        /* the recipient connection has it */
	unsigned put_busy : 1;         /* a store put is under way */
	unsigned ack_busy : 1;         /* a store ack (delete) is under way */
	unsigned counted : 1;          /* counted in chat->puts_issued */
	unsigned note : 1;             /* the sender's result (note_rc) is still to be sent home */
	int note_rc;
	uint8_t receiver[VEIL_ID_LEN];
	uint64_t msg_id;
	uint8_t flags;
	size_t len;
	uint8_t data[];
};

static void xpost(struct veil_chat *to, struct xmsg *x);

static void put_free(struct put_ctx *p)
{
	struct conn *s = p->sender;
	sodium_memzero(p->data, p->len);
	free(p);
	conn_unref(s);
}

/*
 * Frees p once nothing holds it. A message from another loop goes back
 * there (X_BACK, with the sender's result if that is still to be sent);
 * one that stays, with a result to send, sends it alone (X_NOTE).
 */
static void put_maybe_free(struct put_ctx *p)
{
	if (p->put_busy || p->ack_busy || p->live != NULL || p->held) {
		if (p->note) {
			struct xmsg *x = calloc(1, sizeof *x);
			if (x == NULL)
				return; /* sent with X_BACK instead */
			p->note = 0;
			x->kind = X_NOTE;
			x->conn = p->sender;
			x->rc = p->note_rc;
			x->msg_id = p->msg_id;
			x->flags = p->flags;
			memcpy(x->id, p->receiver, VEIL_ID_LEN);
			xpost(p->home, x);
		}
		return;
	}
	if (p->home != p->at) {
		p->x.kind = X_BACK;
		p->x.put = p;
		xpost(p->home, &p->x);
		return;
	}
	put_free(p);
}

static void send_ack(struct conn *c, const uint8_t receiver[static VEIL_ID_LEN], uint64_t msg_id)
{
	uint8_t ack[VEIL_CSP_ACK_LEN];
	veil_csp_ack_encode(ack, receiver, msg_id);
	(void)send_payload(c, VEIL_CSP_OUTGOING_ACK, ack, sizeof ack);
}

/*
 * What the sender hears of its message to receiver (on the sender's loop):
 * the ack once it is durable or acked by the recipient (rc 0 or
 * VEIL_EEXIST), an alert for a refusal, or the end of the session for a
 * store error.
 */
static void sender_apply(struct conn *s, const uint8_t receiver[static VEIL_ID_LEN],
                         uint64_t msg_id, uint8_t flags, int rc)
{
	char rid[VEIL_ID_LEN + 1];
	if (rc == 0 || rc == VEIL_EEXIST) {
		if (!s->closing && !(flags & VEIL_MSG_FLAG_NO_SERVER_ACK))
			send_ack(s, receiver, msg_id);
	} else if (rc == VEIL_ELIMIT || rc == VEIL_EQUOTA || rc == VEIL_ENOSPC) {
		/*
		 * Refused, so not acked (the client may send it again later), and
		 * the session goes on. The alert names the cause: a full queue
		 * waits for the recipient, a used-up share (VEIL_EQUOTA) on this
		 * sender's own messages, a full disk on the operator.
		 */
		if (rc != VEIL_ENOSPC)
			veil_refusal(
			    VEIL_METRIC_REFUSE_QUEUE_FULL,
			    "messages (recipient's queue or the sender's share of it full, "
			    "--queue-limit / --queue-sender-limit)");
		veil_id_str(rid, receiver);
		char text[160];
		snprintf(text, sizeof text, "Message to %s not delivered: %s", rid,
		         rc == VEIL_EQUOTA
		             ? "the recipient's queue holds too many messages from you"
		         : rc == VEIL_ENOSPC ? "the server is out of disk space, try again later"
		                             : "the recipient's queue is full");
		if (!s->closing)
			send_text(s, VEIL_CSP_ALERT, 0, text);
	} else {
		if (rc != VEIL_ECLOSED) {
			veil_metric_inc(VEIL_METRIC_ERR_STORE);
			veil_log_error("chat: queue write failed: %s", veil_strerror(rc));
		}
		if (!s->closing)
			conn_fail(s, 1, "Temporary server error");
	}
}

/* The sender's result: at once on its own loop, else sent home by put_maybe_free. */
static void sender_result(struct put_ctx *p, int rc)
{
	if (p->home == p->at) {
		sender_apply(p->sender, p->receiver, p->msg_id, p->flags, rc);
		return;
	}
	p->note = 1;
	p->note_rc = rc;
}

/* Reads r's queue again soon: now, after the read under way, or once its writes drain. */
static void want_fetch(struct conn *r)
{
	if (r->closing)
		return;
	if (r->fetch_pending) {
		r->refetch = 1;
		return;
	}
	if (r->write_pending >= VEIL_CHAT_MAX_PENDING_WRITE) {
		r->fetch_wanted = 1;
		return;
	}
	start_fetch(r);
}

/* Serves a connected recipient straight from memory when its queue is drained. */
static void push_to_recipient(struct veil_chat *chat, const struct put_ctx *p, uint64_t seq)
{
	struct conn *r = map_get(chat, id_key(p->receiver));
	if (r == NULL || r->closing || seq <= r->delivered_seq)
		return;
	if (veil_store_shared(chat->srv->store)) {
		/*
		 * Other nodes store for r too, and a smaller seq of theirs may
		 * not be delivered yet: delivering this one would move
		 * delivered_seq past it. A read of the queue gets both, in order.
		 */
		want_fetch(r);
		return;
	}
	if (!r->drain_done || r->fetch_pending) {
		/*
		 * The running drain (or a read started because another writer,
		 * such as the Gateway, stored for r) delivers it, or reads once
		 * more if it began too early: delivering now would move
		 * delivered_seq past a message that read has yet to hand over.
		 */
		r->refetch = 1;
		return;
	}
	if (r->write_pending >= VEIL_CHAT_MAX_PENDING_WRITE) {
		/* A slow reader gets the rest from the store once it catches up. */
		r->drain_done = 0;
		r->refetch = 1;
		if (r->fetch_pending)
			return;
		r->fetch_wanted = 1;
		return;
	}
	struct veil_msg_rec rec = {.seq = seq,
	                           .msg_id = p->msg_id,
	                           .flags = p->flags,
	                           .len = p->len,
	                           .data = (uint8_t *)p->data};
	memcpy(rec.sender, p->sender_id, VEIL_ID_LEN);
	memcpy(rec.recipient, p->receiver, VEIL_ID_LEN);
	deliver_rec(r, &rec);
}

static void on_put(void *arg, int rc, uint64_t seq)
{
	struct put_ctx *p = arg;
	struct veil_chat *chat = p->at;
	p->put_busy = 0;
	if (p->counted)
		chat->puts_done++;
	if (rc == 0)
		STAT_INC(chat, messages_stored);
	if (rc == 0 && !p->delivered) {
		push_to_recipient(chat, p, seq);
		if (p->flags & VEIL_MSG_FLAG_PUSH)
			wake_offline(chat, p->receiver);
	}
	sender_result(p, rc);
	put_maybe_free(p);
}

/* Writes a message to the recipient's queue; on_put finishes it. */
static void store_put(struct veil_chat *chat, struct put_ctx *p)
{
	struct veil_msg_rec mr = {
	    .msg_id = p->msg_id, .flags = p->flags, .len = p->len, .data = p->data};
	memcpy(mr.recipient, p->receiver, VEIL_ID_LEN);
	memcpy(mr.sender, p->sender_id, VEIL_ID_LEN);
	uint32_t ttl = (p->flags & VEIL_MSG_FLAG_SHORT_LIVED) ? VEIL_CHAT_SHORT_LIVED_S
	                                                      : chat->srv->cfg.queue_ttl_s;
	mr.expires_ms = veil_now_ms() + (uint64_t)ttl * 1000u;
	p->put_busy = 1;
	int rc = veil_store_msg_put(chat->srv->store, &mr, on_put, p);
	if (rc != 0) {
		on_put(p, rc, 0);
		return;
	}
	p->counted = 1;
	chat->puts_issued++;
}

/* --- hand-off: delivering before storing --- */

static void live_unlink(struct put_ctx *p)
{
	struct conn *r = p->live;
	if (r == NULL)
		return;
	if (p->lprev)
		p->lprev->lnext = p->lnext;
	else
		r->live_head = p->lnext;
	if (p->lnext)
		p->lnext->lprev = p->lprev;
	else
		r->live_tail = p->lprev;
	p->lprev = p->lnext = NULL;
	p->live = NULL;
	r->live_n--;
}

static void held_unlink(struct veil_chat *chat, struct put_ctx *p)
{
	if (!p->held)
		return;
	if (p->hprev)
		p->hprev->hnext = p->hnext;
	else
		chat->held_head = p->hnext;
	if (p->hnext)
		p->hnext->hprev = p->hprev;
	else
		chat->held_tail = p->hprev;
	p->hprev = p->hnext = NULL;
	p->held = 0;
	chat->held_bytes -= p->len;
	if (p->live != NULL)
		p->live->held_n--;
}

/* The oldest message handed off to c from sender with msg_id and not acked yet. */
static struct put_ctx *live_find(struct conn *c, const uint8_t sender[static VEIL_ID_LEN],
                                 uint64_t msg_id)
{
	for (struct put_ctx *p = c->live_head; p != NULL; p = p->lnext)
		if (p->msg_id == msg_id && memcmp(p->sender_id, sender, VEIL_ID_LEN) == 0)
			return p;
	return NULL;
}

/* A held message whose recipient did not ack in time, or went away, is stored. */
static void store_held(struct veil_chat *chat, struct put_ctx *p)
{
	held_unlink(chat, p);
	store_put(chat, p);
}

/*
 * The recipient goes away: what it has not acked is stored (in the order it
 * was handed off) and delivered again from the store, here or to its next
 * connection.
 */
static void drop_live(struct conn *c)
{
	struct veil_chat *chat = c->chat;
	struct put_ctx *p;
	while ((p = c->live_head) != NULL) {
		if (p->held) {
			p->delivered = 0;
			store_held(chat, p);
		}
		live_unlink(p);
		put_maybe_free(p);
	}
}

static void on_handoff(uv_timer_t *t)
{
	struct veil_chat *chat = t->data;
	uint64_t now = uv_now(chat->loop);
	while (chat->held_head != NULL && chat->held_head->deadline <= now)
		store_held(chat, chat->held_head);
	if (chat->held_head != NULL)
		uv_timer_start(&chat->handoff, on_handoff, chat->held_head->deadline - now, 0);
}

/* --handoff-ms: SIGHUP changes it on the first loop while every loop reads it. */
static uint32_t handoff_ms(const struct veil_chat *chat)
{
	return __atomic_load_n(&chat->srv->cfg.handoff_ms, __ATOMIC_RELAXED);
}

/*
 * A message can be handed off to r when nothing older for r is still on its
 * way through the store (so each sender's order holds), r keeps up with its
 * reads, and the memory for held messages is not used up.
 */
static int can_hand_off(const struct veil_chat *chat, const struct conn *r, size_t len)
{
	return handoff_ms(chat) > 0 && !chat->stopping && !r->closing && r->drain_done &&
	       !r->fetch_pending && !r->fetch_wanted && !r->refetch &&
	       chat->puts_done >= r->live_after && r->write_pending < VEIL_CHAT_MAX_PENDING_WRITE &&
	       r->live_n < VEIL_CHAT_LIVE_MAX && chat->held_bytes + len <= VEIL_CHAT_HELD_MAX_BYTES;
}

static void hand_off(struct veil_chat *chat, struct conn *r, struct put_ctx *p)
{
	if (deliver(r, p->data, p->len) != 0) {
		conn_fail(r, 1, "Internal error while delivering");
		store_put(chat, p);
		return;
	}
	STAT_INC(chat, messages_out);
	p->delivered = 1;
	if (p->flags & VEIL_MSG_FLAG_NO_SERVER_ACK) {
		/* Never acked by anyone: delivered is done. */
		put_maybe_free(p);
		return;
	}
	p->live = r;
	p->lprev = r->live_tail;
	if (r->live_tail)
		r->live_tail->lnext = p;
	else
		r->live_head = p;
	r->live_tail = p;
	r->live_n++;
	r->held_n++;
	p->held = 1;
	uint32_t wait_ms = handoff_ms(chat);
	p->deadline = uv_now(chat->loop) + wait_ms;
	p->hprev = chat->held_tail;
	if (chat->held_tail) {
		chat->held_tail->hnext = p;
	} else {
		chat->held_head = p;
		uv_timer_start(&chat->handoff, on_handoff, wait_ms, 0);
	}
	chat->held_tail = p;
	chat->held_bytes += p->len;
}

/* A recipient's ack that the store could not carry out is delivered again later. */
static void ack_failed(int rc)
{
	if (rc != 0 && rc != VEIL_ENOTFOUND && rc != VEIL_ECLOSED)
		veil_log_error(
		    "chat: an ack could not be stored (%s): the message will be delivered "
		    "again",
		    veil_strerror(rc));
}

static void on_acked(void *arg, int rc)
{
	(void)arg;
	ack_failed(rc);
}

static void on_live_acked(void *arg, int rc)
{
	struct put_ctx *p = arg;
	ack_failed(rc);
	p->ack_busy = 0;
	live_unlink(p);
	put_maybe_free(p);
}

/*
 * The recipient acks a message. One still held is done: its sender is acked
 * and the store never sees it. One already stored is deleted; it stays on
 * the list until then, so that a queue read under way does not deliver it
 * again. Returns 0 if the message is not one handed off to c.
 */
static int live_ack(struct conn *c, const uint8_t sender[static VEIL_ID_LEN], uint64_t msg_id)
{
	struct veil_chat *chat = c->chat;
	struct put_ctx *p = c->live_n > 0 ? live_find(c, sender, msg_id) : NULL;
	if (p == NULL || p->ack_busy)
		return 0;
	if (p->held) {
		held_unlink(chat, p);
		live_unlink(p);
		STAT_INC(chat, handoffs);
		sender_result(p, 0);
		put_maybe_free(p);
		return 1;
	}
	p->ack_busy = 1;
	if (veil_store_msg_ack(chat->srv->store, c->identity, sender, msg_id, on_live_acked, p) !=
	    0)
		on_live_acked(p, VEIL_ECLOSED);
	return 1;
}

static struct veil_chat *home_of(struct veil_chat *chat, const uint8_t id[static VEIL_ID_LEN]);
static void route_put(struct veil_chat *chat, struct put_ctx *p);

static void handle_outgoing(struct conn *c, const uint8_t *data, size_t len)
{
	struct veil_chat *chat = c->chat;
	struct veil_msgbox m;
	char rid[VEIL_ID_LEN + 1], text[128];
	if (veil_msgbox_parse(&m, data, len) != 0) {
		STAT_INC(chat, protocol_errors);
		conn_fail(c, 0, "Malformed outgoing message");
		return;
	}
	if (memcmp(m.sender, c->identity, VEIL_ID_LEN) != 0) {
		STAT_INC(chat, protocol_errors);
		conn_fail(c, 0, "Sender identity does not match the logged-in identity");
		return;
	}
	int known = receiver_ok(chat, m.receiver);
	if (known < 0) {
		veil_id_str(rid, m.receiver);
		snprintf(text, sizeof text,
		         "Message to %s not delivered: temporary server error, try again later",
		         rid);
		send_text(c, VEIL_CSP_ALERT, 0, text);
		return;
	}
	if (!known) {
		veil_id_str(rid, m.receiver);
		snprintf(text, sizeof text, "Message to %s not delivered: unknown identity", rid);
		send_text(c, VEIL_CSP_ALERT, 0, text);
		return;
	}
	STAT_INC(chat, messages_in);
	struct put_ctx *p = calloc(1, sizeof *p + len);
	if (p == NULL) {
		conn_fail(c, 1, "Server out of memory");
		return;
	}
	memcpy(p->data, data, len);
	p->len = len;
	memcpy(p->receiver, m.receiver, VEIL_ID_LEN);
	p->msg_id = m.msg_id;
	p->flags = m.flags;
	p->sender = c;
	memcpy(p->sender_id, c->identity, VEIL_ID_LEN);
	p->home = p->at = chat;
	c->refs++;
	/* The server's clock wins for a date in the future and for short-lived messages. */
	uint32_t now_s = (uint32_t)(veil_now_ms() / 1000);
	if (m.created_at > now_s || (m.flags & VEIL_MSG_FLAG_SHORT_LIVED))
		veil_store_u32le(p->data + 24, now_s);
	struct veil_chat *h = home_of(chat, m.receiver);
	if (h != chat) {
		p->at = h;
		p->x.kind = X_FWD;
		p->x.put = p;
		xpost(h, &p->x);
		return;
	}
	route_put(chat, p);
}

/* A message for a recipient whose home is this loop: hand-off, or the store. */
static void route_put(struct veil_chat *chat, struct put_ctx *p)
{
	size_t len = p->len;
	struct conn *r = map_get(chat, id_key(p->receiver));
	if (p->flags & VEIL_MSG_FLAG_NO_QUEUE) {
		/* Delivered only to a recipient online and caught up now; never stored. */
		if (r != NULL && !r->closing && r->drain_done &&
		    r->write_pending < VEIL_CHAT_MAX_PENDING_WRITE && deliver(r, p->data, len) == 0)
			STAT_INC(chat, messages_out);
		on_put(p, VEIL_EEXIST, 0);
		return;
	}
	if (r != NULL && can_hand_off(chat, r, len)) {
		hand_off(chat, r, p);
		return;
	}
	if (r != NULL && !r->closing) {
		/* Keep the store's order: what r holds unacked goes first, and no hand-off
		 * to r until this message is through the store. */
		for (struct put_ctx *q = r->live_head; q != NULL && r->held_n > 0; q = q->lnext)
			if (q->held)
				store_held(chat, q);
		store_put(chat, p);
		r->live_after = chat->puts_issued;
		return;
	}
	store_put(chat, p);
}

/* --- authenticated payloads --- */

static void handle_payload(struct conn *c, const uint8_t *plain, size_t n)
{
	uint8_t type, id[VEIL_ID_LEN];
	const uint8_t *d;
	size_t dlen;
	uint64_t msg_id;
	struct veil_chat *chat = c->chat;
	if (veil_csp_payload_parse(plain, n, &type, &d, &dlen) != 0) {
		STAT_INC(chat, protocol_errors);
		conn_fail(c, 0, "Malformed payload");
		return;
	}
	switch (type) {
	case VEIL_CSP_ECHO_REQUEST: (void)send_payload(c, VEIL_CSP_ECHO_RESPONSE, d, dlen); break;
	case VEIL_CSP_ECHO_RESPONSE: break;
	case VEIL_CSP_OUTGOING_MESSAGE: handle_outgoing(c, d, dlen); break;
	case VEIL_CSP_INCOMING_ACK:
		if (veil_csp_ack_parse(d, dlen, id, &msg_id) != 0) {
			STAT_INC(chat, protocol_errors);
			conn_fail(c, 0, "Malformed message ack");
			return;
		}
		/* A session that receives nothing acks nothing: the receiver's messages stay. */
		if (!c->receiving)
			break;
		if (!live_ack(c, id, msg_id))
			(void)veil_store_msg_ack(chat->srv->store, c->identity, id, msg_id,
			                         on_acked, NULL);
		break;
	case VEIL_CSP_PUSH_TOKEN:
	case VEIL_CSP_PUSH_TOKEN_HIGH:
		if (dlen < 1 || dlen > 256) {
			conn_fail(c, 0, "Malformed push token");
			return;
		}
		(void)veil_store_push_token_set(chat->srv->store, c->identity, d[0], d + 1,
		                                dlen - 1);
		break;
	case VEIL_CSP_DELETE_PUSH_TOKENS:
		if (dlen % 8 != 0) {
			conn_fail(c, 0, "Malformed push token deletion");
			return;
		}
		(void)veil_store_push_token_set(chat->srv->store, c->identity, 0, NULL, 0);
		break;
	case VEIL_CSP_IDLE_TIMEOUT: {
		if (dlen != 2) {
			conn_fail(c, 0, "Malformed idle timeout");
			return;
		}
		uint16_t s = veil_load_u16le(d);
		if (s < VEIL_CHAT_IDLE_MIN_S)
			s = VEIL_CHAT_IDLE_MIN_S;
		if (s > VEIL_CHAT_IDLE_MAX_S)
			s = VEIL_CHAT_IDLE_MAX_S;
		c->idle_ms = (uint32_t)s * 1000u;
		break;
	}
	case VEIL_CSP_UNBLOCK_INCOMING:
		/* A device session nominated to receive (the mediator's leader). */
		if (!c->receiving)
			become_receiver(c);
		break;
	case VEIL_CSP_CLEAR_DEVICE_COOKIE: break;
	default:
		/* Unknown payloads are ignored so that clients can evolve. */
		veil_log_debug("chat: ignoring payload type 0x%02x", type);
		break;
	}
}

/* --- handshake --- */

/*
 * c becomes the identity's receiving connection: a legacy login at once, a
 * device session when it unblocks incoming messages. The previous receiving
 * connection of the identity (here, or on another node sharing the store)
 * is closed, and c's queue is read.
 */
static void become_receiver(struct conn *c)
{
	struct veil_chat *chat = c->chat;
	map_del(chat, c);
	c->id_key = id_key(c->identity);
	c->receiving = 1;
	struct conn *old = map_get(chat, c->id_key);
	if (old != NULL) {
		map_del(chat, old);
		conn_fail(old, 0, SECOND_LOGIN);
	}
	if (map_put(chat, c) != 0) {
		conn_fail(c, 1, "Server out of memory");
		return;
	}
	/* Online now: a wake-up not yet sent is not needed. */
	veil_push_online(chat->srv->push, c->identity);
	/* Other nodes sharing the store close their connection of this identity. */
	int rc = veil_store_session_claim(chat->srv->store, c->identity, &c->session_gen);
	if (rc != 0)
		veil_log_warn(
		    "chat: cannot tell other nodes about a login (%s): an older connection "
		    "of the identity on another node stays open",
		    veil_strerror(rc));
	/* For veilctl's "last login": folded into the next group commit, nobody waits. */
	(void)veil_store_login(chat->srv->store, c->identity, veil_now_ms());
	c->live_after = chat->puts_issued;
	start_fetch(c);
}

/*
 * The public-key work of a login (X25519 for the server hello, and for the
 * vouch) runs on libuv's thread pool, not on the loop: both cores then
 * serve logins, and a storm of them does not hold up the messages of
 * connected clients. While a step runs, the connection holds a reference
 * and its input waits (a client sends nothing before the answer anyway).
 */
enum { HS_HELLO, HS_VOUCH };
struct hs_job {
	uv_work_t req;
	struct conn *c;
	int kind, rc;
	const uint8_t *sk; /* the server's key: read-only */
	uint8_t hello[VEIL_CSP_CLIENT_HELLO_LEN], reply[VEIL_CSP_SERVER_HELLO_LEN];
	struct veil_identity_rec rec; /* HS_VOUCH: the identity logging in */
	uint8_t ss1[VEIL_KEY_LEN];
	int ss1_known; /* from the cache; else computed by the job */
};

static void hs_run(uv_work_t *req)
{
	struct hs_job *j = req->data;
	struct conn *c = j->c;
	if (j->kind == HS_HELLO) {
		j->rc = veil_csp_server_hello(c->hs, j->sk, j->hello, j->reply);
		return;
	}
	if (!j->ss1_known && veil_shared_key(j->ss1, j->sk, j->rec.pk) != 0) {
		j->rc = VEIL_EAUTH;
		return;
	}
	j->rc = veil_csp_server_vouch_check_ss1(c->hs, j->ss1, j->rec.pk, c->login);
}

static void login_vouched(struct conn *c, struct hs_job *j);
static void logged_in(struct conn *c);
static size_t consume(struct conn *c, const uint8_t *p, size_t n);

/* Goes on with input that came while a step ran. */
static void hs_resume_input(struct conn *c)
{
	if (c->pipe != NULL) {
		pipe_pull(c);
		return;
	}
	if (c->pend.len == 0 || c->closing)
		return;
	size_t used = consume(c, c->pend.p, c->pend.len);
	veil_buf_consume(&c->pend, used);
	if (c->pend.len == 0)
		veil_buf_release(&c->pend);
}

static void hs_done(uv_work_t *req, int status)
{
	struct hs_job *j = req->data;
	struct conn *c = j->c;
	c->working = 0;
	if (status != 0 && j->rc == 0)
		j->rc = VEIL_EIO; /* cancelled */
	if (!c->closing) {
		if (j->kind == HS_HELLO) {
			if (j->rc != 0 || send_raw(c, j->reply, sizeof j->reply) != 0)
				conn_fail(c, 0, "handshake");
			else
				c->st = ST_LOGIN;
		} else {
			login_vouched(c, j);
		}
		hs_resume_input(c);
	}
	sodium_memzero(j, sizeof *j);
	free(j);
	conn_unref(c);
}

static void hs_nop(uv_work_t *req)
{
	(void)req;
}

/* Starts job j for c: 0, or -1 (j freed) if the pool refused it. */
static int hs_start(struct conn *c, struct hs_job *j)
{
	j->c = c;
	j->req.data = j;
	j->sk = c->chat->srv->keys.csp_sk;
	c->refs++;
	c->working = 1;
	uv_work_cb run = hs_run;
	if (c->chat->grp->login_inline) {
		/* For comparison only: the work on the loop, the pool just passes it back. */
		hs_run(&j->req);
		run = hs_nop;
	}
	if (uv_queue_work(c->chat->loop, &j->req, run, hs_done) != 0) {
		c->working = 0;
		c->refs--;
		sodium_memzero(j, sizeof *j);
		free(j);
		return -1;
	}
	return 0;
}

static void finish_login(struct conn *c)
{
	struct veil_chat *chat = c->chat;
	struct veil_identity_rec rec;
	uint8_t ack[VEIL_CSP_LOGIN_ACK_LEN];
	struct veil_csp_login_info *li = c->login;
	int rc = veil_store_identity_get(chat->srv->store, li->identity, &rec);
	if (rc != 0 && rc != VEIL_ENOTFOUND) {
		/*
		 * The store failed, not the client: say so loudly here, and tell the
		 * client to come back (a login-ack opens the session the close-error
		 * needs; nothing else is sent or accepted before the close).
		 */
		veil_log_error("chat: store error while looking up an identity at login: %s",
		               veil_strerror(rc));
		if (veil_csp_server_login_ack(c->hs, ack) == 0 &&
		    send_raw(c, ack, sizeof ack) == 0) {
			hs_keep_session(c);
			c->st = ST_AUTHED;
			addr_handshake_done(c);
		}
		conn_fail(c, 1, "Temporary server error");
		return;
	}
	/* Blocked (inactive, veilctl block) or revoked identities may not log in. */
	if (rc != 0 || rec.state != VEIL_IDENTITY_ACTIVE) {
		/* Unknown identity: drop silently. A blocked identity's login is no protocol error. */
		if (rc != 0 || rec.state != VEIL_IDENTITY_INACTIVE)
			STAT_INC(chat, protocol_errors);
		conn_fail(c, 0, "login refused");
		return;
	}
	struct hs_job *j = calloc(1, sizeof *j);
	if (j == NULL) {
		conn_fail(c, 1, "Server out of memory");
		return;
	}
	j->kind = HS_VOUCH;
	j->rec = rec;
	/* SS1 from the cache when the identity's key is unchanged: a reconnect costs one X25519 less. */
	uint64_t key = id_key(rec.id), h = key * 0x9e3779b97f4a7c15ull;
	struct ss1_cache_entry *e = &chat->ss1_cache[(h >> 32) & (SS1_CACHE_SLOTS - 1)];
	uv_mutex_lock(&chat->grp->lock);
	if (e->key == key && sodium_memcmp(e->pk, rec.pk, VEIL_KEY_LEN) == 0) {
		memcpy(j->ss1, e->ss1, VEIL_KEY_LEN);
		j->ss1_known = 1;
	}
	uv_mutex_unlock(&chat->grp->lock);
	if (hs_start(c, j) != 0)
		conn_fail(c, 1, "Server out of memory");
}

/* The rest of a login once the vouch was checked (on the loop). */
static void login_vouched(struct conn *c, struct hs_job *j)
{
	struct veil_chat *chat = c->chat;
	uint8_t ack[VEIL_CSP_LOGIN_ACK_LEN];
	struct veil_csp_login_info *li = c->login;
	if (j->rc != 0) {
		/* A vouch that does not prove the key: drop silently. */
		STAT_INC(chat, protocol_errors);
		conn_fail(c, 0, "login refused");
		return;
	}
	if (!j->ss1_known) {
		uint64_t key = id_key(j->rec.id), h = key * 0x9e3779b97f4a7c15ull;
		struct ss1_cache_entry *e = &chat->ss1_cache[(h >> 32) & (SS1_CACHE_SLOTS - 1)];
		uv_mutex_lock(&chat->grp->lock);
		e->key = key;
		memcpy(e->pk, j->rec.pk, VEIL_KEY_LEN);
		memcpy(e->ss1, j->ss1, VEIL_KEY_LEN);
		uv_mutex_unlock(&chat->grp->lock);
	}
	veil_csp_server_forget(c->hs);
	memcpy(c->identity, li->identity, VEIL_ID_LEN);
	c->id_key = id_key(c->identity);
	c->features = li->has_ext ? li->features : 0;
	c->device = li->has_ext && li->has_device_id;
	c->device_id = c->device ? li->device_id : 0;
	sodium_memzero(li, sizeof *li);
	free(li);
	c->login = NULL;
	if (veil_csp_server_login_ack(c->hs, ack) != 0 || send_raw(c, ack, sizeof ack) != 0) {
		conn_fail(c, 1, "internal error");
		return;
	}
	hs_keep_session(c);
	c->st = ST_AUTHED;
	addr_handshake_done(c);
	c->idle_ms = VEIL_CHAT_IDLE_DEFAULT_S * 1000u;
	c->deadline_ms = veil_mono_ms() + c->idle_ms;
	STAT_INC(chat, logins);
	if (home_of(chat, c->identity) != chat) {
		/* Input waits (consume stops) until the connection is on its home loop. */
		c->move_wanted = 1;
		if (c->pipe == NULL)
			uv_read_stop((uv_stream_t *)conn_tcp(c));
		try_move(c);
		return;
	}
	logged_in(c);
}

/* The rest of a login, on the identity's home loop. */
static void logged_in(struct conn *c)
{
	struct veil_chat *chat = c->chat;
	if (!c->device) {
		become_receiver(c);
		return;
	}
	/*
	 * A device session: it may send at once, and receives nothing until it
	 * sends unblock-incoming-messages. An older session of the same device
	 * ends, whether it receives or not; the identity's other devices stay.
	 */
	struct conn *old = map_get_device(chat, c->identity, c->device_id);
	if (old == NULL) {
		old = map_get(chat, id_key(c->identity));
		if (old != NULL && !(old->device && old->device_id == c->device_id))
			old = NULL;
	}
	if (old != NULL) {
		map_del(chat, old);
		conn_fail(old, 0, SECOND_LOGIN);
	}
	c->id_key = dev_key(id_key(c->identity), c->device_id);
	if (map_put(chat, c) != 0)
		conn_fail(c, 1, "Server out of memory");
}

/* Returns how many bytes the current state needs next. */
static size_t need_bytes(const struct conn *c, const uint8_t *p, size_t avail)
{
	switch (c->st) {
	case ST_HELLO: return VEIL_CSP_CLIENT_HELLO_LEN;
	case ST_LOGIN: return VEIL_CSP_LOGIN_LEN;
	case ST_LOGIN_EXT: return c->login->ext_len;
	default: return avail < 2 ? 2 : 2 + (size_t)veil_load_u16le(p);
	}
}

/* Consumes one complete unit (handshake message or frame) of n bytes. */
static void handle_unit(struct conn *c, const uint8_t *p, size_t n)
{
	struct veil_chat *chat = c->chat;
	switch (c->st) {
	case ST_HELLO: {
		struct hs_job *j = calloc(1, sizeof *j);
		if (j != NULL && c->hs == NULL && (c->hs = calloc(1, sizeof *c->hs)) == NULL) {
			free(j);
			j = NULL;
		}
		if (j == NULL) {
			conn_fail(c, 1, "Server out of memory");
			return;
		}
		j->kind = HS_HELLO;
		memcpy(j->hello, p, VEIL_CSP_CLIENT_HELLO_LEN);
		if (hs_start(c, j) != 0)
			conn_fail(c, 1, "Server out of memory");
		return;
	}
	case ST_LOGIN:
		c->login = calloc(1, sizeof *c->login);
		if (c->login == NULL || veil_csp_server_login(c->hs, p, c->login) != 0) {
			STAT_INC(chat, protocol_errors);
			conn_fail(c, 0, "login");
			return;
		}
		if (c->login->has_ext)
			c->st = ST_LOGIN_EXT;
		else
			finish_login(c);
		return;
	case ST_LOGIN_EXT:
		if (veil_csp_server_login_ext(c->hs, p, n, c->login) != 0) {
			STAT_INC(chat, protocol_errors);
			conn_fail(c, 0, "login extensions");
			return;
		}
		finish_login(c);
		return;
	default: {
		static _Thread_local uint8_t plain[VEIL_CSP_MAX_FRAME];
		size_t blen = n - 2;
		if (blen < VEIL_MAC_LEN + 4 || blen > VEIL_CSP_MAX_FRAME ||
		    veil_csp_frame_open(&c->sess, plain, p + 2, blen) != 0) {
			STAT_INC(chat, protocol_errors);
			conn_fail(c, 0, "Invalid frame");
			return;
		}
		c->deadline_ms = veil_mono_ms() + c->idle_ms;
		handle_payload(c, plain, blen - VEIL_MAC_LEN);
		sodium_memzero(plain, blen - VEIL_MAC_LEN);
		return;
	}
	}
}

/* Splits p into units; returns the bytes consumed. */
static size_t consume(struct conn *c, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (!c->closing && !c->working && !c->move_wanted) {
		size_t avail = n - off;
		size_t need = need_bytes(c, p + off, avail);
		if (c->st == ST_AUTHED && avail >= 2 && need - 2 > VEIL_CSP_MAX_FRAME) {
			STAT_INC(c->chat, protocol_errors);
			conn_fail(c, 0, "Frame too long");
			break;
		}
		if (avail < need)
			break;
		handle_unit(c, p + off, need);
		off += need;
	}
	return off;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	(void)suggested;
	*buf = uv_buf_init((char *)c->chat->rbuf, sizeof c->chat->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0 || c->closing)
		return;
	const uint8_t *in = (const uint8_t *)buf->base;
	size_t n = (size_t)nread;
	c->refs++;
	if (c->pend.len > 0) {
		/* Complete the pending unit first, then go on in the shared buffer. */
		if (veil_buf_append(&c->pend, in, n) != 0) {
			conn_fail(c, 0, "Input too long");
			goto out;
		}
		size_t used = consume(c, c->pend.p, c->pend.len);
		veil_buf_consume(&c->pend, used);
		if (c->pend.len == 0)
			veil_buf_release(&c->pend);
		goto out;
	}
	size_t used = consume(c, in, n);
	if (used < n && !c->closing && veil_buf_append(&c->pend, in + used, n - used) != 0)
		conn_fail(c, 0, "Input too long");
out:
	conn_unref(c);
}

/*
 * Hands c to the loop to (the connection is not reading): its socket, its
 * session and its unsent output go in a new struct conn, posted to to's
 * inbox; c closes here without ending the TCP connection (the socket was
 * duplicated). Only when no write is under way (try_move waits for one).
 */
static void move_conn(struct conn *c, struct veil_chat *to)
{
	uv_os_fd_t fd;
	int nfd = -1;
	struct xmsg *x = calloc(1, sizeof *x);
	struct conn *n = malloc(conn_size(c));
	if (x == NULL || n == NULL ||
	    (c->pipe == NULL && (uv_fileno((uv_handle_t *)conn_tcp(c), &fd) != 0 ||
	                         (nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0))) {
		free(x);
		free(n);
		c->move_wanted = 0;
		conn_fail(c, 1, "Server out of memory");
		return;
	}
	if (c->pipe == NULL)
		uv_read_stop((uv_stream_t *)conn_tcp(c));
	memcpy(n, c, conn_size(c));
	n->chat = to;
	n->refs = 1;
	n->prev = n->next = n->hnext = NULL;
	n->in_map = 0;
	n->dirty = 0;
	n->dirty_next = NULL;
	n->inflight = 0;
	n->move_wanted = 0;
	n->write_pending = n->out.len;
	/* c keeps nothing that n now owns. */
	veil_buf_init(&c->out, c->out.max);
	veil_buf_init(&c->pend, c->pend.max);
	c->login = NULL;
	if (c->pipe == NULL)
		tcp_of(c)->addr_tok = tcp_of(c)->hs_tok = 0;
	c->write_pending = 0;
	c->hs = NULL;
	sodium_memzero(&c->sess, sizeof c->sess);
	x->kind = X_CONN;
	x->conn = n;
	x->fd = nfd;
	struct veil_chat_pipe *p = c->pipe;
	if (p == NULL) {
		conn_close(c);
		xpost(to, x);
		return;
	}
	/*
	 * The pipe follows: posted under its lock, so that any input posted
	 * to its new loop comes after the session.
	 */
	c->moved = 1;
	conn_close(c);
	uv_mutex_lock(pipe_lock_of(p));
	p->conn = n;
	__atomic_store_n(&p->loop, to, __ATOMIC_RELAXED);
	xpost(to, x);
	uv_mutex_unlock(pipe_lock_of(p));
}

/* A logged-in connection goes to its identity's home loop once no write is under way. */
static void try_move(struct conn *c)
{
	if (c->closing || c->inflight)
		return;
	move_conn(c, home_of(c->chat, c->identity));
}

/* A new connection's buffers (empty until used). */
static void conn_bufs_init(struct conn *c)
{
	/* A unit is at most one frame: the prefix and 8192 bytes of box. */
	veil_buf_init(&c->pend, 2 + VEIL_CSP_MAX_FRAME + sizeof c->chat->rbuf);
	/* Output beyond the pending-write limit plus one fetch batch is a bug. */
	veil_buf_init(&c->out, 2 * VEIL_CHAT_MAX_PENDING_WRITE +
	                           VEIL_CHAT_FETCH_BATCH * (2 + VEIL_CSP_MAX_FRAME));
}

/* Puts c on chat's list of connections. */
static void conn_link(struct veil_chat *chat, struct conn *c)
{
	c->next = chat->conns;
	if (chat->conns)
		chat->conns->prev = c;
	chat->conns = c;
	STAT_INC(chat, connections);
}

/* A connection moves in (X_CONN): on with it here. */
static void conn_arrive(struct veil_chat *chat, struct conn *n, int fd)
{
	if (chat->stopping) {
		if (n->pipe != NULL)
			pipe_ended(n->pipe);
		else
			close(fd);
		addr_release(n);
		conn_unref(n);
		return;
	}
	conn_link(chat, n);
	if (n->pipe == NULL) {
		uv_tcp_init(chat->loop, conn_tcp(n));
		conn_tcp(n)->data = n;
		if (uv_tcp_open(conn_tcp(n), fd) != 0) {
			close(fd);
			conn_close(n);
			return;
		}
		uv_read_start((uv_stream_t *)conn_tcp(n), on_alloc, on_read);
	}
	if (n->out.len > 0)
		mark_dirty(n);
	/* The input that waited: a pipe's, or a logged-in connection's unit in pend. */
	n->refs++;
	if (n->st == ST_AUTHED)
		logged_in(n);
	hs_resume_input(n);
	conn_unref(n);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct veil_chat *chat = server->data;
	if (status != 0)
		return;
	struct tcp_conn *tc = calloc(1, sizeof *tc);
	if (tc == NULL)
		return;
	struct conn *c = &tc->c;
	c->chat = chat;
	c->refs = 1;
	conn_bufs_init(c);
	uv_tcp_init(chat->loop, &tc->tcp);
	tc->tcp.data = c;
	if (uv_accept(server, (uv_stream_t *)conn_tcp(c)) != 0 ||
	    total_connections(chat) >= VEIL_CHAT_MAX_CONNECTIONS || chat->stopping ||
	    addr_admit(chat, c) != 0) {
		c->closed = 1;
		uv_close((uv_handle_t *)conn_tcp(c), on_closed);
		addr_log_refusals(chat, veil_mono_ms());
		return;
	}
	uv_tcp_nodelay(&tc->tcp, 1);
	conn_link(chat, c);
	c->deadline_ms = veil_mono_ms() + VEIL_CHAT_HANDSHAKE_TIMEOUT_MS;
	/* With several loops, new connections take turns (the handshake's work spreads). */
	struct chat_group *g = chat->grp;
	if (g->n > 1) {
		struct veil_chat *to = g->loops[g->next++ % g->n];
		if (to != chat) {
			move_conn(c, to);
			return;
		}
	}
	uv_read_start((uv_stream_t *)conn_tcp(c), on_alloc, on_read);
}

/* --- timers and store completions --- */

static void on_sweep(uv_timer_t *t)
{
	struct veil_chat *chat = t->data;
	uint64_t now = veil_mono_ms();
	struct conn *c = chat->conns;
	while (c != NULL) {
		struct conn *next = c->next;
		if (!c->closing && now > c->deadline_ms)
			conn_fail(c, 1, "Connection idle timeout");
		c = next;
	}
	addr_log_refusals(chat, now);
}

struct expire_work {
	uv_work_t req;
	struct veil_store *store;
	int n;
};

static void expire_run(uv_work_t *req)
{
	struct expire_work *w = (struct expire_work *)req;
	w->n = veil_store_msg_expire(w->store, veil_now_ms());
}

static void expire_done(uv_work_t *req, int status)
{
	struct expire_work *w = (struct expire_work *)req;
	(void)status;
	if (w->n > 0)
		veil_log_info("chat: %d expired messages removed", w->n);
	free(w);
}

/* Once a minute, what the service did in it (counts only), if anything. */
/* Once a minute, what the service did in it (counts only, all loops), if anything. */
static void log_minute(struct veil_chat *chat)
{
	struct veil_chat_stats a;
	const struct veil_chat_stats *b = &chat->st_logged;
	veil_chat_get_stats(chat, &a);
	if (a.logins == b->logins && a.messages_in == b->messages_in &&
	    a.messages_out == b->messages_out)
		return;
	veil_log_info("chat: %llu connections; last minute: %llu logins, %llu messages in, %llu "
	              "delivered, %llu acked by the receiver before any disk write",
	              (unsigned long long)a.connections, (unsigned long long)(a.logins - b->logins),
	              (unsigned long long)(a.messages_in - b->messages_in),
	              (unsigned long long)(a.messages_out - b->messages_out),
	              (unsigned long long)(a.handoffs - b->handoffs));
	chat->st_logged = a;
}

static void on_expire(uv_timer_t *t)
{
	struct veil_chat *chat = t->data;
	log_minute(chat);
	struct expire_work *w = calloc(1, sizeof *w);
	if (w == NULL)
		return;
	w->store = chat->srv->store;
	if (uv_queue_work(chat->loop, &w->req, expire_run, expire_done) != 0)
		free(w);
}

/* --- several loops --- */

static struct veil_chat *home_of(struct veil_chat *chat, const uint8_t id[static VEIL_ID_LEN])
{
	const struct chat_group *g = chat->grp;
	if (g->n == 1)
		return chat;
	uint64_t h = id_key(id) * 0x9e3779b97f4a7c15ull;
	return g->loops[(h >> 32) % g->n];
}

static uint64_t total_connections(const struct veil_chat *chat)
{
	const struct chat_group *g = chat->grp;
	uint64_t n = 0;
	for (unsigned i = 0; i < g->n; i++)
		n += __atomic_load_n(&g->loops[i]->st.connections, __ATOMIC_RELAXED);
	return n;
}

/* Posts x to loop to (any thread); it runs there in the order posted. */
static void xpost(struct veil_chat *to, struct xmsg *x)
{
	x->next = NULL;
	uv_mutex_lock(&to->async_lock);
	*to->in_tail = x;
	to->in_tail = &x->next;
	if (to->async_alive)
		uv_async_send(&to->async);
	uv_mutex_unlock(&to->async_lock);
}

static struct xmsg *xnew(int kind, const uint8_t *id)
{
	struct xmsg *x = calloc(1, sizeof *x);
	if (x == NULL)
		return NULL;
	x->kind = kind;
	if (id != NULL)
		memcpy(x->id, id, VEIL_ID_LEN);
	return x;
}

/*
 * --- in-process sessions (pipes) ---
 *
 * The mediator's CSP session for a device is a connection of this service
 * like any other, but its bytes pass in memory: what the mediator sends
 * collects in the pipe's input and an X_PIPE tells the session's loop;
 * what the session writes collects in the pipe's output, and the consumer
 * (the HTTP thread) is woken to take it. A session moves between loops as a
 * TCP connection does, and the pipe goes with it. No socket, no address:
 * the chat service cannot see where a device is.
 */

/* Moves v's bytes to b (what b held is freed); v is left empty. */
static void pbuf_take(struct pbuf *b, struct veil_buf *v)
{
	free(b->p);
	b->p = v->p;
	b->len = (uint32_t)v->len;
	b->cap = (uint32_t)v->cap;
	v->p = NULL;
	v->len = v->cap = 0;
}

/* Moves b's bytes to v (which must be empty, its limit set); b is left empty. */
static void pbuf_give(struct pbuf *b, struct veil_buf *v)
{
	v->p = b->p;
	v->len = b->len;
	v->cap = b->cap;
	*b = (struct pbuf){0};
}

/* Appends n bytes to b, which holds at most max: 0, VEIL_ELIMIT or VEIL_ENOMEM. */
static int pbuf_append(struct pbuf *b, const uint8_t *d, size_t n, size_t max)
{
	struct veil_buf v;
	veil_buf_init(&v, max);
	pbuf_give(b, &v);
	int rc = veil_buf_append(&v, d, n);
	pbuf_take(b, &v);
	return rc;
}

static void pbuf_free(struct pbuf *b)
{
	free(b->p);
	*b = (struct pbuf){0};
}

/* Under pipe_lock: on the consumer's list, which is woken if the list was empty. */
static void pipe_ready_locked(struct veil_chat_pipe *p)
{
	struct chat_group *g = p->loop->grp;
	if (p->ready || p->gone)
		return;
	p->ready = 1;
	p->refs++;
	int was_empty = g->pipe_ready == NULL;
	p->rnext = g->pipe_ready;
	g->pipe_ready = p;
	if (was_empty && g->pipe_wake != NULL)
		g->pipe_wake(g->pipe_wake_arg);
}

/* Under pipe_lock: an X_PIPE on its way to p's loop. 0 or VEIL_ENOMEM. */
static int pipe_post_locked(struct veil_chat_pipe *p)
{
	if (p->posted)
		return 0;
	struct xmsg *x = xnew(X_PIPE, NULL);
	if (x == NULL)
		return VEIL_ENOMEM;
	x->pipe = p;
	p->posted = 1;
	p->refs++;
	xpost(p->loop, x);
	return 0;
}

static void pipe_unref(struct veil_chat_pipe *p)
{
	uv_mutex_lock(pipe_lock_of(p));
	int last = --p->refs == 0;
	uv_mutex_unlock(pipe_lock_of(p));
	if (!last)
		return;
	pbuf_free(&p->in);
	pbuf_free(&p->out);
	free(p);
}

/* The session ended (after its last output): the consumer hears of it. */
static void pipe_ended(struct veil_chat_pipe *p)
{
	uv_mutex_lock(pipe_lock_of(p));
	p->conn = NULL;
	p->ended = 1;
	pbuf_free(&p->in);
	pipe_ready_locked(p);
	uv_mutex_unlock(pipe_lock_of(p));
}

/*
 * flush_conn for a session on a pipe: its output goes to the pipe's. Once
 * the consumer holds VEIL_CHAT_MAX_PENDING_WRITE bytes untaken, the session
 * counts as having a write under way until they are taken (as a full
 * socket would), so that it fetches no more meanwhile.
 */
static void pipe_output(struct conn *c)
{
	struct veil_chat_pipe *p = c->pipe;
	size_t n = c->out.len;
	int rc = 0;
	uv_mutex_lock(pipe_lock_of(p));
	if (!p->gone) {
		if (p->out.len == 0)
			pbuf_take(&p->out, &c->out);
		else
			rc = pbuf_append(&p->out, c->out.p, c->out.len, VEIL_CHAT_PIPE_OUT_MAX);
		if (rc == 0 && p->out.len >= VEIL_CHAT_MAX_PENDING_WRITE) {
			p->blocked = 1;
			c->inflight = 1;
		}
		if (rc == 0)
			pipe_ready_locked(p);
	}
	uv_mutex_unlock(pipe_lock_of(p));
	c->write_pending -= n;
	veil_buf_release(&c->out);
	if (rc != 0)
		conn_close(c);
	else if (!c->inflight)
		after_drain(c);
}

/* Feeds c what its pipe holds for it, unless c waits (a step, a move) or ends. */
static void pipe_pull(struct conn *c)
{
	struct veil_chat_pipe *p = c->pipe;
	if (c->closing || c->working || c->move_wanted)
		return;
	struct veil_buf in;
	veil_buf_init(&in, VEIL_CHAT_PIPE_IN_MAX);
	uv_mutex_lock(pipe_lock_of(p));
	pbuf_give(&p->in, &in);
	uv_mutex_unlock(pipe_lock_of(p));
	if (in.len == 0)
		return;
	c->refs++;
	veil_buf_consume(&in, consume(c, in.p, in.len));
	if (in.len > 0 && !c->closing) {
		/* What c did not take (a unit's start, input during a step) goes back in front. */
		int rc;
		uv_mutex_lock(pipe_lock_of(p));
		in.max = 2 * VEIL_CHAT_PIPE_IN_MAX; /* what was queued meanwhile may be full */
		rc = veil_buf_append(&in, p->in.p, p->in.len);
		if (rc == 0)
			pbuf_take(&p->in, &in);
		uv_mutex_unlock(pipe_lock_of(p));
		if (rc != 0)
			conn_fail(c, 0, "Input too long");
	}
	veil_buf_release(&in);
	conn_unref(c);
}

/* A pipe's session begins on chat (its first X_PIPE); NULL if refused (the pipe ends). */
static struct conn *pipe_start(struct veil_chat *chat, struct veil_chat_pipe *p)
{
	struct conn *c = NULL;
	if (!chat->stopping && total_connections(chat) < VEIL_CHAT_MAX_CONNECTIONS)
		c = calloc(1, sizeof(struct conn));
	if (c == NULL) {
		pipe_ended(p);
		return NULL;
	}
	c->chat = chat;
	c->refs = 1;
	c->pipe = p;
	conn_bufs_init(c);
	uv_mutex_lock(pipe_lock_of(p));
	p->conn = c;
	p->refs++;
	uv_mutex_unlock(pipe_lock_of(p));
	conn_link(chat, c);
	c->deadline_ms = veil_mono_ms() + VEIL_CHAT_HANDSHAKE_TIMEOUT_MS;
	return c;
}

/* X_PIPE: the session starts, takes input, may write again, or ends (the consumer let go). */
static void pipe_run(struct veil_chat *chat, struct xmsg *x, int final)
{
	struct veil_chat_pipe *p = x->pipe;
	uv_mutex_lock(pipe_lock_of(p));
	if (p->loop != chat && !final) {
		/* Its session moved meanwhile: the message follows (after the session). */
		xpost(p->loop, x);
		uv_mutex_unlock(pipe_lock_of(p));
		return;
	}
	p->posted = 0;
	int start = !p->started && !p->gone && !final;
	p->started = 1;
	int gone = p->gone, blocked = p->blocked;
	struct conn *c = p->conn;
	uv_mutex_unlock(pipe_lock_of(p));
	if (start)
		c = pipe_start(chat, p);
	if (c != NULL && !c->closed && !final) {
		c->refs++;
		if (gone) {
			conn_close(c); /* as a socket the peer closed */
		} else {
			if (c->inflight && !blocked) {
				c->inflight = 0;
				if (c->out.len > 0)
					mark_dirty(c);
				after_drain(c);
			}
			pipe_pull(c);
		}
		conn_unref(c);
	}
	free(x);
	pipe_unref(p);
}

/* conn_close's end for a session on a pipe: its last reference goes from the inbox. */
static void conn_unref_later(struct conn *c)
{
	struct xmsg *x = xnew(X_UNREF, NULL);
	if (x == NULL) {
		veil_log_error("chat: out of memory closing a session");
		return;
	}
	x->conn = c;
	xpost(c->chat, x);
}

void veil_chat_pipe_consumer(struct veil_chat *chat, void (*wake)(void *arg), void *arg)
{
	struct chat_group *g = chat->grp;
	uv_mutex_lock(&g->pipe_lock);
	g->pipe_wake = wake;
	g->pipe_wake_arg = arg;
	uv_mutex_unlock(&g->pipe_lock);
}

struct veil_chat_pipe *veil_chat_pipe_open(struct veil_chat *chat, void *ctx)
{
	struct chat_group *g = chat->grp;
	struct veil_chat_pipe *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->ctx = ctx;
	p->refs = 1;
	uv_mutex_lock(&g->pipe_lock);
	/* New sessions take turns on the loops, as accepted connections do. */
	__atomic_store_n(&p->loop, g->loops[g->pipe_next++ % g->n], __ATOMIC_RELAXED);
	int rc = pipe_post_locked(p);
	uv_mutex_unlock(&g->pipe_lock);
	if (rc != 0) {
		free(p);
		return NULL;
	}
	return p;
}

int veil_chat_pipe_send(struct veil_chat_pipe *p, const uint8_t *b, size_t n)
{
	int rc;
	uv_mutex_lock(pipe_lock_of(p));
	if (p->ended)
		rc = VEIL_ECLOSED;
	else if ((rc = pbuf_append(&p->in, b, n, VEIL_CHAT_PIPE_IN_MAX)) == 0)
		rc = pipe_post_locked(p);
	uv_mutex_unlock(pipe_lock_of(p));
	return rc;
}

void veil_chat_pipe_close(struct veil_chat_pipe *p)
{
	if (p == NULL)
		return;
	uv_mutex_lock(pipe_lock_of(p));
	p->gone = 1;
	p->ctx = NULL;
	pbuf_free(&p->in);
	pbuf_free(&p->out);
	/* Its session ends (if it has not): as a socket the peer closed. */
	if (!p->ended && pipe_post_locked(p) != 0)
		veil_log_error(
		    "chat: out of memory ending a session (it ends at its idle timeout)");
	uv_mutex_unlock(pipe_lock_of(p));
	pipe_unref(p);
}

void veil_chat_pipe_run(struct veil_chat *chat, void (*data)(void *ctx, const uint8_t *p, size_t n),
                        void (*ended)(void *ctx))
{
	struct chat_group *g = chat->grp;
	uv_mutex_lock(&g->pipe_lock);
	struct veil_chat_pipe *p = g->pipe_ready;
	g->pipe_ready = NULL;
	uv_mutex_unlock(&g->pipe_lock);
	while (p != NULL) {
		struct veil_chat_pipe *next = p->rnext;
		uv_mutex_lock(&g->pipe_lock);
		p->ready = 0;
		struct pbuf out = p->out;
		p->out = (struct pbuf){0};
		int end = p->ended;
		if (p->blocked) {
			/* Taken: the session may write again. */
			p->blocked = 0;
			if (pipe_post_locked(p) != 0) {
				p->blocked = 1;
				veil_log_error("chat: out of memory resuming a session's output");
			}
		}
		void *ctx = p->ctx;
		uv_mutex_unlock(&g->pipe_lock);
		if (ctx != NULL && out.len > 0 && data != NULL)
			data(ctx, out.p, out.len);
		pbuf_free(&out);
		if (end && ended != NULL) {
			uv_mutex_lock(&g->pipe_lock);
			ctx = p->ctx;
			uv_mutex_unlock(&g->pipe_lock);
			if (ctx != NULL)
				ended(ctx);
		}
		pipe_unref(p);
		p = next;
	}
}

static void store_event_local(struct veil_chat *chat, int kind, const uint8_t id[VEIL_ID_LEN],
                              uint64_t gen)
{
	if (chat->stopping)
		return;
	if (kind == VEIL_STORE_EV_RESYNC) {
		struct conn *c = chat->conns, *next;
		for (; c != NULL; c = next) {
			next = c->next;
			if (c->in_map && c->receiving)
				want_fetch(c);
		}
		return;
	}
	struct conn *c = map_get(chat, id_key(id));
	if (c == NULL || c->closing)
		return;
	if (kind == VEIL_STORE_EV_PUT) {
		want_fetch(c);
	} else if (kind == VEIL_STORE_EV_SESSION && gen > c->session_gen) {
		/* A newer login on another node: as for a second login here. */
		map_del(chat, c);
		conn_fail(c, 0, SECOND_LOGIN);
	}
}

static void wake_offline(struct veil_chat *chat, const uint8_t id[VEIL_ID_LEN])
{
	struct conn *c = map_get(chat, id_key(id));
	if (c == NULL || c->closing)
		veil_push_queued(chat->srv->push, id);
}

static void kick_local(struct veil_chat *chat, const uint8_t id[static VEIL_ID_LEN])
{
	/* Rare (an operator's command): a walk over every connection is fine. */
	struct conn *c = chat->conns, *next;
	for (; c != NULL; c = next) {
		next = c->next;
		if (c->st != ST_AUTHED || c->closing || memcmp(c->identity, id, VEIL_ID_LEN) != 0)
			continue;
		if (c->in_map)
			map_del(chat, c);
		conn_fail(c, 0,
		          "This identity has been blocked or revoked by the server's operator");
	}
	memset(chat->id_cache, 0, sizeof chat->id_cache);
}

static void shutdown_local(struct veil_chat *chat)
{
	if (chat->stopping)
		return;
	chat->stopping = 1;
	if (chat->listening)
		uv_close((uv_handle_t *)&chat->listener, NULL);
	uv_timer_stop(&chat->sweep);
	uv_timer_stop(&chat->expire);
	uv_timer_stop(&chat->handoff);
	uv_close((uv_handle_t *)&chat->sweep, NULL);
	uv_close((uv_handle_t *)&chat->expire, NULL);
	uv_close((uv_handle_t *)&chat->handoff, NULL);
	uv_close((uv_handle_t *)&chat->woke, NULL);
	/* Closing a connection stores what was handed off to it and not acked. */
	struct conn *c = chat->conns;
	while (c != NULL) {
		struct conn *next = c->next;
		conn_fail(c, 1, "Server is shutting down");
		c = next;
	}
	/*
	 * Completions and inbox messages that arrive from now on run in
	 * veil_chat_join, veil_store_close and veil_chat_free.
	 */
	uv_mutex_lock(&chat->async_lock);
	chat->async_alive = 0;
	uv_mutex_unlock(&chat->async_lock);
	uv_close((uv_handle_t *)&chat->async, NULL);
	if (chat->conns == NULL)
		uv_close((uv_handle_t *)&chat->flush, NULL);
}

/*
 * Runs x on chat. final: the store is closed (veil_chat_free): a message
 * still on its way to its recipient's loop goes back unacked.
 */
static void xhandle(struct veil_chat *chat, struct xmsg *x, int final)
{
	struct put_ctx *p = x->put;
	switch (x->kind) {
	case X_CONN: conn_arrive(chat, x->conn, x->fd); break;
	case X_FWD:
		if (final) {
			p->note = 1;
			p->note_rc = VEIL_ECLOSED;
			put_maybe_free(p);
		} else {
			route_put(chat, p);
		}
		return;
	case X_NOTE: sender_apply(x->conn, x->id, x->msg_id, x->flags, x->rc); break;
	case X_BACK:
		if (p->note)
			sender_apply(p->sender, p->receiver, p->msg_id, p->flags, p->note_rc);
		put_free(p);
		return;
	case X_EVENT:
		if (x->ev == X_WAKE_OFFLINE)
			wake_offline(chat, x->id);
		else
			store_event_local(chat, x->ev, x->id, x->gen);
		break;
	case X_KICK: kick_local(chat, x->id); break;
	case X_STOP: shutdown_local(chat); break;
	case X_PIPE: pipe_run(chat, x, final); return;
	case X_UNREF: conn_unref(x->conn); break;
	}
	free(x);
}

/* Runs what is in chat's inbox; returns how many messages ran. */
static size_t inbox_run(struct veil_chat *chat, int final)
{
	uv_mutex_lock(&chat->async_lock);
	struct xmsg *x = chat->in_head;
	chat->in_head = NULL;
	chat->in_tail = &chat->in_head;
	uv_mutex_unlock(&chat->async_lock);
	size_t n = 0;
	while (x != NULL) {
		struct xmsg *next = x->next;
		xhandle(chat, x, final);
		x = next;
		n++;
	}
	return n;
}

static void on_async(uv_async_t *a)
{
	struct veil_chat *chat = a->data;
	inbox_run(chat, 0);
	if (chat->lane != NULL)
		veil_store_lane_run(chat->srv->store, chat->lane);
	else
		veil_store_run_completions(chat->srv->store);
}

/* Sends x to every loop but chat and runs it on chat (loop thread of chat). */
static void broadcast(struct veil_chat *chat, int kind, int ev, const uint8_t *id, uint64_t gen)
{
	struct chat_group *g = chat->grp;
	for (unsigned i = 0; i < g->n; i++) {
		if (g->loops[i] == chat)
			continue;
		struct xmsg *x = xnew(kind, id);
		if (x == NULL) {
			veil_log_error("chat: out of memory telling the other chat loops");
			continue;
		}
		x->ev = ev;
		x->gen = gen;
		xpost(g->loops[i], x);
	}
}

/* Runs an event for id on id's home loop (now if that is chat). */
static void to_home(struct veil_chat *chat, int ev, const uint8_t id[VEIL_ID_LEN], uint64_t gen)
{
	struct veil_chat *h = home_of(chat, id);
	if (h == chat) {
		if (ev == X_WAKE_OFFLINE)
			wake_offline(chat, id);
		else
			store_event_local(chat, ev, id, gen);
		return;
	}
	struct xmsg *x = xnew(X_EVENT, id);
	if (x == NULL) {
		veil_log_error("chat: out of memory telling another chat loop");
		return;
	}
	x->ev = ev;
	x->gen = gen;
	xpost(h, x);
}

void veil_chat_store_event(void *arg, int kind, const uint8_t id[VEIL_ID_LEN], uint64_t gen)
{
	struct veil_chat *chat = arg;
	if (chat->stopping)
		return;
	if (kind == VEIL_STORE_EV_RESYNC) {
		broadcast(chat, X_EVENT, kind, NULL, 0);
		store_event_local(chat, kind, NULL, 0);
		return;
	}
	to_home(chat, kind, id, gen);
}

void veil_chat_wake_offline(struct veil_chat *chat, const uint8_t id[VEIL_ID_LEN])
{
	to_home(chat, X_WAKE_OFFLINE, id, 0);
}

void veil_chat_store_wake(void *arg)
{
	struct veil_chat *chat = arg;
	uv_mutex_lock(&chat->async_lock);
	if (chat->async_alive)
		uv_async_send(&chat->async);
	uv_mutex_unlock(&chat->async_lock);
}

static void chat_free_one(struct veil_chat *chat)
{
	if (chat == NULL)
		return;
	uv_mutex_destroy(&chat->async_lock);
	if (chat->idx == 0) {
		sodium_memzero(chat->ss1_cache, SS1_CACHE_SLOTS * sizeof *chat->ss1_cache);
		free(chat->ss1_cache);
		veil_connlimit_free(chat->hs_per_addr);
		veil_connlimit_free(chat->conns_per_addr);
	}
	free(chat->map);
	free(chat);
}

/*
 * One chat loop: the first on loop, the others (first given) on a loop of
 * their own; they share the first one's per-address tables and SS1 cache.
 */
static struct veil_chat *chat_new_one(uv_loop_t *loop, struct veil_server *srv,
                                      struct chat_group *g, unsigned idx)
{
	struct veil_chat *chat = calloc(1, sizeof *chat);
	if (chat == NULL)
		return NULL;
	chat->grp = g;
	chat->idx = idx;
	chat->srv = srv;
	chat->in_tail = &chat->in_head;
	chat->map_size = 1024;
	chat->map = calloc(chat->map_size, sizeof *chat->map);
	const struct veil_config *cfg = &srv->cfg;
	int bad = chat->map == NULL || uv_mutex_init(&chat->async_lock) != 0;
	if (!bad && idx == 0) {
		chat->ss1_cache = calloc(SS1_CACHE_SLOTS, sizeof *chat->ss1_cache);
		bad = chat->ss1_cache == NULL ||
		      veil_connlimit_new(&chat->conns_per_addr, cfg->chat_conn_per_addr,
		                         cfg->chat_conn_rate_per_min,
		                         VEIL_CHAT_MAX_CONNECTIONS) != 0 ||
		      veil_connlimit_new(&chat->hs_per_addr, cfg->chat_handshakes_per_addr, 0,
		                         VEIL_CHAT_MAX_CONNECTIONS) != 0;
	} else if (!bad) {
		chat->ss1_cache = g->loops[0]->ss1_cache;
		chat->conns_per_addr = g->loops[0]->conns_per_addr;
		chat->hs_per_addr = g->loops[0]->hs_per_addr;
		if (uv_loop_init(&chat->own_loop) != 0) {
			uv_mutex_destroy(&chat->async_lock);
			free(chat->map);
			free(chat);
			return NULL;
		}
		loop = &chat->own_loop;
	}
	if (bad) {
		veil_connlimit_free(chat->hs_per_addr);
		veil_connlimit_free(chat->conns_per_addr);
		free(chat->ss1_cache);
		free(chat->map);
		free(chat);
		return NULL;
	}
	chat->loop = loop;
	uv_async_init(loop, &chat->async, on_async);
	chat->async.data = chat;
	chat->async_alive = 1;
	uv_prepare_init(loop, &chat->flush);
	chat->flush.data = chat;
	uv_check_init(loop, &chat->woke);
	chat->woke.data = chat;
	uv_timer_init(loop, &chat->sweep);
	chat->sweep.data = chat;
	uv_timer_init(loop, &chat->expire);
	chat->expire.data = chat;
	uv_timer_init(loop, &chat->handoff);
	chat->handoff.data = chat;
	return chat;
}

unsigned veil_chat_threads(const struct veil_config *cfg)
{
	unsigned n = cfg->chat_threads;
	if (n == 0) {
		n = uv_available_parallelism();
		if (n > VEIL_CHAT_AUTO_THREADS)
			n = VEIL_CHAT_AUTO_THREADS;
	}
	if (n < 1)
		n = 1;
	if (n > VEIL_CHAT_MAX_THREADS)
		n = VEIL_CHAT_MAX_THREADS;
	return n;
}

unsigned veil_chat_pool_threads(unsigned loops, unsigned cpus)
{
	unsigned n = loops > cpus ? loops : cpus;
	if (n < 4)
		n = 4;
	if (n > 1024)
		n = 1024;
	return n;
}

struct veil_chat *veil_chat_new(uv_loop_t *loop, struct veil_server *srv)
{
	struct chat_group *g = calloc(1, sizeof *g);
	if (g == NULL)
		return NULL;
	if (uv_mutex_init(&g->lock) != 0) {
		free(g);
		return NULL;
	}
	if (uv_mutex_init(&g->pipe_lock) != 0) {
		uv_mutex_destroy(&g->lock);
		free(g);
		return NULL;
	}
	g->n = veil_chat_threads(&srv->cfg);
	const char *inl = getenv("VEIL_CHAT_LOGIN_INLINE");
	g->login_inline = inl != NULL && strcmp(inl, "1") == 0;
	for (unsigned i = 0; i < g->n; i++) {
		g->loops[i] = chat_new_one(loop, srv, g, i);
		if (g->loops[i] != NULL)
			continue;
		/* Nothing runs yet: close what the others put on their loops. */
		while (i-- > 0) {
			shutdown_local(g->loops[i]);
			if (i > 0) {
				uv_run(g->loops[i]->loop, UV_RUN_DEFAULT);
				(void)uv_loop_close(g->loops[i]->loop);
			} else {
				uv_run(loop, UV_RUN_NOWAIT);
			}
			chat_free_one(g->loops[i]);
		}
		uv_mutex_destroy(&g->pipe_lock);
		uv_mutex_destroy(&g->lock);
		free(g);
		return NULL;
	}
	return g->loops[0];
}

static void loop_main(void *arg)
{
	struct veil_chat *chat = arg;
	veil_store_lane_bind(chat->lane);
	uv_run(chat->loop, UV_RUN_DEFAULT);
	veil_store_lane_bind(NULL);
}

int veil_chat_start(struct veil_chat *chat, char *err, size_t errcap)
{
	struct sockaddr_storage addr;
	const struct veil_config *cfg = &chat->srv->cfg;
	struct chat_group *g = chat->grp;
	int rc;
	if (uv_ip4_addr(cfg->listen, cfg->chat_port, (struct sockaddr_in *)&addr) != 0 &&
	    uv_ip6_addr(cfg->listen, cfg->chat_port, (struct sockaddr_in6 *)&addr) != 0) {
		snprintf(err, errcap, "--listen %s is not an IPv4 or IPv6 address", cfg->listen);
		return VEIL_EINVAL;
	}
	for (unsigned i = 1; i < g->n; i++) {
		struct veil_chat *k = g->loops[i];
		if (veil_store_lane_new(chat->srv->store, veil_chat_store_wake, k, &k->lane) != 0) {
			snprintf(err, errcap, "cannot start %u chat loops (--chat-threads)", g->n);
			return VEIL_ENOMEM;
		}
	}
	uv_tcp_init(chat->loop, &chat->listener);
	chat->listener.data = chat;
	chat->listening = 1;
	if ((rc = uv_tcp_bind(&chat->listener, (struct sockaddr *)&addr, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&chat->listener, 1024, on_connection)) != 0) {
		const char *hint = "";
		if (rc == UV_EADDRINUSE)
			hint = " (another program, perhaps another veild, listens there)";
		else if (rc == UV_EADDRNOTAVAIL)
			hint = " (no network interface of this machine has that address)";
		else if (rc == UV_EACCES)
			hint = " (ports below 1024 need privileges)";
		snprintf(err, errcap, "cannot listen on %s:%u for chat: %s%s", cfg->listen,
		         cfg->chat_port, uv_strerror(rc), hint);
		return VEIL_EIO;
	}
	uv_prepare_start(&chat->flush, on_flush);
	uv_check_start(&chat->woke, on_woke);
	uv_timer_start(&chat->sweep, on_sweep, 1000, 1000);
	uv_timer_start(&chat->expire, on_expire, 60000, 60000);
	for (unsigned i = 1; i < g->n; i++) {
		struct veil_chat *k = g->loops[i];
		uv_prepare_start(&k->flush, on_flush);
		uv_check_start(&k->woke, on_woke);
		uv_timer_start(&k->sweep, on_sweep, 1000, 1000);
		if (uv_thread_create(&k->thread, loop_main, k) != 0) {
			/* The loops started so far stop with veil_chat_shutdown. */
			snprintf(err, errcap, "cannot start %u chat loops (--chat-threads)", g->n);
			return VEIL_EIO;
		}
		g->started = (int)i;
	}
	return 0;
}

void veil_chat_shutdown(struct veil_chat *chat)
{
	struct chat_group *g = chat->grp;
	if (chat->stopping)
		return;
	for (unsigned i = 1; i < g->n; i++) {
		if ((int)i <= g->started) {
			struct xmsg *x = xnew(X_STOP, NULL);
			if (x != NULL)
				xpost(g->loops[i], x);
			else
				veil_log_error("chat: out of memory stopping a chat loop");
		} else {
			/* Not running: stopped from here, its loop run in veil_chat_join. */
			shutdown_local(g->loops[i]);
		}
	}
	shutdown_local(chat);
}

void veil_chat_join(struct veil_chat *chat)
{
	if (chat == NULL)
		return;
	struct chat_group *g = chat->grp;
	for (unsigned i = 1; i < g->n; i++) {
		if ((int)i <= g->started)
			uv_thread_join(&g->loops[i]->thread);
		else
			uv_run(g->loops[i]->loop, UV_RUN_DEFAULT);
	}
	g->started = 0;
	/* What the loops sent each other last (the store still takes writes). */
	for (size_t ran = 1; ran > 0;) {
		ran = 0;
		for (unsigned i = 0; i < g->n; i++)
			ran += inbox_run(g->loops[i], 0);
	}
}

void veil_chat_free(struct veil_chat *chat)
{
	if (chat == NULL)
		return;
	struct chat_group *g = chat->grp;
	/* What the store's last completions sent between the loops. */
	for (size_t ran = 1; ran > 0;) {
		ran = 0;
		for (unsigned i = 0; i < g->n; i++)
			ran += inbox_run(g->loops[i], 1);
	}
	for (unsigned i = g->n; i-- > 1;) {
		uv_run(g->loops[i]->loop, UV_RUN_NOWAIT);
		if (uv_loop_close(g->loops[i]->loop) != 0)
			veil_log_error("chat: handles left open on chat loop %u at exit", i);
		chat_free_one(g->loops[i]);
	}
	chat_free_one(chat);
	uv_mutex_destroy(&g->pipe_lock);
	uv_mutex_destroy(&g->lock);
	free(g);
}

void veil_chat_kick(struct veil_chat *chat, const uint8_t id[static VEIL_ID_LEN])
{
	broadcast(chat, X_KICK, 0, id, 0);
	kick_local(chat, id);
}

void veil_chat_get_stats(const struct veil_chat *chat, struct veil_chat_stats *st)
{
	const struct chat_group *g = chat->grp;
	memset(st, 0, sizeof *st);
	for (unsigned i = 0; i < g->n; i++) {
		const struct veil_chat_stats *s = &g->loops[i]->st;
		st->connections += __atomic_load_n(&s->connections, __ATOMIC_RELAXED);
		st->logins += __atomic_load_n(&s->logins, __ATOMIC_RELAXED);
		st->messages_in += __atomic_load_n(&s->messages_in, __ATOMIC_RELAXED);
		st->messages_out += __atomic_load_n(&s->messages_out, __ATOMIC_RELAXED);
		st->handoffs += __atomic_load_n(&s->handoffs, __ATOMIC_RELAXED);
		st->messages_stored += __atomic_load_n(&s->messages_stored, __ATOMIC_RELAXED);
		st->protocol_errors += __atomic_load_n(&s->protocol_errors, __ATOMIC_RELAXED);
	}
}
