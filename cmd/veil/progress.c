/* The progress bar: "label  45% [=====     ] 12.3 MB/s  0:07 left", redrawn at most 10 times a second. */
#include <stdio.h>
#include <unistd.h>

#include "veil/util.h"

#include "progress.h"

#define BAR 24

void cli_progress_init(struct cli_progress *p, const char *label)
{
	p->label = label;
	p->tty = isatty(STDERR_FILENO);
	p->start_ms = 0;
	p->last_ms = 0;
	p->drawn = 0;
}

void cli_progress_cb(uint64_t done, uint64_t total, void *ctx)
{
	struct cli_progress *p = ctx;
	if (!p->tty || total == 0)
		return;
	uint64_t now = veil_mono_ms();
	if (p->start_ms == 0)
		p->start_ms = now;
	if (done < total && p->drawn && now - p->last_ms < 100)
		return;
	p->last_ms = now;
	p->drawn = 1;
	double secs = (double)(now - p->start_ms) / 1000.0;
	double rate = secs > 0.05 ? (double)done / secs : 0.0; /* bytes per second */
	unsigned pct = (unsigned)(done * 100 / total);
	char bar[BAR + 1];
	size_t fill = (size_t)(done * BAR / total);
	for (size_t i = 0; i < BAR; i++)
		bar[i] = i < fill ? '=' : ' ';
	bar[BAR] = '\0';
	char left[32] = "--:--";
	if (rate > 0.0 && done < total) {
		uint64_t s = (uint64_t)((double)(total - done) / rate);
		snprintf(left, sizeof left, "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
	} else if (done == total) {
		snprintf(left, sizeof left, "0:00");
	}
	fprintf(stderr, "\r%s %3u%% [%s] %7.1f MB/s  %s left ", p->label, pct, bar, rate / 1e6,
	        left);
	fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->tty && p->drawn)
		fputc('\n', stderr);
	p->drawn = 0;
}
