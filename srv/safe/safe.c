/*
 * The Safe service (safe.h). Everything runs on the HTTP thread, so the
 * backup count needs no lock. With a PostgreSQL store the backups are rows
 * there (safe_pg.c), seen by every node; uploads in progress still go to
 * <data>/safe/tmp/ first.
 */
#define _GNU_SOURCE /* memfd_create */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "safe.h"
#include "safe_pg.h"

#define PATH_LEN 1200
#define HEX_LEN 64
#define MIME "application/octet-stream"

struct veil_safesvc {
	struct veil_server *srv;
	char dir[PATH_LEN];
	uint64_t count; /* backups stored */
	uint64_t last_sweep_ms;
	struct safe_pg *pg; /* with a PostgreSQL store: the backups are there */
};

struct upload {
	struct veil_safesvc *s;
	char hex[HEX_LEN + 1];
	char tmp[PATH_LEN + 96];
	int fd;
	uint64_t size, max;
	int failed;
};

static int is_hex_lower(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

int veil_safesvc_parse(const char *method, const char *path, const char *content_type,
                       uint64_t content_length, uint64_t max_size, int *op, char hex[static 65])
{
	*op = 0;
	hex[0] = 0;
	if (strcmp(path, "config") == 0) {
		if (strcmp(method, "GET") != 0)
			return 405;
		*op = VEIL_SAFE_OP_CONFIG;
		return 0;
	}
	if (strncmp(path, "backups/", 8) != 0)
		return 404;
	const char *id = path + 8;
	if (strlen(id) != HEX_LEN || !is_hex_lower(id, HEX_LEN))
		return 404;
	if (strcmp(method, "GET") == 0) {
		*op = VEIL_SAFE_OP_GET;
	} else if (strcmp(method, "DELETE") == 0) {
		*op = VEIL_SAFE_OP_DELETE;
	} else if (strcmp(method, "PUT") == 0) {
		/* The media type alone, parameters (none are defined) not allowed. */
		if (content_type[0] != 0 && strcasecmp(content_type, MIME) != 0)
			return 415;
		if (content_length == 0)
			return 411;
		if (content_length > max_size)
			return 413;
		*op = VEIL_SAFE_OP_PUT;
	} else {
		return 405;
	}
	memcpy(hex, id, HEX_LEN + 1);
	return 0;
}

static int backup_path(const struct veil_safesvc *s, const char *hex, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", s->dir, hex);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static uint64_t mtime_ms(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000u + (uint64_t)st->st_mtim.tv_nsec / 1000000u;
}

static uint64_t retention_ms(const struct veil_safesvc *s)
{
	return (uint64_t)s->srv->cfg.safe_retention_days * 86400000ull;
}

/* Deletes expired backups (all backups are counted again on the way). */
int veil_safesvc_sweep(struct veil_safesvc *s, uint64_t now_ms)
{
	if (s->pg != NULL) {
		uint64_t r = retention_ms(s);
		int64_t n = safe_pg_sweep(s->pg, now_ms > r ? now_ms - r : 0);
		s->last_sweep_ms = now_ms;
		return n > 0 ? (int)n : 0;
	}
	DIR *d = opendir(s->dir);
	struct dirent *e;
	int gone = 0;
	uint64_t count = 0;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_LEN + 96];
		struct stat st;
		if (strlen(e->d_name) != HEX_LEN || !is_hex_lower(e->d_name, HEX_LEN) ||
		    backup_path(s, e->d_name, path, sizeof path) != 0 || stat(path, &st) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (mtime_ms(&st) + retention_ms(s) <= now_ms && unlink(path) == 0)
			gone++;
		else
			count++;
	}
	closedir(d);
	s->count = count;
	s->last_sweep_ms = now_ms;
	return gone;
}

static void maybe_sweep(struct veil_safesvc *s)
{
	uint64_t now = veil_now_ms();
	if (now - s->last_sweep_ms >= VEIL_SAFESVC_SWEEP_MS)
		(void)veil_safesvc_sweep(s, now);
}

/* Removes what interrupted uploads left in tmp/ before a restart. */
static void clean_tmp(const struct veil_safesvc *s)
{
	char tmp[PATH_LEN + 8];
	snprintf(tmp, sizeof tmp, "%s/tmp", s->dir);
	DIR *d = opendir(tmp);
	struct dirent *e;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_LEN + 300];
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof path, "%s/%s", tmp, e->d_name) < (int)sizeof path)
			(void)unlink(path);
	}
	closedir(d);
}

static void config(struct veil_safesvc *s, struct veil_http_resp *resp)
{
	veil_http_resp_object(resp, 200,
	                      json_pack("{s:I, s:i}", "maxBackupBytes",
	                                (json_int_t)s->srv->cfg.safe_max_size, "retentionDays",
	                                (int)s->srv->cfg.safe_retention_days));
}

/* The live-after time of a backup: uploaded later than this. */
static uint64_t live_after(const struct veil_safesvc *s)
{
	uint64_t now = veil_now_ms(), r = retention_ms(s);
	return now > r ? now - r : 0;
}

/* GET on PostgreSQL: the row into an anonymous file the listener sends and closes. */
static void get_pg(struct veil_safesvc *s, const uint8_t id[static 32], struct veil_http_resp *resp)
{
	int fd = memfd_create("veil-safe", MFD_CLOEXEC);
	int64_t n = fd >= 0 ? safe_pg_get(s->pg, id, live_after(s), fd) : VEIL_EIO;
	if (n < 0 || lseek(fd, 0, SEEK_SET) != 0) {
		if (fd >= 0)
			close(fd);
		veil_http_resp_error(resp, n == VEIL_ENOTFOUND ? 404 : 500,
		                     n == VEIL_ENOTFOUND ? "no such backup" : "store error", NULL);
		return;
	}
	resp->status = 200;
	resp->content_type = MIME;
	resp->has_file = 1;
	resp->file_fd = fd;
	resp->file_off = 0;
	resp->file_len = (uint64_t)n;
}

static void get(struct veil_safesvc *s, const char *hex, struct veil_http_resp *resp)
{
	char path[PATH_LEN + 96];
	struct stat st;
	int fd = -1;
	uint8_t id[32];
	if (s->pg != NULL && veil_hex_decode(id, sizeof id, hex, HEX_LEN) == 0) {
		get_pg(s, id, resp);
		return;
	}
	if (backup_path(s, hex, path, sizeof path) == 0)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    mtime_ms(&st) + retention_ms(s) <= veil_now_ms()) {
		if (fd >= 0)
			close(fd);
		veil_http_resp_error(resp, 404, "no such backup", NULL);
		return;
	}
	resp->status = 200;
	resp->content_type = MIME;
	resp->has_file = 1;
	resp->file_fd = fd;
	resp->file_off = 0;
	resp->file_len = (uint64_t)st.st_size;
}

static void del(struct veil_safesvc *s, const char *hex, struct veil_http_resp *resp)
{
	char path[PATH_LEN + 96];
	uint8_t id[32];
	if (s->pg != NULL) {
		int rc = veil_hex_decode(id, sizeof id, hex, HEX_LEN) == 0 ? safe_pg_del(s->pg, id)
		                                                           : VEIL_EIO;
		if (rc != 0) {
			veil_http_resp_error(
			    resp, rc == VEIL_ENOTFOUND ? 404 : 500,
			    rc == VEIL_ENOTFOUND ? "no such backup" : "store error", NULL);
			return;
		}
		resp->status = 204;
		resp->content_type = "text/plain";
		return;
	}
	if (backup_path(s, hex, path, sizeof path) != 0 || unlink(path) != 0) {
		veil_http_resp_error(resp, errno == ENOENT ? 404 : 500,
		                     errno == ENOENT ? "no such backup" : "store error", NULL);
		return;
	}
	sync_dir(s->dir);
	if (s->count > 0)
		s->count--;
	resp->status = 204;
	resp->content_type = "text/plain";
}

static int up_begin(struct veil_safesvc *s, const char *hex, uint64_t len,
                    struct veil_http_resp *resp, void **ctx)
{
	char path[PATH_LEN + 96];
	struct stat st;
	int full = 0;
	if (s->pg != NULL) {
		uint8_t id[32];
		uint64_t count;
		int exists;
		if (veil_hex_decode(id, sizeof id, hex, HEX_LEN) != 0 ||
		    safe_pg_state(s->pg, id, live_after(s), &exists, &count) != 0) {
			veil_http_resp_error(resp, 500, "store error", NULL);
			return -1;
		}
		full = !exists && count >= s->srv->cfg.safe_max_backups;
	}
	/* A new backup needs room; replacing one does not. */
	if (full || backup_path(s, hex, path, sizeof path) != 0 ||
	    (s->pg == NULL && stat(path, &st) != 0 && s->count >= s->srv->cfg.safe_max_backups)) {
		veil_http_resp_error(resp, 507, "the server holds as many backups as it may", NULL);
		return -1;
	}
	struct upload *u = calloc(1, sizeof *u);
	uint8_t rnd[8];
	char rh[VEIL_HEX_LEN(8)];
	if (u == NULL) {
		veil_http_resp_error(resp, 500, "out of memory", NULL);
		return -1;
	}
	randombytes_buf(rnd, sizeof rnd);
	if (veil_hex_encode(rh, sizeof rh, rnd, sizeof rnd) != 0 ||
	    snprintf(u->tmp, sizeof u->tmp, "%s/tmp/%s", s->dir, rh) >= (int)sizeof u->tmp) {
		free(u);
		veil_http_resp_error(resp, 500, "store error", NULL);
		return -1;
	}
	u->fd = open(u->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (u->fd < 0) {
		free(u);
		veil_http_resp_error(resp, 500, "store error", NULL);
		return -1;
	}
	u->s = s;
	memcpy(u->hex, hex, HEX_LEN + 1);
	u->max = len;
	*ctx = u;
	return 0;
}

static int up_body(void *ctx, const uint8_t *p, size_t len, struct veil_http_resp *resp)
{
	struct upload *u = ctx;
	if (len > u->max - u->size) {
		u->failed = 1;
		veil_http_resp_error(resp, 413, "longer than announced", NULL);
		return -1;
	}
	while (len > 0) {
		ssize_t w = write(u->fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			u->failed = 1;
			veil_http_resp_error(resp, errno == ENOSPC ? 507 : 500, "store error",
			                     NULL);
			return -1;
		}
		p += w;
		len -= (size_t)w;
		u->size += (uint64_t)w;
	}
	return 0;
}

static void up_end(void *ctx, struct veil_http_resp *resp)
{
	struct upload *u = ctx;
	char path[PATH_LEN + 96];
	struct stat st;
	if (u->size != u->max) {
		veil_http_resp_error(resp, 400, "shorter than announced", NULL);
		return;
	}
	if (u->s->pg != NULL) {
		/* The whole upload (at most safe-max-size) in one row; the commit makes it durable. */
		uint8_t id[32];
		uint8_t *data = malloc(u->size > 0 ? u->size : 1);
		int ok = data != NULL && veil_hex_decode(id, sizeof id, u->hex, HEX_LEN) == 0 &&
		         pread(u->fd, data, u->size, 0) == (ssize_t)u->size &&
		         safe_pg_put(u->s->pg, id, data, u->size, veil_now_ms()) == 0;
		free(data);
		if (!ok) {
			veil_http_resp_error(resp, 500, "store error", NULL);
			return;
		}
		resp->status = 204;
		resp->content_type = "text/plain";
		return;
	}
	if (fsync(u->fd) != 0 || close(u->fd) != 0) {
		u->fd = -1;
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	u->fd = -1;
	int existed = backup_path(u->s, u->hex, path, sizeof path) == 0 && stat(path, &st) == 0;
	if (rename(u->tmp, path) != 0) {
		veil_http_resp_error(resp, 500, "store error", NULL);
		return;
	}
	u->tmp[0] = 0;
	sync_dir(u->s->dir);
	if (!existed)
		u->s->count++;
	resp->status = 204;
	resp->content_type = "text/plain";
}

static void up_release(void *ctx, int complete)
{
	struct upload *u = ctx;
	(void)complete;
	if (u->fd >= 0)
		close(u->fd);
	if (u->tmp[0] != 0)
		(void)unlink(u->tmp);
	free(u);
}

static int safe_begin(void *arg, const struct veil_http_sreq *req, void **ctx,
                      struct veil_http_resp *resp)
{
	struct veil_safesvc *s = arg;
	char hex[HEX_LEN + 1];
	int op;
	*ctx = NULL;
	maybe_sweep(s);
	int st = veil_safesvc_parse(req->method, req->path, req->content_type, req->content_length,
	                            s->srv->cfg.safe_max_size, &op, hex);
	if (st != 0) {
		veil_http_resp_error(resp, st,
		                     st == 404   ? "not found"
		                     : st == 405 ? "method not allowed"
		                     : st == 411 ? "length required"
		                     : st == 413 ? "backup too large"
		                                 : "unsupported media type",
		                     NULL);
		return -1;
	}
	switch (op) {
	case VEIL_SAFE_OP_CONFIG: config(s, resp); return -1;
	case VEIL_SAFE_OP_GET: get(s, hex, resp); return -1;
	case VEIL_SAFE_OP_DELETE: del(s, hex, resp); return -1;
	default: return up_begin(s, hex, req->content_length, resp, ctx);
	}
}

static const struct veil_http_stream_ops safe_ops = {
    .begin = safe_begin,
    .body = up_body,
    .end = up_end,
    .release = up_release,
};

static void safesvc_free(void *arg)
{
	struct veil_safesvc *s = arg;
	safe_pg_close(s->pg);
	free(s);
}

int veil_safesvc_register(struct veil_http *h, struct veil_server *srv)
{
	if (srv->cfg.data_dir[0] == '\0' || srv->cfg.safe_max_size == 0)
		return 0;
	struct veil_safesvc *s = calloc(1, sizeof *s);
	char tmp[PATH_LEN + 8];
	int rc;
	if (s == NULL)
		return VEIL_ENOMEM;
	s->srv = srv;
	if (snprintf(s->dir, sizeof s->dir, "%s/safe", srv->cfg.data_dir) >= (int)sizeof s->dir) {
		free(s);
		return VEIL_ELIMIT;
	}
	snprintf(tmp, sizeof tmp, "%s/tmp", s->dir);
	if ((mkdir(s->dir, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(tmp, 0700) != 0 && errno != EEXIST)) {
		veil_log_error("safe: cannot create %s: %s", s->dir, strerror(errno));
		free(s);
		return VEIL_EIO;
	}
	clean_tmp(s);
	if (strncmp(srv->cfg.store, "postgres", 8) == 0 &&
	    (rc = safe_pg_open(&s->pg, srv->cfg.store)) != 0) {
		free(s);
		return rc;
	}
	(void)veil_safesvc_sweep(s, veil_now_ms());
	if ((rc = veil_http_on_stop(h, safesvc_free, s)) != 0) {
		safesvc_free(s);
		return rc;
	}
	rc = veil_http_limit(h, VEIL_SAFE_PREFIX, srv->cfg.safe_rate_per_min);
	if (rc == 0)
		rc = veil_http_route_stream(h, NULL, VEIL_SAFE_PREFIX, &safe_ops, s);
	return rc;
}
