/*
 * Tests of the client-side file pieces: the chunked secretbox against
 * crypto_secretbox_easy, and the file message JSON codec.
 */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "veil/e2e.h"
#include "veil/util.h"
#include "t.h"

/* Encrypts msg in pieces of step bytes (0: random sizes) and compares with one secretbox. */
static int chunked_equals_oneshot(size_t len, size_t step)
{
	uint8_t key[32], nonce[24], tag[16];
	uint8_t *msg = malloc(len + 1), *want = malloc(len + 16), *got = malloc(len + 1);
	uint8_t *back = malloc(len + 1);
	int ok = 0;
	if (msg == NULL || want == NULL || got == NULL || back == NULL)
		goto out;
	randombytes_buf(key, sizeof key);
	veil_file_nonce(nonce, VEIL_FILE_NONCE_FILE);
	randombytes_buf(msg, len);
	crypto_secretbox_easy(want, msg, len, nonce, key);

	struct veil_sbstream s;
	if (veil_sbstream_init(&s, key, nonce) != 0)
		goto out;
	size_t o = 0;
	while (o < len) {
		size_t n = step ? step : 1 + randombytes_uniform(200);
		if (n > len - o)
			n = len - o;
		veil_sbstream_encrypt(&s, got + o, msg + o, n);
		o += n;
	}
	veil_sbstream_final(&s, tag);
	if (memcmp(tag, want, 16) != 0 || memcmp(got, want + 16, len) != 0)
		goto out;

	/* Decrypt in other pieces, in place. */
	if (veil_sbstream_init(&s, key, nonce) != 0)
		goto out;
	memcpy(back, got, len);
	for (o = 0; o < len;) {
		size_t n = 1 + randombytes_uniform(97);
		if (n > len - o)
			n = len - o;
		veil_sbstream_decrypt(&s, back + o, back + o, n);
		o += n;
	}
	if (veil_sbstream_verify(&s, tag) != 0 || memcmp(back, msg, len) != 0)
		goto out;
	ok = 1;
out:
	free(msg);
	free(want);
	free(got);
	free(back);
	return ok;
}

static void test_sbstream_matches_secretbox(void)
{
	static const size_t sizes[] = {0,  1,  15,  16,  31,   32,   33,        63,
	                               64, 65, 127, 128, 1000, 4096, 65536 + 7, 1 << 20};
	static const size_t steps[] = {0, 1, 7, 32, 64, 4096};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(sizes); i++)
		for (size_t j = 0; j < VEIL_ARRAY_LEN(steps); j++) {
			if (sizes[i] > 100000 && steps[j] < 32)
				continue; /* slow and adds nothing */
			if (!chunked_equals_oneshot(sizes[i], steps[j]))
				fprintf(stderr, "size %zu step %zu\n", sizes[i], steps[j]);
			CHECK(chunked_equals_oneshot(sizes[i], steps[j]));
		}
}

static void test_sbstream_rejects_tampering(void)
{
	uint8_t key[32], nonce[24], msg[300], box[316], out[300];
	randombytes_buf(key, sizeof key);
	randombytes_buf(msg, sizeof msg);
	veil_file_nonce(nonce, VEIL_FILE_NONCE_THUMB);
	CHECK(nonce[23] == 2 && nonce[0] == 0 && nonce[22] == 0);
	crypto_secretbox_easy(box, msg, sizeof msg, nonce, key);
	struct veil_sbstream s;
	/* A flipped ciphertext bit. */
	box[16 + 150] ^= 1;
	CHECK_RC(veil_sbstream_init(&s, key, nonce), 0);
	veil_sbstream_decrypt(&s, out, box + 16, sizeof out);
	CHECK_RC(veil_sbstream_verify(&s, box), VEIL_ECRYPTO);
	box[16 + 150] ^= 1;
	/* Truncated by one byte. */
	CHECK_RC(veil_sbstream_init(&s, key, nonce), 0);
	veil_sbstream_decrypt(&s, out, box + 16, sizeof out - 1);
	CHECK_RC(veil_sbstream_verify(&s, box), VEIL_ECRYPTO);
	/* The wrong nonce (thumbnail vs file). */
	veil_file_nonce(nonce, VEIL_FILE_NONCE_FILE);
	CHECK_RC(veil_sbstream_init(&s, key, nonce), 0);
	veil_sbstream_decrypt(&s, out, box + 16, sizeof out);
	CHECK_RC(veil_sbstream_verify(&s, box), VEIL_ECRYPTO);
	/* Intact. */
	veil_file_nonce(nonce, VEIL_FILE_NONCE_THUMB);
	CHECK_RC(veil_sbstream_init(&s, key, nonce), 0);
	veil_sbstream_decrypt(&s, out, box + 16, sizeof out);
	CHECK_RC(veil_sbstream_verify(&s, box), 0);
	CHECK_MEM(out, msg, sizeof msg);
}

static void fill(struct veil_e2e_file *f)
{
	memset(f, 0, sizeof *f);
	for (int i = 0; i < 32; i++)
		f->key[i] = (uint8_t)i;
	for (int i = 0; i < 16; i++)
		f->blob_id[i] = (uint8_t)(0xa0 + i);
	snprintf(f->mime, sizeof f->mime, "image/png");
	snprintf(f->name, sizeof f->name, "photo \"1\".png");
	f->size = 123456789;
	f->rendering = VEIL_FILE_RENDER_MEDIA;
}

static void test_file_json_roundtrip(void)
{
	struct veil_e2e_file f, g;
	struct veil_buf b;
	veil_buf_init(&b, VEIL_FILE_JSON_MAX);
	fill(&f);
	snprintf(f.caption, sizeof f.caption, "Grüße");
	f.has_thumb = 1;
	memset(f.thumb_blob_id, 0x55, 16);
	snprintf(f.thumb_mime, sizeof f.thumb_mime, "image/jpeg");
	snprintf(f.meta_json, sizeof f.meta_json, "{\"w\":640,\"h\":480}");
	CHECK_RC(veil_e2e_file_encode(&b, &f), 0);
	/* The fields of the specification, with hex key and blob ID. */
	char *txt = strndup((const char *)b.p, b.len);
	CHECK(txt != NULL);
	int ok = strstr(txt, "\"b\":\"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\"") != NULL &&
	         strstr(txt, "\"k\":\"000102") != NULL && strstr(txt, "\"s\":123456789") != NULL &&
	         strstr(txt, "\"i\":1") != NULL && strstr(txt, "\"j\":1") != NULL &&
	         strstr(txt, "\"t\":\"5555") != NULL && strstr(txt, "\"p\":\"image/jpeg\"") != NULL;
	free(txt);
	CHECK(ok);
	CHECK_RC(veil_e2e_file_decode(b.p, b.len, &g), 0);
	CHECK(g.rendering == 1 && g.size == f.size && g.has_thumb);
	CHECK_MEM(g.key, f.key, 32);
	CHECK_MEM(g.blob_id, f.blob_id, 16);
	CHECK_MEM(g.thumb_blob_id, f.thumb_blob_id, 16);
	CHECK(strcmp(g.mime, f.mime) == 0 && strcmp(g.name, f.name) == 0);
	CHECK(strcmp(g.caption, f.caption) == 0 && strcmp(g.thumb_mime, "image/jpeg") == 0);
	CHECK(strstr(g.meta_json, "\"w\":640") != NULL);
	veil_buf_release(&b);
}

static int dec(const char *json)
{
	struct veil_e2e_file f;
	return veil_e2e_file_decode((const uint8_t *)json, strlen(json), &f);
}

#define B "\"b\":\"000102030405060708090a0b0c0d0e0f\""
#define K "\"k\":\"000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\""

static void test_file_json_decode_rules(void)
{
	struct veil_e2e_file f;
	const char *ok = "{" B "," K ",\"m\":\"a/b\",\"s\":5}";
	CHECK_RC(veil_e2e_file_decode((const uint8_t *)ok, strlen(ok), &f), 0);
	CHECK(f.rendering == 0 && f.size == 5 && f.name[0] == 0 && !f.has_thumb);
	/* "i" alone, "j" beyond the known values, "j" over "i". */
	const char *i1 = "{" B "," K ",\"m\":\"a/b\",\"s\":5,\"i\":1}";
	CHECK_RC(veil_e2e_file_decode((const uint8_t *)i1, strlen(i1), &f), 0);
	CHECK(f.rendering == 1);
	const char *j9 = "{" B "," K ",\"m\":\"a/b\",\"s\":5,\"j\":9,\"i\":1}";
	CHECK_RC(veil_e2e_file_decode((const uint8_t *)j9, strlen(j9), &f), 0);
	CHECK(f.rendering == 0);
	const char *j2 = "{" B "," K ",\"m\":\"a/b\",\"s\":5,\"j\":2,\"i\":0}";
	CHECK_RC(veil_e2e_file_decode((const uint8_t *)j2, strlen(j2), &f), 0);
	CHECK(f.rendering == 2);
	/* Missing or malformed required fields. */
	CHECK_RC(dec("{" K ",\"m\":\"a/b\",\"s\":5}"), VEIL_EPROTO);
	CHECK_RC(dec("{" B ",\"m\":\"a/b\",\"s\":5}"), VEIL_EPROTO);
	CHECK_RC(dec("{" B "," K ",\"s\":5}"), VEIL_EPROTO);
	CHECK_RC(dec("{" B "," K ",\"m\":\"a/b\"}"), VEIL_EPROTO);
	CHECK_RC(dec("{" B "," K ",\"m\":\"a/b\",\"s\":-1}"), VEIL_EPROTO);
	CHECK_RC(dec("{" B "," K ",\"m\":\"a/b\",\"s\":\"5\"}"), VEIL_EPROTO);
	CHECK_RC(dec("{\"b\":\"0001\"," K ",\"m\":\"a/b\",\"s\":5}"), VEIL_EPROTO);
	CHECK_RC(dec("{\"b\":\"zz0102030405060708090a0b0c0d0e0f\"," K ",\"m\":\"a/b\",\"s\":5}"),
	         VEIL_EPROTO);
	CHECK_RC(dec("{" B "," K ",\"m\":\"a/b\",\"s\":5,\"t\":\"00\"}"), VEIL_EPROTO);
	CHECK_RC(dec("{" B "," K ",\"m\":\"a/b\",\"s\":5,\"x\":[1]}"), VEIL_EPROTO);
	CHECK_RC(dec("{" B "," K ",\"m\":\"a\\u0000b\",\"s\":5}"), VEIL_EPROTO);
	CHECK_RC(dec("{" B "," B "," K ",\"m\":\"a/b\",\"s\":5}"), VEIL_EPROTO);
	CHECK_RC(dec("[1]"), VEIL_EPROTO);
	CHECK_RC(dec("{" B "," K ",\"m\":\"a/b\",\"s\":5,\"x\":{\"a\":[[[[[1]]]]]}}"), VEIL_ELIMIT);
	/* Field limits. */
	char big[400];
	memset(big, 'a', 300);
	big[300] = 0;
	char doc[800];
	snprintf(doc, sizeof doc, "{" B "," K ",\"m\":\"a/b\",\"s\":5,\"n\":\"%s\"}", big);
	CHECK_RC(dec(doc), VEIL_ELIMIT);
	/* The encoder refuses what the decoder would refuse. */
	struct veil_buf b;
	veil_buf_init(&b, VEIL_FILE_JSON_MAX);
	fill(&f);
	f.mime[0] = 0;
	CHECK_RC(veil_e2e_file_encode(&b, &f), VEIL_EINVAL);
	fill(&f);
	f.rendering = 3;
	CHECK_RC(veil_e2e_file_encode(&b, &f), VEIL_EINVAL);
	fill(&f);
	snprintf(f.meta_json, sizeof f.meta_json, "[1]");
	CHECK_RC(veil_e2e_file_encode(&b, &f), VEIL_EINVAL);
	CHECK(b.len == 0);
	veil_buf_release(&b);
}

T_MAIN_BEGIN
RUN(test_sbstream_matches_secretbox);
RUN(test_sbstream_rejects_tampering);
RUN(test_file_json_roundtrip);
RUN(test_file_json_decode_rules);
T_MAIN_END
