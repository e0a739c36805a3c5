/*
 * Process-wide counters for the admin listener's /metrics (Prometheus text
 * exposition format) and the exposition itself.
 *
 * Cost on the hot path: the chat service's per-message counts stay where
 * they were (struct veil_chat_stats, plain integers of the loop thread) and
 * are read on the loop thread when /metrics is asked for. The counters
 * here are bumped from several threads (HTTP thread, store thread, loop)
 * at rare events (a refusal, an error, a commit, a blob), each one relaxed
 * atomic add, with no lock and no ordering.
 */
#ifndef VEIL_SRV_METRICS_H
#define VEIL_SRV_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/util.h"

/* Refusals by a limit (veil_refusals_total{limit="..."}) and errors by kind. */
enum veil_metric {
	VEIL_METRIC_REFUSE_CHAT_ADDR,  /* chat connection over a per-address limit */
	VEIL_METRIC_REFUSE_HTTP_RATE,  /* HTTP request over a per-address or per-ID rate */
	VEIL_METRIC_REFUSE_HTTP_CONN,  /* HTTP connection over a per-address limit */
	VEIL_METRIC_REFUSE_QUEUE_FULL, /* message refused: recipient's queue (or share) full */
	VEIL_METRIC_REFUSE_SIGNUP,     /* sign-up refused: closed, or no valid invite */
	VEIL_METRIC_ERR_STORE,         /* a store call or commit failed */
	VEIL_METRIC_SIGNUPS,           /* identities created through the directory */
	VEIL_METRIC_BLOB_BYTES_IN,     /* blob bytes uploaded */
	VEIL_METRIC_BLOB_BYTES_OUT,    /* blob bytes downloaded */
	VEIL_METRIC_COUNT
};

/* Upper bounds (microseconds) of the store commit latency histogram's buckets. */
#define VEIL_METRICS_COMMIT_BUCKETS 12

struct veil_metrics {
	_Atomic uint64_t c[VEIL_METRIC_COUNT];
	_Atomic uint64_t commit_le[VEIL_METRICS_COMMIT_BUCKETS + 1]; /* last: +Inf */
	_Atomic uint64_t commit_sum_us;
};
extern struct veil_metrics veil_metrics;

static inline void veil_metric_add(enum veil_metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&veil_metrics.c[m], n, memory_order_relaxed);
}
static inline void veil_metric_inc(enum veil_metric m)
{
	veil_metric_add(m, 1);
}
/*
 * A refusal by a limit (m is one of the VEIL_METRIC_REFUSE_*): counted, and
 * logged as "N <what> refused" at most once every VEIL_REFUSAL_LOG_MS per
 * kind, so that a flood cannot flood the log. Any thread. what never names
 * a client.
 */
#define VEIL_REFUSAL_LOG_MS 60000
void veil_refusal(enum veil_metric m, const char *what);
/* As veil_refusal; with --log-ip the line names the last client's network. */
void veil_refusal_from(enum veil_metric m, const char *what, const char *client);

/*
 * --log-ip: NULL or 0 = client addresses never appear in log lines. veild
 * points it at its config's log_ip (which SIGHUP may change).
 */
extern const int *veil_metrics_log_ip;
/*
 * " from NETWORK" for a log line: the address (text) cut to its /24 (IPv4)
 * or /48 (IPv6); "" if --log-ip is off or addr is not an address.
 */
void veil_client_for_log(const char *addr, char out[static 64]);
/* One store commit that took us microseconds (store thread). */
void veil_metrics_commit(uint64_t us);
/* A monotonic clock in microseconds. */
uint64_t veil_metrics_now_us(void);

/* What the loop thread and the store add to an exposition. */
struct veil_metrics_input {
	uint64_t uptime_s;
	uint64_t connections, logins, messages_in, messages_out, messages_stored, handoffs;
	uint64_t protocol_errors; /* chat peers that broke the protocol */
	int have_queue;           /* the store answered queue_stats */
	uint64_t queue_messages, queue_bytes, queue_recipients, queue_expired, queue_max;
	int store_up;
	const char *store_backend; /* "sqlite" or "postgresql" */
};
/* Appends the whole exposition to out. Returns 0 or VEIL_ENOMEM / VEIL_ELIMIT. */
int veil_metrics_render(struct veil_buf *out, const struct veil_metrics_input *in);

#endif
