/*
 * veilctl: administers a running veild through its admin socket. A table of
 * subcommands; each lives in its own file.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ctl.h"

#define CTL_VERSION "0.1.0"

const char *ctl_data_dir = veil_default_data_dir;
int ctl_json;
const char *ctl_store_url;
const char *ctl_config;
int ctl_data_given;

static const struct ctl_cmd commands[] = {
    {"list", cmd_list, "list identities: ID, state, created, last login, queue size",
     "list [--after ID] [--limit N]\n"
     "\n"
     "Prints up to N identities (100, at most 1000) in ID order, after ID if given:\n"
     "ID, state (active, blocked, revoked), when it was created, its last login and\n"
     "how many messages wait in its queue.\n"},
    {"show", cmd_show, "one identity in full (with its public key)", "show ID\n"},
    {"block", cmd_block, "refuse an identity's logins (until unblock)",
     "block ID\n"
     "\n"
     "The identity's connections close at once and its logins are refused; the\n"
     "directory reports it as inactive; messages to it wait in its queue (until\n"
     "they expire) for when it is unblocked.\n"},
    {"unblock", cmd_unblock, "let a blocked identity log in again", "unblock ID\n"},
    {"revoke", cmd_revoke, "revoke an identity for good (as its owner can)",
     "revoke ID\n"
     "\n"
     "The identity becomes invalid for good: logins and messages to it are refused,\n"
     "its linked e-mail address and phone number are removed. Its ID is never\n"
     "given out again.\n"},
    {"delete", cmd_delete, "revoke an identity and remove its queue, links and push token",
     "delete ID --yes\n"
     "\n"
     "As revoke, and its queued messages, push token and revocation key are removed\n"
     "too. Cannot be undone.\n"},
    {"status", cmd_status, "version, uptime, connections, services and store of veild",
     "status\n"
     "\n"
     "On a running veild: version, pid, uptime, listening addresses, services,\n"
     "sign-up mode, connections and counts since the start, the store and its\n"
     "queue. On a stopped one: the store and its queue.\n"},
    {"queue", cmd_queue, "queue statistics: messages, bytes, recipients, longest queue", "queue\n"},
    {"check", cmd_check, "check a configuration before starting veild (like prosodyctl check)",
     "check\n"
     "\n"
     "With --config FILE (veild's config) or the defaults and --data: the config\n"
     "parses, the data directory and key files are private, the ports are free or\n"
     "bound by this veild, the public URL suits a TLS proxy, the sign-up mode fits\n"
     "the listening address. Prints ok, note, warn or FAIL lines; exits 1 on a FAIL.\n"},
    {"gateway", ctl_gateway, "Gateway API identities (bots): create, list, callback, credits",
     "gateway create [--id '*NAME'] [--public-key HEX] [--callback URL] [--credits N]\n"
     "       veilctl [OPTIONS] gateway list\n"
     "       veilctl [OPTIONS] gateway callback ID [URL]\n"
     "       veilctl [OPTIONS] gateway credits ID [+N|-N]\n"
     "\n"
     "create:   makes a Gateway API identity ('*' and 7 characters of A-Z, 0-9; a\n"
     "          random one without --id), registers it in the directory so that\n"
     "          anyone can look it up and write to it, and prints \"ID SECRET\": the\n"
     "          API secret is shown this once. With --public-key (64 hex digits) the\n"
     "          caller keeps the private key (end-to-end mode, send_e2e); without it\n"
     "          veild makes a key pair and keeps the private key (basic mode,\n"
     "          send_simple; send_e2e works too). --callback URL: where incoming\n"
     "          messages are POSTed. --credits N: messages it may send (1000000).\n"
     "list:     prints ID, modes, credits and callback URL of each API identity, and\n"
     "          its callback failures in a row with the last one, if any.\n"
     "callback: prints, or sets ('' removes) the callback URL.\n"
     "credits:  prints, or adds to, the credits.\n"
     "\n"
     "Every command also takes --data DIR and --store URL after `gateway`.\n"},
    {"invite", cmd_invite, "create, list and revoke invite codes",
     "invite create [--uses N] [--expires DAYS]\n"
     "       veilctl [OPTIONS] invite list\n"
     "       veilctl [OPTIONS] invite revoke ID\n"
     "\n"
     "With `signup = invite` (the default when veild listens on a non-loopback\n"
     "address) a new user joins with `veil init --invite CODE`.\n"
     "\n"
     "create:  makes a code and prints it with its ID. The code is shown only now\n"
     "         (the server keeps only a hash of it): pass it on to the person.\n"
     "         --uses N       how many identities it may create (1)\n"
     "         --expires DAYS days until it expires, 0 for never (7)\n"
     "list:    prints every invite: ID, uses taken of uses, expiry, state (active,\n"
     "         used, expired, revoked).\n"
     "revoke:  revokes the invite with that ID (from create or list).\n"},
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: veilctl [OPTIONS] COMMAND [ARGS]\n"
	        "\n"
	        "Administers veild: through the admin socket of a running veild,\n"
	        "DATA/admin.sock (only veild's user and root may use it), or, when none\n"
	        "runs, on its data directory and store directly, with the same answers.\n"
	        "\n"
	        "Options:\n"
	        "  --data DIR   veild's data directory (%s, as veild's default)\n"
	        "  --store URL  veild's PostgreSQL store (when veild is stopped; as its --store)\n"
	        "  --config FILE  veild's config file: its data and store settings\n"
	        "  --json       print answers as JSON\n"
	        "  --help       this help; COMMAND --help for a command's\n"
	        "  --version    the version\n"
	        "\n"
	        "Commands:\n",
	        veil_default_data_dir);
	for (size_t i = 0; i < VEIL_ARRAY_LEN(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

static const struct ctl_cmd *find(const char *name)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int ctl_usage_err(const char *name, const char *why)
{
	const struct ctl_cmd *c = find(name);
	fprintf(stderr, "veilctl %s: %s\n", name, why);
	if (c != NULL)
		fprintf(stderr, "usage: veilctl [OPTIONS] %s", c->usage);
	return CTL_EXIT_USAGE;
}

int ctl_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;
	/* On a stopped server the commands run here: their info lines are veild's, not ours. */
	veil_log_set_level(VEIL_LOG_WARN);
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *v;
		int r = ctl_opt(argc, argv, &i, "data", &v);
		if (r < 0) {
			fprintf(stderr, "veilctl: --data needs a directory\n");
			return CTL_EXIT_USAGE;
		}
		if (r > 0) {
			ctl_data_dir = v;
			ctl_data_given = 1;
		} else if ((r = ctl_opt(argc, argv, &i, "store", &v)) > 0) {
			ctl_store_url = v;
		} else if (r == 0 && (r = ctl_opt(argc, argv, &i, "config", &v)) > 0) {
			ctl_config = v;
		} else if (r < 0) {
			fprintf(stderr, "veilctl: %s needs a value\n", argv[i]);
			return CTL_EXIT_USAGE;
		} else if (strcmp(argv[i], "--json") == 0)
			ctl_json = 1;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("veilctl %s\n", CTL_VERSION);
			return 0;
		} else {
			fprintf(stderr, "veilctl: unknown option '%s' (see veilctl --help)\n",
			        argv[i]);
			return CTL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	const struct ctl_cmd *c = find(argv[i]);
	if (c == NULL) {
		fprintf(stderr, "veilctl: unknown command '%s' (see veilctl --help)\n", argv[i]);
		return CTL_EXIT_USAGE;
	}
	if (ctl_wants_help(argc - i, argv + i)) {
		printf("usage: veilctl [OPTIONS] %s", c->usage);
		return 0;
	}
	/* veild's config names the data directory and store; --data and --store win. */
	static struct veil_config cfg;
	if (ctl_config != NULL && strcmp(c->name, "check") != 0) {
		char err[512];
		veil_config_defaults(&cfg);
		if (veil_config_load(&cfg, ctl_config, err, sizeof err) != 0) {
			fprintf(stderr, "veilctl: %s\n", err);
			return CTL_EXIT_FAIL;
		}
		if (!ctl_data_given)
			ctl_data_dir = cfg.data_dir;
		if (ctl_store_url == NULL && cfg.store[0] != '\0')
			ctl_store_url = cfg.store;
	}
	return c->fn(argc - i, argv + i);
}
