/*
 * Backup targets (include/veil/safe.h): the Safe server API and WebDAV over
 * libcurl, the profile's backup settings (a sealed record of its store) and one backup run.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "veil/safe.h"
#include "vault_int.h"

#define CFG_MAX 16384
#define CONFIG_MAX 4096 /* the server's config document */

static int efail(char *e, size_t cap, int rc, const char *fmt, ...) VEIL_PRINTF(4, 5);
static int efail(char *e, size_t cap, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (e != NULL && cap > 0)
		vsnprintf(e, cap, fmt, ap);
	va_end(ap);
	return rc;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_init(void)
{
	curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static int status_rc(long st)
{
	switch (st) {
	case 401:
	case 403: return VEIL_EAUTH;
	case 404:
	case 410: return VEIL_ENOTFOUND;
	case 413:
	case 507: return VEIL_ELIMIT;
	case 429: return VEIL_EAGAIN;
	default: return st >= 400 && st < 500 ? VEIL_EPROTO : VEIL_EIO;
	}
}

struct req {
	const char *method;
	const char *path; /* after the target's URL */
	const uint8_t *body;
	size_t body_len;
	const char *destination; /* MOVE only: the path of the destination */
	struct veil_buf *out;    /* response body, NULL: dropped */
	int overflow;            /* the body did not fit out */
	long status;
	int dav; /* the answer had a DAV header */
};

static size_t to_buf(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *r = arg;
	if (r->out == NULL)
		return size * nmemb;
	if (veil_buf_append(r->out, p, size * nmemb) == 0)
		return size * nmemb;
	r->overflow = 1;
	return 0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *r = arg;
	size_t n = size * nmemb;
	if (n >= 4 && strncasecmp(p, "DAV:", 4) == 0)
		r->dav = 1;
	return n;
}

static int url_of(char *out, size_t cap, const struct veil_backup_target *t, const char *path)
{
	int n = snprintf(out, cap, "%s%s", t->url, path);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

/* One HTTP request; 0 with r->status set (any status), or a transport error. */
static int request(const struct veil_backup_target *t, struct req *r, char *e, size_t cap)
{
	char url[VEIL_PROFILE_URL_MAX + 128], dest[VEIL_PROFILE_URL_MAX + 160];
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL, *h2;
	int rc = 0;
	CURL *c = NULL;

	r->status = 0;
	r->dav = 0;
	r->overflow = 0;
	if (url_of(url, sizeof url, t, r->path) != 0)
		return efail(e, cap, VEIL_ELIMIT, "the backup URL is too long");
	pthread_once(&curl_once, curl_init);
	if (!curl_ok || (c = curl_easy_init()) == NULL)
		return efail(e, cap, VEIL_ENOMEM, "cannot start libcurl");
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
		rc = efail(e, cap, VEIL_EINVAL, "unusable backup URL");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (t->cacert[0] != 0)
		curl_easy_setopt(c, CURLOPT_CAINFO, t->cacert);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)VEIL_BACKUP_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "veil");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (t->user[0] != 0 || t->password[0] != 0) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, t->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, t->password);
	}
	if (strcmp(r->method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
	if (strcmp(r->method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)r->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
		if (hdr != NULL && (h2 = curl_slist_append(hdr, "Expect:")) != NULL)
			hdr = h2;
	} else if (strcmp(r->method, "OPTIONS") == 0 || strcmp(r->method, "DELETE") == 0 ||
	           strcmp(r->method, "MKCOL") == 0 || strcmp(r->method, "MOVE") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
	}
	if (r->destination != NULL) {
		int n = snprintf(dest, sizeof dest, "Destination: %s%s", t->url, r->destination);
		if (n < 0 || (size_t)n >= sizeof dest) {
			rc = efail(e, cap, VEIL_ELIMIT, "the backup URL is too long");
			goto out;
		}
		hdr = curl_slist_append(hdr, dest);
		if (hdr != NULL && (h2 = curl_slist_append(hdr, "Overwrite: T")) != NULL)
			hdr = h2;
	}
	if (hdr != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	CURLcode cr = curl_easy_perform(c);
	if (cr != CURLE_OK) {
		rc = efail(e, cap, cr == CURLE_OPERATION_TIMEDOUT ? VEIL_ETIMEOUT : VEIL_EIO,
		           "%s %s: %s", r->method, t->url,
		           errbuf[0] ? errbuf : curl_easy_strerror(cr));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return rc;
}

/* An HTTP error status as a veil_err with a sentence. */
static int http_fail(const struct veil_backup_target *t, const struct req *r, char *e, size_t cap)
{
	return efail(e, cap, status_rc(r->status), "%s %s%s: HTTP %ld%s", r->method, t->url,
	             r->path, r->status,
	             r->status == 401 || r->status == 403 ? " (wrong user or password?)" : "");
}

static int ok(long st)
{
	return st >= 200 && st < 300;
}

/* Reads the Safe server's config document into t. */
static int parse_config(struct veil_backup_target *t, const struct veil_buf *b)
{
	json_t *o = json_loadb((const char *)b->p, b->len, JSON_REJECT_DUPLICATES, NULL);
	json_t *mx = json_object_get(o, "maxBackupBytes"),
	       *rt = json_object_get(o, "retentionDays");
	int rc = VEIL_EPROTO;
	if (json_is_integer(mx) && json_integer_value(mx) > 0 && json_is_integer(rt) &&
	    json_integer_value(rt) >= 0 && json_integer_value(rt) <= 100000) {
		t->max_bytes = (uint64_t)json_integer_value(mx);
		t->retention_days = (uint32_t)json_integer_value(rt);
		rc = 0;
	}
	json_decref(o);
	return rc;
}

int veil_backup_probe(struct veil_backup_target *t, const char *url, char *e, size_t cap)
{
	struct veil_buf b;
	int rc;
	size_t n = url != NULL ? strlen(url) : 0;
	if (n == 0 || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
		return efail(e, cap, VEIL_EINVAL,
		             "the backup URL must begin with http:// or https://");
	if (n + 2 > sizeof t->url)
		return efail(e, cap, VEIL_ELIMIT, "the backup URL is too long");
	snprintf(t->url, sizeof t->url, "%s%s", url, url[n - 1] == '/' ? "" : "/");
	t->kind = 0;
	t->max_bytes = 0;
	t->retention_days = 0;

	struct req r = {.method = "OPTIONS", .path = ""};
	if ((rc = request(t, &r, e, cap)) != 0)
		return rc;
	if (r.status == 401 || r.status == 403)
		return http_fail(t, &r, e, cap);
	veil_buf_init(&b, CONFIG_MAX);
	struct req g = {.method = "GET", .path = "config", .out = &b};
	rc = request(t, &g, e, cap);
	if (rc != 0 && g.overflow) {
		rc = 0; /* a long answer (an error page, say) is no config */
		g.status = 0;
	}
	if (rc != 0)
		goto out;
	if (r.dav && ok(r.status)) {
		t->kind = VEIL_BACKUP_WEBDAV;
		/* A config file on the WebDAV server (as the specification's apps want) is optional. */
		if (ok(g.status))
			(void)parse_config(t, &b);
		rc = 0;
		goto out;
	}
	if (!ok(g.status)) {
		rc = g.status == 404 ? efail(e, cap, VEIL_EPROTO,
		                             "%s is neither a WebDAV server nor a Safe server "
		                             "(no DAV header, no config)",
		                             t->url)
		                     : http_fail(t, &g, e, cap);
		goto out;
	}
	if (parse_config(t, &b) != 0) {
		rc = efail(e, cap, VEIL_EPROTO, "%sconfig is not a Safe server's config", t->url);
		goto out;
	}
	t->kind = VEIL_BACKUP_SAFE;
out:
	veil_buf_release(&b);
	return rc;
}

static int backup_path(char *out, size_t cap, const uint8_t bid[static VEIL_SAFE_ID_LEN],
                       const char *suffix)
{
	char hex[VEIL_HEX_LEN(VEIL_SAFE_ID_LEN)];
	if (veil_hex_encode(hex, sizeof hex, bid, VEIL_SAFE_ID_LEN) != 0)
		return VEIL_EINVAL;
	int n = snprintf(out, cap, "backups/%s%s", hex, suffix);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

int veil_backup_upload(const struct veil_backup_target *t,
                       const uint8_t backup_id[static VEIL_SAFE_ID_LEN], const uint8_t *blob,
                       size_t len, char *e, size_t cap)
{
	char path[128], tmp[128], suffix[32];
	int rc;
	if (t->max_bytes > 0 && len > t->max_bytes)
		return efail(e, cap, VEIL_ELIMIT,
		             "the backup (%zu bytes) exceeds the server's limit of %" PRIu64
		             " bytes",
		             len, t->max_bytes);
	if ((rc = backup_path(path, sizeof path, backup_id, "")) != 0)
		return efail(e, cap, rc, "invalid backup ID");
	if (t->kind != VEIL_BACKUP_WEBDAV) {
		struct req r = {.method = "PUT", .path = path, .body = blob, .body_len = len};
		if ((rc = request(t, &r, e, cap)) != 0)
			return rc;
		return ok(r.status) ? 0 : http_fail(t, &r, e, cap);
	}
	/* WebDAV: a temporary name first; the MOVE replaces the old backup in one step. */
	uint8_t rnd[8];
	char rh[VEIL_HEX_LEN(8)];
	randombytes_buf(rnd, sizeof rnd);
	if (veil_hex_encode(rh, sizeof rh, rnd, sizeof rnd) != 0)
		return VEIL_EINVAL;
	snprintf(suffix, sizeof suffix, ".tmp-%s", rh);
	if ((rc = backup_path(tmp, sizeof tmp, backup_id, suffix)) != 0)
		return efail(e, cap, rc, "invalid backup ID");
	struct req put = {.method = "PUT", .path = tmp, .body = blob, .body_len = len};
	if ((rc = request(t, &put, e, cap)) != 0)
		return rc;
	if (put.status == 409) {
		/* The collection backups/ does not exist yet. */
		struct req mk = {.method = "MKCOL", .path = "backups/"};
		if ((rc = request(t, &mk, e, cap)) != 0)
			return rc;
		if (!ok(mk.status) && mk.status != 405)
			return http_fail(t, &mk, e, cap);
		if ((rc = request(t, &put, e, cap)) != 0)
			return rc;
	}
	if (!ok(put.status))
		return http_fail(t, &put, e, cap);
	struct req mv = {.method = "MOVE", .path = tmp, .destination = path};
	rc = request(t, &mv, e, cap);
	if (rc == 0 && !ok(mv.status))
		rc = http_fail(t, &mv, e, cap);
	if (rc != 0) {
		char e2[8];
		struct req del = {.method = "DELETE", .path = tmp};
		(void)request(t, &del, e2, sizeof e2); /* best effort; the old backup stands */
	}
	return rc;
}

int veil_backup_download(const struct veil_backup_target *t,
                         const uint8_t backup_id[static VEIL_SAFE_ID_LEN], struct veil_buf *out,
                         char *e, size_t cap)
{
	char path[128];
	int rc;
	if ((rc = backup_path(path, sizeof path, backup_id, "")) != 0)
		return efail(e, cap, rc, "invalid backup ID");
	veil_buf_reset(out);
	struct req r = {.method = "GET", .path = path, .out = out};
	if ((rc = request(t, &r, e, cap)) != 0) {
		if (r.overflow)
			return efail(e, cap, VEIL_ELIMIT, "the backup is larger than %zu bytes",
			             out->max);
		return rc;
	}
	if (r.status == 404)
		return efail(e, cap, VEIL_ENOTFOUND,
		             "no backup for this ID and password at %s (wrong ID or password?)",
		             t->url);
	return ok(r.status) ? 0 : http_fail(t, &r, e, cap);
}

/* ---------------------------------------------------------------------- */
/* Settings                                                               */
/* ---------------------------------------------------------------------- */

void veil_backup_cfg_wipe(struct veil_backup_cfg *c)
{
	sodium_memzero(c, sizeof *c);
}

static int str_field(json_t *o, const char *k, char *out, size_t cap)
{
	json_t *v = json_object_get(o, k);
	out[0] = 0;
	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= cap)
		return VEIL_EPROTO;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static uint64_t u64_field(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
	                                                       : 0;
}

int veil_backup_cfg_load(struct veil_profile *p, struct veil_backup_cfg *c)
{
	char hex[VEIL_HEX_LEN(32)];
	struct veil_buf v;
	int rc;
	json_t *o = NULL;

	memset(c, 0, sizeof *c);
	/* It holds the backup key and the WebDAV password: a sealed record of the profile. */
	veil_buf_init_secret(&v, CFG_MAX);
	if ((rc = veil_rec_get(p, VEIL_REC_BACKUP, NULL, 0, &v)) != 0) {
		veil_buf_release(&v);
		return rc;
	}
	o = json_loadb((const char *)v.p, v.len, JSON_REJECT_DUPLICATES, NULL);
	veil_buf_release(&v);
	rc = VEIL_EPROTO;
	if (!json_is_object(o))
		goto out;
	json_t *kind = json_object_get(o, "kind");
	if (!json_is_string(kind))
		goto out;
	c->t.kind = strcmp(json_string_value(kind), "webdav") == 0 ? VEIL_BACKUP_WEBDAV
	            : strcmp(json_string_value(kind), "safe") == 0 ? VEIL_BACKUP_SAFE
	                                                           : 0;
	if (c->t.kind == 0 || str_field(o, "url", c->t.url, sizeof c->t.url) != 0 ||
	    str_field(o, "user", c->t.user, sizeof c->t.user) != 0 ||
	    str_field(o, "password", c->t.password, sizeof c->t.password) != 0 ||
	    str_field(o, "cacert", c->t.cacert, sizeof c->t.cacert) != 0 ||
	    str_field(o, "lastHash", c->last_hash, sizeof c->last_hash) != 0 ||
	    str_field(o, "lastError", c->last_error, sizeof c->last_error) != 0)
		goto out;
	if (str_field(o, "backupId", hex, sizeof hex) != 0 ||
	    veil_hex_decode(c->backup_id, VEIL_SAFE_ID_LEN, hex, strlen(hex)) != 0 ||
	    str_field(o, "key", hex, sizeof hex) != 0 ||
	    veil_hex_decode(c->key, VEIL_SAFE_KEY_LEN, hex, strlen(hex)) != 0)
		goto out;
	c->t.max_bytes = u64_field(o, "maxBackupBytes");
	c->t.retention_days = (uint32_t)u64_field(o, "retentionDays");
	c->last_ok_ms = u64_field(o, "lastSuccess");
	c->last_try_ms = u64_field(o, "lastAttempt");
	c->last_size = u64_field(o, "lastSize");
	rc = 0;
out:
	sodium_memzero(hex, sizeof hex);
	json_t *k = json_object_get(o, "key");
	if (json_is_string(k))
		(void)json_string_set(k, "");
	json_decref(o);
	if (rc != 0)
		veil_backup_cfg_wipe(c);
	return rc;
}

int veil_backup_cfg_save(struct veil_profile *p, const struct veil_backup_cfg *c)
{
	char bid[VEIL_HEX_LEN(32)], key[VEIL_HEX_LEN(32)];
	char *text = NULL;
	int rc = VEIL_ENOMEM;
	json_t *o = json_object();

	if (veil_hex_encode(bid, sizeof bid, c->backup_id, VEIL_SAFE_ID_LEN) != 0 ||
	    veil_hex_encode(key, sizeof key, c->key, VEIL_SAFE_KEY_LEN) != 0) {
		rc = VEIL_EINVAL;
		goto out;
	}
	if (o == NULL ||
	    json_object_set_new(o, "kind",
	                        json_string(c->t.kind == VEIL_BACKUP_WEBDAV ? "webdav" : "safe")) ||
	    json_object_set_new(o, "url", json_string(c->t.url)) ||
	    json_object_set_new(o, "user", json_string(c->t.user)) ||
	    json_object_set_new(o, "password", json_string(c->t.password)) ||
	    json_object_set_new(o, "cacert", json_string(c->t.cacert)) ||
	    json_object_set_new(o, "maxBackupBytes", json_integer((json_int_t)c->t.max_bytes)) ||
	    json_object_set_new(o, "retentionDays", json_integer(c->t.retention_days)) ||
	    json_object_set_new(o, "backupId", json_string(bid)) ||
	    json_object_set_new(o, "key", json_string(key)) ||
	    json_object_set_new(o, "lastSuccess", json_integer((json_int_t)c->last_ok_ms)) ||
	    json_object_set_new(o, "lastAttempt", json_integer((json_int_t)c->last_try_ms)) ||
	    json_object_set_new(o, "lastSize", json_integer((json_int_t)c->last_size)) ||
	    json_object_set_new(o, "lastHash", json_string(c->last_hash)) ||
	    json_object_set_new(o, "lastError", json_string(c->last_error)) ||
	    (text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		goto out;
	rc = veil_rec_put(p, VEIL_REC_BACKUP, NULL, 0, (const uint8_t *)text, strlen(text));
out:
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	json_t *k = json_object_get(o, "key");
	if (json_is_string(k))
		(void)json_string_set(k, "");
	json_decref(o);
	sodium_memzero(key, sizeof key);
	return rc;
}

uint64_t veil_backup_next_ms(const struct veil_backup_cfg *c)
{
	return c->last_ok_ms == 0 ? 0 : c->last_ok_ms + VEIL_BACKUP_MIN_INTERVAL_MS;
}

int veil_backup_run(struct veil_profile *p, int force, char *e, size_t cap)
{
	struct veil_backup_cfg c;
	struct veil_buf json, blob;
	uint8_t hash[32];
	char hex[VEIL_HEX_LEN(32)];
	int rc;

	if ((rc = veil_backup_cfg_load(p, &c)) != 0)
		return efail(e, cap, rc,
		             rc == VEIL_ENOTFOUND ? "no backup configured ('veil backup config')"
		                                  : "cannot read the backup settings in %s: %s",
		             p->home, veil_strerror(rc));
	veil_buf_init_secret(&json, VEIL_SAFE_JSON_MAX);
	veil_buf_init(&blob, VEIL_SAFE_BLOB_MAX);
	if ((rc = veil_backup_export(p, &json)) != 0) {
		efail(e, cap, rc, "cannot build the backup: %s", veil_strerror(rc));
		goto out;
	}
	crypto_hash_sha256(hash, json.p, json.len);
	if (veil_hex_encode(hex, sizeof hex, hash, sizeof hash) != 0) {
		rc = VEIL_EINVAL;
		goto out;
	}
	uint64_t now = veil_now_ms();
	if (!force && c.last_ok_ms != 0) {
		uint64_t days =
		    c.t.retention_days ? c.t.retention_days : VEIL_BACKUP_DEFAULT_RETENTION_DAYS;
		int same = strcmp(hex, c.last_hash) == 0;
		if (now < c.last_ok_ms + VEIL_BACKUP_MIN_INTERVAL_MS ||
		    (same && now < c.last_ok_ms + days * 86400000ull / 2)) {
			rc = 1;
			goto out;
		}
	}
	c.last_try_ms = now;
	if ((rc = veil_safe_seal(&blob, c.key, json.p, json.len, 1)) != 0)
		efail(e, cap, rc, "cannot encrypt the backup: %s", veil_strerror(rc));
	else
		rc = veil_backup_upload(&c.t, c.backup_id, blob.p, blob.len, e, cap);
	if (rc == 0) {
		c.last_ok_ms = now;
		c.last_size = blob.len;
		snprintf(c.last_hash, sizeof c.last_hash, "%s", hex);
		c.last_error[0] = 0;
	} else {
		snprintf(c.last_error, sizeof c.last_error, "%s",
		         e != NULL ? e : veil_strerror(rc));
	}
	int src = veil_backup_cfg_save(p, &c);
	if (rc == 0 && src != 0)
		rc = efail(e, cap, src, "uploaded, but cannot record it in the profile %s: %s",
		           p->home, veil_strerror(src));
out:
	veil_buf_release(&json);
	veil_buf_release(&blob);
	veil_backup_cfg_wipe(&c);
	return rc;
}
