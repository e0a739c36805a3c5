/* Internals shared by the Gateway's files (gateway.c: routes; callback.c: worker). */
#ifndef VEIL_SRV_GW_INT_H
#define VEIL_SRV_GW_INT_H

#include <pthread.h>

#include "gateway.h"
#include "gwdb.h"
#include "../limit/ratelimit.h"

struct veil_gateway {
	struct veil_server *srv;
	struct veil_gwdb *db;
	void (*notify)(void *arg, const uint8_t id[VEIL_ID_LEN]);
	void *notify_arg;
	/* The listener, for deferred answers; NULL once it is gone (under hlock). */
	pthread_mutex_t hlock;
	struct veil_http *http;
	struct veil_ratelimit *rl; /* per API identity; HTTP thread only */
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
