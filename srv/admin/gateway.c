/*
 * Admin commands on Gateway API identities (veilctl gateway ...):
 *   gateway.create {id?: "*NAME", public_key?: hex, callback?: URL, credits?: N}
 *       -> {ok, id, secret}   the API secret is shown only here
 *   gateway.list -> {ok, accounts: [{id, modes, credits, callback, callback_failures,
 *       last_error, last_error_ms}]}
 *   gateway.callback {id, url?} -> {ok, callback}   "" removes it
 *   gateway.credits {id, add?} -> {ok, credits}
 * The accounts live in DATA/gateway.db (srv/gateway/gwdb.h), which the
 * running Gateway reads at every request, so a change is seen at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "admin.h"
#include "gateway/gwdb.h"

#define CREATE_ATTEMPTS 16
#define GW_MAX_LIST 100000

static int gw_id(json_t *req, uint8_t id[static VEIL_ID_LEN])
{
	json_t *v = json_object_get(req, "id");
	if (!json_is_string(v) || json_string_length(v) != VEIL_ID_LEN ||
	    json_string_value(v)[0] != '*' || veil_id_parse(id, json_string_value(v)) != 0)
		return -1;
	return 0;
}

static int url_ok(const char *u)
{
	return strlen(u) <= VEIL_GW_URL_MAX &&
	       (u[0] == '\0' || strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0);
}

json_t *veil_admin_gw_create(const struct veil_admin_ctx *x, json_t *req)
{
	struct veil_gw_account acc;
	struct veil_identity_rec rec;
	uint8_t pk[VEIL_KEY_LEN];
	json_int_t credits;
	json_t *pkj = json_object_get(req, "public_key"), *cb = json_object_get(req, "callback");
	int want_id = json_object_get(req, "id") != NULL;
	memset(&acc, 0, sizeof acc);
	if (veil_admin_int_arg(req, "credits", 0, INT64_MAX / 2, VEIL_GW_DEFAULT_CREDITS,
	                       &credits) != 0)
		return veil_admin_error("credits must be a number of at least 0");
	if (cb != NULL && (!json_is_string(cb) || !url_ok(json_string_value(cb))))
		return veil_admin_error("the callback must be an http:// or https:// URL");
	if (want_id && gw_id(req, acc.id) != 0)
		return veil_admin_error("the ID must be '*' and 7 characters of A-Z, 0-9");
	acc.modes = VEIL_GW_MODE_E2E;
	if (pkj != NULL) {
		if (!json_is_string(pkj) || json_string_length(pkj) != 2 * VEIL_KEY_LEN ||
		    veil_hex_decode(pk, VEIL_KEY_LEN, json_string_value(pkj), 2 * VEIL_KEY_LEN) !=
		        0)
			return veil_admin_error("public_key needs 64 hex digits");
	} else {
		crypto_box_keypair(pk, acc.sk);
		acc.has_sk = 1;
		acc.modes |= VEIL_GW_MODE_BASIC;
	}
	acc.credits = credits;
	snprintf(acc.callback, sizeof acc.callback, "%s", cb != NULL ? json_string_value(cb) : "");
	veil_gw_secret_new(acc.secret);
	int rc = VEIL_EEXIST;
	for (int i = 0; i < (want_id ? 1 : CREATE_ATTEMPTS) && rc == VEIL_EEXIST; i++) {
		if (!want_id) {
			static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
			acc.id[0] = '*';
			for (int k = 1; k < VEIL_ID_LEN; k++)
				acc.id[k] = (uint8_t)chars[randombytes_uniform(sizeof chars - 1)];
		}
		rc = veil_store_identity_create_id(x->srv->store, acc.id, pk, &rec);
	}
	char ids[VEIL_ID_LEN + 1];
	veil_id_str(ids, acc.id);
	if (rc == VEIL_EEXIST) {
		sodium_memzero(&acc, sizeof acc);
		return want_id ? veil_admin_error("%s is taken, or the key already has an identity",
		                                  ids)
		               : veil_admin_error("no free ID found (%s last tried)", ids);
	}
	if (rc == 0)
		rc = veil_gwdb_add(x->gw, &acc);
	if (rc != 0) {
		sodium_memzero(&acc, sizeof acc);
		return veil_admin_error("cannot create %s: %s", ids, veil_strerror(rc));
	}
	json_t *o = json_pack("{s:b, s:s, s:s}", "ok", 1, "id", ids, "secret", acc.secret);
	sodium_memzero(&acc, sizeof acc);
	veil_log_info("admin: Gateway identity %s created", ids);
	return o;
}

static json_t *account_json(const struct veil_gw_account *a)
{
	char ids[VEIL_ID_LEN + 1], when[32];
	veil_id_str(ids, a->id);
	veil_admin_date(when, a->cb_error_ms);
	return json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:I}", "id", ids, "modes",
	                 (a->modes & VEIL_GW_MODE_BASIC) ? "basic+e2e" : "e2e", "credits",
	                 (json_int_t)a->credits, "callback", a->callback, "callback_failures",
	                 (json_int_t)a->cb_failures, "last_error", a->cb_error, "last_error_ms",
	                 (json_int_t)a->cb_error_ms);
}

json_t *veil_admin_gw_list(const struct veil_admin_ctx *x, json_t *req)
{
	(void)req;
	uint8_t(*ids)[VEIL_ID_LEN] = calloc(GW_MAX_LIST, VEIL_ID_LEN);
	size_t n = 0;
	if (ids == NULL)
		return NULL;
	if (veil_gwdb_list(x->gw, ids, GW_MAX_LIST, &n) != 0) {
		free(ids);
		return veil_admin_error("cannot read the Gateway accounts");
	}
	json_t *arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++) {
		struct veil_gw_account acc;
		if (veil_gwdb_get(x->gw, ids[i], 0, &acc) != 0)
			continue;
		json_t *e = account_json(&acc);
		sodium_memzero(&acc, sizeof acc);
		if (e == NULL || json_array_append_new(arr, e) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(ids);
	return arr != NULL ? json_pack("{s:b, s:o}", "ok", 1, "accounts", arr) : NULL;
}

json_t *veil_admin_gw_callback(const struct veil_admin_ctx *x, json_t *req)
{
	uint8_t id[VEIL_ID_LEN];
	struct veil_gw_account acc;
	json_t *url = json_object_get(req, "url");
	if (gw_id(req, id) != 0)
		return veil_admin_error("id must be a Gateway ID ('*' and 7 characters)");
	if (url != NULL) {
		if (!json_is_string(url) || !url_ok(json_string_value(url)))
			return veil_admin_error("the callback must be an http:// or https:// URL");
		if (veil_gwdb_set_callback(x->gw, id, json_string_value(url)) != 0)
			return veil_admin_error("no Gateway identity %.8s", (const char *)id);
	}
	if (veil_gwdb_get(x->gw, id, 0, &acc) != 0)
		return veil_admin_error("no Gateway identity %.8s", (const char *)id);
	json_t *o = json_pack("{s:b, s:s}", "ok", 1, "callback", acc.callback);
	sodium_memzero(&acc, sizeof acc);
	return o;
}

json_t *veil_admin_gw_credits(const struct veil_admin_ctx *x, json_t *req)
{
	uint8_t id[VEIL_ID_LEN];
	struct veil_gw_account acc;
	json_int_t add;
	if (gw_id(req, id) != 0)
		return veil_admin_error("id must be a Gateway ID ('*' and 7 characters)");
	if (veil_admin_int_arg(req, "add", -INT64_MAX / 2, INT64_MAX / 2, 0, &add) != 0)
		return veil_admin_error("add must be a number");
	if (add != 0 && veil_gwdb_add_credits(x->gw, id, add) != 0)
		return veil_admin_error("no Gateway identity %.8s", (const char *)id);
	if (veil_gwdb_get(x->gw, id, 0, &acc) != 0)
		return veil_admin_error("no Gateway identity %.8s", (const char *)id);
	json_t *o = json_pack("{s:b, s:I}", "ok", 1, "credits", (json_int_t)acc.credits);
	sodium_memzero(&acc, sizeof acc);
	return o;
}
