/*
 * Revocation and feature masks.
 *
 *   identity/set_revocation_key (two phases) {identity, revocationKey} -> {success}
 *   identity/check_revocation_key (two phases) {identity}
 *        -> {revocationKeySet: false} | {revocationKeySet: true, lastChanged}
 *   identity/revoke (two phases) {identity}                   -> {success}
 *   identity/ws/revoke {identity, revocationKey}              -> {success[, error]}
 *   identity/set_featuremask (two phases) {identity, featureMask} -> {success}
 *   identity/check_featuremask {identities}                   -> {featureMasks: [int|null]}
 *
 * revocationKey is base64 of the first 4 bytes of SHA-256(password), so it
 * can be guessed in 2^32 tries: ws/revoke is limited per identity
 * (revoke-rate) on top of the per-address limit.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "contacts.h"

static int revkey(json_t *root, uint8_t key[static VEIL_STORE_REVKEY_LEN],
                  struct veil_http_resp *resp)
{
	json_t *v = json_object_get(root, "revocationKey");
	if (!json_is_string(v) || veil_b64_decode(key, VEIL_STORE_REVKEY_LEN, json_string_value(v),
	                                          json_string_length(v)) != 0) {
		veil_http_resp_error(resp, 400, "revocationKey must be 4 bytes in base64", NULL);
		return -1;
	}
	return 0;
}

static void ws_revoke(struct veil_dircontacts *c, json_t *root, struct veil_http_resp *resp)
{
	uint8_t id[VEIL_ID_LEN], key[VEIL_STORE_REVKEY_LEN], want[VEIL_STORE_REVKEY_LEN];
	uint64_t changed = 0;
	struct veil_identity_rec rec;
	if (veil_dc_identity(root, resp, id) != 0 || revkey(root, key, resp) != 0)
		return;
	if (veil_dc_limit(c->revoke_rl, id, 1, resp) != 0)
		return;
	int rc = veil_store_identity_get(c->srv->store, id, &rec);
	if (rc == VEIL_ENOTFOUND) {
		veil_dc_refuse(resp, "identity not found");
		return;
	}
	if (rc == 0 && rec.state == VEIL_IDENTITY_INVALID) {
		veil_dc_refuse(resp, "identity already revoked");
		return;
	}
	if (rc == 0)
		rc = veil_store_revocation_get(c->srv->store, id, want, &changed);
	if (rc == VEIL_ENOTFOUND) {
		veil_dc_refuse(resp, "no revocation key set for this identity");
		return;
	}
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	if (veil_memcmp(key, want, sizeof key) != 0) {
		veil_dc_refuse(resp, "wrong revocation key");
		return;
	}
	if (veil_store_identity_revoke(c->srv->store, id) != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	veil_log(VEIL_LOG_INFO, "directory: an identity was revoked with its revocation key");
	veil_http_resp_object(resp, 200, json_pack("{s:b}", "success", 1));
}

void veil_dc_revocation(struct veil_dircontacts *c, const char *what,
                        const struct veil_http_req *req, struct veil_http_resp *resp)
{
	struct veil_identity_rec rec;
	uint8_t key[VEIL_STORE_REVKEY_LEN];
	uint64_t changed = 0;
	json_t *root = veil_dc_load(req, resp);
	if (root == NULL)
		return;
	if (strcmp(what, "ws") == 0) {
		ws_revoke(c, root, resp);
	} else if (strcmp(what, "set") == 0) {
		if (revkey(root, key, resp) == 0 &&
		    veil_dc_auth(c, "identity/set_revocation_key", root, resp, NULL, &rec)) {
			if (veil_store_revocation_set(c->srv->store, rec.id, key, veil_now_ms()) !=
			    0)
				veil_http_resp_error(resp, 500, "store error", NULL);
			else
				veil_http_resp_object(resp, 200, json_pack("{s:b}", "success", 1));
		}
	} else if (strcmp(what, "check") == 0) {
		if (veil_dc_auth(c, "identity/check_revocation_key", root, resp, NULL, &rec)) {
			int rc = veil_store_revocation_get(c->srv->store, rec.id, key, &changed);
			char date[32];
			time_t t = (time_t)(changed / 1000);
			struct tm tm;
			if (rc == VEIL_ENOTFOUND)
				veil_http_resp_object(resp, 200,
				                      json_pack("{s:b}", "revocationKeySet", 0));
			else if (rc != 0 || gmtime_r(&t, &tm) == NULL ||
			         strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
				veil_http_resp_error(resp, 500, "store error", NULL);
			else
				veil_http_resp_object(resp, 200,
				                      json_pack("{s:b, s:s}", "revocationKeySet", 1,
				                                "lastChanged", date));
		}
	} else if (veil_dc_auth(c, "identity/revoke", root, resp, NULL, &rec)) {
		if (veil_store_identity_revoke(c->srv->store, rec.id) != 0) {
			veil_http_resp_error(resp, 500, "store error", NULL);
		} else {
			veil_log(VEIL_LOG_INFO, "directory: an identity revoked itself");
			veil_http_resp_object(resp, 200, json_pack("{s:b}", "success", 1));
		}
	}
	sodium_memzero(key, sizeof key);
	json_decref(root);
}

void veil_dc_featuremask(struct veil_dircontacts *c, int set, const struct veil_http_req *req,
                         struct veil_http_resp *resp)
{
	if (set) {
		struct veil_identity_rec rec;
		json_t *root = veil_dc_load(req, resp);
		if (root == NULL)
			return;
		json_t *m = json_object_get(root, "featureMask");
		if (!json_is_integer(m) || json_integer_value(m) < 0) {
			veil_http_resp_error(resp, 400,
			                     "featureMask must be a non-negative integer", NULL);
		} else if (veil_dc_auth(c, "identity/set_featuremask", root, resp, NULL, &rec)) {
			if (veil_store_identity_set_features(c->srv->store, rec.id,
			                                     (uint64_t)json_integer_value(m)) != 0)
				veil_http_resp_error(resp, 500, "store error", NULL);
			else
				veil_http_resp_object(resp, 200, json_pack("{s:b}", "success", 1));
		}
		json_decref(root);
		return;
	}
	uint8_t(*ids)[VEIL_ID_LEN] = calloc(VEIL_DIRSVC_MAX_IDS, sizeof *ids);
	int *valid = calloc(VEIL_DIRSVC_MAX_IDS, sizeof *valid);
	json_t *masks = json_array();
	size_t n = 0;
	const char *why = NULL;
	if (ids == NULL || valid == NULL || masks == NULL) {
		veil_http_resp_error(resp, 503, "out of memory", NULL);
		goto out;
	}
	if (veil_dirsvc_parse_ids(req->body, req->body_len, ids, valid, VEIL_DIRSVC_MAX_IDS, &n,
	                          &why) != 0) {
		veil_http_resp_error(resp, 400, why, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct veil_identity_rec rec;
		int found = valid[i] && veil_store_identity_get(c->srv->store, ids[i], &rec) == 0 &&
		            rec.state != VEIL_IDENTITY_INVALID;
		json_int_t v = found && rec.feature_mask <= (uint64_t)INT64_MAX
		                   ? (json_int_t)rec.feature_mask
		                   : 0;
		if (json_array_append_new(masks, found ? json_integer(v) : json_null()) != 0) {
			veil_http_resp_error(resp, 500, "internal error", NULL);
			goto out;
		}
	}
	veil_http_resp_object(resp, 200, json_pack("{s:O}", "featureMasks", masks));
out:
	json_decref(masks);
	free(ids);
	free(valid);
}
