/*
 * The directory's contact endpoints in-process on loopback, driven through
 * the lib/dir client: phone linking with codes delivered to a real HTTP
 * webhook (a route of the same listener), wrong and expired codes, HMAC and
 * private OPRF matching, replayed tokens, malformed hashes, rate limits hit
 * and lifted, feature masks and revocation.
 */
#define _GNU_SOURCE 1 /* memmem */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "veil/crypto.h"
#include "veil/dir.h"
#include "veil/e2e.h"
#include "veil/util.h"
#include "../../srv/directory/directory.h"
#include "../../srv/http/http.h"
#include "../../srv/server.h"
#include "../../srv/store/store.h"
#include "t.h"

static char tmpdir[256];
static struct veil_server srv;
static struct veil_http *http;
static char dir_url[160];

/* The SMS webhook: the last message it received. */
static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static char hook_to[64], hook_text[512];
static int hook_count;

static void hook(void *arg, const struct veil_http_req *req, struct veil_http_resp *resp)
{
	(void)arg;
	json_error_t e;
	json_t *o = json_loadb((const char *)req->body, req->body_len, 0, &e);
	pthread_mutex_lock(&hook_mu);
	if (o != NULL && json_is_string(json_object_get(o, "to")) &&
	    json_is_string(json_object_get(o, "text"))) {
		snprintf(hook_to, sizeof hook_to, "%s",
		         json_string_value(json_object_get(o, "to")));
		snprintf(hook_text, sizeof hook_text, "%s",
		         json_string_value(json_object_get(o, "text")));
		hook_count++;
	}
	pthread_mutex_unlock(&hook_mu);
	json_decref(o);
	veil_http_resp_json(resp, 200, "{}");
}

/* Waits for message number want and extracts its 6-digit code. */
static int wait_code(int want, char code[7], char to[64])
{
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&hook_mu);
		int got = hook_count >= want;
		const char *p = strstr(hook_text, "code is ");
		if (got && p != NULL) {
			memcpy(code, p + 8, 6);
			code[6] = 0;
			snprintf(to, 64, "%s", hook_to);
		}
		pthread_mutex_unlock(&hook_mu);
		if (got)
			return p != NULL ? 0 : -1;
		usleep(50000);
	}
	return -1;
}

struct ident {
	uint8_t id[VEIL_ID_LEN], pk[32], sk[32];
};

static int make_ident(struct ident *x)
{
	veil_keypair(x->pk, x->sk);
	return veil_dir_create_identity(dir_url, x->pk, x->sk, NULL, x->id);
}

static int link_phone(struct ident *x, const char *number, int *msgs)
{
	char vid[VEIL_DIR_VID_LEN + 1], code[7], to[64];
	int already = 0;
	int rc = veil_dir_link(dir_url, VEIL_CONTACT_PHONE, x->id, x->sk, number, vid, &already);
	if (rc != 0 || already)
		return rc != 0 ? rc : -100;
	if (wait_code(++*msgs, code, to) != 0)
		return -101;
	return veil_dir_link_verify(dir_url, VEIL_CONTACT_PHONE, vid, code);
}

static int msgs;
static struct ident alice, bob, carol;

static void test_link_phone_codes(void)
{
	char vid[VEIL_DIR_VID_LEN + 1], code[7], to[64], wrong[12];
	int already = 0;
	CHECK_RC(veil_dir_link(dir_url, VEIL_CONTACT_PHONE, alice.id, alice.sk, "41791234567", vid,
	                       &already),
	         0);
	CHECK(!already && strlen(vid) == 32);
	CHECK_RC(wait_code(++msgs, code, to), 0);
	CHECK(strcmp(to, "+41791234567") == 0);
	/* A wrong code is refused and counted; the right one still works after it. */
	snprintf(wrong, sizeof wrong, "%06d", (int)((strtol(code, NULL, 10) + 1) % 1000000));
	CHECK_RC(veil_dir_link_verify(dir_url, VEIL_CONTACT_PHONE, vid, wrong), VEIL_EAUTH);
	CHECK(strstr(veil_dir_errmsg(), "wrong code") != NULL);
	CHECK_RC(veil_dir_link_verify(dir_url, VEIL_CONTACT_PHONE, vid, code), 0);
	/* Used up: the same verification ID is unknown now. */
	CHECK_RC(veil_dir_link_verify(dir_url, VEIL_CONTACT_PHONE, vid, code), VEIL_EAUTH);
	/* Asking again reports the number as linked, and sends nothing. */
	CHECK_RC(veil_dir_link(dir_url, VEIL_CONTACT_PHONE, alice.id, alice.sk, "41791234567", vid,
	                       &already),
	         0);
	CHECK(already == 1);
	CHECK_RC(link_phone(&bob, "14155550123", &msgs), 0);
	/* Malformed codes and numbers. */
	CHECK_RC(veil_dir_link_verify(dir_url, VEIL_CONTACT_PHONE, "00", "123456"), VEIL_EPROTO);
	CHECK_RC(
	    veil_dir_link(dir_url, VEIL_CONTACT_PHONE, carol.id, carol.sk, "41-abc", vid, &already),
	    VEIL_EPROTO);
	/* E-mail is unavailable without an SMTP relay, and says so. */
	CHECK_RC(veil_dir_link(dir_url, VEIL_CONTACT_EMAIL, carol.id, carol.sk, "c@example.org",
	                       vid, &already),
	         VEIL_EAUTH);
	CHECK(strstr(veil_dir_errmsg(), "smtp-url") != NULL);
}

static void test_too_many_wrong_codes_and_expiry(void)
{
	char vid[VEIL_DIR_VID_LEN + 1], code[7], to[64];
	int already = 0;
	CHECK_RC(veil_dir_link(dir_url, VEIL_CONTACT_PHONE, carol.id, carol.sk, "4915112345678",
	                       vid, &already),
	         0);
	CHECK_RC(wait_code(++msgs, code, to), 0);
	char wrong[12];
	snprintf(wrong, sizeof wrong, "%06d", (int)((strtol(code, NULL, 10) + 7) % 1000000));
	for (int i = 0; i < 5; i++)
		CHECK_RC(veil_dir_link_verify(dir_url, VEIL_CONTACT_PHONE, vid, wrong), VEIL_EAUTH);
	/* The sixth try is refused even with the right code. */
	CHECK_RC(veil_dir_link_verify(dir_url, VEIL_CONTACT_PHONE, vid, code), VEIL_EAUTH);
	CHECK(strstr(veil_dir_errmsg(), "too many") != NULL);

	/* Expiry, judged by the store at a later time. */
	struct veil_link_pending p;
	memset(&p, 0, sizeof p);
	veil_random(p.vid, sizeof p.vid);
	memcpy(p.id, carol.id, VEIL_ID_LEN);
	p.kind = VEIL_LINK_PHONE;
	p.expires_ms = veil_now_ms() + 1000;
	CHECK_RC(veil_store_link_pending_put(srv.store, &p), 0);
	struct veil_link_pending out;
	CHECK_RC(veil_store_link_confirm(srv.store, p.vid, p.code_mac, 5, p.expires_ms + 1, &out),
	         VEIL_ETIMEOUT);
	CHECK_RC(veil_store_link_confirm(srv.store, p.vid, p.code_mac, 5, veil_now_ms(), &out),
	         VEIL_ENOTFOUND);
	/* Through HTTP: an expired pending link is reported as expired. */
	p.expires_ms = veil_now_ms() + 300;
	veil_random(p.vid, sizeof p.vid);
	CHECK_RC(veil_store_link_pending_put(srv.store, &p), 0);
	usleep(400000);
	char hex[33];
	CHECK_RC(veil_hex_encode(hex, sizeof hex, p.vid, sizeof p.vid), 0);
	CHECK_RC(veil_dir_link_verify(dir_url, VEIL_CONTACT_PHONE, hex, "000000"), VEIL_EAUTH);
	CHECK(strstr(veil_dir_errmsg(), "expired") != NULL);
}

static void test_match_hashes(void)
{
	char tok[VEIL_DIR_MATCH_TOKEN_MAX + 1];
	uint8_t phones[3][32], emails[1][32];
	struct veil_dir_match m[8];
	size_t n = 0;
	int ci = 0;
	CHECK_RC(veil_dir_match_token(dir_url, carol.id, carol.sk, tok), 0);
	CHECK_RC(veil_hash_phone(phones[0], "41791234567", 11), 0);
	CHECK_RC(veil_hash_phone(phones[1], "19999999999", 11), 0);
	CHECK_RC(veil_hash_phone(phones[2], "14155550123", 11), 0);
	CHECK_RC(veil_hash_email(emails[0], "nobody@example.org", 18), 0);
	CHECK_RC(veil_dir_match(dir_url, tok, 0, (const uint8_t(*)[32])emails, 1,
	                        (const uint8_t(*)[32])phones, 3, 0, m, 8, &n, &ci),
	         0);
	CHECK(n == 2 && ci == 86400);
	CHECK(memcmp(m[0].id, alice.id, 8) == 0 && m[0].index == 0 &&
	      m[0].kind == VEIL_CONTACT_PHONE);
	CHECK(memcmp(m[0].pk, alice.pk, 32) == 0);
	CHECK(memcmp(m[1].id, bob.id, 8) == 0 && m[1].index == 2);
	/* A match token is reusable; a forged one is refused. */
	CHECK_RC(veil_dir_match(dir_url, tok, 0, NULL, 0, (const uint8_t(*)[32])phones, 1, 0, m, 8,
	                        &n, NULL),
	         0);
	CHECK(n == 1);
	tok[5] = tok[5] == 'A' ? 'B' : 'A';
	CHECK_RC(veil_dir_match(dir_url, tok, 0, NULL, 0, (const uint8_t(*)[32])phones, 1, 0, m, 8,
	                        &n, NULL),
	         VEIL_EPROTO);
}

/* Raw POST for malformed bodies; returns the HTTP status. */
static struct veil_buf rbody;
static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)arg;
	return veil_buf_append(&rbody, p, size * nmemb) == 0 ? size * nmemb : 0;
}
static long raw_post(const char *path, const char *body)
{
	char url[256];
	long status = 0;
	snprintf(url, sizeof url, "%s%s", dir_url, path);
	rbody.len = 0;
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static void test_malformed_hashes(void)
{
	char tok[VEIL_DIR_MATCH_TOKEN_MAX + 1], body[512];
	CHECK_RC(veil_dir_match_token(dir_url, carol.id, carol.sk, tok), 0);
	snprintf(body, sizeof body, "{\"matchToken\":\"%s\",\"mobileNoHashes\":[\"AAAA\"]}", tok);
	CHECK(raw_post("identity/match", body) == 400);
	snprintf(body, sizeof body, "{\"matchToken\":\"%s\",\"mobileNoHashes\":[17]}", tok);
	CHECK(raw_post("identity/match", body) == 400);
	snprintf(body, sizeof body, "{\"matchToken\":\"%s\",\"emailHashes\":\"x\"}", tok);
	CHECK(raw_post("identity/match", body) == 400);
	CHECK(raw_post("identity/match", "{\"mobileNoHashes\":[]}") == 401);
	CHECK(raw_post("identity/oprf_eval", "{\"identity\":\"ECHOECHO\",\"elements\":[]}") == 400);
	CHECK(raw_post("identity/set_revocation_key", "{\"identity\":\"ECHOECHO\"}") == 400);
}

static void test_replayed_token(void)
{
	/* Phase 1 and 2 by hand, then the same phase 2 again. */
	char body[512], tokb64[200], respb64[64];
	uint8_t token[128], trpk[32], response[32];
	size_t tl = 0;
	snprintf(body, sizeof body, "{\"identity\":\"%.8s\"}", (const char *)carol.id);
	CHECK(raw_post("identity/match_token", body) == 200);
	json_error_t e;
	json_t *o = json_loadb((const char *)rbody.p, rbody.len, 0, &e);
	CHECK(o != NULL);
	snprintf(tokb64, sizeof tokb64, "%s", json_string_value(json_object_get(o, "token")));
	CHECK_RC(veil_b64_decode_var(token, sizeof token, &tl, tokb64, strlen(tokb64)), 0);
	CHECK_RC(
	    veil_b64_decode(trpk, 32, json_string_value(json_object_get(o, "tokenRespKeyPub")), 44),
	    0);
	json_decref(o);
	CHECK_RC(veil_dir_token_response(response, carol.sk, trpk, token, tl), 0);
	CHECK_RC(veil_b64_encode(respb64, sizeof respb64, response, 32), 0);
	snprintf(body, sizeof body, "{\"identity\":\"%.8s\",\"token\":\"%s\",\"response\":\"%s\"}",
	         (const char *)carol.id, tokb64, respb64);
	CHECK(raw_post("identity/match_token", body) == 200);
	CHECK(strstr((const char *)rbody.p, "matchToken") != NULL);
	CHECK(raw_post("identity/match_token", body) == 200);
	CHECK(memmem(rbody.p, rbody.len, "token already used", 18) != NULL);
	/* A token issued for one endpoint does not open another. */
	snprintf(body, sizeof body,
	         "{\"identity\":\"%.8s\",\"token\":\"%s\",\"response\":\"%s\",\"featureMask\":1}",
	         (const char *)carol.id, tokb64, respb64);
	CHECK(raw_post("identity/set_featuremask", body) == 200);
	CHECK(memmem(rbody.p, rbody.len, "invalid token", 13) != NULL);
}

/* The client's private-matching path for phone numbers. */
static int private_prfs(const char **numbers, size_t n, uint8_t (*prf)[32])
{
	uint8_t b[8][32], r[8][32], z[8][32];
	for (size_t i = 0; i < n; i++)
		if (veil_oprf_blind(b[i], r[i], VEIL_CONTACT_PHONE, numbers[i],
		                    strlen(numbers[i])) != 0)
			return -1;
	int rc = veil_dir_oprf_eval(dir_url, carol.id, carol.sk, (const uint8_t(*)[32])b, n, z);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = veil_oprf_finalize(prf[i], VEIL_CONTACT_PHONE, numbers[i], strlen(numbers[i]),
		                        r[i], z[i]);
	sodium_memzero(r, sizeof r);
	return rc;
}

static void test_private_matching(void)
{
	const char *numbers[] = {"19999999999", "14155550123", "41791234567"};
	uint8_t prf[3][32];
	char tok[VEIL_DIR_MATCH_TOKEN_MAX + 1];
	struct veil_dir_match m[8];
	size_t n = 0;
	CHECK_RC(private_prfs(numbers, 3, prf), 0);
	CHECK_RC(veil_dir_match_token(dir_url, carol.id, carol.sk, tok), 0);
	CHECK_RC(veil_dir_match(dir_url, tok, 1, NULL, 0, (const uint8_t(*)[32])prf, 3, 0, m, 8, &n,
	                        NULL),
	         0);
	CHECK(n == 2);
	CHECK(memcmp(m[0].id, bob.id, 8) == 0 && m[0].index == 1);
	CHECK(memcmp(m[1].id, alice.id, 8) == 0 && m[1].index == 2);
	/* The hashes do not match by the PRF route, nor the PRFs by the hash route. */
	uint8_t h[1][32];
	CHECK_RC(veil_hash_phone(h[0], "41791234567", 11), 0);
	CHECK_RC(
	    veil_dir_match(dir_url, tok, 1, NULL, 0, (const uint8_t(*)[32])h, 1, 0, m, 8, &n, NULL),
	    0);
	CHECK(n == 0);
	/* An invalid group element is refused. */
	uint8_t bad[1][32], z[1][32];
	memset(bad, 0xff, sizeof bad);
	CHECK_RC(veil_dir_oprf_eval(dir_url, carol.id, carol.sk, (const uint8_t(*)[32])bad, 1, z),
	         VEIL_EPROTO);
}

static void test_oprf_rate_limit(void)
{
	/* oprf-rate is 600 a minute: 10 a second refill. */
	static uint8_t b[VEIL_OPRF_MAX_BATCH][32], z[VEIL_OPRF_MAX_BATCH][32];
	uint8_t r[32];
	for (size_t i = 0; i < VEIL_OPRF_MAX_BATCH; i++)
		CHECK_RC(veil_oprf_blind(b[i], r, VEIL_CONTACT_PHONE, "41791234567", 11), 0);
	int limited = 0;
	for (int i = 0; i < 5 && !limited; i++) {
		int rc = veil_dir_oprf_eval(dir_url, carol.id, carol.sk, (const uint8_t(*)[32])b,
		                            VEIL_OPRF_MAX_BATCH, z);
		CHECK(rc == 0 || rc == VEIL_EAGAIN);
		limited = rc == VEIL_EAGAIN;
	}
	CHECK(limited);
	/* Another identity is not affected. */
	CHECK_RC(veil_dir_oprf_eval(dir_url, bob.id, bob.sk, (const uint8_t(*)[32])b, 8, z), 0);
	/* Lifted: after a second the bucket holds about ten evaluations again. */
	sleep(1);
	CHECK_RC(veil_dir_oprf_eval(dir_url, carol.id, carol.sk, (const uint8_t(*)[32])b, 8, z), 0);
}

static void test_featuremask(void)
{
	CHECK_RC(veil_dir_set_featuremask(dir_url, bob.id, bob.sk, 0x7f), 0);
	char body[128];
	snprintf(body, sizeof body, "{\"identities\":[\"%.8s\",\"ZZZZZZZZ\",\"bad\"]}",
	         (const char *)bob.id);
	CHECK(raw_post("identity/check_featuremask", body) == 200);
	CHECK(memmem(rbody.p, rbody.len, "[127,null,null]", 15) != NULL);
	struct veil_dir_identity di;
	CHECK_RC(veil_dir_get_identity(dir_url, bob.id, &di), 0);
	CHECK(di.feature_mask == 0x7f);
}

static void test_revocation(void)
{
	int set = 1;
	char when[32];
	CHECK_RC(veil_dir_check_revocation_key(dir_url, bob.id, bob.sk, &set, when), 0);
	CHECK(set == 0);
	CHECK_RC(veil_dir_set_revocation_key(dir_url, bob.id, bob.sk, "correct horse"), 0);
	CHECK_RC(veil_dir_check_revocation_key(dir_url, bob.id, bob.sk, &set, when), 0);
	CHECK(set == 1 && strlen(when) == 20 && when[19] == 'Z');
	CHECK_RC(veil_dir_revoke_with_password(dir_url, bob.id, "wrong horse"), VEIL_EAUTH);
	CHECK(strstr(veil_dir_errmsg(), "wrong revocation key") != NULL);
	CHECK_RC(veil_dir_revoke_with_password(dir_url, bob.id, "correct horse"), 0);
	struct veil_dir_identity di;
	CHECK_RC(veil_dir_get_identity(dir_url, bob.id, &di), 0);
	CHECK(di.state == 2);
	/* A revoked identity can no longer authenticate, and is no longer matched. */
	char tok[VEIL_DIR_MATCH_TOKEN_MAX + 1];
	CHECK_RC(veil_dir_match_token(dir_url, bob.id, bob.sk, tok), VEIL_EAUTH);
	CHECK(strstr(veil_dir_errmsg(), "revoked") != NULL);
	CHECK_RC(veil_dir_match_token(dir_url, carol.id, carol.sk, tok), 0);
	uint8_t h[1][32];
	struct veil_dir_match m[4];
	size_t n = 9;
	CHECK_RC(veil_hash_phone(h[0], "14155550123", 11), 0);
	CHECK_RC(
	    veil_dir_match(dir_url, tok, 0, NULL, 0, (const uint8_t(*)[32])h, 1, 1, m, 4, &n, NULL),
	    0);
	CHECK(n == 0);
	/* ws/revoke tries are limited per identity (revoke-rate 5 a minute). */
	int limited = 0;
	for (int i = 0; i < 8 && !limited; i++)
		limited = veil_dir_revoke_with_password(dir_url, carol.id, "guess") == VEIL_EAGAIN;
	CHECK(limited);
	/* Revocation with the key. */
	CHECK_RC(veil_dir_revoke(dir_url, alice.id, alice.sk), 0);
	CHECK_RC(veil_dir_get_identity(dir_url, alice.id, &di), 0);
	CHECK(di.state == 2);
	CHECK_RC(veil_dir_revoke(dir_url, alice.id, alice.sk), VEIL_EAUTH);
}

static void no_wake(void *arg)
{
	(void)arg;
}

T_MAIN_BEGIN
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/veil-test-contacts.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 2;
	char path[512];
	snprintf(path, sizeof path, "%s/store.db", tmpdir);
	struct veil_store_opts so = {.path = path, .wake = no_wake};
	memset(&srv, 0, sizeof srv);
	snprintf(srv.cfg.listen, sizeof srv.cfg.listen, "127.0.0.1");
	srv.cfg.http_max_body = 256 * 1024;
	srv.cfg.dir_rate_per_min = 1000000;
	srv.cfg.link_code_ttl_s = 600;
	srv.cfg.link_rate_per_min = 100;
	srv.cfg.match_rate_per_min = 4000;
	srv.cfg.oprf_rate_per_min = 600;
	srv.cfg.revoke_rate_per_min = 5;
	srv.keys.csp_sk = sodium_malloc(32);
	srv.keys.sign_sk = sodium_malloc(64);
	srv.keys.dir_sk = sodium_malloc(32);
	veil_keypair(srv.keys.csp_pk, srv.keys.csp_sk);
	crypto_sign_keypair(srv.keys.sign_pk, srv.keys.sign_sk);
	veil_keypair(srv.keys.dir_pk, srv.keys.dir_sk);
	if (veil_store_open(&srv.store, &so) != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return 2;
	veil_buf_init(&rbody, 1024 * 1024);
	if (veil_http_new(&http, &srv) != 0)
		return 2;
	snprintf(srv.cfg.sms_webhook, sizeof srv.cfg.sms_webhook, "http://127.0.0.1:%u/test-sms",
	         (unsigned)veil_http_port(http));
	snprintf(dir_url, sizeof dir_url, "http://127.0.0.1:%u/directory/",
	         (unsigned)veil_http_port(http));
	if (veil_dirsvc_register(http, &srv) != 0 ||
	    veil_http_route(http, "POST", "/test-sms", hook, NULL) != 0 || veil_http_run(http) != 0)
		return 2;
	if (make_ident(&alice) != 0 || make_ident(&bob) != 0 || make_ident(&carol) != 0)
		return 2;

	RUN(test_link_phone_codes);
	RUN(test_too_many_wrong_codes_and_expiry);
	RUN(test_match_hashes);
	RUN(test_malformed_hashes);
	RUN(test_replayed_token);
	RUN(test_private_matching);
	RUN(test_oprf_rate_limit);
	RUN(test_featuremask);
	RUN(test_revocation);

	veil_http_stop(http);
	veil_store_close(srv.store);
	sodium_free(srv.keys.csp_sk);
	sodium_free(srv.keys.sign_sk);
	sodium_free(srv.keys.dir_sk);
	veil_buf_release(&rbody);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "%s/store.db", tmpdir);
	unlink(cmd);
	snprintf(cmd, sizeof cmd, "%s/store.db-wal", tmpdir);
	unlink(cmd);
	snprintf(cmd, sizeof cmd, "%s/store.db-shm", tmpdir);
	unlink(cmd);
	rmdir(tmpdir);
}
T_MAIN_END
