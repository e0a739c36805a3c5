/*
 * The browser client's static files under /app/ (see web.h). The path is
 * never joined to the root: it must be one segment of a small alphabet,
 * which rules out traversal by construction, and the file is opened below
 * the root's directory descriptor with O_NOFOLLOW.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "web.h"

struct veil_websvc {
	int rootfd;
	char csp[VEIL_WEB_CSP_MAX];
};

static const struct {
	const char *ext, *mime;
} MIME[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".wasm", "application/wasm"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char CACHE_IMMUTABLE[] = "public, max-age=31536000, immutable";
static const char CACHE_REVALIDATE[] = "no-cache";

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* esbuild's content hash: "-" and 8 characters of [A-Z0-9] just before the extension. */
static int hashed(const char *name, const char *ext)
{
	size_t stem = (size_t)(ext - name);
	if (stem < 10 || name[stem - 9] != '-')
		return 0;
	for (size_t i = stem - 8; i < stem; i++)
		if (!((name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9')))
			return 0;
	return 1;
}

int veil_web_resolve(const char *path, struct veil_web_route *out)
{
	memset(out, 0, sizeof *out);
	if (path[0] == '\0') {
		out->redirect = 1;
		return 0;
	}
	if (path[0] != '/')
		return VEIL_ENOTFOUND;
	const char *name = path + 1;
	if (name[0] == '\0')
		name = "index.html";
	size_t n = strlen(name);
	if (n > VEIL_WEB_NAME_MAX || name[0] == '.' || name[0] == '-' || strstr(name, "..") != NULL)
		return VEIL_ENOTFOUND;
	for (size_t i = 0; i < n; i++)
		if (!name_char(name[i]))
			return VEIL_ENOTFOUND;
	const char *ext = strrchr(name, '.');
	if (ext == NULL)
		return VEIL_ENOTFOUND;
	for (size_t i = 0; i < sizeof MIME / sizeof MIME[0]; i++)
		if (strcmp(ext, MIME[i].ext) == 0)
			out->mime = MIME[i].mime;
	if (out->mime == NULL)
		return VEIL_ENOTFOUND;
	memcpy(out->name, name, n + 1);
	out->cache_control = hashed(name, ext) ? CACHE_IMMUTABLE : CACHE_REVALIDATE;
	return 0;
}

static int web_begin(void *arg, const struct veil_http_sreq *req, void **ctx,
                     struct veil_http_resp *resp)
{
	struct veil_websvc *w = arg;
	struct veil_web_route r;
	*ctx = NULL;
	resp->csp = w->csp;
	if (veil_web_resolve(req->path, &r) != 0) {
		veil_http_resp_error(resp, 404, "not found", NULL);
		return 1;
	}
	if (r.redirect) {
		resp->status = 308;
		resp->location = VEIL_WEB_PREFIX "/";
		resp->content_type = "text/plain; charset=utf-8";
		return 1;
	}
	int fd = openat(w->rootfd, r.name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > VEIL_WEB_FILE_MAX) {
		if (fd >= 0)
			close(fd);
		veil_http_resp_error(resp, 404, "not found", NULL);
		return 1;
	}
	resp->status = 200;
	resp->content_type = r.mime;
	resp->cache_control = r.cache_control;
	resp->has_file = 1;
	resp->file_fd = fd;
	resp->file_off = 0;
	resp->file_len = (uint64_t)st.st_size;
	return 1;
}

static int web_body(void *ctx, const uint8_t *p, size_t len, struct veil_http_resp *resp)
{
	(void)ctx;
	(void)p;
	(void)len;
	veil_http_resp_error(resp, 400, "no body expected", NULL);
	return 1;
}

static void web_end(void *ctx, struct veil_http_resp *resp)
{
	(void)ctx;
	veil_http_resp_error(resp, 404, "not found", NULL);
}

static void web_release(void *ctx, int complete)
{
	(void)ctx;
	(void)complete;
}

static const struct veil_http_stream_ops WEB_OPS = {
    .begin = web_begin,
    .body = web_body,
    .end = web_end,
    .release = web_release,
};

static void web_free(void *arg)
{
	struct veil_websvc *w = arg;
	if (w->rootfd >= 0)
		close(w->rootfd);
	free(w);
}

static int has_index(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;
	int n = snprintf(p, sizeof p, "%s/index.html", dir);
	return n > 0 && (size_t)n < sizeof p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int veil_websvc_root(const struct veil_config *cfg, char *out, size_t cap)
{
	char exe[PATH_MAX], cand[PATH_MAX + 32];
	if (cap > 0)
		out[0] = '\0';
	if (cfg->web_root[0] != '\0') {
		if ((size_t)snprintf(out, cap, "%s", cfg->web_root) >= cap)
			return VEIL_ELIMIT;
		return 0;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return VEIL_ENOTFOUND;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash == NULL)
		return VEIL_ENOTFOUND;
	*slash = '\0';
	static const char *const rel[] = {"/web", "/../share/veil/web"};
	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		snprintf(cand, sizeof cand, "%s%s", exe, rel[i]);
		if (has_index(cand)) {
			if ((size_t)snprintf(out, cap, "%s", cand) >= cap)
				return VEIL_ELIMIT;
			return 0;
		}
	}
	return VEIL_ENOTFOUND;
}

/* The CSP, with the WebSocket origin clients reach the server at. */
static void csp_make(char *out, size_t cap, const struct veil_config *cfg, uint16_t port)
{
	char origin[VEIL_PUBLIC_URL_MAX + 300];
	if (cfg->public_url[0] != '\0') {
		int tls = strncmp(cfg->public_url, "https://", 8) == 0;
		const char *a = cfg->public_url + (tls ? 8 : 7);
		size_t al = strcspn(a, "/");
		snprintf(origin, sizeof origin, "%s%.*s", tls ? "wss://" : "ws://", (int)al, a);
	} else {
		const char *host = cfg->public_host[0] != '\0' ? cfg->public_host : cfg->listen;
		snprintf(origin, sizeof origin,
		         strchr(host, ':') != NULL ? "ws://[%s]:%u" : "ws://%s:%u", host,
		         (unsigned)port);
	}
	/*
	 * 'wasm-unsafe-eval' lets libsodium's WebAssembly compile; it allows no
	 * eval() of JavaScript. No inline script or style, no other origin.
	 */
	snprintf(out, cap,
	         "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
	         "img-src 'self' blob: data:; connect-src 'self' %s; object-src 'none'; "
	         "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	         origin);
}

int veil_websvc_register(struct veil_http *h, const struct veil_server *srv, const char *root)
{
	struct veil_websvc *w = calloc(1, sizeof *w);
	if (w == NULL)
		return VEIL_ENOMEM;
	w->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->rootfd < 0) {
		free(w);
		return VEIL_EIO;
	}
	csp_make(w->csp, sizeof w->csp, &srv->cfg, veil_http_port(h));
	int rc = veil_http_route_stream(h, "GET", VEIL_WEB_PREFIX, &WEB_OPS, w);
	if (rc == 0)
		rc = veil_http_on_stop(h, web_free, w);
	if (rc != 0)
		web_free(w);
	return rc;
}
