/* Counters and their Prometheus exposition (see metrics.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "metrics.h"
#include "veil/err.h"

struct veil_metrics veil_metrics;

/* veil_refusal's log: when each kind was last logged, and how many since. */
static _Atomic uint64_t refusal_logged_ms[VEIL_METRIC_COUNT];
static _Atomic uint64_t refusal_unlogged[VEIL_METRIC_COUNT];

const int *veil_metrics_log_ip;

void veil_client_for_log(const char *addr, char out[static 64])
{
	unsigned char b[16];
	char txt[INET6_ADDRSTRLEN];
	out[0] = '\0';
	if (veil_metrics_log_ip == NULL ||
	    !__atomic_load_n(veil_metrics_log_ip, __ATOMIC_RELAXED) || addr == NULL)
		return;
	if (inet_pton(AF_INET, addr, b) == 1) {
		b[3] = 0;
		if (inet_ntop(AF_INET, b, txt, sizeof txt) != NULL)
			snprintf(out, 64, " from %s/24", txt);
	} else if (inet_pton(AF_INET6, addr, b) == 1) {
		memset(b + 6, 0, 10);
		if (inet_ntop(AF_INET6, b, txt, sizeof txt) != NULL)
			snprintf(out, 64, " from %s/48", txt);
	}
}

void veil_refusal(enum veil_metric m, const char *what)
{
	veil_refusal_from(m, what, NULL);
}

void veil_refusal_from(enum veil_metric m, const char *what, const char *client)
{
	veil_metric_inc(m);
	atomic_fetch_add_explicit(&refusal_unlogged[m], 1, memory_order_relaxed);
	uint64_t now = veil_mono_ms();
	uint64_t last = atomic_load_explicit(&refusal_logged_ms[m], memory_order_relaxed);
	if (last != 0 && now - last < VEIL_REFUSAL_LOG_MS)
		return;
	/* One thread wins the right to write the line. */
	if (!atomic_compare_exchange_strong_explicit(&refusal_logged_ms[m], &last, now,
	                                             memory_order_relaxed, memory_order_relaxed))
		return;
	uint64_t n = atomic_exchange_explicit(&refusal_unlogged[m], 0, memory_order_relaxed);
	char from[64];
	veil_client_for_log(client, from);
	veil_log_warn("limits: %" PRIu64 " %s refused%s%s%s", n, what,
	              last != 0 ? " in the last minute" : "", from[0] ? "; the last one came" : "",
	              from);
}

static const uint64_t commit_bounds_us[VEIL_METRICS_COMMIT_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

uint64_t veil_metrics_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void veil_metrics_commit(uint64_t us)
{
	size_t i = 0;
	while (i < VEIL_METRICS_COMMIT_BUCKETS && us > commit_bounds_us[i])
		i++;
	atomic_fetch_add_explicit(&veil_metrics.commit_le[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&veil_metrics.commit_sum_us, us, memory_order_relaxed);
}

static uint64_t get(enum veil_metric m)
{
	return atomic_load_explicit(&veil_metrics.c[m], memory_order_relaxed);
}

static int out_fmt(struct veil_buf *b, const char *fmt, ...) VEIL_PRINTF(2, 3);
static int out_fmt(struct veil_buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line)
		return VEIL_ETRUNC;
	return veil_buf_append(b, line, (size_t)n);
}

/* One metric with its HELP and TYPE lines and a single unlabelled sample. */
static int one(struct veil_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	return out_fmt(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
	               name, v);
}

int veil_metrics_render(struct veil_buf *b, const struct veil_metrics_input *in)
{
	int rc = 0;
#define ONE(name, type, help, v)                                                                   \
	do {                                                                                       \
		if (rc == 0)                                                                       \
			rc = one(b, name, type, help, v);                                          \
	} while (0)
#define FMT(...)                                                                                   \
	do {                                                                                       \
		if (rc == 0)                                                                       \
			rc = out_fmt(b, __VA_ARGS__);                                              \
	} while (0)
	ONE("veil_uptime_seconds", "gauge", "Seconds since veild started.", in->uptime_s);
	ONE("veil_chat_connections", "gauge", "Open connections to the chat port.",
	    in->connections);
	ONE("veil_chat_logins_total", "counter", "Successful chat logins.", in->logins);
	ONE("veil_messages_in_total", "counter", "Messages accepted from senders.",
	    in->messages_in);
	ONE("veil_messages_out_total", "counter", "Messages delivered to recipients.",
	    in->messages_out);
	ONE("veil_messages_stored_total", "counter", "Messages written to the store's queue.",
	    in->messages_stored);
	ONE("veil_messages_handed_off_total", "counter",
	    "Messages acked by a live recipient before any store write.", in->handoffs);
	ONE("veil_signups_total", "counter", "Identities created through the directory.",
	    get(VEIL_METRIC_SIGNUPS));
	FMT("# HELP veil_refusals_total Requests or connections refused by a limit.\n"
	    "# TYPE veil_refusals_total counter\n");
	static const struct {
		const char *label;
		enum veil_metric m;
	} refusals[] = {
	    {"chat_per_address", VEIL_METRIC_REFUSE_CHAT_ADDR},
	    {"http_rate", VEIL_METRIC_REFUSE_HTTP_RATE},
	    {"http_connections", VEIL_METRIC_REFUSE_HTTP_CONN},
	    {"queue_full", VEIL_METRIC_REFUSE_QUEUE_FULL},
	    {"signup", VEIL_METRIC_REFUSE_SIGNUP},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(refusals); i++)
		FMT("veil_refusals_total{limit=\"%s\"} %" PRIu64 "\n", refusals[i].label,
		    get(refusals[i].m));
	FMT("# HELP veil_errors_total Errors by kind.\n# TYPE veil_errors_total counter\n");
	FMT("veil_errors_total{kind=\"store\"} %" PRIu64 "\n", get(VEIL_METRIC_ERR_STORE));
	FMT("veil_errors_total{kind=\"protocol\"} %" PRIu64 "\n", in->protocol_errors);
	FMT("# HELP veil_blob_bytes_total Blob bytes uploaded (in) and downloaded (out).\n"
	    "# TYPE veil_blob_bytes_total counter\n");
	FMT("veil_blob_bytes_total{direction=\"in\"} %" PRIu64 "\n",
	    get(VEIL_METRIC_BLOB_BYTES_IN));
	FMT("veil_blob_bytes_total{direction=\"out\"} %" PRIu64 "\n",
	    get(VEIL_METRIC_BLOB_BYTES_OUT));
	FMT("# HELP veil_store_commit_seconds Time of one store commit (group commit, with "
	    "its fsync).\n# TYPE veil_store_commit_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t i = 0; i <= VEIL_METRICS_COMMIT_BUCKETS; i++) {
		cum += atomic_load_explicit(&veil_metrics.commit_le[i], memory_order_relaxed);
		if (i < VEIL_METRICS_COMMIT_BUCKETS)
			FMT("veil_store_commit_seconds_bucket{le=\"%" PRIu64 ".%06" PRIu64
			    "\"} %" PRIu64 "\n",
			    commit_bounds_us[i] / 1000000u, commit_bounds_us[i] % 1000000u, cum);
		else
			FMT("veil_store_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
	}
	uint64_t sum = atomic_load_explicit(&veil_metrics.commit_sum_us, memory_order_relaxed);
	FMT("veil_store_commit_seconds_sum %" PRIu64 ".%06" PRIu64 "\n", sum / 1000000u,
	    sum % 1000000u);
	FMT("veil_store_commit_seconds_count %" PRIu64 "\n", cum);
	FMT("# HELP veil_store_up Whether the store answered a query for this scrape.\n"
	    "# TYPE veil_store_up gauge\nveil_store_up{backend=\"%s\"} %d\n",
	    in->store_backend != NULL ? in->store_backend : "", in->store_up ? 1 : 0);
	if (in->have_queue) {
		ONE("veil_queue_messages", "gauge", "Messages waiting in the store's queues.",
		    in->queue_messages);
		ONE("veil_queue_bytes", "gauge", "Bytes of the messages waiting in the queues.",
		    in->queue_bytes);
		ONE("veil_queue_recipients", "gauge",
		    "Identities with at least one queued message.", in->queue_recipients);
		ONE("veil_queue_expired_messages", "gauge",
		    "Queued messages past their expiry, not yet purged.", in->queue_expired);
		ONE("veil_queue_longest", "gauge", "Messages in the longest queue.", in->queue_max);
	}
#undef ONE
#undef FMT
	return rc;
}
