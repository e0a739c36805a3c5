/*
 * Fuzzes the mapping of a path below /app to a file of the web client
 * (srv/web/web.c): whatever it accepts must be one plain file name of the
 * allowed alphabet, never a dot file or anything with a slash, so no path
 * can leave the web root.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web/web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[1024];
	struct veil_web_route r;
	if (size >= sizeof path)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';
	if (veil_web_resolve(path, &r) != 0)
		return 0;
	if (r.redirect)
		return path[0] == '\0' ? 0 : (abort(), 0);
	size_t n = strlen(r.name);
	if (n == 0 || n > VEIL_WEB_NAME_MAX || r.name[0] == '.' || r.mime == NULL ||
	    r.cache_control == NULL || strchr(r.name, '/') != NULL || strstr(r.name, "..") != NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		char c = r.name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			abort();
	}
	return 0;
}
