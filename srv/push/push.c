/* Push wake-ups to UnifiedPush endpoints (see push.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "limit/cidr.h"
#include "push.h"
#include "veil/err.h"
#include "veil/util.h"

/* One identity's coalescing state. */
struct slot {
	uint8_t id[VEIL_ID_LEN];
	unsigned used : 1;
	unsigned queued : 1; /* a wake-up is waiting in the queue */
	uint64_t last_ms;    /* when the last wake-up went out (monotonic), 0 = never */
};

/* A wake-up waiting for its time. */
struct item {
	uint8_t id[VEIL_ID_LEN];
	uint64_t due_ms;
	unsigned tries;
};

struct veil_push {
	struct veil_server *srv;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, started;
	struct slot *table;
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	struct item *queue;
	size_t n_queue;
	double tokens; /* the global limit's bucket */
	uint64_t tokens_ms;
	struct veil_push_stats st;
	struct veil_cidr no_go[16]; /* addresses a wake-up never connects to */
	size_t n_no_go;
	struct veil_cidr loopback[2];
	int refused_addr; /* worker only: open_socket refused the last address */
	int curl_init;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int url_char(uint8_t c)
{
	return c > 0x20 && c < 0x7f && strchr("\"<>\\^`{|}", c) == NULL;
}

int veil_push_endpoint_check(const uint8_t *tok, size_t len, int allow_loopback_http,
                             char url[static VEIL_STORE_MAX_PUSH_TOKEN + 1])
{
	size_t skip;
	int http = 0;
	url[0] = '\0';
	if (len == 0 || len > VEIL_STORE_MAX_PUSH_TOKEN)
		return VEIL_EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!url_char(tok[i]) || tok[i] == '#')
			return VEIL_EINVAL;
	if (len > 8 && memcmp(tok, "https://", 8) == 0)
		skip = 8;
	else if (len > 7 && memcmp(tok, "http://", 7) == 0 && allow_loopback_http)
		skip = 7, http = 1;
	else
		return VEIL_EINVAL;
	/* The authority ends at the path or query. */
	size_t end = skip;
	while (end < len && tok[end] != '/' && tok[end] != '?')
		end++;
	if (end == skip || memchr(tok + skip, '@', end - skip) != NULL)
		return VEIL_EINVAL;
	char host[VEIL_STORE_MAX_PUSH_TOKEN + 1];
	size_t hl;
	const uint8_t *h = tok + skip, *rest;
	if (h[0] == '[') {
		const uint8_t *close = memchr(h, ']', end - skip);
		if (close == NULL || close == h + 1)
			return VEIL_EINVAL;
		hl = (size_t)(close - h) - 1;
		memcpy(host, h + 1, hl);
		rest = close + 1;
	} else {
		const uint8_t *colon = memchr(h, ':', end - skip);
		hl = (colon != NULL ? (size_t)(colon - h) : end - skip);
		memcpy(host, h, hl);
		rest = h + hl;
	}
	host[hl] = '\0';
	if (hl == 0)
		return VEIL_EINVAL;
	/* What follows the host: nothing, or ":" and 1 to 5 digits. */
	if (rest < tok + end) {
		size_t pl = (size_t)(tok + end - rest);
		if (rest[0] != ':' || pl < 2 || pl > 6)
			return VEIL_EINVAL;
		for (size_t i = 1; i < pl; i++)
			if (rest[i] < '0' || rest[i] > '9')
				return VEIL_EINVAL;
	}
	if (http) {
		struct in_addr a4;
		struct in6_addr a6;
		int lo = (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127) ||
		         (inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6));
		if (!lo)
			return VEIL_EINVAL;
	}
	memcpy(url, tok, len);
	url[len] = '\0';
	return 0;
}

static struct slot *slot_find(struct veil_push *p, const uint8_t id[VEIL_ID_LEN], int create,
                              uint64_t now)
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, id, VEIL_ID_LEN, p->hash_key);
	size_t start = (size_t)veil_load_u64le(h) % VEIL_PUSH_TABLE_SLOTS;
	struct slot *spare = NULL;
	uint64_t ival = (uint64_t)p->srv->cfg.push_interval_s * 1000;
	for (size_t i = 0; i < VEIL_PUSH_PROBE; i++) {
		struct slot *s = &p->table[(start + i) % VEIL_PUSH_TABLE_SLOTS];
		if (s->used && memcmp(s->id, id, VEIL_ID_LEN) == 0)
			return s;
		/* A slot not waiting and past its interval remembers nothing useful. */
		if (spare == NULL &&
		    (!s->used || (!s->queued && (s->last_ms == 0 || now - s->last_ms >= ival))))
			spare = s;
	}
	if (!create || spare == NULL)
		return NULL;
	memset(spare, 0, sizeof *spare);
	memcpy(spare->id, id, VEIL_ID_LEN);
	spare->used = 1;
	return spare;
}

void veil_push_queued(struct veil_push *p, const uint8_t id[VEIL_ID_LEN])
{
	if (p == NULL)
		return;
	uint64_t now = mono_ms();
	uint64_t ival = (uint64_t)p->srv->cfg.push_interval_s * 1000;
	pthread_mutex_lock(&p->mu);
	struct slot *s = slot_find(p, id, 1, now);
	if (s == NULL || (!s->queued && p->n_queue >= VEIL_PUSH_QUEUE_MAX)) {
		p->st.dropped++;
		pthread_mutex_unlock(&p->mu);
		return;
	}
	if (s->queued) {
		p->st.coalesced++;
		pthread_mutex_unlock(&p->mu);
		return;
	}
	struct item *it = &p->queue[p->n_queue++];
	memcpy(it->id, id, VEIL_ID_LEN);
	it->tries = 0;
	/* Within the interval of the last one: it waits for the interval to end. */
	it->due_ms = s->last_ms != 0 && now - s->last_ms < ival ? s->last_ms + ival : now;
	if (it->due_ms > now)
		p->st.coalesced++;
	s->queued = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void veil_push_online(struct veil_push *p, const uint8_t id[VEIL_ID_LEN])
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	struct slot *s = slot_find(p, id, 0, mono_ms());
	if (s != NULL && s->queued) {
		for (size_t i = 0; i < p->n_queue; i++) {
			if (memcmp(p->queue[i].id, id, VEIL_ID_LEN) != 0)
				continue;
			p->queue[i] = p->queue[--p->n_queue];
			break;
		}
		s->queued = 0;
	}
	pthread_mutex_unlock(&p->mu);
}

void veil_push_get_stats(struct veil_push *p, struct veil_push_stats *st)
{
	pthread_mutex_lock(&p->mu);
	*st = p->st;
	pthread_mutex_unlock(&p->mu);
}

/*
 * Refuses connections to loopback, private, link-local and other internal
 * addresses, checked on the address curl connects to (a name cannot
 * resolve its way around it): an endpoint URL comes from any user and must
 * not reach into the operator's network. Loopback is allowed with
 * push-allow-loopback-http, for tests.
 */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct veil_push *p = arg;
	(void)purpose;
	int lo = veil_cidr_match_sa(p->loopback, 2, &a->addr, a->addrlen);
	if ((lo && !p->srv->cfg.push_allow_loopback_http) ||
	    (!lo && veil_cidr_match_sa(p->no_go, p->n_no_go, &a->addr, a->addrlen))) {
		p->refused_addr = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t discard(char *ptr, size_t size, size_t n, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * n;
}

static int progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct veil_push *p = arg;
	(void)dt, (void)dn, (void)ut, (void)un;
	pthread_mutex_lock(&p->mu);
	int stop = p->stop;
	pthread_mutex_unlock(&p->mu);
	return stop;
}

/* What became of one POST. */
enum outcome { SENT, RETRY, GONE, REFUSED };

static enum outcome post(struct veil_push *p, CURL *curl, const char *url)
{
	struct curl_slist *hdr = NULL, *h;
	char ttl[32];
	snprintf(ttl, sizeof ttl, "TTL: %d", VEIL_PUSH_TTL_S);
	const char *lines[] = {"Content-Type: text/plain", ttl, "Urgency: high", "Expect:"};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		if ((h = curl_slist_append(hdr, lines[i])) == NULL) {
			curl_slist_free_all(hdr);
			return RETRY;
		}
		hdr = h;
	}
	curl_easy_reset(curl);
	p->refused_addr = 0;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR,
	                 p->srv->cfg.push_allow_loopback_http ? "http,https" : "https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, VEIL_PUSH_BODY);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(VEIL_PUSH_BODY));
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "veild");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)VEIL_PUSH_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, p);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, p);
	CURLcode rc = curl_easy_perform(curl);
	long status = 0;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	/* Logged without the URL: it names the user's push server. */
	if (p->refused_addr) {
		veil_log_debug("push: an endpoint resolves to an internal address: not sent");
		return REFUSED;
	}
	if (rc != CURLE_OK) {
		veil_log_debug("push: POST failed: %s", curl_easy_strerror(rc));
		return RETRY;
	}
	if (status >= 200 && status < 300)
		return SENT;
	if (status == 404 || status == 410)
		return GONE;
	if (status == 429 || status >= 500)
		return RETRY;
	return REFUSED;
}

/* Waits (mutex held) until a token of the global limit is there. 0, or -1 when stopping. */
static int take_token(struct veil_push *p)
{
	double rate = (double)p->srv->cfg.push_rate_per_min / 60000.0; /* per ms */
	for (;;) {
		uint64_t now = mono_ms();
		p->tokens += (double)(now - p->tokens_ms) * rate;
		if (p->tokens > p->srv->cfg.push_rate_per_min)
			p->tokens = p->srv->cfg.push_rate_per_min;
		p->tokens_ms = now;
		if (p->stop)
			return -1;
		if (p->tokens >= 1.0) {
			p->tokens -= 1.0;
			return 0;
		}
		uint64_t wait = (uint64_t)((1.0 - p->tokens) / rate) + 1;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(wait / 1000);
		ts.tv_nsec += (long)(wait % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
}

/* Takes the wake-up due first, waiting for it; 0, or -1 when stopping. Mutex held. */
static int next_item(struct veil_push *p, struct item *out)
{
	for (;;) {
		if (p->stop)
			return -1;
		uint64_t now = mono_ms(), first = UINT64_MAX;
		size_t at = 0;
		for (size_t i = 0; i < p->n_queue; i++)
			if (p->queue[i].due_ms < first)
				first = p->queue[i].due_ms, at = i;
		if (p->n_queue > 0 && first <= now) {
			*out = p->queue[at];
			p->queue[at] = p->queue[--p->n_queue];
			return 0;
		}
		if (p->n_queue == 0) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		uint64_t wait = first - now;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(wait / 1000);
		ts.tv_nsec += (long)(wait % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
}

/* The wake-up of it is over (mutex held): its slot counts the interval from now. */
static void finish(struct veil_push *p, const struct item *it, uint64_t sent_ms)
{
	struct slot *s = slot_find(p, it->id, 0, mono_ms());
	if (s != NULL) {
		s->queued = 0;
		s->last_ms = sent_ms;
	}
}

/* Whether a login has not cancelled the wake-up of it meanwhile (mutex held). */
static int still_wanted(struct veil_push *p, const struct item *it)
{
	struct slot *s = slot_find(p, it->id, 0, mono_ms());
	return s != NULL && s->queued;
}

static void *worker(void *arg)
{
	struct veil_push *p = arg;
	CURL *curl = curl_easy_init();
	char url[VEIL_STORE_MAX_PUSH_TOKEN + 1];
	uint8_t tok[VEIL_STORE_MAX_PUSH_TOKEN], type;
	struct item it;
	pthread_mutex_lock(&p->mu);
	while (curl != NULL && next_item(p, &it) == 0) {
		if (take_token(p) != 0)
			break;
		uint64_t started = mono_ms();
		pthread_mutex_unlock(&p->mu);
		size_t len = 0;
		int have = veil_store_push_token_get(p->srv->store, it.id, &type, tok, &len) == 0 &&
		           type == VEIL_PUSH_TYPE_UNIFIEDPUSH &&
		           veil_push_endpoint_check(tok, len, p->srv->cfg.push_allow_loopback_http,
		                                    url) == 0;
		enum outcome o = have ? post(p, curl, url) : REFUSED;
		if (o == GONE) {
			/* The distributor forgot the app: so does veild. */
			(void)veil_store_push_token_set(p->srv->store, it.id, 0, NULL, 0);
			veil_log_info("push: an endpoint is gone (404/410); its token is deleted");
		}
		pthread_mutex_lock(&p->mu);
		if (!have) {
			p->st.no_endpoint++;
			finish(p, &it, started);
		} else if (o == SENT) {
			p->st.sent++;
			finish(p, &it, started);
		} else if (o == RETRY && ++it.tries < VEIL_PUSH_MAX_TRIES && !p->stop &&
		           p->n_queue < VEIL_PUSH_QUEUE_MAX && still_wanted(p, &it)) {
			/* 1, 2, 4, 8 seconds: the identity stays queued meanwhile. */
			p->st.retries++;
			it.due_ms = mono_ms() + (1000ull << (it.tries - 1));
			p->queue[p->n_queue++] = it;
		} else {
			p->st.failed++;
			finish(p, &it, started);
		}
	}
	pthread_mutex_unlock(&p->mu);
	curl_easy_cleanup(curl);
	return NULL;
}

int veil_push_new(struct veil_push **out, struct veil_server *srv)
{
	static const char *const no_go[] = {
	    "0.0.0.0/8",     "10.0.0.0/8",     "100.64.0.0/10", "169.254.0.0/16",
	    "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3",   "::/128",
	    "fc00::/7",      "fe80::/10",      "ff00::/8",
	};
	*out = NULL;
	struct veil_push *p = calloc(1, sizeof *p);
	if (p == NULL)
		return VEIL_ENOMEM;
	p->srv = srv;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(p);
		return VEIL_EIO;
	}
	p->curl_init = 1;
	p->table = calloc(VEIL_PUSH_TABLE_SLOTS, sizeof *p->table);
	p->queue = calloc(VEIL_PUSH_QUEUE_MAX, sizeof *p->queue);
	if (p->table == NULL || p->queue == NULL) {
		veil_push_free(p);
		return VEIL_ENOMEM;
	}
	for (size_t i = 0; i < sizeof no_go / sizeof no_go[0]; i++)
		if (veil_cidr_parse(no_go[i], &p->no_go[p->n_no_go]) == 0)
			p->n_no_go++;
	if (veil_cidr_parse("127.0.0.0/8", &p->loopback[0]) != 0 ||
	    veil_cidr_parse("::1", &p->loopback[1]) != 0) {
		veil_push_free(p);
		return VEIL_EINVAL;
	}
	randombytes_buf(p->hash_key, sizeof p->hash_key);
	p->tokens = srv->cfg.push_rate_per_min;
	p->tokens_ms = mono_ms();
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, worker, p) != 0) {
		veil_push_free(p);
		return VEIL_EIO;
	}
	p->started = 1;
	*out = p;
	return 0;
}

void veil_push_free(struct veil_push *p)
{
	if (p == NULL)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
	}
	free(p->table);
	free(p->queue);
	if (p->curl_init)
		curl_global_cleanup();
	free(p);
}
