/*
 * The client's local store: inserting and reading back N messages, as the
 * plaintext schema of the first format did (plain SQLite) and as the
 * encrypted store does (rows sealed with XChaCha20-Poly1305, keyed BLAKE2b
 * row hashes, through the real profile code). Prints medians of three runs;
 * bench/sqlcipher/sqlcipher_bench.c measures SQLCipher on the same workload.
 *
 * Two ways of writing: "batch" puts all N in one transaction (the cost of
 * the format alone: encryption, hashing, SQL), "commit" one transaction per
 * message as `veil recv` stores them (one fsync each; fewer messages).
 * Also the cost of opening a profile at each KDF level (Argon2id).
 *
 * vault_bench [N [N_COMMIT]]   (defaults 20000 and 300)
 */
#include <sqlite3.h>
#include <unistd.h>

#include "veil/client.h"
#include "veil/vault.h"
#include "../lib/client/vault_int.h"
#include "store_common.h"

static char dir_tmpl[] = "/tmp/vault_bench.XXXXXX";

static void rm_home(const char *home)
{
	static const char *const names[] = {"veil.db",      "veil.db-wal", "veil.db-shm",
	                                    "profile.json", "store.key",   "plain.db",
	                                    "plain.db-wal", "plain.db-shm"};
	char path[512];
	for (size_t i = 0; i < VEIL_ARRAY_LEN(names); i++) {
		snprintf(path, sizeof path, "%s/%s", home, names[i]);
		(void)unlink(path);
	}
}

static int plain_run(const char *home, int n, int batch, double *w, double *r)
{
	char path[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL, *sel = NULL;
	char peer[9];
	uint8_t body[BENCH_BODY];
	snprintf(path, sizeof path, "%s/plain.db", home);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
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
	sqlite3_finalize(ins);
	sqlite3_finalize(sel);
	sqlite3_close(db);
	return rows == n && sum == (size_t)n * BENCH_BODY ? 0 : -1;
}

static int count_one(const struct veil_log_entry *e, void *ctx)
{
	size_t *sum = ctx;
	*sum += e->body_len;
	return 0;
}

static int sealed_run(const char *home, int n, int batch, double *w, double *r)
{
	struct veil_profile p;
	char peer[9];
	uint8_t body[BENCH_BODY];
	if (veil_profile_init(&p, home) != 0)
		return -1;
	memcpy(p.id, "ECHOECHO", VEIL_ID_LEN);
	veil_keypair(p.pk, p.sk);
	snprintf(p.chat_host, sizeof p.chat_host, "127.0.0.1");
	p.chat_port = 5222;
	if (veil_profile_create(&p) != 0)
		return -1;
	double t0 = bench_now();
	if (batch)
		sqlite3_exec(p.db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (int i = 0; i < n; i++) {
		struct veil_log_entry e = {.dir = i & 1,
		                           .msg_id = (uint64_t)i,
		                           .date_ms = 1700000000000ull + (uint64_t)i,
		                           .type = 1,
		                           .body = body,
		                           .body_len = sizeof body};
		bench_message(i, peer, body);
		memcpy(e.peer, peer, VEIL_ID_LEN);
		int rc =
		    batch ? veil_log_put_locked(&p, &e, 1) : veil_profile_log_add(&p, &e, NULL);
		if (rc != 0)
			return -1;
	}
	if (batch)
		sqlite3_exec(p.db, "COMMIT", NULL, NULL, NULL);
	*w = bench_now() - t0;
	t0 = bench_now();
	size_t sum = 0;
	if (veil_profile_log_list(&p, NULL, count_one, &sum) != 0)
		return -1;
	*r = bench_now() - t0;
	veil_profile_release(&p);
	return sum == (size_t)n * BENCH_BODY ? 0 : -1;
}

static int open_cost(const char *home, int level, double *secs)
{
	struct veil_profile p;
	veil_vault_set_new_level(level);
	if (veil_profile_init(&p, home) != 0)
		return -1;
	memcpy(p.id, "ECHOECHO", VEIL_ID_LEN);
	veil_keypair(p.pk, p.sk);
	snprintf(p.chat_host, sizeof p.chat_host, "127.0.0.1");
	p.chat_port = 5222;
	int rc = veil_profile_create(&p);
	veil_profile_release(&p);
	if (rc != 0)
		return -1;
	double t0 = bench_now();
	rc = veil_profile_open(&p, home);
	*secs = bench_now() - t0;
	veil_profile_release(&p);
	veil_vault_set_new_level(VEIL_KDF_NONE);
	return rc;
}

static int pass_fn(uint8_t *buf, size_t cap, size_t *len, int why, void *ctx)
{
	(void)why;
	(void)ctx;
	static const char pw[] = "correct horse battery staple";
	if (cap < sizeof pw - 1)
		return VEIL_ELIMIT;
	memcpy(buf, pw, sizeof pw - 1);
	*len = sizeof pw - 1;
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20000;
	int nc = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 300;
	double w[BENCH_RUNS], r[BENCH_RUNS], w2[BENCH_RUNS], r2[BENCH_RUNS];
	char *home = mkdtemp(dir_tmpl);
	if (home == NULL || veil_crypto_init() != 0 || n <= 0 || nc <= 0)
		return 1;
	veil_vault_set_passphrase_fn(pass_fn, NULL);
	printf("client store: %d-byte bodies, medians of %d runs (%s)\n", BENCH_BODY, BENCH_RUNS,
	       home);
	for (int mode = 1; mode >= 0; mode--) {
		int cnt = mode ? n : nc;
		for (int i = 0; i < BENCH_RUNS; i++) {
			rm_home(home);
			if (plain_run(home, cnt, mode, &w[i], &r[i]) != 0) {
				fprintf(stderr, "plain run failed\n");
				return 1;
			}
			rm_home(home);
			if (sealed_run(home, cnt, mode, &w2[i], &r2[i]) != 0) {
				fprintf(stderr, "sealed run failed\n");
				return 1;
			}
		}
		printf(" %s:\n", mode ? "insert in one transaction (batch)"
		                      : "insert one transaction per message (commit, fsync)");
		bench_print("plain SQLite, insert", cnt, w, BENCH_RUNS);
		bench_print("sealed columns (libsodium), insert", cnt, w2, BENCH_RUNS);
		bench_print("plain SQLite, read all", cnt, r, BENCH_RUNS);
		bench_print("sealed columns (libsodium), read all", cnt, r2, BENCH_RUNS);
	}
	printf(" opening a profile (unwrap of the keys):\n");
	for (int level = VEIL_KDF_NONE; level <= VEIL_KDF_MODERATE; level++) {
		double s[BENCH_RUNS];
		for (int i = 0; i < BENCH_RUNS; i++) {
			rm_home(home);
			if (open_cost(home, level, &s[i]) != 0) {
				fprintf(stderr, "open at %s failed\n", veil_kdf_level_name(level));
				return 1;
			}
		}
		printf("  kdf %-12s median %8.1f ms\n", veil_kdf_level_name(level),
		       bench_median(s, BENCH_RUNS) * 1e3);
	}
	rm_home(home);
	rmdir(home);
	return 0;
}
