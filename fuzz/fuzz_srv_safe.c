/*
 * Fuzzes the Safe service's request parsing (srv/safe): the input is
 * "method \0 path \0 content type \0" and an 8-byte little-endian content
 * length. Whatever is accepted must name a backup by 64 lower-case hex
 * digits, and an accepted upload must fit the size limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safe/safe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SIZE 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[1024], hex[65];
	const char *part[3];
	size_t off = 0;
	uint64_t len = 0;
	if (size > sizeof buf - 1)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	for (int i = 0; i < 3; i++) {
		part[i] = buf + off;
		size_t n = strnlen(buf + off, size - off);
		off += n + (off + n < size);
		if (off > size)
			off = size;
	}
	if (size - off >= 8)
		len = veil_load_u64le(data + off);
	int op = 0;
	int st = veil_safesvc_parse(part[0], part[1], part[2], len, MAX_SIZE, &op, hex);
	if (st == 0) {
		if (op < VEIL_SAFE_OP_CONFIG || op > VEIL_SAFE_OP_DELETE)
			abort();
		if (op != VEIL_SAFE_OP_CONFIG) {
			if (strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
				abort();
			if (op == VEIL_SAFE_OP_PUT && (len == 0 || len > MAX_SIZE))
				abort();
		}
	} else if (st != 404 && st != 405 && st != 411 && st != 413 && st != 415) {
		abort();
	}
	return 0;
}
