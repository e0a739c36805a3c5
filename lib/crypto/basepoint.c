/*
 * X25519 public keys from secret keys, the fast way.
 *
 * libsodium picks its X25519 code at run time; on x86-64 with AVX that is
 * the sandy2x ladder, whose fixed-base multiplication (crypto_scalarmult_base)
 * costs as much as a variable-base one: the ladder does not use that the
 * point is known. Its Ed25519 fixed-base multiplication uses precomputed
 * tables and takes about a third of that. X25519 and Ed25519 are the same
 * group (birationally equivalent curves, base point 9 <-> B), and both clamp
 * the scalar alike, so the Montgomery u of [clamp(sk)]B is the X25519 public
 * key: u = (1 + y) / (1 - y) mod p for the Edwards point's y. A handshake
 * makes one ephemeral key pair per login: this saves most of one of its four
 * scalar multiplications.
 *
 * The secret scalar only enters libsodium's (constant-time) Ed25519
 * multiplication. The field arithmetic below runs on y, which is public (it
 * is the public key in another coordinate), so it need not be constant-time;
 * it is anyway, written plainly: radix 2^51, five limbs, products in 128
 * bits. Tests compare it with crypto_scalarmult_base on many random keys.
 */
#include <string.h>

#include <sodium.h>

#include "veil/crypto.h"

typedef unsigned __int128 u128;

#define MASK51 ((UINT64_C(1) << 51) - 1)

struct fe {
	uint64_t v[5];
};

static uint64_t load64(const uint8_t *p)
{
	uint64_t r = 0;
	for (int i = 7; i >= 0; i--)
		r = (r << 8) | p[i];
	return r;
}

/* The low 255 bits of s (the Edwards encoding's top bit is x's sign). */
static void fe_frombytes(struct fe *h, const uint8_t s[static 32])
{
	h->v[0] = load64(s) & MASK51;
	h->v[1] = (load64(s + 6) >> 3) & MASK51;
	h->v[2] = (load64(s + 12) >> 6) & MASK51;
	h->v[3] = (load64(s + 19) >> 1) & MASK51;
	h->v[4] = (load64(s + 24) >> 12) & MASK51;
}

/* Limbs back under 2^51 (plus a little in limb 0), the top carry folded in as 19. */
static void fe_carry(struct fe *h)
{
	uint64_t c;
	for (int i = 0; i < 4; i++) {
		c = h->v[i] >> 51;
		h->v[i] &= MASK51;
		h->v[i + 1] += c;
	}
	c = h->v[4] >> 51;
	h->v[4] &= MASK51;
	h->v[0] += 19 * c;
}

/* r = t reduced: limbs under 2^51, limb 1 a little over. */
static void fe_reduce(struct fe *r, u128 t[5])
{
	u128 c = 0;
	for (int i = 0; i < 5; i++) {
		t[i] += c;
		r->v[i] = (uint64_t)t[i] & MASK51;
		c = t[i] >> 51;
	}
	/* c is under 2^61: 19 c needs the 128 bits. */
	u128 t0 = (u128)r->v[0] + 19 * c;
	r->v[0] = (uint64_t)t0 & MASK51;
	r->v[1] += (uint64_t)(t0 >> 51);
}

static void fe_mul(struct fe *r, const struct fe *a, const struct fe *b)
{
	const uint64_t *x = a->v, *y = b->v;
	uint64_t y1 = 19 * y[1], y2 = 19 * y[2], y3 = 19 * y[3], y4 = 19 * y[4];
	u128 t[5];
	t[0] = (u128)x[0] * y[0] + (u128)x[1] * y4 + (u128)x[2] * y3 + (u128)x[3] * y2 +
	       (u128)x[4] * y1;
	t[1] = (u128)x[0] * y[1] + (u128)x[1] * y[0] + (u128)x[2] * y4 + (u128)x[3] * y3 +
	       (u128)x[4] * y2;
	t[2] = (u128)x[0] * y[2] + (u128)x[1] * y[1] + (u128)x[2] * y[0] + (u128)x[3] * y4 +
	       (u128)x[4] * y3;
	t[3] = (u128)x[0] * y[3] + (u128)x[1] * y[2] + (u128)x[2] * y[1] + (u128)x[3] * y[0] +
	       (u128)x[4] * y4;
	t[4] = (u128)x[0] * y[4] + (u128)x[1] * y[3] + (u128)x[2] * y[2] + (u128)x[3] * y[1] +
	       (u128)x[4] * y[0];
	fe_reduce(r, t);
}

/* r = a^2: fe_mul with the equal cross products taken once (15 products, not 25). */
static void fe_sq(struct fe *r, const struct fe *a)
{
	const uint64_t *x = a->v;
	uint64_t x0_2 = 2 * x[0], x1_2 = 2 * x[1], x1_38 = 38 * x[1], x2_38 = 38 * x[2],
	         x3_38 = 38 * x[3], x3_19 = 19 * x[3], x4_19 = 19 * x[4];
	u128 t[5];
	t[0] = (u128)x[0] * x[0] + (u128)x1_38 * x[4] + (u128)x2_38 * x[3];
	t[1] = (u128)x0_2 * x[1] + (u128)x2_38 * x[4] + (u128)x3_19 * x[3];
	t[2] = (u128)x0_2 * x[2] + (u128)x[1] * x[1] + (u128)x3_38 * x[4];
	t[3] = (u128)x0_2 * x[3] + (u128)x1_2 * x[2] + (u128)x4_19 * x[4];
	t[4] = (u128)x0_2 * x[4] + (u128)x1_2 * x[3] + (u128)x[2] * x[2];
	fe_reduce(r, t);
}

/* r = a^(2^n) */
static void fe_sqn(struct fe *r, const struct fe *a, int n)
{
	fe_sq(r, a);
	while (--n > 0)
		fe_sq(r, r);
}

/* r = z^(p-2) = 1/z for z != 0 (Fermat), p = 2^255 - 19. */
static void fe_invert(struct fe *r, const struct fe *z)
{
	struct fe z2, z9, z11, a, b, c, t;
	fe_sq(&z2, z);          /* 2 */
	fe_sqn(&t, &z2, 2);     /* 8 */
	fe_mul(&z9, &t, z);     /* 9 */
	fe_mul(&z11, &z9, &z2); /* 11 */
	fe_sq(&t, &z11);        /* 22 */
	fe_mul(&a, &t, &z9);    /* 2^5 - 1 */
	fe_sqn(&t, &a, 5);      /* 2^10 - 2^5 */
	fe_mul(&a, &t, &a);     /* 2^10 - 1 */
	fe_sqn(&t, &a, 10);     /* 2^20 - 2^10 */
	fe_mul(&b, &t, &a);     /* 2^20 - 1 */
	fe_sqn(&t, &b, 20);     /* 2^40 - 2^20 */
	fe_mul(&t, &t, &b);     /* 2^40 - 1 */
	fe_sqn(&t, &t, 10);     /* 2^50 - 2^10 */
	fe_mul(&b, &t, &a);     /* 2^50 - 1 */
	fe_sqn(&t, &b, 50);     /* 2^100 - 2^50 */
	fe_mul(&c, &t, &b);     /* 2^100 - 1 */
	fe_sqn(&t, &c, 100);    /* 2^200 - 2^100 */
	fe_mul(&t, &t, &c);     /* 2^200 - 1 */
	fe_sqn(&t, &t, 50);     /* 2^250 - 2^50 */
	fe_mul(&t, &t, &b);     /* 2^250 - 1 */
	fe_sqn(&t, &t, 5);      /* 2^255 - 2^5 */
	fe_mul(r, &t, &z11);    /* 2^255 - 21 = p - 2 */
}

/* The canonical encoding (0 <= h < p), little-endian. */
static void fe_tobytes(uint8_t s[static 32], const struct fe *a)
{
	struct fe h = *a;
	fe_carry(&h);
	fe_carry(&h);
	/* Now h < 2^255 + a little: subtract p once if h >= p, i.e. if h + 19 >= 2^255. */
	uint64_t q = (h.v[0] + 19) >> 51;
	for (int i = 1; i < 5; i++)
		q = (h.v[i] + q) >> 51;
	h.v[0] += 19 * q;
	for (int i = 0; i < 4; i++) {
		h.v[i + 1] += h.v[i] >> 51;
		h.v[i] &= MASK51;
	}
	h.v[4] &= MASK51; /* drops the 2^255 that q stood for */
	uint64_t w[4] = {
	    h.v[0] | h.v[1] << 51,
	    h.v[1] >> 13 | h.v[2] << 38,
	    h.v[2] >> 26 | h.v[3] << 25,
	    h.v[3] >> 39 | h.v[4] << 12,
	};
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			s[8 * i + j] = (uint8_t)(w[i] >> (8 * j));
}

int veil_x25519_base(uint8_t pk[static VEIL_KEY_LEN], const uint8_t sk[static VEIL_KEY_LEN])
{
	uint8_t ed[32];
	/* Clamps sk as X25519 does; fails only for a result that is the identity. */
	if (crypto_scalarmult_ed25519_base(ed, sk) != 0)
		return crypto_scalarmult_base(pk, sk) == 0 ? 0 : VEIL_ECRYPTO;
	struct fe y, num, den, inv;
	fe_frombytes(&y, ed);
	num = y;
	num.v[0] += 1; /* 1 + y */
	/* 1 - y as 2p + 1 - y: limbwise non-negative, y's limbs are under 2^51. */
	den.v[0] = UINT64_C(0xfffffffffffda) + 1 - y.v[0];
	for (int i = 1; i < 5; i++)
		den.v[i] = UINT64_C(0xffffffffffffe) - y.v[i];
	fe_invert(&inv, &den);
	fe_mul(&num, &num, &inv);
	fe_tobytes(pk, &num);
	return 0;
}
