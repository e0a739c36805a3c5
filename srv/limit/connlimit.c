/*
 * Per-address connection limits (see connlimit.h).
 *
 * Open connections are counted in an open-addressing table (linear probing)
 * of twice as many slots as the listener has connections, so it is never
 * more than half full; an entry whose count drops to zero is removed by
 * shifting its followers back (no tombstones, so probes stay short however
 * long the process runs). The key of an address is a word of its keyed
 * BLAKE2b hash, and that word is also the token a connection carries to
 * close: nothing else per connection needs to be stored. Two addresses
 * whose words collide would share one count; with a secret key and 64-bit
 * words nobody can arrange that.
 *
 * The rate of new connections is a veil_ratelimit token bucket keyed the
 * same way (it hashes again with its own key).
 */
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sodium.h>

#include "connlimit.h"
#include "ratelimit.h"
#include "veil/err.h"
#include "veil/util.h"

struct cl_slot {
	uintptr_t key; /* 0 = empty */
	uint32_t open;
};

struct veil_connlimit {
	uint32_t per_addr;
	struct veil_ratelimit *rate; /* NULL = no cap */
	uint8_t hash_key[crypto_generichash_KEYBYTES];
	size_t nslots; /* a power of two */
	struct cl_slot *slots;
};

int veil_connlimit_new(struct veil_connlimit **out, uint32_t per_addr, uint32_t rate_per_min,
                       size_t max_conns)
{
	*out = NULL;
	if (max_conns == 0 || max_conns > (1u << 24))
		return VEIL_EINVAL;
	struct veil_connlimit *cl = calloc(1, sizeof *cl);
	if (cl == NULL)
		return VEIL_ENOMEM;
	cl->per_addr = per_addr;
	cl->nslots = 1;
	while (cl->nslots < 2 * max_conns)
		cl->nslots <<= 1;
	cl->slots = calloc(cl->nslots, sizeof *cl->slots);
	int rc = cl->slots != NULL ? 0 : VEIL_ENOMEM;
	if (rc == 0 && rate_per_min > 0)
		rc = veil_ratelimit_new(&cl->rate, rate_per_min);
	if (rc != 0) {
		veil_connlimit_free(cl);
		return rc;
	}
	randombytes_buf(cl->hash_key, sizeof cl->hash_key);
	*out = cl;
	return 0;
}

void veil_connlimit_free(struct veil_connlimit *cl)
{
	if (cl == NULL)
		return;
	veil_ratelimit_free(cl->rate);
	free(cl->slots);
	sodium_memzero(cl, sizeof *cl);
	free(cl);
}

/*
 * The bytes that name the client of sa: a family tag and the IPv4 address,
 * or the first 64 bits of the IPv6 address. 0 if sa is neither.
 */
static size_t addr_bytes(const struct sockaddr *sa, socklen_t len, uint8_t out[static 9])
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		out[0] = 4;
		memcpy(out + 1, &a->sin_addr, 4);
		return 5;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			/* An IPv4 client of a dual-stack listener is that IPv4 address. */
			out[0] = 4;
			memcpy(out + 1, a->sin6_addr.s6_addr + 12, 4);
			return 5;
		}
		out[0] = 6;
		memcpy(out + 1, &a->sin6_addr, 8);
		return 9;
	}
	return 0;
}

/* The table key of sa (never 0), or 0 if sa is not an IP address. */
static uintptr_t addr_key(const struct veil_connlimit *cl, const struct sockaddr *sa, socklen_t len)
{
	uint8_t a[9], h[16];
	size_t n = addr_bytes(sa, len, a);
	if (n == 0)
		return 0;
	crypto_generichash(h, sizeof h, a, n, cl->hash_key, sizeof cl->hash_key);
	uintptr_t k = (uintptr_t)veil_load_u64le(h);
	return k | 1;
}

/* The slot holding key, or the empty slot where it would go; NULL if the table is full. */
static struct cl_slot *find(struct veil_connlimit *cl, uintptr_t key)
{
	size_t mask = cl->nslots - 1, i = (size_t)(key >> 1) & mask;
	for (size_t n = 0; n < cl->nslots; n++, i = (i + 1) & mask) {
		struct cl_slot *s = &cl->slots[i];
		if (s->key == key || s->key == 0)
			return s;
	}
	return NULL;
}

int veil_connlimit_check(struct veil_connlimit *cl, const struct sockaddr *sa, socklen_t len,
                         uint64_t now_ms)
{
	uint8_t a[9];
	size_t n = addr_bytes(sa, len, a);
	uintptr_t key = addr_key(cl, sa, len);
	if (key == 0)
		return 0; /* not an IP client (no such listener here): nothing to key by */
	const struct cl_slot *s = find(cl, key);
	if (cl->per_addr > 0 && s != NULL && s->key == key && s->open >= cl->per_addr)
		return VEIL_ELIMIT;
	if (cl->rate != NULL) {
		/* veil_ratelimit keys by a string: the tagged address bytes in hex. */
		char hex[VEIL_HEX_LEN(9)];
		if (veil_hex_encode(hex, sizeof hex, a, n) != 0)
			return VEIL_EINVAL;
		if (veil_ratelimit_take(cl->rate, hex, now_ms) != 0)
			return VEIL_EAGAIN;
	}
	return 0;
}

int veil_connlimit_open(struct veil_connlimit *cl, const struct sockaddr *sa, socklen_t len,
                        uintptr_t *token)
{
	*token = 0;
	uintptr_t key = addr_key(cl, sa, len);
	if (key == 0)
		return VEIL_EINVAL;
	struct cl_slot *s = find(cl, key);
	if (s == NULL)
		return VEIL_ELIMIT;
	s->key = key;
	s->open++;
	*token = key;
	return 0;
}

void veil_connlimit_close(struct veil_connlimit *cl, uintptr_t token)
{
	if (token == 0)
		return;
	struct cl_slot *s = find(cl, token);
	if (s == NULL || s->key != token)
		return; /* not counted (a bug): nothing to undo */
	if (--s->open > 0)
		return;
	/* Remove s and shift back the entries after it that probed past it. */
	size_t mask = cl->nslots - 1, hole = (size_t)(s - cl->slots);
	s->key = 0;
	for (size_t j = (hole + 1) & mask; cl->slots[j].key != 0; j = (j + 1) & mask) {
		size_t home = (size_t)(cl->slots[j].key >> 1) & mask;
		/* j may move to hole unless its home lies cyclically in (hole, j]. */
		int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (stays)
			continue;
		cl->slots[hole] = cl->slots[j];
		cl->slots[j].key = 0;
		cl->slots[j].open = 0;
		hole = j;
	}
}

uint32_t veil_connlimit_count(struct veil_connlimit *cl, const struct sockaddr *sa, socklen_t len)
{
	uintptr_t key = addr_key(cl, sa, len);
	const struct cl_slot *s = key != 0 ? find(cl, key) : NULL;
	return s != NULL && s->key == key ? s->open : 0;
}
