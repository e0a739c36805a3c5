/*
 * The HTTP listener and the directory service, in-process on a free
 * loopback port with a temporary store, driven through the lib/dir client
 * and through raw libcurl requests.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "veil/crypto.h"
#include "veil/dir.h"
#include "veil/util.h"
#include "../../srv/directory/directory.h"
#include "../../srv/http/http.h"
#include "../../srv/server.h"
#include "../../srv/store/store.h"
#include "t.h"

static char tmpdir[256];
static struct veil_server srv;
static struct veil_http *http;
static char server_url[128], dir_url[160];
static struct veil_buf rbody; /* body of the last raw request */

static void srv_init(struct veil_server *s, uint32_t rate)
{
	memset(s, 0, sizeof *s);
	snprintf(s->cfg.listen, sizeof s->cfg.listen, "127.0.0.1");
	s->cfg.http_port = 0;
	s->cfg.chat_port = 5222;
	s->cfg.http_max_body = 64 * 1024;
	s->cfg.dir_rate_per_min = rate;
	s->keys.csp_sk = sodium_malloc(VEIL_KEY_LEN);
	s->keys.sign_sk = sodium_malloc(64);
	s->keys.dir_sk = sodium_malloc(VEIL_KEY_LEN);
	if (s->keys.csp_sk == NULL || s->keys.sign_sk == NULL || s->keys.dir_sk == NULL)
		abort();
	veil_keypair(s->keys.csp_pk, s->keys.csp_sk);
	crypto_sign_keypair(s->keys.sign_pk, s->keys.sign_sk);
	veil_keypair(s->keys.dir_pk, s->keys.dir_sk);
}

static void srv_release(struct veil_server *s)
{
	sodium_free(s->keys.csp_sk);
	sodium_free(s->keys.sign_sk);
	sodium_free(s->keys.dir_sk);
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	return veil_buf_append(arg, p, size * nmemb) == 0 ? size * nmemb : 0;
}

/* A raw request to base + path; returns the HTTP status (0 on transport failure). */
static long raw_at(const char *base, const char *method, const char *path, const char *body,
                   size_t len)
{
	char url[512];
	snprintf(url, sizeof url, "%s%s", base, path);
	veil_buf_reset(&rbody);
	CURL *c = curl_easy_init();
	if (c == NULL)
		return 0;
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &rbody);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	/* Keep the body NUL-terminated for string checks. */
	if (veil_buf_append_u8(&rbody, 0) == 0)
		rbody.len--;
	return status;
}

static long raw(const char *method, const char *path, const char *body)
{
	return raw_at(server_url, method, path, body, body != NULL ? strlen(body) : 0);
}

/* Parses the last raw body as a JSON object (NULL if it is not one). */
static json_t *rjson(void)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)rbody.p, rbody.len, 0, &e);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static int is_error(const char *type)
{
	json_t *j = rjson();
	int ok = j != NULL && json_is_false(json_object_get(j, "success")) &&
	         json_is_string(json_object_get(j, "error"));
	if (ok && type != NULL) {
		json_t *t = json_object_get(j, "errorType");
		ok = json_is_string(t) && strcmp(json_string_value(t), type) == 0;
	}
	json_decref(j);
	return ok;
}

static void b64(char *out, size_t cap, const uint8_t *p, size_t n)
{
	if (veil_b64_encode(out, cap, p, n) != 0)
		abort();
}

/* Runs phase 1 for pk and returns the token (and the server's response key). */
static int phase1(const uint8_t pk[32], uint8_t *tok, size_t *tok_len, uint8_t trpk[32])
{
	char pkb[64], body[128];
	b64(pkb, sizeof pkb, pk, 32);
	snprintf(body, sizeof body, "{\"publicKey\":\"%s\"}", pkb);
	if (raw("POST", "/directory/identity/create", body) != 200)
		return -1;
	json_t *j = rjson();
	json_t *t = json_object_get(j, "token"), *k = json_object_get(j, "tokenRespKeyPub");
	int rc = -1;
	if (json_is_string(t) && json_is_string(k) &&
	    veil_b64_decode_var(tok, 256, tok_len, json_string_value(t), json_string_length(t)) ==
	        0 &&
	    veil_b64_decode(trpk, 32, json_string_value(k), json_string_length(k)) == 0)
		rc = 0;
	json_decref(j);
	return rc;
}

/* Sends phase 2 with the given token and response; returns the HTTP status. */
static long phase2(const uint8_t pk[32], const uint8_t *tok, size_t tok_len, const uint8_t resp[32])
{
	char pkb[64], tb[512], rb[64], body[1024];
	b64(pkb, sizeof pkb, pk, 32);
	b64(tb, sizeof tb, tok, tok_len);
	b64(rb, sizeof rb, resp, 32);
	snprintf(body, sizeof body, "{\"publicKey\":\"%s\",\"token\":\"%s\",\"response\":\"%s\"}",
	         pkb, tb, rb);
	return raw("POST", "/directory/identity/create", body);
}

/* The identity of a successful phase-2 answer, or "" */
static void phase2_identity(char out[9])
{
	out[0] = '\0';
	json_t *j = rjson();
	json_t *id = json_object_get(j, "identity");
	if (json_is_true(json_object_get(j, "success")) && json_is_string(id) &&
	    json_string_length(id) == 8)
		memcpy(out, json_string_value(id), 9);
	json_decref(j);
}

static void test_create_and_get(void)
{
	uint8_t pk[32], sk[32], id[8], id2[8];
	veil_keypair(pk, sk);
	CHECK_RC(veil_dir_create_identity(dir_url, pk, sk, NULL, id), 0);
	CHECK(veil_id_valid(id));
	struct veil_dir_identity di;
	CHECK_RC(veil_dir_get_identity(dir_url, id, &di), 0);
	CHECK_MEM(di.id, id, 8);
	CHECK_MEM(di.pk, pk, 32);
	CHECK(di.state == 0);
	CHECK(di.type == 0);
	CHECK(di.feature_mask == 0);
	/* The store agrees. */
	struct veil_identity_rec rec;
	CHECK_RC(veil_store_identity_get(srv.store, id, &rec), 0);
	CHECK_MEM(rec.pk, pk, 32);
	/* The same key again gets the same identity. */
	CHECK_RC(veil_dir_create_identity(dir_url, pk, sk, NULL, id2), 0);
	CHECK_MEM(id, id2, 8);
	/* The directory URL works without its final slash too. */
	char noslash[160];
	snprintf(noslash, sizeof noslash, "%s", dir_url);
	noslash[strlen(noslash) - 1] = '\0';
	CHECK_RC(veil_dir_get_identity(noslash, id, &di), 0);
	/* The feature mask and state the store holds are what GET returns. */
	CHECK_RC(veil_store_identity_set_features(srv.store, id, 0x7f), 0);
	CHECK_RC(veil_dir_get_identity(dir_url, id, &di), 0);
	CHECK(di.feature_mask == 0x7f);
	sodium_memzero(sk, sizeof sk);
}

static void test_get_unknown(void)
{
	struct veil_dir_identity di;
	uint8_t id[8];
	memcpy(id, "ZZZZZZZZ", 8);
	CHECK_RC(veil_dir_get_identity(dir_url, id, &di), VEIL_ENOTFOUND);
	CHECK(strstr(veil_dir_errmsg(), "404") != NULL);
	CHECK(raw("GET", "/directory/identity/ZZZZZZZZ", NULL) == 404);
	CHECK(is_error(NULL));
	CHECK(raw("GET", "/directory/identity/abc", NULL) == 400);
	CHECK(is_error("invalid-identity"));
	CHECK(raw("GET", "/directory/nothing", NULL) == 404);
	CHECK(raw("GET", "/nowhere", NULL) == 404);
	CHECK(is_error(NULL));
	CHECK(raw("GET", "/directory/identity/create", NULL) == 405);
	CHECK(raw("POST", "/directory/identity/ZZZZZZZZ", "{}") == 405);
}

static void test_token_replay(void)
{
	uint8_t pk[32], sk[32], tok[256], trpk[32], resp[32];
	size_t tl;
	char id[9];
	veil_keypair(pk, sk);
	CHECK(phase1(pk, tok, &tl, trpk) == 0);
	CHECK(tl == VEIL_DIRSVC_TOKEN_LEN);
	CHECK_MEM(trpk, srv.keys.dir_pk, 32);
	CHECK_RC(veil_dir_token_response(resp, sk, trpk, tok, tl), 0);
	CHECK(phase2(pk, tok, tl, resp) == 200);
	phase2_identity(id);
	CHECK(id[0] != '\0');
	/* The same token and response a second time: refused. */
	CHECK(phase2(pk, tok, tl, resp) == 200);
	CHECK(is_error("invalid-token"));
	CHECK(strstr((const char *)rbody.p, "already used") != NULL);
}

static void test_wrong_response(void)
{
	uint8_t pk[32], sk[32], tok[256], trpk[32], resp[32], osk[32], opk[32];
	size_t tl;
	char id[9];
	veil_keypair(pk, sk);
	veil_keypair(opk, osk);
	CHECK(phase1(pk, tok, &tl, trpk) == 0);
	/* A response computed with another secret key. */
	CHECK_RC(veil_dir_token_response(resp, osk, trpk, tok, tl), 0);
	CHECK(phase2(pk, tok, tl, resp) == 200);
	CHECK(is_error("invalid-token"));
	CHECK(strstr((const char *)rbody.p, "response") != NULL);
	/* A token issued for one key does not serve another. */
	CHECK_RC(veil_dir_token_response(resp, osk, trpk, tok, tl), 0);
	CHECK(phase2(opk, tok, tl, resp) == 200);
	CHECK(is_error("invalid-token"));
	/* A forged token (one byte changed) is refused. */
	CHECK_RC(veil_dir_token_response(resp, sk, trpk, tok, tl), 0);
	tok[5] ^= 1;
	uint8_t r2[32];
	CHECK_RC(veil_dir_token_response(r2, sk, trpk, tok, tl), 0);
	CHECK(phase2(pk, tok, tl, r2) == 200);
	CHECK(is_error("invalid-token"));
	tok[5] ^= 1;
	/* A wrong response does not burn the token: the right one still works. */
	CHECK(phase2(pk, tok, tl, resp) == 200);
	phase2_identity(id);
	CHECK(id[0] != '\0');
}

static void test_expired_token(void)
{
	uint8_t pk[32], sk[32], tok[VEIL_DIRSVC_TOKEN_LEN], resp[32];
	veil_keypair(pk, sk);
	uint64_t past = veil_now_ms() - VEIL_DIRSVC_TOKEN_TTL_MS - 1000;
	CHECK_RC(veil_dirsvc_token_issue(&srv.keys, "identity/create", pk, past, tok), 0);
	CHECK_RC(veil_dir_token_response(resp, sk, srv.keys.dir_pk, tok, sizeof tok), 0);
	CHECK(phase2(pk, tok, sizeof tok, resp) == 200);
	CHECK(is_error("invalid-token"));
	CHECK(strstr((const char *)rbody.p, "expired") != NULL);
	/* The same construction with a fresh time is accepted, so only expiry differed. */
	CHECK_RC(veil_dirsvc_token_issue(&srv.keys, "identity/create", pk, veil_now_ms(), tok), 0);
	CHECK_RC(veil_dir_token_response(resp, sk, srv.keys.dir_pk, tok, sizeof tok), 0);
	CHECK(phase2(pk, tok, sizeof tok, resp) == 200);
	CHECK(!is_error(NULL));
	/* A token for another endpoint is refused by the check. */
	uint64_t exp;
	CHECK_RC(veil_dirsvc_token_check(&srv.keys, "identity/revoke", pk, tok, sizeof tok,
	                                 veil_now_ms(), &exp),
	         VEIL_ECRYPTO);
	CHECK_RC(veil_dirsvc_token_check(&srv.keys, "identity/create", pk, tok, sizeof tok,
	                                 veil_now_ms(), &exp),
	         0);
}

static void create_id(uint8_t id[8], uint8_t pk[32])
{
	uint8_t sk[32];
	veil_keypair(pk, sk);
	if (veil_dir_create_identity(dir_url, pk, sk, NULL, id) != 0)
		memset(id, 0, 8);
}

static void test_fetch_bulk(void)
{
	uint8_t a[8], b[8], apk[32], bpk[32];
	create_id(a, apk);
	create_id(b, bpk);
	CHECK(veil_id_valid(a) && veil_id_valid(b));
	char body[256];
	snprintf(body, sizeof body, "{\"identities\":[\"%.8s\",\"ZZZZZZZZ\",\"%.8s\",\"bad\"]}", a,
	         b);
	CHECK(raw("POST", "/directory/identity/fetch_bulk", body) == 200);
	json_t *j = rjson();
	json_t *arr = json_object_get(j, "identities");
	CHECK(json_is_array(arr) && json_array_size(arr) == 2);
	struct veil_dir_identity di;
	char *one = json_dumps(json_array_get(arr, 0), JSON_COMPACT);
	int rc = veil_dir_parse_identity((const uint8_t *)one, strlen(one), &di);
	free(one);
	CHECK_RC(rc, 0);
	CHECK_MEM(di.id, a, 8);
	CHECK_MEM(di.pk, apk, 32);
	one = json_dumps(json_array_get(arr, 1), JSON_COMPACT);
	rc = veil_dir_parse_identity((const uint8_t *)one, strlen(one), &di);
	free(one);
	json_decref(j);
	CHECK_RC(rc, 0);
	CHECK_MEM(di.id, b, 8);
	CHECK_MEM(di.pk, bpk, 32);
	/* Too many identities is refused. */
	struct veil_buf big;
	veil_buf_init(&big, 64 * 1024);
	CHECK(veil_buf_append(&big, "{\"identities\":[", 15) == 0);
	for (int i = 0; i <= VEIL_DIRSVC_MAX_IDS; i++)
		CHECK(veil_buf_append(&big, i ? ",\"AAAAAAAA\"" : "\"AAAAAAAA\"", i ? 11 : 10) ==
		      0);
	CHECK(veil_buf_append(&big, "]}", 3) == 0);
	long st = raw("POST", "/directory/identity/fetch_bulk", (const char *)big.p);
	veil_buf_release(&big);
	CHECK(st == 400);
	CHECK(is_error(NULL));
	/* Non-string entries are malformed. */
	CHECK(raw("POST", "/directory/identity/fetch_bulk", "{\"identities\":[1]}") == 400);
	CHECK(raw("POST", "/directory/identity/fetch_bulk", "{\"identities\":\"x\"}") == 400);
}

static void test_check(void)
{
	uint8_t a[8], b[8], apk[32], bpk[32];
	create_id(a, apk);
	create_id(b, bpk);
	CHECK(veil_id_valid(a) && veil_id_valid(b));
	CHECK_RC(veil_store_identity_set_state(srv.store, b, VEIL_IDENTITY_INACTIVE), 0);
	CHECK_RC(veil_store_identity_set_features(srv.store, a, 0x40), 0);
	char body[256];
	snprintf(body, sizeof body, "{\"identities\":[\"%.8s\",\"ZZZZZZZZ\",\"%.8s\"]}", a, b);
	CHECK(raw("POST", "/directory/identity/check", body) == 200);
	json_t *j = rjson();
	CHECK(j != NULL);
	json_t *st = json_object_get(j, "states"), *ty = json_object_get(j, "types"),
	       *fm = json_object_get(j, "featureMasks"), *ci = json_object_get(j, "checkInterval");
	int ok = json_array_size(st) == 3 && json_array_size(ty) == 3 && json_array_size(fm) == 3 &&
	         json_is_integer(ci) && json_integer_value(ci) == VEIL_DIRSVC_CHECK_INTERVAL &&
	         json_integer_value(json_array_get(st, 0)) == 0 &&
	         json_integer_value(json_array_get(st, 1)) == 2 &&
	         json_integer_value(json_array_get(st, 2)) == 1 &&
	         json_integer_value(json_array_get(ty, 0)) == 0 &&
	         json_integer_value(json_array_get(fm, 0)) == 0x40 &&
	         json_is_null(json_array_get(fm, 1)) &&
	         json_integer_value(json_array_get(fm, 2)) == 0;
	json_decref(j);
	CHECK(ok);
	/* A missing field is malformed. */
	CHECK(raw("POST", "/directory/identity/check", "{}") == 400);
	CHECK(strstr((const char *)rbody.p, "identities") != NULL);
}

static void test_malformed(void)
{
	uint8_t pk[32], sk[32];
	veil_keypair(pk, sk);
	char pkb[64], body[256], shortb[64];
	b64(pkb, sizeof pkb, pk, 32);
	b64(shortb, sizeof shortb, pk, 16);
	static const char *const cases[] = {
	    "{",
	    "[]",
	    "{\"publicKey\":1}",
	    "{}",
	    "{\"publicKey\":\"***\"}",
	    "{\"publicKey\":\"%s\"}", /* 16 bytes */
	    "{\"publicKey\":\"%p\",\"token\":\"AAAA\"}",
	    "{\"publicKey\":\"%p\",\"token\":\"AAAA\",\"response\":\"AAAA\"}",
	    "{\"publicKey\":\"%p\",\"publicKey\":\"%p\"}",
	    "{\"publicKey\":\"%p\"} trailing",
	    "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}",
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(cases); i++) {
		/* Substitute %p (good key) and %s (short key) by hand. */
		size_t o = 0;
		for (const char *c = cases[i]; *c && o < sizeof body - 64; c++) {
			if (c[0] == '%' && (c[1] == 'p' || c[1] == 's')) {
				const char *v = c[1] == 'p' ? pkb : shortb;
				memcpy(body + o, v, strlen(v));
				o += strlen(v);
				c++;
			} else {
				body[o++] = *c;
			}
		}
		body[o] = '\0';
		long st = raw("POST", "/directory/identity/create", body);
		if (st != 400 || !is_error(NULL))
			fprintf(stderr, "case %zu: %s -> %ld %s\n", i, body, st,
			        (const char *)rbody.p);
		CHECK(st == 400);
		CHECK(is_error(NULL));
	}
	/* A low-order public key (all zero) cannot answer a challenge. */
	uint8_t zero[32] = {0};
	b64(pkb, sizeof pkb, zero, 32);
	snprintf(body, sizeof body, "{\"publicKey\":\"%s\"}", pkb);
	CHECK(raw("POST", "/directory/identity/create", body) == 400);
	/* An empty body. */
	CHECK(raw("POST", "/directory/identity/create", "") == 400);
}

static void test_oversize(void)
{
	size_t n = 70 * 1024;
	char *big = malloc(n + 1);
	CHECK(big != NULL);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	long st = raw("POST", "/directory/identity/create", big);
	free(big);
	CHECK(st == 413);
	CHECK(is_error(NULL));
	/* Exactly at the limit is accepted by the listener (and parsed). */
	n = 64 * 1024;
	big = malloc(n + 1);
	CHECK(big != NULL);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	st = raw("POST", "/directory/identity/create", big);
	free(big);
	CHECK(st == 400); /* {} lacks publicKey */
	/* The listener still serves after the closed connection. */
	CHECK(raw("GET", "/directory/identity/ZZZZZZZZ", NULL) == 404);
}

/* Sends req on a fresh connection and reads the answer until the peer closes or 2 s pass. */
static int raw_socket(const uint8_t *req, size_t len, char *ans, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(veil_http_port(http))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	size_t got = 0;
	while (got + 1 < cap) {
		ssize_t n = recv(fd, ans + got, cap - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	ans[got] = '\0';
	close(fd);
	return (int)got;
}

static void test_chunked(void)
{
	/* lws 4.1 does not de-chunk request bodies: the listener asks for a length. */
	static const char req[] = "POST /directory/identity/create HTTP/1.1\r\nHost: x\r\n"
	                          "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
	char ans[4096];
	CHECK(raw_socket((const uint8_t *)req, sizeof req - 1, ans, sizeof ans) > 0);
	CHECK(strncmp(ans, "HTTP/1.1 411", 12) == 0);
	/* The same request with a length works (400: {} lacks publicKey). */
	static const char req2[] = "POST /directory/identity/create HTTP/1.1\r\nHost: x\r\n"
	                           "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
	CHECK(raw_socket((const uint8_t *)req2, sizeof req2 - 1, ans, sizeof ans) > 0);
	CHECK(strncmp(ans, "HTTP/1.1 400", 12) == 0);
	CHECK(strstr(ans, "publicKey") != NULL);
}

/* Several requests on one kept-alive connection, each answered on its own. */
static void test_keepalive(void)
{
	CURL *c = curl_easy_init();
	CHECK(c != NULL);
	char url[256];
	long st[3] = {0}, conns[3] = {0};
	veil_buf_reset(&rbody);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &rbody);
	for (int i = 0; i < 3; i++) {
		if (i == 1) {
			snprintf(url, sizeof url, "%sidentity/check", dir_url);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"identities\":[\"ZZZZZZZZ\"]}");
		} else {
			snprintf(url, sizeof url, "%sidentity/ZZZZZZZZ", dir_url);
			curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		}
		curl_easy_setopt(c, CURLOPT_URL, url);
		if (curl_easy_perform(c) == CURLE_OK) {
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st[i]);
			curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns[i]);
		}
	}
	curl_easy_cleanup(c);
	CHECK(st[0] == 404 && st[1] == 200 && st[2] == 404);
	CHECK(conns[0] == 1 && conns[1] == 0 && conns[2] == 0);
}

static void test_rate_limit(void)
{
	struct veil_server s2;
	struct veil_http *h2 = NULL;
	srv_init(&s2, 60);
	s2.store = srv.store;
	CHECK_RC(veil_http_start(&h2, &s2), 0);
	char base[64];
	snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)veil_http_port(h2));
	int limited = 0, served = 0;
	for (int i = 0; i < 80 && !limited; i++) {
		long st = raw_at(base, "GET", "/directory/identity/ZZZZZZZZ", NULL, 0);
		if (st == 429)
			limited = 1;
		else if (st == 404)
			served++;
	}
	/* 60 a minute with a burst of 60: the 61st request in a row is refused. */
	int ok = limited && served >= 59 && served <= 61 && is_error(NULL);
	/* One token comes back each second. */
	struct timespec ts = {1, 200 * 1000 * 1000};
	nanosleep(&ts, NULL);
	long after = raw_at(base, "GET", "/directory/identity/ZZZZZZZZ", NULL, 0);
	long again = raw_at(base, "GET", "/directory/identity/ZZZZZZZZ", NULL, 0);
	/* The provisioning document has a bucket of its own: still served, then limited too. */
	long prov = raw_at(base, "GET", VEIL_DIRSVC_PROVISIONING_PATH, NULL, 0);
	int prov_served = 1, prov_limited = 0;
	for (int i = 0; i < 70 && !prov_limited; i++) {
		long st = raw_at(base, "GET", VEIL_DIRSVC_PROVISIONING_PATH, NULL, 0);
		prov_limited = st == 429;
		prov_served += st == 200;
	}
	veil_http_stop(h2);
	srv_release(&s2);
	CHECK(ok);
	CHECK(after == 404);
	CHECK(again == 429);
	CHECK(prov == 200);
	CHECK(prov_limited && prov_served >= 59 && prov_served <= 61);
}

static void test_ratelimit_unit(void)
{
	struct veil_ratelimit *rl;
	CHECK_RC(veil_ratelimit_new(&rl, 6), 0);
	for (int i = 0; i < 6; i++)
		CHECK_RC(veil_ratelimit_take(rl, "10.0.0.1", 1000), 0);
	CHECK_RC(veil_ratelimit_take(rl, "10.0.0.1", 1000), VEIL_EAGAIN);
	CHECK_RC(veil_ratelimit_take(rl, "10.0.0.2", 1000), 0);
	/* 6 a minute: one token every 10 s, also when asked every millisecond. */
	int got = 0;
	for (uint64_t t = 1001; t <= 11000; t++)
		if (veil_ratelimit_take(rl, "10.0.0.1", t) == 0)
			got++;
	CHECK(got == 1);
	/* Many keys stay within the fixed table and every new key gets a bucket. */
	char key[32];
	for (int i = 0; i < 3 * VEIL_RATELIMIT_SLOTS; i++) {
		snprintf(key, sizeof key, "k%d", i);
		CHECK_RC(veil_ratelimit_take(rl, key, 20000), 0);
	}
	veil_ratelimit_free(rl);
}

static uint8_t *find(uint8_t *p, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(p + i, needle, n) == 0)
			return p + i;
	return NULL;
}

static void test_provisioning(void)
{
	struct veil_dir_provisioning p;
	CHECK_RC(veil_dir_fetch_provisioning(server_url, NULL, NULL, &p), 0);
	CHECK_MEM(p.sign_pk, srv.keys.sign_pk, 32);
	CHECK_MEM(p.csp_pk, srv.keys.csp_pk, 32);
	CHECK(strcmp(p.chat_host, "127.0.0.1") == 0);
	CHECK(p.chat_port == 5222);
	CHECK(strcmp(p.directory_url, dir_url) == 0);
	CHECK(p.refresh_s == VEIL_DIRSVC_OPPF_REFRESH);
	/* The WebSocket services' base URLs: server_url with ws:// in place of http://. */
	char want[200];
	snprintf(want, sizeof want, "ws://%s/mediator/", server_url + strlen("http://"));
	CHECK(strcmp(p.mediator_url, want) == 0);
	snprintf(want, sizeof want, "ws://%s/rendezvous/", server_url + strlen("http://"));
	CHECK(strcmp(p.rendezvous_url, want) == 0);
	/* The directory URL it names works. */
	uint8_t id[8];
	memcpy(id, "ZZZZZZZZ", 8);
	struct veil_dir_identity di;
	CHECK_RC(veil_dir_get_identity(p.directory_url, id, &di), VEIL_ENOTFOUND);
	/* Pins. */
	CHECK_RC(veil_dir_fetch_provisioning(server_url, srv.keys.sign_pk, srv.keys.csp_pk, &p), 0);
	uint8_t other[32];
	veil_random(other, sizeof other);
	CHECK_RC(veil_dir_fetch_provisioning(server_url, NULL, other, &p), VEIL_EKEY);
	CHECK(veil_dir_errmsg()[0] != '\0');
	CHECK_RC(veil_dir_fetch_provisioning(server_url, other, NULL, &p), VEIL_EKEY);

	/* The raw document: JSON, LF, signature that verifies over the JSON bytes. */
	CHECK(raw("GET", VEIL_DIRSVC_PROVISIONING_PATH, NULL) == 200);
	size_t len = rbody.len;
	uint8_t *doc = malloc(len);
	CHECK(doc != NULL);
	memcpy(doc, rbody.p, len);
	const uint8_t *lf = memchr(doc, '\n', len);
	int ok = lf != NULL && memchr(lf + 1, '\n', len - (size_t)(lf + 1 - doc)) == NULL;
	uint8_t sig[64];
	ok =
	    ok && veil_b64_decode(sig, 64, (const char *)lf + 1, len - (size_t)(lf + 1 - doc)) == 0;
	ok = ok && crypto_sign_verify_detached(sig, doc, (size_t)(lf - doc), srv.keys.sign_pk) == 0;
	CHECK_RC(veil_dir_parse_provisioning(doc, len, NULL, NULL, &p), 0);
	/* Tampered JSON: the port digit 5222 -> 6222. */
	uint8_t *port = find(doc, len, "5222");
	int tampered = port != NULL;
	if (port != NULL)
		port[0] = '6';
	int rc_json = veil_dir_parse_provisioning(doc, len, NULL, NULL, &p);
	if (port != NULL)
		port[0] = '5';
	/* Tampered signature. */
	doc[len - 5] = doc[len - 5] == 'A' ? 'B' : 'A';
	int rc_sig = veil_dir_parse_provisioning(doc, len, NULL, NULL, &p);
	free(doc);
	CHECK(ok);
	CHECK(tampered);
	CHECK_RC(rc_json, VEIL_ECRYPTO);
	CHECK(rc_sig == VEIL_ECRYPTO || rc_sig == VEIL_EPROTO);
	/* No signature line at all. */
	CHECK_RC(veil_dir_parse_provisioning((const uint8_t *)"{}", 2, NULL, NULL, &p),
	         VEIL_EPROTO);
}

/*
 * With --public-url and --public-chat every endpoint the document names is
 * the public one (a TLS proxy's), none the listener's own.
 */
/* --chat-address: every node in chat.addresses, signed; the parser's bounds. */
static void test_provisioning_chat_addrs(void)
{
	struct veil_server s = srv;
	struct veil_buf doc;
	struct veil_dir_provisioning p;
	veil_buf_init(&doc, 64 * 1024);
	CHECK_RC(veil_dirsvc_provisioning_build(&s, 8080, &doc), 0);
	CHECK_RC(veil_dir_parse_provisioning(doc.p, doc.len, NULL, NULL, &p), 0);
	CHECK(p.n_chat_addrs == 0 && find(doc.p, doc.len, "addresses") == NULL);
	snprintf(s.cfg.chat_addrs[0].host, sizeof s.cfg.chat_addrs[0].host, "node-a.example.org");
	s.cfg.chat_addrs[0].port = 5222;
	snprintf(s.cfg.chat_addrs[1].host, sizeof s.cfg.chat_addrs[1].host, "2001:db8::9");
	s.cfg.chat_addrs[1].port = 443;
	s.cfg.n_chat_addrs = 2;
	CHECK_RC(veil_dirsvc_provisioning_build(&s, 8080, &doc), 0);
	CHECK_RC(veil_dir_parse_provisioning(doc.p, doc.len, srv.keys.sign_pk, NULL, &p), 0);
	veil_buf_release(&doc);
	CHECK(p.n_chat_addrs == 2);
	CHECK(strcmp(p.chat_addrs[0].host, "node-a.example.org") == 0 &&
	      p.chat_addrs[0].port == 5222);
	CHECK(strcmp(p.chat_addrs[1].host, "2001:db8::9") == 0 && p.chat_addrs[1].port == 443);
	/* The single entry older clients read is still there. */
	CHECK(strcmp(p.chat_host, "127.0.0.1") == 0 && p.chat_port == 5222);

	/* A longer list is cut to VEIL_DIR_MAX_CHAT_ADDRS; a bad entry is refused. */
	char js[2048];
	size_t n = (size_t)snprintf(js, sizeof js, "{\"addresses\":[");
	for (int i = 0; i < VEIL_DIR_MAX_CHAT_ADDRS + 3; i++)
		n += (size_t)snprintf(js + n, sizeof js - n, "%s{\"hostname\":\"n%d\",\"port\":%d}",
		                      i ? "," : "", i, 1000 + i);
	n += (size_t)snprintf(js + n, sizeof js - n, "]}");
	CHECK_RC(veil_dir_parse_chat_addrs((const uint8_t *)js, n, &p), 0);
	CHECK(p.n_chat_addrs == VEIL_DIR_MAX_CHAT_ADDRS);
	CHECK(strcmp(p.chat_addrs[VEIL_DIR_MAX_CHAT_ADDRS - 1].host, "n7") == 0 &&
	      p.chat_addrs[VEIL_DIR_MAX_CHAT_ADDRS - 1].port == 1007);
	static const char *const bad[] = {
	    "{\"addresses\":{}}",
	    "{\"addresses\":[1]}",
	    "{\"addresses\":[{\"hostname\":\"a\",\"port\":0}]}",
	    "{\"addresses\":[{\"hostname\":\"a\",\"port\":65536}]}",
	    "{\"addresses\":[{\"hostname\":\"\",\"port\":1}]}",
	    "{\"addresses\":[{\"port\":1}]}",
	    "[]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		p.n_chat_addrs = 5;
		if (veil_dir_parse_chat_addrs((const uint8_t *)bad[i], strlen(bad[i]), &p) !=
		        VEIL_EPROTO ||
		    p.n_chat_addrs != 0) {
			fprintf(stderr, "accepted chat addresses %s\n", bad[i]);
			CHECK(0);
		}
	}
	CHECK_RC(veil_dir_parse_chat_addrs((const uint8_t *)"{}", 2, &p), 0);
	CHECK(p.n_chat_addrs == 0);
}

static void test_provisioning_public(void)
{
	struct veil_server s = srv;
	struct veil_buf doc;
	struct veil_dir_provisioning p;
	veil_buf_init(&doc, 64 * 1024);
	snprintf(s.cfg.data_dir, sizeof s.cfg.data_dir, "%s",
	         tmpdir); /* announces the blob service */
	snprintf(s.cfg.public_url, sizeof s.cfg.public_url, "https://chat.example.org:8443/veil");
	snprintf(s.cfg.public_chat_host, sizeof s.cfg.public_chat_host, "2001:db8::7");
	s.cfg.public_chat_port = 443;
	int rc = veil_dirsvc_provisioning_build(&s, 8080, &doc);
	int prc = rc == 0 ? veil_dir_parse_provisioning(doc.p, doc.len, srv.keys.sign_pk,
	                                                srv.keys.csp_pk, &p)
	                  : rc;
	int leaks =
	    find(doc.p, doc.len, "127.0.0.1") != NULL || find(doc.p, doc.len, ":8080") != NULL;
	veil_buf_release(&doc);
	CHECK_RC(rc, 0);
	CHECK_RC(prc, 0);
	CHECK(!leaks);
	CHECK(strcmp(p.directory_url, "https://chat.example.org:8443/veil/directory/") == 0);
	CHECK(strcmp(p.blob_upload_url, "https://chat.example.org:8443/veil/blob/upload") == 0);
	CHECK(strcmp(p.blob_download_url, "https://chat.example.org:8443/veil/blob/{blobId}") == 0);
	CHECK(strcmp(p.blob_done_url, "https://chat.example.org:8443/veil/blob/{blobId}/done") ==
	      0);
	CHECK(strcmp(p.chat_host, "2001:db8::7") == 0 && p.chat_port == 443);
	CHECK(strcmp(p.server_name, "chat.example.org") == 0);

	/* The public URL alone: the chat service on its own port under the URL's host. */
	s.cfg.public_chat_host[0] = '\0';
	s.cfg.public_chat_port = 0;
	veil_buf_init(&doc, 64 * 1024);
	rc = veil_dirsvc_provisioning_build(&s, 8080, &doc);
	prc = rc == 0 ? veil_dir_parse_provisioning(doc.p, doc.len, NULL, NULL, &p) : rc;
	veil_buf_release(&doc);
	CHECK_RC(prc, 0);
	CHECK(strcmp(p.chat_host, "chat.example.org") == 0 && p.chat_port == 5222);

	/* Without them: the listener's own address, as before. */
	s.cfg.public_url[0] = '\0';
	s.cfg.public_chat_host[0] = '\0';
	s.cfg.public_chat_port = 0;
	veil_buf_init(&doc, 64 * 1024);
	rc = veil_dirsvc_provisioning_build(&s, 8080, &doc);
	prc = rc == 0 ? veil_dir_parse_provisioning(doc.p, doc.len, NULL, NULL, &p) : rc;
	veil_buf_release(&doc);
	CHECK_RC(prc, 0);
	CHECK(strcmp(p.directory_url, "http://127.0.0.1:8080/directory/") == 0);
	CHECK(strcmp(p.blob_upload_url, "http://127.0.0.1:8080/blob/upload") == 0);
	CHECK(strcmp(p.chat_host, "127.0.0.1") == 0 && p.chat_port == 5222);
}

/*
 * --signup invite through the directory API: each refusal has its reason,
 * a code's use is taken only by a new identity, and the same key asking
 * again gets its ID back without a second use.
 */
static void test_signup_invite(void)
{
	uint8_t pk[32], sk[32], id[8], id2[8], hash[32];
	char code[VEIL_INVITE_TEXT_MAX + 1], expired_code[VEIL_INVITE_TEXT_MAX + 1];
	struct veil_invite_rec r, e;
	memset(&r, 0, sizeof r);
	memset(&e, 0, sizeof e);
	CHECK_RC(veil_invite_code_new(code, r.hash), 0);
	CHECK_RC(veil_invite_hash(code, hash), 0);
	CHECK_MEM(hash, r.hash, 32);
	CHECK(strlen(code) == 23 && code[5] == '-');
	r.uses = 2;
	r.created_ms = veil_now_ms();
	CHECK_RC(veil_store_invite_put(srv.store, &r), 0);
	CHECK_RC(veil_invite_code_new(expired_code, e.hash), 0);
	e.uses = 5;
	e.created_ms = veil_now_ms() - 10000;
	e.expires_ms = veil_now_ms() - 1;
	CHECK_RC(veil_store_invite_put(srv.store, &e), 0);

	srv.cfg.signup = VEIL_SIGNUP_INVITE;
	veil_keypair(pk, sk);
	int none = veil_dir_create_identity(dir_url, pk, sk, NULL, id);
	int none_msg = strstr(veil_dir_errmsg(), "invite-required") != NULL;
	int exp = veil_dir_create_identity(dir_url, pk, sk, expired_code, id);
	int exp_msg = strstr(veil_dir_errmsg(), "has expired") != NULL;
	int ok = veil_dir_create_identity(dir_url, pk, sk, code, id);
	/* The same key again: its ID, and the code keeps its second use. */
	int again = veil_dir_create_identity(dir_url, pk, sk, code, id2);
	veil_keypair(pk, sk);
	int second = veil_dir_create_identity(dir_url, pk, sk, code, id2);
	veil_keypair(pk, sk);
	int third = veil_dir_create_identity(dir_url, pk, sk, code, id2);
	int third_msg = strstr(veil_dir_errmsg(), "used up") != NULL;
	srv.cfg.signup = VEIL_SIGNUP_CLOSED;
	int closed = veil_dir_create_identity(dir_url, pk, sk, code, id2);
	int closed_msg = strstr(veil_dir_errmsg(), "sign-up is closed") != NULL;
	srv.cfg.signup = VEIL_SIGNUP_DEFAULT; /* 127.0.0.1: open */
	int open_rc = veil_dir_create_identity(dir_url, pk, sk, NULL, id2);
	CHECK_RC(none, VEIL_EAUTH);
	CHECK(none_msg);
	CHECK_RC(exp, VEIL_EAUTH);
	CHECK(exp_msg);
	CHECK_RC(ok, 0);
	CHECK_RC(again, 0);
	CHECK_RC(second, 0);
	CHECK_RC(third, VEIL_EAUTH);
	CHECK(third_msg);
	CHECK_RC(closed, VEIL_EAUTH);
	CHECK(closed_msg);
	CHECK_RC(open_rc, 0);
	/* Codes: case, dashes and spaces do not matter; anything else is no code. */
	uint8_t h2[32];
	char loose[64];
	snprintf(loose, sizeof loose, " %.5s %.5s-%.5s%.5s ", code, code + 6, code + 12, code + 18);
	for (char *c = loose; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	CHECK_RC(veil_invite_hash(loose, h2), 0);
	CHECK_MEM(h2, hash, 32);
	CHECK_RC(veil_invite_hash("AAAAA-BBBBB-CCCCC-DDDD", h2), VEIL_EINVAL);
	CHECK_RC(veil_invite_hash("AAAAA-BBBBB-CCCCC-DDDD0", h2), VEIL_EINVAL);
	CHECK_RC(veil_invite_hash("AAAAA-BBBBB-CCCCC-DDDDDE", h2), VEIL_EINVAL);
}

static void test_unreachable(void)
{
	uint8_t id[8];
	memcpy(id, "ZZZZZZZZ", 8);
	struct veil_dir_identity di;
	/* Port 1 on loopback: nobody listens. */
	CHECK_RC(veil_dir_get_identity("http://127.0.0.1:1/directory/", id, &di), VEIL_EIO);
	CHECK(strlen(veil_dir_errmsg()) > 0);
	uint8_t pk[32], sk[32];
	veil_keypair(pk, sk);
	CHECK_RC(veil_dir_create_identity("http://127.0.0.1:1/directory/", pk, sk, NULL, id),
	         VEIL_EIO);
	/* Only http and https are spoken. */
	memcpy(id, "ZZZZZZZZ", 8);
	CHECK_RC(veil_dir_get_identity("ftp://127.0.0.1/directory/", id, &di), VEIL_EIO);
	CHECK(strstr(veil_dir_errmsg(), "ftp") != NULL);
}

static void test_parsers(void)
{
	struct veil_dirsvc_create_req cr;
	const char *why;
	const char *ok1 =
	    "{\"publicKey\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"lic\":1}";
	CHECK_RC(veil_dirsvc_parse_create((const uint8_t *)ok1, strlen(ok1), &cr, &why), 0);
	CHECK(!cr.has_token);
	const char *deep = "{\"a\":[[[[[[[[1]]]]]]]]}";
	CHECK_RC(veil_json_depth_ok((const uint8_t *)deep, strlen(deep), 8), VEIL_ELIMIT);
	CHECK_RC(veil_json_depth_ok((const uint8_t *)deep, strlen(deep), 9), 0);
	const char *instr = "{\"a\":\"[[[[[[[[[[[[\\\"[[[[\"}";
	CHECK_RC(veil_json_depth_ok((const uint8_t *)instr, strlen(instr), 1), 0);
	uint8_t ids[4][8];
	int valid[4];
	size_t n;
	const char *l = "{\"identities\":[\"ECHOECHO\",\"echoecho\",\"*SUPPORT\"]}";
	CHECK_RC(veil_dirsvc_parse_ids((const uint8_t *)l, strlen(l), ids, valid, 4, &n, &why), 0);
	CHECK(n == 3 && valid[0] && !valid[1] && valid[2]);
	CHECK_RC(veil_dirsvc_parse_ids((const uint8_t *)l, strlen(l), ids, valid, 2, &n, &why),
	         VEIL_ELIMIT);
}

/* The directory uses only synchronous store calls; nothing waits for completions. */
static void no_wake(void *arg)
{
	(void)arg;
}

T_MAIN_BEGIN
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/veil-test-dir.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 2;
	char path[512];
	snprintf(path, sizeof path, "%s/store.db", tmpdir);
	struct veil_store_opts so = {.path = path, .wake = no_wake};
	srv_init(&srv, 1000000);
	int src = veil_store_open(&srv.store, &so);
	if (src != 0) {
		fprintf(stderr, "store open: %s\n", veil_strerror(src));
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 2;
	veil_buf_init(&rbody, 1024 * 1024);
	src = veil_http_start(&http, &srv);
	if (src != 0) {
		fprintf(stderr, "http start: %s\n", veil_strerror(src));
		return 2;
	}
	snprintf(server_url, sizeof server_url, "http://127.0.0.1:%u",
	         (unsigned)veil_http_port(http));
	snprintf(dir_url, sizeof dir_url, "%s/directory/", server_url);

	RUN(test_parsers);
	RUN(test_ratelimit_unit);
	RUN(test_create_and_get);
	RUN(test_get_unknown);
	RUN(test_token_replay);
	RUN(test_wrong_response);
	RUN(test_expired_token);
	RUN(test_fetch_bulk);
	RUN(test_check);
	RUN(test_malformed);
	RUN(test_oversize);
	RUN(test_chunked);
	RUN(test_keepalive);
	RUN(test_rate_limit);
	RUN(test_provisioning);
	RUN(test_provisioning_chat_addrs);
	RUN(test_provisioning_public);
	RUN(test_signup_invite);
	RUN(test_unreachable);

	veil_http_stop(http);
	veil_store_close(srv.store);
	srv_release(&srv);
	veil_buf_release(&rbody);
	snprintf(path, sizeof path, "%s/store.db", tmpdir);
	unlink(path);
	snprintf(path, sizeof path, "%s/store.db-wal", tmpdir);
	unlink(path);
	snprintf(path, sizeof path, "%s/store.db-shm", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}
T_MAIN_END
