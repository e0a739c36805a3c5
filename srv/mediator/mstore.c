/*
 * The mediator's SQLite store (see mstore.h).
 *
 * Group commit off the HTTP thread: the connection runs with
 * synchronous=NORMAL, so a batch's COMMIT (on the HTTP thread) only writes
 * its frames to the WAL file; the store's sync thread then makes them
 * durable with one fdatasync of that file for every batch committed since
 * its last one, and wakes the HTTP thread, which reports them durable
 * (md_store_batch_poll). While the disk syncs, the HTTP thread goes on
 * serving and collects the next batches. A SQLite WAL has one writer, and
 * a synchronous=FULL commit holds the write lock through its fsync, so the
 * split of writing (HTTP thread) and syncing (sync thread) is what lets
 * the two overlap. The checkpoints stay on the HTTP thread's connection
 * (SQLite's automatic one, every 1000 WAL pages, with its two fsyncs):
 * the WAL restarts from its beginning only if a checkpoint completes
 * between a commit and the writer's next transaction, which a checkpoint
 * on another thread next to a busy writer almost never does (the WAL
 * then grows without end, and every page lookup with it).
 *
 * VEIL_TEST_MD_SYNC_GATE=PATH (tests only): while PATH exists, the sync
 * thread waits before each fdatasync, so a test can see that nothing is
 * acked before its batch is durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mstore.h"
#include "mstore_pg.h"

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_DEV_EXISTS,
	ST_DEV_COUNT,
	ST_DEVICES,
	ST_GROUP_ADD,
	ST_DEV_UPSERT,
	ST_DEV_SEEN,
	ST_DEV_DROP,
	ST_DEV_DROP_QUEUE,
	ST_SHARED,
	ST_SHARED_SET,
	ST_DEV_INFOS,
	ST_RID_GET,
	ST_RID_SET,
	ST_QUEUE_ADD,
	ST_QUEUE_LEN,
	ST_QUEUE_AFTER,
	ST_QUEUE_ACK,
	ST_MAX_SEQ,
	ST_QLEN_INC,
	ST_QLEN_DEC,
	ST_QLEN_GET,
	ST_QLEN_OVER,
	ST_COUNT
};

/* A committed batch not yet reported durable. */
struct md_gen {
	int64_t top; /* the highest queue row written up to it */
	int rc;      /* its COMMIT's result */
};

static const char *const sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_DEV_EXISTS] = "SELECT 1 FROM devices WHERE gid = ? AND device_id = ?",
    [ST_DEV_COUNT] = "SELECT COUNT(*) FROM devices WHERE gid = ?",
    [ST_DEVICES] = "SELECT device_id, expiration_policy, connected_since, last_seen FROM devices "
                   "WHERE gid = ? ORDER BY last_seen, device_id",
    [ST_GROUP_ADD] = "INSERT OR IGNORE INTO groups (gid, next_rid) VALUES (?, 1)",
    [ST_DEV_UPSERT] = "INSERT INTO devices (gid, device_id, expiration_policy, info, "
                      "connected_since, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?5) "
                      "ON CONFLICT (gid, device_id) DO UPDATE SET expiration_policy = ?3, "
                      "info = ?4, connected_since = ?5, last_seen = ?5",
    [ST_DEV_SEEN] = "UPDATE devices SET last_seen = ? WHERE gid = ? AND device_id = ?",
    [ST_DEV_DROP] = "DELETE FROM devices WHERE gid = ? AND device_id = ?",
    [ST_DEV_DROP_QUEUE] = "DELETE FROM reflected WHERE gid = ? AND device_id = ?",
    [ST_SHARED] = "SELECT shared_data FROM groups WHERE gid = ?",
    [ST_SHARED_SET] = "UPDATE groups SET shared_data = ? WHERE gid = ?",
    [ST_DEV_INFOS] = "SELECT device_id, expiration_policy, connected_since, last_seen, info "
                     "FROM devices WHERE gid = ? ORDER BY device_id",
    [ST_RID_GET] = "SELECT next_rid FROM groups WHERE gid = ?",
    [ST_RID_SET] = "UPDATE groups SET next_rid = ? WHERE gid = ?",
    [ST_QUEUE_ADD] = "INSERT INTO reflected (gid, device_id, rid, ts, flags, envelope) "
                     "SELECT gid, device_id, ?, ?, ?, ? FROM devices "
                     "WHERE gid = ? AND device_id <> ? AND qlen < ?",
    [ST_QUEUE_LEN] = "SELECT COUNT(*) FROM reflected WHERE gid = ? AND device_id = ?",
    [ST_QUEUE_AFTER] = "SELECT seq, rid, ts, flags, envelope FROM reflected "
                       "WHERE gid = ? AND device_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    [ST_QUEUE_ACK] = "DELETE FROM reflected WHERE gid = ? AND device_id = ? AND rid = ?",
    [ST_MAX_SEQ] = "SELECT COALESCE(MAX(seq), 0) FROM reflected",
    [ST_QLEN_INC] = "UPDATE devices SET qlen = qlen + 1 WHERE gid = ? AND device_id <> ?",
    [ST_QLEN_DEC] =
        "UPDATE devices SET qlen = qlen - 1 WHERE gid = ? AND device_id = ? AND qlen > 0",
    [ST_QLEN_GET] = "SELECT qlen FROM devices WHERE gid = ? AND device_id = ?",
    [ST_QLEN_OVER] = "SELECT device_id FROM devices WHERE gid = ? AND qlen > ?",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS groups ("
    " gid BLOB PRIMARY KEY,"                     /* device group ID = DGPK.public */
    " shared_data BLOB,"                         /* DGSDDK box, opaque */
    " next_rid INTEGER NOT NULL) WITHOUT ROWID;" /* next reflected ID of the group */
    "CREATE TABLE IF NOT EXISTS devices ("
    " gid BLOB NOT NULL,"
    " device_id INTEGER NOT NULL," /* the u64 as a signed integer */
    " expiration_policy INTEGER NOT NULL,"
    " info BLOB," /* DGDIK box, opaque */
    " connected_since INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    /* reflects queued for it, counting those not stored once the queue was full */
    " qlen INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (gid, device_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS reflected ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " gid BLOB NOT NULL,"
    " device_id INTEGER NOT NULL,"
    " rid INTEGER NOT NULL,"
    " ts INTEGER NOT NULL,"
    " flags INTEGER NOT NULL,"
    " envelope BLOB NOT NULL);" /* DGRK box, opaque */
    "CREATE INDEX IF NOT EXISTS reflected_dev ON reflected (gid, device_id, seq);"
    "CREATE INDEX IF NOT EXISTS reflected_rid ON reflected (gid, device_id, rid);";

/* A store made before devices had qlen: add it, counted from the queues. */
static const char migrate_qlen[] =
    "ALTER TABLE devices ADD COLUMN qlen INTEGER NOT NULL DEFAULT 0;"
    "UPDATE devices SET qlen = (SELECT COUNT(*) FROM reflected r "
    " WHERE r.gid = devices.gid AND r.device_id = devices.device_id);";

struct md_store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	int in_batch;      /* a batch transaction is open */
	int batch_failed;  /* a write in it failed: it is rolled back, not committed */
	int64_t batch_top; /* the highest queue row the open batch wrote (last_top before) */
	int64_t last_top;  /* the highest queue row committed */
	/*
	 * Batches ("gens", numbered from 1) on the HTTP thread: gen_committed
	 * committed, gen_reported reported durable to batch_done; gens holds
	 * those in between. durable_top: the highest queue row of the reported
	 * ones (rows above it may not be durable yet).
	 */
	uint64_t gen_committed, gen_reported;
	struct md_gen *gens;
	size_t gens_cap;
	int64_t durable_top;
	uint64_t pump_until; /* reports up to this gen feed from the store (see md_store_reflect) */
	int polling;
	void (*batch_done)(void *ctx, uint64_t upto, int rc);
	void (*batch_wake)(void *ctx);
	void *batch_ctx;
	uint32_t queue_limit;
	int queued;       /* rows the last reflect queued */
	int64_t last_seq; /* and the last of them */
	struct md_pg *pg; /* with a PostgreSQL store, every call goes there (mstore_pg.c) */
	uint64_t pg_gen;  /* PostgreSQL: batches committed (synchronously) */
	/* The sync thread. */
	int wal_fd;
	char *gate;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Under mu: gens up to sync_req await a sync, up to sync_done are synced (failed up to sync_fail). */
	uint64_t sync_req, sync_done, sync_fail;
	atomic_int stop;
};

/* Whether devices has the qlen column. */
static int has_qlen(sqlite3 *db)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT qlen FROM devices LIMIT 0", -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_finalize(st);
	return 1;
}

static sqlite3_stmt *stmt(struct md_store *s, int i)
{
	sqlite3_reset(s->st[i]);
	sqlite3_clear_bindings(s->st[i]);
	return s->st[i];
}

/* Runs a statement without rows; 0 or VEIL_EIO. */
static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : VEIL_EIO;
}

/* One integer from a one-row query, or a negative veil_err. */
static int64_t one_int(sqlite3_stmt *st, int64_t none)
{
	int rc = sqlite3_step(st);
	int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : rc == SQLITE_DONE ? none : -1;
	sqlite3_reset(st);
	return v < 0 ? VEIL_EIO : v;
}

/* --- the sync thread --- */

/* Tests only: waits while the gate file exists. */
static void gate_wait(const struct md_store *s)
{
	struct stat sb;
	const struct timespec ts = {0, 10 * 1000 * 1000};
	while (s->gate != NULL && stat(s->gate, &sb) == 0 && !s->stop)
		nanosleep(&ts, NULL);
}

static int wal_sync(struct md_store *s)
{
	int rc;
	while ((rc = fdatasync(s->wal_fd)) != 0 && errno == EINTR)
		;
	if (rc != 0)
		veil_log_error("mediator: cannot sync the store's WAL file: %s", strerror(errno));
	return rc == 0 ? 0 : VEIL_EIO;
}

/* Marks the gens up to gen synced with rc (under mu). */
static void synced_locked(struct md_store *s, uint64_t gen, int rc)
{
	if (gen > s->sync_done)
		s->sync_done = gen;
	if (rc != 0 && gen > s->sync_fail)
		s->sync_fail = gen;
}

static void *sync_main(void *arg)
{
	struct md_store *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		if (s->sync_req <= s->sync_done) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		uint64_t want = s->sync_req;
		pthread_mutex_unlock(&s->mu);
		gate_wait(s);
		/* One fdatasync for every batch committed so far (group commit). */
		int rc = wal_sync(s);
		pthread_mutex_lock(&s->mu);
		synced_locked(s, want, rc);
		void (*wake)(void *) = s->batch_wake;
		void *ctx = s->batch_ctx;
		pthread_mutex_unlock(&s->mu);
		if (wake != NULL)
			wake(ctx);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Everything committed so far made durable on the calling (HTTP) thread. */
static int sync_now(struct md_store *s)
{
	int rc = wal_sync(s);
	pthread_mutex_lock(&s->mu);
	synced_locked(s, s->gen_committed, rc);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Opens the sync thread's side: the WAL file and the thread. */
static int sync_open(struct md_store *s, const char *path)
{
	char wal[1200];
	const char *gate = getenv("VEIL_TEST_MD_SYNC_GATE");
	if ((size_t)snprintf(wal, sizeof wal, "%s-wal", path) >= sizeof wal)
		return VEIL_EINVAL;
	/* It exists: the schema was written in WAL mode, and it stays while the connection is open. */
	s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
	if (s->wal_fd < 0)
		return VEIL_EIO;
	if (gate != NULL && gate[0] != '\0' && (s->gate = strdup(gate)) == NULL)
		return VEIL_ENOMEM;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		return VEIL_EIO;
	if (pthread_cond_init(&s->cv, NULL) != 0) {
		pthread_mutex_destroy(&s->mu);
		return VEIL_EIO;
	}
	if (pthread_create(&s->thread, NULL, sync_main, s) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		return VEIL_EIO;
	}
	s->thread_started = 1;
	return 0;
}

int md_store_open(struct md_store **out, const char *path)
{
	*out = NULL;
	struct md_store *s = calloc(1, sizeof *s);
	if (s == NULL)
		return VEIL_ENOMEM;
	s->wal_fd = -1;
	if (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0) {
		int rc = md_pg_open(&s->pg, path);
		if (rc != 0) {
			free(s);
			return rc;
		}
		*out = s;
		return 0;
	}
	/*
	 * NOMUTEX: one thread at a time uses the connection (the HTTP thread),
	 * so SQLite's lock around every call (9% of the CPU of a reflect) is
	 * not needed. synchronous=NORMAL: a commit does not wait for the disk;
	 * the sync thread or sync_now makes it durable (see the top).
	 */
	if (sqlite3_open_v2(path, &s->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK ||
	    /* Statement journals (a multi-row INSERT ... SELECT) in memory, not in a file. */
	    sqlite3_exec(
	        s->db,
	        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;",
	        NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    (!has_qlen(s->db) && sqlite3_exec(s->db, migrate_qlen, NULL, NULL, NULL) != SQLITE_OK))
		goto fail;
	s->queue_limit = UINT32_MAX;
	sqlite3_busy_timeout(s->db, 5000);
	for (int i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v2(s->db, sql[i], -1, &s->st[i], NULL) != SQLITE_OK)
			goto fail;
	s->last_top = one_int(stmt(s, ST_MAX_SEQ), 0);
	if (s->last_top < 0 || sync_open(s, path) != 0)
		goto fail;
	s->durable_top = s->last_top;
	/* What the schema or a migration wrote is durable before anything is acked. */
	if (sync_now(s) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	veil_log_error("mediator: cannot open %s: %s", path,
	               s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
	md_store_close(s);
	return VEIL_EIO;
}

void md_store_close(struct md_store *s)
{
	if (s == NULL)
		return;
	md_pg_close(s->pg);
	if (s->thread_started) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
	}
	/* Whatever was committed and not reported is made durable on the way out. */
	if (s->wal_fd >= 0 && s->gen_committed > s->gen_reported)
		(void)wal_sync(s);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	if (s->wal_fd >= 0)
		close(s->wal_fd);
	free(s->gate);
	free(s->gens);
	free(s);
}

static void bind_dev(sqlite3_stmt *st, int at, const uint8_t gid[static 32], uint64_t did)
{
	sqlite3_bind_blob(st, at, gid, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, at + 1, (sqlite3_int64)did);
}

int md_store_device_exists(struct md_store *s, const uint8_t gid[static 32], uint64_t did)
{
	if (s->pg != NULL)
		return md_pg_device_exists(s->pg, gid, did);
	sqlite3_stmt *st = stmt(s, ST_DEV_EXISTS);
	bind_dev(st, 1, gid, did);
	return (int)one_int(st, 0);
}

int md_store_device_count(struct md_store *s, const uint8_t gid[static 32])
{
	if (s->pg != NULL)
		return md_pg_device_count(s->pg, gid);
	sqlite3_stmt *st = stmt(s, ST_DEV_COUNT);
	sqlite3_bind_blob(st, 1, gid, 32, SQLITE_STATIC);
	return (int)one_int(st, 0);
}

int md_store_devices(struct md_store *s, const uint8_t gid[static 32], struct md_device_row *rows,
                     size_t cap)
{
	if (s->pg != NULL)
		return md_pg_devices(s->pg, gid, rows, cap);
	sqlite3_stmt *st = stmt(s, ST_DEVICES);
	sqlite3_bind_blob(st, 1, gid, 32, SQLITE_STATIC);
	size_t n = 0;
	int rc;
	while (n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rows[n].device_id = (uint64_t)sqlite3_column_int64(st, 0);
		rows[n].expiration_policy = sqlite3_column_int(st, 1);
		rows[n].connected_since = (uint64_t)sqlite3_column_int64(st, 2);
		rows[n].last_seen = (uint64_t)sqlite3_column_int64(st, 3);
		n++;
	}
	sqlite3_reset(st);
	return (int)n;
}

static int tx_begin(struct md_store *s)
{
	/*
	 * A transaction of its own ends the batch first; its sync (tx_end)
	 * makes that durable too, reported at the next md_store_batch_poll.
	 */
	if (s->in_batch)
		(void)md_store_batch_commit(s);
	return run(stmt(s, ST_BEGIN));
}

/* Commits (durable on return: synced on this thread, with every batch before it) or rolls back. */
static int tx_end(struct md_store *s, int rc)
{
	if (rc == 0)
		rc = run(stmt(s, ST_COMMIT));
	if (rc != 0)
		run(stmt(s, ST_ROLLBACK));
	else
		rc = sync_now(s);
	return rc;
}

/* A write outside a transaction: in the open batch if there is one, else synced now. */
static int autocommit_end(struct md_store *s, int rc)
{
	return rc != 0 || s->in_batch ? rc : sync_now(s);
}

int md_store_device_login(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                          int expiration_policy, const uint8_t *info, size_t info_len, uint64_t now)
{
	if (s->pg != NULL)
		return md_pg_device_login(s->pg, gid, did, expiration_policy, info, info_len, now);
	int rc = tx_begin(s);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = stmt(s, ST_GROUP_ADD);
	sqlite3_bind_blob(st, 1, gid, 32, SQLITE_STATIC);
	rc = run(st);
	if (rc == 0) {
		st = stmt(s, ST_DEV_UPSERT);
		bind_dev(st, 1, gid, did);
		sqlite3_bind_int(st, 3, expiration_policy);
		if (info_len > 0)
			sqlite3_bind_blob(st, 4, info, (int)info_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
		rc = run(st);
	}
	return tx_end(s, rc);
}

int md_store_device_seen(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                         uint64_t now)
{
	if (s->pg != NULL)
		return md_pg_device_seen(s->pg, gid, did, now);
	sqlite3_stmt *st = stmt(s, ST_DEV_SEEN);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	bind_dev(st, 2, gid, did);
	return autocommit_end(s, run(st));
}

int md_store_device_drop(struct md_store *s, const uint8_t gid[static 32], uint64_t did)
{
	if (s->pg != NULL)
		return md_pg_device_drop(s->pg, gid, did);
	int rc = tx_begin(s);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = stmt(s, ST_DEV_DROP);
	bind_dev(st, 1, gid, did);
	rc = run(st);
	if (rc == 0) {
		st = stmt(s, ST_DEV_DROP_QUEUE);
		bind_dev(st, 1, gid, did);
		rc = run(st);
	}
	return tx_end(s, rc);
}

int md_store_shared_data(struct md_store *s, const uint8_t gid[static 32], uint8_t *out, size_t cap,
                         size_t *len)
{
	if (s->pg != NULL)
		return md_pg_shared_data(s->pg, gid, out, cap, len);
	*len = 0;
	sqlite3_stmt *st = stmt(s, ST_SHARED);
	sqlite3_bind_blob(st, 1, gid, 32, SQLITE_STATIC);
	int rc = sqlite3_step(st), ret = 0;
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (n > cap)
			ret = VEIL_ELIMIT;
		else if (n > 0)
			memcpy(out, sqlite3_column_blob(st, 0), n);
		*len = ret == 0 ? n : 0;
	} else if (rc != SQLITE_DONE) {
		ret = VEIL_EIO;
	}
	sqlite3_reset(st);
	return ret;
}

int md_store_set_shared_data(struct md_store *s, const uint8_t gid[static 32], const uint8_t *box,
                             size_t len)
{
	if (s->pg != NULL)
		return md_pg_set_shared_data(s->pg, gid, box, len);
	sqlite3_stmt *st = stmt(s, ST_SHARED_SET);
	if (len > 0)
		sqlite3_bind_blob(st, 1, box, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, gid, 32, SQLITE_STATIC);
	return autocommit_end(s, run(st));
}

int md_store_device_infos(struct md_store *s, const uint8_t gid[static 32],
                          int (*fn)(void *arg, const struct md_device_row *row, const uint8_t *info,
                                    size_t info_len),
                          void *arg)
{
	if (s->pg != NULL)
		return md_pg_device_infos(s->pg, gid, fn, arg);
	sqlite3_stmt *st = stmt(s, ST_DEV_INFOS);
	sqlite3_bind_blob(st, 1, gid, 32, SQLITE_STATIC);
	int rc, n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct md_device_row row = {
		    .device_id = (uint64_t)sqlite3_column_int64(st, 0),
		    .expiration_policy = sqlite3_column_int(st, 1),
		    .connected_since = (uint64_t)sqlite3_column_int64(st, 2),
		    .last_seen = (uint64_t)sqlite3_column_int64(st, 3),
		};
		const uint8_t *info = sqlite3_column_blob(st, 4);
		size_t len = (size_t)sqlite3_column_bytes(st, 4);
		n++;
		if (fn(arg, &row, info, info != NULL ? len : 0) != 0)
			break;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : VEIL_EIO;
}

/* Takes the group's next reflected ID inside the caller's transaction. */
static int take_rid(struct md_store *s, const uint8_t gid[static 32], uint32_t *rid)
{
	sqlite3_stmt *st = stmt(s, ST_RID_GET);
	sqlite3_bind_blob(st, 1, gid, 32, SQLITE_STATIC);
	int64_t v = one_int(st, 1);
	if (v < 0)
		return (int)v;
	*rid = (uint32_t)v;
	st = stmt(s, ST_RID_SET);
	/* Reflected IDs are u32 on the wire: wrap after 2^32 - 1, skipping 0. */
	sqlite3_bind_int64(st, 1, (uint32_t)(v + 1) == 0 ? 1 : (sqlite3_int64)(uint32_t)(v + 1));
	sqlite3_bind_blob(st, 2, gid, 32, SQLITE_STATIC);
	return run(st);
}

int md_store_next_rid(struct md_store *s, const uint8_t gid[static 32], uint32_t *rid)
{
	if (s->pg != NULL)
		return md_pg_next_rid(s->pg, gid, rid);
	int rc = tx_begin(s);
	if (rc != 0)
		return rc;
	return tx_end(s, take_rid(s, gid, rid));
}

/* Queues a reflect for the group's other devices inside the caller's transaction. */
static int reflect_in(struct md_store *s, const uint8_t gid[static 32], uint64_t sender,
                      uint16_t flags, uint64_t ts, const uint8_t *env, size_t env_len,
                      uint32_t *rid)
{
	int rc = take_rid(s, gid, rid);
	if (rc == 0) {
		sqlite3_stmt *st = stmt(s, ST_QUEUE_ADD);
		sqlite3_bind_int64(st, 1, *rid);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)ts);
		sqlite3_bind_int(st, 3, flags);
		sqlite3_bind_blob(st, 4, env_len > 0 ? env : (const uint8_t *)"", (int)env_len,
		                  SQLITE_STATIC);
		bind_dev(st, 5, gid, sender);
		sqlite3_bind_int64(st, 7, s->queue_limit);
		rc = run(st);
		s->queued = rc == 0 ? sqlite3_changes(s->db) : 0;
		s->last_seq = sqlite3_last_insert_rowid(s->db);
	}
	if (rc == 0) {
		sqlite3_stmt *st = stmt(s, ST_QLEN_INC);
		bind_dev(st, 1, gid, sender);
		rc = run(st);
	}
	return rc;
}

int md_store_reflect(struct md_store *s, const uint8_t gid[static 32], uint64_t sender,
                     uint16_t flags, uint64_t ts, const uint8_t *env, size_t env_len, uint32_t *rid)
{
	if (s->pg != NULL)
		return md_pg_reflect(s->pg, gid, sender, flags, ts, env, env_len, rid);
	int rc = tx_begin(s);
	if (rc != 0)
		return rc;
	rc = tx_end(s, reflect_in(s, gid, sender, flags, ts, env, env_len, rid));
	if (rc == 0 && s->queued > 0) {
		if (s->last_seq > s->last_top)
			s->last_top = s->last_seq;
		/*
		 * Durable now, outside every batch: with none waiting to be
		 * reported, the pump may send it at once; else the next report
		 * feeds from the store, not from memory (its batches' rows are
		 * not all the rows above the last report).
		 */
		if (s->gen_reported == s->gen_committed)
			s->durable_top = s->last_top;
		else
			s->pump_until = s->gen_committed + 1;
	}
	return rc;
}

/* --- the batch: reflects and acks of one pass of the HTTP loop, one commit --- */

/* PostgreSQL commits its batches synchronously: each is reported as it commits. */
static void pg_batch_done(void *ctx, int rc)
{
	struct md_store *s = ctx;
	s->pg_gen++;
	if (s->batch_done != NULL)
		s->batch_done(s->batch_ctx, s->pg_gen, rc);
}

void md_store_on_batch(struct md_store *s, void (*fn)(void *ctx, uint64_t upto, int rc),
                       void (*wake)(void *ctx), void *ctx)
{
	if (s->pg != NULL)
		md_pg_on_batch(s->pg, pg_batch_done, s);
	if (s->thread_started)
		pthread_mutex_lock(&s->mu);
	s->batch_done = fn;
	s->batch_wake = wake;
	s->batch_ctx = ctx;
	if (s->thread_started)
		pthread_mutex_unlock(&s->mu);
}

int md_store_batch_open(const struct md_store *s)
{
	if (s->pg != NULL)
		return md_pg_batch_open(s->pg);
	return s->in_batch;
}

uint64_t md_store_batch_gen(const struct md_store *s)
{
	return (s->pg != NULL ? s->pg_gen : s->gen_committed) + 1;
}

int64_t md_store_batch_top(const struct md_store *s)
{
	/* Other nodes write into the queues too: a device is fed from the store only. */
	if (s->pg != NULL || s->gen_reported <= s->pump_until)
		return -1;
	return s->durable_top;
}

int64_t md_store_committed_seq(const struct md_store *s)
{
	if (s->pg != NULL)
		return INT64_MAX; /* its pump reads only committed rows */
	return s->in_batch || s->gen_reported < s->gen_committed ? s->durable_top : INT64_MAX;
}

static int batch_begin(struct md_store *s)
{
	if (s->in_batch)
		return 0;
	/* Room to record it when it commits (so that the commit cannot fail to). */
	size_t want = (size_t)(s->gen_committed - s->gen_reported) + 1;
	if (want > s->gens_cap) {
		size_t cap = s->gens_cap ? s->gens_cap * 2 : 16;
		struct md_gen *g = realloc(s->gens, cap * sizeof *g);
		if (g == NULL)
			return VEIL_ENOMEM;
		s->gens = g;
		s->gens_cap = cap;
	}
	int rc = run(stmt(s, ST_BEGIN));
	if (rc != 0)
		return rc;
	s->batch_top = s->last_top;
	s->in_batch = 1;
	return 0;
}

int md_store_batch_reflect(struct md_store *s, const uint8_t gid[static 32], uint64_t sender,
                           uint16_t flags, uint64_t ts, const uint8_t *env, size_t env_len,
                           uint32_t *rid)
{
	if (s->pg != NULL)
		return md_pg_batch_reflect(s->pg, gid, sender, flags, ts, env, env_len, rid);
	int rc = batch_begin(s);
	if (rc != 0)
		return rc;
	/*
	 * No savepoint around it: SQLite copies every page a savepoint touches
	 * into a sub-journal (a temporary file), which cost more than the
	 * reflect itself. A failed reflect fails the whole batch instead: its
	 * commit rolls everything back and reports the error, so that no
	 * reflect of it is acked (their devices are closed and send again).
	 */
	rc = reflect_in(s, gid, sender, flags, ts, env, env_len, rid);
	if (rc != 0)
		s->batch_failed = 1;
	else if (s->queued > 0)
		s->batch_top = s->last_seq;
	return rc;
}

static int ack_in(struct md_store *s, const uint8_t gid[static 32], uint64_t did, uint32_t rid);

int md_store_batch_ack(struct md_store *s, const uint8_t gid[static 32], uint64_t did, uint32_t rid)
{
	if (s->pg != NULL)
		return md_pg_batch_ack(s->pg, gid, did, rid);
	int rc = batch_begin(s);
	if (rc == 0 && (rc = ack_in(s, gid, did, rid)) < 0)
		s->batch_failed = 1;
	return rc;
}

int md_store_batch_commit(struct md_store *s)
{
	if (s->pg != NULL)
		return md_pg_batch_commit(s->pg);
	if (!s->in_batch)
		return 0;
	s->in_batch = 0;
	int rc = s->batch_failed ? VEIL_EIO : run(stmt(s, ST_COMMIT));
	s->batch_failed = 0;
	if (rc != 0)
		run(stmt(s, ST_ROLLBACK));
	else if (s->batch_top > s->last_top)
		s->last_top = s->batch_top;
	/* Recorded (batch_begin made room), then the sync thread takes it with all before it. */
	s->gens[s->gen_committed - s->gen_reported] = (struct md_gen){.top = s->last_top, .rc = rc};
	s->gen_committed++;
	pthread_mutex_lock(&s->mu);
	s->sync_req = s->gen_committed;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int md_store_batch_syncing(struct md_store *s)
{
	if (s->pg != NULL)
		return 0;
	pthread_mutex_lock(&s->mu);
	int busy = s->sync_req > s->sync_done;
	pthread_mutex_unlock(&s->mu);
	return busy;
}

void md_store_batch_poll(struct md_store *s)
{
	/* Nothing committed waits for a report (the usual pass): no lock taken. */
	if (s->pg != NULL || s->polling || s->gen_reported == s->gen_committed)
		return;
	s->polling = 1;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		uint64_t done = s->sync_done, fail = s->sync_fail;
		pthread_mutex_unlock(&s->mu);
		if (done > s->gen_committed)
			done = s->gen_committed;
		if (s->gen_reported >= done)
			break;
		/* The longest run of gens with one result, reported at once. */
		uint64_t lo = s->gen_reported + 1, upto = lo;
		int rc = lo <= fail ? VEIL_EIO : s->gens[0].rc;
		while (upto < done &&
		       (upto + 1 <= fail ? VEIL_EIO : s->gens[upto + 1 - lo].rc) == rc)
			upto++;
		int64_t top = s->gens[upto - lo].top;
		size_t k = (size_t)(upto - lo + 1), left = (size_t)(s->gen_committed - upto);
		memmove(s->gens, s->gens + k, left * sizeof *s->gens);
		s->gen_reported = upto;
		if (top > s->durable_top)
			s->durable_top = top;
		if (s->batch_done != NULL)
			s->batch_done(s->batch_ctx, upto, rc);
	}
	s->polling = 0;
}

int md_store_batch_sync(struct md_store *s)
{
	if (s->pg != NULL)
		return md_pg_batch_commit(s->pg);
	int rc = md_store_batch_commit(s);
	pthread_mutex_lock(&s->mu);
	int behind = s->sync_done < s->gen_committed;
	pthread_mutex_unlock(&s->mu);
	if (behind && sync_now(s) != 0 && rc == 0)
		rc = VEIL_EIO;
	md_store_batch_poll(s);
	return rc;
}

void md_store_set_queue_limit(struct md_store *s, uint32_t limit)
{
	if (s->pg != NULL)
		md_pg_set_queue_limit(s->pg, limit);
	s->queue_limit = limit;
}

int md_store_queue_count(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                         uint64_t *n)
{
	if (s->pg != NULL)
		return md_pg_queue_count(s->pg, gid, did, n);
	sqlite3_stmt *st = stmt(s, ST_QLEN_GET);
	bind_dev(st, 1, gid, did);
	int64_t v = one_int(st, 0);
	if (v < 0)
		return (int)v;
	*n = (uint64_t)v;
	return 0;
}

int md_store_over_limit(struct md_store *s, const uint8_t gid[static 32], uint64_t *ids, size_t cap)
{
	if (s->pg != NULL)
		return md_pg_over_limit(s->pg, gid, ids, cap);
	sqlite3_stmt *st = stmt(s, ST_QLEN_OVER);
	sqlite3_bind_blob(st, 1, gid, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, s->queue_limit);
	size_t n = 0;
	int rc;
	while (n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ids[n++] = (uint64_t)sqlite3_column_int64(st, 0);
	int err = n < cap && rc != SQLITE_DONE;
	sqlite3_reset(st);
	return err ? VEIL_EIO : (int)n;
}

int md_store_queue_len(struct md_store *s, const uint8_t gid[static 32], uint64_t did)
{
	if (s->pg != NULL)
		return md_pg_queue_len(s->pg, gid, did);
	sqlite3_stmt *st = stmt(s, ST_QUEUE_LEN);
	bind_dev(st, 1, gid, did);
	return (int)one_int(st, 0);
}

int md_store_queue_after(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                         int64_t after, int max, int (*fn)(void *arg, const struct md_queued *q),
                         void *arg)
{
	if (s->pg != NULL)
		return md_pg_queue_after(s->pg, gid, did, after, max, fn, arg);
	sqlite3_stmt *st = stmt(s, ST_QUEUE_AFTER);
	bind_dev(st, 1, gid, did);
	sqlite3_bind_int64(st, 3, after);
	sqlite3_bind_int(st, 4, max);
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct md_queued q = {
		    .seq = sqlite3_column_int64(st, 0),
		    .rid = (uint32_t)sqlite3_column_int64(st, 1),
		    .ts = (uint64_t)sqlite3_column_int64(st, 2),
		    .flags = (uint16_t)sqlite3_column_int(st, 3),
		    .envelope = sqlite3_column_blob(st, 4),
		    .envelope_len = (size_t)sqlite3_column_bytes(st, 4),
		};
		n++;
		if (fn(arg, &q) != 0)
			break;
	}
	int err = rc != SQLITE_ROW && rc != SQLITE_DONE;
	sqlite3_reset(st);
	return err ? VEIL_EIO : n;
}

/* Removes an acked entry inside the caller's transaction: 1 found, 0 not, negative on error. */
static int ack_in(struct md_store *s, const uint8_t gid[static 32], uint64_t did, uint32_t rid)
{
	sqlite3_stmt *st = stmt(s, ST_QUEUE_ACK);
	bind_dev(st, 1, gid, did);
	sqlite3_bind_int64(st, 3, rid);
	int rc, found = 0;
	if ((rc = run(st)) == 0 && (found = sqlite3_changes(s->db) > 0)) {
		st = stmt(s, ST_QLEN_DEC);
		bind_dev(st, 1, gid, did);
		rc = run(st);
	}
	return rc != 0 ? VEIL_EIO : found;
}

int md_store_queue_ack(struct md_store *s, const uint8_t gid[static 32], uint64_t did, uint32_t rid)
{
	if (s->pg != NULL)
		return md_pg_queue_ack(s->pg, gid, did, rid);
	int rc = tx_begin(s);
	if (rc != 0)
		return rc;
	int found = ack_in(s, gid, did, rid);
	rc = tx_end(s, found < 0 ? found : 0);
	return rc != 0 ? VEIL_EIO : found;
}

/* --- several nodes: only a PostgreSQL store is shared (mstore_pg.c) --- */

int md_store_shared(const struct md_store *s)
{
	return s->pg != NULL;
}

int md_store_leader_take(struct md_store *s, const uint8_t gid[static 32])
{
	return s->pg != NULL ? md_pg_leader_take(s->pg, gid) : 1;
}

int md_store_leader_release(struct md_store *s, const uint8_t gid[static 32])
{
	return s->pg != NULL ? md_pg_leader_release(s->pg, gid) : 0;
}

int md_store_leader_try(struct md_store *s, const uint8_t (*gids)[32], size_t n, uint8_t *taken)
{
	if (s->pg != NULL)
		return md_pg_leader_try(s->pg, gids, n, taken);
	memset(taken, 1, n);
	return (int)n;
}

int md_store_tx_take(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                     const uint8_t *scope, size_t scope_len, uint64_t *holder, uint8_t *hscope,
                     size_t hcap, size_t *hlen)
{
	if (s->pg != NULL)
		return md_pg_tx_take(s->pg, gid, did, scope, scope_len, holder, hscope, hcap, hlen);
	*holder = 0;
	*hlen = 0;
	return 1;
}

int md_store_tx_release(struct md_store *s, const uint8_t gid[static 32], uint64_t did,
                        const uint8_t *scope, size_t scope_len)
{
	return s->pg != NULL ? md_pg_tx_release(s->pg, gid, did, scope, scope_len) : 0;
}

int md_store_tx_reap(struct md_store *s, const uint8_t gid[static 32], uint64_t *holder,
                     uint8_t *hscope, size_t hcap, size_t *hlen)
{
	*holder = 0;
	*hlen = 0;
	return s->pg != NULL ? md_pg_tx_reap(s->pg, gid, holder, hscope, hcap, hlen) : 0;
}

int md_store_ping(struct md_store *s)
{
	return s->pg != NULL ? md_pg_ping(s->pg) : 0;
}

void md_store_on_event(struct md_store *s, void (*wake)(void *ctx), void *ctx)
{
	if (s->pg != NULL)
		md_pg_on_event(s->pg, wake, ctx);
}

int md_store_events(struct md_store *s, void (*fn)(void *arg, const struct md_event *ev), void *arg)
{
	return s->pg != NULL ? md_pg_events(s->pg, fn, arg) : 0;
}
