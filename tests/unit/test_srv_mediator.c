/* The mediator's CSP stream cutter and its store (srv/mediator). */
#include <stdatomic.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "t.h"
#include "veil/crypto.h"
#include "veil/csp.h"
#include "mediator/cspcut.h"
#include "mediator/mstore.h"

struct cuts {
	size_t n;
	size_t len[16];
	uint8_t first[16];
};

static int on_cut(void *arg, const uint8_t *msg, size_t len)
{
	struct cuts *c = arg;
	if (c->n == 16)
		return -1;
	c->len[c->n] = len;
	c->first[c->n] = msg[0];
	c->n++;
	return 0;
}

/* A stream fed one byte at a time and all at once is cut at the same places. */
static void test_cspcut_boundaries(void)
{
	uint8_t s[80 + 32 + 2 + 20 + 2 + 300 + 1];
	size_t n = 0;
	memset(s, 0xaa, sizeof s);
	n += VEIL_CSP_SERVER_HELLO_LEN;
	n += VEIL_CSP_LOGIN_ACK_LEN;
	s[n] = 20, s[n + 1] = 0, n += 22;
	s[n] = 300 & 0xff, s[n + 1] = 300 >> 8, n += 302;
	s[n++] = 7; /* the first byte of the next frame's length */
	for (int whole = 0; whole < 2; whole++) {
		struct md_cspcut c;
		struct cuts got = {0};
		md_cspcut_init(&c);
		if (whole)
			CHECK_RC(md_cspcut_feed(&c, s, n, on_cut, &got), 0);
		else
			for (size_t i = 0; i < n; i++)
				CHECK_RC(md_cspcut_feed(&c, s + i, 1, on_cut, &got), 0);
		CHECK(got.n == 4);
		CHECK(got.len[0] == 80 && got.len[1] == 32 && got.len[2] == 22 &&
		      got.len[3] == 302);
		CHECK(c.buf != NULL && c.buf->len == 1);
		md_cspcut_release(&c);
	}
}

/* The n-th message: the server-hello, the login-ack, then frame n - 3 (n in its third byte). */
static int count_cut(void *arg, const uint8_t *msg, size_t len)
{
	size_t *n = arg;
	(*n)++;
	if (*n == 1)
		return len == 80 && msg[0] == 1 ? 0 : -1;
	if (*n == 2)
		return len == 32 && msg[0] == 2 ? 0 : -1;
	return msg[2] == (uint8_t)(*n) && len == 2 + VEIL_CSP_MAX_FRAME ? 0 : -1;
}

/*
 * Megabytes at once (the chat service hands a session's output over in
 * one piece): every frame is cut, and only a frame's start waits; in
 * chunks that split frames anywhere, the same.
 */
static void test_cspcut_large_input(void)
{
	enum { F = 2 + VEIL_CSP_MAX_FRAME, N = 300 };
	size_t total = 80 + 32 + (size_t)N * F + 100;
	uint8_t *s = calloc(1, total);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	for (size_t i = 0; i < N; i++) {
		uint8_t *f = s + 112 + i * F;
		f[0] = VEIL_CSP_MAX_FRAME & 0xff;
		f[1] = VEIL_CSP_MAX_FRAME >> 8;
		f[2] = (uint8_t)(i + 3); /* counted from the server-hello and login-ack */
	}
	uint8_t *tail = s + 112 + (size_t)N * F;
	tail[0] = VEIL_CSP_MAX_FRAME & 0xff;
	tail[1] = VEIL_CSP_MAX_FRAME >> 8;
	s[0] = 1, s[80] = 2;
	for (size_t chunk = 0; chunk < 3; chunk++) {
		size_t step = chunk == 0 ? total : chunk == 1 ? 7777 : 3;
		struct md_cspcut c;
		size_t n = 0;
		md_cspcut_init(&c);
		for (size_t o = 0; o < total; o += step) {
			size_t k = total - o < step ? total - o : step;
			int rc = md_cspcut_feed(&c, s + o, k, count_cut, &n);
			CHECK_RC(rc, 0);
			if (rc != 0)
				break;
		}
		CHECK(n == 2 + N);
		CHECK(c.buf != NULL && c.buf->len == 100);
		md_cspcut_release(&c);
	}
	free(s);
}

static void test_cspcut_oversize_frame(void)
{
	struct md_cspcut c;
	struct cuts got = {0};
	uint8_t s[80 + 32 + 2] = {0};
	s[112] = (VEIL_CSP_MAX_FRAME + 1) & 0xff;
	s[113] = (VEIL_CSP_MAX_FRAME + 1) >> 8;
	md_cspcut_init(&c);
	CHECK_RC(md_cspcut_feed(&c, s, sizeof s, on_cut, &got), VEIL_EPROTO);
	CHECK(got.n == 2);
	md_cspcut_release(&c);
}

struct qgot {
	int n;
	uint32_t rid[8];
	int64_t seq[8];
};

static int on_q(void *arg, const struct md_queued *q)
{
	struct qgot *g = arg;
	g->rid[g->n] = q->rid;
	g->seq[g->n] = q->seq;
	g->n++;
	return 0;
}

static void test_mstore_queue(void)
{
	char dir[] = "/tmp/veil-mstore-XXXXXX", path[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/mediator.db", dir);
	struct md_store *s;
	uint8_t gid[32], other[32];
	uint32_t rid;
	randombytes_buf(gid, sizeof gid);
	randombytes_buf(other, sizeof other);
	CHECK_RC(md_store_open(&s, path), 0);
	CHECK_RC(md_store_device_exists(s, gid, 1), 0);
	CHECK_RC(md_store_device_login(s, gid, 1, 1, (const uint8_t *)"info", 4, 1000), 0);
	CHECK_RC(md_store_device_login(s, gid, UINT64_MAX, 0, NULL, 0, 2000), 0);
	CHECK_RC(md_store_device_login(s, other, 1, 0, NULL, 0, 500), 0);
	CHECK_RC(md_store_device_exists(s, gid, UINT64_MAX), 1);
	CHECK_RC(md_store_device_count(s, gid), 2);
	/* A reflect from device 1 is queued for the other device of its group only. */
	CHECK_RC(md_store_reflect(s, gid, 1, 0, 3000, (const uint8_t *)"env", 3, &rid), 0);
	CHECK(rid == 1);
	CHECK_RC(md_store_reflect(s, gid, 1, 0, 3001, (const uint8_t *)"env2", 4, &rid), 0);
	CHECK(rid == 2);
	CHECK_RC(md_store_queue_len(s, gid, 1), 0);
	CHECK_RC(md_store_queue_len(s, gid, UINT64_MAX), 2);
	CHECK_RC(md_store_queue_len(s, other, 1), 0);
	struct qgot q = {0};
	CHECK_RC(md_store_queue_after(s, gid, UINT64_MAX, 0, 8, on_q, &q), 2);
	CHECK(q.rid[0] == 1 && q.rid[1] == 2 && q.seq[0] < q.seq[1]);
	struct qgot q2 = {0};
	CHECK_RC(md_store_queue_after(s, gid, UINT64_MAX, q.seq[0], 8, on_q, &q2), 1);
	CHECK_RC(md_store_queue_ack(s, gid, UINT64_MAX, 1), 1);
	CHECK_RC(md_store_queue_ack(s, gid, UINT64_MAX, 1), 0);
	CHECK_RC(md_store_queue_ack(s, gid, 1, 2), 0);
	/* Least recently seen first; a dropped device takes its queue along. */
	struct md_device_row rows[4];
	CHECK_RC(md_store_devices(s, gid, rows, 4), 2);
	CHECK(rows[0].device_id == 1 && rows[1].device_id == UINT64_MAX);
	CHECK_RC(md_store_device_drop(s, gid, UINT64_MAX), 0);
	CHECK_RC(md_store_queue_len(s, gid, UINT64_MAX), 0);
	CHECK_RC(md_store_device_count(s, gid), 1);
	md_store_close(s);
	/* Reopened: the reflected IDs go on from where they were. */
	CHECK_RC(md_store_open(&s, path), 0);
	CHECK_RC(md_store_next_rid(s, gid, &rid), 0);
	CHECK(rid == 3);
	md_store_close(s);
	unlink(path);
	char wal[80];
	snprintf(wal, sizeof wal, "%s-wal", path);
	unlink(wal);
	snprintf(wal, sizeof wal, "%s-shm", path);
	unlink(wal);
	rmdir(dir);
}

struct igot {
	int n;
	uint64_t id[4];
	size_t info_len[4];
	uint64_t seen[4];
};

static int on_info(void *arg, const struct md_device_row *row, const uint8_t *info, size_t len)
{
	struct igot *g = arg;
	if (g->n < 4) {
		g->id[g->n] = row->device_id;
		g->info_len[g->n] =
		    info != NULL && len > 0 && memcmp(info, "info", 4) == 0 ? len : 0;
		g->seen[g->n] = row->last_seen;
	}
	g->n++;
	return 0;
}

static void test_mstore_devices_and_shared(void)
{
	char dir[] = "/tmp/veil-mstore-XXXXXX", path[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/mediator.db", dir);
	struct md_store *s;
	uint8_t gid[32], box[16];
	size_t len;
	randombytes_buf(gid, sizeof gid);
	CHECK_RC(md_store_open(&s, path), 0);
	CHECK_RC(md_store_device_login(s, gid, 9, 1, (const uint8_t *)"info", 4, 1000), 0);
	CHECK_RC(md_store_device_login(s, gid, 3, 0, NULL, 0, 2000), 0);
	CHECK_RC(md_store_device_seen(s, gid, 9, 5000), 0);
	struct igot g = {0};
	CHECK_RC(md_store_device_infos(s, gid, on_info, &g), 2);
	CHECK(g.n == 2 && g.id[0] == 3 && g.id[1] == 9 && g.info_len[0] == 0 &&
	      g.info_len[1] == 4 && g.seen[1] == 5000);
	/* Shared device data: none, set, replaced, cleared. */
	CHECK_RC(md_store_shared_data(s, gid, box, sizeof box, &len), 0);
	CHECK(len == 0);
	CHECK_RC(md_store_set_shared_data(s, gid, (const uint8_t *)"box1", 4), 0);
	CHECK_RC(md_store_set_shared_data(s, gid, (const uint8_t *)"box22", 5), 0);
	CHECK_RC(md_store_shared_data(s, gid, box, sizeof box, &len), 0);
	CHECK(len == 5 && memcmp(box, "box22", 5) == 0);
	CHECK_RC(md_store_set_shared_data(s, gid, NULL, 0), 0);
	CHECK_RC(md_store_shared_data(s, gid, box, sizeof box, &len), 0);
	CHECK(len == 0);
	CHECK_RC(md_store_device_drop(s, gid, 9), 0);
	struct igot g2 = {0};
	CHECK_RC(md_store_device_infos(s, gid, on_info, &g2), 1);
	md_store_close(s);
	unlink(path);
	char wal[80];
	snprintf(wal, sizeof wal, "%s-wal", path);
	unlink(wal);
	snprintf(wal, sizeof wal, "%s-shm", path);
	unlink(wal);
	rmdir(dir);
}

/* Removes the store at path and its directory. */
static void store_rm(const char *dir, const char *path)
{
	char wal[96];
	unlink(path);
	snprintf(wal, sizeof wal, "%s-wal", path);
	unlink(wal);
	snprintf(wal, sizeof wal, "%s-shm", path);
	unlink(wal);
	rmdir(dir);
}

/*
 * The queue limit: a reflect that finds a device's queue full is not
 * stored for it but counted, so the device shows over the limit; an ack
 * takes one off. A store made before the count existed gets it from its
 * queues.
 */
static void test_mstore_queue_limit(void)
{
	char dir[] = "/tmp/veil-mstore-XXXXXX", path[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/mediator.db", dir);
	struct md_store *s;
	uint8_t gid[32];
	uint32_t rid;
	uint64_t n, over[4];
	randombytes_buf(gid, sizeof gid);
	CHECK_RC(md_store_open(&s, path), 0);
	md_store_set_queue_limit(s, 2);
	CHECK_RC(md_store_device_login(s, gid, 1, 1, NULL, 0, 1000), 0);
	CHECK_RC(md_store_device_login(s, gid, 2, 1, NULL, 0, 1000), 0);
	CHECK_RC(md_store_reflect(s, gid, 1, 0, 3000, (const uint8_t *)"a", 1, &rid), 0);
	CHECK_RC(md_store_reflect(s, gid, 1, 0, 3001, (const uint8_t *)"b", 1, &rid), 0);
	CHECK_RC(md_store_over_limit(s, gid, over, 4), 0);
	CHECK_RC(md_store_queue_count(s, gid, 2, &n), 0);
	CHECK(n == 2);
	CHECK_RC(md_store_reflect(s, gid, 1, 0, 3002, (const uint8_t *)"c", 1, &rid), 0);
	CHECK_RC(md_store_queue_len(s, gid, 2), 2);
	CHECK_RC(md_store_queue_count(s, gid, 2, &n), 0);
	CHECK(n == 3);
	CHECK_RC(md_store_queue_count(s, gid, 1, &n), 0);
	CHECK(n == 0);
	CHECK_RC(md_store_over_limit(s, gid, over, 4), 1);
	CHECK(over[0] == 2);
	CHECK_RC(md_store_queue_ack(s, gid, 2, 1), 1);
	CHECK_RC(md_store_queue_ack(s, gid, 2, 1), 0);
	CHECK_RC(md_store_queue_count(s, gid, 2, &n), 0);
	CHECK(n == 2);
	md_store_close(s);
	store_rm(dir, path);

	/* An older store: devices without qlen, two reflects queued for device 2. */
	memcpy(dir, "/tmp/veil-mstore-XXXXXX", sizeof dir);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/mediator.db", dir);
	sqlite3 *db;
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db,
	                   "CREATE TABLE devices (gid BLOB NOT NULL, device_id INTEGER NOT NULL,"
	                   " expiration_policy INTEGER NOT NULL, info BLOB,"
	                   " connected_since INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
	                   " PRIMARY KEY (gid, device_id));"
	                   "CREATE TABLE reflected (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	                   " gid BLOB NOT NULL, device_id INTEGER NOT NULL, rid INTEGER NOT NULL,"
	                   " ts INTEGER NOT NULL, flags INTEGER NOT NULL, envelope BLOB NOT NULL);"
	                   "INSERT INTO devices VALUES (x'07', 2, 1, NULL, 1, 1);"
	                   "INSERT INTO reflected (gid, device_id, rid, ts, flags, envelope)"
	                   " VALUES (x'07', 2, 1, 1, 0, x'00'), (x'07', 2, 2, 1, 0, x'00');",
	                   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK_RC(md_store_open(&s, path), 0);
	md_store_close(s);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	sqlite3_stmt *st;
	CHECK(sqlite3_prepare_v2(db, "SELECT qlen FROM devices WHERE device_id = 2", -1, &st,
	                         NULL) == SQLITE_OK);
	CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 2);
	sqlite3_finalize(st);
	sqlite3_close(db);
	store_rm(dir, path);
}

struct bgot {
	int calls;
	uint64_t upto;
	int rc;
	int64_t top;
	struct md_store *s;
	atomic_int wakes;
};

static void on_batch(void *ctx, uint64_t upto, int rc)
{
	struct bgot *b = ctx;
	b->calls++;
	b->upto = upto;
	b->rc = rc;
	b->top = md_store_batch_top(b->s);
}

static void on_wake(void *ctx)
{
	struct bgot *b = ctx;
	atomic_fetch_add(&b->wakes, 1);
}

/*
 * Group commit off the caller's thread: a committed batch is reported
 * (fn, from md_store_batch_poll on the caller's thread) only after the
 * sync thread has made it durable and woken the caller, batches in order;
 * until then its queue rows are above md_store_committed_seq. A batch
 * still open is not reported; md_store_batch_sync commits and reports it.
 */
static void test_mstore_batch_sync_thread(void)
{
	char dir[] = "/tmp/veil-mstore-XXXXXX", path[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/mediator.db", dir);
	static struct bgot b;
	struct md_store *s;
	uint8_t gid[32];
	uint32_t rid;
	randombytes_buf(gid, sizeof gid);
	CHECK_RC(md_store_open(&s, path), 0);
	b.s = s;
	atomic_init(&b.wakes, 0);
	md_store_on_batch(s, on_batch, on_wake, &b);
	CHECK_RC(md_store_device_login(s, gid, 1, 1, NULL, 0, 1000), 0);
	CHECK_RC(md_store_device_login(s, gid, 2, 1, NULL, 0, 1000), 0);
	CHECK(md_store_committed_seq(s) == INT64_MAX);
	CHECK(md_store_batch_gen(s) == 1);
	CHECK_RC(md_store_batch_reflect(s, gid, 1, 0, 3000, (const uint8_t *)"a", 1, &rid), 0);
	CHECK_RC(md_store_batch_reflect(s, gid, 1, 0, 3001, (const uint8_t *)"b", 1, &rid), 0);
	struct qgot q = {0};
	CHECK_RC(md_store_queue_after(s, gid, 2, 0, 8, on_q, &q), 2);
	CHECK(q.seq[0] > md_store_committed_seq(s));
	CHECK_RC(md_store_batch_commit(s), 0);
	CHECK(!md_store_batch_open(s) && md_store_batch_gen(s) == 2);
	/* Not durable as far as the caller knows until a poll reports it. */
	CHECK(b.calls == 0 && q.seq[1] > md_store_committed_seq(s));
	CHECK_RC(md_store_batch_reflect(s, gid, 1, 0, 3002, (const uint8_t *)"c", 1, &rid), 0);
	for (int i = 0; i < 30000 && (b.calls == 0 || atomic_load(&b.wakes) == 0); i++) {
		md_store_batch_poll(s);
		usleep(1000);
	}
	CHECK(atomic_load(&b.wakes) >= 1);
	CHECK(b.calls == 1 && b.upto == 1 && b.rc == 0 && b.top == q.seq[1]);
	/* Batch 1's rows may go out; batch 2's (still open) may not. */
	CHECK(md_store_committed_seq(s) == q.seq[1]);
	struct qgot q2 = {0};
	CHECK_RC(md_store_queue_after(s, gid, 2, q.seq[1], 8, on_q, &q2), 1);
	CHECK(q2.seq[0] > md_store_committed_seq(s));
	CHECK_RC(md_store_batch_sync(s), 0);
	CHECK(b.calls == 2 && b.upto == 2 && b.rc == 0 && b.top == q2.seq[0]);
	CHECK(md_store_committed_seq(s) == INT64_MAX);
	md_store_batch_poll(s);
	CHECK(b.calls == 2);
	md_store_close(s);
	/* What was reported durable is there after a reopen. */
	CHECK_RC(md_store_open(&s, path), 0);
	CHECK_RC(md_store_queue_len(s, gid, 2), 3);
	md_store_close(s);
	store_rm(dir, path);
}

T_MAIN_BEGIN
RUN(test_cspcut_boundaries);
RUN(test_cspcut_large_input);
RUN(test_cspcut_oversize_frame);
RUN(test_mstore_queue);
RUN(test_mstore_devices_and_shared);
RUN(test_mstore_queue_limit);
RUN(test_mstore_batch_sync_thread);
T_MAIN_END
