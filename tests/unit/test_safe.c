/* Threema Safe: the container, its padding, and the backup JSON of a profile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <zlib.h>

#include "veil/contacts.h"
#include "veil/crypto.h"
#include "veil/e2e.h"
#include "veil/safe.h"
#include "t.h"

static const char SAMPLE[] =
    "{\"info\":{\"version\":1,\"device\":\"1.2.3/de_DE\"},"
    "\"user\":{\"privatekey\":\"ZWNob2VjaG9lY2hvZWNob2VjaG9lY2hvZWNob2VjaG8=\","
    "\"nickname\":\"julia\",\"links\":[{\"type\":\"mobile\",\"value\":\"41704567890\"}]},"
    "\"contacts\":[{\"identity\":\"ECHOECHO\","
    "\"publickey\":\"ZWNob2VjaG9lY2hvZWNob2VjaG9lY2hvZWNob2VjaG8=\",\"createdAt\":1524489122916,"
    "\"verification\":2,\"firstname\":\"Peter\",\"lastname\":\"Muster\",\"nickname\":\"pete\","
    "\"lastUpdate\":null,\"hidden\":false},"
    "{\"identity\":\"*SUPPORT\",\"verification\":0}],"
    "\"groups\":[{\"id\":\"0123456789abcdef\",\"creator\":\"ECHOECHO\",\"groupname\":\"Foodies\","
    "\"createdAt\":1459269133488,\"members\":[\"ECHOECHO\",\"ABCD1234\"],\"deleted\":false},"
    "{\"id\":\"0102030405060708\",\"creator\":\"ECHOECHO\",\"members\":[\"ECHOECHO\"],"
    "\"deleted\":false}],"
    "\"settings\":{\"syncContacts\":false}}";

static void key_of(uint8_t key[static 32])
{
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
}

/* The specification's own form: gzip as any gzip writer makes it, nonce first. */
static void spec_container(struct veil_buf *out, const uint8_t key[static 32], const char *json)
{
	uint8_t gz[8192], nonce[VEIL_NONCE_LEN];
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	z.next_in = (Bytef *)(uintptr_t)json;
	z.avail_in = (uInt)strlen(json);
	z.next_out = gz;
	z.avail_out = sizeof gz;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		abort();
	size_t n = z.total_out;
	deflateEnd(&z);
	randombytes_buf(nonce, sizeof nonce);
	veil_buf_reset(out);
	if (veil_buf_reserve(out, n + VEIL_SAFE_OVERHEAD) != 0)
		abort();
	memcpy(out->p, nonce, sizeof nonce);
	veil_secretbox_seal(out->p + VEIL_NONCE_LEN, gz, n, nonce, key);
	out->len = n + VEIL_SAFE_OVERHEAD;
}

static void test_bucket(void)
{
	CHECK(veil_safe_bucket(0) == 4096);
	CHECK(veil_safe_bucket(4096) == 4096);
	CHECK(veil_safe_bucket(4097) == 8192);
	CHECK(veil_safe_bucket(100000) == 131072);
	CHECK(veil_safe_bucket(VEIL_SAFE_BLOB_MAX) == VEIL_SAFE_BLOB_MAX);
	CHECK(veil_safe_bucket(VEIL_SAFE_BLOB_MAX + 1) == 0);
}

static void test_open_spec_container(void)
{
	uint8_t key[32];
	struct veil_buf blob, json;
	key_of(key);
	veil_buf_init(&blob, VEIL_SAFE_BLOB_MAX);
	veil_buf_init_secret(&json, VEIL_SAFE_JSON_MAX);
	spec_container(&blob, key, SAMPLE);
	CHECK_RC(veil_safe_open(&json, key, blob.p, blob.len), 0);
	CHECK(json.len == strlen(SAMPLE) && memcmp(json.p, SAMPLE, json.len) == 0);
	veil_buf_release(&blob);
	veil_buf_release(&json);
}

/* A padded container is a plain gzip member to any reader: zlib's own, here. */
static void test_padded_is_gzip(void)
{
	uint8_t key[32], nonce[VEIL_NONCE_LEN] = {0}, gz[8192], plain[8192];
	struct veil_buf blob;
	key_of(key);
	veil_buf_init(&blob, VEIL_SAFE_BLOB_MAX);
	CHECK_RC(
	    veil_safe_seal_nonce(&blob, key, nonce, (const uint8_t *)SAMPLE, strlen(SAMPLE), 1), 0);
	CHECK(blob.len == 4096);
	size_t n = blob.len - VEIL_SAFE_OVERHEAD;
	CHECK_RC(
	    veil_secretbox_open(gz, blob.p + VEIL_NONCE_LEN, blob.len - VEIL_NONCE_LEN, nonce, key),
	    0);
	CHECK(gz[0] == 0x1f && gz[1] == 0x8b && gz[2] == 8 && gz[3] == 0x10);
	z_stream z;
	memset(&z, 0, sizeof z);
	CHECK(inflateInit2(&z, 16 + 15) == Z_OK);
	z.next_in = gz;
	z.avail_in = (uInt)n;
	z.next_out = plain;
	z.avail_out = sizeof plain;
	int zr = inflate(&z, Z_FINISH);
	size_t got = z.total_out, left = z.avail_in;
	inflateEnd(&z);
	CHECK(zr == Z_STREAM_END && left == 0);
	CHECK(got == strlen(SAMPLE) && memcmp(plain, SAMPLE, got) == 0);
	veil_buf_release(&blob);
}

/* Same length, very different compressibility: one bucket, one size once padded. */
static void test_padding_hides_compressibility(void)
{
	uint8_t key[32], rnd[1500];
	char a[2100], b[2100], b64[VEIL_B64_LEN(1500)];
	struct veil_buf x, y;
	key_of(key);
	randombytes_buf(rnd, sizeof rnd);
	CHECK_RC(veil_b64_encode(b64, sizeof b64, rnd, sizeof rnd), 0);
	snprintf(b, sizeof b, "{\"n\":\"%s\"}", b64);
	memset(a, 'a', strlen(b));
	a[strlen(b)] = 0;
	memcpy(a, "{\"n\":\"", 6);
	memcpy(a + strlen(b) - 2, "\"}", 2);
	CHECK(strlen(a) == strlen(b));
	veil_buf_init(&x, VEIL_SAFE_BLOB_MAX);
	veil_buf_init(&y, VEIL_SAFE_BLOB_MAX);
	CHECK_RC(veil_safe_seal(&x, key, (const uint8_t *)a, strlen(a), 0), 0);
	CHECK_RC(veil_safe_seal(&y, key, (const uint8_t *)b, strlen(b), 0), 0);
	CHECK(x.len + 1000 < y.len); /* unpadded, the sizes tell them apart */
	CHECK_RC(veil_safe_seal(&x, key, (const uint8_t *)a, strlen(a), 1), 0);
	CHECK_RC(veil_safe_seal(&y, key, (const uint8_t *)b, strlen(b), 1), 0);
	CHECK(x.len == y.len && x.len == 4096);
	/* Both restore. */
	struct veil_buf j;
	veil_buf_init_secret(&j, VEIL_SAFE_JSON_MAX);
	CHECK_RC(veil_safe_open(&j, key, y.p, y.len), 0);
	CHECK(j.len == strlen(b) && memcmp(j.p, b, j.len) == 0);
	CHECK_RC(veil_safe_open(&j, key, x.p, x.len), 0);
	CHECK(j.len == strlen(a) && memcmp(j.p, a, j.len) == 0);
	veil_buf_release(&x);
	veil_buf_release(&y);
	veil_buf_release(&j);
}

static void test_refused(void)
{
	uint8_t key[32], other[32];
	struct veil_buf blob, json;
	key_of(key);
	key_of(other);
	other[0] ^= 1;
	veil_buf_init(&blob, VEIL_SAFE_BLOB_MAX);
	veil_buf_init_secret(&json, VEIL_SAFE_JSON_MAX);
	CHECK_RC(veil_safe_seal(&blob, key, (const uint8_t *)SAMPLE, strlen(SAMPLE), 1), 0);
	CHECK_RC(veil_safe_open(&json, other, blob.p, blob.len), VEIL_ECRYPTO);
	for (size_t i = 0; i < blob.len; i += 97) {
		blob.p[i] ^= 0x40;
		CHECK_RC(veil_safe_open(&json, key, blob.p, blob.len), VEIL_ECRYPTO);
		blob.p[i] ^= 0x40;
	}
	CHECK_RC(veil_safe_open(&json, key, blob.p, blob.len - 1), VEIL_ECRYPTO);
	CHECK_RC(veil_safe_open(&json, key, blob.p, VEIL_SAFE_OVERHEAD - 1), VEIL_ETRUNC);
	CHECK_RC(veil_safe_open(&json, key, blob.p, blob.len), 0);
	veil_buf_release(&blob);
	veil_buf_release(&json);
}

static void test_gunzip_bounds(void)
{
	struct veil_buf out, gz;
	veil_buf_init_secret(&out, VEIL_SAFE_JSON_MAX + 65536);
	veil_buf_init(&gz, VEIL_SAFE_BLOB_MAX);
	/* A member with a byte after it. */
	uint8_t key[32], nonce[VEIL_NONCE_LEN] = {0};
	key_of(key);
	CHECK_RC(veil_safe_seal_nonce(&gz, key, nonce, (const uint8_t *)"{}", 2, 0), 0);
	uint8_t member[64];
	size_t n = gz.len - VEIL_SAFE_OVERHEAD;
	CHECK(n + 1 <= sizeof member);
	CHECK_RC(
	    veil_secretbox_open(member, gz.p + VEIL_NONCE_LEN, gz.len - VEIL_NONCE_LEN, nonce, key),
	    0);
	CHECK_RC(veil_safe_gunzip(&out, member, n), 0);
	CHECK(out.len == 2);
	member[n] = 0;
	CHECK_RC(veil_safe_gunzip(&out, member, n + 1), VEIL_EPROTO);
	CHECK_RC(veil_safe_gunzip(&out, member, n - 3), VEIL_ETRUNC);
	member[n - 1] ^= 1; /* the length in the trailer */
	CHECK(veil_safe_gunzip(&out, member, n) < 0);
	/* A bomb: more than VEIL_SAFE_JSON_MAX of zeros. */
	size_t big = VEIL_SAFE_JSON_MAX + 4096;
	uint8_t *zeros = calloc(1, big);
	CHECK(zeros != NULL);
	int rc = veil_safe_seal_nonce(&gz, key, nonce, zeros, big, 0);
	free(zeros);
	CHECK_RC(rc, VEIL_ELIMIT); /* never written, either */
	/* ... nor inflated when someone else wrote it. */
	uLong bound = compressBound((uLong)big);
	uint8_t *bomb = malloc(bound);
	zeros = calloc(1, big);
	CHECK(bomb != NULL && zeros != NULL);
	z_stream z;
	memset(&z, 0, sizeof z);
	CHECK(deflateInit2(&z, 9, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	z.next_in = zeros;
	z.avail_in = (uInt)big;
	z.next_out = bomb;
	z.avail_out = (uInt)bound;
	int zr = deflate(&z, Z_FINISH);
	size_t blen = z.total_out;
	deflateEnd(&z);
	free(zeros);
	rc = zr == Z_STREAM_END ? veil_safe_gunzip(&out, bomb, blen) : 99;
	free(bomb);
	CHECK_RC(rc, VEIL_ELIMIT);
	CHECK(out.len == 0);
	veil_buf_release(&out);
	veil_buf_release(&gz);
}

static void test_parse_sample(void)
{
	struct veil_backup *b = NULL;
	uint8_t want[32];
	memcpy(want, "echoechoechoechoechoechoechoecho", 32);
	CHECK_RC(veil_backup_parse((const uint8_t *)SAMPLE, strlen(SAMPLE), &b), 0);
	CHECK(memcmp(b->sk, want, 32) == 0);
	CHECK(strcmp(b->nickname, "julia") == 0);
	CHECK(b->n_contacts == 2 && b->n_groups == 2);
	CHECK(memcmp(b->contacts[0].id, "ECHOECHO", 8) == 0 && b->contacts[0].has_pk);
	CHECK(b->contacts[0].level == VEIL_LEVEL_GREEN);
	CHECK(strcmp(b->contacts[0].name, "Peter Muster") == 0);
	CHECK(strcmp(b->contacts[0].nickname, "pete") == 0);
	CHECK(b->contacts[0].created_ms == 1524489122916ull);
	CHECK(!b->contacts[1].has_pk && b->contacts[1].level == VEIL_LEVEL_RED);
	CHECK(b->groups[0].g.gid == 0xefcdab8967452301ull);
	CHECK(strcmp(b->groups[0].g.name, "Foodies") == 0);
	CHECK(b->groups[0].creator_listed && !b->groups[0].deleted);
	CHECK(b->groups[0].g.n_members == 1 &&
	      memcmp(b->groups[0].g.members[0], "ABCD1234", 8) == 0);
	veil_backup_free(b);
}

/* A first and last name too long together: the first name alone, not a failed restore. */
static void test_parse_long_names(void)
{
	char js[2048], first[201], last[201];
	struct veil_backup *b = NULL;
	memset(first, 'f', 200);
	first[200] = 0;
	memset(last, 'l', 200);
	last[200] = 0;
	snprintf(js, sizeof js,
	         "{\"info\":{\"version\":1},\"user\":{\"privatekey\":"
	         "\"ZWNob2VjaG9lY2hvZWNob2VjaG9lY2hvZWNob2VjaG8=\"},\"contacts\":[{\"identity\":"
	         "\"ECHOECHO\",\"verification\":1,\"firstname\":\"%s\",\"lastname\":\"%s\"},"
	         "{\"identity\":\"ECHOECH2\",\"verification\":1,\"lastname\":\"Last\"}]}",
	         first, last);
	CHECK_RC(veil_backup_parse((const uint8_t *)js, strlen(js), &b), 0);
	CHECK(b->n_contacts == 2 && strcmp(b->contacts[0].name, first) == 0);
	CHECK(strcmp(b->contacts[1].name, "Last") == 0);
	CHECK(b->contacts[0].level == VEIL_LEVEL_ORANGE);
	veil_backup_free(b);
}

static void test_parse_refused(void)
{
	struct veil_backup *b = NULL;
	static const char *bad[] = {
	    "",
	    "[]",
	    "{\"info\":{\"version\":2},\"user\":{\"privatekey\":"
	    "\"ZWNob2VjaG9lY2hvZWNob2VjaG9lY2hvZWNob2VjaG8=\"}}",
	    "{\"info\":{\"version\":1},\"user\":{}}",
	    "{\"info\":{\"version\":1},\"user\":{\"privatekey\":\"AAAA\"}}",
	    "{\"info\":{\"version\":1},\"user\":{\"privatekey\":"
	    "\"ZWNob2VjaG9lY2hvZWNob2VjaG9lY2hvZWNob2VjaG8=\"},\"contacts\":[{\"identity\":"
	    "\"short\",\"verification\":0}]}",
	    "{\"info\":{\"version\":1},\"user\":{\"privatekey\":"
	    "\"ZWNob2VjaG9lY2hvZWNob2VjaG9lY2hvZWNob2VjaG8=\"},\"groups\":[{\"id\":\"01\","
	    "\"creator\":\"ECHOECHO\",\"members\":[],\"deleted\":false}]}",
	    "{\"info\":{\"version\":1},\"info\":{\"version\":1},\"user\":{}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = veil_backup_parse((const uint8_t *)bad[i], strlen(bad[i]), &b);
		if (rc == 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(rc < 0 && b == NULL);
	}
	char deep[64];
	memset(deep, '[', sizeof deep);
	CHECK_RC(veil_backup_parse((const uint8_t *)deep, sizeof deep, &b), VEIL_ELIMIT);
}

static char home_base[64];

/* Export from one profile, parse and apply to another with the same ID. */
static void test_export_apply(void)
{
	struct veil_profile p, q;
	char h1[128], h2[128];
	struct veil_buf json;
	struct veil_backup *b = NULL;
	memset(&p, 0, sizeof p);
	memset(&q, 0, sizeof q);
	snprintf(home_base, sizeof home_base, "/tmp/veil-test-safe.XXXXXX");
	CHECK(mkdtemp(home_base) != NULL);
	snprintf(h1, sizeof h1, "%s/a", home_base);
	snprintf(h2, sizeof h2, "%s/b", home_base);
	CHECK_RC(veil_profile_init(&p, h1), 0);
	veil_keypair(p.pk, p.sk);
	memcpy(p.id, "ABCD1234", VEIL_ID_LEN);
	snprintf(p.server_url, sizeof p.server_url, "http://127.0.0.1:1");
	snprintf(p.dir_url, sizeof p.dir_url, "http://127.0.0.1:1/directory/");
	snprintf(p.chat_host, sizeof p.chat_host, "127.0.0.1");
	p.chat_port = 1;
	snprintf(p.nickname, sizeof p.nickname, "Ann \"quoted\" ü");
	CHECK_RC(veil_profile_create(&p), 0);
	struct veil_contact c = {.first_seen_ms = 1700000000000ull};
	memcpy(c.id, "ECHOECHO", 8);
	veil_random(c.pk, 32);
	snprintf(c.nickname, sizeof c.nickname, "echo");
	CHECK_RC(veil_profile_contact_add(&p, &c), 0);
	CHECK_RC(veil_profile_contact_set_name(&p, c.id, "My Echo"), 0);
	CHECK_RC(veil_contacts_level_raise(&p, c.id, VEIL_LEVEL_ORANGE, "phone"), 0);
	struct veil_contact d = c;
	memcpy(d.id, "ZZZZ9999", 8);
	veil_random(d.pk, 32);
	d.nickname[0] = 0;
	CHECK_RC(veil_profile_contact_add(&p, &d), 0);
	static struct veil_group g1, g2, g3, got;
	memcpy(g1.creator, "ABCD1234", 8); /* ours */
	g1.gid = 0x1122334455667788ull;
	snprintf(g1.name, sizeof g1.name, "Ours");
	g1.n_members = 2;
	memcpy(g1.members[0], "ECHOECHO", 8);
	memcpy(g1.members[1], "ZZZZ9999", 8);
	g1.created_ms = 5;
	g2 = g1; /* someone else's, which we left */
	memcpy(g2.creator, "ECHOECHO", 8);
	memcpy(g2.members[0], "ABCD1234", 8);
	g2.gid = 7;
	g2.left = 1;
	snprintf(g2.name, sizeof g2.name, "Left");
	g3 = g1; /* ours, disbanded */
	g3.gid = 8;
	g3.left = 1;
	CHECK_RC(veil_profile_group_put(&p, &g1), 0);
	CHECK_RC(veil_profile_group_put(&p, &g2), 0);
	CHECK_RC(veil_profile_group_put(&p, &g3), 0);

	veil_buf_init_secret(&json, VEIL_SAFE_JSON_MAX);
	CHECK_RC(veil_backup_export(&p, &json), 0);
	CHECK_RC(veil_backup_parse(json.p, json.len, &b), 0);
	CHECK(memcmp(b->sk, p.sk, 32) == 0);
	CHECK(strcmp(b->nickname, p.nickname) == 0);
	CHECK(b->n_contacts == 2 && b->n_groups == 3);

	CHECK_RC(veil_profile_init(&q, h2), 0);
	memcpy(q.id, p.id, 8);
	memcpy(q.sk, b->sk, 32);
	veil_pubkey(q.pk, q.sk);
	snprintf(q.server_url, sizeof q.server_url, "%s", p.server_url);
	snprintf(q.dir_url, sizeof q.dir_url, "%s", p.dir_url);
	snprintf(q.chat_host, sizeof q.chat_host, "%s", p.chat_host);
	q.chat_port = 1;
	CHECK_RC(veil_profile_create(&q), 0);
	CHECK_RC(veil_backup_apply(&q, b), 0);
	struct veil_contact e;
	CHECK_RC(veil_profile_contact_get(&q, c.id, &e), 0);
	CHECK(memcmp(e.pk, c.pk, 32) == 0 && strcmp(e.nickname, "echo") == 0);
	CHECK(e.first_seen_ms == c.first_seen_ms);
	char name[64], src[VEIL_LEVEL_SOURCE_MAX + 1];
	int level;
	CHECK_RC(veil_profile_contact_name(&q, c.id, name, sizeof name), 0);
	CHECK(strcmp(name, "My Echo") == 0);
	CHECK_RC(veil_contacts_level_get(&q, c.id, &level, src), 0);
	CHECK(level == VEIL_LEVEL_ORANGE);
	CHECK_RC(veil_contacts_level_get(&q, d.id, &level, src), 0);
	CHECK(level == VEIL_LEVEL_RED);
	CHECK_RC(veil_profile_group_get(&q, g1.creator, g1.gid, &got), 0);
	CHECK(!got.left && got.n_members == 2 && strcmp(got.name, "Ours") == 0 &&
	      got.created_ms == 5);
	CHECK_RC(veil_profile_group_get(&q, g2.creator, g2.gid, &got), 0);
	CHECK(got.left && veil_group_has(&got, (const uint8_t *)"ZZZZ9999"));
	CHECK_RC(veil_profile_group_get(&q, g3.creator, g3.gid, &got), 0);
	CHECK(got.left);
	/* Applying twice changes nothing and fails nothing. */
	CHECK_RC(veil_backup_apply(&q, b), 0);

	veil_backup_free(b);
	veil_buf_release(&json);
	veil_profile_release(&p);
	veil_profile_release(&q);
}

T_MAIN_BEGIN
RUN(test_bucket);
RUN(test_open_spec_container);
RUN(test_padded_is_gzip);
RUN(test_padding_hides_compressibility);
RUN(test_refused);
RUN(test_gunzip_bounds);
RUN(test_parse_sample);
RUN(test_parse_long_names);
RUN(test_parse_refused);
RUN(test_export_apply);
if (home_base[0] != 0) {
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", home_base);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", home_base);
}
T_MAIN_END
