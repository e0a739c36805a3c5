/*
 * The directory client's contact calls: linking, matching (hashes and the
 * private OPRF path), revocation and feature masks. Authenticated calls run
 * both phases of the challenge; the second repeats the first request with
 * the token and the response added.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "veil/dir.h"
#include "dir_int.h"

static json_t *id_req(const uint8_t id[static VEIL_ID_LEN])
{
	return json_pack("{s:s%}", "identity", (const char *)id, (size_t)VEIL_ID_LEN);
}

int veil_dir_link(const char *dir_url, int kind, const uint8_t id[static VEIL_ID_LEN],
                  const uint8_t sk[static VEIL_KEY_LEN], const char *address,
                  char vid[static VEIL_DIR_VID_LEN + 1], int *already)
{
	veil_dir_clear_err();
	vid[0] = 0;
	*already = 0;
	if (kind != VEIL_CONTACT_EMAIL && kind != VEIL_CONTACT_PHONE)
		return veil_dir_fail(VEIL_EINVAL, "unknown kind of address");
	json_t *out = NULL, *req = id_req(id);
	int rc = VEIL_ENOMEM;
	if (req == NULL ||
	    json_object_set_new(req, kind == VEIL_CONTACT_EMAIL ? "email" : "mobileNo",
	                        json_string(address)) != 0 ||
	    json_object_set_new(req, "lang", json_string("en")) != 0) {
		rc = veil_dir_fail(VEIL_ENOMEM, "out of memory");
		goto out;
	}
	rc = veil_dir_auth_post(
	    dir_url, kind == VEIL_CONTACT_EMAIL ? "identity/link_email" : "identity/link_mobileno",
	    req, sk, "linking", already, &out);
	if (rc != 0 || *already || address[0] == 0)
		goto out;
	json_t *v = json_object_get(out, "verificationId");
	if (!json_is_string(v) || json_string_length(v) != VEIL_DIR_VID_LEN) {
		rc = veil_dir_fail(VEIL_EPROTO, "linking: answer lacks a verification ID");
		goto out;
	}
	memcpy(vid, json_string_value(v), VEIL_DIR_VID_LEN + 1);
out:
	json_decref(req);
	json_decref(out);
	return rc;
}

int veil_dir_link_verify(const char *dir_url, int kind, const char *vid, const char *code)
{
	veil_dir_clear_err();
	json_t *out = NULL, *req = json_pack("{s:s, s:s}", "verificationId", vid, "code", code);
	if (req == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	int rc = veil_dir_post(
	    dir_url, kind == VEIL_CONTACT_EMAIL ? "identity/link_email" : "identity/link_mobileno",
	    req, "verification", &out);
	if (rc == 0 && !json_is_true(json_object_get(out, "success")))
		rc = veil_dir_fail(VEIL_EPROTO, "verification: answer lacks success");
	json_decref(req);
	json_decref(out);
	return rc;
}

int veil_dir_match_token(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                         const uint8_t sk[static VEIL_KEY_LEN],
                         char token[static VEIL_DIR_MATCH_TOKEN_MAX + 1])
{
	veil_dir_clear_err();
	token[0] = 0;
	json_t *out = NULL, *req = id_req(id);
	if (req == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	int rc =
	    veil_dir_auth_post(dir_url, "identity/match_token", req, sk, "match token", NULL, &out);
	json_t *t = json_object_get(out, "matchToken");
	if (rc == 0 && (!json_is_string(t) || json_string_length(t) == 0 ||
	                json_string_length(t) > VEIL_DIR_MATCH_TOKEN_MAX))
		rc = veil_dir_fail(VEIL_EPROTO, "match token: answer lacks a usable token");
	if (rc == 0)
		snprintf(token, VEIL_DIR_MATCH_TOKEN_MAX + 1, "%s", json_string_value(t));
	json_decref(req);
	json_decref(out);
	return rc;
}

static json_t *b64_list(const uint8_t (*v)[32], size_t n)
{
	json_t *a = json_array();
	char s[VEIL_B64_LEN(32)];
	for (size_t i = 0; a != NULL && i < n; i++) {
		if (veil_b64_encode(s, sizeof s, v[i], 32) != 0 ||
		    json_array_append_new(a, json_string(s)) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int veil_dir_match(const char *dir_url, const char *token, int private_matching,
                   const uint8_t (*email)[32], size_t n_email, const uint8_t (*phone)[32],
                   size_t n_phone, int include_inactive, struct veil_dir_match *out, size_t max,
                   size_t *n, int *check_interval)
{
	veil_dir_clear_err();
	*n = 0;
	json_t *root = NULL;
	json_t *req =
	    json_pack("{s:s, s:o, s:o, s:b}", "matchToken", token,
	              private_matching ? "emailPrfs" : "emailHashes", b64_list(email, n_email),
	              private_matching ? "mobileNoPrfs" : "mobileNoHashes",
	              b64_list(phone, n_phone), "includeInactive", include_inactive);
	if (req == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	int rc = veil_dir_post(dir_url, private_matching ? "identity/oprf_match" : "identity/match",
	                       req, "matching", &root);
	if (rc != 0)
		goto out;
	json_t *ids = json_object_get(root, "identities");
	json_t *ci = json_object_get(root, "checkInterval");
	if (!json_is_array(ids) || !json_is_integer(ci)) {
		rc = veil_dir_fail(VEIL_EPROTO, "matching: malformed answer");
		goto out;
	}
	if (check_interval != NULL)
		*check_interval = (int)json_integer_value(ci);
	for (size_t i = 0; i < json_array_size(ids) && *n < max; i++) {
		json_t *o = json_array_get(ids, i);
		struct veil_dir_match m;
		uint8_t v[32];
		memset(&m, 0, sizeof m);
		if (!json_is_object(o) || veil_dir_json_id(o, "identity", m.id) != 0 ||
		    veil_dir_json_b64(o, "publicKey", m.pk, sizeof m.pk) != 0) {
			rc = veil_dir_fail(VEIL_EPROTO, "matching: malformed identity in answer");
			goto out;
		}
		const char *ef = private_matching ? "emailPrf" : "emailHash";
		const char *pf = private_matching ? "mobileNoPrf" : "mobileNoHash";
		const uint8_t(*list)[32] = NULL;
		size_t ln = 0;
		if (json_object_get(o, ef) != NULL && veil_dir_json_b64(o, ef, v, 32) == 0) {
			m.kind = VEIL_CONTACT_EMAIL;
			list = email;
			ln = n_email;
		} else if (json_object_get(o, pf) != NULL && veil_dir_json_b64(o, pf, v, 32) == 0) {
			m.kind = VEIL_CONTACT_PHONE;
			list = phone;
			ln = n_phone;
		} else {
			rc = veil_dir_fail(VEIL_EPROTO, "matching: answer names no hash");
			goto out;
		}
		size_t j;
		for (j = 0; j < ln; j++)
			if (memcmp(list[j], v, 32) == 0)
				break;
		if (j == ln)
			continue; /* a hash we did not ask about: ignore it */
		m.index = j;
		out[(*n)++] = m;
	}
out:
	json_decref(req);
	json_decref(root);
	return rc;
}

int veil_dir_oprf_eval(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                       const uint8_t sk[static VEIL_KEY_LEN], const uint8_t (*in)[32], size_t n,
                       uint8_t (*out)[32])
{
	veil_dir_clear_err();
	if (n == 0 || n > VEIL_OPRF_MAX_BATCH)
		return veil_dir_fail(VEIL_EINVAL, "1 to %d elements per evaluation",
		                     VEIL_OPRF_MAX_BATCH);
	json_t *root = NULL, *req = id_req(id);
	int rc = VEIL_ENOMEM;
	if (req == NULL || json_object_set_new(req, "elements", b64_list(in, n)) != 0) {
		rc = veil_dir_fail(VEIL_ENOMEM, "out of memory");
		goto out;
	}
	rc = veil_dir_auth_post(dir_url, "identity/oprf_eval", req, sk, "private matching", NULL,
	                        &root);
	if (rc != 0)
		goto out;
	json_t *arr = json_object_get(root, "elements");
	if (!json_is_array(arr) || json_array_size(arr) != n) {
		rc = veil_dir_fail(VEIL_EPROTO, "private matching: wrong number of elements");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(arr, i);
		if (!json_is_string(s) ||
		    veil_b64_decode(out[i], 32, json_string_value(s), json_string_length(s)) != 0) {
			rc = veil_dir_fail(VEIL_EPROTO, "private matching: malformed element");
			goto out;
		}
	}
out:
	json_decref(req);
	json_decref(root);
	return rc;
}

/* An authenticated call whose answer is just {success: true}. */
static int simple_call(const char *dir_url, const char *endpoint, json_t *req,
                       const uint8_t sk[static VEIL_KEY_LEN], const char *what)
{
	json_t *out = NULL;
	if (req == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	int rc = veil_dir_auth_post(dir_url, endpoint, req, sk, what, NULL, &out);
	if (rc == 0 && !json_is_true(json_object_get(out, "success")))
		rc = veil_dir_fail(VEIL_EPROTO, "%s: answer lacks success", what);
	json_decref(req);
	json_decref(out);
	return rc;
}

int veil_dir_revoke(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                    const uint8_t sk[static VEIL_KEY_LEN])
{
	veil_dir_clear_err();
	return simple_call(dir_url, "identity/revoke", id_req(id), sk, "revocation");
}

static void revocation_key(const char *password, char out[static VEIL_B64_LEN(4)])
{
	uint8_t h[32];
	crypto_hash_sha256(h, (const unsigned char *)password, strlen(password));
	if (veil_b64_encode(out, VEIL_B64_LEN(4), h, 4) != 0)
		out[0] = 0;
	sodium_memzero(h, sizeof h);
}

int veil_dir_set_revocation_key(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                                const uint8_t sk[static VEIL_KEY_LEN], const char *password)
{
	char key[VEIL_B64_LEN(4)];
	veil_dir_clear_err();
	revocation_key(password, key);
	json_t *req = id_req(id);
	if (req != NULL && json_object_set_new(req, "revocationKey", json_string(key)) != 0) {
		json_decref(req);
		req = NULL;
	}
	return simple_call(dir_url, "identity/set_revocation_key", req, sk, "revocation key");
}

int veil_dir_check_revocation_key(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                                  const uint8_t sk[static VEIL_KEY_LEN], int *set,
                                  char last_changed[static 32])
{
	veil_dir_clear_err();
	*set = 0;
	last_changed[0] = 0;
	json_t *out = NULL, *req = id_req(id);
	if (req == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	int rc = veil_dir_auth_post(dir_url, "identity/check_revocation_key", req, sk,
	                            "revocation key", NULL, &out);
	json_t *s = json_object_get(out, "revocationKeySet");
	if (rc == 0 && !json_is_boolean(s))
		rc = veil_dir_fail(VEIL_EPROTO, "revocation key: malformed answer");
	if (rc == 0 && json_is_true(s)) {
		json_t *d = json_object_get(out, "lastChanged");
		*set = 1;
		if (json_is_string(d))
			snprintf(last_changed, 32, "%s", json_string_value(d));
	}
	json_decref(req);
	json_decref(out);
	return rc;
}

int veil_dir_revoke_with_password(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                                  const char *password)
{
	char key[VEIL_B64_LEN(4)];
	veil_dir_clear_err();
	revocation_key(password, key);
	json_t *out = NULL, *req = id_req(id);
	if (req == NULL || json_object_set_new(req, "revocationKey", json_string(key)) != 0) {
		json_decref(req);
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	}
	int rc = veil_dir_post(dir_url, "identity/ws/revoke", req, "revocation", &out);
	if (rc == 0 && !json_is_true(json_object_get(out, "success")))
		rc = veil_dir_fail(VEIL_EPROTO, "revocation: answer lacks success");
	json_decref(req);
	json_decref(out);
	return rc;
}

int veil_dir_set_featuremask(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                             const uint8_t sk[static VEIL_KEY_LEN], uint64_t mask)
{
	veil_dir_clear_err();
	json_t *req = id_req(id);
	if (req != NULL && json_object_set_new(req, "featureMask",
	                                       json_integer((json_int_t)(mask & INT64_MAX))) != 0) {
		json_decref(req);
		req = NULL;
	}
	return simple_call(dir_url, "identity/set_featuremask", req, sk, "feature mask");
}
