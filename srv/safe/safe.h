/*
 * The Safe service: the specification's Threema Safe server API, for
 * encrypted backups (the client side is lib/client/backup_net.c). Routes on
 * the HTTP listener:
 *
 *   GET    /safe/config                 {"maxBackupBytes":N,"retentionDays":D}
 *   PUT    /safe/backups/<64 hex>       the backup (application/octet-stream)
 *   GET    /safe/backups/<64 hex>       the backup, or 404
 *   DELETE /safe/backups/<64 hex>       204, or 404
 *
 * The backup ID (a 32-byte scrypt output of the backup password and the
 * ID, in lower-case hex) is the only credential, as on the specification's
 * public Safe server; the server only ever holds ciphertext. A backup is a
 * file <data>/safe/<hex>, written to <data>/safe/tmp first, fsynced and
 * renamed, so it is either whole or the previous one. A backup expires
 * --safe-retention-days after its last upload (swept at start and at most
 * once a minute); at most --safe-max-backups are kept (507 beyond), each at
 * most --safe-max-size bytes (413 beyond); requests under /safe/ are rate
 * limited per client address (--safe-rate).
 */
#ifndef VEIL_SRV_SAFE_H
#define VEIL_SRV_SAFE_H

#include <stddef.h>
#include <stdint.h>

#include "../http/http.h"
#include "../server.h"

#define VEIL_SAFE_PREFIX "/safe/"
#define VEIL_SAFESVC_SWEEP_MS 60000

enum veil_safesvc_op {
	VEIL_SAFE_OP_CONFIG = 1,
	VEIL_SAFE_OP_PUT,
	VEIL_SAFE_OP_GET,
	VEIL_SAFE_OP_DELETE,
};

/*
 * Parses one request under /safe/ (path after the prefix): on success *op
 * and, for a backup, hex (the 64 lower-case hex digits, NUL-terminated).
 * Otherwise the HTTP status to answer: 404 for an unknown path or a
 * malformed ID, 405 for a method the path does not take, 411 for an upload
 * without a length, 413 over max_size, 415 for a content type other than
 * application/octet-stream.
 */
int veil_safesvc_parse(const char *method, const char *path, const char *content_type,
                       uint64_t content_length, uint64_t max_size, int *op, char hex[static 65]);

struct veil_safesvc;
/* Opens <data>/safe and registers the routes on h (nothing without a data directory). */
int veil_safesvc_register(struct veil_http *h, struct veil_server *srv);
/* Deletes every backup older than the retention time; returns how many. */
int veil_safesvc_sweep(struct veil_safesvc *s, uint64_t now_ms);

#endif
