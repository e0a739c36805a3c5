/*
 * A bounded token-bucket rate limiter keyed by client address.
 *
 * Tokens are kept in units of 1/60000 so that a rate of per_min tokens a
 * minute refills exactly per_min units per millisecond, with no rounding
 * loss however often a key calls. The table is
 * fixed: a key hashes to one set of VEIL_RATELIMIT_WAYS slots; a new key takes
 * the slot in its set whose bucket is the fullest (once refilled, a full
 * bucket carries no state worth keeping). The hash is keyed with a random
 * per-process key so that nobody can aim many addresses at one set, and the
 * table never holds a client address in clear.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ratelimit.h"
#include "veil/err.h"
#include "veil/util.h"

#define VEIL_RATELIMIT_WAYS 4
#define VEIL_RATELIMIT_SETS (VEIL_RATELIMIT_SLOTS / VEIL_RATELIMIT_WAYS)
#define UNIT 60000u /* one token */

struct rl_slot {
	uint8_t key[16]; /* keyed hash of the address; all zero = unused */
	uint64_t units;  /* tokens * UNIT at last_ms */
	uint64_t last_ms;
	int used;
};

struct veil_ratelimit {
	uint64_t cap_units;
	uint32_t per_min;
	uint8_t hash_key[crypto_generichash_KEYBYTES];
	struct rl_slot slots[VEIL_RATELIMIT_SLOTS];
};

int veil_ratelimit_new(struct veil_ratelimit **out, uint32_t per_min)
{
	*out = NULL;
	if (per_min == 0)
		return VEIL_EINVAL;
	struct veil_ratelimit *rl = calloc(1, sizeof *rl);
	if (rl == NULL)
		return VEIL_ENOMEM;
	rl->per_min = per_min;
	rl->cap_units = (uint64_t)per_min * UNIT;
	randombytes_buf(rl->hash_key, sizeof rl->hash_key);
	*out = rl;
	return 0;
}

void veil_ratelimit_free(struct veil_ratelimit *rl)
{
	if (rl == NULL)
		return;
	sodium_memzero(rl, sizeof *rl);
	free(rl);
}

/* The bucket's level at now_ms, refilled since last_ms and capped. */
static uint64_t rl_level(const struct veil_ratelimit *rl, const struct rl_slot *s, uint64_t now_ms)
{
	uint64_t dt = now_ms > s->last_ms ? now_ms - s->last_ms : 0;
	uint64_t cap = __atomic_load_n(&rl->cap_units, __ATOMIC_RELAXED);
	if (dt >= 60000u)
		return cap;
	uint64_t add = dt * __atomic_load_n(&rl->per_min, __ATOMIC_RELAXED);
	uint64_t v = s->units + add;
	return v > cap ? cap : v;
}

int veil_ratelimit_set_rate(struct veil_ratelimit *rl, uint32_t per_min)
{
	if (per_min == 0)
		return VEIL_EINVAL;
	__atomic_store_n(&rl->per_min, per_min, __ATOMIC_RELAXED);
	__atomic_store_n(&rl->cap_units, (uint64_t)per_min * UNIT, __ATOMIC_RELAXED);
	return 0;
}

int veil_ratelimit_take(struct veil_ratelimit *rl, const char *key, uint64_t now_ms)
{
	return veil_ratelimit_take_n(rl, key, 1, now_ms);
}

int veil_ratelimit_take_n(struct veil_ratelimit *rl, const char *key, uint32_t n, uint64_t now_ms)
{
	uint8_t h[16];
	crypto_generichash(h, sizeof h, (const unsigned char *)key, strlen(key), rl->hash_key,
	                   sizeof rl->hash_key);
	size_t set = (size_t)(veil_load_u32le(h) % VEIL_RATELIMIT_SETS);
	struct rl_slot *ways = &rl->slots[set * VEIL_RATELIMIT_WAYS];
	struct rl_slot *s = NULL, *victim = NULL;
	uint64_t victim_level = 0;
	for (size_t i = 0; i < VEIL_RATELIMIT_WAYS; i++) {
		if (ways[i].used && memcmp(ways[i].key, h, sizeof h) == 0) {
			s = &ways[i];
			break;
		}
		uint64_t lvl = ways[i].used ? rl_level(rl, &ways[i], now_ms) : UINT64_MAX;
		if (victim == NULL || lvl > victim_level) {
			victim = &ways[i];
			victim_level = lvl;
		}
	}
	if (s == NULL) {
		s = victim;
		memcpy(s->key, h, sizeof h);
		s->used = 1;
		s->units = __atomic_load_n(&rl->cap_units, __ATOMIC_RELAXED);
		s->last_ms = now_ms;
	}
	s->units = rl_level(rl, s, now_ms);
	s->last_ms = now_ms;
	if (s->units < (uint64_t)n * UNIT)
		return VEIL_EAGAIN;
	s->units -= (uint64_t)n * UNIT;
	return 0;
}
