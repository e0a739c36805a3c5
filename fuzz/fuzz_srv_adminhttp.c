/*
 * Fuzzes the admin listener's request-head parser (srv/metrics/adminhttp.c):
 * any bytes give a complete request with a bounded method and path, a
 * "need more", or a refusal; never a path or method beyond its bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../srv/metrics/adminhttp.h"
#include "veil/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char method[8], path[VEIL_ADMINHTTP_MAX_PATH + 1];
	int ready = -1;
	int rc = veil_adminhttp_parse(data, size, method, path, &ready);
	if (rc == 0) {
		if (method[0] == '\0' || strlen(method) > 7 || path[0] != '/' ||
		    strlen(path) > VEIL_ADMINHTTP_MAX_PATH || (ready != 0 && ready != 1) ||
		    size > VEIL_ADMINHTTP_MAX_HEAD + 4096)
			abort();
	} else if (rc != VEIL_EAGAIN && rc != VEIL_EPROTO && rc != VEIL_ELIMIT) {
		abort();
	}
	return 0;
}
