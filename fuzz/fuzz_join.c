/*
 * Fuzzes the device join parsers: EdToNd (Begin, BlobData, EssentialData)
 * and NdToEd (Registered). The first input byte picks the parser.
 */
#include <stdint.h>

#include "veil/join.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_join_ed m;
	int type;
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	if (sel % 2 == 0) {
		if (veil_join_ed_parse(&m, data, size) == 0)
			veil_join_ed_release(&m);
	} else {
		(void)!veil_join_nd_parse(&type, data, size);
	}
	return 0;
}
