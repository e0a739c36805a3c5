/* Exponential reconnect backoff with jitter. */
#include <sodium.h>

#include "veil/client.h"

void veil_backoff_init(struct veil_backoff *b, uint32_t base_ms, uint32_t max_ms)
{
	b->base_ms = base_ms > 0 ? base_ms : 1;
	b->max_ms = max_ms >= b->base_ms ? max_ms : b->base_ms;
	b->nominal_ms = b->base_ms;
}

void veil_backoff_reset(struct veil_backoff *b)
{
	b->nominal_ms = b->base_ms;
}

uint32_t veil_backoff_next(struct veil_backoff *b)
{
	uint32_t nom = b->nominal_ms;
	/*
	 * "Equal jitter": half the delay is fixed, half random, so clients that
	 * lost the same server spread out without ever retrying at once.
	 */
	uint32_t half = nom / 2;
	uint32_t d = nom - half + randombytes_uniform(half + 1);
	b->nominal_ms = nom > b->max_ms / 2 ? b->max_ms : nom * 2;
	return d;
}
