/*
 * A minimal test harness: each test function runs in turn and the binary
 * prints one "PASS name" or "FAIL name" line per test, which tests/run
 * counts. A failed check prints where and why and ends that test.
 */
#ifndef VEIL_T_H
#define VEIL_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			t_failed = 1;                                                              \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_RC(expr, want)                                                                       \
	do {                                                                                       \
		int t_rc_ = (expr);                                                                \
		if (t_rc_ != (want)) {                                                             \
			fprintf(stderr, "%s:%d: %s returned %d, want %d\n", __FILE__, __LINE__,    \
			        #expr, t_rc_, (int)(want));                                        \
			t_failed = 1;                                                              \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

#define RUN(fn)                                                                                    \
	do {                                                                                       \
		t_failed = 0;                                                                      \
		fn();                                                                              \
		printf("%s %s\n", t_failed ? "FAIL" : "PASS", #fn);                                \
		fflush(stdout);                                                                    \
		t_total_failed += t_failed;                                                        \
	} while (0)

#define T_MAIN_BEGIN                                                                               \
	int main(void)                                                                             \
	{                                                                                          \
		int t_total_failed = 0;                                                            \
		if (veil_crypto_init() != 0)                                                       \
			return 2;

#define T_MAIN_END                                                                                 \
	return t_total_failed ? 1 : 0;                                                             \
	}

/* Decodes a hex literal for tests; aborts on bad input (test bug). */
static inline size_t t_hex(unsigned char *out, size_t cap, const char *hex)
{
	size_t n = 0;
	for (const char *p = hex; *p;) {
		if (*p == ' ') {
			p++;
			continue;
		}
		unsigned v;
		char tmp[3] = {p[0], p[1], 0};
		char *end;
		v = (unsigned)strtoul(tmp, &end, 16);
		if (end != tmp + 2 || n >= cap)
			abort();
		out[n++] = (unsigned char)v;
		p += 2;
	}
	return n;
}

#endif
