/*
 * The blob service: temporary storage of end-to-end encrypted files under a
 * random 16-byte blob ID, as the specification's blob server. Routes on the
 * HTTP listener:
 *
 *   POST /blob/upload[?persist=1]      multipart/form-data, field "blob";
 *        Authorization: ThreemaBlobToken <token>   -> 200, the ID in hex
 *   GET  /blob/<id>                    the blob; HTTP Range supported
 *   POST /blob/<id>/done               a 1:1 blob is deleted (204)
 *   POST /directory/identity/blob_cred two-phase challenge (as identity/create,
 *        with {"identity"}) -> {success, token, expiration}
 *
 * Blobs live in the blob directory DIR (--blob-dir, default <data>/blobs).
 * They stream to a temporary file in DIR/tmp/NODE (one directory per node,
 * so that nodes sharing DIR never remove each other's uploads in progress),
 * are fsynced and renamed to DIR/<id[0:2]>/<id> (so a blob is either whole
 * or absent), and are described by a row of metadata (owner, size, expiry,
 * persist flag; blobmeta.h): in DIR/blobs.db, or with a PostgreSQL store in
 * its table blobs, shared by the nodes. Memory per transfer is constant.
 * Expired blobs are swept at start and then at most once a minute when the
 * service is used (on every node: a file already gone is no error). The
 * server only ever holds ciphertext.
 */
#ifndef VEIL_SRV_BLOB_H
#define VEIL_SRV_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"
#include "../http/http.h"
#include "../server.h"

#define VEIL_BLOB_ID_BYTES 16
#define VEIL_BLOB_TOKEN_LEN 49 /* version(1) | identity(8) | expires u64-le ms(8) | MAC(32) */
#define VEIL_BLOB_TOKEN_TTL_S 3600
#define VEIL_BLOB_SWEEP_MS 60000
/* Multipart framing allowed beyond the blob itself (boundaries, part headers). */
#define VEIL_BLOB_FRAMING_MAX (16u * 1024u)

/* A bounded, streaming multipart/form-data parser. */
#define VEIL_MP_BOUNDARY_MAX 70
#define VEIL_MP_LINE_MAX 1024  /* one part header line */
#define VEIL_MP_HEADERS_MAX 16 /* header lines per part */
#define VEIL_MP_PARTS_MAX 8    /* parts per body */
#define VEIL_MP_OTHER_MAX 4096 /* bytes of data of parts other than the wanted field */
#define VEIL_MP_PREAMBLE_MAX 1024

struct veil_multipart {
	int state;
	char delim[4 + VEIL_MP_BOUNDARY_MAX + 1]; /* "\r\n--" boundary */
	size_t dlen;
	size_t match; /* bytes of delim matched and held back */
	char line[VEIL_MP_LINE_MAX + 1];
	size_t line_len;
	int nheaders, nparts;
	int in_field; /* the current part is the wanted field */
	int found;    /* the wanted field was seen */
	char field[32];
	size_t other, preamble;
	int (*on_data)(void *ctx, const uint8_t *p, size_t n);
	void *ctx;
};

/*
 * Prepares mp to deliver the data of form field `field` from a body whose
 * Content-Type header is content_type (multipart/form-data with a boundary
 * of 1..70 allowed characters). on_data gets the field's bytes in order, in
 * pieces; its non-zero return stops the parse and is returned by feed.
 * Returns 0 or VEIL_EPROTO.
 */
int veil_multipart_init(struct veil_multipart *mp, const char *content_type, const char *field,
                        int (*on_data)(void *ctx, const uint8_t *p, size_t n), void *ctx);
/* Feeds the next n body bytes: 0, VEIL_EPROTO, VEIL_ELIMIT or on_data's error. */
int veil_multipart_feed(struct veil_multipart *mp, const uint8_t *p, size_t n);
/* After the last byte: 0 if the closing boundary was seen and the field was present. */
int veil_multipart_finish(const struct veil_multipart *mp);

/* Blob tokens (stateless; the MAC key is derived from the directory key). */
int veil_blob_token_issue(const struct veil_server_keys *keys, const uint8_t id[static VEIL_ID_LEN],
                          uint64_t expires_ms, uint8_t out[static VEIL_BLOB_TOKEN_LEN]);
/* 0 and the identity, VEIL_ECRYPTO if forged, VEIL_ETIMEOUT if expired. */
int veil_blob_token_check(const struct veil_server_keys *keys, const uint8_t *tok, size_t len,
                          uint64_t now_ms, uint8_t id[static VEIL_ID_LEN]);

struct veil_blobsvc;
/*
 * Opens the blob store in the blob directory (created if missing), sweeps
 * expired blobs and this node's leftovers of interrupted uploads, and registers the
 * routes on h (nothing if srv has no data directory). Freed by veil_http_stop. Must be called before the
 * directory's routes are registered (its prefix is more specific).
 */
int veil_blobsvc_register(struct veil_http *h, struct veil_server *srv);
/* As veil_blobsvc_register, and *out is the service (NULL without a data directory). */
int veil_blobsvc_register_ex(struct veil_http *h, struct veil_server *srv,
                             struct veil_blobsvc **out);
/*
 * The blob service's stream operations with the service as arg, for a
 * service that fronts it with its own authentication (the Gateway): begin
 * with path "upload" (and an Authorization with a blob token it issued) or
 * a blob ID in hex, as under /blob/.
 */
extern const struct veil_http_stream_ops veil_blobsvc_ops;
/* Deletes every expired blob now; returns how many (tests, and the periodic sweep). */
int veil_blobsvc_sweep(struct veil_blobsvc *b, uint64_t now_ms);

#endif
