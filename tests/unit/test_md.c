/* Multi-device library layer: keys, container, handshake, reflection, envelope, URL. */
#include <stdint.h>
#include <string.h>

#include "veil/crypto.h"
#include "veil/md.h"
#include "veil/util.h"
#include "proto/md-d2d.pb-c.h"
#include "t.h"

static const uint8_t DGK1[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t DGK2[32] = {0xff};

static void test_keys_distinct(void)
{
	struct veil_md_keys a, b;
	uint8_t pk[32];
	CHECK_RC(veil_md_keys_derive(&a, DGK1), 0);
	CHECK_RC(veil_md_keys_derive(&b, DGK2), 0);
	veil_pubkey(pk, a.dgpk_sk);
	CHECK_MEM(a.group_id, pk, 32);
	CHECK(memcmp(a.dgrk, b.dgrk, 32) != 0);
	CHECK(memcmp(a.group_id, b.group_id, 32) != 0);
	/* Five different keys from one DGK. */
	CHECK(memcmp(a.dgrk, a.dgdik, 32) != 0 && memcmp(a.dgdik, a.dgsddk, 32) != 0 &&
	      memcmp(a.dgsddk, a.dgtsk, 32) != 0 && memcmp(a.dgtsk, a.dgpk_sk, 32) != 0);
	veil_md_keys_wipe(&a);
	{
		static const uint8_t z[32];
		CHECK_MEM(a.dgrk, z, 32);
	}
}

static void test_container(void)
{
	static uint8_t big[VEIL_MD_MAX_MESSAGE + 1];
	struct veil_buf b;
	uint8_t type;
	const uint8_t *p;
	size_t n;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	CHECK_RC(veil_md_container_encode(&b, VEIL_MD_PROXY, (const uint8_t *)"abc", 3), 0);
	CHECK(b.len == 7 && b.p[0] == 0 && b.p[1] == 0 && b.p[2] == 0 && b.p[3] == 0);
	CHECK_RC(veil_md_container_parse(b.p, b.len, &type, &p, &n), 0);
	CHECK(type == VEIL_MD_PROXY && n == 3 && memcmp(p, "abc", 3) == 0);
	/* Reserved bytes are ignored; an empty payload is fine. */
	uint8_t h[4] = {0x21, 1, 2, 3};
	CHECK_RC(veil_md_container_parse(h, 4, &type, &p, &n), 0);
	CHECK(type == VEIL_MD_ROLE_PROMOTED_TO_LEADER && n == 0);
	CHECK_RC(veil_md_container_parse(h, 3, &type, &p, &n), VEIL_ETRUNC);
	CHECK_RC(veil_md_container_parse(big, sizeof big, &type, &p, &n), VEIL_ELIMIT);
	CHECK_RC(veil_md_container_parse(big, VEIL_MD_MAX_MESSAGE, &type, &p, &n), 0);
	veil_buf_reset(&b);
	CHECK_RC(veil_md_container_encode(&b, 0, big, VEIL_MD_MAX_PAYLOAD + 1), VEIL_ELIMIT);
	CHECK(b.len == 0);
	CHECK_RC(veil_md_container_encode(&b, 0, big, VEIL_MD_MAX_PAYLOAD), 0);
	CHECK(b.len == VEIL_MD_MAX_MESSAGE);
	veil_buf_release(&b);
}

static void test_types_and_close(void)
{
	static const uint8_t known[] = {0x00, 0x10, 0x11, 0x12, 0x20, 0x21, 0x30,
	                                0x31, 0x32, 0x33, 0x34, 0x40, 0x41, 0x42,
	                                0x43, 0x44, 0x45, 0x80, 0x81, 0x82, 0x83};
	int count = 0;
	for (int t = 0; t < 256; t++)
		count += veil_md_type_known((uint8_t)t);
	CHECK(count == (int)sizeof known);
	for (size_t i = 0; i < sizeof known; i++)
		CHECK(veil_md_type_known(known[i]));
	CHECK(veil_md_close_may_reconnect(VEIL_MD_CLOSE_NORMAL));
	CHECK(veil_md_close_may_reconnect(VEIL_MD_CLOSE_PROTOCOL));
	CHECK(veil_md_close_may_reconnect(VEIL_MD_CLOSE_IDLE));
	CHECK(veil_md_close_may_reconnect(4999));
	CHECK(!veil_md_close_may_reconnect(VEIL_MD_CLOSE_VERSION));
	CHECK(!veil_md_close_may_reconnect(VEIL_MD_CLOSE_SLOT_MISMATCH));
	CHECK(VEIL_MD_CLOSE_TRANSACTION_TTL == 4011 && VEIL_MD_CLOSE_DROPPED == 4113);
}

/* Runs a whole handshake; dgk_client may differ from the group the server expects. */
static int handshake(const uint8_t *dgk_client, int tamper, int *verify_rc)
{
	struct veil_md_keys kc, ks;
	struct veil_md_server_hs hs;
	struct veil_md_server_hello sh;
	struct veil_md_client_hello ch = {0}, got;
	struct veil_md_device_info info = {0}, info2;
	struct veil_buf b;
	uint8_t type;
	const uint8_t *p;
	size_t n;
	int rc = -100;

	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if (veil_md_keys_derive(&kc, dgk_client) != 0 || veil_md_keys_derive(&ks, DGK1) != 0)
		goto out;
	if (veil_md_server_hello_make(&hs, &b) != 0 ||
	    veil_md_container_parse(b.p, b.len, &type, &p, &n) != 0 ||
	    type != VEIL_MD_SERVER_HELLO || veil_md_server_hello_parse(&sh, p, n) != 0)
		goto out;
	if (memcmp(&sh, &hs.hello, sizeof sh) != 0)
		goto out;
	info.platform = VEIL_MD_PLATFORM_DESKTOP;
	memcpy(info.platform_details, "veil test", 10);
	memcpy(info.app_version, "0.1", 4);
	memcpy(info.label, "Büro", 6);
	ch.device_id = 0x0102030405060708ull;
	ch.slots_exhausted_policy = VEIL_MD_SLOTS_DROP_LEAST_RECENT;
	ch.slot_expiration_policy = VEIL_MD_SLOT_PERSISTENT;
	ch.expected_slot_state = VEIL_MD_SLOT_EXISTING;
	veil_buf_reset(&b);
	if (veil_md_client_hello_make(&b, &ch, &kc, &sh, &info) != 0 ||
	    veil_md_container_parse(b.p, b.len, &type, &p, &n) != 0 ||
	    type != VEIL_MD_CLIENT_HELLO || veil_md_client_hello_parse(&got, p, n) != 0)
		goto out;
	if (got.device_id != ch.device_id || got.version != 0 || got.slots_exhausted_policy != 1 ||
	    got.slot_expiration_policy != 1 || got.expected_slot_state != 1 ||
	    got.enc_device_info_len != ch.enc_device_info_len ||
	    memcmp(got.response, ch.response, VEIL_MD_RESPONSE_LEN) != 0)
		goto out;
	if (tamper)
		got.response[40] ^= 1;
	*verify_rc = veil_md_server_verify(&hs, &got, ks.group_id);
	/* The device info opens under the client's DGDIK. */
	if (veil_md_device_info_open(&info2, &kc, got.enc_device_info, got.enc_device_info_len) !=
	        0 ||
	    memcmp(&info, &info2, sizeof info) != 0)
		goto out;
	rc = 0;
out:
	veil_md_server_hs_wipe(&hs);
	veil_buf_release(&b);
	return rc;
}

static void test_handshake(void)
{
	int vrc = -100;
	CHECK_RC(handshake(DGK1, 0, &vrc), 0);
	CHECK_RC(vrc, 0);
	CHECK_RC(handshake(DGK2, 0, &vrc), 0); /* wrong DGK: refused */
	CHECK_RC(vrc, VEIL_ECRYPTO);
	CHECK_RC(handshake(DGK1, 1, &vrc), 0); /* tampered response */
	CHECK_RC(vrc, VEIL_ECRYPTO);
}

static void test_handshake_other_challenge(void)
{
	struct veil_md_keys k;
	struct veil_md_server_hs hs1, hs2;
	struct veil_md_client_hello ch = {0};
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	CHECK_RC(veil_md_keys_derive(&k, DGK1), 0);
	CHECK_RC(veil_md_server_hello_make(&hs1, &b), 0);
	CHECK_RC(veil_md_server_hello_make(&hs2, &b), 0);
	CHECK_RC(veil_md_client_hello_make(&b, &ch, &k, &hs1.hello, NULL), 0);
	CHECK(ch.enc_device_info_len == 0);
	CHECK_RC(veil_md_server_verify(&hs1, &ch, k.group_id), 0);
	/* A response replayed on another connection fails. */
	CHECK_RC(veil_md_server_verify(&hs2, &ch, k.group_id), VEIL_ECRYPTO);
	veil_buf_release(&b);
}

static void test_hello_parse_errors(void)
{
	struct veil_md_server_hello sh;
	struct veil_md_client_hello ch;
	struct veil_md_server_info si;
	/* ServerHello with a 31-byte esk: field 2, length 31. */
	uint8_t bad[2 + 31 + 2 + 32] = {0x12, 31};
	bad[33] = 0x1a;
	bad[34] = 32;
	CHECK_RC(veil_md_server_hello_parse(&sh, bad, sizeof bad), VEIL_EPROTO);
	bad[1] = 32; /* now the lengths are wrong for the bytes: not a protobuf */
	CHECK_RC(veil_md_server_hello_parse(&sh, bad, sizeof bad), VEIL_EPROTO);
	CHECK_RC(veil_md_server_hello_parse(&sh, NULL, 0), VEIL_EPROTO); /* both fields missing */
	/* ClientHello with a 71-byte response. */
	uint8_t r[2 + 71] = {0x12, 71};
	CHECK_RC(veil_md_client_hello_parse(&ch, r, sizeof r), VEIL_EPROTO);
	uint8_t trunc[] = {0x12, 72, 0, 0};
	CHECK_RC(veil_md_client_hello_parse(&ch, trunc, sizeof trunc), VEIL_EPROTO);
	/* ServerInfo with shared data over the limit. */
	static uint8_t si_big[3 + VEIL_MD_ENC_BLOB_MAX + 1];
	size_t len = VEIL_MD_ENC_BLOB_MAX + 1;
	si_big[0] = 0x1a;
	si_big[1] = (uint8_t)(0x80 | (len & 0x7f));
	si_big[2] = (uint8_t)(len >> 7);
	CHECK_RC(veil_md_server_info_parse(&si, si_big, sizeof si_big), VEIL_ELIMIT);
	CHECK_RC(veil_md_server_info_parse(&si, si_big, 10), VEIL_EPROTO);
}

static void test_server_info(void)
{
	struct veil_md_keys k, k2;
	struct veil_md_server_info si = {0}, got;
	struct veil_buf b, sd;
	uint8_t type;
	const uint8_t *p;
	size_t n;
	uint32_t version;
	CHECK_RC(veil_md_keys_derive(&k, DGK1), 0);
	CHECK_RC(veil_md_keys_derive(&k2, DGK2), 0);
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	veil_buf_init(&sd, VEIL_MD_ENC_BLOB_MAX);
	CHECK_RC(veil_md_shared_data_seal(&sd, &k, VEIL_MD_D2D_VERSION), 0);
	si.current_time = 1700000000123ull;
	si.max_device_slots = 4;
	si.slot_state = VEIL_MD_SLOT_EXISTING;
	memcpy(si.enc_shared_data, sd.p, sd.len);
	si.enc_shared_data_len = sd.len;
	si.reflection_queue_length = 17;
	CHECK_RC(veil_md_server_info_encode(&b, &si), 0);
	CHECK_RC(veil_md_container_parse(b.p, b.len, &type, &p, &n), 0);
	CHECK(type == VEIL_MD_SERVER_INFO);
	CHECK_RC(veil_md_server_info_parse(&got, p, n), 0);
	CHECK(got.current_time == si.current_time && got.max_device_slots == 4 &&
	      got.slot_state == 1 && got.reflection_queue_length == 17 &&
	      got.enc_shared_data_len == sd.len);
	CHECK_RC(
	    veil_md_shared_data_open(&version, &k, got.enc_shared_data, got.enc_shared_data_len),
	    0);
	CHECK(version == VEIL_MD_D2D_VERSION);
	CHECK_RC(
	    veil_md_shared_data_open(&version, &k2, got.enc_shared_data, got.enc_shared_data_len),
	    VEIL_ECRYPTO);
	CHECK_RC(veil_md_shared_data_open(&version, &k, got.enc_shared_data, 39), VEIL_ETRUNC);
	veil_buf_release(&sd);
	veil_buf_release(&b);
}

static void test_scope(void)
{
	struct veil_md_keys k, k2;
	struct veil_buf b;
	int scope;
	CHECK_RC(veil_md_keys_derive(&k, DGK1), 0);
	CHECK_RC(veil_md_keys_derive(&k2, DGK2), 0);
	veil_buf_init(&b, VEIL_MD_ENC_BLOB_MAX);
	for (int s = 0; s <= 8; s++) {
		veil_buf_reset(&b);
		CHECK_RC(veil_md_scope_seal(&b, &k, s), 0);
		CHECK_RC(veil_md_scope_open(&scope, &k, b.p, b.len), 0);
		CHECK(scope == s);
		CHECK_RC(veil_md_scope_open(&scope, &k2, b.p, b.len), VEIL_ECRYPTO);
		/* A scope box does not open as device info (another key). */
		struct veil_md_device_info di;
		CHECK_RC(veil_md_device_info_open(&di, &k, b.p, b.len), VEIL_ECRYPTO);
	}
	CHECK_RC(veil_md_scope_seal(&b, &k, 9), VEIL_EINVAL);
	CHECK_RC(veil_md_scope_seal(&b, &k, -1), VEIL_EINVAL);
	veil_buf_release(&b);
}

static void test_reflect_codecs(void)
{
	struct veil_buf b;
	struct veil_md_reflect r;
	uint8_t type;
	const uint8_t *p;
	size_t n;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);

	CHECK_RC(veil_md_reflect_encode(&b, VEIL_MD_FLAG_EPHEMERAL, 0x11223344,
	                                (const uint8_t *)"env", 3),
	         0);
	static const uint8_t want_reflect[] = {0x80, 0,    0,    0,    8,   0,   1,  0,
	                                       0x44, 0x33, 0x22, 0x11, 'e', 'n', 'v'};
	CHECK(b.len == sizeof want_reflect);
	CHECK_MEM(b.p, want_reflect, sizeof want_reflect);
	CHECK_RC(veil_md_container_parse(b.p, b.len, &type, &p, &n), 0);
	CHECK_RC(veil_md_reflect_parse(&r, p, n), 0);
	CHECK(r.flags == 1 && r.id == 0x11223344 && r.envelope_len == 3 &&
	      memcmp(r.envelope, "env", 3) == 0);

	veil_buf_reset(&b);
	CHECK_RC(
	    veil_md_reflected_encode(&b, 0, 7, 0x0102030405060708ull, (const uint8_t *)"xy", 2), 0);
	static const uint8_t want_reflected[] = {0x82, 0, 0, 0, 16, 0, 0, 0, 7, 0,   0,
	                                         0,    8, 7, 6, 5,  4, 3, 2, 1, 'x', 'y'};
	CHECK(b.len == sizeof want_reflected);
	CHECK_MEM(b.p, want_reflected, sizeof want_reflected);
	CHECK_RC(veil_md_reflected_parse(&r, b.p + 4, b.len - 4), 0);
	CHECK(r.flags == 0 && r.id == 7 && r.timestamp == 0x0102030405060708ull &&
	      r.envelope_len == 2);

	veil_buf_reset(&b);
	CHECK_RC(veil_md_reflect_ack_encode(&b, 0xdeadbeef, 1234), 0);
	static const uint8_t want_ack[] = {0x81, 0,    0,    0,    0, 0, 0, 0, 0xef, 0xbe,
	                                   0xad, 0xde, 0xd2, 0x04, 0, 0, 0, 0, 0,    0};
	CHECK(b.len == sizeof want_ack);
	CHECK_MEM(b.p, want_ack, sizeof want_ack);
	CHECK_RC(veil_md_reflect_ack_parse(&r, b.p + 4, 16), 0);
	CHECK(r.id == 0xdeadbeef && r.timestamp == 1234);
	CHECK_RC(veil_md_reflect_ack_parse(&r, b.p + 4, 15), VEIL_ETRUNC);
	CHECK_RC(veil_md_reflect_ack_parse(&r, b.p + 3, 17), VEIL_EPROTO);

	veil_buf_reset(&b);
	CHECK_RC(veil_md_reflected_ack_encode(&b, 5), 0);
	static const uint8_t want_rack[] = {0x83, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0};
	CHECK(b.len == sizeof want_rack);
	CHECK_MEM(b.p, want_rack, sizeof want_rack);
	CHECK_RC(veil_md_reflected_ack_parse(&r, b.p + 4, 8), 0);
	CHECK(r.id == 5);
	CHECK_RC(veil_md_reflected_ack_parse(&r, b.p + 4, 7), VEIL_ETRUNC);
	CHECK_RC(veil_md_reflected_ack_parse(&r, b.p + 3, 9), VEIL_EPROTO);

	/* Envelope too long for a container. */
	static uint8_t big[VEIL_MD_MAX_PAYLOAD];
	veil_buf_reset(&b);
	CHECK_RC(veil_md_reflect_encode(&b, 0, 1, big, VEIL_MD_MAX_PAYLOAD - 8 + 1), VEIL_ELIMIT);
	CHECK_RC(veil_md_reflected_encode(&b, 0, 1, 0, big, VEIL_MD_ENVELOPE_MAX + 1), VEIL_ELIMIT);
	CHECK(b.len == 0);
	CHECK_RC(veil_md_reflected_encode(&b, 0, 1, 0, big, VEIL_MD_ENVELOPE_MAX), 0);
	CHECK(b.len == VEIL_MD_MAX_MESSAGE);
	veil_buf_release(&b);
}

static void test_reflect_header_length(void)
{
	struct veil_md_reflect r;
	/* A longer reflect header (12): the extra bytes are skipped. */
	uint8_t a[] = {12, 0, 0, 0, 9, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 'E'};
	CHECK_RC(veil_md_reflect_parse(&r, a, sizeof a), 0);
	CHECK(r.id == 9 && r.envelope_len == 1 && r.envelope[0] == 'E');
	/* Header runs past the input. */
	CHECK_RC(veil_md_reflect_parse(&r, a, 11), VEIL_ETRUNC);
	CHECK_RC(veil_md_reflect_parse(&r, a, 0), VEIL_ETRUNC);
	/* Shorter than the fields it must hold. */
	a[0] = 7;
	CHECK_RC(veil_md_reflect_parse(&r, a, sizeof a), VEIL_EPROTO);
	a[0] = 0;
	CHECK_RC(veil_md_reflect_parse(&r, a, sizeof a), VEIL_EPROTO);
	/* Exactly the header, no envelope. */
	a[0] = 8;
	CHECK_RC(veil_md_reflect_parse(&r, a, 8), 0);
	CHECK(r.envelope_len == 0);

	uint8_t b[24] = {20, 0, 1, 0, 3,    0,    0,    0,    1,   0,   0,   0,
	                 0,  0, 0, 0, 0xee, 0xee, 0xee, 0xee, 'a', 'b', 'c', 'd'};
	CHECK_RC(veil_md_reflected_parse(&r, b, sizeof b), 0);
	CHECK(r.flags == 1 && r.id == 3 && r.timestamp == 1 && r.envelope_len == 4 &&
	      r.envelope[0] == 'a');
	b[0] = 15;
	CHECK_RC(veil_md_reflected_parse(&r, b, sizeof b), VEIL_EPROTO);
	b[0] = 16;
	CHECK_RC(veil_md_reflected_parse(&r, b, 15), VEIL_ETRUNC);
	b[0] = 255;
	CHECK_RC(veil_md_reflected_parse(&r, b, sizeof b), VEIL_ETRUNC);
}

/* A serialised d2d.Envelope with an IncomingMessage. */
static size_t make_envelope(uint8_t *out, size_t cap, const char *body)
{
	D2d__Envelope env = D2D__ENVELOPE__INIT;
	D2d__IncomingMessage im = D2D__INCOMING_MESSAGE__INIT;
	im.sender_identity = (char *)"ECHOECHO";
	im.has_message_id = 1;
	im.message_id = 42;
	im.has_type = 1;
	im.type = COMMON__CSP_E2E_MESSAGE_TYPE__TEXT;
	im.has_body = 1;
	im.body.data = (uint8_t *)(uintptr_t)body;
	im.body.len = strlen(body);
	env.has_device_id = 1;
	env.device_id = 0xabcdef;
	env.content_case = D2D__ENVELOPE__CONTENT_INCOMING_MESSAGE;
	env.incoming_message = &im;
	size_t n = d2d__envelope__get_packed_size(&env);
	if (n > cap)
		abort();
	return d2d__envelope__pack(&env, out);
}

static void test_envelope(void)
{
	struct veil_md_keys k, k2;
	struct veil_md_envelope_info info;
	struct veil_buf b;
	uint8_t env[256], plain[512];
	size_t n = make_envelope(env, sizeof env, "hello"), pn;
	CHECK_RC(veil_md_keys_derive(&k, DGK1), 0);
	CHECK_RC(veil_md_keys_derive(&k2, DGK2), 0);
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	for (int pad = -1; pad <= 255; pad += 64) {
		veil_buf_reset(&b);
		CHECK_RC(veil_md_envelope_seal(&b, &k, env, n, pad), 0);
		size_t want_pad = pad < 0 ? 0 : (size_t)pad;
		if (pad >= 0)
			CHECK(b.len ==
			      40 + n + (want_pad ? want_pad + (want_pad >= 128 ? 3 : 2) : 0));
		CHECK_RC(veil_md_envelope_open(plain, &pn, &info, &k, b.p, b.len), 0);
		CHECK(info.device_id == 0xabcdef && info.protocol_version == 1 &&
		      info.content == D2D__ENVELOPE__CONTENT_INCOMING_MESSAGE);
		D2d__Envelope *e = d2d__envelope__unpack(NULL, pn, plain);
		CHECK(e != NULL);
		int ok = e->content_case == D2D__ENVELOPE__CONTENT_INCOMING_MESSAGE &&
		         e->incoming_message->body.len == 5 &&
		         memcmp(e->incoming_message->body.data, "hello", 5) == 0 &&
		         strcmp(e->incoming_message->sender_identity, "ECHOECHO") == 0 &&
		         (pad <= 0 || (e->has_padding && e->padding.len == (size_t)pad));
		d2d__envelope__free_unpacked(e, NULL);
		CHECK(ok);
		CHECK_RC(veil_md_envelope_open(plain, &pn, &info, &k2, b.p, b.len), VEIL_ECRYPTO);
	}
	CHECK_RC(veil_md_envelope_open(plain, &pn, &info, &k, b.p, 39), VEIL_ETRUNC);
	b.p[b.len - 1] ^= 1;
	CHECK_RC(veil_md_envelope_open(plain, &pn, &info, &k, b.p, b.len), VEIL_ECRYPTO);
	CHECK_RC(veil_md_envelope_seal(&b, &k, env, n, 256), VEIL_EINVAL);
	/* A box that opens but holds no Envelope. */
	veil_buf_reset(&b);
	CHECK_RC(veil_md_seal(&b, k.dgrk, (const uint8_t *)"\xff\xff", 2), 0);
	CHECK_RC(veil_md_envelope_open(plain, &pn, &info, &k, b.p, b.len), VEIL_EPROTO);
	veil_buf_release(&b);
}

static void test_envelope_limits(void)
{
	struct veil_md_keys k;
	struct veil_buf b, c;
	static uint8_t env[VEIL_MD_ENVELOPE_PLAIN_MAX + 1], plain[VEIL_MD_MAX_MESSAGE];
	struct veil_md_envelope_info info;
	size_t pn;
	CHECK_RC(veil_md_keys_derive(&k, DGK1), 0);
	/* One big bytes field 1 (padding) fills the whole envelope. */
	size_t body = VEIL_MD_ENVELOPE_PLAIN_MAX - 4;
	env[0] = 0x0a;
	env[1] = (uint8_t)(0x80 | (body & 0x7f));
	env[2] = (uint8_t)(0x80 | ((body >> 7) & 0x7f));
	env[3] = (uint8_t)(body >> 14);
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	veil_buf_init(&c, VEIL_MD_MAX_MESSAGE);
	CHECK_RC(veil_md_envelope_seal(&b, &k, env, VEIL_MD_ENVELOPE_PLAIN_MAX, 0), 0);
	CHECK(b.len == VEIL_MD_ENVELOPE_MAX);
	CHECK_RC(veil_md_reflected_encode(&c, 0, 1, 2, b.p, b.len), 0);
	CHECK(c.len == VEIL_MD_MAX_MESSAGE);
	CHECK_RC(veil_md_envelope_open(plain, &pn, &info, &k, b.p, b.len), 0);
	CHECK(pn == VEIL_MD_ENVELOPE_PLAIN_MAX);
	veil_buf_reset(&b);
	CHECK_RC(veil_md_envelope_seal(&b, &k, env, VEIL_MD_ENVELOPE_PLAIN_MAX + 1, 0),
	         VEIL_ELIMIT);
	CHECK_RC(veil_md_envelope_seal(&b, &k, env, VEIL_MD_ENVELOPE_PLAIN_MAX, 1), VEIL_ELIMIT);
	CHECK(b.len == 0);
	CHECK_RC(veil_md_envelope_open(plain, &pn, &info, &k, plain, VEIL_MD_ENVELOPE_MAX + 1),
	         VEIL_ELIMIT);
	veil_buf_release(&b);
	veil_buf_release(&c);
}

static void test_url_info(void)
{
	uint8_t gid[32], got[32];
	char hex[VEIL_MD_URL_INFO_HEX_MAX], path[256], sg[VEIL_MD_SERVER_GROUP_MAX + 1];
	for (int i = 0; i < 32; i++)
		gid[i] = (uint8_t)(0xa0 + i);
	CHECK_RC(veil_md_url_info_encode(hex, sizeof hex, gid, "4f"), 0);
	/* field 1 (32 bytes), field 3 ("4f"), lowercase hex. */
	CHECK(strlen(hex) == 2 * (2 + 32 + 2 + 2));
	CHECK(strncmp(hex, "0a20a0a1a2", 10) == 0);
	CHECK(strcmp(hex + 68, "1a023466") == 0);
	snprintf(path, sizeof path, "/mediator/%s", hex);
	CHECK_RC(veil_md_url_path_parse(path, strlen(path), got, sg), 0);
	CHECK_MEM(got, gid, 32);
	CHECK(strcmp(sg, "4f") == 0);
	snprintf(path, sizeof path, "/a/b/%s?x=/y", hex);
	CHECK_RC(veil_md_url_path_parse(path, strlen(path), got, sg), 0);
	CHECK(strcmp(sg, "4f") == 0);
	/* Bare hex, no slash. */
	CHECK_RC(veil_md_url_path_parse(hex, strlen(hex), got, sg), 0);
	/* Odd length, bad hex, empty segment, wrong group ID length. */
	CHECK_RC(veil_md_url_path_parse(hex, strlen(hex) - 1, got, sg), VEIL_EPROTO);
	hex[5] = 'x';
	CHECK_RC(veil_md_url_path_parse(hex, strlen(hex), got, sg), VEIL_EPROTO);
	CHECK_RC(veil_md_url_path_parse("/abc/", 5, got, sg), VEIL_EPROTO);
	CHECK_RC(veil_md_url_path_parse("/0a020102", 9, got, sg), VEIL_EPROTO);
	/* A server group with a character outside [0-9a-zA-Z]: 0a20<32 bytes>1a02"4-". */
	CHECK_RC(veil_md_url_info_encode(hex, sizeof hex, gid, "4f"), 0);
	hex[72] = '2';
	hex[73] = 'd';
	CHECK_RC(veil_md_url_path_parse(hex, strlen(hex), got, sg), VEIL_EPROTO);
	/* Too long for any ClientUrlInfo we accept. */
	memset(path, 'a', 200);
	CHECK_RC(veil_md_url_path_parse(path, 200, got, sg), VEIL_ELIMIT);
	CHECK_RC(veil_md_url_info_encode(hex, sizeof hex, gid, ""), VEIL_EINVAL);
	CHECK_RC(veil_md_url_info_encode(hex, sizeof hex, gid, "a-b"), VEIL_EINVAL);
	CHECK_RC(veil_md_url_info_encode(hex, 10, gid, "4f"), VEIL_ELIMIT);
}

static void test_device_info_limits(void)
{
	struct veil_md_keys k;
	struct veil_md_device_info info = {0}, got;
	struct veil_buf b;
	CHECK_RC(veil_md_keys_derive(&k, DGK1), 0);
	veil_buf_init(&b, VEIL_MD_ENC_BLOB_MAX);
	memset(info.label, 'L', VEIL_MD_INFO_STR_MAX);
	info.platform = 77; /* unknown platforms pass through */
	CHECK_RC(veil_md_device_info_seal(&b, &k, &info), 0);
	CHECK_RC(veil_md_device_info_open(&got, &k, b.p, b.len), 0);
	CHECK(got.platform == 77 && strlen(got.label) == VEIL_MD_INFO_STR_MAX);
	info.app_version[0] = (char)0xff;
	CHECK_RC(veil_md_device_info_seal(&b, &k, &info), VEIL_EINVAL);
	veil_buf_release(&b);
}

static void test_tx_codecs(void)
{
	struct veil_buf b;
	static struct veil_md_tx t;
	uint8_t type;
	const uint8_t *p;
	size_t n;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	/* BeginTransaction{encrypted_scope = "sc", ttl = 30}: bytes as protobuf lays them out. */
	CHECK_RC(veil_md_begin_tx_encode(&b, (const uint8_t *)"sc", 2, 30), 0);
	static const uint8_t want_begin[] = {0x40, 0, 0, 0, 0x0a, 2, 's', 'c', 0x10, 30};
	CHECK(b.len == sizeof want_begin);
	CHECK_MEM(b.p, want_begin, sizeof want_begin);
	CHECK_RC(veil_md_container_parse(b.p, b.len, &type, &p, &n), 0);
	CHECK_RC(veil_md_begin_tx_parse(&t, p, n), 0);
	CHECK(t.ttl == 30 && t.scope_len == 2 && memcmp(t.scope, "sc", 2) == 0);
	/* TransactionEnded{device_id fixed64, scope}. */
	veil_buf_reset(&b);
	CHECK_RC(veil_md_tx_info_encode(&b, VEIL_MD_TRANSACTION_ENDED, 0x0102030405060708ull,
	                                (const uint8_t *)"z", 1),
	         0);
	static const uint8_t want_ended[] = {0x45, 0, 0, 0, 0x09, 8,    7, 6,
	                                     5,    4, 3, 2, 1,    0x12, 1, 'z'};
	CHECK(b.len == sizeof want_ended);
	CHECK_MEM(b.p, want_ended, sizeof want_ended);
	CHECK_RC(veil_md_tx_info_parse(&t, b.p + 4, b.len - 4), 0);
	CHECK(t.device_id == 0x0102030405060708ull && t.scope_len == 1 && t.scope[0] == 'z');
	veil_buf_reset(&b);
	CHECK_RC(veil_md_tx_info_encode(&b, VEIL_MD_TRANSACTION_REJECTED, 5, NULL, 0), 0);
	CHECK(b.p[0] == VEIL_MD_TRANSACTION_REJECTED);
	CHECK_RC(veil_md_tx_info_encode(&b, VEIL_MD_REFLECT, 5, NULL, 0), VEIL_EINVAL);
	/* Limits and bad input (big: a 1025-byte scope field). */
	static uint8_t big[VEIL_MD_SCOPE_MAX + 4] = {0x0a, 0x81, 0x08};
	veil_buf_reset(&b);
	CHECK_RC(veil_md_begin_tx_encode(&b, big, VEIL_MD_SCOPE_MAX + 1, 0), VEIL_ELIMIT);
	CHECK_RC(veil_md_begin_tx_parse(&t, big, sizeof big), VEIL_ELIMIT);
	CHECK_RC(veil_md_begin_tx_parse(&t, (const uint8_t *)"\x0a\x05", 2), VEIL_EPROTO);
	CHECK_RC(veil_md_empty_parse(NULL, 0), 0);
	CHECK_RC(veil_md_empty_parse((const uint8_t *)"\x08\x01", 2), 0); /* unknown field */
	CHECK_RC(veil_md_empty_parse((const uint8_t *)"\x0a\x05", 2), VEIL_EPROTO);
	veil_buf_release(&b);
}

struct dgot {
	int n;
	struct veil_md_device_entry e[4];
	uint8_t info[4][8];
};

static int on_dev(void *arg, const struct veil_md_device_entry *e)
{
	struct dgot *g = arg;
	if (g->n == 4)
		return 99;
	g->e[g->n] = *e;
	if (e->enc_info_len <= 8 && e->enc_info_len > 0)
		memcpy(g->info[g->n], e->enc_info, e->enc_info_len);
	g->e[g->n].enc_info = g->info[g->n];
	g->n++;
	return 0;
}

static void test_manage_codecs(void)
{
	struct veil_buf b;
	uint64_t did;
	uint8_t box[VEIL_MD_ENC_BLOB_MAX];
	size_t len;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	/* DevicesInfo: a connected and an offline device. */
	struct veil_md_device_entry e[2] = {
	    {.device_id = 1,
	     .expiration_policy = 1,
	     .connected = 1,
	     .since = 1000,
	     .enc_info = (const uint8_t *)"abc",
	     .enc_info_len = 3},
	    {.device_id = UINT64_MAX, .since = 2000},
	};
	CHECK_RC(veil_md_devices_info_encode(&b, e, 2), 0);
	CHECK(b.p[0] == VEIL_MD_DEVICES_INFO);
	struct dgot g = {0};
	CHECK_RC(veil_md_devices_info_parse(b.p + 4, b.len - 4, on_dev, &g), 0);
	CHECK(g.n == 2 && g.e[0].device_id == 1 && g.e[0].connected && g.e[0].since == 1000 &&
	      g.e[0].expiration_policy == 1 && g.e[0].enc_info_len == 3 &&
	      memcmp(g.info[0], "abc", 3) == 0);
	CHECK(g.e[1].device_id == UINT64_MAX && !g.e[1].connected && g.e[1].since == 2000 &&
	      g.e[1].enc_info_len == 0);
	veil_buf_reset(&b);
	CHECK_RC(veil_md_devices_info_encode(&b, NULL, 0), 0);
	CHECK(b.len == 4);
	/* DropDevice{device_id fixed64}. */
	veil_buf_reset(&b);
	CHECK_RC(veil_md_drop_device_encode(&b, VEIL_MD_DROP_DEVICE, 0x0102030405060708ull), 0);
	static const uint8_t want_drop[] = {0x32, 0, 0, 0, 0x09, 8, 7, 6, 5, 4, 3, 2, 1};
	CHECK(b.len == sizeof want_drop);
	CHECK_MEM(b.p, want_drop, sizeof want_drop);
	CHECK_RC(veil_md_drop_device_parse(&did, b.p + 4, b.len - 4), 0);
	CHECK(did == 0x0102030405060708ull);
	veil_buf_reset(&b);
	CHECK_RC(veil_md_drop_device_encode(&b, VEIL_MD_DROP_DEVICE_ACK, 5), 0);
	CHECK(b.p[0] == VEIL_MD_DROP_DEVICE_ACK);
	CHECK_RC(veil_md_drop_device_encode(&b, VEIL_MD_REFLECT, 5), VEIL_EINVAL);
	CHECK_RC(veil_md_drop_device_parse(&did, (const uint8_t *)"\x09\x01", 2), VEIL_EPROTO);
	/* SetSharedDeviceData{bytes}. */
	veil_buf_reset(&b);
	CHECK_RC(veil_md_set_shared_data_encode(&b, (const uint8_t *)"sd", 2), 0);
	static const uint8_t want_sd[] = {0x34, 0, 0, 0, 0x0a, 2, 's', 'd'};
	CHECK(b.len == sizeof want_sd);
	CHECK_MEM(b.p, want_sd, sizeof want_sd);
	CHECK_RC(veil_md_set_shared_data_parse(box, &len, b.p + 4, b.len - 4), 0);
	CHECK(len == 2 && memcmp(box, "sd", 2) == 0);
	static uint8_t big[VEIL_MD_ENC_BLOB_MAX + 1];
	CHECK_RC(veil_md_set_shared_data_encode(&b, big, sizeof big), VEIL_ELIMIT);
	veil_buf_release(&b);
}

T_MAIN_BEGIN
RUN(test_keys_distinct);
RUN(test_container);
RUN(test_types_and_close);
RUN(test_handshake);
RUN(test_handshake_other_challenge);
RUN(test_hello_parse_errors);
RUN(test_server_info);
RUN(test_tx_codecs);
RUN(test_manage_codecs);
RUN(test_scope);
RUN(test_reflect_codecs);
RUN(test_reflect_header_length);
RUN(test_envelope);
RUN(test_envelope_limits);
RUN(test_url_info);
RUN(test_device_info_limits);
T_MAIN_END
