/*
 * Contact matching.
 *
 *   identity/match_token (two phases) {identity}    -> {success, matchToken}
 *   identity/match  {matchToken, emailHashes[], mobileNoHashes[], includeInactive?}
 *                   -> {identities: [{identity, publicKey, emailHash|mobileNoHash}],
 *                       checkInterval}
 *   identity/oprf_eval (two phases) {identity, elements[]}
 *                   -> {success, elements[]}       (k * each blinded element)
 *   identity/oprf_match {matchToken, emailPrfs[], mobileNoPrfs[], includeInactive?}
 *                   -> {identities: [{identity, publicKey, emailPrf|mobileNoPrf}],
 *                       checkInterval}
 *
 * The submitted hashes are looked up and forgotten: nothing of the address
 * book is stored or logged. Matching and evaluation are rate-limited per
 * identity (the match token names it), with HTTP 429 when exhausted.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/dir.h"
#include "contacts.h"

void veil_dc_match_token(struct veil_dircontacts *c, const struct veil_http_req *req,
                         struct veil_http_resp *resp)
{
	struct veil_identity_rec rec;
	uint8_t tok[VEIL_DC_MATCH_TOKEN_LEN];
	json_t *root = veil_dc_load(req, resp);
	if (root == NULL)
		return;
	if (veil_dc_auth(c, "identity/match_token", root, resp, NULL, &rec)) {
		veil_dc_match_token_make(c, rec.id, veil_now_ms(), tok);
		veil_http_resp_object(resp, 200,
		                      json_pack("{s:b, s:o}", "success", 1, "matchToken",
		                                veil_dc_b64(tok, sizeof tok)));
	}
	json_decref(root);
}

/* Checks that arr is absent or an array of base64 32-byte strings; counts them. */
static int check_list(json_t *root, const char *name, size_t *total, struct veil_http_resp *resp)
{
	json_t *arr = json_object_get(root, name);
	uint8_t v[32];
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr)) {
		veil_http_resp_error(resp, 400, "hash lists must be arrays", NULL);
		return -1;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *s = json_array_get(arr, i);
		if (!json_is_string(s) || veil_b64_decode(v, sizeof v, json_string_value(s),
		                                          json_string_length(s)) != 0) {
			veil_http_resp_error(resp, 400,
			                     "malformed hash: expected 32 bytes in base64", NULL);
			return -1;
		}
	}
	*total += json_array_size(arr);
	if (*total > VEIL_DC_MAX_HASHES) {
		veil_http_resp_error(resp, 400, "too many hashes in one request", NULL);
		return -1;
	}
	return 0;
}

/* Appends the active (or, with inactive, also inactive) identities linked with each value. */
static int match_list(struct veil_dircontacts *c, json_t *root, const char *name, int kind,
                      int by_prf, int inactive, const char *out_field, json_t *out)
{
	json_t *arr = json_object_get(root, name);
	uint8_t v[32], ids[VEIL_STORE_MAX_MATCHES][VEIL_ID_LEN];
	for (size_t i = 0; arr != NULL && i < json_array_size(arr); i++) {
		json_t *s = json_array_get(arr, i);
		size_t n = 0;
		if (veil_b64_decode(v, sizeof v, json_string_value(s), json_string_length(s)) != 0)
			return VEIL_EPROTO;
		int rc = veil_store_link_find(c->srv->store, kind, by_prf, v, ids,
		                              VEIL_STORE_MAX_MATCHES, &n);
		if (rc != 0)
			return rc;
		for (size_t j = 0; j < n; j++) {
			struct veil_identity_rec rec;
			if (veil_store_identity_get(c->srv->store, ids[j], &rec) != 0)
				continue;
			if (rec.state == VEIL_IDENTITY_INVALID ||
			    (rec.state == VEIL_IDENTITY_INACTIVE && !inactive))
				continue;
			json_t *o = json_pack("{s:s%, s:o, s:O}", "identity", (const char *)rec.id,
			                      (size_t)VEIL_ID_LEN, "publicKey",
			                      veil_dc_b64(rec.pk, VEIL_KEY_LEN), out_field, s);
			if (o == NULL || json_array_append_new(out, o) != 0)
				return VEIL_ENOMEM;
		}
	}
	return 0;
}

void veil_dc_match(struct veil_dircontacts *c, const struct veil_http_req *req,
                   struct veil_http_resp *resp, int private_matching)
{
	const char *el = private_matching ? "emailPrfs" : "emailHashes";
	const char *pl = private_matching ? "mobileNoPrfs" : "mobileNoHashes";
	uint8_t tok[VEIL_DC_MATCH_TOKEN_LEN + 8], id[VEIL_ID_LEN];
	size_t tok_len = 0, total = 0;
	json_t *out = NULL, *root = veil_dc_load(req, resp);
	if (root == NULL)
		return;
	json_t *t = json_object_get(root, "matchToken");
	if (!json_is_string(t) ||
	    veil_b64_decode_var(tok, sizeof tok, &tok_len, json_string_value(t),
	                        json_string_length(t)) != 0) {
		veil_http_resp_error(resp, 401, "missing or malformed matchToken", "invalid-token");
		goto out;
	}
	int rc = veil_dc_match_token_check(c, tok, tok_len, veil_now_ms(), id);
	if (rc != 0) {
		veil_http_resp_error(
		    resp, 401, rc == VEIL_ETIMEOUT ? "match token expired" : "invalid match token",
		    "invalid-token");
		goto out;
	}
	json_t *inc = json_object_get(root, "includeInactive");
	if (inc != NULL && !json_is_boolean(inc)) {
		veil_http_resp_error(resp, 400, "includeInactive must be a boolean", NULL);
		goto out;
	}
	if (check_list(root, el, &total, resp) != 0 || check_list(root, pl, &total, resp) != 0)
		goto out;
	if (veil_dc_limit(c->match_rl, id, (uint32_t)total, resp) != 0)
		goto out;
	out = json_array();
	if (out == NULL) {
		veil_http_resp_error(resp, 500, "internal error", NULL);
		goto out;
	}
	int inactive = json_is_true(inc);
	rc = match_list(c, root, el, VEIL_LINK_EMAIL, private_matching, inactive,
	                private_matching ? "emailPrf" : "emailHash", out);
	if (rc == 0)
		rc = match_list(c, root, pl, VEIL_LINK_PHONE, private_matching, inactive,
		                private_matching ? "mobileNoPrf" : "mobileNoHash", out);
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		goto out;
	}
	veil_http_resp_object(resp, 200,
	                      json_pack("{s:O, s:i}", "identities", out, "checkInterval",
	                                VEIL_DIRSVC_CHECK_INTERVAL));
out:
	json_decref(out);
	json_decref(root);
}

void veil_dc_oprf_eval(struct veil_dircontacts *c, const struct veil_http_req *req,
                       struct veil_http_resp *resp)
{
	struct veil_identity_rec rec;
	json_t *out = NULL, *root = veil_dc_load(req, resp);
	if (root == NULL)
		return;
	json_t *arr = json_object_get(root, "elements");
	size_t n = json_array_size(arr);
	if (!json_is_array(arr) || n == 0 || n > VEIL_OPRF_MAX_BATCH) {
		veil_http_resp_error(resp, 400, "elements must be an array of 1 to 256 elements",
		                     NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(arr, i);
		uint8_t e[VEIL_OPRF_LEN];
		if (!json_is_string(s) || veil_b64_decode(e, sizeof e, json_string_value(s),
		                                          json_string_length(s)) != 0) {
			veil_http_resp_error(
			    resp, 400, "malformed element: expected 32 bytes in base64", NULL);
			goto out;
		}
	}
	if (!veil_dc_auth(c, "identity/oprf_eval", root, resp, NULL, &rec))
		goto out;
	if (veil_dc_limit(c->oprf_rl, rec.id, (uint32_t)n, resp) != 0)
		goto out;
	out = json_array();
	for (size_t i = 0; out != NULL && i < n; i++) {
		json_t *s = json_array_get(arr, i);
		uint8_t e[VEIL_OPRF_LEN], z[VEIL_OPRF_LEN];
		if (veil_b64_decode(e, sizeof e, json_string_value(s), json_string_length(s)) !=
		        0 ||
		    veil_oprf_evaluate(z, c->oprf_key, e) != 0) {
			veil_http_resp_error(resp, 400, "invalid group element", NULL);
			goto out;
		}
		if (json_array_append_new(out, veil_dc_b64(z, sizeof z)) != 0) {
			veil_http_resp_error(resp, 500, "internal error", NULL);
			goto out;
		}
	}
	veil_http_resp_object(resp, 200, json_pack("{s:b, s:O}", "success", 1, "elements", out));
out:
	json_decref(out);
	json_decref(root);
}
