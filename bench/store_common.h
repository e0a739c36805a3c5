/*
 * Shared by bench/vault_bench.c and bench/sqlcipher/sqlcipher_bench.c: the
 * workload of the client's message log (the first format's schema and
 * statements) and the timing helpers, so both measure the same thing.
 */
#ifndef VEIL_BENCH_STORE_COMMON_H
#define VEIL_BENCH_STORE_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_RUNS 3
#define BENCH_BODY 200 /* bytes of a typical text message body */

static const char BENCH_PLAIN_SCHEMA[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS messages("
    " seq INTEGER PRIMARY KEY, dir INTEGER NOT NULL, peer TEXT NOT NULL,"
    " msg_id INTEGER NOT NULL, date INTEGER NOT NULL, type INTEGER NOT NULL,"
    " body BLOB NOT NULL, status INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(dir, peer, msg_id));";
static const char BENCH_PLAIN_INSERT[] =
    "INSERT INTO messages(dir, peer, msg_id, date, type, body, status) "
    "VALUES(?1, ?2, ?3, ?4, 1, ?5, 0)";
static const char BENCH_PLAIN_SELECT[] =
    "SELECT dir, peer, msg_id, date, type, body, status FROM messages ORDER BY seq";

static inline double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static inline double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, bench_cmp);
	return v[n / 2];
}

/* The i-th message of the workload: one of 50 peers, a body of BENCH_BODY bytes. */
static inline void bench_message(int i, char peer[9], uint8_t body[BENCH_BODY])
{
	snprintf(peer, 9, "PEER%04d", i % 50);
	memset(body, 'a' + i % 26, BENCH_BODY);
}

static inline void bench_print(const char *what, int n, double *secs, int runs)
{
	double m = bench_median(secs, runs);
	printf("  %-44s %7d msgs  median %8.1f ms  %9.0f msgs/s\n", what, n, m * 1e3,
	       m > 0 ? n / m : 0);
}

#endif
