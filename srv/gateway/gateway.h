/*
 * The Gateway: the HTTP message API of the published Gateway ("msgapi"),
 * so that its client libraries work against veild with only their base URL
 * changed to http://HOST:PORT/gateway. Routes under /gateway/ on the HTTP
 * listener:
 *
 *   GET  pubkeys/{id}                      public key, 64 hex digits
 *   GET  lookup/phone/{e164}, lookup/phone_hash/{hex}, lookup/email/{addr},
 *        lookup/email_hash/{hex}           an ID
 *   GET  capabilities/{id}                 "text,image,video,audio,file"
 *   GET  credits                           the credits left
 *   POST send_simple   form: to|phone|email, text    (basic mode)
 *   POST send_e2e      form: to, nonce, box[, noDeliveryReceipts] (end-to-end)
 *   POST upload_blob[?persist=1]  multipart/form-data, field "blob"; the blob
 *                      ID in hex (the blob service, owner the API identity)
 *   GET  blobs/{id}    the blob
 *
 * Every request carries from (the API identity, '*' and 7 characters) and
 * secret: in the query of a GET, in the form body of a POST. Answers are
 * text/plain; errors are the status alone (400, 401, 402, 404, 413, 429,
 * 500) as the published API has them.
 *
 * A sent message is queued as a CSP message from the API identity, legacy
 * layout (no metadata box), and acknowledged (200, the message ID in 16 hex
 * digits) only once it is durable in the store.
 *
 * Messages to an API identity with a callback URL are taken from its queue
 * by a worker thread and POSTed there (from, to, messageId, date, nonce,
 * box, nickname, mac), in queue order; a message leaves the queue only after
 * a 2xx answer. A failure stops that identity's deliveries until the next
 * try, after a back-off doubling from 1 s up to cfg.gw_retry_max_s.
 */
#ifndef VEIL_SRV_GATEWAY_H
#define VEIL_SRV_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"
#include "../http/http.h"
#include "../server.h"

#define VEIL_GW_PREFIX "/gateway/"
#define VEIL_GW_TEXT_MAX 3500      /* send_simple text, bytes (413 above) */
#define VEIL_GW_BOX_MAX 4000       /* send_e2e box, bytes (413 above) */
#define VEIL_GW_FORM_MAX_FIELDS 16 /* fields in one form */
#define VEIL_GW_CB_BATCH 64        /* messages read from a queue at once for callbacks */
#define VEIL_GW_CB_TIMEOUT_S 15    /* one callback request */
#define VEIL_GW_CB_POLL_MS 500     /* queues with a callback are read this often */
#define VEIL_GW_MAX_CALLBACK_IDS 256
#define VEIL_GW_PULL_BATCH 32      /* messages in one answer of receive */
#define VEIL_GW_PULL_WAIT_MAX_S 60 /* longest wait= of receive */
#define VEIL_GW_PULL_MAX 256       /* receive requests waiting at once */
#define VEIL_GW_BULK_MAX 1000      /* hashes in one bulk lookup (413 above), as the API */

/*
 * Finds the field name in an application/x-www-form-urlencoded text
 * p[0..len) and copies its value, decoded (%XX, '+') if decode is set, into
 * out (cap bytes with the NUL). Returns 0 and *outlen, VEIL_ENOTFOUND,
 * VEIL_ELIMIT (value too long, or more than VEIL_GW_FORM_MAX_FIELDS fields),
 * VEIL_EPROTO (a bad escape or a NUL byte).
 */
int veil_gw_form_get(const char *p, size_t len, const char *name, int decode, char *out, size_t cap,
                     size_t *outlen);

/*
 * A bulk lookup's body: {"phoneHashes": [HEX64...], "emailHashes": [HEX64...]}
 * (either may be missing). veil_gw_bulk_parse fills b (free it with
 * veil_gw_bulk_free): 0, VEIL_EPROTO (not that shape, or a hash that is not 64
 * hex digits), VEIL_ELIMIT (more than VEIL_GW_BULK_MAX hashes), VEIL_ENOMEM.
 */
struct veil_gw_bulk {
	uint8_t (*phone)[32], (*email)[32];
	size_t nphone, nemail;
};
int veil_gw_bulk_parse(const uint8_t *body, size_t len, struct veil_gw_bulk *b);
void veil_gw_bulk_free(struct veil_gw_bulk *b);

struct veil_gateway;

/*
 * Opens <data>/gateway.db. notify(arg, id) is called on the thread that
 * runs the store's completions whenever the Gateway stored a message for
 * id, so that a connected recipient fetches it (may be NULL).
 */
int veil_gateway_new(struct veil_gateway **out, struct veil_server *srv,
                     void (*notify)(void *arg, const uint8_t id[VEIL_ID_LEN]), void *arg);
/*
 * Registers the routes on h (before veil_http_run); upload_blob and blobs/
 * front the blob service blobs (NULL: they answer 500).
 */
struct veil_blobsvc;
int veil_gateway_register(struct veil_gateway *gw, struct veil_http *h, struct veil_blobsvc *blobs);
/* Starts the receive worker and, if callbacks is set, the callback worker. */
int veil_gateway_start(struct veil_gateway *gw, int callbacks);
/*
 * Stops the callback worker (an unanswered callback is given up and tried
 * again at the next start). Call before veil_store_close.
 */
void veil_gateway_stop(struct veil_gateway *gw);
/* Frees gw (after veil_store_close); NULL is a no-op. */
void veil_gateway_free(struct veil_gateway *gw);
/* The accounts database (thread-safe), for the admin socket. */
struct veil_gwdb *veil_gateway_db(struct veil_gateway *gw);

/* Wakes the callback worker (a message for an API identity may be waiting). */
void veil_gateway_wake(struct veil_gateway *gw);

#endif
