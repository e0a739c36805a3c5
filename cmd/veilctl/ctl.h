/*
 * veilctl: the admin command of veild. A table of subcommands in main.c,
 * each in a file of its own. invite talks to a running veild through the
 * owner-only socket DATA/admin.sock (srv/admin/admin.h); gateway works on
 * the data directory of a stopped veild (local.c).
 */
#ifndef VEIL_CTL_H
#define VEIL_CTL_H

#include <stdio.h>

#include <jansson.h>

#include "veil/util.h"

#include "server.h"
#include "gateway/gwdb.h"
#include "admin/admin.h"

/* One subcommand: argv[0] is its name. Returns the exit status. */
struct ctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage; /* the --help text after "usage: veilctl [OPTIONS] " */
};

/* Global options, set by main before a subcommand runs. */
extern const char *ctl_data_dir;  /* --data, default ./var/veil */
extern int ctl_json;              /* --json: print the answers as JSON */
extern const char *ctl_store_url; /* --store (or the config's store), NULL = DATA/veil.db */
extern const char *ctl_config;    /* --config FILE: veild's config, NULL = none */
extern int ctl_data_given;        /* --data was given (it wins over the config's) */

/* Exit statuses: 0 done, 1 failed (message printed), 2 usage error. */
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

/* Prints "veilctl: <message>" on stderr and returns CTL_EXIT_FAIL. */
int ctl_err(const char *fmt, ...) VEIL_PRINTF(1, 2);
/* Prints the usage of the named subcommand with why on stderr; returns CTL_EXIT_USAGE. */
int ctl_usage_err(const char *name, const char *why);
/* 1 if argv holds -h or --help (the usage is then printed on stdout by main). */
int ctl_wants_help(int argc, char **argv);
/*
 * If argv[*i] is "--name VALUE" or "--name=VALUE": *val = VALUE, *i moves
 * past it, returns 1; -1 if the value is missing; else 0.
 */
int ctl_opt(int argc, char **argv, int *i, const char *name, const char **val);
/* Parses a decimal number in [min, max]; -1 if it is not one. */
int ctl_number(const char *s, long min, long max, long *out);

/*
 * Runs req (a JSON object with "cmd"; reference kept by the caller): on
 * veild's admin socket if a veild runs on the data directory, else on the
 * data directory itself with the same code (srv/admin), so both answer
 * alike. Returns 0 with *resp (an object with "ok": true), or prints why
 * and returns CTL_EXIT_FAIL (refused, or "ok": false with its error).
 */
int ctl_call(json_t *req, json_t **resp);
/* Prints an answer as one JSON line without its "ok". */
int ctl_print_json(json_t *o);
/* Unix milliseconds as a UTC date, or dflt for 0. */
void ctl_date(char out[static 32], json_int_t ms, const char *dflt);

int cmd_invite(int argc, char **argv);
/* ident.c: list, show, block, unblock, delete, revoke, status, queue */
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_block(int argc, char **argv);
int cmd_unblock(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_queue(int argc, char **argv);
/* check.c */
int cmd_check(int argc, char **argv);

/*
 * Commands on the data directory of a stopped veild (today: gateway).
 * ctl_open locks the data directory (data, or NULL for --data / ./var/veil),
 * loads the server's keys and opens the store (store_url, or NULL for
 * DIR/veil.db) and the Gateway's accounts; it prints why and returns 1 on
 * failure (veild running, say).
 */
struct ctl {
	struct veil_server srv; /* cfg.data_dir, cfg.store, keys, store */
	struct veil_gwdb *gw;
	int lock_fd;
};
int ctl_open(struct ctl *c, const char *data, const char *store_url);
void ctl_close(struct ctl *c);

int ctl_gateway(int argc, char **argv);

#endif
