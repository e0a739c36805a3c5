/*
 * Fuzzes the thumbnail maker with untrusted image bytes, as JPEG and as PNG:
 * it must fail cleanly or write a thumbnail that fits the maximum size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "veil/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char src[64], dst[64];
	static int init;
	if (!init) {
		/* Files of this process only, never a fixed shared path. */
		snprintf(src, sizeof src, "/tmp/veil-fuzz-thumb.%ld.in", (long)getpid());
		snprintf(dst, sizeof dst, "/tmp/veil-fuzz-thumb.%ld.out", (long)getpid());
		init = 1;
	}
	FILE *f = fopen(src, "wb");
	if (f == NULL)
		return 0;
	int ok = fwrite(data, 1, size, f) == size;
	if (fclose(f) != 0 || !ok)
		return 0;
	static const char *const mimes[] = {"image/jpeg", "image/png"};
	for (size_t i = 0; i < 2; i++) {
		const char *tm = NULL;
		uint32_t w, h;
		if (veil_thumb_make(src, mimes[i], dst, &tm, &w, &h) == 0) {
			if (tm == NULL || w == 0 || h == 0)
				abort();
			unlink(dst);
		}
	}
	unlink(src);
	return 0;
}
