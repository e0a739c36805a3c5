/*
 * Fuzzes the Gateway's bulk lookup body (srv/gateway/bulk.c): whatever the
 * input, at most VEIL_GW_BULK_MAX hashes come out, and nothing on failure.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../srv/gateway/gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_gw_bulk b;
	int rc = veil_gw_bulk_parse(data, size, &b);
	if (rc == 0 && b.nphone + b.nemail > VEIL_GW_BULK_MAX)
		abort();
	if (rc != 0 && (b.phone != NULL || b.email != NULL || b.nphone + b.nemail != 0))
		abort();
	if (rc != 0 && rc != VEIL_EPROTO && rc != VEIL_ELIMIT && rc != VEIL_ENOMEM)
		abort();
	veil_gw_bulk_free(&b);
	return 0;
}
