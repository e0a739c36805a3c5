/*
 * Fuzzes the message-with-metadata-box parser that the chat server and every
 * client run on payloads from the network. A payload that parses must encode
 * back to the same bytes, and opening it with unrelated keys must fail
 * cleanly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil/crypto.h"
#include "veil/e2e.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static uint8_t shared[VEIL_KEY_LEN];
	struct veil_msgbox m;
	struct veil_buf out, body;
	struct veil_e2e_meta meta;
	uint8_t type;

	if (!ready) {
		if (veil_crypto_init() != 0)
			abort();
		memset(shared, 0x42, sizeof shared);
		ready = 1;
	}
	if (veil_msgbox_parse(&m, data, size) != 0)
		return 0;
	if (m.box_len < VEIL_MSGBOX_BOX_MIN || m.box_len > VEIL_MSGBOX_BOX_MAX ||
	    m.metadata_len > VEIL_MSGBOX_METADATA_MAX)
		abort();
	veil_buf_init(&out, VEIL_MSGBOX_MAX);
	if (veil_msgbox_encode(&m, &out) != 0 || out.len != size || memcmp(out.p, data, size) != 0)
		abort();
	veil_buf_release(&out);

	veil_buf_init_secret(&body, VEIL_MSGBOX_BOX_MAX);
	if (veil_e2e_open_k(&m, shared, &type, &body, &meta) == 0) {
		/* Forging a box without the key is not something a fuzzer does. */
		abort();
	}
	if (body.len != 0 || type != 0 || meta.present != 0)
		abort();
	veil_buf_release(&body);
	return 0;
}
