/*
 * veilctl: administration of a veild data directory. It works on the data
 * directory of a stopped server: it takes veild's lock (DIR/veild.lock), so
 * it refuses while veild runs and veild cannot start meanwhile.
 */
#ifndef VEIL_CTL_H
#define VEIL_CTL_H

#include "server.h"
#include "gateway/gwdb.h"

/* One subcommand group: argv[0] is its name. Returns the exit code. */
struct ctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage;
};

/* What every subcommand works on, opened by ctl_open. */
struct ctl {
	struct veil_server srv; /* cfg.data_dir, cfg.store, keys, store */
	struct veil_gwdb *gw;
	int lock_fd;
};

/* Prints "veilctl: <message>" on stderr; returns 1. */
int ctl_err(const char *fmt, ...) VEIL_PRINTF(1, 2);
/*
 * Option parsing: "--name VALUE" or "--name=VALUE" at argv[*i] stores VALUE
 * and advances *i; returns 1, 0 if not this option, -1 without a value.
 */
int ctl_opt(int argc, char **argv, int *i, const char *name, const char **val);
/*
 * Locks the data directory data (NULL: ./var/veil), loads the server's keys
 * and opens the store (store_url, or NULL for DIR/veil.db) and the Gateway's
 * accounts. Prints why and returns 1 on failure.
 */
int ctl_open(struct ctl *c, const char *data, const char *store_url);
void ctl_close(struct ctl *c);

int ctl_gateway(int argc, char **argv);

#endif
