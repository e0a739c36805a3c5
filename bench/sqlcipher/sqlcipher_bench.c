/*
 * SQLCipher (Debian 12: 3.4.1) on the workload of bench/vault_bench.c: the
 * first format's message table, N messages inserted in one transaction and
 * one transaction per message, then read back; and the cost of opening
 * (PRAGMA key: PBKDF2 over the passphrase). Medians of three runs. Built
 * apart from everything else (`make bench` where libsqlcipher-dev is
 * installed): SQLCipher exports the same symbols as SQLite, so it can never
 * be linked into libveil beside the SQLite the servers use.
 *
 * sqlcipher_bench [N [N_COMMIT]]   (defaults 20000 and 300)
 */
#include <sqlite3.h>
#include <unistd.h>

#include "../store_common.h"

static char dir_tmpl[] = "/tmp/sqlcipher_bench.XXXXXX";

static void rm_db(const char *dir)
{
	static const char *const names[] = {"c.db", "c.db-wal", "c.db-shm"};
	char path[512];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		(void)unlink(path);
	}
}

static int keyed_open(const char *dir, sqlite3 **db, double *secs)
{
	char path[512];
	snprintf(path, sizeof path, "%s/c.db", dir);
	double t0 = bench_now();
	if (sqlite3_open(path, db) != SQLITE_OK ||
	    sqlite3_exec(*db, "PRAGMA key = 'correct horse battery staple';", NULL, NULL, NULL) !=
	        SQLITE_OK ||
	    /* The key is derived on first use: read the schema to pay for it here. */
	    sqlite3_exec(*db, "SELECT count(*) FROM sqlite_master;", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	*secs = bench_now() - t0;
	return 0;
}

static int run(const char *dir, int n, int batch, double *w, double *r, double *o)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL, *sel = NULL;
	char peer[9];
	uint8_t body[BENCH_BODY];
	double created;
	if (keyed_open(dir, &db, &created) != 0 ||
	    sqlite3_exec(db, BENCH_PLAIN_SCHEMA, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, BENCH_PLAIN_INSERT, -1, &ins, NULL) != SQLITE_OK)
		return -1;
	double t0 = bench_now();
	if (batch)
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (int i = 0; i < n; i++) {
		bench_message(i, peer, body);
		if (!batch)
			sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		sqlite3_reset(ins);
		sqlite3_bind_int(ins, 1, i & 1);
		sqlite3_bind_text(ins, 2, peer, 8, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, i);
		sqlite3_bind_int64(ins, 4, 1700000000000 + i);
		sqlite3_bind_blob(ins, 5, body, sizeof body, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			return -1;
		if (!batch)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	if (batch)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	*w = bench_now() - t0;
	sqlite3_finalize(ins);
	sqlite3_close(db);
	/*
	 * Read back through a fresh connection, so no page is served from the
	 * cache; its open is the cost of unlocking an existing database.
	 */
	if (keyed_open(dir, &db, o) != 0)
		return -1;
	t0 = bench_now();
	int rows = 0;
	size_t sum = 0;
	if (sqlite3_prepare_v2(db, BENCH_PLAIN_SELECT, -1, &sel, NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(sel) == SQLITE_ROW) {
		sum += (size_t)sqlite3_column_bytes(sel, 5);
		rows++;
	}
	*r = bench_now() - t0;
	sqlite3_finalize(sel);
	sqlite3_close(db);
	return rows == n && sum == (size_t)n * BENCH_BODY ? 0 : -1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20000;
	int nc = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 300;
	double w[BENCH_RUNS], r[BENCH_RUNS], o[BENCH_RUNS];
	char *dir = mkdtemp(dir_tmpl);
	if (dir == NULL || n <= 0 || nc <= 0)
		return 1;
	printf("SQLCipher %s (SQLite %s): %d-byte bodies, medians of %d runs\n", SQLITE_VERSION,
	       sqlite3_libversion(), BENCH_BODY, BENCH_RUNS);
	for (int mode = 1; mode >= 0; mode--) {
		int cnt = mode ? n : nc;
		for (int i = 0; i < BENCH_RUNS; i++) {
			rm_db(dir);
			if (run(dir, cnt, mode, &w[i], &r[i], &o[i]) != 0) {
				fprintf(stderr, "run failed: %s\n", mode ? "batch" : "commit");
				return 1;
			}
		}
		printf(" %s:\n", mode ? "insert in one transaction (batch)"
		                      : "insert one transaction per message (commit, fsync)");
		bench_print("SQLCipher, insert", cnt, w, BENCH_RUNS);
		bench_print("SQLCipher, read all", cnt, r, BENCH_RUNS);
	}
	printf(" opening (PRAGMA key, PBKDF2): median %.1f ms\n",
	       bench_median(o, BENCH_RUNS) * 1e3);
	rm_db(dir);
	rmdir(dir);
	return 0;
}
