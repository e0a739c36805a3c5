/* Internals shared by the Gateway's files (gateway.c: routes; callback.c: worker). */
#ifndef VEIL_SRV_GW_INT_H
#define VEIL_SRV_GW_INT_H

#include <pthread.h>

#include "gateway.h"
#include "gwdb.h"
#include "veil/e2e.h"
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

/* A receive request parked until something waits or its time is up (pull.c). */
struct veil_gw_poll {
	uint8_t id[VEIL_ID_LEN];
	uint64_t ticket;
	uint64_t after; /* remove messages up to this seq first (0 = none) */
	uint64_t deadline_ms;
	int dirty; /* look at the queue again */
	struct veil_gw_poll *next;
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
	/* The receive worker (pull.c) and the requests it holds. */
	pthread_t pthread;
	int prunning;
	pthread_mutex_t plock;
	pthread_cond_t pcond;
	struct veil_gw_poll *polls; /* under plock */
	int pstop, pwoken;          /* under plock */
};

/* The worker thread's body (callback.c). */
void *veil_gw_callback_thread(void *arg);

/* The receive worker's body (pull.c). */
void *veil_gw_pull_thread(void *arg);
/*
 * Parks a receive request of account a (after and wait: the raw parameters,
 * or NULL) for the receive worker: 0 (the answer is deferred), or the status
 * to answer now: 409 the identity has a callback, 400 bad parameters, 503 too
 * many waiting, 500.
 */
int veil_gw_pull_request(struct veil_gateway *gw, const struct veil_gw_account *a,
                         const char *after, size_t after_len, const char *wait, size_t wait_len,
                         struct veil_http_resp *resp);

/* Set once the workers are told to stop. */
int veil_gw_stopping(struct veil_gateway *gw);

/*
 * The queue of an API identity, for the worker threads: up to max messages
 * after the cursor (a seq), waiting for the store; 0 and *msgs (free with
 * veil_gw_msgs_free), VEIL_ECLOSED when told to stop first, or the store's
 * error. veil_gw_ack removes one message, waiting until that is durable.
 */
int veil_gw_fetch(struct veil_gateway *gw, const uint8_t id[static VEIL_ID_LEN], uint64_t cursor,
                  size_t max, struct veil_msg_rec **msgs, size_t *n);
void veil_gw_msgs_free(struct veil_msg_rec *msgs, size_t n);
int veil_gw_ack(struct veil_gateway *gw, const struct veil_msg_rec *r);

/*
 * Appends a queued message m for account a as the callback's form fields
 * (from, to, messageId, date, nonce, box, mac[, nickname]); a->secret must be
 * filled (veil_gwdb_get with want_secret). veil_gw_form_text appends
 * "&name=" and v[0..n) percent-encoded. 0 or -1.
 */
int veil_gw_form_message(const struct veil_gw_account *a, const struct veil_msgbox *m,
                         struct veil_buf *form);
int veil_gw_form_text(struct veil_buf *form, const char *name, const char *v, size_t n);

#endif
