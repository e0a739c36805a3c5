/* Shared helpers of the veil command-line client. */
#ifndef VEIL_CLI_H
#define VEIL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "veil/client.h"
#include "veil/util.h"

/* One subcommand: argv[0] is the subcommand's name. Returns the exit code. */
struct cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage; /* the whole --help text after "usage: veil " */
};

extern const char *cli_prog;

/* Prints "veil: <message>" on stderr; returns 1 (the exit code of an error). */
int cli_err(const char *fmt, ...) VEIL_PRINTF(1, 2);
/* Prints the usage of cmd on f. */
void cli_usage(FILE *f, const char *name);
/* Prints the usage on stderr and returns 2 (a usage error). */
int cli_usage_err(const char *name, const char *why);
/* Returns 1 if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);
/*
 * Option parsing: if argv[*i] is "--name VALUE" or "--name=VALUE", stores
 * VALUE in *val, advances *i past it and returns 1. Returns -1 if the option
 * is given without its value, else 0.
 */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);
/* Parses an ID (lower case accepted); prints an error and returns 2 on failure. */
int cli_parse_id(uint8_t id[static VEIL_ID_LEN], const char *s);
/* Parses a 32-byte key in hex; prints an error and returns 2 on failure. */
int cli_parse_key(uint8_t key[static VEIL_KEY_LEN], const char *s, const char *what);
/* Opens the messenger on the profile of $VEIL_HOME; prints the error and returns 1. */
int cli_open(struct veil_msgr *m);
/* A message ID as 16 hex digits of its wire bytes (little-endian). */
void cli_msgid(char out[static 17], uint64_t id);
/* The name of an inner message type, or "0x.." in buf for an unknown one. */
const char *cli_type(char buf[static 8], uint8_t type);
/*
 * Exit statuses: 0 success, 1 failure, 2 usage error, 3 a group operation
 * reached some receivers but not all (each named on stderr).
 */
#define CLI_EXIT_PARTIAL 3

/* The release, as veild reports it (srv/main.c). */
#define CLI_VERSION "0.1.0"

/*
 * Checks the text arguments argv[from..argc) of send and group send: an
 * argument that looks like an option ("-x", "--x"; "-" alone is a text)
 * before a "--" is an error, not text. Sets *start to the first text
 * argument ("--" skipped if it comes first) and removes a "--" found later
 * by moving the remaining arguments down (*argc shrinks). Returns 0 or 2
 * (usage error printed).
 */
int cli_text_args(const char *cmd, int *argc, char **argv, int from, int *start);

/* Prints what a message stored raw was: "stored raw: type 0xNN, N bytes" (type 0: not decrypted). */
void cli_raw_desc(uint8_t type, size_t len);
/* Unix milliseconds as ISO 8601 UTC, "2024-05-01T12:00:00Z". */
void cli_date(char out[static 32], uint64_t ms);

/*
 * The one word for a message's state in every command's output (recv, log,
 * human and JSON): 0 "sent", then the receipt statuses 1 "received", 2 "read",
 * 3 "acknowledged", 4 "declined"; "unknown" for anything else.
 */
const char *cli_status_word(int status);
/* Writes text for a terminal: control characters other than newline and tab become '?'. */
void cli_put_text(FILE *f, const char *p, size_t n);
/*
 * Parses a point in time for --since: a UTC date (YYYY-MM-DD, optionally
 * THH:MM[:SS] and Z) or a duration before now_ms (digits and s, m, h, d or
 * w). Returns 0 with Unix milliseconds in *out, or -1.
 */
int cli_parse_since(const char *s, uint64_t now_ms, uint64_t *out);
/*
 * Resolves "GID" or "CREATOR:GID" to a group the profile knows. Prints the
 * error and returns non-zero (2 for a malformed argument, 1 otherwise).
 */
int cli_group_resolve(struct veil_msgr *m, const char *arg, uint8_t creator[static VEIL_ID_LEN],
                      uint64_t *gid);

/* Writes "ID" or, if the contact has a local name, "ID (Name)". m may be NULL. */
void cli_put_who(FILE *f, struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN]);
/* Adds "contact_name" to the JSON object o if id has a local name. */
struct json_t;
void cli_json_who(struct json_t *o, struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN]);

int cmd_init(int argc, char **argv);
int cmd_whoami(int argc, char **argv);
int cmd_contact(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_link(int argc, char **argv);
int cmd_qr(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_server(int argc, char **argv);
/* contact subcommands in contact_match.c */
int cli_contact_match(int argc, char **argv);
int cli_contact_show(int argc, char **argv);
int cli_contact_verify(int argc, char **argv);
int cmd_group(int argc, char **argv);

#endif
