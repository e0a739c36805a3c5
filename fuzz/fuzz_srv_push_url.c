/*
 * Fuzzes the UnifiedPush endpoint check (srv/push/push.c), which reads push
 * tokens any logged-in client sets. The first byte says whether http:// to
 * loopback is allowed; the rest is the token. An accepted token comes back
 * unchanged and NUL-terminated, and begins with an allowed scheme.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../srv/push/push.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char url[VEIL_STORE_MAX_PUSH_TOKEN + 1];
	int allow = data[0] & 1;
	if (veil_push_endpoint_check(data + 1, size - 1, allow, url) != 0)
		return 0;
	if (strlen(url) != size - 1 || memcmp(url, data + 1, size - 1) != 0)
		abort();
	if (strncmp(url, "https://", 8) != 0 && !(allow && strncmp(url, "http://", 7) == 0))
		abort();
	return 0;
}
