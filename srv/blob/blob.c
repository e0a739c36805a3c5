/*
 * The blob service's handlers and its files (see blob.h); the metadata is
 * behind blobmeta.h. Everything runs on the HTTP thread, so the in-flight
 * upload list and the metadata connection need no locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <jansson.h>
#include <sodium.h>

#include "blob.h"
#include "blobmeta.h"
#include "store/store.h"
#include "../directory/directory.h"
#include "metrics/metrics.h"

#define TOKEN_VERSION 1
#define TOKEN_BODY 17 /* version + identity + expires */
#define PATH_MAX_LEN 1200
#define BLOB_MIME "application/octet-stream"
#define VEIL_BLOB_WBUF (256u * 1024u)

static const char *ep_cred = "identity/blob_cred";

struct upload;

struct veil_blobsvc {
	struct veil_server *srv;
	char dir[PATH_MAX_LEN];
	char tmpdir[PATH_MAX_LEN + 32]; /* this node's uploads in progress: <dir>/tmp/<node> */
	struct veil_blobmeta *meta;
	uint64_t last_sweep_ms;
	struct upload *uploads; /* in flight, for the quota */
};

struct upload {
	struct veil_blobsvc *b;
	struct upload *next;
	uint8_t owner[VEIL_ID_LEN];
	int persist;
	int fd;
	char tmp[PATH_MAX_LEN + 96];
	uint64_t size;     /* blob bytes written so far */
	uint64_t max_size; /* blob bytes allowed (size limit) */
	/*
	 * Bytes of the owner's quota this upload holds while it runs: from
	 * begin the blob size its Content-Length announces (less the framing
	 * allowance), grown as more arrives, never below size; 0 once the blob
	 * is stored (its row counts instead). Removed with the upload.
	 */
	uint64_t reserved;
	uint8_t *wbuf; /* VEIL_BLOB_WBUF bytes: the parser hands out small pieces */
	size_t wlen;
	int fail_status; /* HTTP status once the upload failed, else 0 */
	const char *fail_msg;
	struct veil_multipart mp;
};

/* ---------------------------------------------------------------------- */
/* Tokens                                                                 */
/* ---------------------------------------------------------------------- */

static int token_mac(uint8_t mac[static 32], const struct veil_server_keys *keys,
                     const uint8_t body[static TOKEN_BODY])
{
	uint8_t k[32];
	int rc = veil_kdf(k, sizeof k, keys->dir_sk, VEIL_KEY_LEN, "blob", 4, "veil-dir", 8);
	if (rc == 0)
		veil_blake2b_mac(mac, k, body, TOKEN_BODY);
	sodium_memzero(k, sizeof k);
	return rc;
}

int veil_blob_token_issue(const struct veil_server_keys *keys, const uint8_t id[static VEIL_ID_LEN],
                          uint64_t expires_ms, uint8_t out[static VEIL_BLOB_TOKEN_LEN])
{
	out[0] = TOKEN_VERSION;
	memcpy(out + 1, id, VEIL_ID_LEN);
	veil_store_u64le(out + 9, expires_ms);
	return token_mac(out + TOKEN_BODY, keys, out);
}

int veil_blob_token_check(const struct veil_server_keys *keys, const uint8_t *tok, size_t len,
                          uint64_t now_ms, uint8_t id[static VEIL_ID_LEN])
{
	uint8_t mac[32];
	if (len != VEIL_BLOB_TOKEN_LEN || tok[0] != TOKEN_VERSION)
		return VEIL_ECRYPTO;
	if (token_mac(mac, keys, tok) != 0 || veil_memcmp(mac, tok + TOKEN_BODY, 32) != 0)
		return VEIL_ECRYPTO;
	if (now_ms >= veil_load_u64le(tok + 9))
		return VEIL_ETIMEOUT;
	memcpy(id, tok + 1, VEIL_ID_LEN);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Store                                                                  */
/* ---------------------------------------------------------------------- */

static void blob_path(const struct veil_blobsvc *b, const uint8_t id[static VEIL_BLOB_ID_BYTES],
                      char *out, size_t cap, int dir_only)
{
	char hex[VEIL_HEX_LEN(VEIL_BLOB_ID_BYTES)];
	if (veil_hex_encode(hex, sizeof hex, id, VEIL_BLOB_ID_BYTES) != 0)
		hex[0] = '\0';
	if (dir_only)
		snprintf(out, cap, "%s/%.2s", b->dir, hex);
	else
		snprintf(out, cap, "%s/%.2s/%s", b->dir, hex, hex);
}

/* Deletes the file, then the row (a crash in between leaves a row whose file is gone). */
static int blob_delete(struct veil_blobsvc *b, const uint8_t id[static VEIL_BLOB_ID_BYTES])
{
	char path[PATH_MAX_LEN + 64];
	blob_path(b, id, path, sizeof path, 0);
	/* Gone already: another node sharing the directory deleted it first. */
	if (unlink(path) != 0 && errno != ENOENT)
		return VEIL_EIO;
	return b->meta->ops->del(b->meta, id);
}

/* The owner's live blobs (in the metadata, every node's) and this node's uploads in progress. */
static int usage(struct veil_blobsvc *b, const uint8_t owner[static VEIL_ID_LEN], uint64_t now_ms,
                 uint64_t *used)
{
	int rc = b->meta->ops->usage(b->meta, owner, now_ms, used);
	if (rc != 0)
		return rc;
	for (const struct upload *u = b->uploads; u != NULL; u = u->next)
		if (memcmp(u->owner, owner, VEIL_ID_LEN) == 0)
			*used += u->reserved;
	return 0;
}

int veil_blobsvc_sweep(struct veil_blobsvc *b, uint64_t now_ms)
{
	int n = 0;
	b->last_sweep_ms = veil_mono_ms();
	for (;;) {
		uint8_t ids[VEIL_BLOBMETA_EXPIRED_MAX][VEIL_BLOBMETA_ID_LEN];
		int k = b->meta->ops->expired(b->meta, now_ms, ids, VEIL_BLOBMETA_EXPIRED_MAX),
		    m = 0;
		for (int i = 0; i < k; i++)
			if (blob_delete(b, ids[i]) == 0)
				m++;
		n += m;
		/* A batch that deleted nothing would come back whole: try again at the next sweep. */
		if (k < VEIL_BLOBMETA_EXPIRED_MAX || m == 0)
			break;
	}
	if (n > 0)
		veil_log_info("blob: %d expired blobs deleted", n);
	return n;
}

static void maybe_sweep(struct veil_blobsvc *b)
{
	if (veil_mono_ms() - b->last_sweep_ms >= VEIL_BLOB_SWEEP_MS)
		veil_blobsvc_sweep(b, veil_now_ms());
}

/*
 * Removes every file in dir: what this node's interrupted uploads left in
 * its own temporary directory (no other node writes there). With
 * flat_only, only regular files, and no directory: tmp/ itself of a blob
 * directory that no other node can share (the default, <data>/blobs),
 * where a veild before per-node directories kept its uploads.
 */
static void clean_tmp(const char *dir, int flat_only)
{
	char path[PATH_MAX_LEN + 400];
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' ||
		    snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
			continue;
		struct stat sb;
		if (flat_only && (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)))
			continue;
		unlink(path);
	}
	closedir(d);
}

/* ---------------------------------------------------------------------- */
/* Upload                                                                 */
/* ---------------------------------------------------------------------- */

static void text_resp(struct veil_http_resp *resp, int status, const char *text)
{
	resp->status = status;
	resp->content_type = "text/plain; charset=utf-8";
	veil_buf_reset(&resp->body);
	if (veil_buf_append(&resp->body, text, strlen(text)) != 0)
		resp->status = 500;
}

static int up_fail(struct upload *u, int status, const char *msg)
{
	if (u->fail_status == 0) {
		u->fail_status = status;
		u->fail_msg = msg;
	}
	return VEIL_ELIMIT;
}

/* Writes the buffered bytes to the temporary file. */
static int up_flush(struct upload *u)
{
	const uint8_t *p = u->wbuf;
	size_t n = u->wlen;
	while (n > 0) {
		ssize_t w = write(u->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return up_fail(u, errno == ENOSPC ? 507 : 500,
			               errno == ENOSPC ? "server storage full"
			                               : "cannot store blob");
		p += w;
		n -= (size_t)w;
		veil_metric_add(VEIL_METRIC_BLOB_BYTES_IN, (uint64_t)w);
	}
	u->wlen = 0;
	return 0;
}

static int up_data(void *ctx, const uint8_t *p, size_t n)
{
	struct upload *u = ctx;
	if (u->size + n > u->max_size)
		return up_fail(u, 413, "blob too large");
	if (u->size + n > u->reserved) {
		/*
		 * More than begin reserved (the framing was smaller than its
		 * allowance): take the rest from what the quota has left now,
		 * counting every other upload's reservation.
		 */
		uint64_t quota = u->b->srv->cfg.blob_quota, more = u->size + n - u->reserved;
		uint64_t used = 0;
		if (usage(u->b, u->owner, veil_now_ms(), &used) != 0)
			return up_fail(u, 500, "store error");
		if (used >= quota || more > quota - used)
			return up_fail(u, 507, "blob quota exceeded");
		u->reserved += more;
	}
	u->size += n;
	while (n > 0) {
		size_t k = VEIL_BLOB_WBUF - u->wlen;
		if (k > n)
			k = n;
		memcpy(u->wbuf + u->wlen, p, k);
		u->wlen += k;
		p += k;
		n -= k;
		if (u->wlen == VEIL_BLOB_WBUF && up_flush(u) != 0)
			return VEIL_EIO;
	}
	return 0;
}

/* "persist=1" among the query arguments. */
static int query_persist(const char *q)
{
	const char *p = q;
	while (p != NULL && *p != '\0') {
		if (strncmp(p, "persist=", 8) == 0)
			return p[8] == '1' && (p[9] == '\0' || p[9] == '&');
		p = strchr(p, '&');
		if (p != NULL)
			p++;
	}
	return 0;
}

static int up_begin(struct veil_blobsvc *b, const struct veil_http_sreq *req, void **ctx,
                    struct veil_http_resp *resp)
{
	static const char scheme[] = "ThreemaBlobToken ";
	uint8_t tok[VEIL_BLOB_TOKEN_LEN + 8], owner[VEIL_ID_LEN];
	size_t toklen = 0;
	const char *a = req->authorization;
	if (strncmp(a, scheme, sizeof scheme - 1) != 0 ||
	    veil_b64_decode_var(tok, sizeof tok, &toklen, a + sizeof scheme - 1,
	                        strlen(a + sizeof scheme - 1)) != 0) {
		veil_http_resp_error(resp, 401, "blob token required", NULL);
		return -1;
	}
	int rc = veil_blob_token_check(&b->srv->keys, tok, toklen, veil_now_ms(), owner);
	if (rc != 0) {
		veil_http_resp_error(
		    resp, 401, rc == VEIL_ETIMEOUT ? "blob token expired" : "invalid blob token",
		    NULL);
		return -1;
	}
	const struct veil_config *cfg = &b->srv->cfg;
	if (req->content_length == 0) {
		veil_http_resp_error(resp, 411, "content-length required", NULL);
		return -1;
	}
	if (req->content_length > cfg->blob_max_size + VEIL_BLOB_FRAMING_MAX) {
		veil_http_resp_error(resp, 413, "blob too large", NULL);
		return -1;
	}
	uint64_t now = veil_now_ms(), used = 0;
	if (usage(b, owner, now, &used) != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return -1;
	}
	uint64_t need = req->content_length > VEIL_BLOB_FRAMING_MAX
	                    ? req->content_length - VEIL_BLOB_FRAMING_MAX
	                    : 0;
	if (used >= cfg->blob_quota || need > cfg->blob_quota - used) {
		veil_http_resp_error(resp, 507, "blob quota exceeded", NULL);
		return -1;
	}
	struct upload *u = calloc(1, sizeof *u);
	if (u == NULL) {
		veil_http_resp_error(resp, 503, "out of memory", NULL);
		return -1;
	}
	u->b = b;
	u->fd = -1;
	memcpy(u->owner, owner, VEIL_ID_LEN);
	u->persist = query_persist(req->query);
	u->max_size = cfg->blob_max_size;
	/*
	 * Held from now on: parallel uploads whose headers all come before any
	 * body each see the others' announced sizes, not only what they have
	 * written so far.
	 */
	u->reserved = need;
	*ctx = u;
	if ((u->wbuf = malloc(VEIL_BLOB_WBUF)) == NULL) {
		veil_http_resp_error(resp, 503, "out of memory", NULL);
		return -1;
	}
	if (veil_multipart_init(&u->mp, req->content_type, "blob", up_data, u) != 0) {
		veil_http_resp_error(resp, 400, "multipart/form-data with field 'blob' expected",
		                     NULL);
		return -1;
	}
	uint8_t rnd[16];
	char rhex[VEIL_HEX_LEN(16)];
	veil_random(rnd, sizeof rnd);
	if (veil_hex_encode(rhex, sizeof rhex, rnd, sizeof rnd) != 0)
		return -1;
	snprintf(u->tmp, sizeof u->tmp, "%s/%s.part", b->tmpdir, rhex);
	u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (u->fd < 0) {
		u->tmp[0] = '\0';
		veil_log_error("blob: cannot create a temporary file: %s", strerror(errno));
		veil_http_resp_error(resp, 500, "cannot store blob", NULL);
		return -1;
	}
	u->next = b->uploads;
	b->uploads = u;
	return 0;
}

static int up_body(void *ctx, const uint8_t *p, size_t len, struct veil_http_resp *resp)
{
	struct upload *u = ctx;
	int rc = veil_multipart_feed(&u->mp, p, len);
	if (rc == 0)
		return 0;
	if (u->fail_status != 0)
		veil_http_resp_error(resp, u->fail_status, u->fail_msg, NULL);
	else
		veil_http_resp_error(resp, rc == VEIL_ELIMIT ? 413 : 400,
		                     "malformed multipart body", NULL);
	return -1;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static void up_end(void *ctx, struct veil_http_resp *resp)
{
	struct upload *u = ctx;
	struct veil_blobsvc *b = u->b;
	if (veil_multipart_finish(&u->mp) != 0) {
		veil_http_resp_error(resp, 400, "incomplete multipart body or no field 'blob'",
		                     NULL);
		return;
	}
	if (u->size == 0) {
		veil_http_resp_error(resp, 400, "empty blob", NULL);
		return;
	}
	/* Durable first, then visible under its ID: a blob is whole or absent. */
	if (up_flush(u) != 0 || fsync(u->fd) != 0) {
		veil_http_resp_error(resp, 500, "cannot store blob", NULL);
		return;
	}
	close(u->fd);
	u->fd = -1;
	uint8_t id[VEIL_BLOB_ID_BYTES];
	char dir[PATH_MAX_LEN + 8], path[PATH_MAX_LEN + 64];
	veil_random(id, sizeof id);
	blob_path(b, id, dir, sizeof dir, 1);
	blob_path(b, id, path, sizeof path, 0);
	if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || rename(u->tmp, path) != 0 ||
	    fsync_dir(dir) != 0) {
		veil_log_error("blob: cannot store a blob: %s", strerror(errno));
		veil_http_resp_error(resp, 500, "cannot store blob", NULL);
		return;
	}
	u->tmp[0] = '\0';
	const struct veil_config *cfg = &b->srv->cfg;
	uint64_t now = veil_now_ms();
	uint64_t ttl = (uint64_t)(u->persist ? cfg->blob_persist_ttl_s : cfg->blob_ttl_s) * 1000;
	if (b->meta->ops->insert(b->meta, id, u->owner, u->size, now, now + ttl, u->persist) != 0) {
		unlink(path);
		veil_http_resp_error(resp, 500, "cannot store blob", NULL);
		return;
	}
	u->reserved = 0; /* the row counts from now on */
	char hex[VEIL_HEX_LEN(VEIL_BLOB_ID_BYTES)];
	if (veil_hex_encode(hex, sizeof hex, id, sizeof id) != 0)
		return;
	veil_log_debug("blob: stored %" PRIu64 " bytes%s", u->size, u->persist ? " (persist)" : "");
	text_resp(resp, 200, hex);
}

static void up_release(void *ctx, int complete)
{
	(void)complete;
	struct upload *u = ctx;
	struct veil_blobsvc *b = u->b;
	for (struct upload **pp = &b->uploads; *pp != NULL; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	if (u->fd >= 0)
		close(u->fd);
	if (u->tmp[0] != '\0')
		unlink(u->tmp); /* failed or cut short: nothing half-written stays */
	free(u->wbuf);
	free(u);
}

/* ---------------------------------------------------------------------- */
/* Download and done                                                      */
/* ---------------------------------------------------------------------- */

/* Parses "bytes=a-b", "bytes=a-" or "bytes=-n" for a body of size; 0, or -1 if unsatisfiable. */
static int parse_range(const char *r, uint64_t size, uint64_t *off, uint64_t *len)
{
	if (strncmp(r, "bytes=", 6) != 0)
		return 1; /* other units: ignore the header */
	const char *p = r + 6;
	if (strchr(p, ',') != NULL)
		return 1; /* several ranges: answer with the whole blob */
	char *end;
	uint64_t a = 0, z = 0;
	int has_a = 0, has_z = 0;
	if (*p >= '0' && *p <= '9') {
		errno = 0;
		a = strtoull(p, &end, 10);
		if (errno != 0)
			return 1;
		p = end;
		has_a = 1;
	}
	if (*p++ != '-')
		return 1;
	if (*p >= '0' && *p <= '9') {
		errno = 0;
		z = strtoull(p, &end, 10);
		if (errno != 0)
			return 1;
		p = end;
		has_z = 1;
	}
	if (*p != '\0' || (!has_a && !has_z))
		return 1;
	if (!has_a) { /* the last z bytes */
		if (z == 0)
			return -1;
		a = z >= size ? 0 : size - z;
		z = size - 1;
	} else if (!has_z || z >= size) {
		z = size - 1;
	}
	if (a >= size || z < a)
		return -1;
	*off = a;
	*len = z - a + 1;
	return 0;
}

static int parse_id(const char *s, size_t n, uint8_t id[static VEIL_BLOB_ID_BYTES])
{
	if (n != 2 * VEIL_BLOB_ID_BYTES)
		return -1;
	for (size_t i = 0; i < n; i++) /* lowercase hex only: one name per blob */
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return -1;
	return veil_hex_decode(id, VEIL_BLOB_ID_BYTES, s, n) == 0 ? 0 : -1;
}

static void download(struct veil_blobsvc *b, const uint8_t id[static VEIL_BLOB_ID_BYTES],
                     const char *range, struct veil_http_resp *resp)
{
	struct veil_blobmeta_row row;
	int rc = b->meta->ops->get(b->meta, id, &row);
	if (rc == VEIL_ENOTFOUND) {
		veil_http_resp_error(resp, 404, "no such blob", NULL);
		return;
	}
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	if (row.expires_ms <= veil_now_ms()) {
		veil_http_resp_error(resp, 410, "blob expired", NULL);
		return;
	}
	char path[PATH_MAX_LEN + 64];
	blob_path(b, id, path, sizeof path, 0);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		if (fd >= 0)
			close(fd);
		veil_http_resp_error(resp, 404, "no such blob", NULL);
		return;
	}
	uint64_t size = (uint64_t)sb.st_size, off = 0, len = size;
	resp->accept_ranges = 1;
	if (range[0] != '\0') {
		int r = parse_range(range, size, &off, &len);
		if (r < 0) {
			close(fd);
			snprintf(resp->content_range, sizeof resp->content_range,
			         "bytes */%" PRIu64, size);
			veil_http_resp_error(resp, 416, "range not satisfiable", NULL);
			return;
		}
		if (r == 0) {
			snprintf(resp->content_range, sizeof resp->content_range,
			         "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off, off + len - 1,
			         size);
			resp->status = 206;
		}
	}
	if (resp->status != 206)
		resp->status = 200;
	resp->content_type = BLOB_MIME;
	resp->has_file = 1;
	resp->file_fd = fd;
	resp->file_off = off;
	resp->file_len = len;
	veil_metric_add(VEIL_METRIC_BLOB_BYTES_OUT, len);
}

static void done(struct veil_blobsvc *b, const uint8_t id[static VEIL_BLOB_ID_BYTES],
                 struct veil_http_resp *resp)
{
	struct veil_blobmeta_row row;
	int rc = b->meta->ops->get(b->meta, id, &row);
	if (rc == VEIL_ENOTFOUND) {
		veil_http_resp_error(resp, 404, "no such blob", NULL);
		return;
	}
	/* Persistent (group) blobs have several readers: they stay until they expire. */
	if (rc == 0 && !row.persist)
		rc = blob_delete(b, id);
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	resp->status = 204;
	resp->content_type = "text/plain";
}

static int blob_begin(void *arg, const struct veil_http_sreq *req, void **ctx,
                      struct veil_http_resp *resp)
{
	struct veil_blobsvc *b = arg;
	const char *p = req->path;
	int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
	uint8_t id[VEIL_BLOB_ID_BYTES];
	*ctx = NULL;
	maybe_sweep(b);
	if (strcmp(p, "upload") == 0) {
		if (!post) {
			veil_http_resp_error(resp, 405, "method not allowed", NULL);
			return -1;
		}
		return up_begin(b, req, ctx, resp);
	}
	size_t n = strlen(p);
	if (n == 2 * VEIL_BLOB_ID_BYTES + 5 && strcmp(p + 2 * VEIL_BLOB_ID_BYTES, "/done") == 0 &&
	    parse_id(p, 2 * VEIL_BLOB_ID_BYTES, id) == 0) {
		if (!post)
			veil_http_resp_error(resp, 405, "method not allowed", NULL);
		else
			done(b, id, resp);
		return -1;
	}
	if (parse_id(p, n, id) == 0) {
		if (!get)
			veil_http_resp_error(resp, 405, "method not allowed", NULL);
		else
			download(b, id, req->range, resp);
		return -1;
	}
	veil_http_resp_error(resp, 404, "not found", NULL);
	return -1;
}

static int blob_body(void *ctx, const uint8_t *p, size_t len, struct veil_http_resp *resp)
{
	return up_body(ctx, p, len, resp);
}

static void blob_end(void *ctx, struct veil_http_resp *resp)
{
	up_end(ctx, resp);
}

static void blob_release(void *ctx, int complete)
{
	up_release(ctx, complete);
}

const struct veil_http_stream_ops veil_blobsvc_ops = {
    .begin = blob_begin,
    .body = blob_body,
    .end = blob_end,
    .release = blob_release,
};

/* ---------------------------------------------------------------------- */
/* identity/blob_cred                                                     */
/* ---------------------------------------------------------------------- */

static json_t *b64_string(const uint8_t *p, size_t n)
{
	char s[VEIL_B64_LEN(128)];
	if (n > 128 || veil_b64_encode(s, sizeof s, p, n) != 0)
		return NULL;
	return json_string(s);
}

static void cred_handler(void *arg, const struct veil_http_req *req, struct veil_http_resp *resp)
{
	struct veil_blobsvc *b = arg;
	const struct veil_server_keys *keys = &b->srv->keys;
	if (req->path[0] != '\0') {
		veil_http_resp_error(resp, 404, "not found", NULL);
		return;
	}
	if (veil_json_depth_ok(req->body, req->body_len, VEIL_DIRSVC_MAX_DEPTH) != 0) {
		veil_http_resp_error(resp, 400, "malformed request", NULL);
		return;
	}
	json_t *o =
	    json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
	json_t *jid = json_object_get(o, "identity"), *jtok = json_object_get(o, "token");
	json_t *jresp = json_object_get(o, "response");
	uint8_t id[VEIL_ID_LEN], tok[VEIL_DIRSVC_MAX_TOKEN], r[32];
	size_t toklen = 0;
	struct veil_identity_rec rec;
	if (!json_is_object(o) || !json_is_string(jid) ||
	    veil_id_parse(id, json_string_value(jid)) != 0) {
		veil_http_resp_error(resp, 400, "identity expected", NULL);
		goto out;
	}
	int rc = veil_store_identity_get(b->srv->store, id, &rec);
	if (rc == VEIL_ENOTFOUND || (rc == 0 && rec.state != VEIL_IDENTITY_ACTIVE)) {
		veil_http_resp_error(resp, 200, "unknown or inactive identity", "invalid-identity");
		goto out;
	}
	if (rc != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		goto out;
	}
	uint64_t now = veil_now_ms();
	if (jtok == NULL) {
		uint8_t t[VEIL_DIRSVC_TOKEN_LEN];
		if (veil_dirsvc_token_issue(keys, ep_cred, rec.pk, now, t) != 0) {
			veil_http_resp_error(resp, 500, "internal error", NULL);
			goto out;
		}
		veil_http_resp_object(resp, 200,
		                      json_pack("{s:o, s:o}", "token", b64_string(t, sizeof t),
		                                "tokenRespKeyPub",
		                                b64_string(keys->dir_pk, VEIL_KEY_LEN)));
		goto out;
	}
	if (!json_is_string(jtok) || !json_is_string(jresp) ||
	    veil_b64_decode_var(tok, sizeof tok, &toklen, json_string_value(jtok),
	                        json_string_length(jtok)) != 0 ||
	    veil_b64_decode(r, sizeof r, json_string_value(jresp), json_string_length(jresp)) !=
	        0) {
		veil_http_resp_error(resp, 400, "malformed token or response", NULL);
		goto out;
	}
	uint64_t expires = 0;
	if (veil_dirsvc_token_check(keys, ep_cred, rec.pk, tok, toklen, now, &expires) != 0 ||
	    veil_dirsvc_response_check(keys, rec.pk, tok, toklen, r) != 0) {
		veil_http_resp_error(resp, 200, "invalid token", "invalid-token");
		goto out;
	}
	rc = veil_store_token_use(b->srv->store, tok, toklen, expires);
	if (rc != 0) {
		veil_http_resp_error(resp, rc == VEIL_EREPLAY ? 200 : 500,
		                     rc == VEIL_EREPLAY ? "token already used" : "store error",
		                     rc == VEIL_EREPLAY ? "invalid-token" : NULL);
		goto out;
	}
	uint8_t bt[VEIL_BLOB_TOKEN_LEN];
	if (veil_blob_token_issue(keys, id, now + VEIL_BLOB_TOKEN_TTL_S * 1000ull, bt) != 0) {
		veil_http_resp_error(resp, 500, "internal error", NULL);
		goto out;
	}
	veil_http_resp_object(resp, 200,
	                      json_pack("{s:b, s:o, s:i}", "success", 1, "token",
	                                b64_string(bt, sizeof bt), "expiration",
	                                VEIL_BLOB_TOKEN_TTL_S));
out:
	json_decref(o);
}

/* ---------------------------------------------------------------------- */
/* Setup                                                                  */
/* ---------------------------------------------------------------------- */

static void blobsvc_free(void *arg)
{
	struct veil_blobsvc *b = arg;
	if (b == NULL)
		return;
	if (b->meta != NULL)
		b->meta->ops->close(b->meta);
	free(b);
}

/*
 * This node's name for its temporary directory: a hash of the host name
 * and the data directory's real path, so that it stays the same across
 * restarts (a restart removes what the last run left) and differs between
 * the nodes that share a blob directory (one data directory per node).
 */
static int node_name(const char *data_dir, char out[static 17])
{
	char host[256] = {0}, *real = realpath(data_dir, NULL);
	uint8_t h[16];
	crypto_generichash_state st;
	if (real == NULL)
		return VEIL_EIO;
	if (gethostname(host, sizeof host - 1) != 0)
		host[0] = '\0';
	crypto_generichash_init(&st, NULL, 0, sizeof h);
	crypto_generichash_update(&st, (const uint8_t *)host, strlen(host) + 1);
	crypto_generichash_update(&st, (const uint8_t *)real, strlen(real));
	crypto_generichash_final(&st, h, sizeof h);
	free(real);
	return veil_hex_encode(out, 17, h, 8) == 0 ? 0 : VEIL_EIO;
}

/*
 * The blob directory's ID in <dir>/.dirid (16 random bytes, made by the
 * first node that needs it): written whole in this node's temporary
 * directory and then linked into place, which fails if another node was
 * first, so every node reads the same ID. 0 or VEIL_EIO.
 */
static int dir_id(const struct veil_blobsvc *b, uint8_t id[static VEIL_BLOBMETA_DIRID_LEN])
{
	char path[PATH_MAX_LEN + 16], tmp[PATH_MAX_LEN + 96];
	snprintf(path, sizeof path, "%s/.dirid", b->dir);
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, id, VEIL_BLOBMETA_DIRID_LEN);
			close(fd);
			return n == VEIL_BLOBMETA_DIRID_LEN ? 0 : VEIL_EIO;
		}
		if (errno != ENOENT || attempt > 0)
			break;
		uint8_t fresh[VEIL_BLOBMETA_DIRID_LEN];
		veil_random(fresh, sizeof fresh);
		snprintf(tmp, sizeof tmp, "%s/dirid.new", b->tmpdir);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			break;
		int ok = write(fd, fresh, sizeof fresh) == (ssize_t)sizeof fresh && fsync(fd) == 0;
		close(fd);
		ok = ok && (link(tmp, path) == 0 || errno == EEXIST);
		unlink(tmp);
		if (!ok || fsync_dir(b->dir) != 0)
			break;
	}
	veil_log_error("blob: cannot read or make %s: %s", path, strerror(errno));
	return VEIL_EIO;
}

/*
 * On PostgreSQL: the rows of a blobs.db that a start on SQLite left in the
 * blob directory are copied into the table, and the file is renamed
 * blobs.db.imported, so that blobs stored before the move stay served.
 */
static int import_sqlite(struct veil_blobsvc *b)
{
	char path[PATH_MAX_LEN + 16], done_path[PATH_MAX_LEN + 32];
	snprintf(path, sizeof path, "%s/blobs.db", b->dir);
	snprintf(done_path, sizeof done_path, "%s/blobs.db.imported", b->dir);
	if (access(path, F_OK) != 0)
		return 0;
	int n = veil_blobmeta_sqlite_import(path, b->meta, veil_now_ms());
	if (n < 0 || rename(path, done_path) != 0) {
		veil_log_error("blob: cannot copy the rows of %s to PostgreSQL", path);
		return VEIL_EIO;
	}
	veil_log_info("blob: %d rows of %s copied to PostgreSQL; the file is now %s", n, path,
	              done_path);
	return 0;
}

int veil_blobsvc_register(struct veil_http *h, struct veil_server *srv)
{
	struct veil_blobsvc *b;
	return veil_blobsvc_register_ex(h, srv, &b);
}

int veil_blobsvc_register_ex(struct veil_http *h, struct veil_server *srv,
                             struct veil_blobsvc **out)
{
	*out = NULL;
	/* Without a data directory (in-process tests of other services) there is no blob store. */
	if (srv->cfg.data_dir[0] == '\0')
		return 0;
	struct veil_blobsvc *b = calloc(1, sizeof *b);
	char tmp[PATH_MAX_LEN + 8];
	int rc = VEIL_EIO;
	if (b == NULL)
		return VEIL_ENOMEM;
	b->srv = srv;
	const char *bd = srv->cfg.blob_dir;
	int shared = bd[0] != '\0'; /* other nodes may use this directory too */
	char node[17];
	if ((shared ? snprintf(b->dir, sizeof b->dir, "%s", bd)
	            : snprintf(b->dir, sizeof b->dir, "%s/blobs", srv->cfg.data_dir)) >=
	    (int)sizeof b->dir) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	snprintf(tmp, sizeof tmp, "%s/tmp", b->dir);
	if ((mkdir(b->dir, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(tmp, 0700) != 0 && errno != EEXIST)) {
		veil_log_error("blob: cannot create %s: %s", b->dir, strerror(errno));
		goto out;
	}
	if ((rc = node_name(srv->cfg.data_dir, node)) != 0)
		goto out;
	snprintf(b->tmpdir, sizeof b->tmpdir, "%s/%s", tmp, node);
	if (mkdir(b->tmpdir, 0700) != 0 && errno != EEXIST) {
		veil_log_error("blob: cannot create %s: %s", b->tmpdir, strerror(errno));
		rc = VEIL_EIO;
		goto out;
	}
	veil_log_info("blob: files in %s, this node's uploads in progress in %s", b->dir,
	              b->tmpdir);
	clean_tmp(b->tmpdir, 0);
	if (!shared)
		clean_tmp(tmp, 1);
	if (veil_store_is_url(srv->cfg.store)) {
		uint8_t dirid[VEIL_BLOBMETA_DIRID_LEN];
		if ((rc = dir_id(b, dirid)) != 0 ||
		    (rc = veil_blobmeta_pg_open(&b->meta, srv->cfg.store, dirid)) != 0 ||
		    (rc = import_sqlite(b)) != 0)
			goto out;
	} else {
		char path[PATH_MAX_LEN + 16];
		snprintf(path, sizeof path, "%s/blobs.db", b->dir);
		if ((rc = veil_blobmeta_sqlite_open(&b->meta, path)) != 0) {
			veil_log_error("blob: cannot open %s", path);
			goto out;
		}
	}
	veil_blobsvc_sweep(b, veil_now_ms());
	if ((rc = veil_http_on_stop(h, blobsvc_free, b)) != 0)
		goto out;
	/* From here on veil_http_stop owns b. */
	rc = veil_http_limit(h, "/blob/", srv->cfg.blob_rate_per_min);
	if (rc == 0)
		rc = veil_http_route_stream(h, NULL, "/blob/", &veil_blobsvc_ops, b);
	if (rc == 0)
		rc = veil_http_route(h, "POST", "/directory/identity/blob_cred", cred_handler, b);
	if (rc == 0)
		*out = b;
	return rc;
out:
	blobsvc_free(b);
	return rc;
}
