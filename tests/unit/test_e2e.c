/* Tests of the E2E message layer: codec, seal/open, padding, bodies. */
#include <stdint.h>
#include <string.h>

#include "veil/crypto.h"
#include "veil/e2e.h"
#include "veil/util.h"
#include "t.h"

static uint8_t a_pk[32], a_sk[32], b_pk[32], b_sk[32], c_pk[32], c_sk[32];

static void keys(void)
{
	veil_keypair(a_pk, a_sk);
	veil_keypair(b_pk, b_sk);
	veil_keypair(c_pk, c_sk);
}

static void out_params(struct veil_e2e_out *o, const char *from, const char *to)
{
	memset(o, 0, sizeof *o);
	memcpy(o->sender, from, 8);
	memcpy(o->receiver, to, 8);
	o->msg_id = 0x1122334455667788ull;
	o->created_at_ms = 1620000000123ull;
	o->flags = VEIL_MSG_FLAG_PUSH;
	o->nickname = "Alice";
	o->type = VEIL_E2E_TEXT;
}

/* Seals "hello" from AAAAAAAA to BBBBBBBB into out (initialised here). */
static int seal_hello(struct veil_buf *out, const struct veil_e2e_out *o)
{
	veil_buf_init(out, VEIL_MSGBOX_MAX);
	return veil_e2e_seal(out, o, a_sk, b_pk, (const uint8_t *)"hello", 5);
}

static void test_roundtrip(void)
{
	struct veil_e2e_out o;
	struct veil_buf out, body;
	struct veil_msgbox m;
	struct veil_e2e_meta meta;
	uint8_t type, k[32];

	out_params(&o, "AAAAAAAA", "BBBBBBBB");
	CHECK_RC(seal_hello(&out, &o), 0);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	CHECK_MEM(m.sender, "AAAAAAAA", 8);
	CHECK_MEM(m.receiver, "BBBBBBBB", 8);
	CHECK(m.msg_id == o.msg_id);
	CHECK(m.created_at == 1620000000u);
	CHECK(m.flags == VEIL_MSG_FLAG_PUSH);
	CHECK(m.metadata_len > VEIL_MAC_LEN);
	/* Not a Gateway receiver: the legacy nickname stays zero. */
	for (size_t i = 0; i < sizeof m.nickname; i++)
		CHECK(m.nickname[i] == 0);

	veil_buf_init_secret(&body, 8192);
	CHECK_RC(veil_e2e_open(&m, b_sk, a_pk, &type, &body, &meta), 0);
	CHECK(type == VEIL_E2E_TEXT);
	CHECK(body.len == 5 && memcmp(body.p, "hello", 5) == 0);
	CHECK(meta.present == 1);
	CHECK(meta.message_id == o.msg_id);
	CHECK(meta.created_at_ms == o.created_at_ms);
	CHECK(meta.has_nickname && meta.nickname_len == 5 && strcmp(meta.nickname, "Alice") == 0);

	/* The precomputed-key variant opens the same message. */
	veil_buf_reset(&body);
	CHECK_RC(veil_shared_key(k, b_sk, a_pk), 0);
	CHECK_RC(veil_e2e_open_k(&m, k, &type, &body, &meta), 0);
	CHECK(body.len == 5 && memcmp(body.p, "hello", 5) == 0);
	veil_buf_release(&body);
	veil_buf_release(&out);

	/* seal_k with the sender's view of the same key. */
	CHECK_RC(veil_shared_key(k, a_sk, b_pk), 0);
	veil_buf_init(&out, VEIL_MSGBOX_MAX);
	o.nickname = NULL;
	o.type = VEIL_E2E_TYPING;
	CHECK_RC(veil_e2e_seal_k(&out, &o, k, (const uint8_t *)"\x01", 1), 0);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	veil_buf_init(&body, 64);
	CHECK_RC(veil_e2e_open(&m, b_sk, a_pk, &type, &body, &meta), 0);
	CHECK(type == VEIL_E2E_TYPING && body.len == 1 && body.p[0] == 1);
	CHECK(meta.has_nickname == 0);
	veil_buf_release(&body);
	veil_buf_release(&out);

	/* An explicitly empty nickname is present and empty. */
	o.nickname = "";
	CHECK_RC(seal_hello(&out, &o), 0);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	veil_buf_init(&body, 64);
	CHECK_RC(veil_e2e_open(&m, b_sk, a_pk, &type, &body, &meta), 0);
	CHECK(meta.has_nickname == 1 && meta.nickname_len == 0);
	veil_buf_release(&body);
	veil_buf_release(&out);
}

static void test_gateway_legacy_nickname(void)
{
	struct veil_e2e_out o;
	struct veil_buf out;
	struct veil_msgbox m;
	uint8_t want[32] = {0};

	out_params(&o, "AAAAAAAA", "*GATEWAY");
	/* 33 bytes whose cut at 32 would split a two-byte character. */
	o.nickname = "0123456789012345678901234567890\xc3\xa9";
	CHECK_RC(seal_hello(&out, &o), 0);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	memcpy(want, o.nickname, 31);
	CHECK_MEM(m.nickname, want, 32);
	veil_buf_release(&out);
}

static void test_wrong_key(void)
{
	struct veil_e2e_out o;
	struct veil_buf out, body;
	struct veil_msgbox m;
	struct veil_e2e_meta meta;
	uint8_t type;

	out_params(&o, "AAAAAAAA", "BBBBBBBB");
	CHECK_RC(seal_hello(&out, &o), 0);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	veil_buf_init(&body, 8192);
	CHECK_RC(veil_e2e_open(&m, c_sk, a_pk, &type, &body, &meta), VEIL_ECRYPTO);
	CHECK_RC(veil_e2e_open(&m, b_sk, c_pk, &type, &body, &meta), VEIL_ECRYPTO);
	CHECK(type == 0 && body.len == 0 && meta.present == 0);
	veil_buf_release(&body);
	veil_buf_release(&out);
}

static void test_tampered(void)
{
	struct veil_e2e_out o;
	struct veil_buf out, body;
	struct veil_msgbox m;
	struct veil_e2e_meta meta;
	uint8_t type;
	int opened = 0;

	out_params(&o, "AAAAAAAA", "BBBBBBBB");
	CHECK_RC(seal_hello(&out, &o), 0);
	veil_buf_init(&body, 8192);
	/*
	 * Every authenticated byte: the message ID (bound by the metadata), the
	 * metadata box, the nonce and the message box.
	 */
	for (size_t i = 16; i < out.len; i++) {
		if (i >= 24 && i < VEIL_MSGBOX_HDR_LEN)
			continue; /* created-at, flags, lengths, legacy nickname */
		for (int bit = 0; bit < 8; bit += 7) {
			out.p[i] ^= (uint8_t)(1u << bit);
			CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
			CHECK_RC(veil_e2e_open(&m, b_sk, a_pk, &type, &body, &meta), VEIL_ECRYPTO);
			CHECK(body.len == 0 && type == 0);
			out.p[i] ^= (uint8_t)(1u << bit);
		}
	}
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	opened = veil_e2e_open(&m, b_sk, a_pk, &type, &body, &meta) == 0;
	CHECK(opened);

	/* Sender and receiver must be valid and differ. */
	memcpy(m.receiver, m.sender, 8);
	CHECK_RC(veil_e2e_open(&m, b_sk, a_pk, &type, &body, &meta), VEIL_ECRYPTO);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	m.sender[0] = 'a';
	CHECK_RC(veil_e2e_open(&m, b_sk, a_pk, &type, &body, &meta), VEIL_ECRYPTO);
	veil_buf_release(&body);
	veil_buf_release(&out);
}

/* Builds a message by hand, with metadata plaintext meta_plain (or none). */
static int build(struct veil_buf *out, const uint8_t *inner, size_t inner_len,
                 const uint8_t *meta_plain, size_t meta_len, uint64_t msg_id)
{
	uint8_t k[32], mmk[32], metabox[1024], box[8192];
	struct veil_msgbox m;
	memset(&m, 0, sizeof m);
	memcpy(m.sender, "AAAAAAAA", 8);
	memcpy(m.receiver, "BBBBBBBB", 8);
	m.msg_id = msg_id;
	m.created_at = 1700000000;
	memcpy(m.nickname, "Legacy", 6);
	veil_random(m.nonce, sizeof m.nonce);
	if (veil_shared_key(k, a_sk, b_pk) != 0)
		return -1;
	if (meta_plain != NULL) {
		if (veil_kdf(mmk, 32, k, 32, "mm", 2, "3ma-csp", 7) != 0)
			return -1;
		veil_secretbox_seal(metabox, meta_plain, meta_len, m.nonce, mmk);
		m.metadata = metabox;
		m.metadata_len = meta_len + VEIL_MAC_LEN;
	}
	veil_box_seal(box, inner, inner_len, m.nonce, k);
	m.box = box;
	m.box_len = inner_len + VEIL_MAC_LEN;
	veil_buf_init(out, VEIL_MSGBOX_MAX);
	return veil_msgbox_encode(&m, out);
}

static int open_built(const struct veil_buf *out, uint8_t *type, struct veil_buf *body,
                      struct veil_e2e_meta *meta)
{
	struct veil_msgbox m;
	int rc = veil_msgbox_parse(&m, out->p, out->len);
	if (rc != 0)
		return rc;
	return veil_e2e_open(&m, b_sk, a_pk, type, body, meta);
}

static void test_metadata_rules(void)
{
	struct veil_buf inner, mp, out, body;
	struct veil_e2e_meta meta, in;
	uint8_t type;

	veil_buf_init(&inner, 1024);
	CHECK_RC(veil_e2e_inner_pad(&inner, VEIL_E2E_TEXT, (const uint8_t *)"hi", 2, 0), 0);
	veil_buf_init(&body, 1024);

	/* Metadata whose message_id differs from the outer one. */
	memset(&in, 0, sizeof in);
	in.message_id = 42;
	in.created_at_ms = 5;
	veil_buf_init(&mp, 1024);
	CHECK_RC(veil_e2e_meta_encode(&mp, &in, 16), 0);
	CHECK_RC(build(&out, inner.p, inner.len, mp.p, mp.len, 43), 0);
	CHECK_RC(open_built(&out, &type, &body, &meta), VEIL_ECRYPTO);
	veil_buf_release(&out);
	/* The same metadata with the matching ID opens. */
	CHECK_RC(build(&out, inner.p, inner.len, mp.p, mp.len, 42), 0);
	CHECK_RC(open_built(&out, &type, &body, &meta), 0);
	CHECK(meta.present && meta.created_at_ms == 5 && !meta.has_nickname);
	veil_buf_release(&out);

	/* Metadata that is not protobuf. */
	veil_buf_reset(&body);
	CHECK_RC(build(&out, inner.p, inner.len, (const uint8_t *)"\xff\xff\xff", 3, 42), 0);
	CHECK_RC(open_built(&out, &type, &body, &meta), VEIL_ECRYPTO);
	veil_buf_release(&out);

	/* Empty metadata plaintext: no message_id, so it cannot match. */
	CHECK_RC(build(&out, inner.p, inner.len, (const uint8_t *)"", 0, 42), 0);
	CHECK_RC(open_built(&out, &type, &body, &meta), VEIL_ECRYPTO);
	veil_buf_release(&out);

	/* Legacy message: no metadata box at all. */
	CHECK_RC(build(&out, inner.p, inner.len, NULL, 0, 42), 0);
	CHECK_RC(open_built(&out, &type, &body, &meta), 0);
	CHECK(type == VEIL_E2E_TEXT && body.len == 2 && memcmp(body.p, "hi", 2) == 0);
	CHECK(meta.present == 0 && meta.message_id == 42);
	CHECK(meta.created_at_ms == 1700000000ull * 1000);
	CHECK(meta.has_nickname && strcmp(meta.nickname, "Legacy") == 0);
	veil_buf_release(&out);

	/* Body buffer too small for the body. */
	veil_buf_release(&body);
	veil_buf_init(&body, 1);
	CHECK_RC(build(&out, inner.p, inner.len, NULL, 0, 42), 0);
	CHECK_RC(open_built(&out, &type, &body, &meta), VEIL_ELIMIT);
	CHECK(body.len == 0 && type == 0);
	veil_buf_release(&out);

	veil_buf_release(&body);
	veil_buf_release(&mp);
	veil_buf_release(&inner);
}

static void test_metadata_codec(void)
{
	struct veil_buf b;
	struct veil_e2e_meta in, out;

	memset(&in, 0, sizeof in);
	in.message_id = 0x0102030405060708ull;
	in.created_at_ms = 1234567890123ull;
	in.has_nickname = 1;
	memcpy(in.nickname, "N\xc3\xa4me", 5);
	in.nickname_len = 5;
	veil_buf_init(&b, 1024);
	CHECK_RC(veil_e2e_meta_encode(&b, &in, 11), 0);
	/* padding (field 1, 11 bytes) is written first; fixed64 field 3 tag 0x19. */
	CHECK(b.p[0] == 0x0a && b.p[1] == 11);
	CHECK_RC(veil_e2e_meta_decode(&out, b.p, b.len), 0);
	CHECK(out.present && out.message_id == in.message_id);
	CHECK(out.created_at_ms == in.created_at_ms);
	CHECK(out.has_nickname && out.nickname_len == 5 &&
	      memcmp(out.nickname, in.nickname, 6) == 0);
	CHECK_RC(veil_e2e_meta_encode(&b, &in, 33), VEIL_EINVAL);
	veil_buf_reset(&b);

	/* A nickname that is not UTF-8 is refused both ways. */
	in.nickname[0] = (char)0xff;
	CHECK_RC(veil_e2e_meta_encode(&b, &in, 0), VEIL_EINVAL);
	{
		/* field 2, length 2, bytes ff 41 */
		const uint8_t bad[] = {0x12, 0x02, 0xff, 0x41};
		CHECK_RC(veil_e2e_meta_decode(&out, bad, sizeof bad), VEIL_EPROTO);
		CHECK(out.present == 0);
	}
	{
		/* A truncated varint. */
		const uint8_t bad[] = {0x20, 0xff};
		CHECK_RC(veil_e2e_meta_decode(&out, bad, sizeof bad), VEIL_EPROTO);
	}
	veil_buf_release(&b);
}

static void test_padding(void)
{
	struct veil_buf b;
	uint8_t type;
	const uint8_t *body;
	size_t blen;
	int seen_small = 0, seen_large = 0;

	veil_buf_init(&b, 4096);
	/* A short body is padded so that body and padding are exactly 32 bytes. */
	CHECK_RC(veil_e2e_inner_pad(&b, 0x01, (const uint8_t *)"x", 1, 1), 0);
	CHECK(b.len == 33 && b.p[32] == 31 && b.p[2] == 31);
	CHECK_RC(veil_e2e_inner_unpad(b.p, b.len, &type, &body, &blen), 0);
	CHECK(type == 1 && blen == 1 && body[0] == 'x');
	veil_buf_reset(&b);
	/* Explicit pad length beyond the minimum is kept. */
	CHECK_RC(veil_e2e_inner_pad(&b, 0x01,
	                            (const uint8_t *)"0123456789012345678901234567890123456789", 40,
	                            255),
	         0);
	CHECK(b.len == 1 + 40 + 255 && b.p[b.len - 1] == 255);
	veil_buf_reset(&b);
	CHECK_RC(veil_e2e_inner_pad(&b, 0x01, NULL, 0, 256), VEIL_EINVAL);
	/* Random padding stays in 1..255 and never under 32 bytes in total. */
	for (int i = 0; i < 2000; i++) {
		uint8_t big[64] = {0};
		veil_buf_reset(&b);
		CHECK_RC(veil_e2e_inner_pad(&b, 0x01, big, sizeof big, 0), 0);
		unsigned n = b.p[b.len - 1];
		CHECK(n >= 1 && n <= 255 && b.len == 1 + sizeof big + n);
		seen_small |= n < 16;
		seen_large |= n > 240;
		veil_buf_reset(&b);
		CHECK_RC(veil_e2e_inner_pad(&b, 0x01, big, 3, 0), 0);
		CHECK(b.len >= 32);
	}
	CHECK(seen_small && seen_large);

	/* Invalid paddings. */
	{
		const uint8_t zero[] = {0x01, 'a', 0x00};
		const uint8_t over[] = {0x01, 0x03, 0x03};
		const uint8_t mixed[] = {0x01, 'a', 0x02, 0x03, 0x03, 0x02, 0x03};
		const uint8_t only_type[] = {0x01};
		const uint8_t ok[] = {0x01, 0x02, 0x02};
		CHECK_RC(veil_e2e_inner_unpad(zero, sizeof zero, &type, &body, &blen), VEIL_EPROTO);
		CHECK_RC(veil_e2e_inner_unpad(over, sizeof over, &type, &body, &blen), VEIL_EPROTO);
		CHECK_RC(veil_e2e_inner_unpad(mixed, sizeof mixed, &type, &body, &blen),
		         VEIL_EPROTO);
		CHECK_RC(veil_e2e_inner_unpad(only_type, 1, &type, &body, &blen), VEIL_EPROTO);
		CHECK_RC(veil_e2e_inner_unpad(ok, 0, &type, &body, &blen), VEIL_ETRUNC);
		CHECK_RC(veil_e2e_inner_unpad(ok, sizeof ok, &type, &body, &blen), 0);
		CHECK(type == 1 && blen == 0);
	}
	veil_buf_release(&b);

	/* Inside a sealed message: decrypt the box by hand and look. */
	{
		struct veil_e2e_out o;
		struct veil_buf out;
		struct veil_msgbox m;
		uint8_t k[32], plain[8192];
		out_params(&o, "AAAAAAAA", "BBBBBBBB");
		CHECK_RC(seal_hello(&out, &o), 0);
		CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
		CHECK_RC(veil_shared_key(k, b_sk, a_pk), 0);
		CHECK_RC(veil_box_open(plain, m.box, m.box_len, m.nonce, k), 0);
		size_t plen = m.box_len - VEIL_MAC_LEN;
		CHECK(plen >= 32 && plain[plen - 1] >= 1 &&
		      plen == (size_t)1 + 5 + plain[plen - 1]);
		veil_buf_release(&out);
	}

	/* A message box whose padding is wrong is refused by open. */
	{
		const uint8_t inner[] = {0x01, 'h', 'i', 0x05};
		struct veil_buf out, bb;
		struct veil_e2e_meta meta;
		veil_buf_init(&bb, 64);
		CHECK_RC(build(&out, inner, sizeof inner, NULL, 0, 7), 0);
		CHECK_RC(open_built(&out, &type, &bb, &meta), VEIL_ECRYPTO);
		veil_buf_release(&out);
		veil_buf_release(&bb);
	}
}

static void test_parse_limits(void)
{
	struct veil_e2e_out o;
	struct veil_buf out, big;
	struct veil_msgbox m;
	struct veil_e2e_meta meta;
	struct veil_buf body;
	uint8_t type;
	size_t metalen;

	out_params(&o, "AAAAAAAA", "BBBBBBBB");
	CHECK_RC(seal_hello(&out, &o), 0);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	metalen = m.metadata_len;
	veil_buf_init(&body, 8192);
	/* Every truncation: inside a fixed field or the metadata box, ETRUNC. */
	for (size_t len = 0; len < out.len; len++) {
		int rc = veil_msgbox_parse(&m, out.p, len);
		if (len < VEIL_MSGBOX_FIXED_LEN + metalen + VEIL_MSGBOX_BOX_MIN) {
			CHECK_RC(rc, VEIL_ETRUNC);
			CHECK(m.box == NULL && m.metadata == NULL && m.msg_id == 0);
		} else {
			/* A shortened message box parses but cannot be opened. */
			CHECK_RC(rc, 0);
			CHECK_RC(veil_e2e_open(&m, b_sk, a_pk, &type, &body, &meta), VEIL_ECRYPTO);
		}
	}

	/* Reserved byte must be zero. */
	out.p[29] = 1;
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), VEIL_EPROTO);
	out.p[29] = 0;
	/* Metadata length over its maximum. */
	veil_store_u16le(out.p + 30, VEIL_MSGBOX_METADATA_MAX + 1);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), VEIL_ELIMIT);
	/* Metadata length beyond the input. */
	veil_store_u16le(out.p + 30, (uint16_t)(out.len - VEIL_MSGBOX_HDR_LEN + 1));
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), VEIL_ETRUNC);
	veil_store_u16le(out.p + 30, (uint16_t)metalen);
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);

	/* A whole payload larger than a frame allows. */
	veil_buf_init(&big, VEIL_MSGBOX_MAX + 1);
	CHECK_RC(veil_buf_append(&big, out.p, out.len), 0);
	CHECK_RC(veil_buf_append(&big, (const uint8_t[VEIL_MSGBOX_MAX]){0},
	                         VEIL_MSGBOX_MAX + 1 - out.len),
	         0);
	CHECK_RC(veil_msgbox_parse(&m, big.p, big.len), VEIL_ELIMIT);
	CHECK_RC(veil_msgbox_parse(&m, big.p, big.len - 1), 0);
	CHECK(m.box_len == VEIL_MSGBOX_MAX - VEIL_MSGBOX_FIXED_LEN - metalen);

	/* The encoder refuses what the parser would refuse. */
	{
		struct veil_buf e;
		struct veil_msgbox mm = m;
		veil_buf_init(&e, 2 * VEIL_MSGBOX_MAX);
		mm.box_len = m.box_len + 1;
		CHECK_RC(veil_msgbox_encode(&mm, &e), VEIL_ELIMIT);
		mm.box_len = VEIL_MAC_LEN - 1;
		CHECK_RC(veil_msgbox_encode(&mm, &e), VEIL_ELIMIT);
		mm = m;
		mm.metadata_len = VEIL_MSGBOX_METADATA_MAX + 1;
		CHECK_RC(veil_msgbox_encode(&mm, &e), VEIL_ELIMIT);
		mm = m;
		mm.metadata = NULL;
		CHECK_RC(veil_msgbox_encode(&mm, &e), VEIL_EINVAL);
		CHECK(e.len == 0);
		/* An output buffer with too small a maximum is left unchanged. */
		veil_buf_release(&e);
		veil_buf_init(&e, 100);
		CHECK_RC(veil_msgbox_encode(&m, &e), VEIL_ELIMIT);
		CHECK(e.len == 0);
		veil_buf_release(&e);
	}
	veil_buf_release(&big);
	veil_buf_release(&out);
	veil_buf_release(&body);
}

static void test_seal_limits(void)
{
	static uint8_t body[VEIL_E2E_BODY_MAX + 1];
	struct veil_e2e_out o;
	struct veil_buf out, got;
	struct veil_msgbox m;
	struct veil_e2e_meta meta;
	uint8_t type;
	char nick[VEIL_E2E_NICKNAME_MAX + 2];

	memset(body, 'b', sizeof body);
	memset(nick, 'n', sizeof nick);
	nick[VEIL_E2E_NICKNAME_MAX] = 0;
	out_params(&o, "AAAAAAAA", "BBBBBBBB");
	o.nickname = nick;
	veil_buf_init(&out, VEIL_MSGBOX_MAX);
	/* The largest body with the longest nickname always fits a frame. */
	for (int i = 0; i < 20; i++) {
		veil_buf_reset(&out);
		CHECK_RC(veil_e2e_seal(&out, &o, a_sk, b_pk, body, VEIL_E2E_BODY_MAX), 0);
		CHECK(out.len <= VEIL_MSGBOX_MAX);
	}
	CHECK_RC(veil_msgbox_parse(&m, out.p, out.len), 0);
	veil_buf_init(&got, VEIL_E2E_BODY_MAX);
	CHECK_RC(veil_e2e_open(&m, b_sk, a_pk, &type, &got, &meta), 0);
	CHECK(got.len == VEIL_E2E_BODY_MAX && meta.nickname_len == VEIL_E2E_NICKNAME_MAX);
	veil_buf_release(&got);
	veil_buf_reset(&out);
	CHECK_RC(veil_e2e_seal(&out, &o, a_sk, b_pk, body, VEIL_E2E_BODY_MAX + 1), VEIL_ELIMIT);
	nick[VEIL_E2E_NICKNAME_MAX] = 'n';
	nick[VEIL_E2E_NICKNAME_MAX + 1] = 0;
	CHECK_RC(veil_e2e_seal(&out, &o, a_sk, b_pk, body, 1), VEIL_ELIMIT);
	o.nickname = "\xc3";
	CHECK_RC(veil_e2e_seal(&out, &o, a_sk, b_pk, body, 1), VEIL_EINVAL);
	o.nickname = NULL;
	memcpy(o.receiver, "AAAAAAAA", 8);
	CHECK_RC(veil_e2e_seal(&out, &o, a_sk, b_pk, body, 1), VEIL_EINVAL);
	memcpy(o.receiver, "bbbbbbbb", 8);
	CHECK_RC(veil_e2e_seal(&out, &o, a_sk, b_pk, body, 1), VEIL_EINVAL);
	memcpy(o.receiver, "BBBBBBBB", 8);
	o.type = 0;
	CHECK_RC(veil_e2e_seal(&out, &o, a_sk, b_pk, body, 1), VEIL_EINVAL);
	o.type = VEIL_E2E_TEXT;
	{
		/* A low-order public key (all zero) is refused. */
		uint8_t zero[32] = {0};
		CHECK_RC(veil_e2e_seal(&out, &o, a_sk, zero, body, 1), VEIL_ECRYPTO);
	}
	/* An output buffer that cannot hold the message. */
	veil_buf_release(&out);
	veil_buf_init(&out, 100);
	CHECK_RC(veil_e2e_seal(&out, &o, a_sk, b_pk, body, 1), VEIL_ELIMIT);
	CHECK(out.len == 0);
	veil_buf_release(&out);
}

static void test_text(void)
{
	static char big[VEIL_E2E_TEXT_IN_MAX + 1];
	struct veil_buf b;
	const char *t;
	size_t n;

	veil_buf_init(&b, 8192);
	CHECK_RC(veil_e2e_text_encode(&b,
	                              "Gr\xc3\xbc\xc3\x9f"
	                              "e \xf0\x9f\x91\x8d",
	                              12),
	         0);
	CHECK_RC(veil_e2e_text_decode(b.p, b.len, &t, &n), 0);
	CHECK(n == 12 && memcmp(t, "Gr\xc3\xbc", 4) == 0);
	CHECK_RC(veil_e2e_text_encode(&b, "", 0), VEIL_EINVAL);
	CHECK_RC(veil_e2e_text_encode(&b, "\xc0\xaf", 2), VEIL_EINVAL);     /* overlong */
	CHECK_RC(veil_e2e_text_encode(&b, "\xed\xa0\x80", 3), VEIL_EINVAL); /* surrogate */
	memset(big, 'a', sizeof big);
	veil_buf_reset(&b);
	CHECK_RC(veil_e2e_text_encode(&b, big, VEIL_E2E_TEXT_MAX), 0);
	CHECK_RC(veil_e2e_text_encode(&b, big, VEIL_E2E_TEXT_MAX + 1), VEIL_ELIMIT);
	/* 6000 bytes is the sender's split size: a receiver takes what fits a frame. */
	CHECK_RC(veil_e2e_text_decode((const uint8_t *)big, 7000, &t, &n), 0);
	CHECK(n == 7000);
	CHECK_RC(veil_e2e_text_decode((const uint8_t *)big, VEIL_E2E_TEXT_IN_MAX, &t, &n), 0);
	CHECK_RC(veil_e2e_text_decode((const uint8_t *)big, VEIL_E2E_TEXT_IN_MAX + 1, &t, &n),
	         VEIL_ELIMIT);
	CHECK_RC(veil_e2e_text_decode((const uint8_t *)"\xe2\x82", 2, &t, &n), VEIL_EPROTO);
	CHECK(t == NULL && n == 0);
	CHECK_RC(veil_e2e_text_decode((const uint8_t *)"", 0, &t, &n), VEIL_ETRUNC);
	veil_buf_release(&b);
}

static void test_receipt(void)
{
	static uint64_t ids[VEIL_E2E_RECEIPT_MAX_IDS + 1];
	uint64_t got[4];
	uint8_t status;
	size_t n;
	struct veil_buf b;

	for (size_t i = 0; i < VEIL_ARRAY_LEN(ids); i++)
		ids[i] = 0x0100000000000000ull + i;
	veil_buf_init(&b, 16384);
	CHECK_RC(veil_e2e_receipt_encode(&b, VEIL_RECEIPT_READ, ids, 3), 0);
	CHECK(b.len == 25 && b.p[0] == 2 && b.p[1] == 0 && b.p[8] == 1);
	CHECK_RC(veil_e2e_receipt_decode(b.p, b.len, &status, got, 4, &n), 0);
	CHECK(status == 2 && n == 3 && got[2] == ids[2]);
	/* Room for fewer IDs than were sent. */
	CHECK_RC(veil_e2e_receipt_decode(b.p, b.len, &status, got, 2, &n), VEIL_ELIMIT);
	CHECK(n == 0 && status == 0);
	/* A partial ID, or none at all. */
	CHECK_RC(veil_e2e_receipt_decode(b.p, b.len - 1, &status, got, 4, &n), VEIL_ETRUNC);
	CHECK_RC(veil_e2e_receipt_decode(b.p, 1, &status, got, 4, &n), VEIL_ETRUNC);
	CHECK_RC(veil_e2e_receipt_decode(b.p, 0, &status, got, 4, &n), VEIL_ETRUNC);
	b.p[0] = 5;
	CHECK_RC(veil_e2e_receipt_decode(b.p, b.len, &status, got, 4, &n), VEIL_EPROTO);
	b.p[0] = 0;
	CHECK_RC(veil_e2e_receipt_decode(b.p, b.len, &status, got, 4, &n), VEIL_EPROTO);
	veil_buf_reset(&b);
	CHECK_RC(veil_e2e_receipt_encode(&b, 0, ids, 1), VEIL_EINVAL);
	CHECK_RC(veil_e2e_receipt_encode(&b, 5, ids, 1), VEIL_EINVAL);
	CHECK_RC(veil_e2e_receipt_encode(&b, 1, ids, 0), VEIL_EINVAL);
	CHECK_RC(veil_e2e_receipt_encode(&b, 1, ids, VEIL_E2E_RECEIPT_MAX_IDS), 0);
	CHECK_RC(veil_e2e_receipt_encode(&b, 1, ids, VEIL_E2E_RECEIPT_MAX_IDS + 1), VEIL_ELIMIT);
	veil_buf_release(&b);
}

static void test_typing(void)
{
	struct veil_buf b;
	int t;

	veil_buf_init(&b, 16);
	CHECK_RC(veil_e2e_typing_encode(&b, 1), 0);
	CHECK_RC(veil_e2e_typing_encode(&b, 0), 0);
	CHECK_RC(veil_e2e_typing_encode(&b, 2), VEIL_EINVAL);
	CHECK(b.len == 2 && b.p[0] == 1 && b.p[1] == 0);
	CHECK_RC(veil_e2e_typing_decode(b.p, 1, &t), 0);
	CHECK(t == 1);
	CHECK_RC(veil_e2e_typing_decode(b.p + 1, 1, &t), 0);
	CHECK(t == 0);
	CHECK_RC(veil_e2e_typing_decode(b.p, 2, &t), VEIL_EPROTO);
	CHECK_RC(veil_e2e_typing_decode(b.p, 0, &t), VEIL_ETRUNC);
	CHECK_RC(veil_e2e_typing_decode((const uint8_t *)"\x02", 1, &t), VEIL_EPROTO);
	veil_buf_release(&b);
}

static void test_hash_normalisation(void)
{
	uint8_t a[32], b[32];

	CHECK_RC(veil_hash_email(a, "test@threema.ch", 15), 0);
	CHECK_RC(veil_hash_email(b, "  Test@THREEMA.ch\n", 18), 0);
	CHECK_MEM(a, b, 32);
	CHECK_RC(veil_hash_email(b, "test@threema.com", 16), 0);
	CHECK(memcmp(a, b, 32) != 0);
	CHECK_RC(veil_hash_email(b, "no-at-sign", 10), VEIL_EINVAL);
	CHECK_RC(veil_hash_email(b, "   ", 3), VEIL_EINVAL);
	CHECK_RC(veil_hash_phone(a, "41791234567", 11), 0);
	CHECK_RC(veil_hash_phone(b, " +41791234567 ", 14), 0);
	CHECK_MEM(a, b, 32);
	CHECK_RC(veil_hash_phone(b, "+41 79 123 45 67", 16), VEIL_EINVAL);
	CHECK_RC(veil_hash_phone(b, "0041791234567", 13), VEIL_EINVAL);
	CHECK_RC(veil_hash_phone(b, "1234567890123456", 16), VEIL_EINVAL);
	CHECK_RC(veil_hash_phone(b, "+", 1), VEIL_EINVAL);
}

static void test_safe_args(void)
{
	uint8_t id[32], key[32];
	CHECK_RC(veil_safe_derive(id, key, "", 0, (const uint8_t *)"ECHOECHO"), VEIL_EINVAL);
	CHECK_RC(
	    veil_safe_derive(id, key, "x", VEIL_SAFE_PASSWORD_MAX + 1, (const uint8_t *)"ECHOECHO"),
	    VEIL_EINVAL);
}

/* The specification's "User profile distribution" property, type by type. */
static void test_profile_distribution(void)
{
	static const uint8_t yes[] = {0x01, 0x02, 0x10, 0x13, 0x14, 0x15, 0x16,
	                              0x17, 0x60, 0x82, 0x41, 0x42, 0x43, 0x44,
	                              0x45, 0x46, 0x4a, 0x4f, 0x52, 0x53, 0x83};
	static const uint8_t no[] = {0x18, 0x19, 0x1a, 0x4b, 0x4c, 0x50, 0x51, 0x54, 0x62, 0x63,
	                             0x64, 0x90, 0x91, 0x92, 0x93, 0x94, 0xa0, 0xfc, 0xfe, 0x00};
	const uint8_t body[] = {0};
	uint8_t rc[1 + 8], grc[16 + 1 + 8];
	for (size_t i = 0; i < sizeof yes; i++) {
		if (!veil_e2e_distributes_profile(yes[i], body, sizeof body))
			fprintf(stderr, "type 0x%02x\n", yes[i]);
		CHECK(veil_e2e_distributes_profile(yes[i], body, sizeof body) == 1);
	}
	for (size_t i = 0; i < sizeof no; i++) {
		if (veil_e2e_distributes_profile(no[i], body, sizeof body))
			fprintf(stderr, "type 0x%02x\n", no[i]);
		CHECK(veil_e2e_distributes_profile(no[i], body, sizeof body) == 0);
	}
	/* Delivery receipts: only reactions (ack, decline) carry it. */
	memset(rc, 0, sizeof rc);
	memset(grc, 0, sizeof grc);
	for (uint8_t st = 1; st <= 4; st++) {
		int want = st == VEIL_RECEIPT_ACK || st == VEIL_RECEIPT_DECLINE;
		rc[0] = st;
		grc[16] = st;
		CHECK(veil_e2e_distributes_profile(VEIL_E2E_DELIVERY_RECEIPT, rc, sizeof rc) ==
		      want);
		CHECK(veil_e2e_distributes_profile(VEIL_E2E_GROUP_DELIVERY_RECEIPT, grc,
		                                   sizeof grc) == want);
	}
	CHECK(veil_e2e_distributes_profile(VEIL_E2E_DELIVERY_RECEIPT, NULL, 0) == 0);
	CHECK(veil_e2e_distributes_profile(VEIL_E2E_GROUP_DELIVERY_RECEIPT, rc, sizeof rc) == 0);
	/* Call answer: only when accepted. */
	const char *acc = "{\"callId\":1,\"action\":1}", *rej = "{\"callId\":1,\"action\":0}";
	CHECK(veil_e2e_distributes_profile(VEIL_E2E_CALL_ANSWER, (const uint8_t *)acc,
	                                   strlen(acc)) == 1);
	CHECK(veil_e2e_distributes_profile(VEIL_E2E_CALL_ANSWER, (const uint8_t *)rej,
	                                   strlen(rej)) == 0);
	CHECK(veil_e2e_distributes_profile(VEIL_E2E_CALL_ANSWER, (const uint8_t *)"{", 1) == 0);
}

T_MAIN_BEGIN
keys();
RUN(test_roundtrip);
RUN(test_gateway_legacy_nickname);
RUN(test_wrong_key);
RUN(test_tampered);
RUN(test_metadata_rules);
RUN(test_metadata_codec);
RUN(test_padding);
RUN(test_parse_limits);
RUN(test_seal_limits);
RUN(test_text);
RUN(test_receipt);
RUN(test_typing);
RUN(test_hash_normalisation);
RUN(test_safe_args);
RUN(test_profile_distribution);
T_MAIN_END
