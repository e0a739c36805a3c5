/* The Gateway's HTTP routes; see gateway.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gw_int.h"
#include "veil/e2e.h"
#include "../blob/blob.h"
#include "metrics/metrics.h"

static const char *text_plain = "text/plain; charset=utf-8";

static void answer(struct veil_http_resp *resp, int status, const char *text)
{
	resp->status = status;
	resp->content_type = text_plain;
	veil_buf_reset(&resp->body);
	if (veil_buf_append(&resp->body, text, strlen(text)) != 0)
		resp->status = 500;
}

/* The request's parameters: the form body of a POST, else the query. */
struct params {
	const char *p;
	size_t len;
	int decode;
};

static int param(const struct params *ps, const char *name, char *out, size_t cap, size_t *n)
{
	return veil_gw_form_get(ps->p, ps->len, name, ps->decode, out, cap, n);
}

/*
 * Checks from and secret: 0 with the account in a, else the status to
 * answer (401). An unknown ID costs a hash too, so that timing does not tell
 * which IDs exist.
 */
static int authenticate(struct veil_gateway *gw, const struct params *ps, struct veil_gw_account *a)
{
	char from[VEIL_ID_LEN + 2], secret[VEIL_GW_SECRET_MAX + 1];
	size_t fl = 0, sl = 0;
	uint8_t id[VEIL_ID_LEN];
	int rc = 401;
	if (param(ps, "from", from, sizeof from, &fl) != 0 || fl != VEIL_ID_LEN ||
	    veil_id_parse(id, from) != 0 || id[0] != '*')
		memset(id, 0, sizeof id);
	if (param(ps, "secret", secret, sizeof secret, &sl) != 0)
		sl = 0;
	int found = id[0] == '*' && veil_gwdb_get(gw->db, id, 0, a) == 0;
	if (!found) {
		struct veil_gw_account dummy = {0};
		(void)veil_gwdb_check_secret(&dummy, secret, sl);
	} else if (sl > 0 && veil_gwdb_check_secret(a, secret, sl) == 0) {
		rc = 0;
	}
	sodium_memzero(secret, sizeof secret);
	return rc;
}

/* An identity known to the directory and not revoked: 0 and its record, or VEIL_ENOTFOUND. */
static int identity_live(struct veil_gateway *gw, const uint8_t id[static VEIL_ID_LEN],
                         struct veil_identity_rec *rec)
{
	uint64_t h, now = veil_mono_ms();
	crypto_shorthash((uint8_t *)&h, id, VEIL_ID_LEN, gw->ids_key);
	struct gw_id_cache_entry *e = &gw->ids[h % VEIL_GW_ID_CACHE_SLOTS];
	if (e->until_ms > now && memcmp(e->id, id, VEIL_ID_LEN) == 0) {
		memset(rec, 0, sizeof *rec);
		memcpy(rec->id, id, VEIL_ID_LEN);
		memcpy(rec->pk, e->pk, VEIL_KEY_LEN);
		return 0;
	}
	int rc = veil_store_identity_get(gw->srv->store, id, rec);
	if (rc == 0 && rec->state == VEIL_IDENTITY_INVALID)
		rc = VEIL_ENOTFOUND;
	if (rc == 0) {
		memcpy(e->id, id, VEIL_ID_LEN);
		memcpy(e->pk, rec->pk, VEIL_KEY_LEN);
		e->until_ms = now + VEIL_GW_ID_CACHE_MS;
	}
	return rc;
}

static void get_pubkey(struct veil_gateway *gw, const char *arg, struct veil_http_resp *resp)
{
	uint8_t id[VEIL_ID_LEN];
	struct veil_identity_rec rec;
	char hex[VEIL_HEX_LEN(VEIL_KEY_LEN)];
	if (strlen(arg) != VEIL_ID_LEN || veil_id_parse(id, arg) != 0 ||
	    identity_live(gw, id, &rec) != 0) {
		answer(resp, 404, "");
		return;
	}
	if (veil_hex_encode(hex, sizeof hex, rec.pk, VEIL_KEY_LEN) != 0) {
		answer(resp, 500, "");
		return;
	}
	answer(resp, 200, hex);
}

static void get_capabilities(struct veil_gateway *gw, const char *arg, struct veil_http_resp *resp)
{
	uint8_t id[VEIL_ID_LEN];
	struct veil_identity_rec rec;
	if (strlen(arg) != VEIL_ID_LEN || veil_id_parse(id, arg) != 0 ||
	    identity_live(gw, id, &rec) != 0) {
		answer(resp, 404, "");
		return;
	}
	/* Every Veil client reads these message types. */
	answer(resp, 200, "text,image,video,audio,file");
}

/*
 * Resolves a phone number, e-mail address or one of their hashes (kind,
 * hashed) to the first identity linked with it: 0, or the status to answer.
 */
static int resolve(struct veil_gateway *gw, int kind, int hashed, const char *v,
                   uint8_t id[static VEIL_ID_LEN])
{
	uint8_t h[32], ids[1][VEIL_ID_LEN];
	size_t n = 0, len = strlen(v);
	if (hashed) {
		if (len != 64 || veil_hex_decode(h, sizeof h, v, len) != 0)
			return 400;
	} else {
		int rc = kind == VEIL_LINK_PHONE ? veil_hash_phone(h, v, len)
		                                 : veil_hash_email(h, v, len);
		if (rc != 0)
			return 404;
	}
	if (veil_store_link_find(gw->srv->store, kind, 0, h, ids, 1, &n) != 0)
		return 500;
	if (n == 0)
		return 404;
	memcpy(id, ids[0], VEIL_ID_LEN);
	return 0;
}

static void get_lookup(struct veil_gateway *gw, const char *what, struct veil_http_resp *resp)
{
	static const struct {
		const char *prefix;
		int kind, hashed;
	} kinds[] = {
	    {"phone/", VEIL_LINK_PHONE, 0},
	    {"phone_hash/", VEIL_LINK_PHONE, 1},
	    {"email/", VEIL_LINK_EMAIL, 0},
	    {"email_hash/", VEIL_LINK_EMAIL, 1},
	};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		size_t pl = strlen(kinds[i].prefix);
		if (strncmp(what, kinds[i].prefix, pl) != 0)
			continue;
		uint8_t id[VEIL_ID_LEN];
		char s[VEIL_ID_LEN + 1];
		int st = resolve(gw, kinds[i].kind, kinds[i].hashed, what + pl, id);
		if (st != 0) {
			answer(resp, st, "");
			return;
		}
		veil_id_str(s, id);
		answer(resp, 200, s);
		return;
	}
	answer(resp, 404, "");
}

/* One identity a bulk lookup found, with the hashes that found it. */
struct bulk_match {
	uint8_t id[VEIL_ID_LEN], pk[VEIL_KEY_LEN];
	const uint8_t *phone, *email; /* into the request's hashes, or NULL */
};

/* Adds what hashes[0..n) of kind find to m (merged per identity); 0 or VEIL_ENOMEM. */
static int bulk_find(struct veil_gateway *gw, int kind, uint8_t (*hashes)[32], size_t n,
                     struct bulk_match **m, size_t *nm, size_t *cap)
{
	uint8_t ids[VEIL_STORE_MAX_MATCHES][VEIL_ID_LEN];
	for (size_t i = 0; i < n; i++) {
		size_t found = 0;
		if (veil_store_link_find(gw->srv->store, kind, 0, hashes[i], ids,
		                         VEIL_STORE_MAX_MATCHES, &found) != 0)
			found = 0;
		for (size_t k = 0; k < found; k++) {
			size_t j = 0;
			while (j < *nm && memcmp((*m)[j].id, ids[k], VEIL_ID_LEN) != 0)
				j++;
			if (j == *nm) {
				struct veil_identity_rec rec;
				if (identity_live(gw, ids[k], &rec) != 0)
					continue;
				if (*nm == *cap) {
					size_t nc = *cap ? *cap * 2 : 16;
					struct bulk_match *g = realloc(*m, nc * sizeof *g);
					if (g == NULL)
						return VEIL_ENOMEM;
					*m = g;
					*cap = nc;
				}
				memset(&(*m)[j], 0, sizeof(*m)[j]);
				memcpy((*m)[j].id, rec.id, VEIL_ID_LEN);
				memcpy((*m)[j].pk, rec.pk, VEIL_KEY_LEN);
				(*nm)++;
			}
			if (kind == VEIL_LINK_PHONE)
				(*m)[j].phone = hashes[i];
			else
				(*m)[j].email = hashes[i];
		}
	}
	return 0;
}

/*
 * POST lookup/bulk: a JSON body of phone and e-mail hashes; the answer is a
 * JSON array of {identity, publicKey, phoneHash?, emailHash?}, one entry per
 * identity found, or 404 if none is.
 */
static void post_lookup_bulk(struct veil_gateway *gw, const struct veil_http_req *req,
                             struct veil_http_resp *resp)
{
	struct veil_gw_bulk b;
	int rc = veil_gw_bulk_parse(req->body, req->body_len, &b);
	if (rc != 0) {
		answer(resp, rc == VEIL_ELIMIT ? 413 : rc == VEIL_ENOMEM ? 500 : 400, "");
		return;
	}
	struct bulk_match *m = NULL;
	size_t nm = 0, cap = 0;
	rc = bulk_find(gw, VEIL_LINK_PHONE, b.phone, b.nphone, &m, &nm, &cap);
	if (rc == 0)
		rc = bulk_find(gw, VEIL_LINK_EMAIL, b.email, b.nemail, &m, &nm, &cap);
	if (rc != 0 || nm == 0) {
		answer(resp, rc != 0 ? 500 : 404, "");
		goto out;
	}
	veil_buf_reset(&resp->body);
	int ok = veil_buf_append(&resp->body, "[", 1) == 0;
	for (size_t i = 0; ok && i < nm; i++) {
		char id[VEIL_ID_LEN + 1], pk[VEIL_HEX_LEN(VEIL_KEY_LEN)], ph[VEIL_HEX_LEN(32)],
		    eh[VEIL_HEX_LEN(32)], e[400];
		veil_id_str(id, m[i].id);
		ok = veil_hex_encode(pk, sizeof pk, m[i].pk, VEIL_KEY_LEN) == 0 &&
		     (m[i].phone == NULL || veil_hex_encode(ph, sizeof ph, m[i].phone, 32) == 0) &&
		     (m[i].email == NULL || veil_hex_encode(eh, sizeof eh, m[i].email, 32) == 0);
		int n = snprintf(e, sizeof e,
		                 "%s{\"identity\":\"%s\",\"publicKey\":\"%s\"%s%s%s%s%s%s}",
		                 i ? "," : "", id, pk, m[i].phone ? ",\"phoneHash\":\"" : "",
		                 m[i].phone ? ph : "", m[i].phone ? "\"" : "",
		                 m[i].email ? ",\"emailHash\":\"" : "", m[i].email ? eh : "",
		                 m[i].email ? "\"" : "");
		ok = ok && n > 0 && (size_t)n < sizeof e &&
		     veil_buf_append(&resp->body, e, (size_t)n) == 0;
	}
	if (ok && veil_buf_append(&resp->body, "]", 1) == 0) {
		resp->status = 200;
		resp->content_type = "application/json";
	} else {
		answer(resp, 500, "");
	}
out:
	free(m);
	veil_gw_bulk_free(&b);
}

/* A message on its way to the store; the answer waits for it. */
struct send_ctx {
	struct veil_gateway *gw;
	uint64_t ticket;
	uint8_t from[VEIL_ID_LEN], to[VEIL_ID_LEN];
	uint64_t msg_id;
};

static void resume(struct veil_gateway *gw, uint64_t ticket, int status, const char *text)
{
	pthread_mutex_lock(&gw->hlock);
	if (gw->http != NULL)
		(void)veil_http_resume(gw->http, ticket, status, text_plain, text, strlen(text));
	pthread_mutex_unlock(&gw->hlock);
}

/* Runs where the store's completions run (the chat service's loop). */
static void on_stored(void *arg, int rc, uint64_t seq)
{
	(void)seq;
	struct send_ctx *c = arg;
	struct veil_gateway *gw = c->gw;
	if (rc == 0 || rc == VEIL_EEXIST) {
		uint8_t idb[8];
		char hex[VEIL_HEX_LEN(8)];
		veil_store_u64le(idb, c->msg_id);
		if (gw->notify != NULL)
			gw->notify(gw->notify_arg, c->to);
		if (veil_hex_encode(hex, sizeof hex, idb, sizeof idb) != 0)
			resume(gw, c->ticket, 500, "");
		else
			resume(gw, c->ticket, 200, hex);
	} else {
		/* Not sent: the credit taken for it goes back. */
		(void)veil_gwdb_add_credits(gw->db, c->from, 1);
		if (rc == VEIL_ELIMIT || rc == VEIL_EQUOTA) {
			/* The recipient's queue (or this sender's share of it) is full: try later. */
			resume(gw, c->ticket, 429, "");
		} else {
			veil_log_error("gateway: queue write failed: %s", veil_strerror(rc));
			resume(gw, c->ticket, 500, "");
		}
	}
	free(c);
}

/*
 * Takes a credit and queues the encoded message m (from a->id to to); the
 * answer waits for the store. The credit is taken here, on the listener's
 * thread, so that the check and the charge are one step and the chat
 * service's loop (where the store's completions run) never writes the
 * accounts file except to give a credit back.
 */
static void queue_message(struct veil_gateway *gw, const struct veil_gw_account *a,
                          const uint8_t to[static VEIL_ID_LEN], uint64_t msg_id,
                          const struct veil_buf *m, struct veil_http_resp *resp)
{
	int crc = veil_gwdb_charge(gw->db, a->id, 1);
	if (crc != 0) {
		answer(resp, crc == VEIL_EQUOTA ? 402 : 500, "");
		return;
	}
	struct send_ctx *c = calloc(1, sizeof *c);
	if (c == NULL) {
		(void)veil_gwdb_add_credits(gw->db, a->id, 1);
		answer(resp, 500, "");
		return;
	}
	c->gw = gw;
	memcpy(c->from, a->id, VEIL_ID_LEN);
	memcpy(c->to, to, VEIL_ID_LEN);
	c->msg_id = msg_id;
	c->ticket = veil_http_defer(resp);
	struct veil_msg_rec rec = {.msg_id = msg_id, .len = m->len, .data = m->p};
	memcpy(rec.recipient, to, VEIL_ID_LEN);
	memcpy(rec.sender, a->id, VEIL_ID_LEN);
	rec.flags = m->p[28];
	rec.expires_ms = veil_now_ms() + (uint64_t)gw->srv->cfg.queue_ttl_s * 1000u;
	int rc = veil_store_msg_put(gw->srv->store, &rec, on_stored, c);
	if (rc != 0) {
		free(c);
		(void)veil_gwdb_add_credits(gw->db, a->id, 1);
		resp->deferred = 0;
		answer(resp, rc == VEIL_ELIMIT ? 413 : 500, "");
	}
}

/*
 * The recipient of a send: to, or with allow_lookup phone or email. 0 and
 * its record, or the status to answer.
 */
static int recipient(struct veil_gateway *gw, const struct params *ps, int allow_lookup,
                     const struct veil_gw_account *a, uint8_t to[static VEIL_ID_LEN],
                     struct veil_identity_rec *rec)
{
	char v[VEIL_HASH_EMAIL_MAX + 2];
	size_t n;
	if (param(ps, "to", v, sizeof v, &n) == 0) {
		if (n != VEIL_ID_LEN || veil_id_parse(to, v) != 0)
			return 400;
	} else if (allow_lookup && param(ps, "phone", v, sizeof v, &n) == 0) {
		int st = resolve(gw, VEIL_LINK_PHONE, 0, v, to);
		if (st != 0)
			return st == 400 ? 404 : st;
	} else if (allow_lookup && param(ps, "email", v, sizeof v, &n) == 0) {
		int st = resolve(gw, VEIL_LINK_EMAIL, 0, v, to);
		if (st != 0)
			return st == 400 ? 404 : st;
	} else {
		return 400;
	}
	if (memcmp(to, a->id, VEIL_ID_LEN) == 0 || identity_live(gw, to, rec) != 0)
		return 400;
	return 0;
}

static void post_send_e2e(struct veil_gateway *gw, const struct params *ps,
                          const struct veil_gw_account *a, struct veil_http_resp *resp)
{
	static _Thread_local char boxhex[2 * VEIL_GW_BOX_MAX + 2];
	static _Thread_local uint8_t box[VEIL_GW_BOX_MAX];
	char noncehex[2 * VEIL_NONCE_LEN + 2], flag[8];
	uint8_t to[VEIL_ID_LEN];
	struct veil_identity_rec rec;
	struct veil_msgbox m = {0};
	size_t nl, bl, fl;
	int st = recipient(gw, ps, 0, a, to, &rec);
	if (st != 0) {
		answer(resp, st, "");
		return;
	}
	int brc = param(ps, "box", boxhex, sizeof boxhex, &bl);
	if (brc == VEIL_ELIMIT) {
		answer(resp, 413, "");
		return;
	}
	if (param(ps, "nonce", noncehex, sizeof noncehex, &nl) != 0 ||
	    veil_hex_decode(m.nonce, VEIL_NONCE_LEN, noncehex, nl) != 0 || brc != 0 ||
	    bl % 2 != 0 || bl / 2 < VEIL_MAC_LEN || veil_hex_decode(box, bl / 2, boxhex, bl) != 0) {
		answer(resp, 400, "");
		return;
	}
	if (a->credits <= 0) {
		answer(resp, 402, "");
		return;
	}
	memcpy(m.sender, a->id, VEIL_ID_LEN);
	memcpy(m.receiver, to, VEIL_ID_LEN);
	randombytes_buf(&m.msg_id, sizeof m.msg_id);
	m.created_at = (uint32_t)(veil_now_ms() / 1000);
	m.flags = VEIL_MSG_FLAG_PUSH;
	if (param(ps, "noDeliveryReceipts", flag, sizeof flag, &fl) == 0 && strcmp(flag, "1") == 0)
		m.flags |= VEIL_MSG_FLAG_NO_AUTO_RECEIPTS;
	m.box = box;
	m.box_len = bl / 2;
	struct veil_buf out;
	veil_buf_init(&out, VEIL_MSGBOX_MAX);
	if (veil_msgbox_encode(&m, &out) != 0) {
		answer(resp, 500, "");
	} else {
		uint64_t msg_id = veil_load_u64le(out.p + 16);
		queue_message(gw, a, to, msg_id, &out, resp);
	}
	veil_buf_release(&out);
}

static void post_send_simple(struct veil_gateway *gw, const struct params *ps,
                             const struct veil_gw_account *a, struct veil_http_resp *resp)
{
	static _Thread_local char text[VEIL_GW_TEXT_MAX + 1];
	uint8_t to[VEIL_ID_LEN];
	struct veil_identity_rec rec;
	struct veil_gw_account full;
	size_t tl;
	if (!gw->srv->cfg.gw_basic || !a->has_sk || !(a->modes & VEIL_GW_MODE_BASIC)) {
		answer(resp, 400, "");
		return;
	}
	int st = recipient(gw, ps, 1, a, to, &rec);
	if (st != 0) {
		answer(resp, st, "");
		return;
	}
	int trc = param(ps, "text", text, sizeof text, &tl);
	if (trc == VEIL_ELIMIT) {
		answer(resp, 413, "");
		return;
	}
	if (trc != 0 || tl == 0 || !veil_utf8_valid((const uint8_t *)text, tl)) {
		answer(resp, 400, "");
		return;
	}
	if (a->credits <= 0) {
		answer(resp, 402, "");
		return;
	}
	if (veil_gwdb_get(gw->db, a->id, 1, &full) != 0 || !full.has_sk) {
		sodium_memzero(&full, sizeof full);
		answer(resp, 500, "");
		return;
	}
	struct veil_e2e_out o = {
	    .created_at_ms = veil_now_ms(), .flags = VEIL_MSG_FLAG_PUSH, .type = VEIL_E2E_TEXT};
	memcpy(o.sender, a->id, VEIL_ID_LEN);
	memcpy(o.receiver, to, VEIL_ID_LEN);
	randombytes_buf(&o.msg_id, sizeof o.msg_id);
	struct veil_buf out;
	veil_buf_init(&out, VEIL_MSGBOX_MAX);
	int rc = veil_e2e_seal(&out, &o, full.sk, rec.pk, (const uint8_t *)text, tl);
	sodium_memzero(&full, sizeof full);
	sodium_memzero(text, tl);
	if (rc != 0)
		answer(resp, rc == VEIL_ELIMIT ? 413 : 500, "");
	else
		queue_message(gw, a, to, o.msg_id, &out, resp);
	veil_buf_release(&out);
}

/* receive (our extension, pull.c): what waits in the queue, without a callback. */
static void get_receive(struct veil_gateway *gw, const struct params *ps,
                        const struct veil_gw_account *a, struct veil_http_resp *resp)
{
	char after[24], wait[8];
	size_t al = 0, wl = 0;
	int arc = param(ps, "after", after, sizeof after, &al);
	int wrc = param(ps, "wait", wait, sizeof wait, &wl);
	if ((arc != 0 && arc != VEIL_ENOTFOUND) || (wrc != 0 && wrc != VEIL_ENOTFOUND)) {
		answer(resp, 400, "");
		return;
	}
	int st = veil_gw_pull_request(gw, a, arc == 0 ? after : NULL, al, wrc == 0 ? wait : NULL,
	                              wl, resp);
	if (st != 0)
		answer(resp, st, st == 409 ? "this identity receives by callback" : "");
}

static void handle(void *arg, const struct veil_http_req *req, struct veil_http_resp *resp)
{
	struct veil_gateway *gw = arg;
	const char *path = req->path;
	int post = strcmp(req->method, "POST") == 0;
	/* A JSON POST (lookup/bulk) carries from and secret in the query, as the SDKs send them. */
	int json = post && strcmp(path, "lookup/bulk") == 0;
	struct params ps = {.p = req->query, .len = strlen(req->query), .decode = 0};
	if (post && !json) {
		ps.p = (const char *)req->body;
		ps.len = req->body_len;
		ps.decode = 1;
	}
	struct veil_gw_account a;
	int st = authenticate(gw, &ps, &a);
	if (st != 0) {
		answer(resp, st, "");
		return;
	}
	char key[VEIL_ID_LEN + 1];
	veil_id_str(key, a.id);
	if (veil_ratelimit_take(gw->rl, key, veil_mono_ms()) != 0) {
		veil_refusal(VEIL_METRIC_REFUSE_HTTP_RATE,
		             "Gateway requests over an API identity's rate (--gateway-rate)");
		answer(resp, 429, "");
		return;
	}
	if (json)
		post_lookup_bulk(gw, req, resp);
	else if (!post && strncmp(path, "pubkeys/", 8) == 0)
		get_pubkey(gw, path + 8, resp);
	else if (!post && strncmp(path, "lookup/", 7) == 0)
		get_lookup(gw, path + 7, resp);
	else if (!post && strncmp(path, "capabilities/", 13) == 0)
		get_capabilities(gw, path + 13, resp);
	else if (!post && strcmp(path, "credits") == 0) {
		char n[32];
		snprintf(n, sizeof n, "%lld", (long long)a.credits);
		answer(resp, 200, n);
	} else if (post && strcmp(path, "send_e2e") == 0)
		post_send_e2e(gw, &ps, &a, resp);
	else if (post && strcmp(path, "send_simple") == 0)
		post_send_simple(gw, &ps, &a, resp);
	else if (strcmp(path, "receive") == 0)
		get_receive(gw, &ps, &a, resp);
	else
		answer(resp, 404, "");
}

/*
 * upload_blob and blobs/: authenticated here (from and secret in the query,
 * as the SDKs send them for both), then handed to the blob service with a
 * blob token for the API identity, which owns the blob and its quota.
 */
static int blob_begin(void *arg, const struct veil_http_sreq *req, void **ctx,
                      struct veil_http_resp *resp, int upload)
{
	struct veil_gateway *gw = arg;
	struct params ps = {.p = req->query, .len = strlen(req->query), .decode = 0};
	struct veil_gw_account a;
	char key[VEIL_ID_LEN + 1];
	*ctx = NULL;
	if (authenticate(gw, &ps, &a) != 0) {
		answer(resp, 401, "");
		return -1;
	}
	veil_id_str(key, a.id);
	if (veil_ratelimit_take(gw->rl, key, veil_mono_ms()) != 0) {
		veil_refusal(VEIL_METRIC_REFUSE_HTTP_RATE,
		             "Gateway requests over an API identity's rate (--gateway-rate)");
		answer(resp, 429, "");
		return -1;
	}
	if (gw->blobs == NULL) {
		answer(resp, 500, "");
		return -1;
	}
	/* Paths after the routes' prefixes: "" for upload_blob, the ID for blobs/. */
	if ((upload && req->path[0] != '\0') || upload != (strcmp(req->method, "POST") == 0)) {
		answer(resp, 404, "");
		return -1;
	}
	if (upload && a.credits <= 0) {
		answer(resp, 402, "");
		return -1;
	}
	struct veil_http_sreq r = *req;
	uint8_t tok[VEIL_BLOB_TOKEN_LEN];
	char auth[32 + VEIL_B64_LEN(VEIL_BLOB_TOKEN_LEN)] = "ThreemaBlobToken ";
	if (upload) {
		size_t o = strlen(auth);
		if (veil_blob_token_issue(&gw->srv->keys, a.id, veil_now_ms() + 60000, tok) != 0 ||
		    veil_b64_encode(auth + o, sizeof auth - o, tok, sizeof tok) != 0) {
			answer(resp, 500, "");
			return -1;
		}
		r.path = "upload";
		r.authorization = auth;
	} else {
		r.path = req->path;
	}
	int rc = veil_blobsvc_ops.begin(gw->blobs, &r, ctx, resp);
	sodium_memzero(auth, sizeof auth);
	sodium_memzero(tok, sizeof tok);
	return rc;
}

static int upload_begin(void *arg, const struct veil_http_sreq *req, void **ctx,
                        struct veil_http_resp *resp)
{
	return blob_begin(arg, req, ctx, resp, 1);
}

static int download_begin(void *arg, const struct veil_http_sreq *req, void **ctx,
                          struct veil_http_resp *resp)
{
	return blob_begin(arg, req, ctx, resp, 0);
}

static int blob_body(void *ctx, const uint8_t *p, size_t len, struct veil_http_resp *resp)
{
	return veil_blobsvc_ops.body(ctx, p, len, resp);
}

static void blob_end(void *ctx, struct veil_http_resp *resp)
{
	veil_blobsvc_ops.end(ctx, resp);
}

static void blob_release(void *ctx, int complete)
{
	veil_blobsvc_ops.release(ctx, complete);
}

static const struct veil_http_stream_ops upload_ops = {
    .begin = upload_begin,
    .body = blob_body,
    .end = blob_end,
    .release = blob_release,
};
static const struct veil_http_stream_ops download_ops = {
    .begin = download_begin,
    .body = blob_body,
    .end = blob_end,
    .release = blob_release,
};

static void http_gone(void *arg)
{
	struct veil_gateway *gw = arg;
	pthread_mutex_lock(&gw->hlock);
	gw->http = NULL;
	pthread_mutex_unlock(&gw->hlock);
}

int veil_gateway_register(struct veil_gateway *gw, struct veil_http *h, struct veil_blobsvc *blobs)
{
	gw->blobs = blobs;
	/* The blob routes first: they are more specific than the rest. */
	int rc = veil_http_route_stream(h, NULL, VEIL_GW_PREFIX "upload_blob", &upload_ops, gw);
	if (rc == 0)
		rc = veil_http_route_stream(h, NULL, VEIL_GW_PREFIX "blobs/", &download_ops, gw);
	if (rc == 0)
		rc = veil_http_route(h, "GET", VEIL_GW_PREFIX, handle, gw);
	if (rc == 0)
		rc = veil_http_route(h, "POST", VEIL_GW_PREFIX, handle, gw);
	if (rc == 0)
		rc = veil_http_limit(h, VEIL_GW_PREFIX, gw->srv->cfg.gw_addr_rate_per_min);
	if (rc == 0)
		rc = veil_http_on_stop(h, http_gone, gw);
	if (rc == 0) {
		pthread_mutex_lock(&gw->hlock);
		gw->http = h;
		pthread_mutex_unlock(&gw->hlock);
	}
	return rc;
}

int veil_gateway_new(struct veil_gateway **out, struct veil_server *srv,
                     void (*notify)(void *arg, const uint8_t id[VEIL_ID_LEN]), void *arg)
{
	*out = NULL;
	struct veil_gateway *gw = calloc(1, sizeof *gw);
	if (gw == NULL)
		return VEIL_ENOMEM;
	gw->srv = srv;
	gw->notify = notify;
	gw->notify_arg = arg;
	pthread_mutex_init(&gw->hlock, NULL);
	pthread_mutex_init(&gw->wlock, NULL);
	pthread_cond_init(&gw->wcond, NULL);
	pthread_mutex_init(&gw->plock, NULL);
	pthread_cond_init(&gw->pcond, NULL);
	char path[1100];
	uint8_t key[32];
	/* With a PostgreSQL store the accounts are there, seen by every node. */
	if (strncmp(srv->cfg.store, "postgres", 8) == 0)
		snprintf(path, sizeof path, "%s", srv->cfg.store);
	else
		snprintf(path, sizeof path, "%s/gateway.db", srv->cfg.data_dir);
	veil_gwdb_seal_key(key, srv->keys.dir_sk);
	int rc = veil_gwdb_open(&gw->db, path, key);
	sodium_memzero(key, sizeof key);
	if (rc == 0)
		rc = veil_ratelimit_new(&gw->rl, srv->cfg.gw_rate_per_min);
	gw->ids = calloc(VEIL_GW_ID_CACHE_SLOTS, sizeof *gw->ids);
	if (rc == 0 && gw->ids == NULL)
		rc = VEIL_ENOMEM;
	randombytes_buf(gw->ids_key, sizeof gw->ids_key);
	if (rc != 0) {
		veil_gateway_free(gw);
		return rc;
	}
	*out = gw;
	return 0;
}

struct veil_gwdb *veil_gateway_db(struct veil_gateway *gw)
{
	return gw != NULL ? gw->db : NULL;
}

int veil_gateway_start(struct veil_gateway *gw, int callbacks)
{
	if (callbacks && pthread_create(&gw->thread, NULL, veil_gw_callback_thread, gw) != 0)
		return VEIL_EIO;
	gw->running = callbacks;
	if (pthread_create(&gw->pthread, NULL, veil_gw_pull_thread, gw) != 0) {
		veil_gateway_stop(gw);
		return VEIL_EIO;
	}
	gw->prunning = 1;
	return 0;
}

void veil_gateway_wake(struct veil_gateway *gw)
{
	pthread_mutex_lock(&gw->wlock);
	gw->woken = 1;
	pthread_cond_signal(&gw->wcond);
	pthread_mutex_unlock(&gw->wlock);
	pthread_mutex_lock(&gw->plock);
	gw->pwoken = 1;
	pthread_cond_signal(&gw->pcond);
	pthread_mutex_unlock(&gw->plock);
}

void veil_gateway_stop(struct veil_gateway *gw)
{
	if (gw == NULL)
		return;
	pthread_mutex_lock(&gw->wlock);
	gw->stop = 1;
	pthread_cond_broadcast(&gw->wcond);
	pthread_mutex_unlock(&gw->wlock);
	pthread_mutex_lock(&gw->plock);
	gw->pstop = 1;
	pthread_cond_broadcast(&gw->pcond);
	pthread_mutex_unlock(&gw->plock);
	if (gw->running)
		pthread_join(gw->thread, NULL);
	if (gw->prunning)
		pthread_join(gw->pthread, NULL);
	gw->running = gw->prunning = 0;
}

void veil_gateway_free(struct veil_gateway *gw)
{
	if (gw == NULL)
		return;
	veil_gateway_stop(gw);
	while (gw->polls != NULL) { /* parked after the worker ended: the listener is gone */
		struct veil_gw_poll *p = gw->polls;
		gw->polls = p->next;
		free(p);
	}
	veil_gwdb_close(gw->db);
	veil_ratelimit_free(gw->rl);
	free(gw->ids);
	pthread_cond_destroy(&gw->wcond);
	pthread_mutex_destroy(&gw->wlock);
	pthread_cond_destroy(&gw->pcond);
	pthread_mutex_destroy(&gw->plock);
	pthread_mutex_destroy(&gw->hlock);
	free(gw);
}
