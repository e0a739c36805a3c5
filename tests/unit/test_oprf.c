/*
 * The private-matching OPRF and address-book normalisation. The OPRF's
 * blind / evaluate / finalize path is checked against a second
 * implementation written here: it hashes one concatenated buffer with the
 * one-shot SHA functions and multiplies H(x) by the server key directly,
 * without blinding.
 */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "veil/dir.h"
#include "veil/e2e.h"
#include "t.h"

/* The second implementation: k * H(x), hashed, with no blinding at all. */
static void ref_prf(uint8_t out[32], const uint8_t k[32], int kind, const char *x)
{
	uint8_t buf[512], h[64], p[32], n[32];
	size_t len = strlen(x), o = 0;
	const char *dst1 = "veil-oprf-v1-h2g", *dst2 = "veil-oprf-v1-out";
	memcpy(buf, dst1, strlen(dst1));
	o = strlen(dst1);
	buf[o++] = (uint8_t)kind;
	buf[o++] = (uint8_t)(len % 256);
	buf[o++] = (uint8_t)(len / 256);
	memcpy(buf + o, x, len);
	o += len;
	crypto_hash_sha512(h, buf, o);
	if (crypto_core_ristretto255_from_hash(p, h) != 0 ||
	    crypto_scalarmult_ristretto255(n, k, p) != 0)
		abort();
	o = strlen(dst2);
	memcpy(buf, dst2, o);
	buf[o++] = (uint8_t)kind;
	buf[o++] = (uint8_t)(len % 256);
	buf[o++] = (uint8_t)(len / 256);
	memcpy(buf + o, x, len);
	o += len;
	memcpy(buf + o, n, 32);
	o += 32;
	crypto_hash_sha256(out, buf, o);
}

/* The client's whole path: blind, the server's evaluation, finalize. */
static int client_prf(uint8_t out[32], const uint8_t k[32], int kind, const char *x,
                      uint8_t blinded_out[32])
{
	uint8_t b[32], r[32], z[32];
	int rc = veil_oprf_blind(b, r, kind, x, strlen(x));
	if (rc == 0)
		rc = veil_oprf_evaluate(z, k, b);
	if (rc == 0)
		rc = veil_oprf_finalize(out, kind, x, strlen(x), r, z);
	if (blinded_out != NULL)
		memcpy(blinded_out, b, 32);
	sodium_memzero(r, sizeof r);
	return rc;
}

static void test_matches_second_implementation(void)
{
	static const char *phones[] = {"41791234567", "14155550123", "4915112345678"};
	static const char *emails[] = {"alice@example.org", "bob@veil.test"};
	uint8_t k[32], got[32], want[32];
	for (int round = 0; round < 4; round++) {
		crypto_core_ristretto255_scalar_random(k);
		for (size_t i = 0; i < 3; i++) {
			CHECK_RC(client_prf(got, k, VEIL_CONTACT_PHONE, phones[i], NULL), 0);
			ref_prf(want, k, VEIL_CONTACT_PHONE, phones[i]);
			CHECK_MEM(got, want, 32);
		}
		for (size_t i = 0; i < 2; i++) {
			CHECK_RC(client_prf(got, k, VEIL_CONTACT_EMAIL, emails[i], NULL), 0);
			ref_prf(want, k, VEIL_CONTACT_EMAIL, emails[i]);
			CHECK_MEM(got, want, 32);
		}
	}
	/* The server's direct path (used for linked entries) agrees too. */
	uint8_t p[32], n[32];
	CHECK_RC(veil_oprf_hash_to_group(p, VEIL_CONTACT_PHONE, phones[0], strlen(phones[0])), 0);
	CHECK_RC(veil_oprf_evaluate(n, k, p), 0);
	CHECK_RC(veil_oprf_output(got, VEIL_CONTACT_PHONE, phones[0], strlen(phones[0]), n), 0);
	ref_prf(want, k, VEIL_CONTACT_PHONE, phones[0]);
	CHECK_MEM(got, want, 32);
}

static void test_blinded_differs_per_request(void)
{
	uint8_t k[32], o1[32], o2[32], b1[32], b2[32], p[32];
	crypto_core_ristretto255_scalar_random(k);
	CHECK_RC(client_prf(o1, k, VEIL_CONTACT_PHONE, "41791234567", b1), 0);
	CHECK_RC(client_prf(o2, k, VEIL_CONTACT_PHONE, "41791234567", b2), 0);
	CHECK(memcmp(b1, b2, 32) != 0);
	CHECK_MEM(o1, o2, 32);
	/* Neither blinded element is the unblinded hash point. */
	CHECK_RC(veil_oprf_hash_to_group(p, VEIL_CONTACT_PHONE, "41791234567", 11), 0);
	CHECK(memcmp(b1, p, 32) != 0 && memcmp(b2, p, 32) != 0);
}

static void test_domains_and_keys_separate(void)
{
	uint8_t k1[32], k2[32], a[32], b[32];
	crypto_core_ristretto255_scalar_random(k1);
	crypto_core_ristretto255_scalar_random(k2);
	CHECK_RC(client_prf(a, k1, VEIL_CONTACT_PHONE, "41791234567", NULL), 0);
	CHECK_RC(client_prf(b, k2, VEIL_CONTACT_PHONE, "41791234567", NULL), 0);
	CHECK(memcmp(a, b, 32) != 0);
	/* The same string as e-mail and as phone gives different outputs. */
	CHECK_RC(client_prf(a, k1, VEIL_CONTACT_EMAIL, "4179@1234567", NULL), 0);
	CHECK_RC(client_prf(b, k1, VEIL_CONTACT_PHONE, "41791234567", NULL), 0);
	CHECK(memcmp(a, b, 32) != 0);
}

static void test_invalid_elements_refused(void)
{
	uint8_t k[32], out[32], zero[32] = {0}, bad[32], r[32];
	crypto_core_ristretto255_scalar_random(k);
	/* The identity element and a non-canonical encoding. */
	CHECK_RC(veil_oprf_evaluate(out, k, zero), VEIL_ECRYPTO);
	memset(bad, 0xff, sizeof bad);
	CHECK_RC(veil_oprf_evaluate(out, k, bad), VEIL_ECRYPTO);
	crypto_core_ristretto255_scalar_random(r);
	CHECK_RC(veil_oprf_finalize(out, VEIL_CONTACT_PHONE, "41791234567", 11, r, bad),
	         VEIL_ECRYPTO);
	/* A zero key would map everything to the identity. */
	uint8_t p[32];
	CHECK_RC(veil_oprf_hash_to_group(p, VEIL_CONTACT_PHONE, "41791234567", 11), 0);
	CHECK_RC(veil_oprf_evaluate(out, zero, p), VEIL_ECRYPTO);
	CHECK_RC(veil_oprf_hash_to_group(p, 7, "41791234567", 11), VEIL_EINVAL);
	CHECK_RC(veil_oprf_hash_to_group(p, VEIL_CONTACT_PHONE, "", 0), VEIL_EINVAL);
}

static void test_key_derive(void)
{
	uint8_t seed[32], k1[32], k2[32];
	randombytes_buf(seed, sizeof seed);
	CHECK_RC(veil_oprf_key_derive(k1, seed), 0);
	CHECK_RC(veil_oprf_key_derive(k2, seed), 0);
	CHECK_MEM(k1, k2, 32);
	seed[0] ^= 1;
	CHECK_RC(veil_oprf_key_derive(k2, seed), 0);
	CHECK(memcmp(k1, k2, 32) != 0);
}

static void test_normalize(void)
{
	char out[VEIL_CONTACT_MAX + 1];
	size_t n;
	CHECK_RC(
	    veil_contact_normalize(VEIL_CONTACT_EMAIL, " Alice@Example.ORG \n", 20, NULL, out, &n),
	    0);
	CHECK(strcmp(out, "alice@example.org") == 0 && n == 17);
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_EMAIL, "noatsign", 8, NULL, out, &n),
	         VEIL_EINVAL);
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_EMAIL, "a@b@c", 5, NULL, out, &n),
	         VEIL_EINVAL);
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_EMAIL, "@b", 2, NULL, out, &n), VEIL_EINVAL);
	const char *p = "+41 (79) 123-45.67";
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_PHONE, p, strlen(p), NULL, out, &n), 0);
	CHECK(strcmp(out, "41791234567") == 0);
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_PHONE, "0041791234567", 13, NULL, out, &n), 0);
	CHECK(strcmp(out, "41791234567") == 0);
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_PHONE, "079 123 45 67", 13, "41", out, &n), 0);
	CHECK(strcmp(out, "41791234567") == 0);
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_PHONE, "079 123 45 67", 13, NULL, out, &n),
	         VEIL_EINVAL);
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_PHONE, "+41 79 12x", 10, NULL, out, &n),
	         VEIL_EINVAL);
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_PHONE, "+1234567890123456", 17, NULL, out, &n),
	         VEIL_EINVAL);
	/* The hash of a normalised entry is the specification's known answer. */
	uint8_t h[32], want[32];
	t_hex(want, 32, "ad398f4d7ebe63c6550a486cc6e07f9baa09bd9d8b3d8cb9d9be106d35a7fdbc");
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_PHONE, "+41 79 123 45 67", 16, NULL, out, &n),
	         0);
	CHECK_RC(veil_contact_hash(h, VEIL_CONTACT_PHONE, out, n), 0);
	CHECK_MEM(h, want, 32);
	t_hex(want, 32, "1ea093239cc5f0e1b6ec81b866265b921f26dc4033025410063309f4d1a8ee2c");
	CHECK_RC(veil_contact_normalize(VEIL_CONTACT_EMAIL, "Test@Threema.ch", 15, NULL, out, &n),
	         0);
	CHECK_RC(veil_contact_hash(h, VEIL_CONTACT_EMAIL, out, n), 0);
	CHECK_MEM(h, want, 32);
}

T_MAIN_BEGIN
RUN(test_matches_second_implementation);
RUN(test_blinded_differs_per_request);
RUN(test_domains_and_keys_separate);
RUN(test_invalid_elements_refused);
RUN(test_key_derive);
RUN(test_normalize);
T_MAIN_END
