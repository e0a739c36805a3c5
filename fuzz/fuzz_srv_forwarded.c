/*
 * Fuzzes the trusted-proxy header walk (srv/http/forwarded.c) and the
 * address ranges it matches (srv/limit/cidr.c). The first byte picks which
 * header the rest is: X-Forwarded-For, Forwarded, or a --trusted-proxy
 * value. The result must be an address in canonical form, the peer's when
 * the header gave none.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "../srv/http/forwarded.h"
#include "../srv/limit/cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > VEIL_HTTP_FORWARDED_MAX + 64)
		return 0;
	char *text = malloc(size);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	struct veil_cidr t[2];
	if (veil_cidr_parse("127.0.0.1", &t[0]) != 0 || veil_cidr_parse("10.0.0.0/8", &t[1]) != 0)
		abort();
	char out[64], canon[64];
	int from;
	switch (data[0] % 3) {
	case 0:
		from = veil_http_forwarded_client(t, 2, "127.0.0.1", text, NULL, out, sizeof out);
		break;
	case 1:
		from = veil_http_forwarded_client(t, 2, "127.0.0.1", NULL, text, out, sizeof out);
		break;
	default: {
		struct veil_cidr c;
		if (veil_cidr_parse(text, &c) == 0 &&
		    (c.family == AF_INET ? c.bits > 32 : c.family != AF_INET6 || c.bits > 128))
			abort();
		free(text);
		return 0;
	}
	}
	if (veil_addr_canon(out, canon, sizeof canon) != 0 || strcmp(out, canon) != 0)
		abort();
	if (!from && strcmp(out, "127.0.0.1") != 0)
		abort();
	free(text);
	return 0;
}
