/*
 * Admin commands for invite codes (veilctl invite ...):
 *   invite.create {uses: N (1), expires_days: D (7; 0 = never)}
 *       -> {ok, code, id, uses, expires_ms}; the code is shown only here
 *   invite.list   -> {ok, invites: [{id, uses, used, created_ms, expires_ms, state}]}
 *       state: "active", "used", "expired" or "revoked"
 *   invite.revoke {id} -> {ok}
 */
#include <string.h>

#include <sodium.h>

#include "admin.h"
#include "../directory/directory.h"

#define INVITE_MAX_DAYS 3650
#define INVITE_DEFAULT_DAYS 7
#define DAY_MS (24ull * 3600 * 1000)

json_t *veil_admin_invite_create(const struct veil_admin_ctx *x, json_t *req)
{
	json_int_t uses, days;
	char code[VEIL_INVITE_TEXT_MAX + 1];
	struct veil_invite_rec r;
	if (veil_admin_int_arg(req, "uses", 1, VEIL_STORE_INVITE_MAX_USES, 1, &uses) != 0)
		return veil_admin_error("uses must be a number from 1 to %d",
		                        VEIL_STORE_INVITE_MAX_USES);
	if (veil_admin_int_arg(req, "expires_days", 0, INVITE_MAX_DAYS, INVITE_DEFAULT_DAYS,
	                       &days) != 0)
		return veil_admin_error("expires must be a number of days from 0 (never) to %d",
		                        INVITE_MAX_DAYS);
	memset(&r, 0, sizeof r);
	if (veil_invite_code_new(code, r.hash) != 0)
		return veil_admin_error("cannot make a code");
	r.uses = (uint32_t)uses;
	r.created_ms = veil_now_ms();
	r.expires_ms = days > 0 ? r.created_ms + (uint64_t)days * DAY_MS : 0;
	int rc = veil_store_invite_put(x->srv->store, &r);
	if (rc != 0) {
		sodium_memzero(code, sizeof code);
		return veil_admin_error("cannot store the invite: %s", veil_strerror(rc));
	}
	char handle[VEIL_STORE_INVITE_HANDLE_LEN + 1];
	if (veil_hex_encode(handle, sizeof handle, r.hash, VEIL_STORE_INVITE_HANDLE_LEN / 2) != 0)
		handle[0] = '\0';
	json_t *o = json_pack("{s:b, s:s, s:s, s:I, s:I}", "ok", 1, "code", code, "id", handle,
	                      "uses", (json_int_t)r.uses, "expires_ms", (json_int_t)r.expires_ms);
	sodium_memzero(code, sizeof code);
	veil_log_info("admin: invite %s created (%u uses)", handle, (unsigned)r.uses);
	return o;
}

static const char *state_of(const struct veil_invite_rec *r, uint64_t now)
{
	if (r->revoked)
		return "revoked";
	if (r->used >= r->uses)
		return "used";
	if (r->expires_ms != 0 && r->expires_ms <= now)
		return "expired";
	return "active";
}

json_t *veil_admin_invite_list(const struct veil_admin_ctx *x, json_t *req)
{
	(void)req;
	struct veil_invite_rec *v = NULL;
	size_t n = 0;
	int rc = veil_store_invite_list(x->srv->store, &v, &n);
	if (rc != 0)
		return veil_admin_error("cannot read the invites: %s", veil_strerror(rc));
	uint64_t now = veil_now_ms();
	json_t *arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++) {
		json_t *e = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s}", "id", v[i].handle, "uses",
		                      (json_int_t)v[i].uses, "used", (json_int_t)v[i].used,
		                      "created_ms", (json_int_t)v[i].created_ms, "expires_ms",
		                      (json_int_t)v[i].expires_ms, "state", state_of(&v[i], now));
		if (e == NULL || json_array_append_new(arr, e) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(v);
	if (arr == NULL)
		return NULL;
	return json_pack("{s:b, s:o}", "ok", 1, "invites", arr);
}

json_t *veil_admin_invite_revoke(const struct veil_admin_ctx *x, json_t *req)
{
	json_t *id = json_object_get(req, "id");
	if (!json_is_string(id) || json_string_length(id) != VEIL_STORE_INVITE_HANDLE_LEN)
		return veil_admin_error("id must be an invite ID as invite list shows it");
	char handle[VEIL_STORE_INVITE_HANDLE_LEN + 1];
	/* Handles are lower-case hex; accept what a user types. */
	for (size_t i = 0; i < VEIL_STORE_INVITE_HANDLE_LEN; i++) {
		char c = json_string_value(id)[i];
		handle[i] = c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
	}
	handle[VEIL_STORE_INVITE_HANDLE_LEN] = '\0';
	int rc = veil_store_invite_revoke(x->srv->store, handle);
	if (rc == VEIL_ENOTFOUND)
		return veil_admin_error("no live invite %s", handle);
	if (rc != 0)
		return veil_admin_error("cannot revoke the invite: %s", veil_strerror(rc));
	veil_log_info("admin: invite %s revoked", handle);
	return veil_admin_ok();
}
