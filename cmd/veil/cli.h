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

/*
 * After a contact changed here: tells the other devices of a device group
 * (veil_msgr_md_sync_contact); a failure is a warning on stderr, the local
 * change stands.
 */
/* Draws text as a QR code on f (terminal half blocks); 0 or -1. */
int cli_qr_print(FILE *f, const char *text);
/*
 * Asks on the terminal whether both devices show the same rendezvous code
 * (ctx: an int, non-zero for --yes, which answers yes without asking).
 */
int cli_confirm_rph(const char *rph, void *ctx);
/* veil init --join LINK ... (device.c). */
int cli_init_join(const char *link, const char *server, const char *cacert, const char *label,
                  int yes);
void cli_sync_contact(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN], int create);
/* Prints what a message stored raw was: "stored raw: type 0xNN, N bytes" (type 0: not decrypted). */
void cli_raw_desc(uint8_t type, size_t len);
/* Unix milliseconds as ISO 8601 UTC, "2024-05-01T12:00:00Z". */
void cli_date(char out[static 32], uint64_t ms);

/*
 * The JSON object recv --json prints for a message event (raw ones
 * included; file messages without their download; contact names from m,
 * which may be NULL). NULL if out of memory.
 */
struct json_t;
struct json_t *cli_event_json(struct veil_msgr *m, const struct veil_msgr_event *ev);

/*
 * The daemon (daemon.c): cli_daemon_open takes $VEIL_HOME's daemon lock,
 * opens the profile and listens on $VEIL_HOME/daemon.sock (errors printed,
 * NULL); cli_daemon_run serves until stop_fd is readable (0) or fails (1);
 * quiet keeps its log lines off stderr.
 */
struct cli_daemon;
struct cli_daemon *cli_daemon_open(int quiet);
int cli_daemon_run(struct cli_daemon *d, int stop_fd);
void cli_daemon_free(struct cli_daemon *d);
const char *cli_daemon_socket(const struct cli_daemon *d);

/*
 * Its clients (rpc.c). cli_rpc_connect: a connected socket to the daemon
 * of $VEIL_HOME, or -1 if none runs. cli_rpc_write sends one message and
 * frees it (0 or -1). A reader splits what the daemon sends into JSON
 * values: cli_rpc_read returns 1 with *out (the caller frees it), 0 if
 * nothing came within timeout_ms (negative: wait), -1 when the daemon is
 * gone. cli_rpc_call sends a request and returns its response (result or
 * error), skipping notifications; NULL with the error printed.
 * cli_rpc_status prints an error response's alerts and message and returns
 * the exit status (0 for a result).
 */
struct cli_rpc_reader {
	int fd;
	char *buf;
	size_t len, cap;
};
int cli_rpc_connect(void);
int cli_rpc_write(int fd, struct json_t *msg);
void cli_rpc_reader_init(struct cli_rpc_reader *r, int fd);
void cli_rpc_reader_release(struct cli_rpc_reader *r);
int cli_rpc_read(struct cli_rpc_reader *r, struct json_t **out, int timeout_ms);
struct json_t *cli_rpc_call(int fd, const char *method, struct json_t *params);
int cli_rpc_status(struct json_t *resp);
/*
 * Prints the answer to send or groupSend as 'veil send' prints its own
 * work: alerts and members who missed out on stderr, the message ID on
 * stdout, then the error line. Frees resp (NULL: 1). Returns the exit status.
 */
int cli_rpc_sent(struct json_t *resp);
/* path relative to the current directory made absolute (the daemon runs elsewhere); 0 or -1. */
int cli_rpc_abs_path(char *out, size_t cap, const char *path);

/* The --help texts of daemon and chat, kept here to keep main.c's table short. */
#define CLI_DAEMON_USAGE                                                                           \
	"daemon [--quiet]\n"                                                                       \
	"\n"                                                                                       \
	"Holds the one chat connection of $VEIL_HOME: receives all the time (each\n"               \
	"message stored, then acked, with delivery receipts, as 'veil recv' does; files\n"         \
	"saved in $VEIL_HOME/files), reconnects with back-off, and serves JSON-RPC 2.0\n"          \
	"on the unix socket $VEIL_HOME/daemon.sock (mode 0600): one JSON object per\n"             \
	"line. While it runs, 'veil send', 'veil group send' and 'veil chat' go\n"                 \
	"through it (a second login would end its connection). One daemon per\n"                   \
	"profile ($VEIL_HOME/daemon.lock). SIGTERM or Ctrl-C stops it. With backups\n"             \
	"configured ('veil backup config') it uploads one after changes, at most daily.\n"         \
	"\n"                                                                                       \
	"methods (params):\n"                                                                      \
	"  send {to, text | file [, caption]}   -> {id}\n"                                         \
	"  groupSend {group, text | file [, caption]}   -> {id, failed}\n"                         \
	"  markRead {to, ids}                  marks message IDs read (as 'veil read')\n"          \
	"  markConversationRead {peer}         veil read: every unread message of peer\n"          \
	"  listContacts, listGroups            as 'contact list --json', 'group list'\n"           \
	"  log {peer? | group?, limit?}        the last messages (default 50)\n"                   \
	"  subscribe, unsubscribe              notifications \"receive\" with the\n"               \
	"                                      fields of 'recv --json'\n"                          \
	"  version                             -> {version, account}\n"                            \
	"errors: -32700 not JSON, -32600 invalid request (or a line over 64 KiB),\n"               \
	"-32601 no such method, -32602 invalid params, 1 the operation failed (the\n"              \
	"message says why), 3 a group message reached some members but not all.\n"                 \
	"\n"                                                                                       \
	"  --quiet   no log lines on stderr\n"

#define CLI_CHAT_USAGE                                                                             \
	"chat ID | GID [--history N]\n"                                                            \
	"\n"                                                                                       \
	"A conversation in the terminal with a contact (ID) or a group (GID as 'veil\n"            \
	"group list' prints it): the last N messages (default 20) above, new ones as\n"            \
	"they come, with delivery and read receipts; type a line and Enter to send.\n"             \
	"Opening a conversation with a contact reads it, as 'veil read' does.\n"                   \
	"Uses the running daemon, or runs one inside chat while it lasts.\n"                       \
	"\n"                                                                                       \
	"  /file PATH [CAPTION]   send a file\n"                                                   \
	"  /quit or Ctrl-D        leave\n"

int cmd_daemon(int argc, char **argv);
int cmd_chat(int argc, char **argv);

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
void cli_json_who(struct json_t *o, struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN]);

int cmd_init(int argc, char **argv);
int cmd_whoami(int argc, char **argv);
int cmd_device(int argc, char **argv);
int cmd_contact(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_nickname(int argc, char **argv);
int cmd_settings(int argc, char **argv);
int cmd_link(int argc, char **argv);
int cmd_qr(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_server(int argc, char **argv);
/* contact subcommands in contact_match.c */
int cli_contact_match(int argc, char **argv);
int cli_contact_show(int argc, char **argv);
int cli_contact_verify(int argc, char **argv);
int cmd_group(int argc, char **argv);
int cmd_backup(int argc, char **argv); /* backup.c */
int cmd_passphrase(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);

/*
 * Passphrases (pass.c). cli_pass_setup makes the library ask through
 * cli_pass_read: the file named by $env (if set), else by
 * $VEIL_PASSPHRASE_FILE, else the terminal without echo (twice if
 * confirm). cli_new_level: the KDF level of a new passphrase from --kdf,
 * else $VEIL_KDF, else moderate; none with --no-passphrase (2 on a usage
 * error, printed).
 */
void cli_pass_setup(void);
/* Asks for the new passphrase now, for the library to take later (1 with the error printed). */
int cli_pass_prefetch_new(void);
int cli_pass_read(const char *env, const char *prompt, int confirm, uint8_t *buf, size_t cap,
                  size_t *len);
int cli_kdf_option(const char *cmd, const char *v, int *level);
int cli_new_level(const char *cmd, const char *kdf, int no_pass, int *level);

#endif
