/* A progress bar for uploads and downloads, drawn on stderr only if it is a terminal. */
#ifndef VEIL_CLI_PROGRESS_H
#define VEIL_CLI_PROGRESS_H

#include <stdint.h>

struct cli_progress {
	const char *label;
	int tty;           /* stderr is a terminal: draw; else stay quiet */
	uint64_t start_ms; /* monotonic, at the first call */
	uint64_t last_ms;  /* of the last redraw */
	int drawn;
};

/* Prepares p; label (e.g. "upload photo.jpg") must outlive it. */
void cli_progress_init(struct cli_progress *p, const char *label);
/* The callback for veil_file_opts.progress and veil_msgr_file_download. */
void cli_progress_cb(uint64_t done, uint64_t total, void *ctx);
/* Ends the bar's line if one was drawn. */
void cli_progress_end(struct cli_progress *p);

#endif
