/*
 * identity/link_email and identity/link_mobileno: link an address to an
 * identity with a verification code, unlink it, and verify the code.
 *
 *   phase 1  {identity, email|mobileNo, lang?}  -> {linked, token, tokenRespKeyPub}
 *   phase 2  ... + {token, response}            -> {success, verificationId}
 *            (an empty address unlinks:         -> {success})
 *   verify   {verificationId, code}             -> {success} | {success:false, error}
 *
 * The code (6 digits) goes to the address through srv/notify; the store
 * keeps only the address's matching hash, its OPRF output and a MAC of
 * the code, never the address or the code.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "veil/dir.h"
#include "contacts.h"

static void code_mac(struct veil_dircontacts *c, const uint8_t vid[static VEIL_STORE_VID_LEN],
                     const char *code, uint8_t out[static 32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, c->mac_key, 32, 32);
	crypto_generichash_update(&st, (const unsigned char *)"link-code", 9);
	crypto_generichash_update(&st, vid, VEIL_STORE_VID_LEN);
	crypto_generichash_update(&st, (const unsigned char *)code, strlen(code));
	crypto_generichash_final(&st, out, 32);
	sodium_memzero(&st, sizeof st);
}

static void verify(struct veil_dircontacts *c, json_t *root, struct veil_http_resp *resp)
{
	json_t *v = json_object_get(root, "verificationId"), *code = json_object_get(root, "code");
	uint8_t vid[VEIL_STORE_VID_LEN], mac[32];
	if (!json_is_string(v) ||
	    veil_hex_decode(vid, sizeof vid, json_string_value(v), json_string_length(v)) != 0) {
		veil_http_resp_error(resp, 400, "verificationId must be 32 hex digits", NULL);
		return;
	}
	if (!json_is_string(code) || json_string_length(code) != VEIL_DC_CODE_DIGITS ||
	    strspn(json_string_value(code), "0123456789") != VEIL_DC_CODE_DIGITS) {
		veil_http_resp_error(resp, 400, "code must be 6 digits", NULL);
		return;
	}
	code_mac(c, vid, json_string_value(code), mac);
	struct veil_link_pending p;
	int rc = veil_store_link_confirm(c->srv->store, vid, mac, VEIL_DC_CODE_ATTEMPTS,
	                                 veil_now_ms(), &p);
	sodium_memzero(&p, sizeof p);
	switch (rc) {
	case 0: veil_http_resp_object(resp, 200, json_pack("{s:b}", "success", 1)); break;
	case VEIL_ENOTFOUND: veil_dc_refuse(resp, "unknown verification ID"); break;
	case VEIL_ETIMEOUT: veil_dc_refuse(resp, "code expired"); break;
	case VEIL_ELIMIT: veil_dc_refuse(resp, "too many wrong codes; link again"); break;
	case VEIL_EAUTH: veil_dc_refuse(resp, "wrong code"); break;
	default: veil_http_resp_error(resp, 500, "store error", NULL); break;
	}
}

/* Starts a link: stores the pending record and queues the code. */
static void start_link(struct veil_dircontacts *c, int kind, const uint8_t id[static VEIL_ID_LEN],
                       const char *norm, size_t len, const uint8_t hash[static 32],
                       struct veil_http_resp *resp)
{
	int nkind = kind == VEIL_LINK_EMAIL ? VEIL_NOTIFY_EMAIL : VEIL_NOTIFY_SMS;
	struct veil_link_pending p;
	char code[VEIL_DC_CODE_DIGITS + 1], text[160], vidhex[VEIL_HEX_LEN(VEIL_STORE_VID_LEN)];
	uint8_t pt[VEIL_OPRF_LEN], n[VEIL_OPRF_LEN];
	memset(&p, 0, sizeof p);
	if (!veil_notify_available(c->notify, nkind)) {
		veil_dc_refuse(resp,
		               kind == VEIL_LINK_EMAIL
		                   ? "this server cannot send e-mail (no smtp-url configured)"
		                   : "this server cannot send SMS (no sms-webhook configured)");
		return;
	}
	if (veil_dc_limit(c->link_rl, id, 1, resp) != 0)
		return;
	int okind = kind == VEIL_LINK_EMAIL ? VEIL_CONTACT_EMAIL : VEIL_CONTACT_PHONE;
	if (veil_oprf_hash_to_group(pt, okind, norm, len) != 0 ||
	    veil_oprf_evaluate(n, c->oprf_key, pt) != 0 ||
	    veil_oprf_output(p.prf, okind, norm, len, n) != 0) {
		veil_http_resp_error(resp, 500, "internal error", NULL);
		goto out;
	}
	veil_random(p.vid, sizeof p.vid);
	snprintf(code, sizeof code, "%06u", (unsigned)randombytes_uniform(1000000));
	code_mac(c, p.vid, code, p.code_mac);
	memcpy(p.id, id, VEIL_ID_LEN);
	p.kind = kind;
	memcpy(p.hash, hash, 32);
	p.expires_ms = veil_now_ms() + (uint64_t)c->srv->cfg.link_code_ttl_s * 1000u;
	if (p.expires_ms <= veil_now_ms())
		p.expires_ms = veil_now_ms() + 600000u;
	int rc = veil_store_link_pending_put(c->srv->store, &p);
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		goto out;
	}
	snprintf(text, sizeof text, "Your Veil verification code is %s. It expires in %u minutes.",
	         code, (unsigned)((p.expires_ms - veil_now_ms() + 59999) / 60000));
	rc = veil_notify_send(c->notify, nkind, norm, "Veil verification code", text);
	if (rc != 0) {
		veil_http_resp_error(resp, 503, "cannot send the code now; try again later", NULL);
		goto out;
	}
	if (veil_hex_encode(vidhex, sizeof vidhex, p.vid, sizeof p.vid) != 0) {
		veil_http_resp_error(resp, 500, "internal error", NULL);
		goto out;
	}
	veil_log(VEIL_LOG_INFO, "directory: %s link code queued",
	         kind == VEIL_LINK_EMAIL ? "e-mail" : "phone");
	veil_http_resp_object(resp, 200,
	                      json_pack("{s:b, s:s}", "success", 1, "verificationId", vidhex));
out:
	sodium_memzero(code, sizeof code);
	sodium_memzero(text, sizeof text);
	sodium_memzero(&p, sizeof p);
}

void veil_dc_link(struct veil_dircontacts *c, int kind, const struct veil_http_req *req,
                  struct veil_http_resp *resp)
{
	const char *field = kind == VEIL_LINK_EMAIL ? "email" : "mobileNo";
	const char *endpoint =
	    kind == VEIL_LINK_EMAIL ? "identity/link_email" : "identity/link_mobileno";
	char buf[VEIL_CONTACT_MAX + 2], norm[VEIL_CONTACT_MAX + 1];
	size_t len = 0;
	uint8_t hash[32], cur[32], id[VEIL_ID_LEN];
	json_t *root = veil_dc_load(req, resp);
	if (root == NULL)
		return;
	if (json_object_get(root, "verificationId") != NULL) {
		verify(c, root, resp);
		goto out;
	}
	json_t *v = json_object_get(root, field);
	if (!json_is_string(v) || json_string_length(v) > VEIL_CONTACT_MAX) {
		veil_http_resp_error(resp, 400,
		                     kind == VEIL_LINK_EMAIL ? "missing or too long email"
		                                             : "missing or too long mobileNo",
		                     NULL);
		goto out;
	}
	int unlink = json_string_length(v) == 0;
	if (!unlink) {
		const char *s = json_string_value(v);
		int okind = kind == VEIL_LINK_EMAIL ? VEIL_CONTACT_EMAIL : VEIL_CONTACT_PHONE;
		/* The specification sends E.164 digits without '+'. */
		snprintf(buf, sizeof buf, "%s%s", kind == VEIL_LINK_PHONE && s[0] != '+' ? "+" : "",
		         s);
		if (veil_contact_normalize(okind, buf, strlen(buf), NULL, norm, &len) != 0 ||
		    veil_contact_hash(hash, okind, norm, len) != 0) {
			veil_http_resp_error(resp, 400,
			                     kind == VEIL_LINK_EMAIL ? "invalid e-mail address"
			                                             : "invalid mobile number",
			                     NULL);
			goto out;
		}
	}
	if (veil_dc_identity(root, resp, id) != 0)
		goto out;
	int rc = veil_store_link_get(c->srv->store, id, kind, cur);
	if (rc != 0 && rc != VEIL_ENOTFOUND) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		goto out;
	}
	int linked = unlink ? rc == VEIL_ENOTFOUND : rc == 0 && veil_memcmp(cur, hash, 32) == 0;
	struct veil_identity_rec rec;
	if (!veil_dc_auth(c, endpoint, root, resp, json_pack("{s:b}", "linked", linked), &rec))
		goto out;
	if (unlink) {
		if (veil_store_link_delete(c->srv->store, rec.id, kind) != 0)
			veil_http_resp_error(resp, 500, "store error", NULL);
		else
			veil_http_resp_object(resp, 200, json_pack("{s:b}", "success", 1));
		goto out;
	}
	start_link(c, kind, rec.id, norm, len, hash, resp);
out:
	sodium_memzero(buf, sizeof buf);
	sodium_memzero(norm, sizeof norm);
	json_decref(root);
}
