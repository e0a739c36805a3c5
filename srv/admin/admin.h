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
 * (invite.c: invite.create, invite.list, invite.revoke).
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

/*
 * Binds DATA/admin.sock (a stale one from an earlier veild is replaced:
 * the caller holds the data directory's lock) and listens on loop. Returns
 * 0, or VEIL_EIO with one line in err. A path too long for a Unix socket
 * is logged and gives 0 with *out NULL: veild runs without the socket.
 */
int veil_admin_start(struct veil_admin **out, uv_loop_t *loop, struct veil_server *srv, char *err,
                     size_t errcap);
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
typedef json_t *(*veil_admin_fn)(struct veil_server *srv, json_t *req);
json_t *veil_admin_ok(void);
json_t *veil_admin_error(const char *fmt, ...) VEIL_PRINTF(1, 2);

/* invite.c */
json_t *veil_admin_invite_create(struct veil_server *srv, json_t *req);
json_t *veil_admin_invite_list(struct veil_server *srv, json_t *req);
json_t *veil_admin_invite_revoke(struct veil_server *srv, json_t *req);

#endif
