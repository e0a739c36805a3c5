/*
 * Parsers for directory answers and the provisioning document. Their input
 * comes from the network: sizes and nesting are bounded before jansson
 * sees it, and every field is checked for type, length and range.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "veil/dir.h"
#include "dir_int.h"

static _Thread_local char dir_errbuf[256];

const char *veil_dir_errmsg(void)
{
	return dir_errbuf;
}

int veil_dir_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dir_errbuf, sizeof dir_errbuf, fmt, ap);
	va_end(ap);
	return rc;
}

void veil_dir_clear_err(void)
{
	dir_errbuf[0] = '\0';
}

int veil_dir_json_load(const uint8_t *p, size_t len, json_t **out)
{
	*out = NULL;
	if (len > VEIL_DIR_MAX_RESPONSE)
		return veil_dir_fail(VEIL_ELIMIT, "answer too large");
	if (veil_json_depth_ok(p, len, VEIL_DIR_MAX_DEPTH) != 0)
		return veil_dir_fail(VEIL_EPROTO, "answer nested too deeply");
	json_error_t err;
	json_t *root = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL)
		return veil_dir_fail(VEIL_EPROTO, "malformed JSON in answer");
	if (!json_is_object(root)) {
		json_decref(root);
		return veil_dir_fail(VEIL_EPROTO, "answer is not a JSON object");
	}
	*out = root;
	return 0;
}

int veil_dir_json_b64(json_t *obj, const char *name, uint8_t *out, size_t want)
{
	json_t *v = json_object_get(obj, name);
	if (!json_is_string(v))
		return veil_dir_fail(VEIL_EPROTO, "answer lacks %s", name);
	if (veil_b64_decode(out, want, json_string_value(v), json_string_length(v)) != 0)
		return veil_dir_fail(VEIL_EPROTO, "answer has a bad %s", name);
	return 0;
}

int veil_dir_json_id(json_t *obj, const char *name, uint8_t out[static VEIL_ID_LEN])
{
	json_t *v = json_object_get(obj, name);
	if (!json_is_string(v) || json_string_length(v) != VEIL_ID_LEN ||
	    veil_id_parse(out, json_string_value(v)) != 0)
		return veil_dir_fail(VEIL_EPROTO, "answer has a bad %s", name);
	return 0;
}

/* An optional integer field within [lo, hi]; def if absent. */
static int json_int_opt(json_t *obj, const char *name, json_int_t lo, json_int_t hi, json_int_t def,
                        json_int_t *out)
{
	json_t *v = json_object_get(obj, name);
	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return veil_dir_fail(VEIL_EPROTO, "answer has a bad %s", name);
	*out = json_integer_value(v);
	return 0;
}

/* A string field of 1..cap-1 bytes with no NUL, copied into out. */
static int json_str(json_t *obj, const char *name, char *out, size_t cap, int required)
{
	json_t *v = json_object_get(obj, name);
	if (v == NULL && !required) {
		out[0] = '\0';
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return veil_dir_fail(VEIL_EPROTO, "answer has a bad %s", name);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int veil_dir_identity_from_json(json_t *obj, struct veil_dir_identity *out)
{
	json_int_t mask, state, type;
	int rc = veil_dir_json_id(obj, "identity", out->id);
	if (rc == 0)
		rc = veil_dir_json_b64(obj, "publicKey", out->pk, VEIL_KEY_LEN);
	if (rc == 0)
		rc = json_int_opt(obj, "featureMask", 0, INT64_MAX, 0, &mask);
	if (rc == 0)
		rc = json_int_opt(obj, "state", 0, 2, 0, &state);
	if (rc == 0)
		rc = json_int_opt(obj, "type", 0, 255, 0, &type);
	if (rc != 0)
		return rc;
	out->feature_mask = (uint64_t)mask;
	out->state = (int)state;
	out->type = (int)type;
	return 0;
}

int veil_dir_parse_identity(const uint8_t *json, size_t len, struct veil_dir_identity *out)
{
	memset(out, 0, sizeof *out);
	json_t *root;
	int rc = veil_dir_json_load(json, len, &root);
	if (rc != 0)
		return rc;
	rc = veil_dir_identity_from_json(root, out);
	json_decref(root);
	if (rc != 0)
		memset(out, 0, sizeof *out);
	return rc;
}

/* chat.addresses of the chat object, optional; entries past the maximum are left out. */
static int chat_addrs_from_json(json_t *chat, struct veil_dir_provisioning *out)
{
	json_t *list = json_object_get(chat, "addresses");
	memset(out->chat_addrs, 0, sizeof out->chat_addrs);
	out->n_chat_addrs = 0;
	if (list == NULL)
		return 0;
	if (!json_is_array(list))
		return veil_dir_fail(VEIL_EPROTO,
		                     "provisioning document has a bad chat address list");
	size_t n = json_array_size(list);
	if (n > VEIL_DIR_MAX_CHAT_ADDRS)
		n = VEIL_DIR_MAX_CHAT_ADDRS;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(list, i);
		json_t *port = json_is_object(e) ? json_object_get(e, "port") : NULL;
		int rc;
		if (!json_is_integer(port) || json_integer_value(port) < 1 ||
		    json_integer_value(port) > 65535)
			return veil_dir_fail(VEIL_EPROTO,
			                     "provisioning document has a bad chat address");
		if ((rc = json_str(e, "hostname", out->chat_addrs[i].host,
		                   sizeof out->chat_addrs[i].host, 1)) != 0)
			return rc;
		out->chat_addrs[i].port = (uint16_t)json_integer_value(port);
		out->n_chat_addrs = i + 1;
	}
	return 0;
}

int veil_dir_parse_chat_addrs(const uint8_t *json, size_t len, struct veil_dir_provisioning *out)
{
	json_t *root = NULL;
	int rc = veil_dir_json_load(json, len, &root);
	if (rc == 0 && !json_is_object(root))
		rc = veil_dir_fail(VEIL_EPROTO, "the chat entry is not an object");
	if (rc == 0)
		rc = chat_addrs_from_json(root, out);
	if (rc != 0)
		out->n_chat_addrs = 0;
	json_decref(root);
	return rc;
}

int veil_dir_parse_provisioning(const uint8_t *doc, size_t len, const uint8_t *pin_sign_pk,
                                const uint8_t *pin_csp_pk, struct veil_dir_provisioning *out)
{
	memset(out, 0, sizeof *out);
	json_t *root = NULL;
	int rc;
	if (len > VEIL_DIR_MAX_RESPONSE)
		return veil_dir_fail(VEIL_ELIMIT, "provisioning document too large");

	/* OPPF layout: JSON, then a line feed, then the base64 signature. */
	size_t lf = len;
	while (lf > 0 && doc[lf - 1] != '\n')
		lf--;
	if (lf == 0)
		return veil_dir_fail(VEIL_EPROTO, "provisioning document has no signature line");
	size_t json_len = lf - 1;
	uint8_t sig[crypto_sign_BYTES];
	if (veil_b64_decode(sig, sizeof sig, (const char *)doc + lf, len - lf) != 0)
		return veil_dir_fail(VEIL_EPROTO,
		                     "provisioning signature is not base64 of 64 bytes");

	rc = veil_dir_json_load(doc, json_len, &root);
	if (rc != 0)
		goto out;
	json_t *ver = json_object_get(root, "version");
	if (!json_is_string(ver) || strncmp(json_string_value(ver), "1.", 2) != 0) {
		rc = veil_dir_fail(VEIL_EPROTO, "unsupported provisioning document version");
		goto out;
	}
	rc = veil_dir_json_b64(root, "signatureKey", out->sign_pk, sizeof out->sign_pk);
	if (rc != 0)
		goto out;
	if (pin_sign_pk != NULL && veil_memcmp(pin_sign_pk, out->sign_pk, sizeof out->sign_pk)) {
		rc = veil_dir_fail(VEIL_EKEY,
		                   "provisioning signing key differs from the pinned key");
		goto out;
	}
	if (crypto_sign_verify_detached(sig, doc, json_len, out->sign_pk) != 0) {
		rc = veil_dir_fail(VEIL_ECRYPTO, "provisioning document signature is invalid");
		goto out;
	}

	json_t *chat = json_object_get(root, "chat");
	json_t *dir = json_object_get(root, "directory");
	json_t *ports = json_is_object(chat) ? json_object_get(chat, "ports") : NULL;
	json_t *port = json_is_array(ports) ? json_array_get(ports, 0) : NULL;
	if (!json_is_object(chat) || !json_is_object(dir) || !json_is_integer(port) ||
	    json_integer_value(port) < 1 || json_integer_value(port) > 65535) {
		rc = veil_dir_fail(VEIL_EPROTO, "provisioning document lacks chat or directory");
		goto out;
	}
	out->chat_port = (uint16_t)json_integer_value(port);
	json_int_t refresh;
	if ((rc = json_str(chat, "hostname", out->chat_host, sizeof out->chat_host, 1)) != 0 ||
	    (rc = veil_dir_json_b64(chat, "publicKey", out->csp_pk, sizeof out->csp_pk)) != 0 ||
	    (rc = json_str(dir, "url", out->directory_url, sizeof out->directory_url, 1)) != 0 ||
	    (rc = json_str(root, "serverName", out->server_name, sizeof out->server_name, 0)) !=
	        0 ||
	    (rc = json_int_opt(root, "refresh", 0, UINT32_MAX, 86400, &refresh)) != 0 ||
	    (rc = chat_addrs_from_json(chat, out)) != 0)
		goto out;
	out->refresh_s = (uint32_t)refresh;
	/* OPPF's blob URLs, optional here (a server may run without the blob service). */
	json_t *blob = json_object_get(root, "blob");
	if (blob != NULL &&
	    (!json_is_object(blob) ||
	     (rc = json_str(blob, "uploadUrl", out->blob_upload_url, VEIL_DIR_MAX_URL, 1)) != 0 ||
	     (rc = json_str(blob, "downloadUrl", out->blob_download_url, VEIL_DIR_MAX_URL, 1)) !=
	         0 ||
	     (rc = json_str(blob, "doneUrl", out->blob_done_url, VEIL_DIR_MAX_URL, 1)) != 0)) {
		if (rc == 0)
			rc = veil_dir_fail(VEIL_EPROTO,
			                   "provisioning document has a bad blob entry");
		goto out;
	}
	/* OPPF's mediator and rendezvous base URLs, optional as well. */
	const char *svc[2] = {"mediator", "rendezvous"};
	char *dst[2] = {out->mediator_url, out->rendezvous_url};
	for (int i = 0; i < 2; i++) {
		json_t *o = json_object_get(root, svc[i]);
		if (o == NULL)
			continue;
		if (!json_is_object(o) ||
		    (rc = json_str(o, "url", dst[i], VEIL_DIR_MAX_URL, 1)) != 0) {
			if (rc == 0)
				rc = veil_dir_fail(VEIL_EPROTO,
				                   "provisioning document has a bad mediator or "
				                   "rendezvous entry");
			goto out;
		}
	}
	if (pin_csp_pk != NULL && veil_memcmp(pin_csp_pk, out->csp_pk, sizeof out->csp_pk)) {
		rc = veil_dir_fail(VEIL_EKEY, "chat server key differs from the pinned key");
		goto out;
	}
out:
	json_decref(root);
	if (rc != 0)
		memset(out, 0, sizeof *out);
	return rc;
}

int veil_dir_token_response(uint8_t out[static 32], const uint8_t sk[static VEIL_KEY_LEN],
                            const uint8_t token_resp_pk[static VEIL_KEY_LEN], const uint8_t *token,
                            size_t len)
{
	uint8_t ss[VEIL_KEY_LEN], k[32];
	int rc = veil_shared_key(ss, sk, token_resp_pk);
	if (rc != 0) {
		rc = veil_dir_fail(VEIL_ECRYPTO, "directory key is not usable");
		goto out;
	}
	rc = veil_kdf(k, sizeof k, ss, sizeof ss, "dir", 3, "3ma-csp", 7);
	if (rc != 0)
		goto out;
	veil_blake2b_mac(out, k, token, len);
out:
	sodium_memzero(ss, sizeof ss);
	sodium_memzero(k, sizeof k);
	return rc;
}
