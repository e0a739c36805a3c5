/*
 * The contact endpoints' state, routing and shared helpers: the two-phase
 * authentication for identity-bound calls, bounded JSON loading, per-
 * identity rate limits and the stateless match tokens.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/dir.h"
#include "contacts.h"
#include "metrics/metrics.h"

void veil_dc_refuse(struct veil_http_resp *resp, const char *msg)
{
	veil_http_resp_object(resp, 200, json_pack("{s:b, s:s}", "success", 0, "error", msg));
}

json_t *veil_dc_b64(const uint8_t *p, size_t n)
{
	char s[VEIL_B64_LEN(64)];
	if (n > 64 || veil_b64_encode(s, sizeof s, p, n) != 0)
		return NULL;
	return json_string(s);
}

json_t *veil_dc_load(const struct veil_http_req *req, struct veil_http_resp *resp)
{
	if (req->body_len > VEIL_DIRSVC_MAX_JSON) {
		veil_http_resp_error(resp, 413, "request too large", NULL);
		return NULL;
	}
	if (veil_json_depth_ok(req->body, req->body_len, VEIL_DIRSVC_MAX_DEPTH) != 0) {
		veil_http_resp_error(resp, 400, "JSON nested too deeply", NULL);
		return NULL;
	}
	json_error_t err;
	json_t *root =
	    json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		veil_http_resp_error(resp, 400, "malformed JSON", NULL);
		return NULL;
	}
	return root;
}

int veil_dc_identity(json_t *root, struct veil_http_resp *resp, uint8_t id[static VEIL_ID_LEN])
{
	json_t *v = json_object_get(root, "identity");
	if (!json_is_string(v) || json_string_length(v) != VEIL_ID_LEN ||
	    veil_id_parse(id, json_string_value(v)) != 0) {
		veil_http_resp_error(resp, 400, "missing or invalid identity", "invalid-identity");
		return -1;
	}
	return 0;
}

int veil_dc_limit(struct veil_ratelimit *rl, const uint8_t id[static VEIL_ID_LEN], uint32_t n,
                  struct veil_http_resp *resp)
{
	char key[VEIL_ID_LEN + 1];
	memcpy(key, id, VEIL_ID_LEN);
	key[VEIL_ID_LEN] = 0;
	if (rl == NULL || n == 0 || veil_ratelimit_take_n(rl, key, n, veil_mono_ms()) == 0)
		return 0;
	veil_refusal(VEIL_METRIC_REFUSE_HTTP_RATE,
	             "directory requests over an identity's rate (--link-rate, --match-rate, "
	             "--oprf-rate, --revoke-rate)");
	veil_http_resp_error(resp, 429, "rate limit exceeded", NULL);
	return -1;
}

int veil_dc_auth(struct veil_dircontacts *c, const char *endpoint, json_t *root,
                 struct veil_http_resp *resp, json_t *extra, struct veil_identity_rec *rec)
{
	const struct veil_server_keys *keys = &c->srv->keys;
	uint8_t id[VEIL_ID_LEN], token[VEIL_DIRSVC_MAX_TOKEN], response[32];
	size_t token_len = 0;
	int ok = 0;
	if (veil_dc_identity(root, resp, id) != 0)
		goto out;
	int rc = veil_store_identity_get(c->srv->store, id, rec);
	if (rc == VEIL_ENOTFOUND || (rc == 0 && rec->state == VEIL_IDENTITY_INVALID)) {
		veil_http_resp_object(resp, 200,
		                      json_pack("{s:b, s:s, s:s}", "success", 0, "error",
		                                rc == 0 ? "identity revoked" : "identity not found",
		                                "errorType", "invalid-identity"));
		goto out;
	}
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		goto out;
	}
	uint64_t now = veil_now_ms();
	json_t *tok = json_object_get(root, "token"), *r = json_object_get(root, "response");
	if (tok == NULL && r == NULL) {
		uint8_t t[VEIL_DIRSVC_TOKEN_LEN];
		if (veil_dirsvc_token_issue(keys, endpoint, rec->pk, now, t) != 0) {
			veil_http_resp_error(resp, 500, "internal error", NULL);
			goto out;
		}
		json_t *o = json_pack("{s:o, s:o}", "token", veil_dc_b64(t, sizeof t),
		                      "tokenRespKeyPub", veil_dc_b64(keys->dir_pk, VEIL_KEY_LEN));
		if (o != NULL && extra != NULL)
			json_object_update(o, extra);
		veil_http_resp_object(resp, 200, o);
		goto out;
	}
	if (!json_is_string(tok) || !json_is_string(r) ||
	    veil_b64_decode_var(token, sizeof token, &token_len, json_string_value(tok),
	                        json_string_length(tok)) != 0 ||
	    token_len == 0 ||
	    veil_b64_decode(response, sizeof response, json_string_value(r),
	                    json_string_length(r)) != 0) {
		veil_http_resp_error(resp, 400, "token and response must be base64", NULL);
		goto out;
	}
	uint64_t expires = 0;
	rc = veil_dirsvc_token_check(keys, endpoint, rec->pk, token, token_len, now, &expires);
	if (rc != 0) {
		veil_http_resp_object(
		    resp, 200,
		    json_pack("{s:b, s:s, s:s}", "success", 0, "error",
		              rc == VEIL_ETIMEOUT ? "token expired" : "invalid token", "errorType",
		              "invalid-token"));
		goto out;
	}
	if (veil_dirsvc_response_check(keys, rec->pk, token, token_len, response) != 0) {
		veil_http_resp_object(resp, 200,
		                      json_pack("{s:b, s:s, s:s}", "success", 0, "error",
		                                "invalid token response", "errorType",
		                                "invalid-token"));
		goto out;
	}
	rc = veil_store_token_use(c->srv->store, token, token_len, expires);
	if (rc == VEIL_EREPLAY) {
		veil_http_resp_object(resp, 200,
		                      json_pack("{s:b, s:s, s:s}", "success", 0, "error",
		                                "token already used", "errorType",
		                                "invalid-token"));
		goto out;
	}
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		goto out;
	}
	ok = 1;
out:
	json_decref(extra);
	sodium_memzero(response, sizeof response);
	return ok;
}

/* --- match tokens: version(1) | id(8) | expires u64-le ms(8) | MAC(32) --- */

static void match_token_mac(struct veil_dircontacts *c, const uint8_t *body, size_t n,
                            uint8_t mac[static 32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, c->mac_key, 32, 32);
	crypto_generichash_update(&st, (const unsigned char *)"match-token", 11);
	crypto_generichash_update(&st, body, n);
	crypto_generichash_final(&st, mac, 32);
	sodium_memzero(&st, sizeof st);
}

void veil_dc_match_token_make(struct veil_dircontacts *c, const uint8_t id[static VEIL_ID_LEN],
                              uint64_t now_ms, uint8_t out[static VEIL_DC_MATCH_TOKEN_LEN])
{
	out[0] = 1;
	memcpy(out + 1, id, VEIL_ID_LEN);
	veil_store_u64le(out + 9, now_ms + VEIL_DC_MATCH_TOKEN_TTL_MS);
	match_token_mac(c, out, 17, out + 17);
}

int veil_dc_match_token_check(struct veil_dircontacts *c, const uint8_t *tok, size_t len,
                              uint64_t now_ms, uint8_t id[static VEIL_ID_LEN])
{
	uint8_t mac[32];
	if (len != VEIL_DC_MATCH_TOKEN_LEN || tok[0] != 1)
		return VEIL_ECRYPTO;
	match_token_mac(c, tok, 17, mac);
	if (veil_memcmp(mac, tok + 17, 32) != 0)
		return VEIL_ECRYPTO;
	if (veil_load_u64le(tok + 9) <= now_ms)
		return VEIL_ETIMEOUT;
	memcpy(id, tok + 1, VEIL_ID_LEN);
	return 0;
}

/* --- lifecycle and routing --- */

int veil_dircontacts_new(struct veil_dircontacts **out, struct veil_server *srv)
{
	*out = NULL;
	struct veil_dircontacts *c = calloc(1, sizeof *c);
	if (c == NULL)
		return VEIL_ENOMEM;
	c->srv = srv;
	int rc = VEIL_ENOMEM;
	c->oprf_key = sodium_malloc(VEIL_OPRF_LEN);
	c->mac_key = sodium_malloc(32);
	if (c->oprf_key == NULL || c->mac_key == NULL)
		goto fail;
	/* Both keys follow from the directory key, so every host of a deployment agrees. */
	rc = veil_oprf_key_derive(c->oprf_key, srv->keys.dir_sk);
	if (rc == 0)
		rc = veil_kdf(c->mac_key, 32, srv->keys.dir_sk, VEIL_KEY_LEN, "contacts", 8,
		              "veil-dir", 8);
	if (rc != 0)
		goto fail;
	const struct veil_config *cfg = &srv->cfg;
	if ((rc = veil_ratelimit_new(&c->link_rl,
	                             cfg->link_rate_per_min ? cfg->link_rate_per_min : 3)) != 0 ||
	    (rc = veil_ratelimit_new(&c->match_rl, cfg->match_rate_per_min ? cfg->match_rate_per_min
	                                                                   : 4000)) != 0 ||
	    (rc = veil_ratelimit_new(&c->oprf_rl,
	                             cfg->oprf_rate_per_min ? cfg->oprf_rate_per_min : 600)) != 0 ||
	    (rc = veil_ratelimit_new(&c->revoke_rl,
	                             cfg->revoke_rate_per_min ? cfg->revoke_rate_per_min : 5)) != 0)
		goto fail;
	rc = veil_notify_new(&c->notify, cfg);
	if (rc != 0)
		goto fail;
	*out = c;
	return 0;
fail:
	veil_dircontacts_free(c);
	return rc;
}

void veil_dircontacts_free(struct veil_dircontacts *c)
{
	if (c == NULL)
		return;
	veil_notify_free(c->notify);
	veil_ratelimit_free(c->link_rl);
	veil_ratelimit_free(c->match_rl);
	veil_ratelimit_free(c->oprf_rl);
	veil_ratelimit_free(c->revoke_rl);
	sodium_free(c->oprf_key);
	sodium_free(c->mac_key);
	free(c);
}

int veil_dircontacts_handle(struct veil_dircontacts *c, const struct veil_http_req *req,
                            struct veil_http_resp *resp)
{
	static const char *const routes[] = {
	    "identity/link_email",
	    "identity/link_mobileno",
	    "identity/match_token",
	    "identity/match",
	    "identity/oprf_eval",
	    "identity/oprf_match",
	    "identity/set_revocation_key",
	    "identity/check_revocation_key",
	    "identity/revoke",
	    "identity/ws/revoke",
	    "identity/set_featuremask",
	    "identity/check_featuremask",
	};
	size_t i;
	for (i = 0; i < VEIL_ARRAY_LEN(routes); i++)
		if (strcmp(req->path, routes[i]) == 0)
			break;
	if (i == VEIL_ARRAY_LEN(routes))
		return 0;
	if (strcmp(req->method, "POST") != 0) {
		veil_http_resp_error(resp, 405, "method not allowed", NULL);
		return 1;
	}
	switch (i) {
	case 0: veil_dc_link(c, VEIL_LINK_EMAIL, req, resp); break;
	case 1: veil_dc_link(c, VEIL_LINK_PHONE, req, resp); break;
	case 2: veil_dc_match_token(c, req, resp); break;
	case 3: veil_dc_match(c, req, resp, 0); break;
	case 4: veil_dc_oprf_eval(c, req, resp); break;
	case 5: veil_dc_match(c, req, resp, 1); break;
	case 6: veil_dc_revocation(c, "set", req, resp); break;
	case 7: veil_dc_revocation(c, "check", req, resp); break;
	case 8: veil_dc_revocation(c, "revoke", req, resp); break;
	case 9: veil_dc_revocation(c, "ws", req, resp); break;
	case 10: veil_dc_featuremask(c, 1, req, resp); break;
	default: veil_dc_featuremask(c, 0, req, resp); break;
	}
	return 1;
}
