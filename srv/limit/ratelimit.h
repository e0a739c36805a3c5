/*
 * Per-key request limits shared by the services: a token bucket per key
 * (a client address, an identity) with bounded memory.
 */
#ifndef VEIL_SRV_RATELIMIT_H
#define VEIL_SRV_RATELIMIT_H

#include <stdint.h>

/*
 * A token-bucket rate limiter keyed by client address: each key may make
 * per_min requests per minute with a burst of per_min. Memory is bounded: a
 * fixed table of VEIL_RATELIMIT_SLOTS entries in 4-way sets; keys are stored
 * only as a keyed BLAKE2b hash. Not thread-safe (one per thread that uses it).
 */
#define VEIL_RATELIMIT_SLOTS 4096
struct veil_ratelimit;
int veil_ratelimit_new(struct veil_ratelimit **out, uint32_t per_min);
void veil_ratelimit_free(struct veil_ratelimit *rl);
/*
 * Changes the rate (SIGHUP); safe while another thread takes tokens: the
 * rate is read with relaxed atomics, buckets keep their level (capped).
 */
int veil_ratelimit_set_rate(struct veil_ratelimit *rl, uint32_t per_min);
/* Takes one token for key at now_ms (monotonic); 0 or VEIL_EAGAIN when empty. */
int veil_ratelimit_take(struct veil_ratelimit *rl, const char *key, uint64_t now_ms);
/* Takes n tokens at once, or none (VEIL_EAGAIN) if fewer than n are left. */
int veil_ratelimit_take_n(struct veil_ratelimit *rl, const char *key, uint32_t n, uint64_t now_ms);

#endif
