/*
 * The admin socket of veild, for veilctl: a Unix socket DATA/admin.sock,
 * mode 0600 in the 0700 data directory, so only veild's user (and root)
 * may connect; a peer of another user is refused (SO_PEERCRED).
 *
 * One request per connection: a JSON object on one line,
 * {"cmd": "NAME", ...arguments}, at most VEIL_ADMIN_MAX_REQUEST bytes; the
 * answer is one JSON line, {"ok": true, ...} or {"ok": false, "error":
 * "..."}, and the connection closes. Commands run on libuv's thread pool
 * (they may call the store's synchronous functions), never on the loop.
 *
 * Commands live in a table in admin.c, each in a file of its own
 * (invite.c: invite.*; ident.c: id.*, status, queue.stats; gateway.c:
 * gateway.*). veilctl runs the same functions on a stopped server's data
 * directory (veil_admin_run), so both give the same answers.
 */
#ifndef VEIL_SRV_ADMIN_H
#define VEIL_SRV_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "../server.h"

#define VEIL_ADMIN_SOCKET "admin.sock"
#define VEIL_ADMIN_MAX_REQUEST 4096
#define VEIL_ADMIN_MAX_CONNS 16
#define VEIL_ADMIN_MAX_CMD 64

struct veil_admin;
struct veil_gwdb;

/* What a command works on. */
struct veil_admin_ctx {
	struct veil_server *srv; /* cfg, keys, store */
	struct veil_gwdb *gw;    /* the Gateway's accounts (gateway.db) */
	int running;             /* 1 in veild, 0 in veilctl on a stopped server */
};

/*
 * What veild adds on its loop thread after a command ran (main.c): kick
 * closes every chat connection of id and forgets it in the caches (after
 * block, delete, revoke); status adds the loop's figures (uptime,
 * connections, services) to a status answer.
 */
struct veil_admin_hooks {
	void (*kick)(void *arg, const uint8_t id[VEIL_ID_LEN]);
	void (*status)(void *arg, json_t *answer);
	void *arg;
};

/*
 * Binds DATA/admin.sock (a stale one from an earlier veild is replaced:
 * the caller holds the data directory's lock) and listens on loop. Returns
 * 0, or VEIL_EIO with one line in err. A path too long for a Unix socket
 * is logged and gives 0 with *out NULL: veild runs without the socket.
 */
int veil_admin_start(struct veil_admin **out, uv_loop_t *loop, struct veil_server *srv, char *err,
                     size_t errcap);
/* Sets the Gateway's accounts and the loop-side hooks (copied); before any command. */
void veil_admin_set(struct veil_admin *a, struct veil_gwdb *gw, const struct veil_admin_hooks *h);
/*
 * Stops listening, closes every connection and removes the socket file.
 * The handles finish closing as the loop runs; a command running on the
 * thread pool finishes first. NULL is a no-op.
 */
void veil_admin_stop(struct veil_admin *a);

/*
 * Parses one request line: a JSON object (depth and size bounded) with a
 * string "cmd" of at most VEIL_ADMIN_MAX_CMD bytes. On 0 *req owns the
 * object and *cmd points into it; else VEIL_EPROTO / VEIL_ELIMIT with *why.
 */
int veil_admin_parse(const uint8_t *p, size_t n, json_t **req, const char **cmd, const char **why);

/*
 * A command: reads its arguments from req and returns the answer object
 * (veil_admin_ok / veil_admin_error, or NULL for out of memory). Runs on a
 * thread-pool thread.
 */
typedef json_t *(*veil_admin_fn)(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_ok(void);
json_t *veil_admin_error(const char *fmt, ...) VEIL_PRINTF(1, 2);
/* The command named cmd, or NULL. */
veil_admin_fn veil_admin_find(const char *cmd);
/*
 * Runs one request (an object with "cmd") on x in the calling thread, as
 * the socket would: the answer object, or NULL for out of memory.
 */
json_t *veil_admin_run(const struct veil_admin_ctx *x, json_t *req);

/* Argument helpers for the commands. */
/* An optional integer argument in [min, max] (def if absent); -1 if it is there but not one. */
int veil_admin_int_arg(json_t *req, const char *name, json_int_t min, json_int_t max,
                       json_int_t def, json_int_t *out);
/* The identity in argument "id" (8 characters; lower case accepted); -1 if none or invalid. */
int veil_admin_id_arg(json_t *req, uint8_t id[static VEIL_ID_LEN]);
/* Unix milliseconds as "YYYY-MM-DDTHH:MM:SSZ", or "" for 0. */
void veil_admin_date(char out[static 32], uint64_t ms);

/* invite.c */
json_t *veil_admin_invite_create(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_invite_list(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_invite_revoke(const struct veil_admin_ctx *x, json_t *req);
/* ident.c */
json_t *veil_admin_id_list(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_id_show(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_id_block(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_id_unblock(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_id_delete(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_id_revoke(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_status(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_queue_stats(const struct veil_admin_ctx *x, json_t *req);
/* gateway.c */
json_t *veil_admin_gw_create(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_gw_list(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_gw_callback(const struct veil_admin_ctx *x, json_t *req);
json_t *veil_admin_gw_credits(const struct veil_admin_ctx *x, json_t *req);

#endif
