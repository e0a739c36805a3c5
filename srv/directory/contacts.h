/*
 * The directory's contact endpoints: linking an e-mail address or phone
 * number with a verification code, matching (the specification's HMAC
 * hashes and our private OPRF matching), revocation and feature masks.
 * Routes (under /directory/, all POST):
 *   identity/link_email, identity/link_mobileno      link, unlink, verify
 *   identity/match_token, identity/match             the specification's matching
 *   identity/oprf_eval, identity/oprf_match          private matching (docs/PROTOCOL.md)
 *   identity/set_revocation_key, identity/check_revocation_key,
 *   identity/revoke, identity/ws/revoke              revocation
 *   identity/set_featuremask, identity/check_featuremask
 * Every authenticated call uses the two phases of srv/directory/token.c.
 */
#ifndef VEIL_SRV_DIRECTORY_CONTACTS_H
#define VEIL_SRV_DIRECTORY_CONTACTS_H

#include <jansson.h>

#include "directory.h"
#include "../notify/notify.h"

#define VEIL_DC_MAX_HASHES 4000 /* hashes per identity/match request */
#define VEIL_DC_MATCH_TOKEN_TTL_MS (24ull * 3600 * 1000)
#define VEIL_DC_CODE_ATTEMPTS 5 /* wrong codes before a pending link dies */
#define VEIL_DC_CODE_DIGITS 6
#define VEIL_DC_MATCH_TOKEN_LEN 49 /* version(1) id(8) expires(8) MAC(32) */

struct veil_dircontacts {
	struct veil_server *srv;
	struct veil_notify *notify;
	uint8_t *oprf_key; /* VEIL_OPRF_LEN, sodium_malloc'd */
	uint8_t *mac_key;  /* 32, sodium_malloc'd: link codes and match tokens */
	struct veil_ratelimit *link_rl, *match_rl, *oprf_rl, *revoke_rl;
};

int veil_dircontacts_new(struct veil_dircontacts **out, struct veil_server *srv);
void veil_dircontacts_free(struct veil_dircontacts *c);
/* Handles req if its path is one of the routes above: returns 1, else 0. */
int veil_dircontacts_handle(struct veil_dircontacts *c, const struct veil_http_req *req,
                            struct veil_http_resp *resp);

/* --- shared by contacts.c, link.c, match.c, revoke.c --- */

/* {"success": false, "error": msg} with HTTP 200, the specification's refusal. */
void veil_dc_refuse(struct veil_http_resp *resp, const char *msg);
/* Loads the request body as a bounded JSON object; on failure answers 400 and returns NULL. */
json_t *veil_dc_load(const struct veil_http_req *req, struct veil_http_resp *resp);
/* A base64 string of p for a response, or NULL. */
json_t *veil_dc_b64(const uint8_t *p, size_t n);
/*
 * The two phases for an endpoint of identity field "identity". Returns 1
 * with rec filled once phase 2 succeeded (the token is spent); returns 0
 * when the response is already written: the phase-1 challenge (with the
 * fields of extra merged into it; extra is stolen, may be NULL) or an error.
 */
int veil_dc_auth(struct veil_dircontacts *c, const char *endpoint, json_t *root,
                 struct veil_http_resp *resp, json_t *extra, struct veil_identity_rec *rec);
/* Reads the identity field of root; answers 400 and returns -1 if it is bad. */
int veil_dc_identity(json_t *root, struct veil_http_resp *resp, uint8_t id[static VEIL_ID_LEN]);
/* Takes n tokens for id from rl; answers 429 and returns -1 when exhausted. */
int veil_dc_limit(struct veil_ratelimit *rl, const uint8_t id[static VEIL_ID_LEN], uint32_t n,
                  struct veil_http_resp *resp);

void veil_dc_link(struct veil_dircontacts *c, int kind, const struct veil_http_req *req,
                  struct veil_http_resp *resp);
void veil_dc_match_token(struct veil_dircontacts *c, const struct veil_http_req *req,
                         struct veil_http_resp *resp);
void veil_dc_match(struct veil_dircontacts *c, const struct veil_http_req *req,
                   struct veil_http_resp *resp, int private_matching);
void veil_dc_oprf_eval(struct veil_dircontacts *c, const struct veil_http_req *req,
                       struct veil_http_resp *resp);
void veil_dc_revocation(struct veil_dircontacts *c, const char *what,
                        const struct veil_http_req *req, struct veil_http_resp *resp);
void veil_dc_featuremask(struct veil_dircontacts *c, int set, const struct veil_http_req *req,
                         struct veil_http_resp *resp);

/* Match tokens: stateless, reusable until they expire, bound to an identity. */
void veil_dc_match_token_make(struct veil_dircontacts *c, const uint8_t id[static VEIL_ID_LEN],
                              uint64_t now_ms, uint8_t out[static VEIL_DC_MATCH_TOKEN_LEN]);
/* 0 and id, or VEIL_ECRYPTO (forged), VEIL_ETIMEOUT (expired). */
int veil_dc_match_token_check(struct veil_dircontacts *c, const uint8_t *tok, size_t len,
                              uint64_t now_ms, uint8_t id[static VEIL_ID_LEN]);

#endif
