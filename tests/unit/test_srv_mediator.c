/* The mediator's CSP stream cutter and its store (srv/mediator). */
#include <unistd.h>

#include <sodium.h>

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
		CHECK(c.buf.len == 1);
		md_cspcut_release(&c);
	}
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

T_MAIN_BEGIN
RUN(test_cspcut_boundaries);
RUN(test_cspcut_oversize_frame);
RUN(test_mstore_queue);
T_MAIN_END
