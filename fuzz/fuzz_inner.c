/*
 * Fuzzes what a receiver parses after the message box opens: the padded
 * inner container and the text, delivery-receipt and typing bodies. The
 * first byte picks a mode:
 *   0: unpad the rest and decode the body by its type;
 *   1: box the rest as a message-box plaintext under a fixed key, with a
 *      valid metadata box, and run the whole veil_e2e_open_k path;
 *   2: seal the rest as a body (first byte of it as type, a nickname cut
 *      from it) and check that open returns exactly what went in.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil/crypto.h"
#include "veil/e2e.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t shared[VEIL_KEY_LEN];

static void decode_body(uint8_t type, const uint8_t *b, size_t n)
{
	switch (type) {
	case VEIL_E2E_TEXT: {
		const char *t;
		size_t tl;
		if (veil_e2e_text_decode(b, n, &t, &tl) == 0 &&
		    (tl != n || (const uint8_t *)t != b))
			abort();
		break;
	}
	case VEIL_E2E_DELIVERY_RECEIPT: {
		uint64_t ids[VEIL_E2E_RECEIPT_MAX_IDS_IN];
		uint8_t st;
		size_t k;
		if (veil_e2e_receipt_decode(b, n, &st, ids, VEIL_ARRAY_LEN(ids), &k) == 0 &&
		    (st < 1 || st > 4 || k == 0 || 1 + 8 * k != n))
			abort();
		break;
	}
	case VEIL_E2E_TYPING: {
		int t;
		if (veil_e2e_typing_decode(b, n, &t) == 0 && t != 0 && t != 1)
			abort();
		break;
	}
	default: break;
	}
}

static void mode_unpad(const uint8_t *data, size_t size)
{
	uint8_t type;
	const uint8_t *b;
	size_t n;
	if (veil_e2e_inner_unpad(data, size, &type, &b, &n) != 0)
		return;
	if (b != data + 1 || n + 1 + data[size - 1] != size)
		abort();
	decode_body(type, b, n);
}

static void mode_open(const uint8_t *data, size_t size)
{
	static uint8_t box[VEIL_MSGBOX_BOX_MAX], metabox[VEIL_E2E_META_OUT_MAX];
	struct veil_buf mp, body;
	struct veil_e2e_meta meta;
	struct veil_msgbox m;
	uint8_t mmk[VEIL_KEY_LEN], type;
	int rc;

	if (size > VEIL_MSGBOX_BOX_MAX - VEIL_MAC_LEN)
		size = VEIL_MSGBOX_BOX_MAX - VEIL_MAC_LEN;
	memset(&m, 0, sizeof m);
	memcpy(m.sender, "AAAAAAAA", VEIL_ID_LEN);
	memcpy(m.receiver, "BBBBBBBB", VEIL_ID_LEN);
	m.msg_id = 7;
	memset(&meta, 0, sizeof meta);
	meta.message_id = 7;
	meta.created_at_ms = 1;
	veil_buf_init(&mp, VEIL_E2E_META_OUT_MAX);
	if (veil_e2e_meta_encode(&mp, &meta, 4) != 0)
		abort();
	if (veil_kdf(mmk, sizeof mmk, shared, sizeof shared, "mm", 2, "3ma-csp", 7) != 0)
		abort();
	veil_secretbox_seal(metabox, mp.p, mp.len, m.nonce, mmk);
	m.metadata = metabox;
	m.metadata_len = mp.len + VEIL_MAC_LEN;
	veil_buf_release(&mp);
	veil_box_seal(box, data, size, m.nonce, shared);
	m.box = box;
	m.box_len = size + VEIL_MAC_LEN;

	veil_buf_init_secret(&body, VEIL_MSGBOX_BOX_MAX);
	rc = veil_e2e_open_k(&m, shared, &type, &body, &meta);
	if (rc == 0) {
		if (type == 0 || meta.message_id != 7 || body.len >= size)
			abort();
		decode_body(type, body.p, body.len);
	} else if (rc != VEIL_ECRYPTO || body.len != 0) {
		abort();
	}
	veil_buf_release(&body);
}

static void mode_roundtrip(const uint8_t *data, size_t size)
{
	struct veil_e2e_out o;
	struct veil_buf out, body;
	struct veil_e2e_meta meta;
	struct veil_msgbox m;
	char nick[VEIL_E2E_NICKNAME_MAX + 1];
	size_t nl;
	uint8_t type;
	int rc;

	if (size < 2)
		return;
	memset(&o, 0, sizeof o);
	memcpy(o.sender, "AAAAAAAA", VEIL_ID_LEN);
	memcpy(o.receiver, data[1] & 1 ? "*GATEWAY" : "BBBBBBBB", VEIL_ID_LEN);
	o.msg_id = size;
	o.created_at_ms = 1700000000000ull + size;
	o.type = data[0];
	nl = data[1] >> 1;
	if (nl > size - 2)
		nl = size - 2;
	memcpy(nick, data + 2, nl);
	nick[nl] = 0;
	o.nickname = nl > 0 ? nick : NULL;
	data += 2 + nl;
	size -= 2 + nl;

	veil_buf_init(&out, VEIL_MSGBOX_MAX);
	rc = veil_e2e_seal_k(&out, &o, shared, data, size);
	if (rc != 0) {
		veil_buf_release(&out);
		return;
	}
	if (veil_msgbox_parse(&m, out.p, out.len) != 0)
		abort();
	veil_buf_init(&body, VEIL_MSGBOX_BOX_MAX);
	if (veil_e2e_open_k(&m, shared, &type, &body, &meta) != 0)
		abort();
	if (type != o.type || body.len != size || (size > 0 && memcmp(body.p, data, size) != 0))
		abort();
	if (meta.message_id != o.msg_id || meta.created_at_ms != o.created_at_ms)
		abort();
	if (o.nickname != NULL && (!meta.has_nickname || strcmp(meta.nickname, nick) != 0))
		abort();
	veil_buf_release(&body);
	veil_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready) {
		if (veil_crypto_init() != 0)
			abort();
		memset(shared, 0x24, sizeof shared);
		ready = 1;
	}
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: mode_unpad(data + 1, size - 1); break;
	case 1: mode_open(data + 1, size - 1); break;
	default: mode_roundtrip(data + 1, size - 1); break;
	}
	return 0;
}
