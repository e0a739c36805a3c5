/*
 * The directory service (identity creation and public-key lookup, following
 * the specification's directory API) and the signed provisioning document.
 * Both are HTTP routes on the listener of srv/http.
 *
 * Authenticated calls use the specification's two phases: the first POST
 * returns {token, tokenRespKeyPub}; the second repeats the request with the
 * token and response = BLAKE2b-256(key = KDF(X25519HSalsa20(CK, dir key),
 * salt "dir", personal "3ma-csp"), in = token). Our tokens are stateless but
 * single-use: version(1) | random(16) | expires u64-le ms(8) | MAC(32), the
 * MAC binding those fields, the public key the token was issued for and the
 * endpoint, under a key derived from the directory's secret key; the store
 * records each used token so that a replay is refused.
 */
#ifndef VEIL_SRV_DIRECTORY_H
#define VEIL_SRV_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"
#include "../server.h"
#include "../http/http.h"

#define VEIL_DIRSVC_TOKEN_LEN 57
#define VEIL_DIRSVC_TOKEN_TTL_MS (5u * 60u * 1000u)
#define VEIL_DIRSVC_MAX_TOKEN 128 /* largest token accepted from a client before checks */
#define VEIL_DIRSVC_MAX_IDS 1000  /* identities per fetch_bulk / check request */
#define VEIL_DIRSVC_MAX_DEPTH 8   /* JSON nesting accepted in a request */
#define VEIL_DIRSVC_MAX_JSON (256u * 1024u)
#define VEIL_DIRSVC_CHECK_INTERVAL 86400 /* seconds, returned by identity/check */
#define VEIL_DIRSVC_SERVER_GROUP "00"
#define VEIL_DIRSVC_TYPE_DEFAULT 0 /* identity type: a regular (consumer) identity */
#define VEIL_DIRSVC_OPPF_REFRESH 86400
#define VEIL_DIRSVC_PROVISIONING_PATH "/.well-known/veil/provisioning"

/*
 * Creates the directory service for srv and registers its routes on h:
 * "/directory/" (GET identity/<ID>; POST identity/create, identity/fetch_bulk,
 * identity/check) and the provisioning document. The service is freed by
 * veil_http_stop. Returns 0 or a negative veil_err.
 */
int veil_dirsvc_register(struct veil_http *h, struct veil_server *srv);

/* A parsed identity/create request. */
/* Invite codes (invite.c). */
#define VEIL_INVITE_CODE_LEN 20 /* characters of a code, without the dashes */
#define VEIL_INVITE_TEXT_MAX 64 /* longest code text accepted (dashes, spaces) */
/*
 * The hash the store keeps of a code (case, dashes and spaces ignored): 0,
 * or VEIL_EINVAL if code is not a well-formed invite code.
 */
int veil_invite_hash(const char *code, uint8_t hash[static 32]);
/* A new random code, "XXXXX-XXXXX-XXXXX-XXXXX", and its hash. */
int veil_invite_code_new(char out[static VEIL_INVITE_TEXT_MAX + 1], uint8_t hash[static 32]);

struct veil_dirsvc_create_req {
	uint8_t pk[VEIL_KEY_LEN];
	/* A Veil addition: the invite code, "" if none was sent */
	char invite[VEIL_INVITE_TEXT_MAX + 1];
	int has_token; /* phase 2: token and response are set */
	uint8_t token[VEIL_DIRSVC_MAX_TOKEN];
	size_t token_len;
	uint8_t response[32];
};

/*
 * Parses an identity/create body. Returns 0, or VEIL_EPROTO / VEIL_ELIMIT
 * with *why set to a static message for the client. Unknown fields (the
 * licence fields of the specification) are ignored.
 */
int veil_dirsvc_parse_create(const uint8_t *body, size_t len, struct veil_dirsvc_create_req *out,
                             const char **why);

/*
 * Parses {"identities": [..]} (fetch_bulk, check) into ids[0..*n), at most
 * max. A string that is not a valid ID is kept with valid[i] = 0 (it is
 * answered as unknown); a non-string entry is an error. Returns 0, or
 * VEIL_EPROTO / VEIL_ELIMIT with *why set.
 */
int veil_dirsvc_parse_ids(const uint8_t *body, size_t len, uint8_t (*ids)[VEIL_ID_LEN], int *valid,
                          size_t max, size_t *n, const char **why);

/* Issues a token for pk and endpoint, valid until now_ms + VEIL_DIRSVC_TOKEN_TTL_MS. */
int veil_dirsvc_token_issue(const struct veil_server_keys *keys, const char *endpoint,
                            const uint8_t pk[static VEIL_KEY_LEN], uint64_t now_ms,
                            uint8_t out[static VEIL_DIRSVC_TOKEN_LEN]);
/*
 * Checks a token's MAC (for pk and endpoint) and expiry: 0 and *expires_ms,
 * VEIL_ECRYPTO if forged or issued for another key or endpoint, VEIL_ETIMEOUT
 * if expired. Does not consume it.
 */
int veil_dirsvc_token_check(const struct veil_server_keys *keys, const char *endpoint,
                            const uint8_t pk[static VEIL_KEY_LEN], const uint8_t *token, size_t len,
                            uint64_t now_ms, uint64_t *expires_ms);
/* Checks the client's response to token: 0 or VEIL_ECRYPTO. */
int veil_dirsvc_response_check(const struct veil_server_keys *keys,
                               const uint8_t pk[static VEIL_KEY_LEN], const uint8_t *token,
                               size_t len, const uint8_t response[static 32]);

/*
 * Builds the signed provisioning document: compact JSON, "\n", base64
 * Ed25519 signature (keys.sign_sk) over the JSON bytes, as OPPF does. port
 * is the HTTP port clients reach the directory on. out must be initialised.
 */
int veil_dirsvc_provisioning_build(const struct veil_server *srv, uint16_t port,
                                   struct veil_buf *out);

#endif
