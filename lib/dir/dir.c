/*
 * The directory client over libcurl: one easy handle per call, bounded time
 * and size, no redirects, HTTP(S) only.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "veil/dir.h"
#include "dir_int.h"

struct http_result {
	long status;
	struct veil_buf body;
	int overflow;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : VEIL_EIO;
}

/* Set once before threads start (see veil_dir_set_ca_file); "" = system store. */
static char ca_file[VEIL_DIR_MAX_CA_PATH];

int veil_dir_set_ca_file(const char *path)
{
	if (path == NULL)
		path = "";
	size_t n = strlen(path);
	if (n >= sizeof ca_file)
		return VEIL_ELIMIT;
	memcpy(ca_file, path, n + 1);
	return 0;
}

const char *veil_dir_ca_file(void)
{
	return ca_file[0] != '\0' ? ca_file : NULL;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct http_result *r = arg;
	size_t n = size * nmemb;
	if (veil_buf_append(&r->body, p, n) != 0) {
		r->overflow = 1;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	return n;
}

/* Joins base and tail with exactly one '/' between them. */
static int join_url(char *out, size_t cap, const char *base, const char *tail)
{
	size_t bl = strlen(base);
	int slash = bl > 0 && base[bl - 1] == '/';
	int n = snprintf(out, cap, "%s%s%s", base, slash ? "" : "/", tail);
	if (n < 0 || (size_t)n >= cap)
		return veil_dir_fail(VEIL_EINVAL, "URL too long");
	return 0;
}

/*
 * GET url (post == NULL) or POST the JSON text post. On 0, r->status and
 * r->body hold the answer; the caller releases r->body in every case.
 */
static int http_do(const char *url, const char *post, struct http_result *r)
{
	memset(r, 0, sizeof *r);
	veil_buf_init(&r->body, VEIL_DIR_MAX_RESPONSE);
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != 0)
		return veil_dir_fail(VEIL_EIO, "cannot initialise libcurl");
	CURL *c = curl_easy_init();
	if (c == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "cannot create an HTTP handle");
	struct curl_slist *hdr = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	int rc = 0;
	hdr = curl_slist_append(hdr, "Accept: application/json");
	if (post != NULL && hdr != NULL)
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (hdr == NULL) {
		rc = veil_dir_fail(VEIL_ENOMEM, "out of memory");
		goto out;
	}
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
		rc = veil_dir_fail(VEIL_EINVAL, "unusable URL");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	/* libcurl's defaults, stated: the certificate and the host name are checked. */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (veil_dir_ca_file() != NULL &&
	    curl_easy_setopt(c, CURLOPT_CAINFO, veil_dir_ca_file()) != CURLE_OK) {
		rc = veil_dir_fail(VEIL_EINVAL, "cannot use the CA file %s", veil_dir_ca_file());
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)VEIL_DIR_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)VEIL_DIR_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)VEIL_DIR_MAX_RESPONSE);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "veil");
	if (post != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
	}
	CURLcode cc = curl_easy_perform(c);
	if (r->overflow || cc == CURLE_FILESIZE_EXCEEDED) {
		rc = veil_dir_fail(VEIL_ELIMIT, "answer from %s is larger than %u bytes", url,
		                   VEIL_DIR_MAX_RESPONSE);
		goto out;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = veil_dir_fail(VEIL_ETIMEOUT, "%s: %s", url,
		                   errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = veil_dir_fail(VEIL_EIO, "%s: %s", url,
		                   errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return rc;
}

/* Maps a non-200 status to an error, with the server's message if it sent one. */
static int status_error(const struct http_result *r, const char *what)
{
	char msg[160] = "";
	json_t *root = NULL;
	if (r->body.len > 0 && veil_dir_json_load(r->body.p, r->body.len, &root) == 0) {
		json_t *e = json_object_get(root, "error");
		if (json_is_string(e))
			snprintf(msg, sizeof msg, ": %s", json_string_value(e));
		json_decref(root);
	}
	int rc;
	switch (r->status) {
	case 404: rc = VEIL_ENOTFOUND; break;
	case 429: rc = VEIL_EAGAIN; break;
	case 413: rc = VEIL_ELIMIT; break;
	default: rc = r->status >= 400 && r->status < 500 ? VEIL_EPROTO : VEIL_EIO; break;
	}
	return veil_dir_fail(rc, "%s: HTTP status %ld%s", what, r->status, msg);
}

/* If root is {success:false,...}, returns VEIL_EAUTH with the server's error. */
static int success_false(json_t *root, const char *what)
{
	json_t *s = json_object_get(root, "success");
	if (!json_is_false(s))
		return 0;
	json_t *e = json_object_get(root, "error");
	json_t *t = json_object_get(root, "errorType");
	return veil_dir_fail(VEIL_EAUTH, "%s refused: %s%s%s%s", what,
	                     json_is_string(e) ? json_string_value(e) : "no reason given",
	                     json_is_string(t) ? " (" : "",
	                     json_is_string(t) ? json_string_value(t) : "",
	                     json_is_string(t) ? ")" : "");
}

int veil_dir_create_identity(const char *dir_url, const uint8_t pk[static VEIL_KEY_LEN],
                             const uint8_t sk[static VEIL_KEY_LEN], const char *invite,
                             uint8_t out_id[static VEIL_ID_LEN])
{
	static const char *what = "identity creation";
	char pk_b64[VEIL_B64_LEN(VEIL_KEY_LEN)];
	json_t *req = NULL, *root = NULL;
	int rc;
	memset(out_id, 0, VEIL_ID_LEN);
	veil_dir_clear_err();
	if (veil_b64_encode(pk_b64, sizeof pk_b64, pk, VEIL_KEY_LEN) != 0)
		return veil_dir_fail(VEIL_EINVAL, "bad key");
	req = json_pack("{s:s}", "publicKey", pk_b64);
	if (req != NULL && invite != NULL && invite[0] != '\0' &&
	    json_object_set_new(req, "invite", json_string(invite)) != 0) {
		json_decref(req);
		req = NULL;
	}
	if (req == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	rc = veil_dir_auth_post(dir_url, "identity/create", req, sk, what, NULL, &root);
	if (rc == 0 && !json_is_true(json_object_get(root, "success")))
		rc = veil_dir_fail(VEIL_EPROTO, "identity creation answer lacks success");
	if (rc == 0)
		rc = veil_dir_json_id(root, "identity", out_id);
	json_decref(root);
	json_decref(req);
	return rc;
}

int veil_dir_get_identity(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                          struct veil_dir_identity *out)
{
	char url[VEIL_DIR_MAX_URL + 32], tail[32];
	struct http_result r;
	memset(out, 0, sizeof *out);
	veil_dir_clear_err();
	if (!veil_id_valid(id))
		return veil_dir_fail(VEIL_EINVAL, "invalid identity");
	snprintf(tail, sizeof tail, "identity/%.8s", (const char *)id);
	int rc = join_url(url, sizeof url, dir_url, tail);
	if (rc != 0)
		return rc;
	rc = http_do(url, NULL, &r);
	if (rc != 0)
		goto out;
	if (r.status != 200) {
		rc = status_error(&r, "identity lookup");
		goto out;
	}
	rc = veil_dir_parse_identity(r.body.p, r.body.len, out);
	if (rc == 0 && memcmp(out->id, id, VEIL_ID_LEN) != 0) {
		memset(out, 0, sizeof *out);
		rc = veil_dir_fail(VEIL_EPROTO, "directory answered for another identity");
	}
out:
	veil_buf_release(&r.body);
	return rc;
}

int veil_dir_fetch_provisioning(const char *server_url, const uint8_t *pin_sign_pk,
                                const uint8_t *pin_csp_pk, struct veil_dir_provisioning *out)
{
	char url[VEIL_DIR_MAX_URL + 64];
	struct http_result r;
	memset(out, 0, sizeof *out);
	veil_dir_clear_err();
	int rc = join_url(url, sizeof url, server_url, ".well-known/veil/provisioning");
	if (rc != 0)
		return rc;
	rc = http_do(url, NULL, &r);
	if (rc != 0)
		goto out;
	if (r.status != 200) {
		rc = status_error(&r, "provisioning fetch");
		goto out;
	}
	rc = veil_dir_parse_provisioning(r.body.p, r.body.len, pin_sign_pk, pin_csp_pk, out);
out:
	veil_buf_release(&r.body);
	return rc;
}

int veil_dir_post(const char *dir_url, const char *endpoint, json_t *req, const char *what,
                  json_t **out)
{
	char url[VEIL_DIR_MAX_URL + 64];
	struct http_result r;
	*out = NULL;
	memset(&r, 0, sizeof r);
	int rc = join_url(url, sizeof url, dir_url, endpoint);
	if (rc != 0)
		return rc;
	char *text = json_dumps(req, JSON_COMPACT);
	if (text == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	rc = http_do(url, text, &r);
	sodium_memzero(text, strlen(text));
	free(text);
	if (rc == 0 && r.status != 200)
		rc = status_error(&r, what);
	if (rc == 0)
		rc = veil_dir_json_load(r.body.p, r.body.len, out);
	if (rc == 0 && (rc = success_false(*out, what)) != 0) {
		json_decref(*out);
		*out = NULL;
	}
	veil_buf_release(&r.body);
	return rc;
}

/*
 * Runs both phases of req against endpoint. If stop_if_linked and phase 1
 * says {linked: true}, stops there with *linked = 1. *out owns the answer.
 */
int veil_dir_auth_post(const char *dir_url, const char *endpoint, json_t *req,
                       const uint8_t sk[static VEIL_KEY_LEN], const char *what, int *linked,
                       json_t **out)
{
	uint8_t token[VEIL_DIR_MAX_TOKEN], trpk[VEIL_KEY_LEN], response[32];
	char resp_b64[VEIL_B64_LEN(32)];
	size_t token_len = 0;
	json_t *root = NULL;
	*out = NULL;
	if (linked != NULL)
		*linked = 0;
	int rc = veil_dir_post(dir_url, endpoint, req, what, &root);
	if (rc != 0)
		return rc;
	if (linked != NULL && json_is_true(json_object_get(root, "linked"))) {
		*linked = 1;
		*out = root;
		return 0;
	}
	json_t *tok = json_object_get(root, "token");
	if (!json_is_string(tok) ||
	    veil_b64_decode_var(token, sizeof token, &token_len, json_string_value(tok),
	                        json_string_length(tok)) != 0 ||
	    token_len == 0) {
		rc = veil_dir_fail(VEIL_EPROTO, "%s: challenge lacks a usable token", what);
		goto out;
	}
	rc = veil_dir_json_b64(root, "tokenRespKeyPub", trpk, sizeof trpk);
	if (rc == 0)
		rc = veil_dir_token_response(response, sk, trpk, token, token_len);
	if (rc != 0)
		goto out;
	if (veil_b64_encode(resp_b64, sizeof resp_b64, response, sizeof response) != 0 ||
	    json_object_set(req, "token", tok) != 0 ||
	    json_object_set_new(req, "response", json_string(resp_b64)) != 0) {
		rc = veil_dir_fail(VEIL_ENOMEM, "out of memory");
		goto out;
	}
	rc = veil_dir_post(dir_url, endpoint, req, what, out);
out:
	sodium_memzero(response, sizeof response);
	json_decref(root);
	return rc;
}

int veil_dir_blob_cred(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                       const uint8_t sk[static VEIL_KEY_LEN], char *token, size_t cap)
{
	json_t *root = NULL;
	json_t *req = json_pack("{s:s%}", "identity", (const char *)id, (size_t)VEIL_ID_LEN);
	int rc;
	if (cap > 0)
		token[0] = '\0';
	veil_dir_clear_err();
	if (req == NULL)
		return veil_dir_fail(VEIL_ENOMEM, "out of memory");
	rc = veil_dir_auth_post(dir_url, "identity/blob_cred", req, sk, "blob credential", NULL,
	                        &root);
	json_t *t = rc == 0 ? json_object_get(root, "token") : NULL;
	if (rc == 0 && (!json_is_true(json_object_get(root, "success")) || !json_is_string(t) ||
	                json_string_length(t) == 0))
		rc = veil_dir_fail(VEIL_EPROTO, "blob credential answer lacks a token");
	if (rc == 0 && json_string_length(t) >= cap)
		rc = veil_dir_fail(VEIL_ELIMIT, "blob credential too long");
	if (rc == 0)
		memcpy(token, json_string_value(t), json_string_length(t) + 1);
	json_decref(root);
	json_decref(req);
	return rc;
}
