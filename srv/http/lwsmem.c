/*
 * The allocator libwebsockets uses (lws_set_allocator). Everything goes to
 * malloc except each WebSocket's receive buffer ("rx_ubuf"), which gets an
 * anonymous mapping of its own.
 *
 * Why: lws gives every WebSocket a receive buffer of pt_serv_buf_size
 * (64 KiB here) plus LWS_PRE. Server-side, lws 4.1 unmasks data frames in
 * place in the per-thread read buffer and hands them on from there; the
 * connection's own buffer only ever holds control frames (ping, pong,
 * close: at most 125 bytes). From malloc, each of these 64 KiB blocks sat
 * between the small allocations of the connection made before and after
 * it, so every connection's few kilobytes of small objects were spread over
 * pages of their own, two per connection where they would fill one. In a
 * mapping of its own the buffer costs no resident memory at all until a
 * control frame arrives (the pages are never touched: the mapping's length
 * is kept here, not in a header inside it), and the small objects pack.
 *
 * A connection that was sent control frames keeps the first page of its
 * buffer resident; http_lwsmem_idle gives it back (the HTTP listener calls
 * it for connections idle a while, see ws.c).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http_int.h"

/* lws names the allocation it makes for each WebSocket's receive buffer so. */
#define LWSMEM_RX_REASON "rx_ubuf"
/* Smaller receive buffers (a protocol's own rx_buffer_size) stay in malloc. */
#define LWSMEM_MIN (16u * 1024u)

/*
 * The mappings handed out: an open-addressing table keyed by address, one
 * word per mapping (one per WebSocket): its page-aligned address, and its
 * length in pages in the low bits (0: empty).
 */
struct lwsmem_ent {
	uintptr_t v;
};

static pthread_mutex_t lwsmem_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lwsmem_ent *lwsmem_t;
static size_t lwsmem_cap, lwsmem_n; /* cap: 0 or a power of two */
static uintptr_t lwsmem_page;
static _Thread_local void *lwsmem_last_rx;

static uintptr_t ent_p(const struct lwsmem_ent *e)
{
	return e->v & ~(lwsmem_page - 1);
}

static size_t ent_len(const struct lwsmem_ent *e)
{
	return (size_t)(e->v & (lwsmem_page - 1)) * lwsmem_page;
}

static size_t slot_of(uintptr_t p, size_t cap)
{
	return (size_t)(((p >> 12) * UINT64_C(0x9e3779b97f4a7c15)) >> 20) & (cap - 1);
}

static void put_ent(struct lwsmem_ent *t, size_t cap, uintptr_t p, size_t len)
{
	size_t i = slot_of(p, cap);
	while (t[i].v != 0)
		i = (i + 1) & (cap - 1);
	t[i].v = p | (len / lwsmem_page);
}

/* Under lwsmem_mu. */
static int reg_put(uintptr_t p, size_t len)
{
	if ((lwsmem_n + 1) * 4 > lwsmem_cap * 3) { /* at most 3/4 full */
		size_t cap = lwsmem_cap ? lwsmem_cap * 2 : 64;
		struct lwsmem_ent *t = calloc(cap, sizeof *t);
		if (t == NULL)
			return -1;
		for (size_t i = 0; i < lwsmem_cap; i++)
			if (lwsmem_t[i].v != 0)
				put_ent(t, cap, ent_p(&lwsmem_t[i]), ent_len(&lwsmem_t[i]));
		free(lwsmem_t);
		lwsmem_t = t;
		lwsmem_cap = cap;
	}
	put_ent(lwsmem_t, lwsmem_cap, p, len);
	lwsmem_n++;
	return 0;
}

/* Under lwsmem_mu: the entry of p, or NULL. */
static struct lwsmem_ent *reg_find(uintptr_t p)
{
	if (lwsmem_cap == 0)
		return NULL;
	for (size_t i = slot_of(p, lwsmem_cap);; i = (i + 1) & (lwsmem_cap - 1)) {
		if (lwsmem_t[i].v != 0 && ent_p(&lwsmem_t[i]) == p)
			return &lwsmem_t[i];
		if (lwsmem_t[i].v == 0)
			return NULL;
	}
}

/* Under lwsmem_mu: removes e, moving back the entries of its run that hashed before it. */
static void reg_del(struct lwsmem_ent *e)
{
	size_t mask = lwsmem_cap - 1, i = (size_t)(e - lwsmem_t), j = i;
	lwsmem_t[i].v = 0;
	for (;;) {
		j = (j + 1) & mask;
		if (lwsmem_t[j].v == 0)
			break;
		size_t k = slot_of(ent_p(&lwsmem_t[j]), lwsmem_cap);
		/* j's entry may move to i unless its home k lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		lwsmem_t[i] = lwsmem_t[j];
		lwsmem_t[j].v = 0;
		i = j;
	}
	lwsmem_n--;
}

static void *map_rx(size_t size)
{
	size_t len = (size + lwsmem_page - 1) & ~(size_t)(lwsmem_page - 1);
	if (len / lwsmem_page >= lwsmem_page)
		return NULL; /* its pages would not fit in its entry's low bits */
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	pthread_mutex_lock(&lwsmem_mu);
	int rc = reg_put((uintptr_t)p, len);
	pthread_mutex_unlock(&lwsmem_mu);
	if (rc != 0) {
		munmap(p, len);
		return NULL;
	}
	return p;
}

/* The length of p's mapping; 0 if p is not one of them. */
static size_t map_len(const void *ptr)
{
	/* malloc never returns a page-aligned block but by chance: most frees skip the lock. */
	if (ptr == NULL || ((uintptr_t)ptr & (lwsmem_page - 1)) != 0)
		return 0;
	pthread_mutex_lock(&lwsmem_mu);
	struct lwsmem_ent *e = reg_find((uintptr_t)ptr);
	size_t len = e != NULL ? ent_len(e) : 0;
	pthread_mutex_unlock(&lwsmem_mu);
	return len;
}

static void unmap(void *ptr, size_t len)
{
	pthread_mutex_lock(&lwsmem_mu);
	struct lwsmem_ent *e = reg_find((uintptr_t)ptr);
	if (e != NULL)
		reg_del(e);
	pthread_mutex_unlock(&lwsmem_mu);
	munmap(ptr, len);
}

static void *lwsmem_realloc(void *ptr, size_t size, const char *reason)
{
	size_t len = map_len(ptr);
	if (len != 0) {
		void *n = size > 0 ? lwsmem_realloc(NULL, size, reason) : NULL;
		if (size > 0 && n == NULL)
			return NULL; /* as realloc: the old block stays */
		if (n != NULL)
			memcpy(n, ptr, size < len ? size : len);
		unmap(ptr, len);
		return n;
	}
	if (ptr == NULL && size >= LWSMEM_MIN && reason != NULL &&
	    strcmp(reason, LWSMEM_RX_REASON) == 0) {
		void *p = map_rx(size);
		if (p != NULL) {
			lwsmem_last_rx = p;
			return p;
		}
		/* No mapping: malloc's memory serves as well. */
	}
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, size);
}

static void lwsmem_init(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	lwsmem_page = pg > 0 ? (uintptr_t)pg : 4096;
	lws_set_allocator(lwsmem_realloc);
}

void http_lwsmem_install(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, lwsmem_init);
}

void *http_lwsmem_last_rx(void)
{
	void *p = lwsmem_last_rx;
	lwsmem_last_rx = NULL;
	return p;
}

size_t http_lwsmem_count(void)
{
	pthread_mutex_lock(&lwsmem_mu);
	size_t n = lwsmem_n;
	pthread_mutex_unlock(&lwsmem_mu);
	return n;
}

int http_lwsmem_idle(void *rx)
{
	size_t len = map_len(rx);
	if (len == 0)
		return VEIL_ENOTFOUND;
	/* The next control frame finds zeroed pages, as in a fresh mapping. */
	return madvise(rx, len, MADV_DONTNEED) == 0 ? 0 : VEIL_EIO;
}

size_t http_lwsmem_resident(void)
{
	size_t pages = 0;
	unsigned char vec[64];
	pthread_mutex_lock(&lwsmem_mu);
	for (size_t i = 0; i < lwsmem_cap; i++) {
		if (lwsmem_t[i].v == 0)
			continue;
		size_t np = ent_len(&lwsmem_t[i]) / lwsmem_page;
		for (size_t o = 0; o < np; o += sizeof vec) {
			size_t k = np - o < sizeof vec ? np - o : sizeof vec;
			if (mincore((void *)(ent_p(&lwsmem_t[i]) + o * lwsmem_page),
			            k * lwsmem_page, vec) != 0)
				continue;
			for (size_t j = 0; j < k; j++)
				pages += vec[j] & 1;
		}
	}
	pthread_mutex_unlock(&lwsmem_mu);
	return pages;
}
