/*
 * Fuzzes the parsers behind the D2D boxes. A fuzzer cannot forge a
 * Poly1305 tag, so the input is sealed under a fixed group's key first and
 * then opened: what is fuzzed is the protobuf parsing and the checks after
 * it (d2d.Envelope, DeviceInfo, SharedDeviceData, TransactionScope). The
 * first input byte picks the box.
 */
#include <stdint.h>
#include <stdlib.h>

#include "veil/md.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct veil_md_keys k;
	static int ready;
	static uint8_t plain[VEIL_MD_MAX_MESSAGE];
	struct veil_buf b;
	size_t n;
	if (!ready) {
		static const uint8_t dgk[VEIL_MD_DGK_LEN] = {7};
		if (veil_crypto_init() != 0 || veil_md_keys_derive(&k, dgk) != 0)
			abort();
		ready = 1;
	}
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	switch (sel % 4) {
	case 0: {
		struct veil_md_envelope_info info;
		if (veil_md_seal(&b, k.dgrk, data, size) == 0)
			(void)!veil_md_envelope_open(plain, &n, &info, &k, b.p, b.len);
		break;
	}
	case 1: {
		struct veil_md_device_info info;
		if (veil_md_seal(&b, k.dgdik, data, size) == 0)
			(void)!veil_md_device_info_open(&info, &k, b.p, b.len);
		break;
	}
	case 2: {
		uint32_t v;
		if (veil_md_seal(&b, k.dgsddk, data, size) == 0)
			(void)!veil_md_shared_data_open(&v, &k, b.p, b.len);
		break;
	}
	default: {
		int scope;
		if (veil_md_seal(&b, k.dgtsk, data, size) == 0)
			(void)!veil_md_scope_open(&scope, &k, b.p, b.len);
		/* And the raw bytes as a box under the wrong key. */
		(void)!veil_md_scope_open(&scope, &k, data, size);
		break;
	}
	}
	veil_buf_release(&b);
	return 0;
}
