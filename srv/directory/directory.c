/*
 * The directory service's HTTP handlers. Routes under /directory/:
 *   POST identity/create      two-phase identity creation
 *   GET  identity/<ID>        public key, state, type, feature mask; 404 if unknown
 *   POST identity/fetch_bulk  {identities} -> {identities: [known ones]}
 *   POST identity/check       {identities} -> {states, types, featureMasks, checkInterval}
 * Errors use the specification's form {success:false, error, errorType?}:
 * malformed requests get 400, unknown identities 404, too many requests
 * from one address 429; a failed challenge is a 200 with success false and
 * errorType "invalid-token", as the specification's clients expect.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "directory.h"
#include "../config.h"
#include "contacts.h"
#include "metrics/metrics.h"

struct veil_dirsvc {
	struct veil_server *srv;
	struct veil_buf oppf; /* the signed provisioning document, built once */
	/* Linking, matching and revocation (contacts.c). */
	struct veil_dircontacts *contacts;
};

static const char *ep_create = "identity/create";

static json_t *b64_string(const uint8_t *p, size_t n)
{
	char s[VEIL_B64_LEN(VEIL_DIRSVC_MAX_TOKEN)];
	if (n > VEIL_DIRSVC_MAX_TOKEN || veil_b64_encode(s, sizeof s, p, n) != 0)
		return NULL;
	return json_string(s);
}

static json_t *id_string(const uint8_t id[static VEIL_ID_LEN])
{
	return json_stringn((const char *)id, VEIL_ID_LEN);
}

static json_int_t mask_value(uint64_t m)
{
	return m > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)m;
}

static json_t *identity_object(const struct veil_identity_rec *rec)
{
	return json_pack("{s:o, s:o, s:I, s:i, s:i}", "identity", id_string(rec->id), "publicKey",
	                 b64_string(rec->pk, VEIL_KEY_LEN), "featureMask",
	                 mask_value(rec->feature_mask), "state", rec->state, "type",
	                 VEIL_DIRSVC_TYPE_DEFAULT);
}

static void handle_create(struct veil_dirsvc *d, const struct veil_http_req *req,
                          struct veil_http_resp *resp)
{
	struct veil_dirsvc_create_req cr;
	const char *why = NULL;
	if (veil_dirsvc_parse_create(req->body, req->body_len, &cr, &why) != 0) {
		veil_http_resp_error(resp, 400, why, NULL);
		return;
	}
	/* A key without a usable shared secret (low order) can never answer. */
	uint8_t ss[VEIL_KEY_LEN];
	int rc = veil_shared_key(ss, d->srv->keys.dir_sk, cr.pk);
	sodium_memzero(ss, sizeof ss);
	if (rc != 0) {
		veil_http_resp_error(resp, 400, "invalid public key", NULL);
		return;
	}
	const struct veil_server_keys *keys = &d->srv->keys;
	uint64_t now = veil_now_ms();
	/* Sign-up control, before the challenge: a refused client learns why at once. */
	int signup = veil_config_signup(&d->srv->cfg);
	uint8_t inv_hash[32];
	if (signup == VEIL_SIGNUP_CLOSED) {
		veil_refusal_from(VEIL_METRIC_REFUSE_SIGNUP, "sign-ups (signup = closed)",
		                  req->client);
		veil_http_resp_error(resp, 200, "sign-up is closed on this server",
		                     "signup-closed");
		return;
	}
	if (signup == VEIL_SIGNUP_INVITE && cr.invite[0] == '\0') {
		veil_refusal_from(VEIL_METRIC_REFUSE_SIGNUP, "sign-ups without an invite code",
		                  req->client);
		veil_http_resp_error(resp, 200,
		                     "this server needs an invite code to join (veil init --invite "
		                     "CODE); ask its operator for one",
		                     "invite-required");
		return;
	}
	if (signup == VEIL_SIGNUP_INVITE && veil_invite_hash(cr.invite, inv_hash) != 0) {
		veil_http_resp_error(resp, 200, "that is not an invite code", "invite-invalid");
		return;
	}
	if (!cr.has_token) {
		uint8_t tok[VEIL_DIRSVC_TOKEN_LEN];
		if (veil_dirsvc_token_issue(keys, ep_create, cr.pk, now, tok) != 0) {
			veil_http_resp_error(resp, 500, "internal error", NULL);
			return;
		}
		veil_http_resp_object(resp, 200,
		                      json_pack("{s:o, s:o}", "token", b64_string(tok, sizeof tok),
		                                "tokenRespKeyPub",
		                                b64_string(keys->dir_pk, VEIL_KEY_LEN)));
		return;
	}

	uint64_t expires = 0;
	rc = veil_dirsvc_token_check(keys, ep_create, cr.pk, cr.token, cr.token_len, now, &expires);
	if (rc == VEIL_ETIMEOUT) {
		veil_http_resp_error(resp, 200, "token expired", "invalid-token");
		return;
	}
	if (rc != 0) {
		veil_http_resp_error(resp, 200, "invalid token", "invalid-token");
		return;
	}
	if (veil_dirsvc_response_check(keys, cr.pk, cr.token, cr.token_len, cr.response) != 0) {
		veil_http_resp_error(resp, 200, "invalid token response", "invalid-token");
		return;
	}
	rc = veil_store_token_use(d->srv->store, cr.token, cr.token_len, expires);
	if (rc == VEIL_EREPLAY) {
		veil_http_resp_error(resp, 200, "token already used", "invalid-token");
		return;
	}
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	if (signup == VEIL_SIGNUP_INVITE) {
		rc = veil_store_invite_use(d->srv->store, inv_hash, now);
		if (rc != 0)
			veil_refusal(VEIL_METRIC_REFUSE_SIGNUP,
			             "sign-ups with an unknown, expired or used-up invite code");
		if (rc != 0) {
			if (rc == VEIL_ENOTFOUND)
				veil_http_resp_error(resp, 200, "unknown or revoked invite code",
				                     "invite-invalid");
			else if (rc == VEIL_ETIMEOUT)
				veil_http_resp_error(resp, 200, "this invite code has expired",
				                     "invite-expired");
			else if (rc == VEIL_ELIMIT)
				veil_http_resp_error(resp, 200, "this invite code has been used up",
				                     "invite-used");
			else
				veil_http_resp_error(resp, 500, "store error", NULL);
			return;
		}
	}
	struct veil_identity_rec rec;
	rc = veil_store_identity_create(d->srv->store, cr.pk, &rec);
	/* No new identity (a known key, or a store error): the invite's use goes back. */
	if (rc != 0 && signup == VEIL_SIGNUP_INVITE &&
	    veil_store_invite_unuse(d->srv->store, inv_hash) != 0)
		veil_log_warn("directory: cannot give an invite's use back");
	if (rc == 0) {
		char ids[VEIL_ID_LEN + 1], inv[VEIL_STORE_INVITE_HANDLE_LEN + 1] = "";
		veil_id_str(ids, rec.id);
		if (signup == VEIL_SIGNUP_INVITE &&
		    veil_hex_encode(inv, sizeof inv, inv_hash, VEIL_STORE_INVITE_HANDLE_LEN / 2) !=
		        0)
			inv[0] = '\0';
		veil_metric_inc(VEIL_METRIC_SIGNUPS);
		char from[64];
		veil_client_for_log(req->client, from);
		veil_log_info("directory: sign-up of %s (%s%s%s)%s", ids, veil_signup_name(signup),
		              inv[0] ? ", invite " : "", inv, from);
	}
	if (rc != 0 && rc != VEIL_EEXIST) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	/* The same key asking again gets its identity back, unless it was revoked. */
	if (rc == VEIL_EEXIST && rec.state == VEIL_IDENTITY_INVALID) {
		veil_http_resp_error(resp, 200, "public key belongs to a revoked identity", NULL);
		return;
	}
	veil_http_resp_object(resp, 200,
	                      json_pack("{s:b, s:o, s:s}", "success", 1, "identity",
	                                id_string(rec.id), "serverGroup",
	                                VEIL_DIRSVC_SERVER_GROUP));
}

static void handle_get(struct veil_dirsvc *d, const char *idstr, struct veil_http_resp *resp)
{
	uint8_t id[VEIL_ID_LEN];
	if (veil_id_parse(id, idstr) != 0) {
		veil_http_resp_error(resp, 400, "invalid identity", "invalid-identity");
		return;
	}
	struct veil_identity_rec rec;
	int rc = veil_store_identity_get(d->srv->store, id, &rec);
	if (rc == VEIL_ENOTFOUND) {
		veil_http_resp_error(resp, 404, "identity not found", NULL);
		return;
	}
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	veil_http_resp_object(resp, 200, identity_object(&rec));
}

/* Parses the identities of a bulk request into heap arrays the caller frees. */
static int parse_bulk(const struct veil_http_req *req, struct veil_http_resp *resp,
                      uint8_t (**ids)[VEIL_ID_LEN], int **valid, size_t *n)
{
	*ids = calloc(VEIL_DIRSVC_MAX_IDS, sizeof **ids);
	*valid = calloc(VEIL_DIRSVC_MAX_IDS, sizeof **valid);
	if (*ids == NULL || *valid == NULL) {
		veil_http_resp_error(resp, 503, "out of memory", NULL);
		return VEIL_ENOMEM;
	}
	const char *why = NULL;
	int rc = veil_dirsvc_parse_ids(req->body, req->body_len, *ids, *valid, VEIL_DIRSVC_MAX_IDS,
	                               n, &why);
	if (rc != 0)
		veil_http_resp_error(resp, 400, why, NULL);
	return rc;
}

static void handle_fetch_bulk(struct veil_dirsvc *d, const struct veil_http_req *req,
                              struct veil_http_resp *resp)
{
	uint8_t(*ids)[VEIL_ID_LEN] = NULL;
	int *valid = NULL;
	size_t n = 0;
	json_t *arr = NULL;
	if (parse_bulk(req, resp, &ids, &valid, &n) != 0)
		goto out;
	arr = json_array();
	if (arr == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct veil_identity_rec rec;
		if (!valid[i])
			continue;
		int rc = veil_store_identity_get(d->srv->store, ids[i], &rec);
		if (rc == VEIL_ENOTFOUND)
			continue;
		if (rc != 0) {
			veil_http_resp_error(resp, 500, "store error", NULL);
			goto out;
		}
		if (json_array_append_new(arr, identity_object(&rec)) != 0)
			goto fail;
	}
	veil_http_resp_object(resp, 200, json_pack("{s:O}", "identities", arr));
	goto out;
fail:
	veil_http_resp_error(resp, 500, "internal error", NULL);
out:
	json_decref(arr);
	free(ids);
	free(valid);
}

static void handle_check(struct veil_dirsvc *d, const struct veil_http_req *req,
                         struct veil_http_resp *resp)
{
	uint8_t(*ids)[VEIL_ID_LEN] = NULL;
	int *valid = NULL;
	size_t n = 0;
	json_t *states = NULL, *types = NULL, *masks = NULL;
	if (parse_bulk(req, resp, &ids, &valid, &n) != 0)
		goto out;
	states = json_array();
	types = json_array();
	masks = json_array();
	if (states == NULL || types == NULL || masks == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct veil_identity_rec rec;
		int rc = valid[i] ? veil_store_identity_get(d->srv->store, ids[i], &rec)
		                  : VEIL_ENOTFOUND;
		if (rc != 0 && rc != VEIL_ENOTFOUND) {
			veil_http_resp_error(resp, 500, "store error", NULL);
			goto out;
		}
		/* Unknown identities are reported as invalid, with no feature mask. */
		int found = rc == 0;
		if (json_array_append_new(
		        states, json_integer(found ? rec.state : VEIL_IDENTITY_INVALID)) ||
		    json_array_append_new(types, json_integer(VEIL_DIRSVC_TYPE_DEFAULT)) ||
		    json_array_append_new(masks, found ? json_integer(mask_value(rec.feature_mask))
		                                       : json_null()))
			goto fail;
	}
	veil_http_resp_object(resp, 200,
	                      json_pack("{s:O, s:O, s:O, s:i}", "states", states, "types", types,
	                                "featureMasks", masks, "checkInterval",
	                                VEIL_DIRSVC_CHECK_INTERVAL));
	goto out;
fail:
	veil_http_resp_error(resp, 500, "internal error", NULL);
out:
	json_decref(states);
	json_decref(types);
	json_decref(masks);
	free(ids);
	free(valid);
}

static void dir_handler(void *arg, const struct veil_http_req *req, struct veil_http_resp *resp)
{
	struct veil_dirsvc *d = arg;
	int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
	const char *p = req->path;
	if (strcmp(p, "identity/create") == 0 || strcmp(p, "identity/fetch_bulk") == 0 ||
	    strcmp(p, "identity/check") == 0) {
		if (!post) {
			veil_http_resp_error(resp, 405, "method not allowed", NULL);
			return;
		}
		if (strcmp(p, "identity/create") == 0)
			handle_create(d, req, resp);
		else if (strcmp(p, "identity/fetch_bulk") == 0)
			handle_fetch_bulk(d, req, resp);
		else
			handle_check(d, req, resp);
		return;
	}
	if (veil_dircontacts_handle(d->contacts, req, resp))
		return;
	if (strncmp(p, "identity/", 9) == 0 && strchr(p + 9, '/') == NULL && p[9] != '\0') {
		if (!get) {
			veil_http_resp_error(resp, 405, "method not allowed", NULL);
			return;
		}
		handle_get(d, p + 9, resp);
		return;
	}
	veil_http_resp_error(resp, 404, "not found", NULL);
}

static void oppf_handler(void *arg, const struct veil_http_req *req, struct veil_http_resp *resp)
{
	struct veil_dirsvc *d = arg;
	if (req->path[0] != '\0') {
		veil_http_resp_error(resp, 404, "not found", NULL);
		return;
	}
	resp->status = 200;
	resp->content_type = "text/plain; charset=utf-8";
	if (veil_buf_append(&resp->body, d->oppf.p, d->oppf.len) != 0)
		veil_http_resp_error(resp, 500, "internal error", NULL);
}

static void dirsvc_free(void *arg)
{
	struct veil_dirsvc *d = arg;
	if (d == NULL)
		return;
	veil_dircontacts_free(d->contacts);
	veil_buf_release(&d->oppf);
	free(d);
}

int veil_dirsvc_register(struct veil_http *h, struct veil_server *srv)
{
	struct veil_dirsvc *d = calloc(1, sizeof *d);
	if (d == NULL)
		return VEIL_ENOMEM;
	d->srv = srv;
	veil_buf_init(&d->oppf, 64 * 1024);
	/*
	 * dir-rate per client address, enforced by the listener for every path
	 * under /directory/ (the blob service's identity/blob_cred included, so
	 * it is no second way to ask whether an ID exists), and as much again,
	 * in a bucket of its own, for the provisioning document: a client that
	 * used up the directory's can still fetch it.
	 */
	int rc = veil_http_limit(h, "/directory/", srv->cfg.dir_rate_per_min);
	if (rc == 0)
		rc = veil_http_limit(h, VEIL_DIRSVC_PROVISIONING_PATH, srv->cfg.dir_rate_per_min);
	if (rc != 0)
		goto out;
	rc = veil_dirsvc_provisioning_build(srv, veil_http_port(h), &d->oppf);
	if (rc != 0)
		goto out;
	rc = veil_dircontacts_new(&d->contacts, srv);
	if (rc != 0)
		goto out;
	rc = veil_http_on_stop(h, dirsvc_free, d);
	if (rc != 0)
		goto out;
	/* From here on veil_http_stop owns d. */
	rc = veil_http_route(h, NULL, "/directory/", dir_handler, d);
	if (rc == 0)
		rc = veil_http_route(h, "GET", VEIL_DIRSVC_PROVISIONING_PATH, oppf_handler, d);
	return rc;
out:
	dirsvc_free(d);
	return rc;
}
