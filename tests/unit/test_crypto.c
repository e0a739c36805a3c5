/* lib/crypto: the fixed-base X25519 (basepoint.c) against libsodium's. */
#include <sodium.h>

#include "veil/crypto.h"
#include "t.h"

/* RFC 7748, section 6.1: Alice's and Bob's key pairs. */
static void rfc7748_keys(void)
{
	static const char *v[][2] = {
	    {"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
	     "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"},
	    {"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
	     "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		uint8_t sk[32], want[32], pk[32];
		CHECK(t_hex(sk, sizeof sk, v[i][0]) == 32);
		CHECK(t_hex(want, sizeof want, v[i][1]) == 32);
		CHECK_RC(veil_x25519_base(pk, sk), 0);
		CHECK_MEM(pk, want, 32);
		memset(pk, 0, sizeof pk);
		veil_pubkey(pk, sk);
		CHECK_MEM(pk, want, 32);
	}
}

/* Random keys and edge scalars (the clamped extremes, single bits, bytes) give libsodium's key. */
static void matches_libsodium(void)
{
	uint8_t sk[32], pk[32], want[32];
	for (int i = 0; i < 20000; i++) {
		randombytes_buf(sk, sizeof sk);
		CHECK_RC(veil_x25519_base(pk, sk), 0);
		CHECK_RC(crypto_scalarmult_base(want, sk), 0);
		CHECK_MEM(pk, want, 32);
	}
	for (int b = 0; b < 256 + 3; b++) {
		memset(sk, b == 256 ? 0xff : 0, sizeof sk);
		if (b < 256)
			sk[b / 8] = (uint8_t)(1u << (b % 8));
		if (b == 258)
			sk[0] = 8; /* the smallest clamped scalar's low part with bit 254 */
		CHECK_RC(veil_x25519_base(pk, sk), 0);
		CHECK_RC(crypto_scalarmult_base(want, sk), 0);
		CHECK_MEM(pk, want, 32);
	}
	for (int v = 0; v < 256; v++) {
		memset(sk, v, sizeof sk);
		CHECK_RC(veil_x25519_base(pk, sk), 0);
		CHECK_RC(crypto_scalarmult_base(want, sk), 0);
		CHECK_MEM(pk, want, 32);
	}
}

/* A key pair's keys agree with a peer's through veil_shared_key. */
static void keypair_agrees(void)
{
	uint8_t apk[32], ask[32], bpk[32], bsk[32], k1[32], k2[32];
	for (int i = 0; i < 100; i++) {
		veil_keypair(apk, ask);
		CHECK_RC(crypto_box_keypair(bpk, bsk), 0);
		CHECK_RC(veil_shared_key(k1, ask, bpk), 0);
		CHECK_RC(veil_shared_key(k2, bsk, apk), 0);
		CHECK_MEM(k1, k2, 32);
	}
}

T_MAIN_BEGIN
RUN(rfc7748_keys);
RUN(matches_libsodium);
RUN(keypair_agrees);
T_MAIN_END
