/*
 * Client side of the directory API (identity creation and lookup) and of the
 * server's signed provisioning document, over HTTP with libcurl.
 *
 * URLs: dir_url is the directory's base URL, e.g.
 * "http://127.0.0.1:8080/directory/" (a missing final '/' is added);
 * server_url is the server root, e.g. "http://127.0.0.1:8080", below which
 * the provisioning document lives at /.well-known/veil/provisioning.
 *
 * Every call is synchronous, bounded in time (VEIL_DIR_TIMEOUT_MS) and in
 * response size (VEIL_DIR_MAX_RESPONSE), follows no redirects and prints
 * nothing. Errors: VEIL_EIO the server could not be reached (or answered
 * 5xx), VEIL_EPROTO a malformed answer (or the server called our request
 * malformed), VEIL_ELIMIT an answer too large, VEIL_EAGAIN rate-limited
 * (429; wait at least 10 s), VEIL_EAUTH the server refused the challenge
 * response or token, VEIL_ENOTFOUND unknown identity, VEIL_ECRYPTO a bad
 * signature, VEIL_EKEY a key differs from the pinned one. After a failure,
 * veil_dir_errmsg() describes it for the user.
 */
#ifndef VEIL_DIR_H
#define VEIL_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"

#define VEIL_DIR_MAX_RESPONSE (256u * 1024u)
#define VEIL_DIR_TIMEOUT_MS 10000
#define VEIL_DIR_CONNECT_TIMEOUT_MS 5000
#define VEIL_DIR_MAX_URL 512
#define VEIL_DIR_MAX_HOST 256
#define VEIL_DIR_SIGN_PK_LEN 32

struct veil_dir_identity {
	uint8_t id[VEIL_ID_LEN];
	uint8_t pk[VEIL_KEY_LEN];
	int state; /* 0 active, 1 inactive, 2 invalid (revoked) */
	int type;
	uint64_t feature_mask;
};

struct veil_dir_provisioning {
	char server_name[VEIL_DIR_MAX_HOST];
	char chat_host[VEIL_DIR_MAX_HOST];
	uint16_t chat_port; /* the first port of the document's list */
	uint8_t csp_pk[VEIL_KEY_LEN];
	uint8_t sign_pk[VEIL_DIR_SIGN_PK_LEN];
	char directory_url[VEIL_DIR_MAX_URL];
	uint32_t refresh_s;
};

/*
 * Creates an identity for the key pair (pk, sk) in both phases of the
 * challenge; writes the new (or, for a known key, the existing) ID to
 * out_id. sk is used only to answer the challenge and is not kept.
 */
int veil_dir_create_identity(const char *dir_url, const uint8_t pk[static VEIL_KEY_LEN],
                             const uint8_t sk[static VEIL_KEY_LEN],
                             uint8_t out_id[static VEIL_ID_LEN]) VEIL_WUR;

/* Looks up id; VEIL_ENOTFOUND if the directory does not know it. */
int veil_dir_get_identity(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                          struct veil_dir_identity *out) VEIL_WUR;

/*
 * Fetches and verifies the provisioning document. The signature is checked
 * with the document's own signatureKey, which must equal pin_sign_pk if
 * that is not NULL (first contact: pass NULL and pin out->sign_pk). If
 * pin_csp_pk is not NULL the chat server key must equal it.
 */
int veil_dir_fetch_provisioning(const char *server_url, const uint8_t *pin_sign_pk,
                                const uint8_t *pin_csp_pk,
                                struct veil_dir_provisioning *out) VEIL_WUR;

/*
 * The parsers behind the calls above, for offline use and fuzzing. They
 * take untrusted bytes and return 0 or VEIL_EPROTO / VEIL_ECRYPTO /
 * VEIL_EKEY / VEIL_ELIMIT.
 */
int veil_dir_parse_identity(const uint8_t *json, size_t len,
                            struct veil_dir_identity *out) VEIL_WUR;
int veil_dir_parse_provisioning(const uint8_t *doc, size_t len, const uint8_t *pin_sign_pk,
                                const uint8_t *pin_csp_pk,
                                struct veil_dir_provisioning *out) VEIL_WUR;

/*
 * The challenge response of the specification: BLAKE2b-256 keyed with
 * KDF(X25519HSalsa20(sk, token_resp_pk), salt "dir", personal "3ma-csp")
 * over the token.
 */
int veil_dir_token_response(uint8_t out[static 32], const uint8_t sk[static VEIL_KEY_LEN],
                            const uint8_t token_resp_pk[static VEIL_KEY_LEN], const uint8_t *token,
                            size_t len) VEIL_WUR;

/* The message of this thread's last failed veil_dir_* call ("" if none). */
const char *veil_dir_errmsg(void);

#endif
