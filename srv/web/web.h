/*
 * The browser client's files (web/, built into build/web) under /app/ on
 * the HTTP listener: a flat directory of files, each served with its MIME
 * type, a strict Content-Security-Policy, and caching by name (content-
 * hashed names immutable, everything else revalidated).
 */
#ifndef VEIL_SRV_WEB_H
#define VEIL_SRV_WEB_H

#include <stddef.h>

#include "../http/http.h"

#define VEIL_WEB_PREFIX "/app"
/* Longest file name served (one path segment). */
#define VEIL_WEB_NAME_MAX 128
/* Largest file served. */
#define VEIL_WEB_FILE_MAX (64u * 1024u * 1024u)
#define VEIL_WEB_CSP_MAX 1536

/*
 * The directory the files come from: cfg->web_root if set, else the first
 * of <directory of the veild binary>/web and <that>/../share/veil/web that
 * holds an index.html. Writes it to out; VEIL_ENOTFOUND if there is none.
 */
int veil_websvc_root(const struct veil_config *cfg, char *out, size_t cap);

/*
 * Serves root (a directory, opened once now) under /app/ on h. The CSP's
 * connect-src names the WebSocket origin of the server's public URL (or
 * its listener) besides 'self'. Returns 0 or a negative veil_err
 * (VEIL_EIO: root cannot be opened).
 */
int veil_websvc_register(struct veil_http *h, const struct veil_server *srv, const char *root);

/*
 * The answer for one path below /app (what follows the prefix): the file's
 * name in name (empty for a redirect), its MIME type and caching. 0, or
 * VEIL_ENOTFOUND for a path that names no servable file (any other
 * segment, a dot file, ".." anywhere, a name with a character outside [A-Za-z0-9._-], an
 * unknown extension). Exposed for the fuzzer and the unit test.
 */
struct veil_web_route {
	char name[VEIL_WEB_NAME_MAX + 1];
	const char *mime;
	const char *cache_control;
	int redirect; /* "/app" without the slash: 308 to /app/ */
};
int veil_web_resolve(const char *path, struct veil_web_route *out);

#endif
