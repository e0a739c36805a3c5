/*
 * OPRF evaluations per second of the server's evaluation step
 * (veil_oprf_evaluate: point validation plus one ristretto255 scalar
 * multiplication), on one core, with the raw crypto_scalarmult_ristretto255
 * rate measured in the same run as the reference.
 */
#include <stdio.h>
#include <time.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "veil/dir.h"

#define N 20000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	static uint8_t in[N][32];
	uint8_t k[32], out[32], r[32];
	if (veil_crypto_init() != 0)
		return 1;
	crypto_core_ristretto255_scalar_random(k);
	for (size_t i = 0; i < N; i++) {
		char num[16];
		snprintf(num, sizeof num, "4179%07zu", i);
		if (veil_oprf_blind(in[i], r, VEIL_CONTACT_PHONE, num, 11) != 0)
			return 1;
	}
	unsigned acc = 0;
	double t0 = now_s();
	for (size_t i = 0; i < N; i++) {
		if (crypto_scalarmult_ristretto255(out, k, in[i]) != 0)
			return 1;
		acc += out[0];
	}
	double raw = N / (now_s() - t0);
	t0 = now_s();
	for (size_t i = 0; i < N; i++) {
		if (veil_oprf_evaluate(out, k, in[i]) != 0)
			return 1;
		acc += out[0];
	}
	double eval = N / (now_s() - t0);
	printf("oprf_bench: %d evaluations on one core (checksum %u)\n", N, acc & 0xff);
	printf("oprf_bench: raw crypto_scalarmult_ristretto255: %.0f/s\n", raw);
	printf("oprf_bench: server OPRF evaluations: %.0f/s (%.2f of the raw rate)\n", eval,
	       eval / raw);
	return 0;
}
