/*
 * Fuzzes the D2M parsers of transactions (0x40, 0x44/0x45, the empty
 * messages) and device management. The first input byte picks the parser.
 */
#include <stdint.h>
#include <string.h>

#include "veil/md.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct veil_md_tx t;
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	switch (sel % 3) {
	case 0: (void)!veil_md_begin_tx_parse(&t, data, size); break;
	case 1: (void)!veil_md_tx_info_parse(&t, data, size); break;
	default: (void)!veil_md_empty_parse(data, size); break;
	}
	return 0;
}
