/*
 * Fuzzes the Gateway's form parser (srv/gateway/form.c). The first byte
 * picks the field name and whether values are decoded; the rest is the
 * form. A value found must fit its buffer, be NUL-terminated at the length
 * returned, and never be longer than the form.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../srv/gateway/gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *names[] = {"from", "to", "secret", "nonce", "box", "text", "a", ""};
	if (size < 1)
		return 0;
	const char *name = names[data[0] & 7];
	int decode = (data[0] >> 3) & 1;
	size_t caps[] = {1, 9, 64, 8001};
	size_t cap = caps[(data[0] >> 4) & 3];
	char *out = malloc(cap);
	if (out == NULL)
		return 0;
	size_t n = 0;
	int rc = veil_gw_form_get((const char *)data + 1, size - 1, name, decode, out, cap, &n);
	if (rc == 0 && (n >= cap || out[n] != '\0' || n > size - 1 || strlen(out) != n))
		abort();
	if (rc != 0 && rc != VEIL_ENOTFOUND && rc != VEIL_ELIMIT && rc != VEIL_EPROTO)
		abort();
	free(out);
	return 0;
}
