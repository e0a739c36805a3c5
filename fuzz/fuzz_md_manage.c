/*
 * Fuzzes the D2M parsers of transactions (0x40, 0x44/0x45, the empty
 * messages) and device management. The first input byte picks the parser.
 */
#include <stdint.h>
#include <string.h>

#include "veil/md.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_dev(void *arg, const struct veil_md_device_entry *e)
{
	(void)arg;
	/* Touch every byte the parser hands out. */
	volatile uint8_t x = 0;
	for (size_t i = 0; i < e->enc_info_len; i++)
		x ^= e->enc_info[i];
	(void)x;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct veil_md_tx t;
	static uint8_t box[VEIL_MD_ENC_BLOB_MAX];
	uint64_t did;
	size_t len;
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	switch (sel % 6) {
	case 0: (void)!veil_md_begin_tx_parse(&t, data, size); break;
	case 1: (void)!veil_md_tx_info_parse(&t, data, size); break;
	case 2: (void)!veil_md_empty_parse(data, size); break;
	case 3: (void)!veil_md_devices_info_parse(data, size, on_dev, NULL); break;
	case 4: (void)!veil_md_drop_device_parse(&did, data, size); break;
	default: (void)!veil_md_set_shared_data_parse(box, &len, data, size); break;
	}
	return 0;
}
