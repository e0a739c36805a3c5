/*
 * Durable message puts per second through the server store, with group
 * commit. Prints figures only. The database lives in a fresh directory under
 * $TMPDIR (or /tmp), on whatever disk that is; set TMPDIR to measure another.
 *
 * Three runs:
 *   burst   - one producer queues every put at once, then waits for all;
 *   window  - at most W puts in flight, a new one queued as each completes
 *             (a loaded server with bounded memory);
 *   single  - one put in flight at a time: one fsync per message, the cost
 *             group commit avoids.
 *
 * store_bench [puts [share]]: share is the store's queue_sender_limit (0, the
 * default, is a tenth of the queue: never reached here). A share of 1 makes
 * every put to a recipient that holds a message look up its sender's count:
 * the per-sender check at its most expensive (mostly cache misses, as the
 * sender-recipient pairs rarely repeat).
 *
 * VEIL_BENCH_STORE=postgresql://... runs the same puts against that
 * PostgreSQL database instead (the store's tables are created if missing;
 * give it an empty database: the rows are left there, and a second run into
 * the same tables would meet its own msg_ids as duplicates).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "veil/util.h"
#include "../srv/store/store.h"

#define RECIPIENTS 1000
#define BODY_LEN 300 /* a typical small text message box */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int woken;
static uint64_t done_n, failed_n;

static void wake(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	woken = 1;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

static void put_cb(void *arg, int rc, uint64_t seq)
{
	(void)arg;
	(void)seq;
	done_n++;
	if (rc != 0)
		failed_n++;
}

/* Waits for a wake-up and runs the completions. */
static void pump_once(struct veil_store *s)
{
	pthread_mutex_lock(&mu);
	while (!woken)
		pthread_cond_wait(&cv, &mu);
	woken = 0;
	pthread_mutex_unlock(&mu);
	veil_store_run_completions(s);
}

static uint64_t next_msg_id;

static int put_one(struct veil_store *s, const uint8_t *body)
{
	struct veil_msg_rec m = {0};
	uint64_t id = next_msg_id++;
	char r[9], snd[9];
	snprintf(r, sizeof(r), "R%07u", (unsigned)(id % RECIPIENTS));
	snprintf(snd, sizeof(snd), "S%07u", (unsigned)(id % 7919));
	memcpy(m.recipient, r, VEIL_ID_LEN);
	memcpy(m.sender, snd, VEIL_ID_LEN);
	m.msg_id = id;
	m.data = (uint8_t *)body;
	m.len = BODY_LEN;
	return veil_store_msg_put(s, &m, put_cb, NULL);
}

static void report(const char *name, struct veil_store *s, const struct veil_store_stats *st0,
                   uint64_t n, uint64_t ms)
{
	struct veil_store_stats st1;
	veil_store_stats(s, &st1);
	uint64_t commits = st1.commits - st0->commits;
	if (ms == 0)
		ms = 1;
	printf("store_bench %-7s %7llu puts  %6llu ms  %9.0f msgs/s  %6llu commits  "
	       "%7.1f msgs/commit  failed %llu\n",
	       name, (unsigned long long)n, (unsigned long long)ms, (double)n * 1000.0 / (double)ms,
	       (unsigned long long)commits, commits ? (double)n / (double)commits : 0.0,
	       (unsigned long long)failed_n);
}

int main(int argc, char **argv)
{
	uint64_t n_burst = 100000, window = 256, n_window = 100000, n_single = 500;
	uint32_t share = 0;
	char dir[256], path[300];
	const char *tmp = getenv("TMPDIR");
	struct veil_store *s = NULL;
	struct veil_store_stats st0;
	uint8_t body[BODY_LEN];
	int rc = 1;

	if (argc > 1) {
		char *end;
		unsigned long v = strtoul(argv[1], &end, 10);
		if (*end != 0 || v == 0 || v > 10000000) {
			fprintf(stderr, "usage: store_bench [puts [share]]\n");
			return 2;
		}
		n_burst = n_window = v;
	}
	if (argc > 2) {
		char *end;
		unsigned long v = strtoul(argv[2], &end, 10);
		if (*end != 0 || v > 1000000) {
			fprintf(stderr, "usage: store_bench [puts [share]]\n");
			return 2;
		}
		share = (uint32_t)v;
	}
	if (veil_crypto_init() != 0)
		return 2;
	snprintf(dir, sizeof(dir), "%s/veil-store-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/store.db", dir);
	const char *url = getenv("VEIL_BENCH_STORE");
	if (url != NULL && url[0] != '\0') {
		if (!veil_store_is_url(url) || strlen(url) >= sizeof(path)) {
			fprintf(stderr,
			        "store_bench: VEIL_BENCH_STORE must be a postgresql:// URL\n");
			goto out;
		}
		snprintf(path, sizeof(path), "%s", url);
	}
	char shown[300];
	veil_store_describe(path, shown, sizeof(shown));
	printf("store_bench: store %s\n", shown);
	struct veil_store_opts o = {
	    .path = path, .queue_limit = 1000000, .queue_sender_limit = share, .wake = wake};
	if (veil_store_open(&s, &o) != 0) {
		fprintf(stderr, "store_bench: cannot open %s\n", shown);
		goto out;
	}
	randombytes_buf(body, sizeof(body));

	/* burst */
	veil_store_stats(s, &st0);
	done_n = failed_n = 0;
	uint64_t t0 = veil_mono_ms();
	for (uint64_t i = 0; i < n_burst; i++) {
		if (put_one(s, body) != 0) {
			fprintf(stderr, "store_bench: put failed\n");
			goto out;
		}
	}
	while (done_n < n_burst)
		pump_once(s);
	report("burst", s, &st0, n_burst, veil_mono_ms() - t0);

	/* window */
	veil_store_stats(s, &st0);
	done_n = failed_n = 0;
	t0 = veil_mono_ms();
	uint64_t queued = 0;
	while (done_n < n_window) {
		while (queued < n_window && queued - done_n < window) {
			if (put_one(s, body) != 0) {
				fprintf(stderr, "store_bench: put failed\n");
				goto out;
			}
			queued++;
		}
		pump_once(s);
	}
	report("window", s, &st0, n_window, veil_mono_ms() - t0);

	/* single */
	veil_store_stats(s, &st0);
	done_n = failed_n = 0;
	t0 = veil_mono_ms();
	for (uint64_t i = 0; i < n_single; i++) {
		if (put_one(s, body) != 0) {
			fprintf(stderr, "store_bench: put failed\n");
			goto out;
		}
		while (done_n < i + 1)
			pump_once(s);
	}
	report("single", s, &st0, n_single, veil_mono_ms() - t0);
	rc = 0;
out:
	veil_store_close(s);
	static const char *const sfx[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < 3 && !veil_store_is_url(path); i++) {
		char p[320];
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		unlink(p);
	}
	rmdir(dir);
	return rc;
}
