/*
 * Fuzzes the admin socket's request parser (srv/admin/admin.c): any bytes
 * give either a JSON object with a bounded string "cmd", or a refusal with
 * a reason, never both.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../srv/admin/admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *req = NULL;
	const char *cmd = NULL, *why = NULL;
	int rc = veil_admin_parse(data, size, &req, &cmd, &why);
	if (rc == 0) {
		if (!json_is_object(req) || cmd == NULL || why != NULL || strlen(cmd) == 0 ||
		    strlen(cmd) > VEIL_ADMIN_MAX_CMD)
			abort();
	} else if (req != NULL || cmd != NULL || why == NULL) {
		abort();
	}
	if (rc == 0) {
		/* The commands' argument readers on whatever object came through. */
		uint8_t id[VEIL_ID_LEN];
		json_int_t v;
		if (veil_admin_id_arg(req, id) == 0 && !veil_id_valid(id))
			abort();
		if (veil_admin_int_arg(req, "limit", 1, 1000, 100, &v) == 0 && (v < 1 || v > 1000))
			abort();
	}
	json_decref(req);
	return 0;
}
