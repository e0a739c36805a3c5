/*
 * Parsing of directory request bodies. Bodies come straight from the
 * network: the nesting depth is bounded before jansson sees the text, the
 * size is bounded, duplicate keys and trailing bytes are refused, and every
 * field is checked for type and length before it is used.
 */
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "directory.h"

/* Loads a JSON object from body, or returns VEIL_EPROTO / VEIL_ELIMIT with *why. */
static int load_object(const uint8_t *body, size_t len, json_t **out, const char **why)
{
	*out = NULL;
	if (len > VEIL_DIRSVC_MAX_JSON) {
		*why = "request too large";
		return VEIL_ELIMIT;
	}
	if (veil_json_depth_ok(body, len, VEIL_DIRSVC_MAX_DEPTH) != 0) {
		*why = "JSON nested too deeply";
		return VEIL_ELIMIT;
	}
	json_error_t err;
	json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		*why = "malformed JSON";
		return VEIL_EPROTO;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		*why = "JSON body must be an object";
		return VEIL_EPROTO;
	}
	*out = root;
	return 0;
}

/* Decodes a base64 string field into exactly want bytes. */
static int b64_field(json_t *root, const char *name, uint8_t *out, size_t want, int required,
                     int *present, const char **why, const char *missing, const char *bad)
{
	json_t *v = json_object_get(root, name);
	if (present != NULL)
		*present = v != NULL;
	if (v == NULL) {
		if (!required)
			return 0;
		*why = missing;
		return VEIL_EPROTO;
	}
	if (!json_is_string(v) ||
	    veil_b64_decode(out, want, json_string_value(v), json_string_length(v)) != 0) {
		*why = bad;
		return VEIL_EPROTO;
	}
	return 0;
}

int veil_dirsvc_parse_create(const uint8_t *body, size_t len, struct veil_dirsvc_create_req *out,
                             const char **why)
{
	memset(out, 0, sizeof *out);
	*why = NULL;
	json_t *root = NULL;
	int rc = load_object(body, len, &root, why);
	if (rc != 0)
		goto out;
	rc = b64_field(root, "publicKey", out->pk, sizeof out->pk, 1, NULL, why,
	               "missing field publicKey", "publicKey must be 32 bytes in base64");
	if (rc != 0)
		goto out;
	json_t *inv = json_object_get(root, "invite");
	if (inv != NULL) {
		if (!json_is_string(inv) || json_string_length(inv) > VEIL_INVITE_TEXT_MAX ||
		    strlen(json_string_value(inv)) != json_string_length(inv)) {
			*why = "invite must be a string of at most 64 characters";
			rc = VEIL_EPROTO;
			goto out;
		}
		memcpy(out->invite, json_string_value(inv), json_string_length(inv) + 1);
	}

	json_t *tok = json_object_get(root, "token");
	json_t *resp = json_object_get(root, "response");
	if (tok == NULL && resp == NULL)
		goto out; /* phase 1 */
	if (tok == NULL || resp == NULL) {
		*why = "token and response must be sent together";
		rc = VEIL_EPROTO;
		goto out;
	}
	if (!json_is_string(tok) ||
	    veil_b64_decode_var(out->token, sizeof out->token, &out->token_len,
	                        json_string_value(tok), json_string_length(tok)) != 0 ||
	    out->token_len == 0) {
		*why = "token must be base64";
		rc = VEIL_EPROTO;
		goto out;
	}
	rc = b64_field(root, "response", out->response, sizeof out->response, 1, NULL, why,
	               "missing field response", "response must be 32 bytes in base64");
	if (rc != 0)
		goto out;
	out->has_token = 1;
out:
	json_decref(root);
	if (rc != 0) {
		sodium_memzero(out, sizeof *out);
		if (*why == NULL)
			*why = "malformed request";
	}
	return rc;
}

int veil_dirsvc_parse_ids(const uint8_t *body, size_t len, uint8_t (*ids)[VEIL_ID_LEN], int *valid,
                          size_t max, size_t *n, const char **why)
{
	*n = 0;
	*why = NULL;
	json_t *root = NULL;
	int rc = load_object(body, len, &root, why);
	if (rc != 0)
		goto out;
	json_t *arr = json_object_get(root, "identities");
	if (arr == NULL) {
		*why = "missing field identities";
		rc = VEIL_EPROTO;
		goto out;
	}
	if (!json_is_array(arr)) {
		*why = "identities must be an array";
		rc = VEIL_EPROTO;
		goto out;
	}
	size_t cnt = json_array_size(arr);
	if (cnt > max) {
		*why = "too many identities";
		rc = VEIL_ELIMIT;
		goto out;
	}
	for (size_t i = 0; i < cnt; i++) {
		json_t *v = json_array_get(arr, i);
		if (!json_is_string(v)) {
			*why = "identities must be strings";
			rc = VEIL_EPROTO;
			goto out;
		}
		memset(ids[i], 0, VEIL_ID_LEN);
		valid[i] = json_string_length(v) == VEIL_ID_LEN &&
		           veil_id_parse(ids[i], json_string_value(v)) == 0;
	}
	*n = cnt;
out:
	json_decref(root);
	if (rc != 0 && *why == NULL)
		*why = "malformed request";
	return rc;
}
