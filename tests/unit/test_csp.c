#include <sodium.h>

#include "veil/csp.h"
#include "t.h"

struct pair {
	uint8_t sk_pk[32], sk_sk[32]; /* server long-term */
	uint8_t ck_pk[32], ck_sk[32]; /* client identity */
	struct veil_csp_client c;
	struct veil_csp_server s;
	struct veil_csp_login_info info;
};

/* Runs the whole handshake in memory; returns the first failing step's code. */
static int handshake(struct pair *p, int wrong_server_key, int wrong_vouch)
{
	uint8_t ch[48], sh[80], ack[32];
	struct veil_buf login;
	int rc;
	veil_keypair(p->sk_pk, p->sk_sk);
	veil_keypair(p->ck_pk, p->ck_sk);
	uint8_t pinned[32];
	memcpy(pinned, p->sk_pk, 32);
	if (wrong_server_key)
		pinned[0] ^= 1;
	veil_csp_client_hello(&p->c, pinned, ch);
	if ((rc = veil_csp_server_hello(&p->s, p->sk_sk, ch, sh)) != 0)
		return rc;
	if ((rc = veil_csp_client_server_hello(&p->c, sh)) != 0)
		return rc;
	veil_buf_init(&login, 8192);
	uint8_t other_sk[32], other_pk[32];
	veil_keypair(other_pk, other_sk);
	rc = veil_csp_client_login(&p->c, &login, (const uint8_t *)"ABCD1234",
	                           wrong_vouch ? other_sk : p->ck_sk, "0.1;B;en/CH;Linux;x86_64",
	                           0x1122334455667788ull, NULL);
	if (rc == 0)
		rc = veil_csp_server_login(&p->s, login.p, &p->info);
	if (rc == 0 && p->info.has_ext)
		rc = veil_csp_server_login_ext(&p->s, login.p + VEIL_CSP_LOGIN_LEN,
		                               login.len - VEIL_CSP_LOGIN_LEN, &p->info);
	veil_buf_release(&login);
	if (rc != 0)
		return rc;
	if ((rc = veil_csp_server_vouch_check(&p->s, p->sk_sk, p->ck_pk, &p->info)) != 0)
		return rc;
	if ((rc = veil_csp_server_login_ack(&p->s, ack)) != 0)
		return rc;
	return veil_csp_client_login_ack(&p->c, ack);
}

static void handshake_ok(void)
{
	struct pair p;
	CHECK_RC(handshake(&p, 0, 0), 0);
	CHECK(memcmp(p.info.identity, "ABCD1234", 8) == 0);
	CHECK(strcmp(p.info.client_info, "0.1;B;en/CH;Linux;x86_64") == 0);
	CHECK(p.info.has_device_id && p.info.device_id == 0x1122334455667788ull);
	CHECK(p.info.features == (VEIL_CSP_FEATURE_METADATA | VEIL_CSP_FEATURE_ECHO));
	CHECK(memcmp(p.c.sess.key, p.s.sess.key, 32) == 0);
	/* Counters: server used 1 (hello) and 2 (ack), client 1 (login) and 2 (ext). */
	CHECK(p.s.sess.tx.counter == 3 && p.c.sess.rx.counter == 3);
	CHECK(p.c.sess.tx.counter == 3 && p.s.sess.rx.counter == 3);
}

static void vouch_with_cached_ss1(void)
{
	struct pair p;
	uint8_t ss1[32];
	CHECK_RC(handshake(&p, 0, 0), 0);
	/* The precomputed path accepts the same vouch and refuses a wrong SS1. */
	CHECK_RC(veil_shared_key(ss1, p.sk_sk, p.ck_pk), 0);
	CHECK_RC(veil_csp_server_vouch_check_ss1(&p.s, ss1, p.ck_pk, &p.info), 0);
	ss1[0] ^= 1;
	CHECK_RC(veil_csp_server_vouch_check_ss1(&p.s, ss1, p.ck_pk, &p.info), VEIL_EAUTH);
}

static void handshake_wrong_server_key(void)
{
	struct pair p;
	CHECK_RC(handshake(&p, 1, 0), VEIL_ECRYPTO);
}

static void handshake_wrong_vouch(void)
{
	struct pair p;
	CHECK_RC(handshake(&p, 0, 1), VEIL_EAUTH);
}

static void server_hello_cookie_echo(void)
{
	uint8_t sk_pk[32], sk_sk[32], ch[48], sh[80];
	struct veil_csp_client c;
	struct veil_csp_server s;
	veil_keypair(sk_pk, sk_sk);
	veil_csp_client_hello(&c, sk_pk, ch);
	ch[40] ^= 0xff; /* the server echoes a cookie the client did not send */
	CHECK_RC(veil_csp_server_hello(&s, sk_sk, ch, sh), 0);
	CHECK_RC(veil_csp_client_server_hello(&c, sh), VEIL_EPROTO);
}

static void frames(void)
{
	struct pair p;
	uint8_t frame[2 + 16 + 100], plain[100], msg[100];
	CHECK_RC(handshake(&p, 0, 0), 0);
	for (int i = 0; i < 100; i++)
		msg[i] = (uint8_t)i;
	for (int round = 0; round < 3; round++) {
		CHECK_RC(veil_csp_frame_seal(&p.c.sess, frame, msg, sizeof msg), 0);
		CHECK(veil_load_u16le(frame) == 116);
		CHECK_RC(veil_csp_frame_open(&p.s.sess, plain, frame + 2, 116), 0);
		CHECK_MEM(plain, msg, sizeof msg);
	}
	/* A replayed frame fails: the receiver's counter has moved on. */
	CHECK_RC(veil_csp_frame_open(&p.s.sess, plain, frame + 2, 116), VEIL_ECRYPTO);
	CHECK_RC(veil_csp_frame_seal(&p.s.sess, frame, msg, sizeof msg), 0);
	frame[10] ^= 1;
	CHECK_RC(veil_csp_frame_open(&p.c.sess, plain, frame + 2, 116), VEIL_ECRYPTO);
	CHECK_RC(veil_csp_frame_open(&p.c.sess, plain, frame + 2, 10), VEIL_ETRUNC);
	static uint8_t big[VEIL_CSP_MAX_FRAME + 2];
	CHECK_RC(veil_csp_frame_seal(&p.s.sess, big, big, VEIL_CSP_MAX_PAYLOAD + 1), VEIL_ELIMIT);
	CHECK_RC(veil_csp_frame_seal(&p.s.sess, big, big + 2, VEIL_CSP_MAX_PAYLOAD - 2), 0);
}

static void nonce_no_wrap(void)
{
	struct veil_csp_nonce n = {.counter = UINT64_MAX};
	uint8_t nonce[24];
	CHECK_RC(veil_csp_nonce_next(&n, nonce), VEIL_ELIMIT);
	n.counter = 7;
	memset(n.cookie, 0xaa, 16);
	CHECK_RC(veil_csp_nonce_next(&n, nonce), 0);
	CHECK(nonce[15] == 0xaa && nonce[16] == 7 && nonce[17] == 0 && n.counter == 8);
}

static void login_data_rules(void)
{
	uint8_t data[128] = {0}, sck[16];
	struct veil_csp_login_info info;
	memset(sck, 5, 16);
	memcpy(data, "ECHOECHO", 8);
	memcpy(data + 8, "1.0;A;de/CH", 11);
	memcpy(data + 40, sck, 16);
	CHECK_RC(veil_csp_login_data_parse(data, sck, &info), 0);
	CHECK(!info.has_ext && strcmp(info.client_info, "1.0;A;de/CH") == 0);
	data[60] = 1; /* reserved bytes must be zero */
	CHECK_RC(veil_csp_login_data_parse(data, sck, &info), VEIL_EPROTO);
	data[60] = 0;
	data[40] ^= 1; /* the repeated server cookie must match */
	CHECK_RC(veil_csp_login_data_parse(data, sck, &info), VEIL_EPROTO);
	data[40] ^= 1;
	memcpy(data, "echoecho", 8);
	CHECK_RC(veil_csp_login_data_parse(data, sck, &info), VEIL_EPROTO);
	memcpy(data, "ECHOECHO", 8);
	memcpy(data + 8, "threema-clever-extension-field", 30);
	veil_store_u16le(data + 38, 9000);
	CHECK_RC(veil_csp_login_data_parse(data, sck, &info), VEIL_ELIMIT);
	veil_store_u16le(data + 38, 20);
	CHECK_RC(veil_csp_login_data_parse(data, sck, &info), 0);
	CHECK(info.has_ext && info.ext_len == 20);
}

static void ext_rules(void)
{
	struct veil_csp_login_info info;
	memset(&info, 0, sizeof info);
	const uint8_t ok[] = {0x02, 1, 0, 3, 0x7f, 2, 0, 'h', 'i', 0x00, 2, 0, 'o', 'k'};
	CHECK_RC(veil_csp_login_ext_parse(ok, sizeof ok, &info), 0);
	CHECK(info.features == 3 && strcmp(info.client_info, "ok") == 0);
	const uint8_t trunc[] = {0x00, 5, 0, 'a'};
	CHECK_RC(veil_csp_login_ext_parse(trunc, sizeof trunc, &info), VEIL_EPROTO);
	const uint8_t badid[] = {0x01, 4, 0, 1, 2, 3, 4};
	CHECK_RC(veil_csp_login_ext_parse(badid, sizeof badid, &info), VEIL_EPROTO);
	const uint8_t badutf[] = {0x00, 2, 0, 0xc0, 0x80};
	CHECK_RC(veil_csp_login_ext_parse(badutf, sizeof badutf, &info), VEIL_EPROTO);
}

static void payload_bodies(void)
{
	uint8_t ack[16], id[8], type;
	uint64_t mid;
	const uint8_t *data;
	size_t dlen;
	veil_csp_ack_encode(ack, (const uint8_t *)"ECHOECHO", 42);
	CHECK_RC(veil_csp_ack_parse(ack, 16, id, &mid), 0);
	CHECK(mid == 42 && memcmp(id, "ECHOECHO", 8) == 0);
	CHECK_RC(veil_csp_ack_parse(ack, 15, id, &mid), VEIL_ETRUNC);
	CHECK_RC(veil_csp_ack_parse(ack, 17, id, &mid), VEIL_EPROTO);
	const uint8_t c[] = {0x81, 0, 0, 0, 9};
	CHECK_RC(veil_csp_payload_parse(c, sizeof c, &type, &data, &dlen), 0);
	CHECK(type == 0x81 && dlen == 1 && data[0] == 9);
	CHECK_RC(veil_csp_payload_parse(c, 3, &type, &data, &dlen), VEIL_ETRUNC);
	char text[16];
	int rec;
	const uint8_t ce[] = {1, 'b', 'y', 'e'};
	CHECK_RC(veil_csp_close_error_parse(ce, sizeof ce, &rec, text, sizeof text), 0);
	CHECK(rec == 1 && strcmp(text, "bye") == 0);
	CHECK_RC(veil_csp_close_error_parse(ce, sizeof ce, &rec, text, 3), VEIL_ELIMIT);
	CHECK(veil_utf8_valid((const uint8_t *)"gr\xc3\xbc\xc3\xa9zi \xf0\x9f\x91\x8b", 13));
	CHECK(!veil_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
	CHECK(!veil_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
	CHECK(!veil_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	CHECK(!veil_utf8_valid((const uint8_t *)"a\xc3", 2));
}

T_MAIN_BEGIN
RUN(handshake_ok);
RUN(vouch_with_cached_ss1);
RUN(handshake_wrong_server_key);
RUN(handshake_wrong_vouch);
RUN(server_hello_cookie_echo);
RUN(frames);
RUN(nonce_no_wrap);
RUN(login_data_rules);
RUN(ext_rules);
RUN(payload_bodies);
T_MAIN_END
