/*
 * veilctl: administrative commands for a veild data directory, a table of
 * subcommand groups in the manner of the veil CLI (each group in its own
 * file). Today: gateway.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ctl.h"
#include "config.h"

static const struct ctl_cmd commands[] = {
    {"gateway", ctl_gateway, "Gateway API identities (bots): create, list, callback, credits",
     "gateway create [--id '*NAME'] [--public-key HEX] [--callback URL] [--credits N]\n"
     "       veilctl gateway list\n"
     "       veilctl gateway callback ID [URL]\n"
     "       veilctl gateway credits ID [+N|-N]\n"
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
     "Every command takes --data DIR (./var/veil) and --store URL (PostgreSQL, as\n"
     "veild's --store), and works only while veild is stopped.\n"},
};

int ctl_err(const char *fmt, ...)
{
	va_list ap;
	fputs("veilctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int ctl_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
		return 0;
	if (a[2 + n] == '=') {
		*val = a + 3 + n;
		return 1;
	}
	if (a[2 + n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

static void no_wake(void *arg)
{
	(void)arg;
}

int ctl_open(struct ctl *c, const char *data, const char *store_url)
{
	char err[512], path[1100];
	struct stat st;
	memset(c, 0, sizeof *c);
	c->lock_fd = -1;
	veil_config_defaults(&c->srv.cfg);
	if (data != NULL)
		snprintf(c->srv.cfg.data_dir, sizeof c->srv.cfg.data_dir, "%s", data);
	const char *dir = c->srv.cfg.data_dir;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return ctl_err("no data directory %s (start veild once, or give --data DIR)", dir);
	umask(077);
	snprintf(path, sizeof path, "%s/veild.lock", dir);
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lock_fd < 0)
		return ctl_err("cannot open %s: %s", path, strerror(errno));
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		ctl_close(c);
		return ctl_err("veild is running on %s: stop it first", dir);
	}
	if (veil_crypto_init() != 0) {
		ctl_close(c);
		return ctl_err("cannot initialise libsodium");
	}
	if (veil_server_keys_load(&c->srv.keys, dir, err, sizeof err) != 0) {
		ctl_close(c);
		return ctl_err("%s", err);
	}
	if (store_url != NULL)
		snprintf(path, sizeof path, "%s", store_url);
	else
		snprintf(path, sizeof path, "%s/veil.db", dir);
	err[0] = '\0';
	struct veil_store_opts so = {
	    .path = path, .wake = no_wake, .err = err, .errcap = sizeof err};
	int rc = veil_store_open(&c->srv.store, &so);
	if (rc != 0) {
		ctl_close(c);
		return ctl_err("cannot open the store: %s", err[0] ? err : veil_strerror(rc));
	}
	uint8_t key[32];
	veil_gwdb_seal_key(key, c->srv.keys.dir_sk);
	snprintf(path, sizeof path, "%s/gateway.db", dir);
	rc = veil_gwdb_open(&c->gw, path, key);
	sodium_memzero(key, sizeof key);
	if (rc != 0) {
		ctl_close(c);
		return ctl_err("cannot open %s", path);
	}
	return 0;
}

void ctl_close(struct ctl *c)
{
	veil_gwdb_close(c->gw);
	c->gw = NULL;
	veil_store_close(c->srv.store);
	c->srv.store = NULL;
	if (c->srv.keys.csp_sk != NULL)
		veil_server_keys_free(&c->srv.keys);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	c->lock_fd = -1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: veilctl COMMAND [ARGS]  (veilctl COMMAND --help)\n\n"
	           "Administers the data directory of a stopped veild.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		for (int k = 2; k < argc; k++)
			if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
				printf("Usage: veilctl %s", commands[i].usage);
				return 0;
			}
		return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "veilctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
