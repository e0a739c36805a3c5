/*
 * Fuzzes the file message JSON decoder; whatever decodes must encode again
 * and decode to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil/e2e.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		if (veil_crypto_init() != 0)
			return 0;
		init = 1;
	}
	static struct veil_e2e_file f, g;
	if (veil_e2e_file_decode(data, size, &f) != 0)
		return 0;
	struct veil_buf b;
	veil_buf_init(&b, VEIL_FILE_JSON_MAX);
	int rc = veil_e2e_file_encode(&b, &f);
	/* The encoder refuses empty media types or names that the decoder lets through. */
	if (rc == 0) {
		if (veil_e2e_file_decode(b.p, b.len, &g) != 0)
			abort();
		if (memcmp(f.key, g.key, 32) != 0 || memcmp(f.blob_id, g.blob_id, 16) != 0 ||
		    f.size != g.size || f.rendering != g.rendering || strcmp(f.mime, g.mime) != 0 ||
		    strcmp(f.name, g.name) != 0 || strcmp(f.caption, g.caption) != 0 ||
		    f.has_thumb != g.has_thumb)
			abort();
	}
	veil_buf_release(&b);
	return 0;
}
