/*
 * Fuzzes the decoder of the decrypted metadata (protobuf MessageMetadata).
 * Whatever decodes must encode again and decode to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil/crypto.h"
#include "veil/e2e.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_e2e_meta a, b;
	struct veil_buf out;

	if (veil_e2e_meta_decode(&a, data, size) != 0)
		return 0;
	if (!a.present || a.nickname_len > VEIL_E2E_NICKNAME_MAX ||
	    a.nickname[a.nickname_len] != 0 ||
	    (a.nickname_len > 0 && !veil_utf8_valid((const uint8_t *)a.nickname, a.nickname_len)))
		abort();
	veil_buf_init(&out, VEIL_MSGBOX_METADATA_MAX);
	if (veil_e2e_meta_encode(&out, &a, size % 33) != 0)
		abort();
	if (veil_e2e_meta_decode(&b, out.p, out.len) != 0)
		abort();
	if (b.message_id != a.message_id || b.created_at_ms != a.created_at_ms ||
	    b.has_nickname != a.has_nickname || b.nickname_len != a.nickname_len ||
	    memcmp(b.nickname, a.nickname, a.nickname_len) != 0)
		abort();
	veil_buf_release(&out);
	return 0;
}
