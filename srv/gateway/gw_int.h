/* Internals shared by the Gateway's files (gateway.c: routes; callback.c: worker). */
#ifndef VEIL_SRV_GW_INT_H
#define VEIL_SRV_GW_INT_H

#include <pthread.h>

#include "gateway.h"
#include "gwdb.h"
#include "../limit/ratelimit.h"

/*
 * Identities known to be live, so that a send does not read the directory
 * every time; an entry is trusted for VEIL_GW_ID_CACHE_MS (as the chat
 * service's cache), so a revocation reaches the Gateway within that time.
 */
#define VEIL_GW_ID_CACHE_SLOTS 4096
#define VEIL_GW_ID_CACHE_MS 60000
struct gw_id_cache_entry {
	uint8_t id[VEIL_ID_LEN];
	uint8_t pk[VEIL_KEY_LEN];
	uint64_t until_ms; /* monotonic; 0 = empty */
};

struct veil_gateway {
	struct veil_server *srv;
	struct veil_gwdb *db;
	void (*notify)(void *arg, const uint8_t id[VEIL_ID_LEN]);
	void *notify_arg;
	/* The listener, for deferred answers; NULL once it is gone (under hlock). */
	pthread_mutex_t hlock;
	struct veil_http *http;
	struct veil_ratelimit *rl;     /* per API identity; HTTP thread only */
	struct veil_blobsvc *blobs;    /* the blob service behind upload_blob, or NULL */
	struct gw_id_cache_entry *ids; /* HTTP thread only */
	uint8_t ids_key[16];
	/* The callback worker. */
	pthread_t thread;
	int running;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	int stop, woken; /* under wlock */
};

/* The worker thread's body (callback.c). */
void *veil_gw_callback_thread(void *arg);

#endif
