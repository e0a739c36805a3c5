/*
 * The chat service: the Chat Server Protocol over TCP on a libuv loop, with
 * a durable per-identity queue in the store.
 */
#ifndef VEIL_SRV_CHAT_H
#define VEIL_SRV_CHAT_H

#include <uv.h>

#include "server.h"

struct veil_chat;

/* Limits a stranger cannot move. */
#define VEIL_CHAT_HANDSHAKE_TIMEOUT_MS 10000 /* from accept to login-ack */
#define VEIL_CHAT_IDLE_DEFAULT_S 300
#define VEIL_CHAT_IDLE_MIN_S 30
#define VEIL_CHAT_IDLE_MAX_S 600
#define VEIL_CHAT_SHORT_LIVED_S 60
#define VEIL_CHAT_FETCH_BATCH 256
#define VEIL_CHAT_MAX_PENDING_WRITE (512 * 1024)    /* stop draining the queue above this */
#define VEIL_CHAT_LIVE_MAX 1024                     /* handed off, unacked, per recipient */
#define VEIL_CHAT_HELD_MAX_BYTES (64 * 1024 * 1024) /* handed off and not stored, in all */

/*
 * Binds the CSP listener on cfg.listen:cfg.chat_port on loop; with several
 * chat loops (--chat-threads) it hands each new connection to one of them. The store
 * must have been opened with veil_chat_store_wake as its wake function and
 * the returned chat as its argument; use veil_chat_new first, then open the
 * store, then veil_chat_start.
 */
struct veil_chat *veil_chat_new(uv_loop_t *loop, struct veil_server *srv);
/*
 * The number of chat loops cfg asks for: cfg->chat_threads, or with 0 one
 * per CPU up to VEIL_CHAT_AUTO_THREADS. The first loop is the loop given to
 * veil_chat_new (veild's main loop, which also serves HTTP); each other one
 * runs on a thread of its own from veil_chat_start on.
 */
#define VEIL_CHAT_AUTO_THREADS 8
unsigned veil_chat_threads(const struct veil_config *cfg);
/*
 * Threads for libuv's pool, where a login's X25519 work runs: one per CPU
 * (cpus, uv_available_parallelism()) and at least one per chat loop, so that
 * logins use every core even where the loops stop at VEIL_CHAT_AUTO_THREADS;
 * never under libuv's default of 4 (the pool also serves other blocking
 * work), never over libuv's maximum of 1024.
 */
unsigned veil_chat_pool_threads(unsigned loops, unsigned cpus);
/* Returns 0, or a veil_err with the reason in err (one line, for the operator). */
int veil_chat_start(struct veil_chat *chat, char *err, size_t errcap);
/* Store wake function: safe to call from any thread. */
void veil_chat_store_wake(void *chat);
/*
 * Store event function (opts.event, with the chat as event_arg): another
 * node stored a message for a recipient connected here, events were missed,
 * or another node logged in an identity connected here. Loop thread only.
 */
void veil_chat_store_event(void *chat, int kind, const uint8_t id[VEIL_ID_LEN], uint64_t gen);
/*
 * A message with the push flag was queued for id (loop thread): if id has
 * no connection here, a push wake-up is asked for (srv/push).
 */
void veil_chat_wake_offline(struct veil_chat *chat, const uint8_t id[VEIL_ID_LEN]);
/*
 * Stops accepting, sends every client a close-error (may reconnect) and
 * closes the connections. Pending store writes still complete; call
 * veil_store_close afterwards, then veil_chat_free.
 */
void veil_chat_shutdown(struct veil_chat *chat);
/*
 * After veil_chat_shutdown, once the main loop has returned: waits for the
 * other chat loops to end and runs what they last sent each other. Call it
 * before veil_store_close.
 */
void veil_chat_join(struct veil_chat *chat);
void veil_chat_free(struct veil_chat *chat);

/*
 * Closes every connection of id (its receiving one and its devices') with a
 * close-error that tells the client not to reconnect, and forgets id in the
 * recipient cache, so that a block or revocation from veilctl takes effect
 * at once. Loop thread only.
 */
void veil_chat_kick(struct veil_chat *chat, const uint8_t id[static VEIL_ID_LEN]);

/*
 * In-process sessions: a CSP connection to this service without a socket,
 * the mediator's for each device (srv/mediator). Its bytes are those of a
 * TCP connection to the chat port; the session has no address (it counts
 * against no per-address limit, and the service cannot learn where the
 * device is). One consumer thread (the HTTP thread) uses them:
 *   veil_chat_pipe_consumer  sets wake(arg), called from any thread (under a
 *                            lock: it must only signal) when sessions have
 *                            output or ended; NULL stops the calls;
 *   veil_chat_pipe_run       then, on the consumer's thread: data(ctx, ...)
 *                            for each session's output in order, and
 *                            ended(ctx) once a session ended (after its last
 *                            output); the consumer then closes its pipe
 *                            (NULL callbacks: the list is only emptied);
 *   veil_chat_pipe_send      queues bytes for the session: 0, VEIL_ELIMIT
 *                            over VEIL_CHAT_PIPE_IN_MAX waiting, VEIL_ECLOSED
 *                            once it ended, VEIL_ENOMEM;
 *   veil_chat_pipe_close     lets go (no callback for ctx after it); the
 *                            session ends if it has not.
 */
#define VEIL_CHAT_PIPE_IN_MAX                                                                      \
	(4 * 1024 * 1024) /* as a WebSocket's queue (VEIL_HTTP_WS_MAX_QUEUED) */
struct veil_chat_pipe;
void veil_chat_pipe_consumer(struct veil_chat *chat, void (*wake)(void *arg), void *arg);
struct veil_chat_pipe *veil_chat_pipe_open(struct veil_chat *chat, void *ctx);
int veil_chat_pipe_send(struct veil_chat_pipe *p, const uint8_t *b, size_t n) VEIL_WUR;
void veil_chat_pipe_close(struct veil_chat_pipe *p);
void veil_chat_pipe_run(struct veil_chat *chat, void (*data)(void *ctx, const uint8_t *p, size_t n),
                        void (*ended)(void *ctx));

/* Counters for logs and tests. */
struct veil_chat_stats {
	uint64_t connections;     /* open now */
	uint64_t logins;          /* total successful */
	uint64_t messages_in;     /* outgoing messages accepted */
	uint64_t messages_out;    /* incoming messages delivered */
	uint64_t handoffs;        /* acked by the recipient before any store write */
	uint64_t messages_stored; /* written to the store's queue */
	uint64_t protocol_errors;
};
void veil_chat_get_stats(const struct veil_chat *chat, struct veil_chat_stats *st);

#endif
