/*
 * The Gateway's pieces without a server: the form parser (the published
 * API's form fields, decoding, bounds) and the accounts file (secret hashed
 * and sealed, constant-time check, credits, callback URL).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "../../srv/gateway/gateway.h"
#include "../../srv/gateway/gwdb.h"
#include "t.h"

static void test_form_fields(void)
{
	const char *f = "from=%2AECHOBOT&to=ABCD1234&text=gr%C3%BCezi+mitenand&secret=s3cr3t&flag";
	char out[64];
	size_t n;
	CHECK_RC(veil_gw_form_get(f, strlen(f), "from", 1, out, sizeof out, &n), 0);
	CHECK(strcmp(out, "*ECHOBOT") == 0 && n == 8);
	CHECK_RC(veil_gw_form_get(f, strlen(f), "text", 1, out, sizeof out, &n), 0);
	CHECK(strcmp(out, "grüezi mitenand") == 0);
	/* Not decoded: the query, which the listener decoded already. */
	CHECK_RC(veil_gw_form_get(f, strlen(f), "text", 0, out, sizeof out, &n), 0);
	CHECK(strcmp(out, "gr%C3%BCezi+mitenand") == 0);
	CHECK_RC(veil_gw_form_get(f, strlen(f), "flag", 1, out, sizeof out, &n), 0);
	CHECK(n == 0 && out[0] == '\0');
	CHECK_RC(veil_gw_form_get(f, strlen(f), "fro", 1, out, sizeof out, &n), VEIL_ENOTFOUND);
	CHECK_RC(veil_gw_form_get(f, strlen(f), "secret=", 1, out, sizeof out, &n), VEIL_ENOTFOUND);
	/* The length bounds the search: "secret" is cut off here. */
	CHECK_RC(veil_gw_form_get(f, 20, "secret", 1, out, sizeof out, &n), VEIL_ENOTFOUND);
	CHECK_RC(veil_gw_form_get("", 0, "a", 1, out, sizeof out, &n), VEIL_ENOTFOUND);
	/* The first of two wins. */
	CHECK_RC(veil_gw_form_get("a=1&a=2", 7, "a", 1, out, sizeof out, &n), 0);
	CHECK(strcmp(out, "1") == 0);
}

static void test_form_bounds(void)
{
	char out[4], big[600];
	size_t n;
	CHECK_RC(veil_gw_form_get("a=1234", 6, "a", 1, out, sizeof out, &n), VEIL_ELIMIT);
	CHECK_RC(veil_gw_form_get("a=123", 5, "a", 1, out, sizeof out, &n), 0);
	CHECK_RC(veil_gw_form_get("a=%4", 4, "a", 1, out, sizeof out, &n), VEIL_EPROTO);
	CHECK_RC(veil_gw_form_get("a=%zz", 5, "a", 1, out, sizeof out, &n), VEIL_EPROTO);
	CHECK_RC(veil_gw_form_get("a=%00", 5, "a", 1, out, sizeof out, &n), VEIL_EPROTO);
	/* Too many fields before the wanted one. */
	size_t o = 0;
	for (int i = 0; i < VEIL_GW_FORM_MAX_FIELDS; i++)
		o += (size_t)snprintf(big + o, sizeof big - o, "f%d=x&", i);
	o += (size_t)snprintf(big + o, sizeof big - o, "a=1");
	CHECK_RC(veil_gw_form_get(big, o, "a", 1, out, sizeof out, &n), VEIL_ELIMIT);
	CHECK_RC(veil_gw_form_get(big, o, "f3", 1, out, sizeof out, &n), 0);
	CHECK(strcmp(out, "x") == 0);
}

static void test_accounts(void)
{
	char dir[] = "/tmp/veil-gwdb.XXXXXX", path[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/gateway.db", dir);
	uint8_t dir_sk[VEIL_KEY_LEN], key[32], pk[VEIL_KEY_LEN];
	randombytes_buf(dir_sk, sizeof dir_sk);
	veil_gwdb_seal_key(key, dir_sk);
	struct veil_gwdb *db = NULL;
	CHECK_RC(veil_gwdb_open(&db, path, key), 0);
	struct veil_gw_account a = {
	    .modes = VEIL_GW_MODE_E2E | VEIL_GW_MODE_BASIC, .credits = 2, .has_sk = 1};
	memcpy(a.id, "*TESTBOT", VEIL_ID_LEN);
	crypto_box_keypair(pk, a.sk);
	snprintf(a.callback, sizeof a.callback, "https://bot.example/cb");
	veil_gw_secret_new(a.secret);
	CHECK(strlen(a.secret) == VEIL_GW_SECRET_LEN);
	CHECK_RC(veil_gwdb_add(db, &a), 0);
	CHECK_RC(veil_gwdb_add(db, &a), VEIL_EEXIST);

	struct veil_gw_account g;
	CHECK_RC(veil_gwdb_get(db, (const uint8_t *)"*TESTBOT", 0, &g), 0);
	CHECK(g.secret[0] == '\0' && g.credits == 2 && g.has_sk);
	CHECK(strcmp(g.callback, "https://bot.example/cb") == 0);
	CHECK_RC(veil_gwdb_check_secret(&g, a.secret, strlen(a.secret)), 0);
	CHECK_RC(veil_gwdb_check_secret(&g, a.secret, strlen(a.secret) - 1), VEIL_EAUTH);
	CHECK_RC(veil_gwdb_check_secret(&g, "", 0), VEIL_EAUTH);
	CHECK_RC(veil_gwdb_get(db, (const uint8_t *)"*TESTBOT", 1, &g), 0);
	CHECK(strcmp(g.secret, a.secret) == 0 && memcmp(g.sk, a.sk, VEIL_KEY_LEN) == 0);
	CHECK_RC(veil_gwdb_get(db, (const uint8_t *)"*NOTHERE", 0, &g), VEIL_ENOTFOUND);

	CHECK_RC(veil_gwdb_charge(db, a.id, 1), 0);
	CHECK_RC(veil_gwdb_charge(db, a.id, 2), VEIL_EQUOTA);
	CHECK_RC(veil_gwdb_charge(db, a.id, 1), 0);
	CHECK_RC(veil_gwdb_charge(db, a.id, 1), VEIL_EQUOTA);
	CHECK_RC(veil_gwdb_charge(db, (const uint8_t *)"*NOTHERE", 1), VEIL_ENOTFOUND);
	CHECK_RC(veil_gwdb_add_credits(db, a.id, 5), 0);
	CHECK_RC(veil_gwdb_note_callback(db, a.id, "answered 503"), 0);
	CHECK_RC(veil_gwdb_note_callback(db, a.id, "Couldn't connect to server"), 0);
	CHECK_RC(veil_gwdb_get(db, a.id, 0, &g), 0);
	CHECK(g.cb_failures == 2 && strcmp(g.cb_error, "Couldn't connect to server") == 0 &&
	      g.cb_error_ms > 0);
	CHECK_RC(veil_gwdb_note_callback(db, a.id, NULL), 0);
	CHECK_RC(veil_gwdb_get(db, a.id, 0, &g), 0);
	CHECK(g.cb_failures == 0);
	CHECK_RC(veil_gwdb_set_callback(db, a.id, ""), 0);
	uint8_t ids[4][VEIL_ID_LEN];
	size_t n;
	CHECK_RC(veil_gwdb_with_callback(db, ids, 4, &n), 0);
	CHECK(n == 0);
	CHECK_RC(veil_gwdb_list(db, ids, 4, &n), 0);
	CHECK(n == 1 && memcmp(ids[0], "*TESTBOT", VEIL_ID_LEN) == 0);
	veil_gwdb_close(db);

	/* Another server key cannot unseal the secret (the hash still checks). */
	randombytes_buf(dir_sk, sizeof dir_sk);
	veil_gwdb_seal_key(key, dir_sk);
	CHECK_RC(veil_gwdb_open(&db, path, key), 0);
	CHECK_RC(veil_gwdb_get(db, a.id, 1, &g), VEIL_ECRYPTO);
	CHECK_RC(veil_gwdb_get(db, a.id, 0, &g), 0);
	CHECK(g.credits == 5);
	CHECK_RC(veil_gwdb_check_secret(&g, a.secret, strlen(a.secret)), 0);
	veil_gwdb_close(db);

	/* Neither the secret nor the private key is in the file in clear. */
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	static uint8_t buf[1 << 20];
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	for (size_t i = 0; i + VEIL_GW_SECRET_LEN <= len; i++)
		CHECK(memcmp(buf + i, a.secret, VEIL_GW_SECRET_LEN) != 0 &&
		      (i + VEIL_KEY_LEN > len || memcmp(buf + i, a.sk, VEIL_KEY_LEN) != 0));
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

/* The bulk lookup's JSON body: shape, hash form, and the API's limit of 1000 hashes. */
static void test_bulk_body(void)
{
	static const char h1[] = "ad398f4d7ebe63c6550a486cc6e07f9baa09bd9d8b3d8cb9d9be106d35a7fdbc";
	static const char h2[] = "1ea093239cc5f0e1b6ec81b866265b921f26dc4033025410063309f4d1a8ee2c";
	char body[256];
	struct veil_gw_bulk b;
	snprintf(body, sizeof body, "{\"phoneHashes\":[\"%s\"],\"emailHashes\":[\"%s\",\"%s\"]}",
	         h1, h2, h1);
	CHECK_RC(veil_gw_bulk_parse((const uint8_t *)body, strlen(body), &b), 0);
	CHECK(b.nphone == 1 && b.nemail == 2);
	CHECK(b.phone[0][0] == 0xad && b.phone[0][31] == 0xbc && b.email[0][0] == 0x1e &&
	      b.email[1][31] == 0xbc);
	veil_gw_bulk_free(&b);
	/* Either list may be missing; other members are ignored. */
	snprintf(body, sizeof body, "{\"emailHashes\":[\"%s\"],\"x\":1}", h2);
	CHECK_RC(veil_gw_bulk_parse((const uint8_t *)body, strlen(body), &b), 0);
	CHECK(b.nphone == 0 && b.nemail == 1 && b.phone == NULL);
	veil_gw_bulk_free(&b);
	/* A hash of the right length with two digits that are not hex. */
	static const char not_hex[] =
	    "{\"phoneHashes\":["
	    "\"zz398f4d7ebe63c6550a486cc6e07f9baa09bd9d8b3d8cb9d9be106d35a7fdbc\"]}";
	static const char *bad[] = {
	    "",
	    "[]",
	    "{\"phoneHashes\":\"abc\"}",
	    "{\"phoneHashes\":[\"abcd\"]}",
	    "{\"phoneHashes\":[1]}",
	    not_hex,
	    "{\"phoneHashes\":[],\"phoneHashes\":[]}",
	    "{\"a\":[[[[[[]]]]]]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_RC(veil_gw_bulk_parse((const uint8_t *)bad[i], strlen(bad[i]), &b),
		         VEIL_EPROTO);
		CHECK(b.phone == NULL && b.email == NULL);
	}
	/* 1000 hashes in all are accepted, 1001 are not, however they are split. */
	size_t cap = 80 * 1002;
	char *big = malloc(cap);
	CHECK(big != NULL);
	for (int n = 1000; n <= 1001; n++) {
		size_t o = (size_t)snprintf(big, cap, "{\"phoneHashes\":[");
		for (int i = 0; i < n; i++) {
			if (i == 600)
				o += (size_t)snprintf(big + o, cap - o, "],\"emailHashes\":[");
			o += (size_t)snprintf(big + o, cap - o, "%s\"%s\"",
			                      i && i != 600 ? "," : "", h1);
		}
		o += (size_t)snprintf(big + o, cap - o, "]}");
		CHECK_RC(veil_gw_bulk_parse((const uint8_t *)big, o, &b),
		         n == 1000 ? 0 : VEIL_ELIMIT);
		CHECK(n != 1000 || (b.nphone == 600 && b.nemail == 400));
		veil_gw_bulk_free(&b);
	}
	free(big);
}

T_MAIN_BEGIN
RUN(test_form_fields);
RUN(test_form_bounds);
RUN(test_accounts);
RUN(test_bulk_body);
T_MAIN_END
