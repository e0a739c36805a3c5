/*
 * The mediator's store on PostgreSQL (see mstore.h; mstore.c, the SQLite
 * store, is the reference for each operation's rules). The tables (md_*)
 * are made by the chat store's migrations (srv/store/pg.c), which run
 * before the mediator opens.
 *
 * Three connections, all used from the HTTP thread but the last: c runs
 * the writes and the batch (BEGIN ... COMMIT: a reflect is acked only
 * after its COMMIT returned), rd reads the reflection queues outside any
 * transaction so the pump sees only committed rows, and lc LISTENs in a
 * thread of its own. Every statement is prepared once per connection and
 * run with binary parameters; nothing is spliced into SQL.
 *
 * Order across nodes: a reflect updates its group's row (taking the next
 * reflected ID) before it inserts, so the row lock, held to the commit,
 * orders the group's reflects; the seqs of a device's queue therefore
 * become visible in increasing order and a pump reading "after the last
 * seq sent" misses none. A batch holds reflects of one group only (a
 * reflect of another group commits it first), so two nodes' batches
 * never wait on each other in a cycle. Queue limits count the queued rows
 * (bounded) plus missed, so an ack deletes one row and locks nothing else.
 *
 * Leader and transaction lock: session advisory locks of c (keys from the
 * group ID), so PostgreSQL frees them when a node dies; md_tx names the
 * holder for TransactionRejected on another node. A node NOTIFYs
 * veil_md (payload: node ID, kind, group ID in hex, then the kind's data)
 * inside the transaction that makes the change, so it goes out on commit;
 * the listener queues the others' notifications and calls the wake
 * function, and the mediator takes them with md_pg_events on its thread.
 * A node that dies sends nothing: the listener also ticks (MD_EV_TICK,
 * every MD_STORE_TICK_MS), on which the mediator tries the free locks
 * (md_pg_leader_try, md_pg_tx_reap); after it lost its connection (or
 * dropped notifications) it raises MD_EV_RESYNC once LISTEN is back.
 *
 * A lost connection fails the call that saw it (VEIL_EIO: the mediator
 * closes that device, which reconnects and resends what was not acked);
 * the next call reconnects. Its advisory locks are gone then: no lock is
 * taken until the mediator took MD_EV_LOCKS_LOST and took its own again
 * (or let them go), so none is held twice in one session.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "mstore_pg.h"
#include "veil/err.h"
#include "veil/util.h"

#define MDPG_NODE_LEN 16          /* hex digits of the node ID in a payload */
#define MDPG_EVQ_MAX 4096         /* events waiting for the mediator at most */
#define MDPG_LISTEN_CHECK_MS 5000 /* the listener checks its connection this often */
#define MDPG_TRY_MAX 256          /* leadership locks tried in one statement at most */
#define MDPG_MAX_PARAMS 8

enum {
	Q_BEGIN,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_DEV_EXISTS,
	Q_DEV_COUNT,
	Q_DEVICES,
	Q_GROUP_ADD,
	Q_DEV_UPSERT,
	Q_DEV_SEEN,
	Q_DEV_DROP,
	Q_DEV_DROP_QUEUE,
	Q_SHARED,
	Q_SHARED_SET,
	Q_DEV_INFOS,
	Q_RID_TAKE,
	Q_REFLECT,
	Q_QUEUE_LEN,
	Q_QUEUE_AFTER,
	Q_QUEUE_ACK,
	Q_COUNT_GET,
	Q_OVER,
	Q_NOTIFY,
	Q_LOCK,
	Q_UNLOCK,
	Q_TX_SET,
	Q_TX_GET,
	Q_TX_DEL,
	Q_TX_REAP,
	Q_LOCK_MANY,
	Q_PING,
	Q_SAVEPOINT,
	Q_SAVEPOINT_RELEASE,
	Q_SAVEPOINT_ROLLBACK,
	Q_COUNT
};

/* Every parameter carries its type in a cast, which fixes how the binary value is read. */
static const char *const qsql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_DEV_EXISTS] =
        "SELECT 1::int8 FROM md_devices WHERE gid = $1::bytea AND device_id = $2::int8",
    [Q_DEV_COUNT] = "SELECT COUNT(*) FROM md_devices WHERE gid = $1::bytea",
    [Q_DEVICES] = "SELECT device_id, expiration_policy::int8, connected_since, last_seen "
                  "FROM md_devices WHERE gid = $1::bytea ORDER BY last_seen, device_id",
    [Q_GROUP_ADD] = "INSERT INTO md_groups (gid, next_rid) VALUES ($1::bytea, 1) "
                    "ON CONFLICT DO NOTHING",
    [Q_DEV_UPSERT] = "INSERT INTO md_devices (gid, device_id, expiration_policy, info, "
                     "connected_since, last_seen) VALUES ($1::bytea, $2::int8, $3::int8, "
                     "$4::bytea, $5::int8, $5::int8) ON CONFLICT (gid, device_id) DO UPDATE "
                     "SET expiration_policy = EXCLUDED.expiration_policy, info = EXCLUDED.info, "
                     "connected_since = EXCLUDED.connected_since, last_seen = EXCLUDED.last_seen",
    [Q_DEV_SEEN] = "UPDATE md_devices SET last_seen = $3::int8 WHERE gid = $1::bytea "
                   "AND device_id = $2::int8",
    [Q_DEV_DROP] = "DELETE FROM md_devices WHERE gid = $1::bytea AND device_id = $2::int8",
    [Q_DEV_DROP_QUEUE] = "DELETE FROM md_reflected WHERE gid = $1::bytea AND device_id = $2::int8",
    [Q_SHARED] = "SELECT shared_data FROM md_groups WHERE gid = $1::bytea",
    [Q_SHARED_SET] = "UPDATE md_groups SET shared_data = $2::bytea WHERE gid = $1::bytea",
    [Q_DEV_INFOS] = "SELECT device_id, expiration_policy::int8, connected_since, last_seen, info "
                    "FROM md_devices WHERE gid = $1::bytea ORDER BY device_id",
    /* Reflected IDs are u32 on the wire: after 2^32 - 1 comes 1 (0 is skipped). */
    [Q_RID_TAKE] = "UPDATE md_groups SET next_rid = CASE WHEN next_rid >= 4294967295 THEN 1 "
                   "ELSE next_rid + 1 END WHERE gid = $1::bytea "
                   "RETURNING CASE WHEN next_rid = 1 THEN 4294967295 ELSE next_rid - 1 END",
    /*
     * One reflect: the group's row first (the next ID, and the lock that
     * orders the group's reflects), then a row for each other device whose
     * queue has room (a bounded count), missed + 1 for the others.
     */
    [Q_REFLECT] =
        "WITH r AS (UPDATE md_groups SET next_rid = CASE WHEN next_rid >= 4294967295 THEN 1 "
        "ELSE next_rid + 1 END WHERE gid = $1::bytea "
        "RETURNING CASE WHEN next_rid = 1 THEN 4294967295 ELSE next_rid - 1 END AS rid), "
        "d AS (SELECT d.device_id, (SELECT COUNT(*) FROM (SELECT 1 FROM md_reflected q "
        "WHERE q.gid = d.gid AND q.device_id = d.device_id LIMIT $6::int8) x) < $6::int8 "
        "AND d.missed = 0 AS room FROM md_devices d, r "
        "WHERE d.gid = $1::bytea AND d.device_id <> $2::int8), "
        "i AS (INSERT INTO md_reflected (gid, device_id, rid, ts, flags, envelope) "
        "SELECT $1::bytea, d.device_id, r.rid, $3::int8, $4::int8, $5::bytea FROM d, r "
        "WHERE d.room), "
        "m AS (UPDATE md_devices SET missed = missed + 1 FROM d WHERE md_devices.gid = "
        "$1::bytea AND md_devices.device_id = d.device_id AND NOT d.room) "
        "SELECT rid FROM r",
    [Q_QUEUE_LEN] = "SELECT COUNT(*) FROM md_reflected WHERE gid = $1::bytea AND "
                    "device_id = $2::int8",
    [Q_QUEUE_AFTER] = "SELECT seq, rid, ts, flags::int8, envelope FROM md_reflected "
                      "WHERE gid = $1::bytea AND device_id = $2::int8 AND seq > $3::int8 "
                      "ORDER BY seq LIMIT $4::int8",
    [Q_QUEUE_ACK] = "DELETE FROM md_reflected WHERE gid = $1::bytea AND device_id = $2::int8 "
                    "AND rid = $3::int8",
    [Q_COUNT_GET] = "SELECT missed + (SELECT COUNT(*) FROM md_reflected q WHERE q.gid = d.gid "
                    "AND q.device_id = d.device_id) FROM md_devices d "
                    "WHERE d.gid = $1::bytea AND d.device_id = $2::int8",
    [Q_OVER] = "SELECT device_id FROM md_devices WHERE gid = $1::bytea AND missed > 0",
    [Q_NOTIFY] = "SELECT 1::int8 FROM pg_notify('veil_md', $1::text)",
    [Q_LOCK] = "SELECT pg_try_advisory_lock($1::int8)::int::int8",
    [Q_UNLOCK] = "SELECT pg_advisory_unlock($1::int8)::int::int8",
    [Q_TX_SET] = "INSERT INTO md_tx (gid, device_id, scope, node_id) VALUES ($1::bytea, "
                 "$2::int8, $3::bytea, $4::text) ON CONFLICT (gid) DO UPDATE SET "
                 "device_id = EXCLUDED.device_id, scope = EXCLUDED.scope, "
                 "node_id = EXCLUDED.node_id",
    [Q_TX_GET] = "SELECT device_id, scope FROM md_tx WHERE gid = $1::bytea",
    [Q_TX_DEL] = "DELETE FROM md_tx WHERE gid = $1::bytea AND node_id = $2::text",
    /* Only while this node holds the group's lock: any row there is a dead holder's. */
    [Q_TX_REAP] = "DELETE FROM md_tx WHERE gid = $1::bytea RETURNING device_id, scope",
    /* $1 in text form ('{k1,k2,...}'): the ordinals (from 1) of the locks taken. */
    [Q_LOCK_MANY] = "SELECT i FROM unnest($1::int8[]) WITH ORDINALITY AS t(k, i) "
                    "WHERE pg_try_advisory_lock(k)",
    [Q_PING] = "SELECT 1::int8",
    [Q_SAVEPOINT] = "SAVEPOINT one",
    [Q_SAVEPOINT_RELEASE] = "RELEASE one",
    [Q_SAVEPOINT_ROLLBACK] = "ROLLBACK TO one",
};

struct mdpg_ev {
	struct md_event ev;
	struct mdpg_ev *next;
};

struct md_pg {
	char *url;
	char node[MDPG_NODE_LEN + 1];
	PGconn *c, *rd;
	int in_batch;
	uint8_t batch_gid[32]; /* the group of the batch's reflects */
	int batch_has_gid;
	void (*batch_done)(void *ctx, int rc);
	void *batch_ctx;
	uint32_t queue_limit;
	/* The listener. */
	PGconn *lc;
	pthread_t th;
	int th_on;
	int stop_pipe[2];
	pthread_mutex_t mu;
	struct mdpg_ev *evq, **evtail;
	size_t nev;
	int tick, resync; /* an MD_EV_TICK / MD_EV_RESYNC is due (under mu) */
	int locks_lost;   /* c came back: MD_EV_LOCKS_LOST is due (HTTP thread only) */
	uint64_t c_ups;   /* sessions c has opened */
	void (*wake)(void *ctx);
	void *wake_ctx;
};

/* Parameters of one statement: binary values, integers in network order. */
struct args {
	int n;
	const char *v[MDPG_MAX_PARAMS];
	int l[MDPG_MAX_PARAMS];
	int f[MDPG_MAX_PARAMS];
	uint8_t ib[MDPG_MAX_PARAMS][8];
};

static void a_bytes(struct args *a, const void *p, size_t len)
{
	a->v[a->n] = p != NULL ? (const char *)p : "";
	a->l[a->n] = (int)len;
	a->f[a->n++] = 1;
}

static void a_null(struct args *a)
{
	a->v[a->n] = NULL;
	a->l[a->n] = 0;
	a->f[a->n++] = 1;
}

static void a_i64(struct args *a, int64_t v)
{
	uint64_t u = (uint64_t)v;
	for (int i = 0; i < 8; i++)
		a->ib[a->n][i] = (uint8_t)(u >> (56 - 8 * i));
	a_bytes(a, a->ib[a->n], 8);
}

static void a_text(struct args *a, const char *s)
{
	a_bytes(a, s, strlen(s));
}

/* A parameter in PostgreSQL's text form (NUL-terminated). */
static void a_textform(struct args *a, const char *s)
{
	a->v[a->n] = s;
	a->l[a->n] = 0;
	a->f[a->n++] = 0;
}

static void a_dev(struct args *a, const uint8_t gid[static 32], uint64_t did)
{
	a_bytes(a, gid, 32);
	a_i64(a, (int64_t)did);
}

static int64_t get_i64(const PGresult *r, int row, int col)
{
	const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
		return 0;
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u = u << 8 | p[i];
	return (int64_t)u;
}

static void first_line(const char *msg, char *out, size_t cap)
{
	size_t n = strcspn(msg, "\r\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, msg, n);
	out[n] = '\0';
}

static void on_notice(void *arg, const char *msg)
{
	char line[200];
	(void)arg;
	first_line(msg, line, sizeof line);
	veil_log_debug("mediator: PostgreSQL: %s", line);
}

/* app names the connection in pg_stat_activity (the listener has its own, for operators). */
static PGconn *connect_url(const char *url, const char *app)
{
	const char *const keys[] = {
	    "connect_timeout",     "application_name", "keepalives", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "dbname",     NULL};
	const char *const vals[] = {"5", app, "1", "10", "5", "3", url, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c != NULL)
		PQsetNoticeProcessor(c, on_notice, NULL);
	return c;
}

static int prepare(PGconn *c)
{
	for (int i = 0; i < Q_COUNT; i++) {
		char name[16];
		snprintf(name, sizeof name, "m%d", i);
		PGresult *r = PQprepare(c, name, qsql[i], 0, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok) {
			char msg[200];
			first_line(PQresultErrorMessage(r), msg, sizeof msg);
			veil_log_error("mediator: cannot prepare a statement: %s", msg);
		}
		PQclear(r);
		if (!ok)
			return VEIL_EIO;
	}
	return 0;
}

static void listen_wake(struct md_pg *p);

/* Opens *c (again after a loss): 0 or VEIL_EIO. */
static int conn_up(struct md_pg *p, PGconn **c, const char *what)
{
	if (*c != NULL && PQstatus(*c) == CONNECTION_OK)
		return 0;
	/* After a failed attempt *c is NULL: c's own count tells a first session from a later one. */
	bool again = *c != NULL || (c == &p->c && p->c_ups > 0);
	PQfinish(*c);
	*c = connect_url(p->url, "veild-mediator");
	if (*c == NULL)
		return VEIL_ENOMEM;
	if (PQstatus(*c) != CONNECTION_OK || prepare(*c) != 0) {
		char msg[200];
		first_line(PQerrorMessage(*c), msg, sizeof msg);
		veil_log_error("mediator: cannot connect to PostgreSQL (%s): %s", what, msg);
		PQfinish(*c);
		*c = NULL;
		return VEIL_EIO;
	}
	if (again)
		veil_log_info("mediator: the PostgreSQL connection (%s) is back", what);
	if (c == &p->c && p->c_ups++ > 0) {
		/* Its session's advisory locks died with the old one: the mediator is told. */
		p->locks_lost = 1;
		listen_wake(p);
	}
	return 0;
}

/*
 * Runs statement q on c (rd if on_rd) and returns its result if its status
 * is ok, else NULL (and logs the reason once).
 */
static PGresult *run_on(struct md_pg *p, bool on_rd, int q, const struct args *a)
{
	PGconn **c = on_rd ? &p->rd : &p->c;
	/* A transaction in progress is not silently replaced by a fresh connection. */
	if ((*c == NULL || PQstatus(*c) != CONNECTION_OK) && !on_rd && p->in_batch)
		return NULL;
	if (conn_up(p, c, on_rd ? "queue reads" : "queries") != 0)
		return NULL;
	char name[16];
	snprintf(name, sizeof name, "m%d", q);
	PGresult *r = PQexecPrepared(*c, name, a != NULL ? a->n : 0, a != NULL ? a->v : NULL,
	                             a != NULL ? a->l : NULL, a != NULL ? a->f : NULL, 1);
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	char msg[200];
	first_line(PQresultErrorMessage(r) != NULL ? PQresultErrorMessage(r) : "no memory", msg,
	           sizeof msg);
	if (PQstatus(*c) != CONNECTION_OK)
		veil_log_error("mediator: the PostgreSQL connection was lost: %s; reconnecting",
		               msg);
	else
		veil_log_error("mediator: a PostgreSQL statement failed: %s", msg);
	PQclear(r);
	return NULL;
}

static PGresult *run(struct md_pg *p, int q, const struct args *a)
{
	return run_on(p, false, q, a);
}

/* A statement without interesting rows: 0 or VEIL_EIO. */
static int run0(struct md_pg *p, int q, const struct args *a)
{
	PGresult *r = run(p, q, a);
	PQclear(r);
	return r != NULL ? 0 : VEIL_EIO;
}

/* One integer from a one-row query (none if no row), or VEIL_EIO. */
static int64_t one_int(struct md_pg *p, int q, const struct args *a, int64_t none)
{
	PGresult *r = run(p, q, a);
	if (r == NULL)
		return VEIL_EIO;
	int64_t v = PQntuples(r) > 0 ? get_i64(r, 0, 0) : none;
	PQclear(r);
	return v;
}

/* --- notifications --- */

/* NOTIFYs veil_md: node || kind || gid hex || tail, inside the current transaction. */
static int notify(struct md_pg *p, int kind, const uint8_t gid[static 32], const char *tail)
{
	char pl[MDPG_NODE_LEN + 1 + 64 + 1 + 40 + 2 * VEIL_MD_SCOPE_MAX + 1];
	char hex[65];
	if (veil_hex_encode(hex, sizeof hex, gid, 32) != 0)
		return VEIL_EIO;
	int n = snprintf(pl, sizeof pl, "%s%c%s%s", p->node, kind, hex, tail != NULL ? tail : "");
	if (n < 0 || (size_t)n >= sizeof pl)
		return VEIL_ELIMIT;
	struct args a = {0};
	a_text(&a, pl);
	return run0(p, Q_NOTIFY, &a);
}

int md_pg_parse_event(const char *node, const char *pl, struct md_event *ev)
{
	size_t len = strlen(pl);
	memset(ev, 0, sizeof *ev);
	if (len < MDPG_NODE_LEN + 1 + 64 || memcmp(pl, node, MDPG_NODE_LEN) == 0)
		return false;
	ev->kind = pl[MDPG_NODE_LEN];
	if (veil_hex_decode(ev->gid, 32, pl + MDPG_NODE_LEN + 1, 64) != 0)
		return false;
	const char *t = pl + MDPG_NODE_LEN + 1 + 64;
	switch (ev->kind) {
	case MD_EV_REFLECTED:
	case MD_EV_LEADER_FREE: return *t == '\0';
	case MD_EV_CLOSE:
	case MD_EV_TX_ENDED: break;
	default: return false;
	}
	/* did as 16 hex digits, then the code (4 digits) or the scope in hex. */
	uint8_t db[8];
	if (strlen(t) < 16 || veil_hex_decode(db, 8, t, 16) != 0)
		return false;
	ev->did = veil_load_u64le(db);
	t += 16;
	if (ev->kind == MD_EV_CLOSE) {
		if (strlen(t) != 4 || t[0] < '1' || t[0] > '9')
			return false;
		ev->code = 0;
		for (int i = 0; i < 4; i++) {
			if (t[i] < '0' || t[i] > '9')
				return false;
			ev->code = ev->code * 10 + (t[i] - '0');
		}
		return true;
	}
	size_t sl = strlen(t);
	if (sl % 2 != 0 || sl / 2 > sizeof ev->scope ||
	    (sl > 0 && veil_hex_decode(ev->scope, sl / 2, t, sl) != 0))
		return false;
	ev->scope_len = sl / 2;
	return true;
}

/* The device part of a payload: did as 16 hex digits (little-endian bytes). */
static void did_hex(char out[static 17], uint64_t did)
{
	uint8_t b[8];
	veil_store_u64le(b, did);
	if (veil_hex_encode(out, 17, b, 8) != 0)
		out[0] = '\0'; /* cannot happen: 17 is room enough */
}

/* Calls the wake function (outside mu: it may take locks of its own). */
static void listen_wake(struct md_pg *p)
{
	pthread_mutex_lock(&p->mu);
	void (*wake)(void *ctx) = p->wake;
	void *wake_ctx = p->wake_ctx;
	pthread_mutex_unlock(&p->mu);
	if (wake != NULL)
		wake(wake_ctx);
}

/* Sets a due flag (tick or resync) and wakes the mediator. */
static void listen_due(struct md_pg *p, int *flag)
{
	pthread_mutex_lock(&p->mu);
	*flag = 1;
	pthread_mutex_unlock(&p->mu);
	listen_wake(p);
}

static void listen_drain(struct md_pg *p)
{
	PGnotify *n;
	int added = 0;
	while ((n = PQnotifies(p->lc)) != NULL) {
		struct mdpg_ev *e = malloc(sizeof *e);
		if (strcmp(n->relname, "veil_md") == 0 &&
		    (e == NULL || md_pg_parse_event(p->node, n->extra, &e->ev))) {
			pthread_mutex_lock(&p->mu);
			if (e != NULL && p->nev < MDPG_EVQ_MAX) {
				e->next = NULL;
				*p->evtail = e;
				p->evtail = &e->next;
				p->nev++;
				e = NULL;
			} else {
				/* Dropped: the mediator reads everything again instead. */
				p->resync = 1;
			}
			added = 1;
			pthread_mutex_unlock(&p->mu);
		}
		free(e);
		PQfreemem(n);
	}
	if (added)
		listen_wake(p);
}

static int listen_connect(struct md_pg *p)
{
	PQfinish(p->lc);
	p->lc = connect_url(p->url, "veild-mediator-listen");
	if (p->lc == NULL || PQstatus(p->lc) != CONNECTION_OK)
		return VEIL_EIO;
	PGresult *r = PQexec(p->lc, "LISTEN veil_md");
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	return ok && PQsetnonblocking(p->lc, 1) == 0 ? 0 : VEIL_EIO;
}

/* 1 readable, 0 timeout, -1 stop. */
static int listen_wait(struct md_pg *p, int fd, int ms)
{
	struct pollfd f[2] = {{.fd = p->stop_pipe[0], .events = POLLIN},
	                      {.fd = fd, .events = POLLIN}};
	int n = poll(f, fd >= 0 ? 2 : 1, ms);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	if (f[0].revents != 0)
		return -1;
	return n > 0 && fd >= 0 && f[1].revents != 0 ? 1 : 0;
}

/*
 * Also the mediator's clock for several nodes: a tick every
 * MD_STORE_TICK_MS, lost or not (the mediator checks for freed locks), and
 * a resync once LISTEN is back after a loss (the notifications sent in
 * between never arrive: the mediator reads the store again, after LISTEN,
 * so nothing falls in a gap).
 */
static void *listen_thread(void *arg)
{
	struct md_pg *p = arg;
	uint32_t backoff = 100;
	bool lost = false;
	uint64_t next_tick = veil_mono_ms() + MD_STORE_TICK_MS;
	uint64_t next_check = veil_mono_ms() + MDPG_LISTEN_CHECK_MS, next_try = 0;
	for (;;) {
		uint64_t now = veil_mono_ms();
		if (now >= next_tick) {
			next_tick = now + MD_STORE_TICK_MS;
			listen_due(p, &p->tick);
		}
		if (lost) {
			/* The ticks go on meanwhile: a hand-over needs no listener. */
			if (now < next_try || listen_connect(p) != 0) {
				if (now >= next_try) {
					next_try = veil_mono_ms() + backoff;
					backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
				}
				now = veil_mono_ms();
				uint64_t until = next_try < next_tick ? next_try : next_tick;
				if (listen_wait(p, -1, until > now ? (int)(until - now) : 0) < 0)
					break;
				continue;
			}
			lost = false;
			backoff = 100;
			veil_log_info("mediator: the PostgreSQL connection (listen) is back");
			listen_due(p, &p->resync);
		}
		now = veil_mono_ms();
		int w =
		    listen_wait(p, PQsocket(p->lc), next_tick > now ? (int)(next_tick - now) : 0);
		if (w < 0)
			break;
		if (w == 1 && PQconsumeInput(p->lc) == 1) {
			listen_drain(p);
			continue;
		}
		if (w == 0 && veil_mono_ms() < next_check)
			continue;
		if (w == 0 && PQstatus(p->lc) == CONNECTION_OK) {
			next_check = veil_mono_ms() + MDPG_LISTEN_CHECK_MS;
			/* Idle: check the connection (a dead server shows here). */
			PGresult *r = PQexec(p->lc, "SELECT 1");
			bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
			PQclear(r);
			listen_drain(p);
			if (ok)
				continue;
		}
		char msg[200];
		first_line(PQerrorMessage(p->lc), msg, sizeof msg);
		veil_log_error("mediator: the PostgreSQL connection (listen) was lost: %s; "
		               "reconnecting",
		               msg[0] ? msg : "no reason given");
		lost = true;
	}
	return NULL;
}

/* --- open, close --- */

int md_pg_open(struct md_pg **out, const char *url)
{
	*out = NULL;
	struct md_pg *p = calloc(1, sizeof *p);
	if (p == NULL)
		return VEIL_ENOMEM;
	p->stop_pipe[0] = p->stop_pipe[1] = -1;
	p->queue_limit = UINT32_MAX;
	p->evtail = &p->evq;
	pthread_mutex_init(&p->mu, NULL);
	uint8_t nid[8];
	randombytes_buf(nid, sizeof nid);
	p->url = strdup(url);
	int rc = p->url == NULL ? VEIL_ENOMEM : 0;
	if (rc == 0 && veil_hex_encode(p->node, sizeof p->node, nid, sizeof nid) != 0)
		rc = VEIL_EIO;
	if (rc == 0)
		rc = conn_up(p, &p->c, "queries");
	if (rc == 0)
		rc = conn_up(p, &p->rd, "queue reads");
	if (rc == 0 && (pipe(p->stop_pipe) != 0 || listen_connect(p) != 0)) {
		veil_log_error("mediator: cannot LISTEN on PostgreSQL");
		rc = VEIL_EIO;
	}
	if (rc == 0 && pthread_create(&p->th, NULL, listen_thread, p) != 0)
		rc = VEIL_ENOMEM;
	if (rc != 0) {
		md_pg_close(p);
		return rc;
	}
	p->th_on = 1;
	*out = p;
	return 0;
}

void md_pg_close(struct md_pg *p)
{
	if (p == NULL)
		return;
	if (p->th_on) {
		ssize_t w = write(p->stop_pipe[1], "x", 1);
		(void)w;
		pthread_join(p->th, NULL);
	}
	if (p->stop_pipe[0] >= 0) {
		close(p->stop_pipe[0]);
		close(p->stop_pipe[1]);
	}
	PQfinish(p->lc);
	PQfinish(p->rd);
	PQfinish(p->c);
	while (p->evq != NULL) {
		struct mdpg_ev *e = p->evq;
		p->evq = e->next;
		free(e);
	}
	pthread_mutex_destroy(&p->mu);
	free(p->url);
	free(p);
}

/* --- transactions --- */

static int tx_begin(struct md_pg *p)
{
	if (p->in_batch)
		(void)md_pg_batch_commit(p);
	return run0(p, Q_BEGIN, NULL);
}

static int tx_end(struct md_pg *p, int rc)
{
	if (rc == 0)
		rc = run0(p, Q_COMMIT, NULL);
	if (rc != 0)
		(void)run0(p, Q_ROLLBACK, NULL);
	return rc;
}

/* --- devices --- */

int md_pg_device_exists(struct md_pg *p, const uint8_t gid[static 32], uint64_t did)
{
	struct args a = {0};
	a_dev(&a, gid, did);
	return (int)one_int(p, Q_DEV_EXISTS, &a, 0);
}

int md_pg_device_count(struct md_pg *p, const uint8_t gid[static 32])
{
	struct args a = {0};
	a_bytes(&a, gid, 32);
	return (int)one_int(p, Q_DEV_COUNT, &a, 0);
}

int md_pg_devices(struct md_pg *p, const uint8_t gid[static 32], struct md_device_row *rows,
                  size_t cap)
{
	struct args a = {0};
	a_bytes(&a, gid, 32);
	PGresult *r = run(p, Q_DEVICES, &a);
	if (r == NULL)
		return VEIL_EIO;
	size_t n = 0;
	for (int i = 0; i < PQntuples(r) && n < cap; i++, n++) {
		rows[n].device_id = (uint64_t)get_i64(r, i, 0);
		rows[n].expiration_policy = (int)get_i64(r, i, 1);
		rows[n].connected_since = (uint64_t)get_i64(r, i, 2);
		rows[n].last_seen = (uint64_t)get_i64(r, i, 3);
	}
	PQclear(r);
	return (int)n;
}

int md_pg_device_login(struct md_pg *p, const uint8_t gid[static 32], uint64_t did,
                       int expiration_policy, const uint8_t *info, size_t info_len, uint64_t now)
{
	char tail[24];
	int rc = tx_begin(p);
	if (rc != 0)
		return rc;
	struct args a = {0};
	a_bytes(&a, gid, 32);
	rc = run0(p, Q_GROUP_ADD, &a);
	if (rc == 0) {
		struct args b = {0};
		a_dev(&b, gid, did);
		a_i64(&b, expiration_policy);
		if (info_len > 0)
			a_bytes(&b, info, info_len);
		else
			a_null(&b);
		a_i64(&b, (int64_t)now);
		rc = run0(p, Q_DEV_UPSERT, &b);
	}
	/* An older connection of the device on another node is closed (4112). */
	did_hex(tail, did);
	snprintf(tail + 16, sizeof tail - 16, "%04d", VEIL_MD_CLOSE_DUPLICATE);
	if (rc == 0)
		rc = notify(p, MD_EV_CLOSE, gid, tail);
	return tx_end(p, rc);
}

int md_pg_device_seen(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint64_t now)
{
	struct args a = {0};
	a_dev(&a, gid, did);
	a_i64(&a, (int64_t)now);
	return run0(p, Q_DEV_SEEN, &a);
}

int md_pg_device_drop(struct md_pg *p, const uint8_t gid[static 32], uint64_t did)
{
	char tail[24];
	int rc = tx_begin(p);
	if (rc != 0)
		return rc;
	struct args a = {0};
	a_dev(&a, gid, did);
	rc = run0(p, Q_DEV_DROP, &a);
	if (rc == 0)
		rc = run0(p, Q_DEV_DROP_QUEUE, &a);
	/* Connected to another node, it is closed there (4113). */
	did_hex(tail, did);
	snprintf(tail + 16, sizeof tail - 16, "%04d", VEIL_MD_CLOSE_DROPPED);
	if (rc == 0)
		rc = notify(p, MD_EV_CLOSE, gid, tail);
	return tx_end(p, rc);
}

int md_pg_shared_data(struct md_pg *p, const uint8_t gid[static 32], uint8_t *out, size_t cap,
                      size_t *len)
{
	*len = 0;
	struct args a = {0};
	a_bytes(&a, gid, 32);
	PGresult *r = run(p, Q_SHARED, &a);
	if (r == NULL)
		return VEIL_EIO;
	int ret = 0;
	if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
		size_t n = (size_t)PQgetlength(r, 0, 0);
		if (n > cap)
			ret = VEIL_ELIMIT;
		else if (n > 0)
			memcpy(out, PQgetvalue(r, 0, 0), n);
		*len = ret == 0 ? n : 0;
	}
	PQclear(r);
	return ret;
}

int md_pg_set_shared_data(struct md_pg *p, const uint8_t gid[static 32], const uint8_t *box,
                          size_t len)
{
	if (p->in_batch)
		(void)md_pg_batch_commit(p);
	struct args a = {0};
	a_bytes(&a, gid, 32);
	if (len > 0)
		a_bytes(&a, box, len);
	else
		a_null(&a);
	return run0(p, Q_SHARED_SET, &a);
}

int md_pg_device_infos(struct md_pg *p, const uint8_t gid[static 32],
                       int (*fn)(void *arg, const struct md_device_row *row, const uint8_t *info,
                                 size_t info_len),
                       void *arg)
{
	struct args a = {0};
	a_bytes(&a, gid, 32);
	PGresult *r = run(p, Q_DEV_INFOS, &a);
	if (r == NULL)
		return VEIL_EIO;
	int n = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		struct md_device_row row = {
		    .device_id = (uint64_t)get_i64(r, i, 0),
		    .expiration_policy = (int)get_i64(r, i, 1),
		    .connected_since = (uint64_t)get_i64(r, i, 2),
		    .last_seen = (uint64_t)get_i64(r, i, 3),
		};
		bool null = PQgetisnull(r, i, 4);
		n++;
		if (fn(arg, &row, null ? NULL : (const uint8_t *)PQgetvalue(r, i, 4),
		       null ? 0 : (size_t)PQgetlength(r, i, 4)) != 0)
			break;
	}
	PQclear(r);
	return n;
}

/* --- reflects --- */

static int take_rid(struct md_pg *p, const uint8_t gid[static 32], uint32_t *rid)
{
	struct args a = {0};
	a_bytes(&a, gid, 32);
	int64_t v = one_int(p, Q_RID_TAKE, &a, 1);
	if (v < 0)
		return (int)v;
	*rid = (uint32_t)v;
	return 0;
}

int md_pg_next_rid(struct md_pg *p, const uint8_t gid[static 32], uint32_t *rid)
{
	int rc = tx_begin(p);
	if (rc != 0)
		return rc;
	return tx_end(p, take_rid(p, gid, rid));
}

static int reflect_in(struct md_pg *p, const uint8_t gid[static 32], uint64_t sender,
                      uint16_t flags, uint64_t ts, const uint8_t *env, size_t env_len,
                      uint32_t *rid)
{
	struct args a = {0};
	a_dev(&a, gid, sender);
	a_i64(&a, (int64_t)ts);
	a_i64(&a, flags);
	a_bytes(&a, env, env_len);
	a_i64(&a, p->queue_limit);
	int64_t v = one_int(p, Q_REFLECT, &a, 1);
	if (v < 0)
		return (int)v;
	*rid = (uint32_t)v;
	return 0;
}

int md_pg_reflect(struct md_pg *p, const uint8_t gid[static 32], uint64_t sender, uint16_t flags,
                  uint64_t ts, const uint8_t *env, size_t env_len, uint32_t *rid)
{
	int rc = tx_begin(p);
	if (rc != 0)
		return rc;
	rc = reflect_in(p, gid, sender, flags, ts, env, env_len, rid);
	if (rc == 0)
		rc = notify(p, MD_EV_REFLECTED, gid, NULL);
	return tx_end(p, rc);
}

void md_pg_on_batch(struct md_pg *p, void (*fn)(void *ctx, int rc), void *ctx)
{
	p->batch_done = fn;
	p->batch_ctx = ctx;
}

int md_pg_batch_open(const struct md_pg *p)
{
	return p->in_batch;
}

static int batch_begin(struct md_pg *p)
{
	if (p->in_batch)
		return 0;
	int rc = run0(p, Q_BEGIN, NULL);
	if (rc != 0)
		return rc;
	p->in_batch = 1;
	p->batch_has_gid = 0;
	return 0;
}

int md_pg_batch_reflect(struct md_pg *p, const uint8_t gid[static 32], uint64_t sender,
                        uint16_t flags, uint64_t ts, const uint8_t *env, size_t env_len,
                        uint32_t *rid)
{
	/* One group per batch: its row lock is the only one a batch waits for. */
	if (p->in_batch && p->batch_has_gid && memcmp(p->batch_gid, gid, 32) != 0)
		(void)md_pg_batch_commit(p);
	int rc = batch_begin(p);
	if (rc != 0)
		return rc;
	if ((rc = run0(p, Q_SAVEPOINT, NULL)) != 0)
		return rc;
	rc = reflect_in(p, gid, sender, flags, ts, env, env_len, rid);
	if (rc == 0 && !p->batch_has_gid)
		rc = notify(p, MD_EV_REFLECTED, gid, NULL);
	if (rc != 0)
		(void)run0(p, Q_SAVEPOINT_ROLLBACK, NULL);
	(void)run0(p, Q_SAVEPOINT_RELEASE, NULL);
	if (rc == 0) {
		memcpy(p->batch_gid, gid, 32);
		p->batch_has_gid = 1;
	}
	return rc;
}

static int ack_in(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint32_t rid)
{
	struct args a = {0};
	a_dev(&a, gid, did);
	a_i64(&a, rid);
	PGresult *r = run(p, Q_QUEUE_ACK, &a);
	if (r == NULL)
		return VEIL_EIO;
	int found = strcmp(PQcmdTuples(r), "0") != 0;
	PQclear(r);
	return found;
}

int md_pg_batch_ack(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint32_t rid)
{
	int rc = batch_begin(p);
	return rc != 0 ? rc : ack_in(p, gid, did, rid);
}

int md_pg_batch_commit(struct md_pg *p)
{
	if (!p->in_batch)
		return 0;
	p->in_batch = 0;
	int rc = run0(p, Q_COMMIT, NULL);
	if (rc != 0)
		(void)run0(p, Q_ROLLBACK, NULL);
	if (p->batch_done != NULL)
		p->batch_done(p->batch_ctx, rc);
	return rc;
}

int md_pg_queue_ack(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint32_t rid)
{
	int rc = tx_begin(p);
	if (rc != 0)
		return rc;
	int found = ack_in(p, gid, did, rid);
	rc = tx_end(p, found < 0 ? found : 0);
	return rc != 0 ? VEIL_EIO : found;
}

void md_pg_set_queue_limit(struct md_pg *p, uint32_t limit)
{
	p->queue_limit = limit;
}

int md_pg_queue_count(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, uint64_t *n)
{
	struct args a = {0};
	a_dev(&a, gid, did);
	int64_t v = one_int(p, Q_COUNT_GET, &a, 0);
	if (v < 0)
		return (int)v;
	*n = (uint64_t)v;
	return 0;
}

int md_pg_over_limit(struct md_pg *p, const uint8_t gid[static 32], uint64_t *ids, size_t cap)
{
	struct args a = {0};
	a_bytes(&a, gid, 32);
	PGresult *r = run(p, Q_OVER, &a);
	if (r == NULL)
		return VEIL_EIO;
	size_t n = 0;
	for (int i = 0; i < PQntuples(r) && n < cap; i++)
		ids[n++] = (uint64_t)get_i64(r, i, 0);
	PQclear(r);
	return (int)n;
}

int md_pg_queue_len(struct md_pg *p, const uint8_t gid[static 32], uint64_t did)
{
	struct args a = {0};
	a_dev(&a, gid, did);
	return (int)one_int(p, Q_QUEUE_LEN, &a, 0);
}

int md_pg_queue_after(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, int64_t after,
                      int max, int (*fn)(void *arg, const struct md_queued *q), void *arg)
{
	struct args a = {0};
	a_dev(&a, gid, did);
	a_i64(&a, after);
	a_i64(&a, max);
	/* Outside the batch: only committed rows, in the order their group's lock gave them. */
	PGresult *r = run_on(p, true, Q_QUEUE_AFTER, &a);
	if (r == NULL)
		return VEIL_EIO;
	int n = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		struct md_queued q = {
		    .seq = get_i64(r, i, 0),
		    .rid = (uint32_t)get_i64(r, i, 1),
		    .ts = (uint64_t)get_i64(r, i, 2),
		    .flags = (uint16_t)get_i64(r, i, 3),
		    .envelope = (const uint8_t *)PQgetvalue(r, i, 4),
		    .envelope_len = (size_t)PQgetlength(r, i, 4),
		};
		n++;
		if (fn(arg, &q) != 0)
			break;
	}
	PQclear(r);
	return n;
}

/* --- several nodes --- */

/* The advisory lock key of the group's leadership ('L') or transaction lock ('T'). */
static int64_t lock_key(int tag, const uint8_t gid[static 32])
{
	uint8_t in[33], h[8];
	in[0] = (uint8_t)tag;
	memcpy(in + 1, gid, 32);
	crypto_generichash(h, sizeof h, in, sizeof in, NULL, 0);
	return (int64_t)veil_load_u64le(h);
}

static int unlock(struct md_pg *p, int tag, const uint8_t gid[static 32])
{
	struct args a = {0};
	a_i64(&a, lock_key(tag, gid));
	return one_int(p, Q_UNLOCK, &a, 0) < 0 ? VEIL_EIO : 0;
}

/*
 * 1 taken, 0 held elsewhere, < 0 error. Nothing is taken while the
 * mediator has not heard that the locks were lost (MD_EV_LOCKS_LOST): it
 * takes them again then, and a lock taken twice in one session would need
 * two unlocks.
 */
static int try_lock(struct md_pg *p, int tag, const uint8_t gid[static 32])
{
	if (p->locks_lost)
		return 0;
	struct args a = {0};
	a_i64(&a, lock_key(tag, gid));
	int got = (int)one_int(p, Q_LOCK, &a, 0);
	if (got == 1 && p->locks_lost) {
		/* The statement itself reconnected: give it back. */
		(void)unlock(p, tag, gid);
		return 0;
	}
	return got;
}

int md_pg_ping(struct md_pg *p)
{
	if (p->in_batch)
		return 0; /* the batch's commit comes first and shows a loss as well */
	/* A loss fails the first statement and the second reconnects; known down, one does. */
	bool up = p->c != NULL && PQstatus(p->c) == CONNECTION_OK;
	int rc = run0(p, Q_PING, NULL);
	if (rc == 0 || !up)
		return rc;
	return run0(p, Q_PING, NULL);
}

int md_pg_leader_take(struct md_pg *p, const uint8_t gid[static 32])
{
	return try_lock(p, 'L', gid);
}

int md_pg_leader_release(struct md_pg *p, const uint8_t gid[static 32])
{
	if (p->in_batch)
		(void)md_pg_batch_commit(p);
	int rc = unlock(p, 'L', gid);
	if (rc == 0)
		rc = notify(p, MD_EV_LEADER_FREE, gid, NULL);
	return rc;
}

int md_pg_leader_try(struct md_pg *p, const uint8_t (*gids)[32], size_t n, uint8_t *taken)
{
	/* '{' then at most MDPG_TRY_MAX keys of up to 20 characters and a comma, '}'. */
	char list[2 + MDPG_TRY_MAX * 21 + 1];
	int total = 0;
	memset(taken, 0, n);
	if (p->in_batch)
		(void)md_pg_batch_commit(p);
	for (size_t at = 0; at < n && !p->locks_lost; at += MDPG_TRY_MAX) {
		size_t k = n - at < MDPG_TRY_MAX ? n - at : MDPG_TRY_MAX, o = 0;
		list[o++] = '{';
		for (size_t i = 0; i < k; i++) {
			int w = snprintf(list + o, sizeof list - o, "%s%lld", i > 0 ? "," : "",
			                 (long long)lock_key('L', gids[at + i]));
			if (w < 0 || (size_t)w >= sizeof list - o)
				return VEIL_ELIMIT; /* cannot happen: the buffer fits MDPG_TRY_MAX */
			o += (size_t)w;
		}
		list[o++] = '}';
		list[o] = '\0';
		struct args a = {0};
		a_textform(&a, list);
		PGresult *r = run(p, Q_LOCK_MANY, &a);
		if (r == NULL)
			return VEIL_EIO;
		for (int i = 0; i < PQntuples(r); i++) {
			int64_t ord = get_i64(r, i, 0);
			if (ord >= 1 && (uint64_t)ord <= k && !taken[at + (size_t)ord - 1]) {
				taken[at + (size_t)ord - 1] = 1;
				total++;
			}
		}
		PQclear(r);
	}
	if (p->locks_lost && total > 0) {
		/* The statement reconnected (see try_lock): all of them go back. */
		for (size_t i = 0; i < n; i++)
			if (taken[i])
				(void)unlock(p, 'L', gids[i]);
		memset(taken, 0, n);
		total = 0;
	}
	return total;
}

int md_pg_tx_take(struct md_pg *p, const uint8_t gid[static 32], uint64_t did, const uint8_t *scope,
                  size_t scope_len, uint64_t *holder, uint8_t *hscope, size_t hcap, size_t *hlen)
{
	*holder = 0;
	*hlen = 0;
	if (p->in_batch)
		(void)md_pg_batch_commit(p);
	int got = try_lock(p, 'T', gid);
	if (got < 0)
		return got;
	struct args a = {0};
	a_bytes(&a, gid, 32);
	if (got == 1) {
		a_i64(&a, (int64_t)did);
		a_bytes(&a, scope, scope_len);
		a_text(&a, p->node);
		if (run0(p, Q_TX_SET, &a) != 0) {
			(void)unlock(p, 'T', gid);
			return VEIL_EIO;
		}
		return 1;
	}
	PGresult *r = run(p, Q_TX_GET, &a);
	if (r == NULL)
		return VEIL_EIO;
	if (PQntuples(r) > 0) {
		*holder = (uint64_t)get_i64(r, 0, 0);
		size_t n = (size_t)PQgetlength(r, 0, 1);
		if (n <= hcap) {
			memcpy(hscope, PQgetvalue(r, 0, 1), n);
			*hlen = n;
		}
	}
	PQclear(r);
	return 0;
}

int md_pg_tx_release(struct md_pg *p, const uint8_t gid[static 32], uint64_t did,
                     const uint8_t *scope, size_t scope_len)
{
	char tail[16 + 2 * VEIL_MD_SCOPE_MAX + 1];
	if (scope_len > VEIL_MD_SCOPE_MAX)
		return VEIL_ELIMIT;
	if (p->in_batch)
		(void)md_pg_batch_commit(p);
	did_hex(tail, did);
	if (scope_len > 0 && veil_hex_encode(tail + 16, sizeof tail - 16, scope, scope_len) != 0)
		return VEIL_EIO;
	int rc = run0(p, Q_BEGIN, NULL);
	if (rc != 0)
		return rc;
	struct args a = {0};
	a_bytes(&a, gid, 32);
	a_text(&a, p->node);
	rc = run0(p, Q_TX_DEL, &a);
	if (rc == 0)
		rc = notify(p, MD_EV_TX_ENDED, gid, tail);
	rc = tx_end(p, rc);
	/* The lock goes after the row, so a node that gets it finds no stale holder. */
	int urc = unlock(p, 'T', gid);
	return rc != 0 ? rc : urc;
}

int md_pg_tx_reap(struct md_pg *p, const uint8_t gid[static 32], uint64_t *holder, uint8_t *hscope,
                  size_t hcap, size_t *hlen)
{
	char tail[16 + 2 * VEIL_MD_SCOPE_MAX + 1];
	*holder = 0;
	*hlen = 0;
	if (p->in_batch)
		(void)md_pg_batch_commit(p);
	int got = try_lock(p, 'T', gid);
	if (got <= 0)
		return got; /* a live node holds it (or an error) */
	int rc = run0(p, Q_BEGIN, NULL);
	if (rc != 0) {
		(void)unlock(p, 'T', gid);
		return rc;
	}
	struct args a = {0};
	a_bytes(&a, gid, 32);
	PGresult *r = run(p, Q_TX_REAP, &a);
	rc = r != NULL ? 0 : VEIL_EIO;
	if (r != NULL && PQntuples(r) > 0) {
		*holder = (uint64_t)get_i64(r, 0, 0);
		size_t n = (size_t)PQgetlength(r, 0, 1);
		if (n <= hcap && n <= VEIL_MD_SCOPE_MAX) {
			memcpy(hscope, PQgetvalue(r, 0, 1), n);
			*hlen = n;
		}
		/* The other nodes' devices that were rejected wait for this end too. */
		did_hex(tail, *holder);
		if (*hlen > 0 && veil_hex_encode(tail + 16, sizeof tail - 16, hscope, *hlen) != 0)
			rc = VEIL_EIO;
		if (rc == 0)
			rc = notify(p, MD_EV_TX_ENDED, gid, tail);
	}
	PQclear(r);
	rc = tx_end(p, rc);
	/* As in md_pg_tx_release: the lock goes after the row. */
	int urc = unlock(p, 'T', gid);
	if (rc != 0 || urc != 0) {
		*holder = 0;
		*hlen = 0;
		return rc != 0 ? rc : urc;
	}
	return 1;
}

void md_pg_on_event(struct md_pg *p, void (*wake)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&p->mu);
	p->wake = wake;
	p->wake_ctx = ctx;
	pthread_mutex_unlock(&p->mu);
}

int md_pg_events(struct md_pg *p, void (*fn)(void *arg, const struct md_event *ev), void *arg)
{
	pthread_mutex_lock(&p->mu);
	struct mdpg_ev *e = p->evq;
	p->evq = NULL;
	p->evtail = &p->evq;
	p->nev = 0;
	int tick = p->tick, resync = p->resync;
	p->tick = p->resync = 0;
	pthread_mutex_unlock(&p->mu);
	int n = 0;
	if (p->locks_lost) {
		p->locks_lost = 0;
		struct md_event ev = {.kind = MD_EV_LOCKS_LOST};
		fn(arg, &ev);
		n++;
	}
	/* A resync first: the events queued since cover only what came after LISTEN. */
	if (resync) {
		struct md_event ev = {.kind = MD_EV_RESYNC};
		fn(arg, &ev);
		n++;
	}
	if (tick) {
		struct md_event ev = {.kind = MD_EV_TICK};
		fn(arg, &ev);
		n++;
	}
	while (e != NULL) {
		struct mdpg_ev *next = e->next;
		fn(arg, &e->ev);
		free(e);
		e = next;
		n++;
	}
	return n;
}
