/*
 * Admin commands on identities, the queue and the server (veilctl id ...,
 * status, queue):
 *   id.list {after: ID, limit: N (100, at most VEIL_STORE_MAX_LIST)}
 *       -> {ok, identities: [{id, state, created_ms, last_login_ms, queued}],
 *           more: bool}  (state: "active", "blocked" or "revoked")
 *   id.show {id} -> {ok, identity: {id, state, created_ms, last_login_ms,
 *       queued, public_key, feature_mask}}
 *   id.block / id.unblock {id} -> {ok}   blocked: logins refused
 *   id.revoke {id} -> {ok}               as the owner's own revocation
 *   id.delete {id} -> {ok, dropped}      revoked, queue and links removed
 *   status -> {ok, running, data, store: {backend, location, up}, queue: {as
 *       queue.stats}}; veild's loop adds version, pid, uptime_s, listen,
 *       services, connections, logins, messages_in, messages_out, signup
 *   queue.stats -> {ok, messages, bytes, recipients, expired, longest: {id, messages}}
 *
 * A block is the directory's state "inactive" (VEIL_IDENTITY_INACTIVE):
 * lookups still find the key, the chat service refuses the identity's
 * logins, and messages to it wait in its queue until it is unblocked or
 * they expire. Revoked and deleted identities are "invalid" for good.
 */
#include <string.h>

#include "admin.h"
#include "veil/util.h"

#define LIST_DEFAULT 100

static const char *state_name(int state)
{
	switch (state) {
	case VEIL_IDENTITY_ACTIVE: return "active";
	case VEIL_IDENTITY_INACTIVE: return "blocked";
	default: return "revoked";
	}
}

static json_t *info_json(const struct veil_identity_info *e, int full)
{
	char ids[VEIL_ID_LEN + 1];
	veil_id_str(ids, e->rec.id);
	json_t *o =
	    json_pack("{s:s, s:s, s:I, s:I, s:I}", "id", ids, "state", state_name(e->rec.state),
	              "created_ms", (json_int_t)e->rec.created_ms, "last_login_ms",
	              (json_int_t)e->last_login_ms, "queued", (json_int_t)e->queued);
	if (o != NULL && full) {
		char pk[VEIL_HEX_LEN(VEIL_KEY_LEN)];
		if (veil_hex_encode(pk, sizeof pk, e->rec.pk, VEIL_KEY_LEN) != 0)
			pk[0] = '\0';
		if (json_object_set_new(o, "public_key", json_string(pk)) != 0 ||
		    json_object_set_new(o, "feature_mask",
		                        json_integer((json_int_t)e->rec.feature_mask)) != 0) {
			json_decref(o);
			o = NULL;
		}
	}
	return o;
}

json_t *veil_admin_id_list(const struct veil_admin_ctx *x, json_t *req)
{
	json_int_t limit;
	uint8_t after[VEIL_ID_LEN];
	int has_after = json_object_get(req, "after") != NULL;
	if (veil_admin_int_arg(req, "limit", 1, VEIL_STORE_MAX_LIST, LIST_DEFAULT, &limit) != 0)
		return veil_admin_error("limit must be a number from 1 to %d", VEIL_STORE_MAX_LIST);
	if (has_after) {
		json_t *a = json_pack("{s:O}", "id", json_object_get(req, "after"));
		int bad = a == NULL || veil_admin_id_arg(a, after) != 0;
		json_decref(a);
		if (bad)
			return veil_admin_error("after must be an ID");
	}
	struct veil_identity_info *v = NULL;
	size_t n = 0;
	/* One more than asked, to say whether there are more. */
	int rc = veil_store_identity_list(x->srv->store, NULL, has_after ? after : NULL,
	                                  (size_t)limit + 1, &v, &n);
	if (rc != 0)
		return veil_admin_error("cannot read the identities: %s", veil_strerror(rc));
	int more = n > (size_t)limit;
	if (more)
		n = (size_t)limit;
	json_t *arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++) {
		json_t *e = info_json(&v[i], 0);
		if (e == NULL || json_array_append_new(arr, e) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(v);
	if (arr == NULL)
		return NULL;
	return json_pack("{s:b, s:o, s:b}", "ok", 1, "identities", arr, "more", more);
}

/* Looks up the identity of argument "id": 0 with *e, or an error answer in *err. */
static int one_identity(const struct veil_admin_ctx *x, json_t *req, struct veil_identity_info *e,
                        json_t **err)
{
	uint8_t id[VEIL_ID_LEN];
	struct veil_identity_info *v = NULL;
	size_t n = 0;
	*err = NULL;
	if (veil_admin_id_arg(req, id) != 0) {
		*err =
		    veil_admin_error("id must be an identity (8 characters of A-Z, 0-9, or '*')");
		return -1;
	}
	int rc = veil_store_identity_list(x->srv->store, id, NULL, 1, &v, &n);
	if (rc == VEIL_ENOTFOUND || (rc == 0 && n == 0)) {
		char ids[VEIL_ID_LEN + 1];
		veil_id_str(ids, id);
		*err = veil_admin_error("no identity %s", ids);
		free(v);
		return -1;
	}
	if (rc != 0) {
		*err = veil_admin_error("cannot read the identity: %s", veil_strerror(rc));
		return -1;
	}
	*e = v[0];
	free(v);
	return 0;
}

json_t *veil_admin_id_show(const struct veil_admin_ctx *x, json_t *req)
{
	struct veil_identity_info e;
	json_t *err;
	if (one_identity(x, req, &e, &err) != 0)
		return err;
	json_t *o = info_json(&e, 1);
	return o != NULL ? json_pack("{s:b, s:o}", "ok", 1, "identity", o) : NULL;
}

/* The answer to a command that shut id out: ok, and the loop closes its sessions. */
static json_t *ok_kick(const uint8_t id[static VEIL_ID_LEN], const char *what)
{
	char ids[VEIL_ID_LEN + 1];
	veil_id_str(ids, id);
	veil_log_info("admin: identity %s %s", ids, what);
	return json_pack("{s:b, s:s}", "ok", 1, "_kick", ids);
}

static json_t *set_state(const struct veil_admin_ctx *x, json_t *req, int from, int to,
                         const char *what)
{
	struct veil_identity_info e;
	json_t *err;
	char ids[VEIL_ID_LEN + 1];
	if (one_identity(x, req, &e, &err) != 0)
		return err;
	veil_id_str(ids, e.rec.id);
	if (e.rec.state == to)
		return veil_admin_error("%s is already %s", ids, state_name(to));
	if (e.rec.state != from)
		return veil_admin_error("%s is %s", ids, state_name(e.rec.state));
	int rc = veil_store_identity_set_state(x->srv->store, e.rec.id, to);
	if (rc != 0)
		return veil_admin_error("cannot change %s: %s", ids, veil_strerror(rc));
	if (to == VEIL_IDENTITY_ACTIVE) {
		veil_log_info("admin: identity %s %s", ids, what);
		return veil_admin_ok();
	}
	return ok_kick(e.rec.id, what);
}

json_t *veil_admin_id_block(const struct veil_admin_ctx *x, json_t *req)
{
	return set_state(x, req, VEIL_IDENTITY_ACTIVE, VEIL_IDENTITY_INACTIVE, "blocked");
}

json_t *veil_admin_id_unblock(const struct veil_admin_ctx *x, json_t *req)
{
	return set_state(x, req, VEIL_IDENTITY_INACTIVE, VEIL_IDENTITY_ACTIVE, "unblocked");
}

json_t *veil_admin_id_revoke(const struct veil_admin_ctx *x, json_t *req)
{
	struct veil_identity_info e;
	json_t *err;
	if (one_identity(x, req, &e, &err) != 0)
		return err;
	int rc = veil_store_identity_revoke(x->srv->store, e.rec.id);
	if (rc != 0)
		return veil_admin_error("cannot revoke: %s", veil_strerror(rc));
	return ok_kick(e.rec.id, "revoked");
}

json_t *veil_admin_id_delete(const struct veil_admin_ctx *x, json_t *req)
{
	struct veil_identity_info e;
	json_t *err;
	uint64_t dropped = 0;
	if (one_identity(x, req, &e, &err) != 0)
		return err;
	int rc = veil_store_identity_delete(x->srv->store, e.rec.id, &dropped);
	if (rc != 0)
		return veil_admin_error("cannot delete: %s", veil_strerror(rc));
	json_t *o = ok_kick(e.rec.id, "deleted (queue, links and push token removed)");
	if (o != NULL &&
	    json_object_set_new(o, "dropped", json_integer((json_int_t)dropped)) != 0) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

static json_t *queue_json(const struct veil_queue_stats *q)
{
	char ids[VEIL_ID_LEN + 1] = "";
	if (q->max_queue > 0)
		veil_id_str(ids, q->max_id);
	return json_pack("{s:I, s:I, s:I, s:I, s:{s:s, s:I}}", "messages", (json_int_t)q->messages,
	                 "bytes", (json_int_t)q->bytes, "recipients", (json_int_t)q->recipients,
	                 "expired", (json_int_t)q->expired, "longest", "id", ids, "messages",
	                 (json_int_t)q->max_queue);
}

json_t *veil_admin_queue_stats(const struct veil_admin_ctx *x, json_t *req)
{
	(void)req;
	struct veil_queue_stats q;
	int rc = veil_store_queue_stats(x->srv->store, &q);
	if (rc != 0)
		return veil_admin_error("cannot read the queue: %s", veil_strerror(rc));
	json_t *o = queue_json(&q);
	if (o == NULL || json_object_set_new(o, "ok", json_true()) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *veil_admin_status(const struct veil_admin_ctx *x, json_t *req)
{
	(void)req;
	const struct veil_config *cfg = &x->srv->cfg;
	struct veil_queue_stats q;
	char shown[1100];
	int rc = veil_store_ping(x->srv->store);
	if (rc == 0)
		rc = veil_store_queue_stats(x->srv->store, &q);
	char db[1100];
	snprintf(db, sizeof db, "%s/veil.db", cfg->data_dir);
	veil_store_describe(cfg->store[0] ? cfg->store : db, shown, sizeof shown);
	json_t *store = json_pack("{s:s, s:s, s:b}", "backend", veil_store_backend(x->srv->store),
	                          "location", shown, "up", rc == 0);
	json_t *qj = rc == 0 ? queue_json(&q) : json_null();
	json_t *o = json_pack("{s:b, s:b, s:s, s:o, s:o}", "ok", 1, "running", x->running, "data",
	                      cfg->data_dir, "store", store, "queue", qj);
	if (o == NULL)
		return NULL;
	if (rc != 0)
		json_object_set_new(o, "store_error", json_string(veil_strerror(rc)));
	return o;
}
