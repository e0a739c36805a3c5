/*
 * The PostgreSQL backend (selected by a postgresql:// or postgres:// URL).
 *
 * The same operations and semantics as the SQLite backend (sqlite.c is the
 * reference; its comments explain each rule). Two connections: q is used
 * only by the store thread (a batch is BEGIN ... COMMIT on it), sy serves
 * the synchronous calls from any thread under a mutex. Every statement is
 * prepared once per connection (again after a reconnect) and run with
 * binary parameters and results, so no value is ever spliced into SQL.
 *
 * Several veild may share one database, so no count the limits depend on
 * is taken from this node alone: a put takes a transaction-level advisory
 * lock on its recipient, then one INSERT bounds the recipient's rows (and
 * the sender's), inserts only below both limits and NOTIFYs; only a
 * refused or duplicate put takes the slower path of sqlite.c's rules,
 * which counts exactly. The bound is cheap (struct pg_bound: the rows
 * counted before plus those stored since), so a deep queue is not counted
 * on every put. The lock is held until the batch commits, so two nodes
 * cannot both take the last place in a queue, and a recipient's seqs
 * (from one identity column) become visible in increasing order.
 *
 * A batch is one round trip and its COMMIT (pg_q_writes, libpq's pipeline
 * mode): BEGIN, one statement locking every recipient of the batch in the
 * order of its lock key (so that nodes cannot deadlock), then each put's
 * INSERT and each ack's DELETE; the results are read after. The slow paths
 * then run one by one, in job order; when a later write of the batch
 * touched a recipient after a put to it was refused, the transaction is
 * rolled back and the writes run again one by one, so every outcome is the
 * one a write running alone in that order would have had.
 *
 * A lost connection fails the job that saw it with VEIL_EIO (the callback
 * says so, nothing is acked that is not committed; the sender resends and
 * the duplicate rule answers with the seq if the commit did land). The next
 * use reconnects, at once the first time and then with a growing back-off,
 * and one line is logged when the connection goes and one when it returns.
 *
 * Several nodes: a put NOTIFYs the channel veil_put in its own transaction,
 * so the notification goes out only on commit, with the payload node ID (16
 * hex digits, random per open) followed by the recipient's ID. Every node
 * LISTENs on a third connection of its own, in a thread that polls its
 * socket, and passes each notification from another node to the sink
 * (VEIL_STORE_EV_PUT); when that connection is lost it reconnects with the
 * same back-off and then reports VEIL_STORE_EV_RESYNC, since notifications
 * sent meanwhile are gone. The recipient ID is in clear in the payload:
 * only sessions of the database's own role see it, and the messages table
 * holds the same IDs.
 *
 * One connection per identity across nodes: a login upserts the identity's
 * row in sessions with a generation from one sequence and NOTIFYs
 * veil_session (node ID, identity, generation) in the same statement; a
 * node with an older connection of that identity closes it
 * (VEIL_STORE_EV_SESSION). After the listening connection was lost, the
 * sessions rows with a generation newer than the last mark are passed on
 * the same way, so a replaced connection closes even if its notice was missed.
 *
 * The schema version lives in the table veil_schema; migrations[] are run
 * in one transaction at open, under an advisory lock so that nodes starting
 * together do not race.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "store_backend.h"
#include "veil/err.h"
#include "veil/util.h"

#define PG_ID_ATTEMPTS 32         /* fresh random IDs tried before giving up */
#define PG_MAX_PARAMS 13          /* most parameters of one statement */
#define PG_PIPE_CHUNK 128         /* statements sent before their results are read */
#define PG_BACKOFF_MIN_MS 100     /* first wait after a failed reconnect */
#define PG_BACKOFF_MAX_MS 5000    /* longest wait between reconnects */
#define PG_LOCK_MIGRATE 736800101 /* advisory lock key of the migration */
#define PG_CONNECT_TIMEOUT "5"    /* seconds, unless the URL says otherwise */
#define PG_LISTEN_CHECK_MS 30000  /* the listener checks its connection this often */

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE identities ("
    " id TEXT COLLATE \"C\" PRIMARY KEY,"
    " pk BYTEA NOT NULL UNIQUE,"
    " state INTEGER NOT NULL DEFAULT 0,"
    " feature_mask BIGINT NOT NULL DEFAULT 0,"
    " created_ms BIGINT NOT NULL);"
    "CREATE TABLE push_tokens ("
    " id TEXT COLLATE \"C\" PRIMARY KEY REFERENCES identities(id),"
    " type INTEGER NOT NULL,"
    " token BYTEA NOT NULL);"
    "CREATE TABLE used_tokens ("
    " hash BYTEA PRIMARY KEY,"
    " expires_ms BIGINT NOT NULL);"
    "CREATE INDEX used_tokens_expires ON used_tokens(expires_ms);"
    "CREATE TABLE messages ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " recipient TEXT COLLATE \"C\" NOT NULL,"
    " sender TEXT COLLATE \"C\" NOT NULL,"
    " msg_id BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " flags INTEGER NOT NULL,"
    " data BYTEA NOT NULL,"
    " UNIQUE(recipient, sender, msg_id));"
    "CREATE INDEX messages_recipient_seq ON messages(recipient, seq);"
    "CREATE INDEX messages_expires ON messages(expires_ms) WHERE expires_ms <> 0;",
    /* 1 -> 2: linked e-mail addresses and phone numbers, revocation keys */
    "CREATE TABLE links ("
    " id TEXT COLLATE \"C\" NOT NULL REFERENCES identities(id),"
    " kind INTEGER NOT NULL,"
    " hash BYTEA NOT NULL,"
    " prf BYTEA NOT NULL,"
    " linked_ms BIGINT NOT NULL,"
    " PRIMARY KEY (id, kind));"
    "CREATE INDEX links_hash ON links(kind, hash);"
    "CREATE INDEX links_prf ON links(kind, prf);"
    "CREATE TABLE link_pending ("
    " vid BYTEA PRIMARY KEY,"
    " id TEXT COLLATE \"C\" NOT NULL REFERENCES identities(id),"
    " kind INTEGER NOT NULL,"
    " hash BYTEA NOT NULL,"
    " prf BYTEA NOT NULL,"
    " code_mac BYTEA NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (id, kind));"
    "CREATE TABLE revocation_keys ("
    " id TEXT COLLATE \"C\" PRIMARY KEY REFERENCES identities(id),"
    " rkey BYTEA NOT NULL,"
    " changed_ms BIGINT NOT NULL);",
    /* 2 -> 3: where each identity last logged in, for one connection across nodes */
    "CREATE SEQUENCE sessions_gen;"
    "CREATE TABLE sessions ("
    " identity TEXT COLLATE \"C\" PRIMARY KEY,"
    " node_id TEXT NOT NULL,"
    " since_ms BIGINT NOT NULL,"
    " gen BIGINT NOT NULL);"
    "CREATE INDEX sessions_by_gen ON sessions(gen);",
    /* 3 -> 4: invite codes, by the hash of the code */
    "CREATE TABLE invites ("
    " hash BYTEA PRIMARY KEY,"
    " handle TEXT COLLATE \"C\" NOT NULL,"
    " uses BIGINT NOT NULL,"
    " used BIGINT NOT NULL DEFAULT 0,"
    " created_ms BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " revoked BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX invites_handle ON invites(handle);",
    /*
     * 4 -> 5: the mediator's state (srv/mediator/mstore_pg.c), the
     * Gateway's accounts and the Safe backups, shared by the nodes; for
     * the mediator: device groups by their anonymous ID, devices, reflection
     * queues (missed: reflects not queued because the queue was full) and
     * the holder of each group's transaction lock. No identity in them.
     */
    "CREATE TABLE md_groups ("
    " gid BYTEA PRIMARY KEY,"
    " shared_data BYTEA,"
    " next_rid BIGINT NOT NULL);"
    "CREATE TABLE md_devices ("
    " gid BYTEA NOT NULL,"
    " device_id BIGINT NOT NULL,"
    " expiration_policy INTEGER NOT NULL,"
    " info BYTEA,"
    " connected_since BIGINT NOT NULL,"
    " last_seen BIGINT NOT NULL,"
    " missed BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (gid, device_id));"
    "CREATE TABLE md_reflected ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " gid BYTEA NOT NULL,"
    " device_id BIGINT NOT NULL,"
    " rid BIGINT NOT NULL,"
    " ts BIGINT NOT NULL,"
    " flags INTEGER NOT NULL,"
    " envelope BYTEA NOT NULL);"
    "CREATE INDEX md_reflected_dev ON md_reflected(gid, device_id, seq);"
    "CREATE INDEX md_reflected_rid ON md_reflected(gid, device_id, rid);"
    "CREATE TABLE md_tx ("
    " gid BYTEA PRIMARY KEY,"
    " device_id BIGINT NOT NULL,"
    " scope BYTEA NOT NULL,"
    " node_id TEXT NOT NULL);"
    /* The Gateway's accounts (srv/gateway/gwdb_pg.c), as gateway.db holds them. */
    "CREATE TABLE gw_accounts ("
    " id BYTEA PRIMARY KEY,"
    " modes INTEGER NOT NULL,"
    " credits BIGINT NOT NULL,"
    " callback TEXT NOT NULL,"
    " secret_salt BYTEA NOT NULL,"
    " secret_hash BYTEA NOT NULL,"
    " secret_sealed BYTEA NOT NULL,"
    " sk_sealed BYTEA,"
    " created_ms BIGINT NOT NULL,"
    " cb_failures BIGINT NOT NULL DEFAULT 0,"
    " cb_error TEXT NOT NULL DEFAULT '',"
    " cb_error_ms BIGINT NOT NULL DEFAULT 0);"
    /* Threema Safe backups (srv/safe/safe_pg.c): ciphertext by its backup ID. */
    "CREATE TABLE safe_backups ("
    " id BYTEA PRIMARY KEY,"
    " data BYTEA NOT NULL,"
    " updated_ms BIGINT NOT NULL);"
    "CREATE INDEX safe_backups_updated ON safe_backups(updated_ms);",
    /*
     * 5 -> 6: the blob service's metadata (srv/blob/blobmeta_pg.c), as
     * blobs/blobs.db holds it, plus the ID of the blob directory that holds
     * the file (nodes sharing one directory share its ID). The blob itself
     * stays a file: no content here.
     */
    "CREATE TABLE blobs ("
    " id BYTEA PRIMARY KEY,"
    " dir BYTEA NOT NULL,"
    " owner BYTEA NOT NULL,"
    " size BIGINT NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " persist INTEGER NOT NULL);"
    "CREATE INDEX blobs_owner ON blobs(owner, expires_ms);"
    "CREATE INDEX blobs_dir_expiry ON blobs(dir, expires_ms);",
};
#define PG_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/*
 * Every parameter carries its type in a cast ($1::text, ::bytea, ::int8),
 * which fixes the type the binary value is read as. Integer columns are
 * read back as int8 for the same reason.
 */
enum pg_stmt {
	ST_LOCK_RCPT,
	ST_MSG_COUNTS,
	ST_MSG_FIND,
	ST_MSG_PURGE_RCPT,
	ST_MSG_PURGE_PAIR,
	ST_MSG_INSERT,
	ST_MSG_PUT_FAST,
	ST_MSG_DELETE,
	ST_MSG_EXPIRE,
	ST_MSG_FETCH,
	ST_MSG_COUNT_LIVE,
	ST_ID_BY_PK,
	ST_ID_BY_ID,
	ST_ID_INSERT,
	ST_ID_SET_STATE,
	ST_ID_SET_FEATURES,
	ST_PUSH_SET,
	ST_PUSH_DELETE,
	ST_PUSH_GET,
	ST_TOKEN_PURGE,
	ST_TOKEN_INSERT,
	ST_PEND_CLEAR,
	ST_PEND_PUT,
	ST_PEND_GET,
	ST_PEND_ATTEMPT,
	ST_PEND_DELETE,
	ST_PEND_DELETE_ID,
	ST_LINK_PUT,
	ST_LINK_GET,
	ST_LINK_DELETE,
	ST_LINK_DELETE_ALL,
	ST_LINK_FIND_HASH,
	ST_LINK_FIND_PRF,
	ST_REVKEY_SET,
	ST_REVKEY_GET,
	ST_NOTIFY_PUT,
	ST_SESSION_CLAIM,
	ST_INV_PUT,
	ST_INV_USE,
	ST_INV_GET,
	ST_INV_UNUSE,
	ST_INV_LIST,
	ST_INV_REVOKE,
	ST_ID_LIST,
	ST_MSG_DELETE_RCPT,
	ST_REVKEY_DELETE,
	ST_QSTATS,
	ST_QMAX,
	ST_PING,
	ST_LOCK_RCPTS,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    /* Held until the batch ends; a hash collision only serialises two recipients. */
    [ST_LOCK_RCPT] = "SELECT 1::int8 FROM pg_advisory_xact_lock(hashtextextended($1::text, 7368))",
    /* Bounded counts: never more index entries than the limit. */
    [ST_MSG_COUNTS] =
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM messages WHERE recipient = "
        "$1::text LIMIT $3::int8) a), (SELECT count(*) FROM (SELECT 1 FROM "
        "messages WHERE recipient = $1::text AND sender = $2::text LIMIT $4::int8) b)",
    [ST_MSG_FIND] = "SELECT seq FROM messages WHERE recipient = $1::text AND sender = $2::text "
                    "AND msg_id = $3::int8",
    [ST_MSG_PURGE_RCPT] = "DELETE FROM messages WHERE recipient = $1::text AND expires_ms <> 0 "
                          "AND expires_ms <= $2::int8",
    [ST_MSG_PURGE_PAIR] = "DELETE FROM messages WHERE recipient = $1::text AND sender = $2::text "
                          "AND expires_ms <> 0 AND expires_ms <= $3::int8",
    [ST_MSG_INSERT] = "INSERT INTO messages (recipient, sender, msg_id, expires_ms, flags, data) "
                      "VALUES ($1::text, $2::text, $3::int8, $4::int8, $5::int8, $6::bytea) "
                      "ON CONFLICT (recipient, sender, msg_id) DO NOTHING RETURNING seq",
    /*
     * The common case in one statement: inserts only below both limits
     * ($8 = 0: no share) and without a duplicate, NOTIFYs ($9, as
     * ST_NOTIFY_PUT's) only when it inserted, and returns the seq and the
     * bounds it judged by (struct pg_bound: $10 rows up to seq $11 and
     * the recipient's rows after it; $12, $13 the same for the pair). No
     * row back sends the put down the slow path, which counts exactly.
     * Both read the (recipient, seq) index from the bound's seq on (OFFSET
     * 0 keeps the pair's sender out of that scan, else PostgreSQL reads
     * every row of the pair by the unique index instead).
     */
    [ST_MSG_PUT_FAST] =
        "WITH c AS MATERIALIZED (SELECT $10::int8 + (SELECT count(*) FROM (SELECT 1 FROM "
        "messages WHERE recipient = $1::text AND seq > $11::int8 LIMIT $7::int8) a) AS n, "
        "CASE WHEN $8::int8 = 0 THEN 0::int8 ELSE $12::int8 + (SELECT count(*) FROM (SELECT "
        "1 FROM (SELECT sender FROM messages WHERE recipient = $1::text AND seq > $13::int8 "
        "OFFSET 0) r WHERE r.sender = $2::text LIMIT $8::int8) b) END AS pn), "
        "i AS (INSERT INTO messages (recipient, sender, msg_id, expires_ms, flags, data) "
        "SELECT $1::text, $2::text, $3::int8, $4::int8, $5::int8, $6::bytea FROM c WHERE "
        "c.n < $7::int8 AND ($8::int8 = 0 OR c.pn < $8::int8) "
        "ON CONFLICT (recipient, sender, msg_id) DO NOTHING RETURNING seq) "
        "SELECT i.seq, c.n, c.pn FROM i, c, pg_notify('veil_put', $9::text) n",
    [ST_MSG_DELETE] = "DELETE FROM messages WHERE recipient = $1::text AND sender = $2::text "
                      "AND msg_id = $3::int8 RETURNING seq",
    [ST_MSG_EXPIRE] = "DELETE FROM messages WHERE expires_ms <> 0 AND expires_ms <= $1::int8",
    [ST_MSG_FETCH] = "SELECT seq, sender, msg_id, expires_ms, flags::int8, data FROM messages "
                     "WHERE recipient = $1::text AND seq > $2::int8 AND (expires_ms = 0 OR "
                     "expires_ms > $3::int8) ORDER BY seq LIMIT $4::int8",
    [ST_MSG_COUNT_LIVE] = "SELECT count(*) FROM messages WHERE recipient = $1::text "
                          "AND (expires_ms = 0 OR expires_ms > $2::int8)",
    [ST_ID_BY_PK] = "SELECT id, pk, state::int8, feature_mask, created_ms FROM identities "
                    "WHERE pk = $1::bytea",
    [ST_ID_BY_ID] = "SELECT id, pk, state::int8, feature_mask, created_ms FROM identities "
                    "WHERE id = $1::text",
    [ST_ID_INSERT] = "INSERT INTO identities (id, pk, state, feature_mask, created_ms) "
                     "VALUES ($1::text, $2::bytea, 0, 0, $3::int8) ON CONFLICT DO NOTHING",
    [ST_ID_SET_STATE] = "UPDATE identities SET state = $2::int8 WHERE id = $1::text",
    [ST_ID_SET_FEATURES] = "UPDATE identities SET feature_mask = $2::int8 WHERE id = $1::text",
    [ST_PUSH_SET] = "INSERT INTO push_tokens (id, type, token) SELECT id, $2::int8, $3::bytea "
                    "FROM identities WHERE id = $1::text ON CONFLICT (id) DO UPDATE "
                    "SET type = excluded.type, token = excluded.token",
    [ST_PUSH_DELETE] = "DELETE FROM push_tokens WHERE id = $1::text",
    [ST_PUSH_GET] = "SELECT type::int8, token FROM push_tokens WHERE id = $1::text",
    [ST_TOKEN_PURGE] = "DELETE FROM used_tokens WHERE expires_ms <= $1::int8",
    [ST_TOKEN_INSERT] = "INSERT INTO used_tokens (hash, expires_ms) VALUES ($1::bytea, $2::int8) "
                        "ON CONFLICT DO NOTHING",
    /* What SQLite's INSERT OR REPLACE removes: a row with the vid or the (id, kind). */
    [ST_PEND_CLEAR] = "DELETE FROM link_pending WHERE vid = $1::bytea OR (id = $2::text "
                      "AND kind = $3::int8)",
    [ST_PEND_PUT] = "INSERT INTO link_pending (vid, id, kind, hash, prf, code_mac, expires_ms, "
                    "attempts) SELECT $1::bytea, id, $3::int8, $4::bytea, $5::bytea, $6::bytea, "
                    "$7::int8, 0 FROM identities WHERE id = $2::text",
    [ST_PEND_GET] = "SELECT id, kind::int8, hash, prf, code_mac, expires_ms, attempts::int8 "
                    "FROM link_pending WHERE vid = $1::bytea FOR UPDATE",
    [ST_PEND_ATTEMPT] = "UPDATE link_pending SET attempts = attempts + 1 WHERE vid = $1::bytea",
    [ST_PEND_DELETE] = "DELETE FROM link_pending WHERE vid = $1::bytea",
    [ST_PEND_DELETE_ID] = "DELETE FROM link_pending WHERE id = $1::text AND (kind = $2::int8 "
                          "OR $2::int8 < 0)",
    [ST_LINK_PUT] = "INSERT INTO links (id, kind, hash, prf, linked_ms) VALUES ($1::text, "
                    "$2::int8, $3::bytea, $4::bytea, $5::int8) ON CONFLICT (id, kind) DO UPDATE "
                    "SET hash = excluded.hash, prf = excluded.prf, linked_ms = excluded.linked_ms",
    [ST_LINK_GET] = "SELECT hash FROM links WHERE id = $1::text AND kind = $2::int8",
    [ST_LINK_DELETE] = "DELETE FROM links WHERE id = $1::text AND kind = $2::int8",
    [ST_LINK_DELETE_ALL] = "DELETE FROM links WHERE id = $1::text",
    [ST_LINK_FIND_HASH] = "SELECT id FROM links WHERE kind = $1::int8 AND hash = $2::bytea "
                          "ORDER BY id LIMIT $3::int8",
    [ST_LINK_FIND_PRF] = "SELECT id FROM links WHERE kind = $1::int8 AND prf = $2::bytea "
                         "ORDER BY id LIMIT $3::int8",
    [ST_REVKEY_SET] = "INSERT INTO revocation_keys (id, rkey, changed_ms) SELECT id, $2::bytea, "
                      "$3::int8 FROM identities WHERE id = $1::text ON CONFLICT (id) DO UPDATE "
                      "SET rkey = excluded.rkey, changed_ms = excluded.changed_ms",
    [ST_REVKEY_GET] = "SELECT rkey, changed_ms FROM revocation_keys WHERE id = $1::text",
    /* Sent when the transaction commits; identical payloads in one transaction fold into one. */
    [ST_NOTIFY_PUT] = "SELECT 1::int8 FROM pg_notify('veil_put', $1::text)",
    /* A fresh generation for the login, announced to every node on commit. */
    [ST_SESSION_CLAIM] =
        "WITH u AS (INSERT INTO sessions (identity, node_id, since_ms, gen) VALUES ($1::text, "
        "$2::text, $3::int8, nextval('sessions_gen')) ON CONFLICT (identity) DO UPDATE SET "
        "node_id = excluded.node_id, since_ms = excluded.since_ms, gen = excluded.gen "
        "RETURNING gen) SELECT u.gen FROM u, pg_notify('veil_session', $2::text || $1::text "
        "|| u.gen::text)",
    [ST_INV_PUT] = "INSERT INTO invites (hash, handle, uses, used, created_ms, expires_ms, "
                   "revoked) VALUES ($1::bytea, $2::text, $3::int8, 0, $4::int8, $5::int8, 0)",
    /* One statement, so that two nodes never take the last use both. */
    [ST_INV_USE] = "UPDATE invites SET used = used + 1 WHERE hash = $1::bytea AND revoked = 0 "
                   "AND used < uses AND (expires_ms = 0 OR expires_ms > $2::int8)",
    [ST_INV_GET] = "SELECT uses, used, expires_ms, revoked FROM invites WHERE hash = $1::bytea",
    [ST_INV_UNUSE] = "UPDATE invites SET used = used - 1 WHERE hash = $1::bytea AND used > 0",
    [ST_INV_LIST] = "SELECT hash, handle, uses, used, created_ms, expires_ms, revoked "
                    "FROM invites ORDER BY created_ms, handle LIMIT $1::int8",
    [ST_INV_REVOKE] = "UPDATE invites SET revoked = 1 WHERE handle = $1::text AND revoked = 0",
    /* The last login is the sessions row's since_ms (every receiving login claims one). */
    [ST_ID_LIST] = "SELECT i.id, i.pk, i.state::int8, i.feature_mask, i.created_ms, "
                   "coalesce(s.since_ms, 0)::int8, (SELECT count(*) FROM messages m WHERE "
                   "m.recipient = i.id) FROM identities i LEFT JOIN sessions s ON "
                   "s.identity = i.id WHERE ($1::text = '' OR i.id = $1::text) AND "
                   "i.id > $2::text ORDER BY i.id LIMIT $3::int8",
    [ST_MSG_DELETE_RCPT] = "DELETE FROM messages WHERE recipient = $1::text",
    [ST_REVKEY_DELETE] = "DELETE FROM revocation_keys WHERE id = $1::text",
    [ST_QSTATS] = "SELECT count(*), coalesce(sum(octet_length(data)), 0)::int8, "
                  "count(DISTINCT recipient), count(*) FILTER (WHERE expires_ms <> 0 AND "
                  "expires_ms <= $1::int8) FROM messages",
    [ST_QMAX] = "SELECT recipient, count(*) AS n FROM messages GROUP BY recipient "
                "ORDER BY n DESC LIMIT 1",
    [ST_PING] = "SELECT 1::int8",
    /*
     * The recipients of a whole batch ($1: their IDs one after another,
     * bytea so that each is found in constant time), each lock once and in
     * the order of its key, so that two nodes locking overlapping sets
     * cannot deadlock. The same keys as ST_LOCK_RCPT.
     */
    [ST_LOCK_RCPTS] =
        "SELECT count(*)::int8 FROM (SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT "
        "hashtextextended(convert_from(substring($1::bytea, i * 8 + 1, 8), 'UTF8'), 7368) "
        "AS k FROM generate_series(0, length($1::bytea) / 8 - 1) i ORDER BY k) s) t",
};

struct pg_conn {
	PGconn *c;
	const char *role;   /* "queue" or "sync", for the log */
	bool lost;          /* the connection broke; reconnect before the next use */
	uint64_t retry_ms;  /* monotonic time of the next reconnect attempt */
	uint32_t backoff;   /* current wait between attempts */
	bool failed_in_tx;  /* a statement failed inside the open transaction */
	bool begin_pending; /* a batch began: BEGIN goes out with its first statement */
};

#define PG_NODE_LEN 16 /* hex digits of the node ID in a payload */

/*
 * What a put needs to know is whether a queue (or a sender's share of it)
 * is below its limit; counting a deep queue on every put costs PostgreSQL
 * a scan of its index (and heap) entries. A bound makes that cheap: this
 * node remembers, per recipient (and per recipient and sender), at most
 * n rows with a seq up to seq, so the queue holds at most n plus its rows
 * with a seq after seq, which are only the few stored since. It holds
 * across nodes: every put of a recipient takes its lock, and a seq is
 * drawn (from a sequence with no cache) after the lock, so no row can
 * appear later with a seq at or below one that a count under the lock
 * saw. Deletes only make the bound looser; this node's own acks (whose
 * seq they return) tighten it. A put the bound refuses goes down the slow
 * path, which counts exactly and forgets the bound; a batch rolled back
 * forgets them all, since its puts and acks did not happen.
 */
struct pg_bound {
	uint8_t key[2 * VEIL_ID_LEN]; /* recipient, then sender or zeros */
	bool used;
	uint64_t n;   /* at most this many rows with a seq <= seq */
	uint64_t seq; /* 0: no bound (count every row) */
};

#define PG_BOUND_SLOTS 4096 /* per table; a collision only costs a full count */

struct pg_backend {
	struct pg_conn q;  /* store thread only */
	struct pg_conn sy; /* under mu */
	pthread_mutex_t mu;
	bool mu_init;
	uint32_t queue_limit;
	uint32_t sender_limit; /* <= queue_limit */
	/* Store thread only: the bounds by recipient, and by recipient and sender. */
	struct pg_bound *rbound, *pbound;
	uint8_t bound_key[crypto_shorthash_KEYBYTES];
	char node[PG_NODE_LEN + 1];
	/* The listener: its own connection and thread, stopped through the pipe. */
	struct veil_store_sink sink;
	char *url;
	PGconn *lc;
	uint64_t sess_mark; /* sessions_gen at the listener's last check */
	pthread_t lthread;
	bool lthread_started;
	int stop_pipe[2];
};

/* Parameters of one call, all in binary form. */
struct pg_params {
	int n;
	const char *v[PG_MAX_PARAMS];
	int len[PG_MAX_PARAMS];
	int fmt[PG_MAX_PARAMS];
	uint8_t num[PG_MAX_PARAMS][8];
};

static void p_bytes(struct pg_params *p, const void *v, size_t len)
{
	/* A zero-length value still needs a non-NULL pointer (NULL is SQL NULL). */
	p->v[p->n] = len > 0 ? (const char *)v : "";
	p->len[p->n] = (int)len;
	p->fmt[p->n] = 1;
	p->n++;
}

static void p_id(struct pg_params *p, const uint8_t id[static VEIL_ID_LEN])
{
	p_bytes(p, id, VEIL_ID_LEN);
}

/* int8 in network order; a uint64_t is stored as the same 64 bits. */
static void p_u64(struct pg_params *p, uint64_t v)
{
	uint8_t *b = p->num[p->n];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	p_bytes(p, b, 8);
}

static int col_u64(const PGresult *r, int row, int col, uint64_t *v)
{
	*v = 0;
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
		return VEIL_EIO;
	const uint8_t *b = (const uint8_t *)PQgetvalue(r, row, col);
	for (int i = 0; i < 8; i++)
		*v = (*v << 8) | b[i];
	return 0;
}

/* Copies a column of exactly len bytes (a text ID or a fixed-size bytea). */
static int col_fixed(const PGresult *r, int row, int col, void *out, size_t len)
{
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != (int)len)
		return VEIL_EIO;
	memcpy(out, PQgetvalue(r, row, col), len);
	return 0;
}

/* Rows changed by an INSERT, UPDATE or DELETE. */
static uint64_t changes(PGresult *r)
{
	const char *t = PQcmdTuples(r);
	return t[0] ? strtoull(t, NULL, 10) : 0;
}

/* The veil_err of a failed result, from its SQLSTATE. */
static int sqlstate_err(const PGresult *r)
{
	const char *s = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (s == NULL)
		return VEIL_EIO;
	if (strcmp(s, "23505") == 0)
		return VEIL_EEXIST; /* unique violation */
	if (strcmp(s, "53100") == 0)
		return VEIL_ENOSPC; /* disk full */
	if (strcmp(s, "53200") == 0)
		return VEIL_ENOMEM; /* out of memory */
	if (strcmp(s, "53300") == 0 || strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 ||
	    strcmp(s, "55P03") == 0 || strcmp(s, "57P03") == 0)
		return VEIL_EAGAIN; /* too many connections, serialisation, deadlock, lock, starting */
	if (strcmp(s, "XX001") == 0 || strcmp(s, "XX002") == 0)
		return VEIL_ECORRUPT; /* data or index corrupted */
	return VEIL_EIO;
}

/* The first line of the connection's error message (libpq never puts the password in it). */
static void first_line(const char *msg, char *out, size_t cap)
{
	size_t n = strcspn(msg, "\r\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, msg, n);
	out[n] = '\0';
}

static int prepare_all(struct pg_conn *c)
{
	for (int i = 0; i < ST_COUNT; i++) {
		char name[16];
		snprintf(name, sizeof name, "v%d", i);
		PGresult *r = PQprepare(c->c, name, stmt_sql[i], 0, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		int rc = ok ? 0 : sqlstate_err(r);
		if (!ok)
			veil_log_error("store: cannot prepare statement %d: %s", i,
			               PQresultErrorMessage(r));
		PQclear(r);
		if (!ok)
			return rc;
	}
	return 0;
}

static void conn_lost(struct pg_conn *c)
{
	char msg[200];
	if (c->lost)
		return;
	first_line(PQerrorMessage(c->c), msg, sizeof msg);
	veil_log_error("store: the PostgreSQL connection (%s) was lost: %s; reconnecting", c->role,
	               msg[0] ? msg : "no reason given");
	c->lost = true;
	c->retry_ms = 0; /* the first attempt at once */
	c->backoff = PG_BACKOFF_MIN_MS;
}

/*
 * Makes sure the connection is up: 0, or VEIL_EIO while it is down and the
 * back-off has not run out (the job fails at once rather than waiting).
 */
static int conn_ready(struct pg_conn *c)
{
	if (!c->lost && PQstatus(c->c) == CONNECTION_OK)
		return 0;
	if (!c->lost)
		conn_lost(c);
	uint64_t now = veil_mono_ms();
	if (now < c->retry_ms)
		return VEIL_EIO;
	PQreset(c->c);
	if (PQstatus(c->c) == CONNECTION_OK && prepare_all(c) == 0) {
		c->lost = false;
		c->failed_in_tx = false;
		veil_log_info("store: the PostgreSQL connection (%s) is back", c->role);
		return 0;
	}
	c->retry_ms = now + c->backoff;
	c->backoff = c->backoff * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : c->backoff * 2;
	return VEIL_EIO;
}

static int tx(struct pg_conn *c, const char *sql);

/*
 * Runs prepared statement i. Returns the result (PQclear it) with *rc = 0,
 * or NULL with *rc a veil_err; a broken connection is noted for a reconnect.
 */
static PGresult *run(struct pg_conn *c, enum pg_stmt i, const struct pg_params *p, int *rc)
{
	char name[16];
	*rc = conn_ready(c);
	if (*rc == 0 && c->begin_pending) {
		c->begin_pending = false;
		*rc = tx(c, "BEGIN");
	}
	if (*rc != 0)
		return NULL;
	snprintf(name, sizeof name, "v%d", (int)i);
	PGresult *r = PQexecPrepared(c->c, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
	                             p ? p->fmt : NULL, 1);
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	*rc = sqlstate_err(r);
	if (PQstatus(c->c) != CONNECTION_OK) {
		conn_lost(c);
		*rc = VEIL_EIO;
	} else if (PQtransactionStatus(c->c) == PQTRANS_INERROR) {
		c->failed_in_tx = true;
	}
	if (*rc == VEIL_EIO)
		veil_log_debug("store: statement %d failed: %s", (int)i, PQresultErrorMessage(r));
	PQclear(r);
	return NULL;
}

/* Runs a statement and returns 0 and its changed-row count, or a veil_err. */
static int run_done(struct pg_conn *c, enum pg_stmt i, const struct pg_params *p, uint64_t *n)
{
	int rc;
	PGresult *r = run(c, i, p, &rc);
	if (r == NULL)
		return rc;
	if (n != NULL)
		*n = changes(r);
	PQclear(r);
	return 0;
}

/* Runs a statement returning one int8 column: 0, VEIL_ENOTFOUND (no row) or a veil_err. */
static int run_u64(struct pg_conn *c, enum pg_stmt i, const struct pg_params *p, uint64_t *v)
{
	int rc;
	PGresult *r = run(c, i, p, &rc);
	if (r == NULL)
		return rc;
	rc = PQntuples(r) > 0 ? col_u64(r, 0, 0, v) : VEIL_ENOTFOUND;
	PQclear(r);
	return rc;
}

/* A transaction command (BEGIN, COMMIT, ROLLBACK); no parameters. */
static int tx(struct pg_conn *c, const char *sql)
{
	if (c->begin_pending && strcmp(sql, "BEGIN") != 0) {
		/* Nothing was run since the batch began: there is nothing to end. */
		c->begin_pending = false;
		return 0;
	}
	int rc = conn_ready(c);
	if (rc != 0)
		return rc;
	PGresult *r = PQexec(c->c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = sqlstate_err(r);
		if (PQstatus(c->c) != CONNECTION_OK) {
			conn_lost(c);
			rc = VEIL_EIO;
		}
	} else if (strcmp(sql, "COMMIT") == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		/* COMMIT of a failed transaction succeeds as a ROLLBACK. */
		rc = VEIL_EIO;
	}
	PQclear(r);
	return rc;
}

/* Rolls back whatever transaction is open on c (after an error). */
static void tx_abort(struct pg_conn *c)
{
	c->failed_in_tx = false;
	c->begin_pending = false;
	if (c->lost || PQstatus(c->c) != CONNECTION_OK)
		return;
	if (PQtransactionStatus(c->c) != PQTRANS_IDLE) {
		PGresult *r = PQexec(c->c, "ROLLBACK");
		PQclear(r);
	}
}

/* --- opening --- */

static int simple_exec(PGconn *c, const char *sql, char *err, size_t errcap)
{
	PGresult *r = PQexec(c, sql);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = sqlstate_err(r);
		if (rc == VEIL_EEXIST)
			rc = VEIL_EIO;
		first_line(PQresultErrorMessage(r), err, errcap);
	}
	PQclear(r);
	return rc;
}

/* Brings the schema up to PG_SCHEMA_VERSION in one transaction. */
static int migrate(PGconn *c, char *err, size_t errcap)
{
	char sql[128];
	int rc, v = 0, from = 0;
	PGresult *r = NULL;

	if ((rc = simple_exec(c, "BEGIN", err, errcap)) != 0)
		return rc;
	/* Other nodes may be starting too: one migrates, the others then see its version. */
	snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%d)", PG_LOCK_MIGRATE);
	if ((rc = simple_exec(c, sql, err, errcap)) != 0)
		goto out;
	if ((rc =
	         simple_exec(c, "CREATE TABLE IF NOT EXISTS veil_schema (version INTEGER NOT NULL)",
	                     err, errcap)) != 0)
		goto out;
	r = PQexec(c, "SELECT version FROM veil_schema");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) > 1) {
		first_line(PQresultErrorMessage(r), err, errcap);
		rc = VEIL_EIO;
		goto out;
	}
	if (PQntuples(r) == 1) {
		char *end;
		long lv = strtol(PQgetvalue(r, 0, 0), &end, 10);
		v = *end == '\0' && lv >= 0 && lv <= 1000000 ? (int)lv : -1;
	} else if ((rc = simple_exec(c, "INSERT INTO veil_schema (version) VALUES (0)", err,
	                             errcap)) != 0) {
		goto out;
	}
	if (v < 0 || v > PG_SCHEMA_VERSION) {
		snprintf(err, errcap, "schema version %d is newer than this veild knows (%d)", v,
		         PG_SCHEMA_VERSION);
		rc = VEIL_EIO;
		goto out;
	}
	from = v;
	for (; v < PG_SCHEMA_VERSION; v++) {
		if ((rc = simple_exec(c, migrations[v], err, errcap)) != 0)
			goto out;
	}
	/* Our own constant, not input. */
	snprintf(sql, sizeof sql, "UPDATE veil_schema SET version = %d", PG_SCHEMA_VERSION);
	if ((rc = simple_exec(c, sql, err, errcap)) != 0)
		goto out;
	rc = simple_exec(c, "COMMIT", err, errcap);
	if (rc == 0 && from > 0 && from < PG_SCHEMA_VERSION)
		veil_log_info("store: schema upgraded from version %d to %d", from,
		              PG_SCHEMA_VERSION);
out:
	PQclear(r);
	if (rc != 0) {
		PGresult *rb = PQexec(c, "ROLLBACK");
		PQclear(rb);
	}
	return rc;
}

/* Notices ("relation ... already exists, skipping") go to the debug log, not to stderr. */
static void on_notice(void *arg, const char *msg)
{
	char line[200];
	(void)arg;
	first_line(msg, line, sizeof line);
	veil_log_debug("store: PostgreSQL: %s", line);
}

/* A new connection (check PQstatus); NULL only without memory. */
static PGconn *connect_url(const char *url)
{
	/*
	 * The URL's own settings come after the defaults and so win over them.
	 * Keepalives let a listener that only waits notice a dead server.
	 */
	const char *const keys[] = {
	    "connect_timeout",     "application_name", "keepalives", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "dbname",     NULL};
	const char *const vals[] = {PG_CONNECT_TIMEOUT, "veild", "1", "10", "5", "3", url, NULL};
	return PQconnectdbParams(keys, vals, 1);
}

static int conn_open(struct pg_conn *c, const char *url, const char *role, bool create, char *err,
                     size_t errcap)
{
	/* The URL's own settings come after the defaults and so win over them. */
	char msg[200];
	int rc;

	c->role = role;
	c->c = connect_url(url);
	if (c->c == NULL)
		return VEIL_ENOMEM;
	PQsetNoticeProcessor(c->c, on_notice, NULL);
	if (PQstatus(c->c) != CONNECTION_OK) {
		first_line(PQerrorMessage(c->c), msg, sizeof msg);
		snprintf(err, errcap, "cannot connect to PostgreSQL: %s", msg);
		return VEIL_EIO;
	}
	if (create && (rc = migrate(c->c, msg, sizeof msg)) != 0) {
		snprintf(err, errcap, "cannot set up the schema: %s", msg);
		return rc;
	}
	rc = prepare_all(c);
	if (rc != 0)
		snprintf(err, errcap,
		         "cannot prepare the statements (is the schema from another "
		         "program?)");
	return rc;
}

/* --- the listener (its own thread and connection) --- */

/* Connects lc and LISTENs: 0, or VEIL_EIO with the reason in msg. */
static int listen_connect(struct pg_backend *b, char *msg, size_t cap)
{
	PQfinish(b->lc);
	b->lc = connect_url(b->url);
	if (b->lc == NULL) {
		snprintf(msg, cap, "out of memory");
		return VEIL_ENOMEM;
	}
	PQsetNoticeProcessor(b->lc, on_notice, NULL);
	if (PQstatus(b->lc) == CONNECTION_OK) {
		PGresult *r = PQexec(b->lc, "LISTEN veil_put; LISTEN veil_session");
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok && PQsetnonblocking(b->lc, 1) == 0)
			return 0;
	}
	first_line(PQerrorMessage(b->lc), msg, cap);
	return VEIL_EIO;
}

/* Parses "NODE ID [GEN]" (no spaces) from another node; false for our own or a bad one. */
static bool parse_payload(const struct pg_backend *b, const char *pl, bool with_gen,
                          uint8_t id[static VEIL_ID_LEN], uint64_t *gen)
{
	size_t len = strlen(pl);
	*gen = 0;
	if (len < PG_NODE_LEN + VEIL_ID_LEN || (!with_gen && len != PG_NODE_LEN + VEIL_ID_LEN))
		return false;
	if (memcmp(pl, b->node, PG_NODE_LEN) == 0)
		return false;
	memcpy(id, pl + PG_NODE_LEN, VEIL_ID_LEN);
	if (!veil_id_valid(id))
		return false;
	if (with_gen) {
		const char *g = pl + PG_NODE_LEN + VEIL_ID_LEN;
		char *end;
		if (*g < '0' || *g > '9')
			return false;
		errno = 0;
		*gen = strtoull(g, &end, 10);
		if (*end != '\0' || errno != 0)
			return false;
	}
	return true;
}

/* Passes every notification that has arrived to the sink. */
static void listen_drain(struct pg_backend *b)
{
	PGnotify *n;
	while ((n = PQnotifies(b->lc)) != NULL) {
		uint8_t id[VEIL_ID_LEN];
		uint64_t gen;
		if (strcmp(n->relname, "veil_put") == 0) {
			if (parse_payload(b, n->extra, false, id, &gen))
				b->sink.emit(b->sink.ctx, VEIL_STORE_EV_PUT, id, 0);
		} else if (strcmp(n->relname, "veil_session") == 0) {
			if (parse_payload(b, n->extra, true, id, &gen))
				b->sink.emit(b->sink.ctx, VEIL_STORE_EV_SESSION, id, gen);
		}
		PQfreemem(n);
	}
}

/*
 * Waits up to ms for lc's socket (fd >= 0) or the stop pipe. Returns 1 if
 * the socket is readable, 0 on a timeout, -1 when asked to stop.
 */
static int listen_wait(struct pg_backend *b, int fd, int ms)
{
	struct pollfd p[2] = {{.fd = b->stop_pipe[0], .events = POLLIN},
	                      {.fd = fd, .events = POLLIN}};
	int n = poll(p, fd >= 0 ? 2 : 1, ms);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	if (p[0].revents != 0)
		return -1;
	return n > 0 && fd >= 0 && p[1].revents != 0 ? 1 : 0;
}

/*
 * Notes the newest session generation (the mark for a catch-up after a
 * loss), which also checks that the connection works: 0 or VEIL_EIO.
 */
static int listen_mark(struct pg_backend *b)
{
	PGresult *r = PQexec(b->lc, "SELECT last_value FROM sessions_gen");
	int rc = VEIL_EIO;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		b->sess_mark = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		rc = 0;
	}
	PQclear(r);
	listen_drain(b); /* what arrived meanwhile */
	return rc;
}

/*
 * After a loss: logins on other nodes since the mark (taken at most
 * PG_LISTEN_CHECK_MS before the loss) are passed on as if notified, so a
 * connection here that one of them replaced still closes. Extra ones do no
 * harm: a connection closes only for a newer generation than its own.
 */
static int listen_catch_up(struct pg_backend *b)
{
	char mark[24];
	snprintf(mark, sizeof mark, "%llu", (unsigned long long)b->sess_mark);
	const char *const v[2] = {mark, b->node};
	PGresult *r = PQexecParams(b->lc,
	                           "SELECT identity, gen FROM sessions WHERE gen >= $1::int8 "
	                           "AND node_id <> $2::text",
	                           2, NULL, v, NULL, NULL, 0);
	int rc = VEIL_EIO;
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		for (int i = 0; i < PQntuples(r); i++) {
			uint8_t id[VEIL_ID_LEN];
			if (PQgetlength(r, i, 0) != VEIL_ID_LEN)
				continue;
			memcpy(id, PQgetvalue(r, i, 0), VEIL_ID_LEN);
			if (veil_id_valid(id))
				b->sink.emit(b->sink.ctx, VEIL_STORE_EV_SESSION, id,
				             strtoull(PQgetvalue(r, i, 1), NULL, 10));
		}
		rc = 0;
	}
	PQclear(r);
	listen_drain(b);
	return rc;
}

static void *listen_thread(void *arg)
{
	struct pg_backend *b = arg;
	uint32_t backoff = PG_BACKOFF_MIN_MS;
	bool lost = false;
	uint64_t next_check = veil_mono_ms() + PG_LISTEN_CHECK_MS;
	char msg[200];

	for (;;) {
		if (lost) {
			if (listen_connect(b, msg, sizeof msg) != 0 || listen_catch_up(b) != 0 ||
			    listen_mark(b) != 0) {
				if (listen_wait(b, -1, (int)backoff) < 0)
					break;
				backoff = backoff * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS
				                                          : backoff * 2;
				continue;
			}
			lost = false;
			backoff = PG_BACKOFF_MIN_MS;
			next_check = veil_mono_ms() + PG_LISTEN_CHECK_MS;
			veil_log_info("store: the PostgreSQL connection (listen) is back");
			/* What other nodes stored meanwhile was not announced to us. */
			b->sink.emit(b->sink.ctx, VEIL_STORE_EV_RESYNC, NULL, 0);
		}
		/* Busy or idle, the mark is renewed (and the connection checked) this often. */
		uint64_t now = veil_mono_ms();
		int w = 0;
		if (now >= next_check) {
			next_check = now + PG_LISTEN_CHECK_MS;
			w = listen_mark(b) == 0 ? 0 : 2;
		}
		if (w == 0)
			w = listen_wait(b, PQsocket(b->lc), (int)(next_check - now));
		if (w < 0)
			break;
		if (w == 0 && PQstatus(b->lc) == CONNECTION_OK)
			continue;
		if (w == 1 && PQconsumeInput(b->lc) == 1 && PQstatus(b->lc) == CONNECTION_OK) {
			listen_drain(b);
			continue;
		}
		listen_drain(b);
		first_line(PQerrorMessage(b->lc), msg, sizeof msg);
		veil_log_error(
		    "store: the PostgreSQL connection (listen) was lost: %s; reconnecting",
		    msg[0] ? msg : "no reason given");
		lost = true;
	}
	return NULL;
}

static int listen_start(struct pg_backend *b, const char *url, const struct veil_store_sink *sink,
                        char *err, size_t errcap)
{
	char msg[200];
	b->sink = *sink;
	b->url = strdup(url);
	if (b->url == NULL || pipe(b->stop_pipe) != 0)
		return VEIL_ENOMEM;
	if (listen_connect(b, msg, sizeof msg) != 0 || listen_mark(b) != 0) {
		first_line(PQerrorMessage(b->lc), msg, sizeof msg);
		snprintf(err, errcap, "cannot connect to PostgreSQL to listen: %s", msg);
		return VEIL_EIO;
	}
	if (pthread_create(&b->lthread, NULL, listen_thread, b) != 0)
		return VEIL_EIO;
	b->lthread_started = true;
	return 0;
}

static void pg_close(void *be)
{
	struct pg_backend *b = be;
	if (b == NULL)
		return;
	if (b->lthread_started) {
		ssize_t w;
		do
			w = write(b->stop_pipe[1], "x", 1);
		while (w < 0 && errno == EINTR);
		pthread_join(b->lthread, NULL);
	}
	if (b->stop_pipe[0] >= 0) {
		close(b->stop_pipe[0]);
		close(b->stop_pipe[1]);
	}
	PQfinish(b->lc);
	free(b->url);
	PQfinish(b->sy.c);
	PQfinish(b->q.c);
	free(b->rbound);
	free(b->pbound);
	if (b->mu_init)
		pthread_mutex_destroy(&b->mu);
	free(b);
}

static int pg_open(void **out, const struct veil_store_opts *opts, uint32_t queue_limit,
                   uint32_t sender_limit, const struct veil_store_sink *sink)
{
	struct pg_backend *b;
	int rc;
	char ebuf[256];
	char *err = opts->err != NULL ? opts->err : ebuf;
	size_t errcap = opts->err != NULL ? opts->errcap : sizeof ebuf;

	*out = NULL;
	if (!PQisthreadsafe())
		return VEIL_EIO;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return VEIL_ENOMEM;
	b->stop_pipe[0] = b->stop_pipe[1] = -1;
	uint8_t node[PG_NODE_LEN / 2];
	randombytes_buf(node, sizeof node);
	if (veil_hex_encode(b->node, sizeof b->node, node, sizeof node) != 0)
		goto out_nomem;
	rc = VEIL_ENOMEM;
	if (pthread_mutex_init(&b->mu, NULL) != 0)
		goto out;
	b->mu_init = true;
	b->queue_limit = queue_limit;
	b->sender_limit = sender_limit;
	b->rbound = calloc(PG_BOUND_SLOTS, sizeof *b->rbound);
	b->pbound = calloc(PG_BOUND_SLOTS, sizeof *b->pbound);
	if (b->rbound == NULL || b->pbound == NULL)
		goto out;
	randombytes_buf(b->bound_key, sizeof b->bound_key);
	err[0] = '\0';
	rc = conn_open(&b->q, opts->path, "queue", true, err, errcap);
	if (rc != 0)
		goto out;
	rc = conn_open(&b->sy, opts->path, "sync", false, err, errcap);
	if (rc != 0)
		goto out;
	if (sink != NULL && (rc = listen_start(b, opts->path, sink, err, errcap)) != 0)
		goto out;
	*out = b;
	return 0;
out_nomem:
	rc = VEIL_ENOMEM;
out:
	pg_close(b);
	return rc;
}

/* --- the bounds of the queue sizes (store thread) --- */

/* The slot of a recipient's bound (sender NULL) or of a pair's. */
static struct pg_bound *bound_slot(struct pg_backend *b, const uint8_t rcpt[static VEIL_ID_LEN],
                                   const uint8_t *sender)
{
	uint8_t key[2 * VEIL_ID_LEN] = {0}, h[crypto_shorthash_BYTES];
	memcpy(key, rcpt, VEIL_ID_LEN);
	if (sender != NULL)
		memcpy(key + VEIL_ID_LEN, sender, VEIL_ID_LEN);
	crypto_shorthash(h, key, sizeof key, b->bound_key);
	uint32_t i = ((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16) % PG_BOUND_SLOTS;
	struct pg_bound *t = sender != NULL ? b->pbound : b->rbound;
	if (!t[i].used || memcmp(t[i].key, key, sizeof key) != 0)
		t[i] = (struct pg_bound){.used = true};
	memcpy(t[i].key, key, sizeof key);
	return &t[i];
}

static void bounds_forget_all(struct pg_backend *b)
{
	memset(b->rbound, 0, PG_BOUND_SLOTS * sizeof *b->rbound);
	memset(b->pbound, 0, PG_BOUND_SLOTS * sizeof *b->pbound);
}

static void bounds_forget(struct pg_backend *b, const struct veil_msg_rec *m)
{
	*bound_slot(b, m->recipient, NULL) = (struct pg_bound){0};
	*bound_slot(b, m->recipient, m->sender) = (struct pg_bound){0};
}

/* A put stored row seq, judged by n and pn rows before it: the new bounds. */
static void bounds_put(struct pg_backend *b, const struct veil_msg_rec *m, uint64_t seq, uint64_t n,
                       uint64_t pn)
{
	struct pg_bound *r = bound_slot(b, m->recipient, NULL);
	*r = (struct pg_bound){.used = true, .n = n + 1, .seq = seq};
	memcpy(r->key, m->recipient, VEIL_ID_LEN);
	if (b->sender_limit < b->queue_limit) {
		struct pg_bound *p = bound_slot(b, m->recipient, m->sender);
		p->n = pn + 1;
		p->seq = seq;
	}
}

/* This node deleted row seq of the pair: one row fewer at or below each bound's seq. */
static void bounds_ack(struct pg_backend *b, const uint8_t rcpt[static VEIL_ID_LEN],
                       const uint8_t sender[static VEIL_ID_LEN], uint64_t seq)
{
	struct pg_bound *r = bound_slot(b, rcpt, NULL), *p = bound_slot(b, rcpt, sender);
	if (r->seq != 0 && seq <= r->seq && r->n > 0)
		r->n--;
	if (p->seq != 0 && seq <= p->seq && p->n > 0)
		p->n--;
}

/* --- queue side (store thread) --- */

/* BEGIN is sent with the batch's first statement, in the same round trip. */
static int pg_batch_begin(void *be)
{
	struct pg_backend *b = be;
	b->q.failed_in_tx = false;
	b->q.begin_pending = true;
	return 0;
}

static int pg_batch_commit(void *be)
{
	struct pg_backend *b = be;
	/* A statement that failed has aborted the transaction: nothing may be reported stored. */
	if (b->q.failed_in_tx)
		return VEIL_EIO;
	return tx(&b->q, "COMMIT");
}

static void pg_batch_rollback(void *be)
{
	struct pg_backend *b = be;
	tx_abort(&b->q);
	bounds_forget_all(b);
}

static int q_find(struct pg_backend *b, const struct veil_msg_rec *m, uint64_t *seq)
{
	struct pg_params p = {0};
	p_id(&p, m->recipient);
	p_id(&p, m->sender);
	p_u64(&p, m->msg_id);
	return run_u64(&b->q, ST_MSG_FIND, &p, seq);
}

/* Rows of the recipient (up to queue_limit) and of the pair (up to sender_limit). */
static int q_counts(struct pg_backend *b, const struct veil_msg_rec *m, uint64_t *count,
                    uint64_t *pcount)
{
	struct pg_params p = {0};
	int rc;
	p_id(&p, m->recipient);
	p_id(&p, m->sender);
	p_u64(&p, b->queue_limit);
	/* Without a share (it is the whole queue) the pair is not counted. */
	p_u64(&p, b->sender_limit < b->queue_limit ? b->sender_limit : 0);
	PGresult *r = run(&b->q, ST_MSG_COUNTS, &p, &rc);
	if (r == NULL)
		return rc;
	rc = PQntuples(r) == 1 ? 0 : VEIL_EIO;
	if (rc == 0)
		rc = col_u64(r, 0, 0, count);
	if (rc == 0)
		rc = col_u64(r, 0, 1, pcount);
	PQclear(r);
	return rc;
}

/* The payload of a put's NOTIFY: this node, then the recipient. */
static void put_payload(const struct pg_backend *b, const uint8_t rcpt[static VEIL_ID_LEN],
                        char out[static PG_NODE_LEN + VEIL_ID_LEN])
{
	memcpy(out, b->node, PG_NODE_LEN);
	memcpy(out + PG_NODE_LEN, rcpt, VEIL_ID_LEN);
}

/* ST_MSG_PUT_FAST's parameters; payload must outlive p. */
static void put_fast_params(struct pg_backend *b, const struct veil_msg_rec *m,
                            char payload[static PG_NODE_LEN + VEIL_ID_LEN], struct pg_params *p)
{
	bool share = b->sender_limit < b->queue_limit;
	const struct pg_bound *r = bound_slot(b, m->recipient, NULL);
	const struct pg_bound *pb = bound_slot(b, m->recipient, m->sender);
	put_payload(b, m->recipient, payload);
	*p = (struct pg_params){0};
	p_id(p, m->recipient);
	p_id(p, m->sender);
	p_u64(p, m->msg_id);
	p_u64(p, m->expires_ms);
	p_u64(p, m->flags);
	p_bytes(p, m->data, m->len);
	p_u64(p, b->queue_limit);
	p_u64(p, share ? b->sender_limit : 0);
	p_bytes(p, payload, PG_NODE_LEN + VEIL_ID_LEN);
	p_u64(p, r->seq != 0 ? r->n : 0);
	p_u64(p, r->seq);
	p_u64(p, pb->seq != 0 ? pb->n : 0);
	p_u64(p, pb->seq);
}

/* A row back from ST_MSG_PUT_FAST: its seq, and the bounds moved on. */
static int put_fast_result(struct pg_backend *b, const struct veil_msg_rec *m, PGresult *r,
                           uint64_t *seq)
{
	uint64_t n = 0, pn = 0;
	*seq = 0;
	if (PQntuples(r) == 0)
		return VEIL_ENOTFOUND;
	int rc = col_u64(r, 0, 0, seq);
	if (rc == 0)
		rc = col_u64(r, 0, 1, &n);
	if (rc == 0)
		rc = col_u64(r, 0, 2, &pn);
	if (rc == 0)
		bounds_put(b, m, *seq, n, pn);
	else
		*seq = 0;
	return rc;
}

/*
 * A put that ST_MSG_PUT_FAST did not insert (the recipient's lock held):
 * the same rules as sq_q_put. A resend of a queued message is VEIL_EEXIST
 * with its seq even at a limit; a used-up share is VEIL_EQUOTA before a
 * full queue is VEIL_ELIMIT; expired rows are purged before refusing. A
 * row inserted here is announced to the other nodes when the batch commits.
 */
static int q_put_slow(struct pg_backend *b, const struct veil_msg_rec *m, uint64_t *seq)
{
	struct pg_params p = {0};
	uint64_t count = 0, pcount = 0, gone = 0;
	int rc;

	*seq = 0;
	bool share = b->sender_limit < b->queue_limit;
	bounds_forget(b, m);
	if ((rc = q_counts(b, m, &count, &pcount)) != 0)
		return rc;
	if ((share && pcount >= b->sender_limit) || count >= b->queue_limit) {
		rc = q_find(b, m, seq);
		if (rc == 0)
			return VEIL_EEXIST;
		if (rc != VEIL_ENOTFOUND)
			return rc;
		uint64_t now = veil_now_ms();
		if (share && pcount >= b->sender_limit) {
			p = (struct pg_params){0};
			p_id(&p, m->recipient);
			p_id(&p, m->sender);
			p_u64(&p, now);
			if ((rc = run_done(&b->q, ST_MSG_PURGE_PAIR, &p, &gone)) != 0)
				return rc;
			if (gone > 0 && (rc = q_counts(b, m, &count, &pcount)) != 0)
				return rc;
			if (pcount >= b->sender_limit)
				return VEIL_EQUOTA;
		}
		if (count >= b->queue_limit) {
			p = (struct pg_params){0};
			p_id(&p, m->recipient);
			p_u64(&p, now);
			if ((rc = run_done(&b->q, ST_MSG_PURGE_RCPT, &p, &gone)) != 0)
				return rc;
			if (gone > 0 && (rc = q_counts(b, m, &count, &pcount)) != 0)
				return rc;
			if (count >= b->queue_limit)
				return VEIL_ELIMIT;
		}
	}

	p = (struct pg_params){0};
	p_id(&p, m->recipient);
	p_id(&p, m->sender);
	p_u64(&p, m->msg_id);
	p_u64(&p, m->expires_ms);
	p_u64(&p, m->flags);
	p_bytes(&p, m->data, m->len);
	rc = run_u64(&b->q, ST_MSG_INSERT, &p, seq);
	if (rc == VEIL_ENOTFOUND) {
		/* ON CONFLICT DO NOTHING: the message is already queued. */
		rc = q_find(b, m, seq);
		return rc == 0 ? VEIL_EEXIST : rc == VEIL_ENOTFOUND ? VEIL_EIO : rc;
	}
	if (rc == 0) {
		char payload[PG_NODE_LEN + VEIL_ID_LEN];
		put_payload(b, m->recipient, payload);
		p = (struct pg_params){0};
		p_bytes(&p, payload, sizeof payload);
		rc = run_done(&b->q, ST_NOTIFY_PUT, &p, NULL);
	}
	if (rc != 0)
		*seq = 0;
	return rc;
}

/*
 * One put on its own: the recipient's lock, then one statement that
 * inserts below both limits and NOTIFYs; only a refused or duplicate put
 * takes the slow path.
 */
static int pg_q_put(void *be, const struct veil_msg_rec *m, uint64_t *seq)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	char payload[PG_NODE_LEN + VEIL_ID_LEN];
	int rc;

	*seq = 0;
	p_id(&p, m->recipient);
	if ((rc = run_done(&b->q, ST_LOCK_RCPT, &p, NULL)) != 0)
		return rc;
	/* A new statement, so its snapshot sees every commit made before the lock. */
	put_fast_params(b, m, payload, &p);
	PGresult *r = run(&b->q, ST_MSG_PUT_FAST, &p, &rc);
	if (r == NULL)
		return rc;
	rc = put_fast_result(b, m, r, seq);
	PQclear(r);
	return rc == VEIL_ENOTFOUND ? q_put_slow(b, m, seq) : rc;
}

static int pg_q_ack(void *be, const uint8_t recipient[static VEIL_ID_LEN],
                    const uint8_t sender[static VEIL_ID_LEN], uint64_t msg_id)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint64_t n = 0;
	p_id(&p, recipient);
	p_id(&p, sender);
	p_u64(&p, msg_id);
	int rc;
	PGresult *r = run(&b->q, ST_MSG_DELETE, &p, &rc);
	if (r == NULL)
		return rc;
	rc = PQntuples(r) == 0 ? VEIL_ENOTFOUND : col_u64(r, 0, 0, &n);
	if (rc == 0)
		bounds_ack(b, recipient, sender, n);
	PQclear(r);
	return rc;
}

static int pg_q_expire(void *be, uint64_t now_ms, uint64_t *deleted)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	*deleted = 0;
	p_u64(&p, now_ms);
	return run_done(&b->q, ST_MSG_EXPIRE, &p, deleted);
}

/* --- a batch's writes in one round trip (libpq's pipeline mode) --- */

/* Per-write outcomes that leave the transaction usable (store.c's rule). */
static bool write_fatal(int rc)
{
	return rc != 0 && rc != VEIL_EEXIST && rc != VEIL_ELIMIT && rc != VEIL_EQUOTA &&
	       rc != VEIL_ENOTFOUND;
}

/* One write on its own, as the q_* calls run it. */
static int one_write(struct pg_backend *b, struct veil_store_write *w)
{
	switch (w->type) {
	case VEIL_STORE_W_PUT: return pg_q_put(b, w->msg, &w->seq);
	case VEIL_STORE_W_ACK:
		return pg_q_ack(b, w->msg->recipient, w->msg->sender, w->msg->msg_id);
	case VEIL_STORE_W_EXPIRE: return pg_q_expire(b, w->now_ms, &w->deleted);
	case VEIL_STORE_W_LOGIN: break;
	}
	return VEIL_EINVAL;
}

/* Queues prepared statement i (or BEGIN for ST_COUNT) on the pipeline. */
static bool pipe_send(struct pg_conn *c, enum pg_stmt i, const struct pg_params *p)
{
	char name[16];
	if (i == ST_COUNT)
		return PQsendQueryParams(c->c, "BEGIN", 0, NULL, NULL, NULL, NULL, 1) == 1;
	snprintf(name, sizeof name, "v%d", (int)i);
	return PQsendQueryPrepared(c->c, name, p->n, p->v, p->len, p->fmt, 1) == 1;
}

/* Queues write w's statement (a put's fast path, an ack, an expiry). */
static bool pipe_send_write(struct pg_backend *b, const struct veil_store_write *w)
{
	struct pg_params p = {0};
	char payload[PG_NODE_LEN + VEIL_ID_LEN];
	switch (w->type) {
	case VEIL_STORE_W_PUT:
		put_fast_params(b, w->msg, payload, &p);
		return pipe_send(&b->q, ST_MSG_PUT_FAST, &p);
	case VEIL_STORE_W_ACK:
		p_id(&p, w->msg->recipient);
		p_id(&p, w->msg->sender);
		p_u64(&p, w->msg->msg_id);
		return pipe_send(&b->q, ST_MSG_DELETE, &p);
	case VEIL_STORE_W_EXPIRE: p_u64(&p, w->now_ms); return pipe_send(&b->q, ST_MSG_EXPIRE, &p);
	case VEIL_STORE_W_LOGIN: break;
	}
	return false;
}

/*
 * The next statement's result on the pipeline (and the end marker after
 * it): the result to PQclear, or NULL with *rc a veil_err that fails the
 * batch (a failed statement aborts the transaction, whatever its SQLSTATE).
 */
static PGresult *pipe_result(struct pg_conn *c, int *rc)
{
	PGresult *r = PQgetResult(c->c);
	ExecStatusType st = PQresultStatus(r);
	if (r != NULL) {
		PGresult *end = PQgetResult(c->c);
		if (end != NULL) {
			PQclear(end);
			st = PGRES_FATAL_ERROR; /* not what a statement sends */
		}
	}
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		*rc = 0;
		return r;
	}
	*rc = st == PGRES_PIPELINE_ABORTED ? VEIL_EIO : sqlstate_err(r);
	if (!write_fatal(*rc))
		*rc = VEIL_EIO;
	if (PQstatus(c->c) != CONNECTION_OK)
		*rc = VEIL_EIO;
	else if (st != PGRES_PIPELINE_ABORTED)
		veil_log_debug("store: a pipelined statement failed: %s",
		               r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c->c));
	PQclear(r);
	return NULL;
}

/* Reads write w's result into it (a put the fast path refused: VEIL_ENOTFOUND). */
static int pipe_read_write(struct pg_backend *b, struct veil_store_write *w)
{
	struct pg_conn *c = &b->q;
	int rc;
	PGresult *r = pipe_result(c, &rc);
	if (r == NULL)
		return rc;
	uint64_t n = changes(r), seq = 0;
	switch (w->type) {
	case VEIL_STORE_W_PUT:
		w->rc = put_fast_result(b, w->msg, r, &w->seq);
		rc = write_fatal(w->rc) ? w->rc : 0;
		break;
	case VEIL_STORE_W_ACK:
		w->rc = PQntuples(r) == 0 ? VEIL_ENOTFOUND : col_u64(r, 0, 0, &seq);
		if (w->rc == 0)
			bounds_ack(b, w->msg->recipient, w->msg->sender, seq);
		rc = write_fatal(w->rc) ? w->rc : 0;
		break;
	case VEIL_STORE_W_EXPIRE:
		w->deleted = n;
		w->rc = 0;
		break;
	case VEIL_STORE_W_LOGIN: rc = VEIL_EINVAL; break;
	}
	PQclear(r);
	return rc;
}

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, VEIL_ID_LEN);
}

/*
 * Sends BEGIN (if the batch has not begun), the lock on every put's
 * recipient and each write's statement, PG_PIPE_CHUNK statements to a
 * round trip, and reads the results in order. 0, or a veil_err that fails
 * the batch; the pipeline is left either way.
 */
static int pipe_writes(struct pg_backend *b, struct veil_store_write *w, size_t n)
{
	struct pg_conn *c = &b->q;
	size_t nput = 0, next = 0;
	int rc = conn_ready(c), syncs = 0;
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		nput += w[i].type == VEIL_STORE_W_PUT;
	char *ids = nput > 0 ? malloc(nput * VEIL_ID_LEN) : NULL;
	if (nput > 0 && ids == NULL)
		return VEIL_ENOMEM;
	for (size_t i = 0, k = 0; i < n; i++) {
		if (w[i].type == VEIL_STORE_W_PUT)
			memcpy(ids + VEIL_ID_LEN * k++, w[i].msg->recipient, VEIL_ID_LEN);
	}
	/* Each recipient once. */
	if (nput > 1) {
		qsort(ids, nput, VEIL_ID_LEN, id_cmp);
		size_t u = 1;
		for (size_t i = 1; i < nput; i++) {
			if (memcmp(ids + VEIL_ID_LEN * i, ids + VEIL_ID_LEN * (u - 1),
			           VEIL_ID_LEN) != 0)
				memmove(ids + VEIL_ID_LEN * u++, ids + VEIL_ID_LEN * i,
				        VEIL_ID_LEN);
		}
		nput = u;
	}
	if (PQenterPipelineMode(c->c) != 1) {
		free(ids);
		return VEIL_EIO;
	}
	for (bool first = true; rc == 0 && (first || next < n); first = false) {
		bool begin = c->begin_pending, lock = first && nput > 0;
		size_t from = next;
		c->begin_pending = false;
		if (begin && !pipe_send(c, ST_COUNT, NULL))
			rc = VEIL_EIO;
		if (rc == 0 && lock) {
			struct pg_params p = {0};
			p_bytes(&p, ids, nput * VEIL_ID_LEN);
			if (!pipe_send(c, ST_LOCK_RCPTS, &p))
				rc = VEIL_EIO;
		}
		for (; rc == 0 && next < n && next - from < PG_PIPE_CHUNK; next++) {
			if (!pipe_send_write(b, &w[next]))
				rc = VEIL_EIO;
		}
		if (PQpipelineSync(c->c) == 1)
			syncs++;
		else if (rc == 0)
			rc = VEIL_EIO;
		if (rc != 0)
			break;
		PGresult *r;
		if (begin && (r = pipe_result(c, &rc)) != NULL)
			PQclear(r);
		if (rc == 0 && lock && (r = pipe_result(c, &rc)) != NULL)
			PQclear(r);
		for (size_t i = from; rc == 0 && i < next; i++)
			rc = pipe_read_write(b, &w[i]);
		if (rc != 0)
			break;
		r = PQgetResult(c->c);
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC)
			syncs--;
		else
			rc = VEIL_EIO;
		PQclear(r);
	}
	free(ids);
	/* After a failure: what is still on its way, up to each sync sent. */
	for (int nulls = 0; syncs > 0 && nulls < 2 && PQstatus(c->c) == CONNECTION_OK;) {
		PGresult *r = PQgetResult(c->c);
		nulls = r == NULL ? nulls + 1 : 0;
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC)
			syncs--;
		PQclear(r);
	}
	if (PQexitPipelineMode(c->c) != 1 || PQstatus(c->c) != CONNECTION_OK) {
		conn_lost(c);
		rc = VEIL_EIO;
	}
	return rc;
}

/*
 * A batch's writes: the pipeline, then the slow path of each put the fast
 * one refused, in job order. That order is the order one by one would
 * give unless a later write of the batch touched the same recipient after
 * the refusal (another write than a refused put, or an expiry): then the
 * transaction is rolled back and the writes run again one by one, so that
 * the outcome is always that of one-by-one (a purge of expired rows, an
 * ack that frees a place, each sender's order).
 */
static int pg_q_writes(void *be, struct veil_store_write *w, size_t n)
{
	struct pg_backend *b = be;
	bool redo = false;
	for (size_t i = 0; i < n; i++) {
		w[i].rc = 0;
		w[i].seq = 0;
		w[i].deleted = 0;
		redo = redo || w[i].type == VEIL_STORE_W_LOGIN;
	}
	int rc = redo ? 0 : pipe_writes(b, w, n);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n && !redo; i++) {
		if (w[i].type != VEIL_STORE_W_PUT || w[i].rc != VEIL_ENOTFOUND)
			continue;
		for (size_t j = i + 1; j < n && !redo; j++) {
			bool refused = w[j].type == VEIL_STORE_W_PUT && w[j].rc == VEIL_ENOTFOUND;
			redo = w[j].type == VEIL_STORE_W_EXPIRE ||
			       (!refused &&
			        memcmp(w[j].msg->recipient, w[i].msg->recipient, VEIL_ID_LEN) == 0);
		}
	}
	if (redo) {
		tx_abort(&b->q);
		bounds_forget_all(b);
		b->q.begin_pending = true;
		for (size_t i = 0; i < n; i++) {
			w[i].seq = 0;
			w[i].deleted = 0;
			w[i].rc = one_write(b, &w[i]);
			if (write_fatal(w[i].rc))
				return w[i].rc;
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (w[i].type != VEIL_STORE_W_PUT || w[i].rc != VEIL_ENOTFOUND)
			continue;
		w[i].rc = q_put_slow(b, w[i].msg, &w[i].seq);
		if (write_fatal(w[i].rc))
			return w[i].rc;
	}
	return 0;
}

static int pg_q_fetch(void *be, const uint8_t recipient[static VEIL_ID_LEN], uint64_t after_seq,
                      size_t limit, uint64_t now_ms, struct veil_msg_rec **out, size_t *n)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	int rc;

	*out = NULL;
	*n = 0;
	if (limit == 0 || limit > VEIL_STORE_MAX_FETCH)
		limit = VEIL_STORE_MAX_FETCH;
	p_id(&p, recipient);
	p_u64(&p, after_seq);
	p_u64(&p, now_ms);
	p_u64(&p, limit);
	PGresult *r = run(&b->q, ST_MSG_FETCH, &p, &rc);
	/*
	 * A read is safe to repeat: if it found the connection gone (after a
	 * database restart, say), it is tried once more on a new one, so the
	 * readers woken after a resync are not all sent away.
	 */
	if (r == NULL && rc == VEIL_EIO && b->q.lost)
		r = run(&b->q, ST_MSG_FETCH, &p, &rc);
	if (r == NULL)
		return rc;
	int rows = PQntuples(r);
	size_t cnt = (size_t)rows < limit ? (size_t)rows : limit, used = 0;
	for (size_t i = 0; i < cnt; i++) {
		int len = PQgetlength(r, (int)i, 5);
		if (len < 0 || len > VEIL_STORE_MAX_BOX) {
			rc = VEIL_EIO;
			goto out;
		}
		used += (size_t)len;
	}
	if (cnt == 0)
		goto out;
	/* One block: the records, then their data. */
	size_t hdr = cnt * sizeof(struct veil_msg_rec);
	uint8_t *blk = malloc(hdr + used + 1);
	if (blk == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	struct veil_msg_rec *o = (struct veil_msg_rec *)(void *)blk;
	uint8_t *d = blk + hdr;
	memset(o, 0, hdr);
	for (size_t i = 0; i < cnt && rc == 0; i++) {
		struct veil_msg_rec *m = &o[i];
		uint64_t flags = 0;
		int row = (int)i;
		memcpy(m->recipient, recipient, VEIL_ID_LEN);
		rc = col_u64(r, row, 0, &m->seq);
		if (rc == 0)
			rc = col_fixed(r, row, 1, m->sender, VEIL_ID_LEN);
		if (rc == 0)
			rc = col_u64(r, row, 2, &m->msg_id);
		if (rc == 0)
			rc = col_u64(r, row, 3, &m->expires_ms);
		if (rc == 0)
			rc = col_u64(r, row, 4, &flags);
		m->flags = (uint8_t)flags;
		m->len = (size_t)PQgetlength(r, row, 5);
		m->data = d;
		if (m->len)
			memcpy(d, PQgetvalue(r, row, 5), m->len);
		d += m->len;
	}
	if (rc != 0) {
		free(blk);
		goto out;
	}
	*out = o;
	*n = cnt;
out:
	PQclear(r);
	return rc;
}

/* --- synchronous side (any thread, under mu) --- */

static int read_identity(PGresult *r, struct veil_identity_rec *rec)
{
	uint64_t state = 0;
	if (PQntuples(r) == 0)
		return VEIL_ENOTFOUND;
	int rc = col_fixed(r, 0, 0, rec->id, VEIL_ID_LEN);
	if (rc == 0)
		rc = col_fixed(r, 0, 1, rec->pk, VEIL_KEY_LEN);
	if (rc == 0)
		rc = col_u64(r, 0, 2, &state);
	if (rc == 0)
		rc = col_u64(r, 0, 3, &rec->feature_mask);
	if (rc == 0)
		rc = col_u64(r, 0, 4, &rec->created_ms);
	rec->state = (int)state;
	return rc;
}

/* Looks an identity up by ID or by key (which), on sy. */
static int get_identity(struct pg_backend *b, enum pg_stmt which, const void *key, size_t len,
                        struct veil_identity_rec *rec)
{
	struct pg_params p = {0};
	int rc;
	p_bytes(&p, key, len);
	PGresult *r = run(&b->sy, which, &p, &rc);
	/* A read: once more on a new connection if this one was found gone (as in pg_q_fetch). */
	if (r == NULL && rc == VEIL_EIO && b->sy.lost)
		r = run(&b->sy, which, &p, &rc);
	if (r == NULL)
		return rc;
	rc = read_identity(r, rec);
	PQclear(r);
	return rc;
}

static void random_id(uint8_t id[static VEIL_ID_LEN])
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	for (size_t i = 0; i < VEIL_ID_LEN; i++)
		id[i] = (uint8_t)alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
}

/*
 * No transaction is needed: the insert skips both a taken ID and a key that
 * another node registered meanwhile, and the lookup after it tells which.
 */
static int pg_identity_create(void *be, const uint8_t *want_id,
                              const uint8_t pk[static VEIL_KEY_LEN], struct veil_identity_rec *rec)
{
	struct pg_backend *b = be;
	int rc;

	pthread_mutex_lock(&b->mu);
	rc = get_identity(b, ST_ID_BY_PK, pk, VEIL_KEY_LEN, rec);
	if (rc == 0) {
		rc = VEIL_EEXIST;
		goto out;
	}
	if (rc != VEIL_ENOTFOUND)
		goto out;
	rc = VEIL_EIO; /* if every attempt collides */
	for (int i = 0; i < (want_id != NULL ? 1 : PG_ID_ATTEMPTS); i++) {
		struct pg_params p = {0};
		uint8_t id[VEIL_ID_LEN];
		uint64_t now = veil_now_ms(), n = 0;
		if (want_id != NULL)
			memcpy(id, want_id, VEIL_ID_LEN);
		else
			random_id(id);
		p_id(&p, id);
		p_bytes(&p, pk, VEIL_KEY_LEN);
		p_u64(&p, now);
		rc = run_done(&b->sy, ST_ID_INSERT, &p, &n);
		if (rc != 0)
			goto out;
		if (n == 1) {
			memcpy(rec->id, id, VEIL_ID_LEN);
			memcpy(rec->pk, pk, VEIL_KEY_LEN);
			rec->state = VEIL_IDENTITY_ACTIVE;
			rec->feature_mask = 0;
			rec->created_ms = now;
			rc = 0;
			break;
		}
		rc = get_identity(b, ST_ID_BY_PK, pk, VEIL_KEY_LEN, rec);
		if (rc == 0) {
			rc = VEIL_EEXIST; /* registered by another node just now */
			break;
		}
		if (rc != VEIL_ENOTFOUND)
			break;
		/* The ID was taken: draw another, or fail for a chosen one. */
		rc = want_id != NULL ? VEIL_EEXIST : VEIL_EIO;
	}
out:
	pthread_mutex_unlock(&b->mu);
	if (rc != 0 && rc != VEIL_EEXIST)
		memset(rec, 0, sizeof(*rec));
	return rc;
}

static int pg_identity_get(void *be, const uint8_t id[static VEIL_ID_LEN],
                           struct veil_identity_rec *rec)
{
	struct pg_backend *b = be;
	pthread_mutex_lock(&b->mu);
	int rc = get_identity(b, ST_ID_BY_ID, id, VEIL_ID_LEN, rec);
	pthread_mutex_unlock(&b->mu);
	if (rc != 0)
		memset(rec, 0, sizeof(*rec));
	return rc;
}

static int update_identity(struct pg_backend *b, enum pg_stmt which,
                           const uint8_t id[static VEIL_ID_LEN], uint64_t v)
{
	struct pg_params p = {0};
	uint64_t n = 0;
	p_id(&p, id);
	p_u64(&p, v);
	pthread_mutex_lock(&b->mu);
	int rc = run_done(&b->sy, which, &p, &n);
	pthread_mutex_unlock(&b->mu);
	if (rc == 0 && n == 0)
		rc = VEIL_ENOTFOUND;
	return rc;
}

static int pg_identity_set_state(void *be, const uint8_t id[static VEIL_ID_LEN], int state)
{
	return update_identity(be, ST_ID_SET_STATE, id, (uint64_t)state);
}

static int pg_identity_set_features(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t mask)
{
	return update_identity(be, ST_ID_SET_FEATURES, id, mask);
}

static int pg_push_token_set(void *be, const uint8_t id[static VEIL_ID_LEN], uint8_t type,
                             const uint8_t *token, size_t len)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint64_t n = 0;
	int rc;

	p_id(&p, id);
	pthread_mutex_lock(&b->mu);
	if (len == 0) {
		rc = run_done(&b->sy, ST_PUSH_DELETE, &p, NULL);
	} else {
		/* Inserts nothing for an unknown identity. */
		p_u64(&p, type);
		p_bytes(&p, token, len);
		rc = run_done(&b->sy, ST_PUSH_SET, &p, &n);
		if (rc == 0 && n == 0)
			rc = VEIL_ENOTFOUND;
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_push_token_get(void *be, const uint8_t id[static VEIL_ID_LEN], uint8_t *type,
                             uint8_t token[static VEIL_STORE_MAX_PUSH_TOKEN], size_t *len)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint64_t t = 0;
	int rc;

	p_id(&p, id);
	pthread_mutex_lock(&b->mu);
	PGresult *r = run(&b->sy, ST_PUSH_GET, &p, &rc);
	if (r != NULL) {
		if (PQntuples(r) == 0) {
			rc = VEIL_ENOTFOUND;
		} else {
			int n = PQgetlength(r, 0, 1);
			rc = col_u64(r, 0, 0, &t);
			if (rc == 0 && (n <= 0 || n > VEIL_STORE_MAX_PUSH_TOKEN))
				rc = VEIL_EIO;
			if (rc == 0) {
				*type = (uint8_t)t;
				memcpy(token, PQgetvalue(r, 0, 1), (size_t)n);
				*len = (size_t)n;
			}
		}
		PQclear(r);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_token_use(void *be, const uint8_t hash[static 32], uint64_t expires_ms,
                        uint64_t now_ms)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint64_t n = 0;
	int rc;

	/* Past its expiry the record may be gone, so a replay could pass. */
	if (expires_ms <= now_ms)
		return VEIL_ETIMEOUT;
	pthread_mutex_lock(&b->mu);
	p_u64(&p, now_ms);
	rc = run_done(&b->sy, ST_TOKEN_PURGE, &p, NULL);
	if (rc == 0) {
		p = (struct pg_params){0};
		p_bytes(&p, hash, 32);
		p_u64(&p, expires_ms);
		rc = run_done(&b->sy, ST_TOKEN_INSERT, &p, &n);
		if (rc == 0 && n == 0)
			rc = VEIL_EREPLAY;
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_msg_count(void *be, const uint8_t recipient[static VEIL_ID_LEN], uint64_t now_ms,
                        uint64_t *count)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	p_id(&p, recipient);
	p_u64(&p, now_ms);
	pthread_mutex_lock(&b->mu);
	int rc = run_u64(&b->sy, ST_MSG_COUNT_LIVE, &p, count);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* --- linked contact data and revocation (any thread, under mu) --- */

static int pg_link_pending_put(void *be, const struct veil_link_pending *p)
{
	struct pg_backend *b = be;
	struct pg_params q = {0};
	uint64_t n = 0;
	int rc;

	pthread_mutex_lock(&b->mu);
	if ((rc = tx(&b->sy, "BEGIN")) != 0)
		goto unlock;
	p_bytes(&q, p->vid, VEIL_STORE_VID_LEN);
	p_id(&q, p->id);
	p_u64(&q, (uint64_t)p->kind);
	if ((rc = run_done(&b->sy, ST_PEND_CLEAR, &q, NULL)) != 0)
		goto out;
	p_bytes(&q, p->hash, 32);
	p_bytes(&q, p->prf, 32);
	p_bytes(&q, p->code_mac, 32);
	p_u64(&q, p->expires_ms);
	if ((rc = run_done(&b->sy, ST_PEND_PUT, &q, &n)) != 0)
		goto out;
	rc = n == 0 ? VEIL_ENOTFOUND : tx(&b->sy, "COMMIT");
out:
	if (rc != 0)
		tx_abort(&b->sy);
unlock:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_link_confirm(void *be, const uint8_t vid[static VEIL_STORE_VID_LEN],
                           const uint8_t code_mac[static 32], uint32_t max_attempts,
                           uint64_t now_ms, struct veil_link_pending *out)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint8_t mac[32];
	uint64_t attempts = 0, kind = 0;
	int rc;

	p_bytes(&p, vid, VEIL_STORE_VID_LEN);
	pthread_mutex_lock(&b->mu);
	if ((rc = tx(&b->sy, "BEGIN")) != 0)
		goto unlock;
	PGresult *r = run(&b->sy, ST_PEND_GET, &p, &rc);
	if (r == NULL)
		goto out;
	if (PQntuples(r) == 0) {
		PQclear(r);
		rc = VEIL_ENOTFOUND;
		goto out;
	}
	memcpy(out->vid, vid, VEIL_STORE_VID_LEN);
	rc = col_fixed(r, 0, 0, out->id, VEIL_ID_LEN);
	if (rc == 0)
		rc = col_u64(r, 0, 1, &kind);
	if (rc == 0)
		rc = col_fixed(r, 0, 2, out->hash, 32);
	if (rc == 0)
		rc = col_fixed(r, 0, 3, out->prf, 32);
	if (rc == 0)
		rc = col_fixed(r, 0, 4, mac, 32);
	if (rc == 0)
		rc = col_u64(r, 0, 5, &out->expires_ms);
	if (rc == 0)
		rc = col_u64(r, 0, 6, &attempts);
	out->kind = (int)kind;
	PQclear(r);
	if (rc != 0)
		goto out;
	if (out->expires_ms <= now_ms || attempts >= max_attempts) {
		/* Dead either way: remove it so that it cannot be tried again. */
		rc = out->expires_ms <= now_ms ? VEIL_ETIMEOUT : VEIL_ELIMIT;
		if (run_done(&b->sy, ST_PEND_DELETE, &p, NULL) != 0 || tx(&b->sy, "COMMIT") != 0)
			rc = VEIL_EIO;
		goto out;
	}
	if (veil_memcmp(mac, code_mac, sizeof(mac)) != 0) {
		rc = run_done(&b->sy, ST_PEND_ATTEMPT, &p, NULL);
		if (rc == 0)
			rc = tx(&b->sy, "COMMIT");
		if (rc == 0)
			rc = VEIL_EAUTH;
		goto out;
	}
	struct pg_params l = {0};
	p_id(&l, out->id);
	p_u64(&l, (uint64_t)out->kind);
	p_bytes(&l, out->hash, 32);
	p_bytes(&l, out->prf, 32);
	p_u64(&l, now_ms);
	rc = run_done(&b->sy, ST_LINK_PUT, &l, NULL);
	if (rc == 0)
		rc = run_done(&b->sy, ST_PEND_DELETE, &p, NULL);
	if (rc == 0)
		rc = tx(&b->sy, "COMMIT");
out:
	tx_abort(&b->sy);
unlock:
	pthread_mutex_unlock(&b->mu);
	sodium_memzero(mac, sizeof(mac));
	if (rc != 0 && rc != VEIL_EAUTH && rc != VEIL_ETIMEOUT && rc != VEIL_ELIMIT)
		memset(out, 0, sizeof(*out));
	return rc;
}

static int pg_link_get(void *be, const uint8_t id[static VEIL_ID_LEN], int kind,
                       uint8_t hash[static 32])
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	int rc;
	p_id(&p, id);
	p_u64(&p, (uint64_t)kind);
	pthread_mutex_lock(&b->mu);
	PGresult *r = run(&b->sy, ST_LINK_GET, &p, &rc);
	if (r != NULL) {
		rc = PQntuples(r) == 0 ? VEIL_ENOTFOUND : col_fixed(r, 0, 0, hash, 32);
		PQclear(r);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_link_delete(void *be, const uint8_t id[static VEIL_ID_LEN], int kind)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	p_id(&p, id);
	p_u64(&p, (uint64_t)kind);
	pthread_mutex_lock(&b->mu);
	int rc = tx(&b->sy, "BEGIN");
	if (rc == 0)
		rc = run_done(&b->sy, ST_LINK_DELETE, &p, NULL);
	if (rc == 0)
		rc = run_done(&b->sy, ST_PEND_DELETE_ID, &p, NULL);
	if (rc == 0)
		rc = tx(&b->sy, "COMMIT");
	tx_abort(&b->sy);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_link_find(void *be, int kind, int by_prf, const uint8_t value[static 32],
                        uint8_t (*ids)[VEIL_ID_LEN], size_t max, size_t *n)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	int rc;
	*n = 0;
	p_u64(&p, (uint64_t)kind);
	p_bytes(&p, value, 32);
	p_u64(&p, max);
	pthread_mutex_lock(&b->mu);
	PGresult *r = run(&b->sy, by_prf ? ST_LINK_FIND_PRF : ST_LINK_FIND_HASH, &p, &rc);
	if (r != NULL) {
		for (int i = 0; i < PQntuples(r) && *n < max && rc == 0; i++) {
			rc = col_fixed(r, i, 0, ids[*n], VEIL_ID_LEN);
			if (rc == 0)
				(*n)++;
		}
		PQclear(r);
	}
	pthread_mutex_unlock(&b->mu);
	if (rc != 0)
		*n = 0;
	return rc;
}

static int pg_revocation_set(void *be, const uint8_t id[static VEIL_ID_LEN],
                             const uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t now_ms)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint64_t n = 0;
	p_id(&p, id);
	p_bytes(&p, key, VEIL_STORE_REVKEY_LEN);
	p_u64(&p, now_ms);
	pthread_mutex_lock(&b->mu);
	int rc = run_done(&b->sy, ST_REVKEY_SET, &p, &n);
	pthread_mutex_unlock(&b->mu);
	if (rc == 0 && n == 0)
		rc = VEIL_ENOTFOUND;
	return rc;
}

static int pg_revocation_get(void *be, const uint8_t id[static VEIL_ID_LEN],
                             uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t *changed_ms)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	int rc;
	p_id(&p, id);
	pthread_mutex_lock(&b->mu);
	PGresult *r = run(&b->sy, ST_REVKEY_GET, &p, &rc);
	if (r != NULL) {
		if (PQntuples(r) == 0) {
			rc = VEIL_ENOTFOUND;
		} else {
			rc = col_fixed(r, 0, 0, key, VEIL_STORE_REVKEY_LEN);
			if (rc == 0)
				rc = col_u64(r, 0, 1, changed_ms);
		}
		PQclear(r);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* --- invite codes --- */

static int pg_invite_put(void *be, const struct veil_invite_rec *r)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	p_bytes(&p, r->hash, 32);
	p_bytes(&p, r->handle, strlen(r->handle));
	p_u64(&p, r->uses);
	p_u64(&p, r->created_ms);
	p_u64(&p, r->expires_ms);
	pthread_mutex_lock(&b->mu);
	int rc = run_done(&b->sy, ST_INV_PUT, &p, NULL);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_invite_use(void *be, const uint8_t hash[static 32], uint64_t now_ms)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint64_t n = 0;
	p_bytes(&p, hash, 32);
	p_u64(&p, now_ms);
	pthread_mutex_lock(&b->mu);
	int rc = run_done(&b->sy, ST_INV_USE, &p, &n);
	if (rc == 0 && n == 0) {
		/* Not taken: say why. */
		p = (struct pg_params){0};
		p_bytes(&p, hash, 32);
		PGresult *r = run(&b->sy, ST_INV_GET, &p, &rc);
		if (r != NULL) {
			uint64_t uses = 0, used = 0, exp = 0, revoked = 0;
			if (PQntuples(r) == 0)
				rc = VEIL_ENOTFOUND;
			else if ((rc = col_u64(r, 0, 0, &uses)) == 0 &&
			         (rc = col_u64(r, 0, 1, &used)) == 0 &&
			         (rc = col_u64(r, 0, 2, &exp)) == 0 &&
			         (rc = col_u64(r, 0, 3, &revoked)) == 0) {
				if (revoked != 0)
					rc = VEIL_ENOTFOUND;
				else if (exp != 0 && exp <= now_ms)
					rc = VEIL_ETIMEOUT;
				else
					rc =
					    VEIL_ELIMIT; /* used up, maybe by another node just now */
			}
			PQclear(r);
		}
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_invite_unuse(void *be, const uint8_t hash[static 32])
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	p_bytes(&p, hash, 32);
	pthread_mutex_lock(&b->mu);
	int rc = run_done(&b->sy, ST_INV_UNUSE, &p, NULL);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_invite_list(void *be, struct veil_invite_rec **out, size_t *n)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	struct veil_invite_rec *v = NULL;
	int rc;
	p_u64(&p, VEIL_STORE_MAX_INVITES);
	pthread_mutex_lock(&b->mu);
	PGresult *r = run(&b->sy, ST_INV_LIST, &p, &rc);
	if (r == NULL && rc == VEIL_EIO && b->sy.lost)
		r = run(&b->sy, ST_INV_LIST, &p, &rc);
	size_t cnt = r != NULL ? (size_t)PQntuples(r) : 0;
	if (r != NULL && cnt > 0) {
		v = calloc(cnt, sizeof *v);
		if (v == NULL)
			rc = VEIL_ENOMEM;
		for (size_t i = 0; i < cnt && rc == 0; i++) {
			uint64_t uses, used, revoked;
			struct veil_invite_rec *e = &v[i];
			if ((rc = col_fixed(r, (int)i, 0, e->hash, 32)) == 0 &&
			    (rc = col_fixed(r, (int)i, 1, e->handle,
			                    VEIL_STORE_INVITE_HANDLE_LEN)) == 0 &&
			    (rc = col_u64(r, (int)i, 2, &uses)) == 0 &&
			    (rc = col_u64(r, (int)i, 3, &used)) == 0 &&
			    (rc = col_u64(r, (int)i, 4, &e->created_ms)) == 0 &&
			    (rc = col_u64(r, (int)i, 5, &e->expires_ms)) == 0 &&
			    (rc = col_u64(r, (int)i, 6, &revoked)) == 0) {
				e->uses = (uint32_t)uses;
				e->used = (uint32_t)used;
				e->revoked = revoked != 0;
			}
		}
	}
	PQclear(r);
	pthread_mutex_unlock(&b->mu);
	if (rc != 0) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

static int pg_invite_revoke(void *be, const char *handle)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint64_t n = 0;
	p_bytes(&p, handle, strlen(handle));
	pthread_mutex_lock(&b->mu);
	int rc = run_done(&b->sy, ST_INV_REVOKE, &p, &n);
	pthread_mutex_unlock(&b->mu);
	if (rc == 0 && n == 0)
		rc = VEIL_ENOTFOUND;
	return rc;
}

static int pg_identity_revoke(void *be, const uint8_t id[static VEIL_ID_LEN])
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	uint64_t n = 0;
	p_id(&p, id);
	p_u64(&p, VEIL_IDENTITY_INVALID);
	pthread_mutex_lock(&b->mu);
	int rc = tx(&b->sy, "BEGIN");
	if (rc == 0)
		rc = run_done(&b->sy, ST_ID_SET_STATE, &p, &n);
	if (rc == 0 && n == 0)
		rc = VEIL_ENOTFOUND;
	if (rc == 0) {
		p = (struct pg_params){0};
		p_id(&p, id);
		rc = run_done(&b->sy, ST_LINK_DELETE_ALL, &p, NULL);
	}
	if (rc == 0) {
		/* kind -1: every kind */
		p_u64(&p, (uint64_t)(int64_t)-1);
		rc = run_done(&b->sy, ST_PEND_DELETE_ID, &p, NULL);
	}
	if (rc == 0)
		rc = tx(&b->sy, "COMMIT");
	tx_abort(&b->sy);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* --- administration (any thread, under mu) --- */

static int pg_identity_list(void *be, const uint8_t *only, const uint8_t *after, size_t max,
                            struct veil_identity_info **out, size_t *n)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	struct veil_identity_info *v = NULL;
	int rc;
	p_bytes(&p, only, only != NULL ? VEIL_ID_LEN : 0);
	p_bytes(&p, after, after != NULL ? VEIL_ID_LEN : 0);
	p_u64(&p, max);
	pthread_mutex_lock(&b->mu);
	PGresult *r = run(&b->sy, ST_ID_LIST, &p, &rc);
	if (r == NULL && rc == VEIL_EIO && b->sy.lost)
		r = run(&b->sy, ST_ID_LIST, &p, &rc);
	size_t cnt = r != NULL ? (size_t)PQntuples(r) : 0;
	if (cnt > max)
		cnt = max;
	if (r != NULL && cnt > 0) {
		v = calloc(cnt, sizeof *v);
		if (v == NULL)
			rc = VEIL_ENOMEM;
		for (size_t i = 0; i < cnt && rc == 0; i++) {
			struct veil_identity_info *e = &v[i];
			uint64_t state = 0;
			int row = (int)i;
			if ((rc = col_fixed(r, row, 0, e->rec.id, VEIL_ID_LEN)) == 0 &&
			    (rc = col_fixed(r, row, 1, e->rec.pk, VEIL_KEY_LEN)) == 0 &&
			    (rc = col_u64(r, row, 2, &state)) == 0 &&
			    (rc = col_u64(r, row, 3, &e->rec.feature_mask)) == 0 &&
			    (rc = col_u64(r, row, 4, &e->rec.created_ms)) == 0 &&
			    (rc = col_u64(r, row, 5, &e->last_login_ms)) == 0)
				rc = col_u64(r, row, 6, &e->queued);
			e->rec.state = (int)state;
		}
	}
	PQclear(r);
	pthread_mutex_unlock(&b->mu);
	if (rc == 0 && only != NULL && cnt == 0)
		rc = VEIL_ENOTFOUND;
	if (rc != 0) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

static int pg_identity_delete(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t *dropped)
{
	struct pg_backend *b = be;
	static const enum pg_stmt wipe[] = {ST_LINK_DELETE_ALL, ST_PUSH_DELETE, ST_REVKEY_DELETE};
	struct pg_params p = {0};
	uint64_t n = 0;
	p_id(&p, id);
	p_u64(&p, VEIL_IDENTITY_INVALID);
	pthread_mutex_lock(&b->mu);
	int rc = tx(&b->sy, "BEGIN");
	if (rc == 0)
		rc = run_done(&b->sy, ST_ID_SET_STATE, &p, &n);
	if (rc == 0 && n == 0)
		rc = VEIL_ENOTFOUND;
	p = (struct pg_params){0};
	p_id(&p, id);
	/* The recipient's lock, as a put takes it: no put of another node lands half-way. */
	if (rc == 0)
		rc = run_done(&b->sy, ST_LOCK_RCPT, &p, NULL);
	if (rc == 0)
		rc = run_done(&b->sy, ST_MSG_DELETE_RCPT, &p, dropped);
	for (size_t i = 0; rc == 0 && i < VEIL_ARRAY_LEN(wipe); i++)
		rc = run_done(&b->sy, wipe[i], &p, NULL);
	if (rc == 0) {
		p_u64(&p, (uint64_t)(int64_t)-1); /* kind -1: every kind */
		rc = run_done(&b->sy, ST_PEND_DELETE_ID, &p, NULL);
	}
	if (rc == 0)
		rc = tx(&b->sy, "COMMIT");
	tx_abort(&b->sy);
	pthread_mutex_unlock(&b->mu);
	if (rc != 0)
		*dropped = 0;
	return rc;
}

static int pg_queue_stats(void *be, uint64_t now_ms, struct veil_queue_stats *q)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	int rc;
	p_u64(&p, now_ms);
	pthread_mutex_lock(&b->mu);
	PGresult *r = run(&b->sy, ST_QSTATS, &p, &rc);
	if (r == NULL && rc == VEIL_EIO && b->sy.lost)
		r = run(&b->sy, ST_QSTATS, &p, &rc);
	if (r != NULL) {
		rc = PQntuples(r) == 1 ? 0 : VEIL_EIO;
		if (rc == 0 && (rc = col_u64(r, 0, 0, &q->messages)) == 0 &&
		    (rc = col_u64(r, 0, 1, &q->bytes)) == 0 &&
		    (rc = col_u64(r, 0, 2, &q->recipients)) == 0)
			rc = col_u64(r, 0, 3, &q->expired);
		PQclear(r);
	}
	if (rc == 0 && (r = run(&b->sy, ST_QMAX, NULL, &rc)) != NULL) {
		if (PQntuples(r) == 1 && col_fixed(r, 0, 0, q->max_id, VEIL_ID_LEN) == 0)
			rc = col_u64(r, 0, 1, &q->max_queue);
		PQclear(r);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int pg_ping(void *be)
{
	struct pg_backend *b = be;
	uint64_t one;
	pthread_mutex_lock(&b->mu);
	int rc = run_u64(&b->sy, ST_PING, NULL, &one);
	if (rc == VEIL_EIO && b->sy.lost)
		rc = run_u64(&b->sy, ST_PING, NULL, &one);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* The login of id on this node: a new generation, and a notice to the other nodes. */
static int pg_session_claim(void *be, const uint8_t id[static VEIL_ID_LEN], uint64_t *gen)
{
	struct pg_backend *b = be;
	struct pg_params p = {0};
	p_id(&p, id);
	p_bytes(&p, b->node, PG_NODE_LEN);
	p_u64(&p, veil_now_ms());
	pthread_mutex_lock(&b->mu);
	int rc = run_u64(&b->sy, ST_SESSION_CLAIM, &p, gen);
	pthread_mutex_unlock(&b->mu);
	if (rc == VEIL_ENOTFOUND)
		rc = VEIL_EIO;
	if (rc != 0)
		*gen = 0;
	return rc;
}

const struct veil_store_ops veil_store_pg_ops = {
    .name = "postgresql",
    .shared = true,
    .open = pg_open,
    .close = pg_close,
    .batch_begin = pg_batch_begin,
    .batch_commit = pg_batch_commit,
    .batch_rollback = pg_batch_rollback,
    .q_put = pg_q_put,
    .q_writes = pg_q_writes,
    .q_ack = pg_q_ack,
    .q_expire = pg_q_expire,
    .q_fetch = pg_q_fetch,
    .s_identity_create = pg_identity_create,
    .s_identity_get = pg_identity_get,
    .s_identity_set_state = pg_identity_set_state,
    .s_identity_set_features = pg_identity_set_features,
    .s_push_token_set = pg_push_token_set,
    .s_push_token_get = pg_push_token_get,
    .s_token_use = pg_token_use,
    .s_msg_count = pg_msg_count,
    .s_link_pending_put = pg_link_pending_put,
    .s_link_confirm = pg_link_confirm,
    .s_link_get = pg_link_get,
    .s_link_delete = pg_link_delete,
    .s_link_find = pg_link_find,
    .s_revocation_set = pg_revocation_set,
    .s_revocation_get = pg_revocation_get,
    .s_identity_revoke = pg_identity_revoke,
    .s_invite_put = pg_invite_put,
    .s_invite_use = pg_invite_use,
    .s_invite_unuse = pg_invite_unuse,
    .s_invite_list = pg_invite_list,
    .s_invite_revoke = pg_invite_revoke,
    .s_session_claim = pg_session_claim,
    .s_identity_list = pg_identity_list,
    .s_identity_delete = pg_identity_delete,
    .s_queue_stats = pg_queue_stats,
    .s_ping = pg_ping,
};
