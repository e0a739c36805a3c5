/*
 * Push wake-ups without content. When a message with the push flag is
 * queued for an identity that has no connection here, a worker thread POSTs
 * a fixed wake-up (no sender, no content, no message ID: the same bytes for
 * everyone) to the identity's UnifiedPush endpoint, the push token of type
 * VEIL_PUSH_TYPE_UNIFIEDPUSH, whose bytes are the endpoint's URL. The
 * phone's app then connects and fetches its queue as usual.
 *
 * Per identity at most one wake-up goes out every push-interval seconds (a
 * later one waits for the interval to end), in total at most push-rate a
 * minute; a failed POST is tried again after 1, 2, 4 and 8 seconds; an
 * endpoint answering 404 or 410 is gone and its token is deleted. The
 * loop thread only records a wish under a mutex and never waits for the
 * network or the store.
 */
#ifndef VEIL_SRV_PUSH_H
#define VEIL_SRV_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

/*
 * Push token type of a UnifiedPush endpoint URL (a Veil extension: the
 * specification's types are APNs, FCM and HMS, which veild stores but does
 * not serve).
 */
#define VEIL_PUSH_TYPE_UNIFIEDPUSH 0x40
#define VEIL_PUSH_BODY "wake"       /* the whole body of every wake-up */
#define VEIL_PUSH_TTL_S 86400       /* TTL header: the push server keeps it a day */
#define VEIL_PUSH_MAX_TRIES 5       /* POSTs of one wake-up at most */
#define VEIL_PUSH_QUEUE_MAX 4096    /* wake-ups waiting at once; more are dropped */
#define VEIL_PUSH_TABLE_SLOTS 65536 /* identities remembered for coalescing */
#define VEIL_PUSH_PROBE 64          /* slots looked at per identity */
#define VEIL_PUSH_TIMEOUT_S 10      /* one POST, connection included */

struct veil_push;

/* Counters for logs and tests. */
struct veil_push_stats {
	uint64_t sent;        /* POSTs answered 2xx */
	uint64_t failed;      /* wake-ups given up (after every try, or refused for good) */
	uint64_t retries;     /* POSTs tried again */
	uint64_t coalesced;   /* wishes folded into a wake-up already sent or waiting */
	uint64_t dropped;     /* wishes dropped: queue or table full */
	uint64_t no_endpoint; /* identities without a usable UnifiedPush token */
};

/*
 * Starts the worker for srv (its config and store; the store must outlive
 * the worker). 0, or VEIL_ENOMEM / VEIL_EIO.
 */
int veil_push_new(struct veil_push **out, struct veil_server *srv);
/* Stops the worker (a POST under way ends within VEIL_PUSH_TIMEOUT_S) and frees. NULL is a no-op. */
void veil_push_free(struct veil_push *p);
/*
 * A message with the push flag was queued for id, which has no connection
 * here. Any thread; never blocks on I/O. p may be NULL.
 */
void veil_push_queued(struct veil_push *p, const uint8_t id[VEIL_ID_LEN]);
/* id logged in: a wake-up for it that has not gone out yet is dropped. p may be NULL. */
void veil_push_online(struct veil_push *p, const uint8_t id[VEIL_ID_LEN]);
void veil_push_get_stats(struct veil_push *p, struct veil_push_stats *st);

/*
 * Checks a UnifiedPush token: 1 to VEIL_STORE_MAX_PUSH_TOKEN bytes of
 * printable ASCII forming https://HOST[:PORT][/PATH] (no user part, no
 * fragment), or http:// with a loopback host (127.0.0.0/8, [::1]) when
 * allow_loopback_http. Writes the URL, NUL-terminated, to url (room for
 * VEIL_STORE_MAX_PUSH_TOKEN + 1). 0 or VEIL_EINVAL.
 */
int veil_push_endpoint_check(const uint8_t *tok, size_t len, int allow_loopback_http,
                             char url[static VEIL_STORE_MAX_PUSH_TOKEN + 1]);

#endif
