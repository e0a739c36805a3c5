/* Levelled logging to stderr with a UTC timestamp. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "veil/util.h"

static enum veil_log_level g_level = VEIL_LOG_INFO;

void veil_log_set_level(enum veil_log_level lvl)
{
	g_level = lvl;
}

enum veil_log_level veil_log_get_level(void)
{
	return g_level;
}

int veil_log_parse_level(const char *s, enum veil_log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(names); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum veil_log_level)i;
			return 0;
		}
	}
	return VEIL_EINVAL;
}

void veil_log(enum veil_log_level lvl, const char *fmt, ...)
{
	static const char *const tags[] = {"error", "warn", "info", "debug"};
	if (lvl > g_level)
		return;
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	n += snprintf(line + n, sizeof line - (size_t)n, "%s: ", tags[lvl]);
	va_list ap;
	va_start(ap, fmt);
	if (n < (int)sizeof line)
		vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line keeps lines from several threads whole. */
	fprintf(stderr, "%s\n", line);
}

uint64_t veil_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t veil_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
