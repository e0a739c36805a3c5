/*
 * Tests for the server store: the SQLite backend in a temporary directory,
 * or, with VEIL_TEST_STORE=postgresql://..., the PostgreSQL backend in that
 * (otherwise empty) database, whose tables the tests drop and recreate.
 */
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>

#include "t.h"
#include "veil/crypto.h"
#include "veil/err.h"
#include "veil/util.h"
#include "../../srv/store/store.h"
#include "../../srv/mediator/mstore.h"

static char t_dir[64];
static char t_path[1024];
static int t_pg; /* t_path is a PostgreSQL URL */

/*
 * A second connection to the store's database, for what a test does beside
 * the store: hold the write lock, add a trigger, read the schema version.
 */
static sqlite3 *side_sq;
static PGconn *side_pg;

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static int side_open(void)
{
	if (t_pg) {
		side_pg = PQconnectdb(t_path);
		PQsetNoticeProcessor(side_pg, quiet, NULL);
		return PQstatus(side_pg) == CONNECTION_OK ? 0 : -1;
	}
	return sqlite3_open(t_path, &side_sq) == SQLITE_OK ? 0 : -1;
}

static int side_exec(const char *sql)
{
	if (t_pg) {
		PGresult *r = PQexec(side_pg, sql);
		int ok =
		    PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!ok)
			fprintf(stderr, "side_exec: %s", PQresultErrorMessage(r));
		PQclear(r);
		return ok ? 0 : -1;
	}
	return sqlite3_exec(side_sq, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static void side_close(void)
{
	PQfinish(side_pg);
	side_pg = NULL;
	sqlite3_close(side_sq);
	side_sq = NULL;
}

/*
 * Blocks the store's writes until side_unlock(): SQLite's write lock, or in
 * PostgreSQL a lock on messages that lets reads through but not inserts.
 */
static int side_lock(void)
{
	return side_exec(t_pg ? "BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE" : "BEGIN IMMEDIATE");
}

static int side_unlock(void)
{
	return side_exec("COMMIT");
}

/* The wake function sets a flag; tests then run the completions themselves. */
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static int wake_flag;
static int wake_calls;

static void t_wake(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wake_mu);
	wake_flag = 1;
	wake_calls++;
	pthread_cond_signal(&wake_cv);
	pthread_mutex_unlock(&wake_mu);
}

/* Runs completions until *counter reaches target; -1 after 20 s. */
static int pump(struct veil_store *s, const volatile int *counter, int target)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 20;
	while (*counter < target) {
		pthread_mutex_lock(&wake_mu);
		int rc = 0;
		while (!wake_flag && rc == 0)
			rc = pthread_cond_timedwait(&wake_cv, &wake_mu, &dl);
		wake_flag = 0;
		pthread_mutex_unlock(&wake_mu);
		veil_store_run_completions(s);
		if (rc != 0 && *counter < target)
			return -1;
	}
	return 0;
}

static void remove_db(void)
{
	char p[1100];
	if (t_pg) {
		if (side_open() == 0)
			(void)side_exec(
			    "DROP TABLE IF EXISTS veil_schema, messages, push_tokens, "
			    "used_tokens, links, link_pending, revocation_keys, identities, "
			    "sessions, invites, md_groups, md_devices, md_reflected, md_tx, "
			    "gw_accounts, safe_backups, blobs CASCADE; DROP SEQUENCE IF EXISTS "
			    "sessions_gen; "
			    "DROP FUNCTION IF EXISTS t_fail_fn CASCADE");
		side_close();
		return;
	}
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s", t_path, sfx[i]);
		unlink(p);
	}
}

/* limit 0: the defaults. share 0: the default share of limit. */
static int open_store_share(struct veil_store **s, uint32_t limit, uint32_t share)
{
	struct veil_store_opts o = {.path = t_path,
	                            .queue_limit = limit,
	                            .queue_sender_limit = share,
	                            .wake = t_wake,
	                            .wake_arg = NULL};
	return veil_store_open(s, &o);
}

/* One sender may fill the whole queue: these tests are about the queue itself. */
static int open_store(struct veil_store **s, uint32_t limit)
{
	return open_store_share(s, limit, limit);
}

static void make_id(uint8_t id[VEIL_ID_LEN], const char *s)
{
	memcpy(id, s, VEIL_ID_LEN);
}

/* --- callbacks --- */

struct put_res {
	volatile int done;
	int rc;
	uint64_t seq;
};

static volatile int puts_done;

static void put_cb(void *arg, int rc, uint64_t seq)
{
	struct put_res *r = arg;
	r->rc = rc;
	r->seq = seq;
	r->done = 1;
	puts_done++;
}

struct fetch_res {
	volatile int done;
	int rc;
	size_t n;
	struct veil_msg_rec recs[VEIL_STORE_MAX_FETCH];
	uint8_t data[VEIL_STORE_MAX_FETCH][64];
};

static void fetch_cb(void *arg, int rc, struct veil_msg_rec *msgs, size_t n)
{
	struct fetch_res *r = arg;
	r->rc = rc;
	r->n = n;
	for (size_t i = 0; i < n && i < VEIL_STORE_MAX_FETCH; i++) {
		r->recs[i] = msgs[i];
		size_t l = msgs[i].len < 64 ? msgs[i].len : 64;
		memcpy(r->data[i], msgs[i].data, l);
		r->recs[i].data = r->data[i];
	}
	r->done = 1;
}

struct done_res {
	volatile int done;
	int rc;
};

static void done_cb(void *arg, int rc)
{
	struct done_res *r = arg;
	r->rc = rc;
	r->done = 1;
}

/* Synchronous wrappers for the asynchronous calls. */
static int put_sync(struct veil_store *s, const char *rcpt, const char *sender, uint64_t msg_id,
                    uint64_t expires_ms, uint64_t *seq)
{
	struct veil_msg_rec m = {0};
	struct put_res r = {0};
	char body[32];
	int n = snprintf(body, sizeof(body), "%.8s/%.8s/%llu", sender, rcpt,
	                 (unsigned long long)msg_id);
	make_id(m.recipient, rcpt);
	make_id(m.sender, sender);
	m.msg_id = msg_id;
	m.expires_ms = expires_ms;
	m.flags = 1;
	m.data = (uint8_t *)body;
	m.len = (size_t)n;
	int rc = veil_store_msg_put(s, &m, put_cb, &r);
	if (rc != 0)
		return rc;
	if (pump(s, &r.done, 1) != 0)
		return VEIL_ETIMEOUT;
	if (seq)
		*seq = r.seq;
	return r.rc;
}

static int fetch_sync(struct veil_store *s, const char *rcpt, uint64_t after, size_t limit,
                      struct fetch_res *r)
{
	uint8_t id[VEIL_ID_LEN];
	make_id(id, rcpt);
	memset(r, 0, sizeof(*r));
	int rc = veil_store_msg_fetch(s, id, after, limit, fetch_cb, r);
	if (rc != 0)
		return rc;
	if (pump(s, &r->done, 1) != 0)
		return VEIL_ETIMEOUT;
	return r->rc;
}

static int ack_sync(struct veil_store *s, const char *rcpt, const char *sender, uint64_t msg_id)
{
	uint8_t r[VEIL_ID_LEN], snd[VEIL_ID_LEN];
	struct done_res d = {0};
	make_id(r, rcpt);
	make_id(snd, sender);
	int rc = veil_store_msg_ack(s, r, snd, msg_id, done_cb, &d);
	if (rc != 0)
		return rc;
	if (pump(s, &d.done, 1) != 0)
		return VEIL_ETIMEOUT;
	return d.rc;
}

static uint64_t count_of(struct veil_store *s, const char *rcpt)
{
	uint8_t id[VEIL_ID_LEN];
	uint64_t c = UINT64_MAX;
	make_id(id, rcpt);
	if (veil_store_msg_count(s, id, &c) != 0)
		return UINT64_MAX;
	return c;
}

/* --- tests --- */

static void test_open_close(void)
{
	struct veil_store *s = NULL;
	struct veil_store_opts bad = {.path = t_path};

	remove_db();
	veil_store_close(NULL);
	CHECK_RC(veil_store_open(&s, &bad), VEIL_EINVAL); /* no wake function */
	CHECK(s == NULL);
	CHECK_RC(open_store(&s, 0), 0);
	veil_store_close(s);

	/* The schema version is recorded, and a newer one is refused. */
	if (t_pg) {
		CHECK(side_open() == 0);
		PGresult *r = PQexec(side_pg, "SELECT version FROM veil_schema");
		int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		         strcmp(PQgetvalue(r, 0, 0), "6") == 0;
		PQclear(r);
		CHECK(ok);
		CHECK(side_exec("UPDATE veil_schema SET version = 99") == 0);
		side_close();
	} else {
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		CHECK(sqlite3_open(t_path, &db) == SQLITE_OK);
		CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
		CHECK(sqlite3_step(st) == SQLITE_ROW);
		int v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		CHECK(v ==
		      4); /* 2 added links, link_pending, revocation_keys; 3 invites; 4 logins */
		st = NULL;
		CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
		CHECK(sqlite3_step(st) == SQLITE_ROW);
		int wal = strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
		sqlite3_finalize(st);
		CHECK(wal);
		CHECK(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) == SQLITE_OK);
		sqlite3_close(db);
	}
	s = NULL;
	CHECK_RC(open_store(&s, 0), VEIL_EIO);
	CHECK(s == NULL);
	remove_db();
}

static void test_identity(void)
{
	struct veil_store *s = NULL;
	struct veil_identity_rec a, b, c;
	uint8_t pk1[VEIL_KEY_LEN], pk2[VEIL_KEY_LEN], unknown[VEIL_ID_LEN];

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	randombytes_buf(pk1, sizeof(pk1));
	randombytes_buf(pk2, sizeof(pk2));
	make_id(unknown, "NOTTHERE");

	uint64_t before = veil_now_ms();
	CHECK_RC(veil_store_identity_create(s, pk1, &a), 0);
	CHECK(veil_id_valid(a.id));
	CHECK(a.id[0] != '*');
	CHECK_MEM(a.pk, pk1, VEIL_KEY_LEN);
	CHECK(a.state == VEIL_IDENTITY_ACTIVE && a.feature_mask == 0);
	CHECK(a.created_ms >= before && a.created_ms <= veil_now_ms());

	CHECK_RC(veil_store_identity_get(s, a.id, &b), 0);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);

	/* The same key again: EEXIST with the existing record. */
	CHECK_RC(veil_store_identity_create(s, pk1, &c), VEIL_EEXIST);
	CHECK(memcmp(&a, &c, sizeof(a)) == 0);

	CHECK_RC(veil_store_identity_create(s, pk2, &c), 0);
	CHECK(memcmp(c.id, a.id, VEIL_ID_LEN) != 0);

	CHECK_RC(veil_store_identity_set_state(s, a.id, VEIL_IDENTITY_INVALID), 0);
	CHECK_RC(veil_store_identity_set_features(s, a.id, 0x8000000000000021ull), 0);
	CHECK_RC(veil_store_identity_get(s, a.id, &b), 0);
	CHECK(b.state == VEIL_IDENTITY_INVALID);
	CHECK(b.feature_mask == 0x8000000000000021ull);
	CHECK_RC(veil_store_identity_set_state(s, a.id, 7), VEIL_EINVAL);

	CHECK_RC(veil_store_identity_get(s, unknown, &b), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_identity_set_state(s, unknown, 0), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_identity_set_features(s, unknown, 1), VEIL_ENOTFOUND);

	/* Many identities: all IDs distinct and well-formed. */
	uint8_t ids[300][VEIL_ID_LEN];
	for (int i = 0; i < 300; i++) {
		uint8_t pk[VEIL_KEY_LEN];
		randombytes_buf(pk, sizeof(pk));
		CHECK_RC(veil_store_identity_create(s, pk, &c), 0);
		CHECK(veil_id_valid(c.id) && c.id[0] != '*');
		memcpy(ids[i], c.id, VEIL_ID_LEN);
		for (int j = 0; j < i; j++)
			CHECK(memcmp(ids[i], ids[j], VEIL_ID_LEN) != 0);
	}
	veil_store_close(s);

	/* Persisted. */
	s = NULL;
	CHECK_RC(open_store(&s, 0), 0);
	CHECK_RC(veil_store_identity_get(s, a.id, &b), 0);
	CHECK(b.state == VEIL_IDENTITY_INVALID && b.feature_mask == 0x8000000000000021ull);
	CHECK_RC(veil_store_identity_create(s, pk2, &b), VEIL_EEXIST);
	veil_store_close(s);
}

static void invite(struct veil_invite_rec *r, uint8_t tag, uint32_t uses, uint64_t expires_ms)
{
	memset(r, 0, sizeof *r);
	randombytes_buf(r->hash, sizeof r->hash);
	r->hash[0] = tag;
	r->uses = uses;
	r->created_ms = veil_now_ms();
	r->expires_ms = expires_ms;
}

/* Invite codes: uses, expiry, revocation, list; and the migration that adds them. */
static void test_invites(void)
{
	struct veil_store *s = NULL;
	struct veil_invite_rec one, multi, old, *list = NULL;
	uint8_t unknown[32];
	size_t n = 0;
	uint64_t now = veil_now_ms();

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	invite(&one, 0x01, 1, 0);
	invite(&multi, 0x02, 3, now + 86400000);
	invite(&old, 0x03, 5, now - 1);
	randombytes_buf(unknown, sizeof unknown);
	CHECK_RC(veil_store_invite_put(s, &one), 0);
	CHECK_RC(veil_store_invite_put(s, &multi), 0);
	CHECK_RC(veil_store_invite_put(s, &old), 0);
	CHECK_RC(veil_store_invite_put(s, &one), VEIL_EEXIST);
	struct veil_invite_rec zero = one;
	zero.uses = 0;
	CHECK_RC(veil_store_invite_put(s, &zero), VEIL_EINVAL);

	CHECK_RC(veil_store_invite_use(s, one.hash, now), 0);
	CHECK_RC(veil_store_invite_use(s, one.hash, now), VEIL_ELIMIT);
	/* A use given back (the sign-up failed after it) can be taken again, once. */
	CHECK_RC(veil_store_invite_unuse(s, one.hash), 0);
	CHECK_RC(veil_store_invite_use(s, one.hash, now), 0);
	CHECK_RC(veil_store_invite_use(s, one.hash, now), VEIL_ELIMIT);
	for (int i = 0; i < 3; i++)
		CHECK_RC(veil_store_invite_use(s, multi.hash, now), 0);
	CHECK_RC(veil_store_invite_use(s, multi.hash, now), VEIL_ELIMIT);
	CHECK_RC(veil_store_invite_use(s, old.hash, now), VEIL_ETIMEOUT);
	CHECK_RC(veil_store_invite_use(s, unknown, now), VEIL_ENOTFOUND);

	CHECK_RC(veil_store_invite_list(s, &list, &n), 0);
	int listed = n == 3 && list != NULL && memcmp(list[0].hash, one.hash, 32) == 0 &&
	             list[0].uses == 1 && list[0].used == 1 && list[0].expires_ms == 0 &&
	             list[1].uses == 3 && list[1].used == 3 &&
	             list[1].expires_ms == multi.expires_ms && !list[2].revoked &&
	             list[2].created_ms == old.created_ms && strlen(list[0].handle) == 12;
	char handle[16];
	snprintf(handle, sizeof handle, "%s", n == 3 && list != NULL ? list[2].handle : "");
	free(list);
	list = NULL;
	CHECK(listed);
	CHECK(strncmp(handle, "03", 2) == 0);

	/* Revoked: unknown from then on, and listed as revoked. */
	CHECK_RC(veil_store_invite_revoke(s, handle), 0);
	CHECK_RC(veil_store_invite_revoke(s, handle), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_invite_revoke(s, "000000000000"), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_invite_revoke(s, "03"), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_invite_use(s, old.hash, 0), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_invite_list(s, &list, &n), 0);
	int revoked = n == 3 && list[2].revoked && !list[0].revoked;
	free(list);
	list = NULL;
	CHECK(revoked);
	veil_store_close(s);

	/*
	 * A store of the schema before invites: the table and its version are
	 * taken back, and opening it migrates it again.
	 */
	CHECK(side_open() == 0);
	int down =
	    side_exec(t_pg ? "DROP TABLE invites, md_groups, md_devices, md_reflected, md_tx, "
	                     "gw_accounts, safe_backups, blobs; UPDATE veil_schema SET version = 3"
	                   : "DROP TABLE invites; DROP TABLE logins; PRAGMA user_version = 2");
	side_close();
	CHECK(down == 0);
	s = NULL;
	CHECK_RC(open_store(&s, 0), 0);
	CHECK_RC(veil_store_invite_list(s, &list, &n), 0);
	CHECK(n == 0 && list == NULL);
	CHECK_RC(veil_store_invite_put(s, &one), 0);
	CHECK_RC(veil_store_invite_use(s, one.hash, now), 0);
	veil_store_close(s);
}

static void test_push_token(void)
{
	struct veil_store *s = NULL;
	struct veil_identity_rec a;
	uint8_t pk[VEIL_KEY_LEN], tok[300], got[VEIL_STORE_MAX_PUSH_TOKEN], type;
	uint8_t unknown[VEIL_ID_LEN];
	size_t len;

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	randombytes_buf(pk, sizeof(pk));
	randombytes_buf(tok, sizeof(tok));
	make_id(unknown, "NOTTHERE");
	CHECK_RC(veil_store_identity_create(s, pk, &a), 0);

	CHECK_RC(veil_store_push_token_get(s, a.id, &type, got, &len), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_push_token_set(s, a.id, 1, tok, 40), 0);
	CHECK_RC(veil_store_push_token_get(s, a.id, &type, got, &len), 0);
	CHECK(type == 1 && len == 40);
	CHECK_MEM(got, tok, 40);
	/* A new token replaces the old one. */
	CHECK_RC(veil_store_push_token_set(s, a.id, 3, tok + 5, 255), 0);
	CHECK_RC(veil_store_push_token_get(s, a.id, &type, got, &len), 0);
	CHECK(type == 3 && len == 255);
	CHECK_MEM(got, tok + 5, 255);
	CHECK_RC(veil_store_push_token_set(s, a.id, 3, tok, 256), VEIL_ELIMIT);
	CHECK_RC(veil_store_push_token_set(s, unknown, 1, tok, 10), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_push_token_set(s, a.id, 0, NULL, 0), 0);
	CHECK_RC(veil_store_push_token_get(s, a.id, &type, got, &len), VEIL_ENOTFOUND);
	veil_store_close(s);
}

static void test_token_replay(void)
{
	struct veil_store *s = NULL;
	uint8_t t1[48], t2[48];
	uint64_t later = veil_now_ms() + 3600 * 1000;

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	randombytes_buf(t1, sizeof(t1));
	memcpy(t2, t1, sizeof(t2));
	t2[47] ^= 1;
	CHECK_RC(veil_store_token_use(s, t1, sizeof(t1), later), 0);
	CHECK_RC(veil_store_token_use(s, t1, sizeof(t1), later), VEIL_EREPLAY);
	CHECK_RC(veil_store_token_use(s, t2, sizeof(t2), later), 0);
	CHECK_RC(veil_store_token_use(s, t2, sizeof(t2), later + 5), VEIL_EREPLAY);
	CHECK_RC(veil_store_token_use(s, t1, 0, later), VEIL_EINVAL);
	CHECK_RC(veil_store_token_use(s, t1, 10, veil_now_ms() - 1), VEIL_ETIMEOUT);
	veil_store_close(s);
	s = NULL;
	CHECK_RC(open_store(&s, 0), 0);
	CHECK_RC(veil_store_token_use(s, t1, sizeof(t1), later), VEIL_EREPLAY);
	veil_store_close(s);
}

#define PT_THREADS 4
#define PT_PER 500
static const char *const pt_rcpt[3] = {"RCPT0001", "RCPT0002", "RCPT0003"};
static struct put_res pt_res[PT_THREADS][PT_PER];

struct pt_arg {
	struct veil_store *s;
	int t;
	int fails;
};

static void *pt_main(void *p)
{
	struct pt_arg *a = p;
	char sender[9];
	uint8_t body[40];
	snprintf(sender, sizeof(sender), "SEND%04d", a->t);
	for (int i = 0; i < PT_PER; i++) {
		struct veil_msg_rec m = {0};
		make_id(m.recipient, pt_rcpt[i % 3]);
		make_id(m.sender, sender);
		m.msg_id = (uint64_t)i * 1000003u + 17;
		memset(body, (int)(a->t * 31 + i), sizeof(body));
		m.data = body;
		m.len = 1 + (size_t)i % sizeof(body);
		if (veil_store_msg_put(a->s, &m, put_cb, &pt_res[a->t][i]) != 0)
			a->fails++;
	}
	return NULL;
}

static void test_put_order_threads(void)
{
	struct veil_store *s = NULL;
	pthread_t th[PT_THREADS];
	struct pt_arg args[PT_THREADS];

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	memset(pt_res, 0, sizeof(pt_res));
	puts_done = 0;
	for (int t = 0; t < PT_THREADS; t++) {
		args[t] = (struct pt_arg){.s = s, .t = t};
		CHECK(pthread_create(&th[t], NULL, pt_main, &args[t]) == 0);
	}
	int pr = pump(s, &puts_done, PT_THREADS * PT_PER);
	for (int t = 0; t < PT_THREADS; t++)
		pthread_join(th[t], NULL);
	CHECK(pr == 0);
	for (int t = 0; t < PT_THREADS; t++) {
		CHECK(args[t].fails == 0);
		for (int i = 0; i < PT_PER; i++) {
			CHECK(pt_res[t][i].done && pt_res[t][i].rc == 0);
			/* Each producer's puts are queued in order, so seqs follow it. */
			if (i > 0)
				CHECK(pt_res[t][i].seq > pt_res[t][i - 1].seq);
		}
	}

	/* Page through each recipient's queue: seq order, every message once. */
	static struct fetch_res fr;
	for (int r = 0; r < 3; r++) {
		uint64_t after = 0;
		size_t total = 0;
		int64_t last_i[PT_THREADS];
		for (int t = 0; t < PT_THREADS; t++)
			last_i[t] = -1;
		for (;;) {
			CHECK_RC(fetch_sync(s, pt_rcpt[r], after, 100, &fr), 0);
			if (fr.n == 0)
				break;
			CHECK(fr.n <= 100);
			for (size_t k = 0; k < fr.n; k++) {
				struct veil_msg_rec *m = &fr.recs[k];
				CHECK(m->seq > after);
				after = m->seq;
				CHECK_MEM(m->recipient, pt_rcpt[r], VEIL_ID_LEN);
				int t = (m->sender[4] - '0') * 1000 + (m->sender[5] - '0') * 100 +
				        (m->sender[6] - '0') * 10 + (m->sender[7] - '0');
				CHECK(t >= 0 && t < PT_THREADS);
				CHECK((m->msg_id - 17) % 1000003u == 0);
				int i = (int)((m->msg_id - 17) / 1000003u);
				CHECK(i >= 0 && i < PT_PER && i % 3 == r);
				CHECK(i > last_i[t]);
				last_i[t] = i;
				CHECK(pt_res[t][i].seq == m->seq);
				CHECK(m->len == 1 + (size_t)i % 40);
				CHECK(m->data[0] == (uint8_t)(t * 31 + i) && m->flags == 0);
				total++;
			}
		}
		size_t want = 0;
		for (int i = 0; i < PT_PER; i++)
			want += i % 3 == r;
		CHECK(total == want * PT_THREADS);
		CHECK(count_of(s, pt_rcpt[r]) == want * PT_THREADS);
	}
	veil_store_close(s);
}

static void test_fetch_ack(void)
{
	struct veil_store *s = NULL;
	static struct fetch_res fr;
	uint64_t seqs[25];

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	for (int i = 0; i < 25; i++)
		CHECK_RC(put_sync(s, "ALICE001", i % 2 ? "BOBBY001" : "CAROL001", (uint64_t)i + 1,
		                  0, &seqs[i]),
		         0);
	CHECK_RC(put_sync(s, "OTHER001", "BOBBY001", 1, 0, NULL), 0);

	uint64_t after = 0;
	size_t pages[4], np = 0, idx = 0;
	for (;;) {
		CHECK_RC(fetch_sync(s, "ALICE001", after, 10, &fr), 0);
		CHECK(np < 4);
		pages[np++] = fr.n;
		if (fr.n == 0)
			break;
		for (size_t k = 0; k < fr.n; k++, idx++) {
			CHECK(fr.recs[k].seq == seqs[idx]);
			CHECK(fr.recs[k].msg_id == idx + 1);
			CHECK_MEM(fr.recs[k].sender, idx % 2 ? "BOBBY001" : "CAROL001", 8);
			CHECK(fr.recs[k].flags == 1 && fr.recs[k].expires_ms == 0);
			char want[32];
			int n = snprintf(want, sizeof(want), "%.8s/ALICE001/%zu",
			                 idx % 2 ? "BOBBY001" : "CAROL001", idx + 1);
			CHECK(fr.recs[k].len == (size_t)n);
			CHECK_MEM(fr.recs[k].data, want, (size_t)n);
		}
		after = fr.recs[fr.n - 1].seq;
	}
	CHECK(np == 4 && pages[0] == 10 && pages[1] == 10 && pages[2] == 5 && pages[3] == 0);

	/* limit 0 means the cap. */
	CHECK_RC(fetch_sync(s, "ALICE001", 0, 0, &fr), 0);
	CHECK(fr.n == 25);

	/* Ack deletes exactly the named message. */
	CHECK_RC(ack_sync(s, "ALICE001", "CAROL001", 1), 0);
	CHECK_RC(ack_sync(s, "ALICE001", "CAROL001", 1), VEIL_ENOTFOUND);
	CHECK_RC(ack_sync(s, "ALICE001", "CAROL001", 2), VEIL_ENOTFOUND); /* BOBBY sent 2 */
	CHECK_RC(ack_sync(s, "ALICE001", "BOBBY001", 2), 0);
	CHECK_RC(fetch_sync(s, "ALICE001", 0, 100, &fr), 0);
	CHECK(fr.n == 23 && fr.recs[0].msg_id == 3);
	CHECK(count_of(s, "ALICE001") == 23);
	CHECK(count_of(s, "OTHER001") == 1);
	CHECK(count_of(s, "NOBODY01") == 0);

	/* An ack with a NULL callback still happens. */
	uint8_t r[8], snd[8];
	make_id(r, "OTHER001");
	make_id(snd, "BOBBY001");
	CHECK_RC(veil_store_msg_ack(s, r, snd, 1, NULL, NULL), 0);
	veil_store_close(s);
	s = NULL;
	CHECK_RC(open_store(&s, 0), 0);
	CHECK(count_of(s, "OTHER001") == 0);
	veil_store_close(s);
}

static void test_duplicate(void)
{
	struct veil_store *s = NULL;
	uint64_t seq1 = 0, seq2 = 0;

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 42, 0, &seq1), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 42, 0, &seq2), VEIL_EEXIST);
	CHECK(seq1 != 0 && seq1 == seq2);
	/* Another sender or recipient with the same msg_id is not a duplicate. */
	CHECK_RC(put_sync(s, "ALICE001", "CAROL001", 42, 0, &seq2), 0);
	CHECK(seq2 > seq1);
	CHECK_RC(put_sync(s, "DAVID001", "BOBBY001", 42, 0, NULL), 0);
	CHECK(count_of(s, "ALICE001") == 2);

	/* Two copies queued together land in one batch: one row, same seq. */
	struct veil_msg_rec m = {0};
	struct put_res a = {0}, b = {0};
	make_id(m.recipient, "ALICE001");
	make_id(m.sender, "EVE00001");
	m.msg_id = 7;
	m.data = (uint8_t *)"x";
	m.len = 1;
	puts_done = 0;
	CHECK_RC(veil_store_msg_put(s, &m, put_cb, &a), 0);
	CHECK_RC(veil_store_msg_put(s, &m, put_cb, &b), 0);
	CHECK(pump(s, &puts_done, 2) == 0);
	CHECK(a.rc == 0 && b.rc == VEIL_EEXIST && a.seq == b.seq);
	CHECK(count_of(s, "ALICE001") == 3);
	veil_store_close(s);
}

static void test_queue_limit(void)
{
	struct veil_store *s = NULL;
	uint8_t big[VEIL_STORE_MAX_BOX + 1];
	struct put_res r = {0};

	remove_db();
	CHECK_RC(open_store(&s, 5), 0);
	for (int i = 0; i < 5; i++)
		CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", (uint64_t)i, 0, NULL), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 5, 0, NULL), VEIL_ELIMIT);
	CHECK_RC(put_sync(s, "ALICE001", "CAROL001", 5, 0, NULL), VEIL_ELIMIT);
	/* The limit is per recipient. */
	CHECK_RC(put_sync(s, "OTHER001", "BOBBY001", 5, 0, NULL), 0);
	/* A resend of a queued message is still EEXIST, not ELIMIT. */
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 4, 0, NULL), VEIL_EEXIST);
	CHECK_RC(ack_sync(s, "ALICE001", "BOBBY001", 0), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 5, 0, NULL), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 6, 0, NULL), VEIL_ELIMIT);
	CHECK(count_of(s, "ALICE001") == 5);

	/* Expired messages make room when the queue is full. */
	uint64_t past = veil_now_ms() - 1000;
	for (int i = 0; i < 5; i++)
		CHECK_RC(put_sync(s, "FULL0001", "BOBBY001", (uint64_t)i, i < 2 ? past : 0, NULL),
		         0);
	CHECK_RC(put_sync(s, "FULL0001", "BOBBY001", 10, 0, NULL), 0);
	CHECK_RC(put_sync(s, "FULL0001", "BOBBY001", 11, 0, NULL), 0);
	CHECK_RC(put_sync(s, "FULL0001", "BOBBY001", 12, 0, NULL), VEIL_ELIMIT);

	/* Too large: refused at once, the callback never runs. */
	struct veil_msg_rec m = {0};
	make_id(m.recipient, "OTHER001");
	make_id(m.sender, "BOBBY001");
	memset(big, 0, sizeof(big));
	m.data = big;
	m.len = sizeof(big);
	CHECK_RC(veil_store_msg_put(s, &m, put_cb, &r), VEIL_ELIMIT);
	m.len = VEIL_STORE_MAX_BOX;
	m.msg_id = 99;
	puts_done = 0;
	CHECK_RC(veil_store_msg_put(s, &m, put_cb, &r), 0);
	CHECK(pump(s, &puts_done, 1) == 0);
	CHECK(r.rc == 0);
	veil_store_close(s);

	/* After a reopen the limit is still counted from the table. */
	s = NULL;
	CHECK_RC(open_store(&s, 5), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 7, 0, NULL), VEIL_ELIMIT);
	veil_store_close(s);
}

/*
 * One sender fills its share of a recipient's queue: its next put is
 * refused with VEIL_EQUOTA (not VEIL_ELIMIT) while other senders still get
 * through, and an ack or an expiry frees the share again.
 */
static void test_sender_share(void)
{
	struct veil_store *s = NULL;
	static struct put_res res[1001];

	remove_db();
	CHECK_RC(open_store_share(&s, 10, 3), 0);
	for (int i = 0; i < 3; i++)
		CHECK_RC(put_sync(s, "RCPT0001", "SENDA001", (uint64_t)i, 0, NULL), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDA001", 3, 0, NULL), VEIL_EQUOTA);
	/* A resend of a queued message is still acked, not refused. */
	CHECK_RC(put_sync(s, "RCPT0001", "SENDA001", 2, 0, NULL), VEIL_EEXIST);
	/* Another sender still gets through, up to its own share. */
	for (int i = 0; i < 3; i++)
		CHECK_RC(put_sync(s, "RCPT0001", "SENDB001", (uint64_t)i, 0, NULL), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDB001", 3, 0, NULL), VEIL_EQUOTA);
	/* The share is per recipient. */
	CHECK_RC(put_sync(s, "RCPT0002", "SENDA001", 3, 0, NULL), 0);
	/* An ack frees one place in the share, and only one. */
	CHECK_RC(ack_sync(s, "RCPT0001", "SENDA001", 0), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDA001", 3, 0, NULL), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDA001", 4, 0, NULL), VEIL_EQUOTA);
	CHECK(count_of(s, "RCPT0001") == 6);

	/* Expired messages free the share when it is used up. */
	uint64_t past = veil_now_ms() - 1000;
	CHECK_RC(put_sync(s, "RCPT0001", "SENDC001", 0, past, NULL), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDC001", 1, 0, NULL), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDC001", 2, 0, NULL), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDC001", 3, 0, NULL), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDC001", 4, 0, NULL), VEIL_EQUOTA);
	CHECK(count_of(s, "RCPT0001") == 9);

	/* The whole queue is still limited: a full queue is VEIL_ELIMIT for everyone. */
	CHECK_RC(put_sync(s, "RCPT0001", "SENDD001", 0, 0, NULL), 0);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDE001", 0, 0, NULL), VEIL_ELIMIT);
	CHECK_RC(put_sync(s, "RCPT0001", "SENDA001", 5, 0, NULL), VEIL_EQUOTA);

	/* Within one batch (group commit) the share is counted exactly too. */
	static const char *const order[] = {"SENDA001", "SENDB001", "SENDA001", "SENDB001",
	                                    "SENDA001", "SENDA001", "SENDA001"};
	const int n = (int)(sizeof(order) / sizeof(order[0]));
	CHECK(side_open() == 0);
	CHECK(side_lock() == 0);
	memset(res, 0, sizeof(res));
	puts_done = 0;
	for (int i = 0; i < n; i++) {
		struct veil_msg_rec m = {0};
		make_id(m.recipient, "RCPT0003");
		make_id(m.sender, order[i]);
		m.msg_id = (uint64_t)(100 + i);
		m.data = (uint8_t *)"x";
		m.len = 1;
		CHECK_RC(veil_store_msg_put(s, &m, put_cb, &res[i]), 0);
	}
	usleep(50 * 1000);
	CHECK(side_unlock() == 0);
	side_close();
	CHECK(pump(s, &puts_done, n) == 0);
	for (int i = 0; i < n; i++)
		CHECK(res[i].rc == (i < 5 ? 0 : VEIL_EQUOTA));
	CHECK(count_of(s, "RCPT0003") == 5);
	veil_store_close(s);

	/* After a reopen the share is counted from the table. */
	s = NULL;
	CHECK_RC(open_store_share(&s, 10, 3), 0);
	CHECK_RC(put_sync(s, "RCPT0003", "SENDA001", 200, 0, NULL), VEIL_EQUOTA);
	CHECK_RC(put_sync(s, "RCPT0003", "SENDC001", 200, 0, NULL), 0);
	veil_store_close(s);

	/* The default share is a tenth of the default queue: 1000 messages. */
	remove_db();
	s = NULL;
	CHECK_RC(open_store_share(&s, 0, 0), 0);
	memset(res, 0, sizeof(res));
	puts_done = 0;
	for (int i = 0; i < 1001; i++) {
		struct veil_msg_rec m = {0};
		make_id(m.recipient, "RCPT0001");
		make_id(m.sender, "SENDA001");
		m.msg_id = (uint64_t)i;
		m.data = (uint8_t *)"x";
		m.len = 1;
		CHECK_RC(veil_store_msg_put(s, &m, put_cb, &res[i]), 0);
	}
	CHECK(pump(s, &puts_done, 1001) == 0);
	for (int i = 0; i < 1001; i++)
		CHECK(res[i].rc == (i < 1000 ? 0 : VEIL_EQUOTA));
	CHECK_RC(put_sync(s, "RCPT0001", "SENDB001", 0, 0, NULL), 0);
	veil_store_close(s);
}

static void test_expire(void)
{
	struct veil_store *s = NULL;
	static struct fetch_res fr;
	uint64_t now = veil_now_ms();

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 1, now - 5000, NULL), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 2, 0, NULL), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 3, now - 1, NULL), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 4, now + 3600000, NULL), 0);
	CHECK_RC(put_sync(s, "OTHER001", "BOBBY001", 1, now - 5000, NULL), 0);

	CHECK_RC(fetch_sync(s, "ALICE001", 0, 10, &fr), 0);
	CHECK(fr.n == 2 && fr.recs[0].msg_id == 2 && fr.recs[1].msg_id == 4);
	CHECK(fr.recs[1].expires_ms == now + 3600000);
	CHECK_RC(fetch_sync(s, "OTHER001", 0, 10, &fr), 0);
	CHECK(fr.n == 0);
	CHECK(count_of(s, "ALICE001") == 2);

	CHECK_RC(veil_store_msg_expire(s, now), 3);
	CHECK_RC(veil_store_msg_expire(s, now), 0);
	/* The rows are gone: acking one finds nothing. */
	CHECK_RC(ack_sync(s, "ALICE001", "BOBBY001", 1), VEIL_ENOTFOUND);
	CHECK_RC(veil_store_msg_expire(s, now + 3600000), 1);
	CHECK_RC(fetch_sync(s, "ALICE001", 0, 10, &fr), 0);
	CHECK(fr.n == 1 && fr.recs[0].msg_id == 2);
	veil_store_close(s);
}

static int close_rc_bad;
static volatile int close_done;

static void close_put_cb(void *arg, int rc, uint64_t seq)
{
	(void)arg;
	if (rc != 0 || seq == 0)
		close_rc_bad++;
	close_done++;
}

static void test_close_durable(void)
{
	struct veil_store *s = NULL;
	static struct fetch_res fr;
	const int n = 1000;

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	close_done = 0;
	close_rc_bad = 0;
	for (int i = 0; i < n; i++) {
		struct veil_msg_rec m = {0};
		uint8_t body[16];
		make_id(m.recipient, i % 2 ? "ALICE001" : "BOBBY001");
		make_id(m.sender, "CAROL001");
		m.msg_id = (uint64_t)i;
		memset(body, i & 0xff, sizeof(body));
		m.data = body;
		m.len = sizeof(body);
		CHECK_RC(veil_store_msg_put(s, &m, close_put_cb, NULL), 0);
	}
	/* Close at once: it finishes the queue and runs every callback here. */
	veil_store_close(s);
	CHECK(close_done == n && close_rc_bad == 0);

	s = NULL;
	CHECK_RC(open_store(&s, 0), 0);
	CHECK(count_of(s, "ALICE001") == (uint64_t)n / 2);
	CHECK(count_of(s, "BOBBY001") == (uint64_t)n / 2);
	uint64_t after = 0;
	int seen = 0;
	for (;;) {
		CHECK_RC(fetch_sync(s, "ALICE001", after, 0, &fr), 0);
		if (fr.n == 0)
			break;
		for (size_t k = 0; k < fr.n; k++) {
			CHECK(fr.recs[k].msg_id == (uint64_t)(2 * seen + 1));
			CHECK(fr.recs[k].data[15] == (uint8_t)((2 * seen + 1) & 0xff));
			seen++;
		}
		after = fr.recs[fr.n - 1].seq;
	}
	CHECK(seen == n / 2);
	veil_store_close(s);
}

static void test_group_commit(void)
{
	struct veil_store *s = NULL;
	struct veil_store_stats st0, st1;
	const int n = 500;
	static struct put_res res[500];

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	/*
	 * Hold the database's write lock from another connection so the store
	 * thread stalls on its first BEGIN while all N puts queue up behind it.
	 */
	CHECK(side_open() == 0);
	CHECK(side_lock() == 0);
	veil_store_stats(s, &st0);
	memset(res, 0, sizeof(res));
	puts_done = 0;
	for (int i = 0; i < n; i++) {
		struct veil_msg_rec m = {0};
		make_id(m.recipient, i % 7 ? "ALICE001" : "BOBBY001");
		make_id(m.sender, "CAROL001");
		m.msg_id = (uint64_t)i;
		m.data = (uint8_t *)"hello";
		m.len = 5;
		CHECK_RC(veil_store_msg_put(s, &m, put_cb, &res[i]), 0);
	}
	usleep(100 * 1000);
	veil_store_run_completions(s);
	CHECK(puts_done == 0); /* nothing is acked before it is committed */
	CHECK(side_unlock() == 0);
	side_close();
	CHECK(pump(s, &puts_done, n) == 0);
	veil_store_stats(s, &st1);
	for (int i = 0; i < n; i++)
		CHECK(res[i].rc == 0 && res[i].seq > 0);
	uint64_t commits = st1.commits - st0.commits;
	fprintf(stderr, "group commit: %d puts in %llu commits, largest batch %llu\n", n,
	        (unsigned long long)commits, (unsigned long long)st1.max_batch);
	CHECK(commits >= 1 && commits <= 3);
	CHECK(st1.max_batch * 3 >= (uint64_t)n);
	CHECK(st1.jobs - st0.jobs == (uint64_t)n);
	veil_store_close(s);
}

/*
 * One write in a batch fails (a trigger refuses it): the batch is rolled
 * back and every write runs again alone, so only that one fails.
 */
static void test_batch_failure(void)
{
	struct veil_store *s = NULL;
	struct veil_store_stats st0, st1;
	static struct put_res res[20];
	static struct fetch_res fr;

	remove_db();
	CHECK_RC(open_store(&s, 0), 0);
	CHECK(side_open() == 0);
	CHECK(side_exec(t_pg ? "CREATE FUNCTION t_fail_fn() RETURNS trigger LANGUAGE plpgsql AS "
	                       "$$BEGIN IF NEW.msg_id = 13 THEN RAISE EXCEPTION 'refused'; END IF; "
	                       "RETURN NEW; END$$; CREATE TRIGGER t_fail BEFORE INSERT ON messages "
	                       "FOR EACH ROW EXECUTE FUNCTION t_fail_fn()"
	                     : "CREATE TRIGGER t_fail BEFORE INSERT ON messages WHEN NEW.msg_id = "
	                       "13 BEGIN SELECT RAISE(ABORT, 'refused'); END") == 0);
	CHECK(side_lock() == 0);
	veil_store_stats(s, &st0);
	memset(res, 0, sizeof(res));
	puts_done = 0;
	for (int i = 0; i < 20; i++) {
		struct veil_msg_rec m = {0};
		make_id(m.recipient, "ALICE001");
		make_id(m.sender, "BOBBY001");
		m.msg_id = (uint64_t)i;
		m.data = (uint8_t *)"x";
		m.len = 1;
		CHECK_RC(veil_store_msg_put(s, &m, put_cb, &res[i]), 0);
	}
	usleep(50 * 1000);
	CHECK(side_unlock() == 0);
	CHECK(pump(s, &puts_done, 20) == 0);
	veil_store_stats(s, &st1);
	for (int i = 0; i < 20; i++) {
		if (i == 13)
			CHECK(res[i].rc == VEIL_EIO && res[i].seq == 0);
		else
			CHECK(res[i].rc == 0 && res[i].seq > 0);
	}
	/* At least 19 lone commits after the failed batch. */
	CHECK(st1.commits - st0.commits >= 19);
	CHECK_RC(fetch_sync(s, "ALICE001", 0, 0, &fr), 0);
	CHECK(fr.n == 19);
	for (size_t k = 0; k < fr.n; k++) {
		CHECK(fr.recs[k].msg_id != 13);
		CHECK(fr.recs[k].seq == res[fr.recs[k].msg_id].seq);
	}
	CHECK(count_of(s, "ALICE001") == 19);
	/* The cached count was rebuilt: the limit still counts right. */
	CHECK(side_exec(t_pg ? "DROP TRIGGER t_fail ON messages" : "DROP TRIGGER t_fail") == 0);
	side_close();
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 13, 0, NULL), 0);
	CHECK(count_of(s, "ALICE001") == 20);
	veil_store_close(s);
}

/* --- rules inside one batch (PostgreSQL sends a batch's writes together) --- */

static struct put_res bq_put[16];
static struct done_res bq_ack[16];
static int bq_n_put, bq_n_ack;

static int bq_queue_put(struct veil_store *s, const char *rcpt, const char *sender, uint64_t msg_id,
                        uint64_t expires_ms)
{
	struct veil_msg_rec m = {0};
	make_id(m.recipient, rcpt);
	make_id(m.sender, sender);
	m.msg_id = msg_id;
	m.expires_ms = expires_ms;
	m.data = (uint8_t *)"x";
	m.len = 1;
	bq_put[bq_n_put] = (struct put_res){0};
	return veil_store_msg_put(s, &m, put_cb, &bq_put[bq_n_put++]);
}

static int bq_queue_ack(struct veil_store *s, const char *rcpt, const char *sender, uint64_t msg_id)
{
	uint8_t r[VEIL_ID_LEN], snd[VEIL_ID_LEN];
	make_id(r, rcpt);
	make_id(snd, sender);
	bq_ack[bq_n_ack] = (struct done_res){0};
	return veil_store_msg_ack(s, r, snd, msg_id, done_cb, &bq_ack[bq_n_ack++]);
}

/*
 * Holds the store's writes (side_lock) behind one put of its own, so that
 * what the test queues next lands in one batch; bq_end() lets it through
 * and waits for every callback. Which jobs share a batch does not change
 * any outcome the tests check, only which path they take.
 */
static int bq_begin(struct veil_store *s)
{
	static uint64_t hold_id;
	bq_n_put = bq_n_ack = 0;
	puts_done = 0;
	if (side_open() != 0 || side_lock() != 0 ||
	    bq_queue_put(s, "HOLD0001", "HOLD0001", ++hold_id, 0) != 0)
		return -1;
	usleep(200 * 1000);
	return 0;
}

static int bq_end(struct veil_store *s)
{
	int rc = side_unlock();
	side_close();
	if (rc != 0 || pump(s, &puts_done, bq_n_put) != 0)
		return -1;
	for (int i = 0; i < bq_n_ack; i++) {
		if (!bq_ack[i].done && pump(s, &bq_ack[i].done, 1) != 0)
			return -1;
	}
	return 0;
}

/*
 * Queue limit 5, share 3, in one batch: a resend of a message queued
 * earlier in the batch is VEIL_EEXIST with its seq, the share and the limit
 * count what the batch stored before, a resend at the limit is still
 * VEIL_EEXIST, an ack frees a place for the puts after it; then a batch of
 * puts to the full queue is refused in order.
 */
static void test_batch_rules(void)
{
	struct veil_store *s = NULL;

	remove_db();
	CHECK_RC(open_store_share(&s, 5, 3), 0);
	CHECK(bq_begin(s) == 0);
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 1, 0), 0); /* p1 */
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 2, 0), 0); /* p2 */
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 1, 0), 0); /* p3: resend of p1 */
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 3, 0), 0); /* p4 */
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 4, 0), 0); /* p5: share used up */
	CHECK_RC(bq_queue_put(s, "ALICE001", "CAROL001", 1, 0), 0); /* p6 */
	CHECK_RC(bq_queue_put(s, "ALICE001", "DAVID001", 1, 0), 0); /* p7: the fifth */
	CHECK_RC(bq_queue_put(s, "ALICE001", "EVE00001", 1, 0), 0); /* p8: full */
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 3, 0), 0); /* p9: resend when full */
	CHECK_RC(bq_queue_ack(s, "ALICE001", "BOBBY001", 1), 0);    /* a0 */
	CHECK_RC(bq_queue_ack(s, "ALICE001", "BOBBY001", 9), 0);    /* a1: not queued */
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 5, 0), 0); /* p10: a0 made room */
	CHECK_RC(bq_queue_put(s, "OTHER001", "BOBBY001", 1, 0), 0); /* p11 */
	CHECK(bq_end(s) == 0);
	CHECK(bq_put[0].rc == 0);
	CHECK(bq_put[1].rc == 0 && bq_put[2].rc == 0 && bq_put[2].seq > bq_put[1].seq);
	CHECK(bq_put[3].rc == VEIL_EEXIST && bq_put[3].seq == bq_put[1].seq);
	CHECK(bq_put[4].rc == 0 && bq_put[4].seq > bq_put[2].seq);
	CHECK(bq_put[5].rc == VEIL_EQUOTA && bq_put[5].seq == 0);
	CHECK(bq_put[6].rc == 0 && bq_put[7].rc == 0);
	CHECK(bq_put[8].rc == VEIL_ELIMIT && bq_put[8].seq == 0);
	CHECK(bq_put[9].rc == VEIL_EEXIST && bq_put[9].seq == bq_put[4].seq);
	CHECK(bq_ack[0].rc == 0 && bq_ack[1].rc == VEIL_ENOTFOUND);
	CHECK(bq_put[10].rc == 0 && bq_put[10].seq > bq_put[7].seq);
	CHECK(bq_put[11].rc == 0);
	CHECK(count_of(s, "ALICE001") == 5);
	uint64_t seq3 = bq_put[4].seq;

	/* Only refused puts to the full queue: each is refused as alone. */
	CHECK(bq_begin(s) == 0);
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 3, 0), 0); /* p1: resend */
	CHECK_RC(bq_queue_put(s, "ALICE001", "FRANK001", 1, 0), 0); /* p2: full */
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 6, 0), 0); /* p3: share */
	CHECK_RC(bq_queue_put(s, "OTHER001", "BOBBY001", 2, 0), 0); /* p4 */
	CHECK(bq_end(s) == 0);
	CHECK(bq_put[1].rc == VEIL_EEXIST && bq_put[1].seq == seq3);
	CHECK(bq_put[2].rc == VEIL_ELIMIT && bq_put[3].rc == VEIL_EQUOTA);
	CHECK(bq_put[4].rc == 0);
	CHECK(count_of(s, "ALICE001") == 5);
	veil_store_close(s);
}

/*
 * A put refused while the queue is full of expired rows is stored after
 * the purge, before the sender's next put that an ack in the same batch
 * made room for: each sender's order holds as if the writes ran alone.
 */
static void test_batch_order(void)
{
	struct veil_store *s = NULL;
	uint64_t past = veil_now_ms() - 1000;

	remove_db();
	CHECK_RC(open_store(&s, 3), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 1, past, NULL), 0);
	CHECK_RC(put_sync(s, "ALICE001", "CAROL001", 1, 0, NULL), 0);
	CHECK_RC(put_sync(s, "ALICE001", "CAROL001", 2, 0, NULL), 0);
	CHECK(bq_begin(s) == 0);
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 10, 0), 0); /* full until the purge */
	CHECK_RC(bq_queue_ack(s, "ALICE001", "CAROL001", 1), 0);
	CHECK_RC(bq_queue_put(s, "ALICE001", "BOBBY001", 11, 0), 0);
	CHECK(bq_end(s) == 0);
	CHECK(bq_put[1].rc == 0 && bq_ack[0].rc == 0 && bq_put[2].rc == 0);
	CHECK(bq_put[1].seq > 0 && bq_put[2].seq > bq_put[1].seq);
	CHECK(count_of(s, "ALICE001") == 3);
	veil_store_close(s);
}

/*
 * A batch rolled back after an ack had run in it: the ack runs again
 * alone, and the queue's limit is still counted right afterwards (the
 * rolled-back ack must not count twice).
 */
static void test_batch_rollback_limit(void)
{
	struct veil_store *s = NULL;

	remove_db();
	CHECK_RC(open_store(&s, 3), 0);
	for (uint64_t i = 1; i <= 3; i++)
		CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", i, 0, NULL), 0);
	CHECK(side_open() == 0);
	CHECK(side_exec(t_pg ? "CREATE FUNCTION t_fail_fn() RETURNS trigger LANGUAGE plpgsql AS "
	                       "$$BEGIN IF NEW.msg_id = 13 THEN RAISE EXCEPTION 'refused'; END IF; "
	                       "RETURN NEW; END$$; CREATE TRIGGER t_fail BEFORE INSERT ON messages "
	                       "FOR EACH ROW EXECUTE FUNCTION t_fail_fn()"
	                     : "CREATE TRIGGER t_fail BEFORE INSERT ON messages WHEN NEW.msg_id = "
	                       "13 BEGIN SELECT RAISE(ABORT, 'refused'); END") == 0);
	side_close();
	CHECK(bq_begin(s) == 0);
	CHECK_RC(bq_queue_ack(s, "ALICE001", "BOBBY001", 1), 0);
	CHECK_RC(bq_queue_put(s, "OTHER001", "BOBBY001", 13, 0), 0);
	CHECK(bq_end(s) == 0);
	CHECK(bq_ack[0].rc == 0 && bq_put[1].rc == VEIL_EIO);
	CHECK(side_open() == 0);
	CHECK(side_exec(t_pg ? "DROP TRIGGER t_fail ON messages" : "DROP TRIGGER t_fail") == 0);
	side_close();
	CHECK(count_of(s, "ALICE001") == 2);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 4, 0, NULL), 0);
	CHECK_RC(put_sync(s, "ALICE001", "BOBBY001", 5, 0, NULL), VEIL_ELIMIT);
	CHECK_RC(put_sync(s, "ALICE001", "CAROL001", 1, 0, NULL), VEIL_ELIMIT);
	CHECK(count_of(s, "ALICE001") == 3);
	veil_store_close(s);
}

/* Two nodes fill one queue: each counts the other's rows against the limit. */
static void test_limit_nodes(void)
{
	struct veil_store *a = NULL, *b = NULL;

	if (!t_pg)
		return;
	remove_db();
	CHECK_RC(open_store(&a, 4), 0);
	CHECK_RC(open_store(&b, 4), 0);
	CHECK_RC(put_sync(a, "ALICE001", "BOBBY001", 1, 0, NULL), 0);
	CHECK_RC(put_sync(a, "ALICE001", "BOBBY001", 2, 0, NULL), 0);
	CHECK_RC(put_sync(b, "ALICE001", "CAROL001", 1, 0, NULL), 0);
	CHECK_RC(put_sync(b, "ALICE001", "CAROL001", 2, 0, NULL), 0);
	CHECK_RC(put_sync(a, "ALICE001", "BOBBY001", 3, 0, NULL), VEIL_ELIMIT);
	CHECK_RC(ack_sync(b, "ALICE001", "BOBBY001", 1), 0);
	CHECK_RC(put_sync(a, "ALICE001", "BOBBY001", 3, 0, NULL), 0);
	CHECK_RC(put_sync(a, "ALICE001", "DAVID001", 1, 0, NULL), VEIL_ELIMIT);
	CHECK_RC(put_sync(b, "ALICE001", "DAVID001", 1, 0, NULL), VEIL_ELIMIT);
	CHECK_RC(ack_sync(a, "ALICE001", "CAROL001", 1), 0);
	CHECK_RC(put_sync(b, "ALICE001", "DAVID001", 1, 0, NULL), 0);
	CHECK_RC(put_sync(a, "ALICE001", "DAVID001", 2, 0, NULL), VEIL_ELIMIT);
	CHECK(count_of(a, "ALICE001") == 4);
	veil_store_close(b);
	veil_store_close(a);
}

/* --- events from other nodes (PostgreSQL) --- */

static volatile int ev_puts, ev_resyncs, ev_sessions;
static uint8_t ev_id[VEIL_ID_LEN];
static uint64_t ev_gen;

static void t_event(void *arg, int kind, const uint8_t id[VEIL_ID_LEN], uint64_t gen)
{
	(void)arg;
	if (kind == VEIL_STORE_EV_SESSION) {
		memcpy(ev_id, id, VEIL_ID_LEN);
		ev_gen = gen;
		ev_sessions++;
	} else if (kind == VEIL_STORE_EV_PUT) {
		memcpy(ev_id, id, VEIL_ID_LEN);
		ev_puts++;
	} else if (kind == VEIL_STORE_EV_RESYNC) {
		ev_resyncs++;
	}
}

/*
 * The administration calls: identity_list (order, paging, one, queue sizes,
 * last login), queue_stats, identity_delete (queue gone, state invalid, and
 * the queue's limit counted afresh afterwards), ping.
 */
static void test_admin(void)
{
	struct veil_store *s = NULL;
	struct veil_identity_rec rec;
	struct veil_identity_info *v = NULL;
	struct veil_queue_stats q;
	uint8_t id1[VEIL_ID_LEN], id2[VEIL_ID_LEN], id3[VEIL_ID_LEN], pk[VEIL_KEY_LEN];
	size_t n = 0;
	uint64_t dropped = 99, gen;

	remove_db();
	CHECK_RC(open_store(&s, 2), 0);
	CHECK_RC(veil_store_ping(s), 0);
	CHECK(strcmp(veil_store_backend(s), t_pg ? "postgresql" : "sqlite") == 0);
	make_id(id1, "ADMIN001");
	make_id(id2, "ADMIN002");
	make_id(id3, "ADMIN003");
	const uint8_t *ids[3] = {id3, id1, id2};
	for (int i = 0; i < 3; i++) {
		memset(pk, 0x40 + i, sizeof pk);
		CHECK_RC(veil_store_identity_create_id(s, ids[i], pk, &rec), 0);
	}
	CHECK_RC(put_sync(s, "ADMIN002", "ADMIN001", 1, 0, NULL), 0);
	CHECK_RC(put_sync(s, "ADMIN002", "ADMIN003", 2, 0, NULL), 0);
	/* A login: SQLite records it on the store thread, PostgreSQL with the session. */
	CHECK_RC(veil_store_login(s, id1, 1234567), 0);
	CHECK_RC(veil_store_session_claim(s, id1, &gen), 0);
	CHECK_RC(put_sync(s, "ADMIN003", "ADMIN001", 3, 0, NULL), 0); /* after the login's batch */

	CHECK_RC(veil_store_identity_list(s, NULL, NULL, 0, &v, &n), 0);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(memcmp(v[0].rec.id, id1, VEIL_ID_LEN) == 0 &&
		      memcmp(v[2].rec.id, id3, VEIL_ID_LEN) == 0);
		CHECK(v[0].last_login_ms != 0 && v[1].last_login_ms == 0);
		CHECK(v[0].queued == 0 && v[1].queued == 2 && v[2].queued == 1);
		CHECK(v[1].rec.state == VEIL_IDENTITY_ACTIVE && v[1].rec.created_ms > 0);
	}
	free(v);
	v = NULL;
	CHECK_RC(veil_store_identity_list(s, NULL, id1, 1, &v, &n), 0);
	CHECK(n == 1 && memcmp(v[0].rec.id, id2, VEIL_ID_LEN) == 0);
	free(v);
	v = NULL;
	CHECK_RC(veil_store_identity_list(s, id3, NULL, 10, &v, &n), 0);
	CHECK(n == 1 && memcmp(v[0].rec.id, id3, VEIL_ID_LEN) == 0 && v[0].queued == 1);
	free(v);
	v = NULL;
	uint8_t none[VEIL_ID_LEN];
	make_id(none, "NOBODY00");
	CHECK_RC(veil_store_identity_list(s, none, NULL, 10, &v, &n), VEIL_ENOTFOUND);
	CHECK(v == NULL && n == 0);

	CHECK_RC(veil_store_queue_stats(s, &q), 0);
	CHECK(q.messages == 3 && q.recipients == 2 && q.max_queue == 2 && q.bytes > 0 &&
	      q.expired == 0 && memcmp(q.max_id, id2, VEIL_ID_LEN) == 0);

	CHECK_RC(veil_store_identity_delete(s, id2, &dropped), 0);
	CHECK(dropped == 2);
	CHECK_RC(veil_store_identity_get(s, id2, &rec), 0);
	CHECK(rec.state == VEIL_IDENTITY_INVALID);
	CHECK(count_of(s, "ADMIN002") == 0);
	CHECK_RC(veil_store_identity_delete(s, none, &dropped), VEIL_ENOTFOUND);
	/* The limit (2) counts the emptied queue afresh, not from a stale count. */
	CHECK_RC(put_sync(s, "ADMIN002", "ADMIN001", 4, 0, NULL), 0);
	CHECK_RC(put_sync(s, "ADMIN002", "ADMIN003", 5, 0, NULL), 0);
	CHECK_RC(veil_store_queue_stats(s, &q), 0);
	CHECK(q.messages == 3 && q.recipients == 2);
	veil_store_close(s);
}

static void test_events(void)
{
	struct veil_store *a = NULL, *b = NULL;
	struct veil_store_opts o = {.path = t_path, .wake = t_wake, .event = t_event};

	remove_db();
	CHECK_RC(veil_store_open(&a, &o), 0);
	CHECK(veil_store_shared(a) == (t_pg != 0));
	if (!t_pg) {
		uint64_t gen = 1;
		uint8_t id[VEIL_ID_LEN];
		make_id(id, "RCPT0001");
		CHECK_RC(veil_store_session_claim(a, id, &gen), 0);
		CHECK(gen == 0);
		veil_store_close(a);
		remove_db();
		return;
	}
	/* b is another node: what it stores is announced to a once committed. */
	CHECK_RC(open_store(&b, 0), 0);
	ev_puts = ev_resyncs = 0;
	CHECK_RC(put_sync(b, "RCPT0001", "SEND0001", 1, 0, NULL), 0);
	CHECK(pump(a, &ev_puts, 1) == 0);
	CHECK(memcmp(ev_id, "RCPT0001", VEIL_ID_LEN) == 0);
	/* a's own puts are not announced to a, nor is a duplicate. */
	CHECK_RC(put_sync(a, "RCPT0002", "SEND0001", 1, 0, NULL), 0);
	CHECK_RC(put_sync(b, "RCPT0001", "SEND0001", 1, 0, NULL), VEIL_EEXIST);
	CHECK_RC(put_sync(b, "RCPT0003", "SEND0001", 1, 0, NULL), 0);
	CHECK(pump(a, &ev_puts, 2) == 0);
	CHECK(ev_puts == 2 && memcmp(ev_id, "RCPT0003", VEIL_ID_LEN) == 0);
	/* A login on b gets a newer generation than a's, and a hears of it (not of its own). */
	uint8_t id[VEIL_ID_LEN];
	uint64_t g1 = 0, g2 = 0;
	make_id(id, "USER0001");
	ev_sessions = 0;
	CHECK_RC(veil_store_session_claim(a, id, &g1), 0);
	CHECK_RC(veil_store_session_claim(b, id, &g2), 0);
	CHECK(g1 > 0 && g2 > g1);
	CHECK(pump(a, &ev_sessions, 1) == 0);
	CHECK(ev_sessions == 1 && ev_gen == g2 && memcmp(ev_id, "USER0001", VEIL_ID_LEN) == 0);
	/*
	 * The listening connection is cut: a reconnects, passes on the logins
	 * since its last mark (b's, again) and asks for a resync.
	 */
	CHECK(side_open() == 0);
	CHECK(side_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
	                "query = 'SELECT last_value FROM sessions_gen'") == 0);
	side_close();
	CHECK(pump(a, &ev_resyncs, 1) == 0);
	CHECK(ev_sessions == 2 && ev_gen == g2);
	CHECK_RC(put_sync(b, "RCPT0004", "SEND0001", 1, 0, NULL), 0);
	CHECK(pump(a, &ev_puts, 3) == 0);
	CHECK(memcmp(ev_id, "RCPT0004", VEIL_ID_LEN) == 0);
	veil_store_close(b);
	veil_store_close(a);
	remove_db();
}

/* Waits (5 s at most) for events on m; *n counts the MD_EV_TX_ENDED ones, *ev gets the last. */
static struct md_event md_last;
static int md_ended, md_lost;

static void md_on(void *arg, const struct md_event *ev)
{
	(void)arg;
	md_lost += ev->kind == MD_EV_LOCKS_LOST;
	if (ev->kind == MD_EV_TX_ENDED) {
		md_last = *ev;
		md_ended++;
	}
}

static int md_wait_ended(struct md_store *m, int n)
{
	for (int i = 0; i < 500 && md_ended < n; i++) {
		if (md_store_events(m, md_on, NULL) < 0)
			return -1;
		if (md_ended < n)
			usleep(10000);
	}
	return md_ended >= n ? 0 : -1;
}

/*
 * The mediator's leadership and transaction locks across nodes (three
 * handles on one database are three nodes): the leadership is tried for
 * many groups at once, and a transaction lock whose node died (its
 * connection closed without a word) is reaped by another node, which tells
 * the others.
 */
static void test_md_nodes(void)
{
	enum { NG = 300 }; /* more than one statement's worth (256) */
	static uint8_t gids[NG][32];
	uint8_t taken[NG], scope[16];
	uint64_t holder = 1;
	size_t hlen = 1;
	char path[1100];
	struct md_store *m1 = NULL, *m2 = NULL, *m3 = NULL;
	struct veil_store *st = NULL;

	remove_db();
	randombytes_buf(gids, sizeof gids);
	if (!t_pg) {
		/* One node: every leadership is this node's, no lock is ever reaped. */
		snprintf(path, sizeof path, "%s/mediator.db", t_dir);
		CHECK_RC(md_store_open(&m1, path), 0);
		CHECK(md_store_leader_try(m1, (const uint8_t(*)[32])gids, NG, taken) == NG);
		CHECK(taken[0] == 1 && taken[NG - 1] == 1);
		CHECK(md_store_tx_reap(m1, gids[0], &holder, scope, sizeof scope, &hlen) == 0);
		CHECK(holder == 0 && hlen == 0);
		md_store_close(m1);
		unlink(path);
		return;
	}
	/* The chat store's migrations make the md_* tables. */
	CHECK_RC(open_store(&st, 0), 0);
	CHECK_RC(md_store_open(&m1, t_path), 0);
	CHECK_RC(md_store_open(&m2, t_path), 0);
	CHECK_RC(md_store_open(&m3, t_path), 0);
	CHECK(md_store_leader_take(m1, gids[5]) == 1);
	CHECK(md_store_leader_take(m1, gids[280]) == 1);
	memset(taken, 7, sizeof taken);
	CHECK(md_store_leader_try(m2, (const uint8_t(*)[32])gids, NG, taken) == NG - 2);
	CHECK(taken[5] == 0 && taken[280] == 0 && taken[0] == 1 && taken[279] == 1 &&
	      taken[281] == 1 && taken[NG - 1] == 1);
	/* m2 holds the rest now: m3 gets none of them. */
	CHECK(md_store_leader_try(m3, (const uint8_t(*)[32])gids, NG, taken) == 0);
	/* A live holder's transaction lock is not reaped. */
	uint64_t h;
	uint8_t hs[16];
	size_t hl;
	CHECK(md_store_tx_take(m1, gids[1], 9, (const uint8_t *)"abc", 3, &h, hs, sizeof hs, &hl) ==
	      1);
	CHECK(md_store_tx_reap(m2, gids[1], &holder, scope, sizeof scope, &hlen) == 0);
	CHECK(md_store_tx_take(m2, gids[1], 8, (const uint8_t *)"x", 1, &h, hs, sizeof hs, &hl) ==
	      0);
	CHECK(h == 9 && hl == 3 && memcmp(hs, "abc", 3) == 0);
	/* m1 dies: no release, no notice; its locks go with its connections. */
	md_store_close(m1);
	m1 = NULL;
	int got = 0;
	for (int i = 0; i < 500 && got == 0; i++) {
		got = md_store_tx_reap(m2, gids[1], &holder, scope, sizeof scope, &hlen);
		if (got == 0)
			usleep(10000);
	}
	CHECK(got == 1 && holder == 9 && hlen == 3 && memcmp(scope, "abc", 3) == 0);
	/* The other nodes hear of the end as if the holder had ended it. */
	md_ended = 0;
	CHECK(md_wait_ended(m3, 1) == 0);
	CHECK(md_last.did == 9 && md_last.scope_len == 3 && memcmp(md_last.gid, gids[1], 32) == 0);
	/* Nothing is left behind: free, and no holder. */
	CHECK(md_store_tx_reap(m2, gids[1], &holder, scope, sizeof scope, &hlen) == 1);
	CHECK(holder == 0 && hlen == 0);
	CHECK(md_store_tx_take(m3, gids[1], 8, (const uint8_t *)"x", 1, &h, hs, sizeof hs, &hl) ==
	      1);
	CHECK(md_store_tx_release(m3, gids[1], 8, (const uint8_t *)"x", 1) == 0);
	/* The dead node's leaderships are free too. */
	CHECK(md_store_leader_try(m3, (const uint8_t(*)[32])gids + 5, 1, taken) == 1);
	/*
	 * m3's connection holding its locks is cut (m2 goes first, so that
	 * m3's is the only one left holding any): a ping reconnects; no lock is
	 * taken until m3's mediator has heard that they were lost.
	 */
	md_store_close(m2);
	m2 = NULL;
	CHECK(side_open() == 0);
	CHECK(
	    side_exec("SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a "
	              "USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND "
	              "a.application_name = 'veild-mediator'") == 0);
	/* pg_terminate_backend only signals: wait until the session is gone. */
	for (int i = 0; i < 500; i++) {
		PGresult *r = PQexec(side_pg, "SELECT count(*) FROM pg_locks WHERE locktype = "
		                              "'advisory' AND granted");
		int left = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
		               ? (int)strtol(PQgetvalue(r, 0, 0), NULL, 10)
		               : -1;
		PQclear(r);
		if (left == 0)
			break;
		usleep(10000);
	}
	side_close();
	CHECK(md_store_ping(m3) == 0);
	CHECK(md_store_leader_take(m3, gids[5]) == 0);
	md_lost = 0;
	CHECK(md_store_events(m3, md_on, NULL) >= 1 && md_lost == 1);
	CHECK(md_store_leader_take(m3, gids[5]) == 1);
	md_store_close(m3);
	veil_store_close(st);
	remove_db();
}

T_MAIN_BEGIN
snprintf(t_dir, sizeof(t_dir), "/tmp/veil-store-XXXXXX");
if (mkdtemp(t_dir) == NULL)
	return 2;
snprintf(t_path, sizeof(t_path), "%s/store.db", t_dir);
const char *t_env = getenv("VEIL_TEST_STORE");
if (t_env != NULL && t_env[0] != '\0') {
	snprintf(t_path, sizeof(t_path), "%s", t_env);
	t_pg = veil_store_is_url(t_path);
}
RUN(test_open_close);
RUN(test_identity);
RUN(test_invites);
RUN(test_push_token);
RUN(test_token_replay);
RUN(test_put_order_threads);
RUN(test_fetch_ack);
RUN(test_duplicate);
RUN(test_queue_limit);
RUN(test_sender_share);
RUN(test_expire);
RUN(test_close_durable);
RUN(test_group_commit);
RUN(test_batch_failure);
RUN(test_batch_rules);
RUN(test_batch_order);
RUN(test_batch_rollback_limit);
RUN(test_limit_nodes);
RUN(test_events);
RUN(test_md_nodes);
RUN(test_admin);
remove_db();
rmdir(t_dir);
T_MAIN_END
