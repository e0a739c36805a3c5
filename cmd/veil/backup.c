/* veil backup: Threema Safe backups to a Safe server or a WebDAV server. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "veil/e2e.h"
#include "veil/safe.h"

#define PW_MIN 8 /* as the specification's apps ask */

/* The first line of path (at most cap - 1 bytes), without its line end. */
static int read_line_file(const char *path, char *out, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, out, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	out[n] = 0;
	out[strcspn(out, "\r\n")] = 0;
	return 0;
}

/* Reads one line from the terminal without echo. */
static int prompt_line(const char *prompt, char *out, size_t cap)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	struct termios saved, t;
	int rc = -1, echo_off = 0;
	if (tcgetattr(fd, &saved) == 0) {
		t = saved;
		t.c_lflag &= ~(tcflag_t)ECHO;
		echo_off = tcsetattr(fd, TCSAFLUSH, &t) == 0;
	}
	if (write(fd, prompt, strlen(prompt)) < 0)
		goto out;
	size_t n = 0;
	for (;;) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || ch == '\n')
			break;
		if (n + 1 < cap)
			out[n++] = ch;
	}
	out[n] = 0;
	rc = 0;
	if (write(fd, "\n", 1) < 0)
		rc = 0;
out:
	if (echo_off)
		tcsetattr(fd, TCSAFLUSH, &saved);
	close(fd);
	return rc;
}

/*
 * The backup password: from $VEIL_BACKUP_PASSWORD_FILE, else asked on the
 * terminal (twice if confirm). out is sodium_malloc'd by the caller.
 */
static int backup_password(char *out, size_t cap, int confirm)
{
	const char *f = getenv("VEIL_BACKUP_PASSWORD_FILE");
	if (f != NULL && f[0] != 0) {
		if (read_line_file(f, out, cap) != 0)
			return cli_err("cannot read VEIL_BACKUP_PASSWORD_FILE %s", f);
	} else {
		if (prompt_line("backup password: ", out, cap) != 0)
			return cli_err("no terminal to ask for the backup password: set "
			               "VEIL_BACKUP_PASSWORD_FILE");
		if (confirm) {
			char again[VEIL_SAFE_PASSWORD_MAX + 2];
			int same = prompt_line("again: ", again, sizeof again) == 0 &&
			           strcmp(again, out) == 0;
			sodium_memzero(again, sizeof again);
			if (!same)
				return cli_err("the passwords differ");
		}
	}
	if (out[0] == 0)
		return cli_err("the backup password is empty");
	if (strlen(out) > VEIL_SAFE_PASSWORD_MAX)
		return cli_err("the backup password is longer than %d bytes",
		               VEIL_SAFE_PASSWORD_MAX);
	return 0;
}

/* --url, --user, --password-file and --cacert into t (probed); 0 or an exit code. */
static int target_from(struct veil_backup_target *t, const char *url, const char *user,
                       const char *pwfile, const char *cacert)
{
	char err[512];
	memset(t, 0, sizeof *t);
	if (user != NULL && strlen(user) > VEIL_BACKUP_CRED_MAX)
		return cli_err("--user is too long");
	snprintf(t->user, sizeof t->user, "%s", user != NULL ? user : "");
	if (pwfile != NULL && read_line_file(pwfile, t->password, sizeof t->password) != 0)
		return cli_err("cannot read --password-file %s", pwfile);
	if (cacert != NULL) {
		if (cacert[0] != '/') {
			char cwd[VEIL_PROFILE_PATH_MAX];
			if (getcwd(cwd, sizeof cwd) == NULL ||
			    snprintf(t->cacert, sizeof t->cacert, "%s/%s", cwd, cacert) >=
			        (int)sizeof t->cacert)
				return cli_err("--cacert path too long");
		} else if (snprintf(t->cacert, sizeof t->cacert, "%s", cacert) >=
		           (int)sizeof t->cacert) {
			return cli_err("--cacert path too long");
		}
		if (access(t->cacert, R_OK) != 0)
			return cli_err("cannot read --cacert %s", cacert);
	}
	if (veil_backup_probe(t, url, err, sizeof err) != 0)
		return cli_err("%s", err);
	return 0;
}

static void fmt_time(char *out, size_t cap, uint64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	if (ms == 0 || gmtime_r(&s, &tm) == NULL ||
	    strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, cap, "never");
}

struct opts {
	const char *url, *user, *pwfile, *cacert, *id, *server, *server_key, *server_cacert;
	int force;
};

static int parse(const char *name, int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof *o);
	for (int i = 2; i < argc; i++) {
		int r;
		if (strcmp(argv[i], "--force") == 0) {
			o->force = 1;
			continue;
		}
		if ((r = cli_opt(argc, argv, &i, "url", &o->url)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "user", &o->user)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "password-file", &o->pwfile)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "cacert", &o->cacert)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "id", &o->id)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "server", &o->server)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "server-key", &o->server_key)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "server-cacert", &o->server_cacert)) != 0) {
			if (r < 0)
				return cli_usage_err(name, "an option lacks its value");
			continue;
		}
		return cli_usage_err(name, "unexpected argument");
	}
	return 0;
}

static int do_config(const struct opts *o)
{
	struct veil_profile p;
	struct veil_backup_cfg *c = sodium_malloc(sizeof *c);
	char *pw = sodium_malloc(VEIL_SAFE_PASSWORD_MAX + 2), home[VEIL_PROFILE_PATH_MAX];
	int rc = 1, prc;

	memset(&p, 0, sizeof p);
	if (c == NULL || pw == NULL) {
		rc = cli_err("out of memory");
		goto out;
	}
	memset(c, 0, sizeof *c);
	if (o->url == NULL) {
		rc = cli_usage_err("backup", "backup config needs --url URL");
		goto out;
	}
	if (veil_profile_home(home, sizeof home) != 0) {
		rc = cli_err("not initialised: set VEIL_HOME or HOME");
		goto out;
	}
	if ((prc = veil_profile_open(&p, home)) != 0) {
		rc = cli_err("cannot open the profile in %s: %s", home, veil_strerror(prc));
		goto out;
	}
	if ((rc = target_from(&c->t, o->url, o->user, o->pwfile, o->cacert)) != 0)
		goto out;
	if ((rc = backup_password(pw, VEIL_SAFE_PASSWORD_MAX + 2, 1)) != 0)
		goto out;
	if (strlen(pw) < PW_MIN) {
		rc = cli_err("the backup password must have at least %d characters", PW_MIN);
		goto out;
	}
	rc = 1;
	if ((prc = veil_safe_derive(c->backup_id, c->key, pw, strlen(pw), p.id)) != 0) {
		cli_err("cannot derive the backup key: %s", veil_strerror(prc));
		goto out;
	}
	if ((prc = veil_backup_cfg_save(&p, c)) != 0) {
		cli_err("cannot save the backup settings in %s: %s", home, veil_strerror(prc));
		goto out;
	}
	printf("backups go to %s (%s)\n", c->t.url,
	       c->t.kind == VEIL_BACKUP_WEBDAV ? "WebDAV" : "Safe server");
	rc = 0;
out:
	veil_profile_release(&p);
	sodium_free(c);
	sodium_free(pw);
	return rc;
}

static int do_now(const struct opts *o)
{
	struct veil_profile p;
	char home[VEIL_PROFILE_PATH_MAX], err[512];
	int prc;
	(void)o;
	memset(&p, 0, sizeof p);
	if (veil_profile_home(home, sizeof home) != 0)
		return cli_err("not initialised: set VEIL_HOME or HOME");
	if ((prc = veil_profile_open(&p, home)) != 0)
		return cli_err("cannot open the profile in %s: %s", home, veil_strerror(prc));
	prc = veil_backup_run(&p, 1, err, sizeof err);
	if (prc < 0) {
		veil_profile_release(&p);
		return cli_err("backup failed: %s", err);
	}
	struct veil_backup_cfg c;
	if (veil_backup_cfg_load(&p, &c) == 0)
		printf("backed up: %" PRIu64 " bytes\n", c.last_size);
	veil_backup_cfg_wipe(&c);
	veil_profile_release(&p);
	return 0;
}

static int do_status(const struct opts *o)
{
	struct veil_backup_cfg c;
	struct veil_profile p;
	char home[VEIL_PROFILE_PATH_MAX], last[64], next[64], tried[64];
	int prc;
	(void)o;
	memset(&p, 0, sizeof p);
	if (veil_profile_home(home, sizeof home) != 0)
		return cli_err("not initialised: set VEIL_HOME or HOME");
	if ((prc = veil_profile_open(&p, home)) != 0)
		return cli_err("cannot open the profile in %s: %s", home, veil_strerror(prc));
	prc = veil_backup_cfg_load(&p, &c);
	veil_profile_release(&p);
	if (prc != 0)
		return prc == VEIL_ENOTFOUND
		           ? cli_err("no backup configured ('veil backup config')")
		           : cli_err("cannot read the backup settings in %s: %s", home,
		                     veil_strerror(prc));
	fmt_time(last, sizeof last, c.last_ok_ms);
	fmt_time(tried, sizeof tried, c.last_try_ms);
	fmt_time(next, sizeof next, veil_backup_next_ms(&c));
	printf("target:       %s (%s)\n", c.t.url,
	       c.t.kind == VEIL_BACKUP_WEBDAV ? "WebDAV" : "Safe server");
	printf("last success: %s\n", last);
	printf("size:         %" PRIu64 " bytes\n", c.last_size);
	printf("next:         %s\n",
	       c.last_ok_ms == 0 ? "at the next run of 'veil daemon' or 'veil backup now'" : next);
	if (c.last_error[0] != 0)
		printf("last error:   %s (%s)\n", c.last_error, tried);
	veil_backup_cfg_wipe(&c);
	return 0;
}

static int do_restore(const struct opts *o)
{
	struct veil_backup_cfg *c = sodium_malloc(sizeof *c);
	char *pw = sodium_malloc(VEIL_SAFE_PASSWORD_MAX + 2), home[VEIL_PROFILE_PATH_MAX];
	char err[512];
	uint8_t id[VEIL_ID_LEN], server_pk[VEIL_KEY_LEN];
	struct veil_buf blob, json;
	struct veil_backup *b = NULL;
	struct veil_msgr m;
	int rc = 1, prc, opened = 0;

	veil_buf_init(&blob, VEIL_SAFE_BLOB_MAX);
	veil_buf_init_secret(&json, VEIL_SAFE_JSON_MAX);
	if (c == NULL || pw == NULL) {
		rc = cli_err("out of memory");
		goto out;
	}
	memset(c, 0, sizeof *c);
	if (o->url == NULL || o->id == NULL || o->server == NULL) {
		rc = cli_usage_err("backup",
		                   "backup restore needs --url URL, --id ID and --server URL");
		goto out;
	}
	if ((rc = cli_parse_id(id, o->id)) != 0)
		goto out;
	if (o->server_key != NULL &&
	    (rc = cli_parse_key(server_pk, o->server_key, "--server-key")) != 0)
		goto out;
	if (veil_profile_home(home, sizeof home) != 0) {
		rc = cli_err("not initialised: set VEIL_HOME or HOME");
		goto out;
	}
	if ((rc = target_from(&c->t, o->url, o->user, o->pwfile, o->cacert)) != 0)
		goto out;
	if ((rc = backup_password(pw, VEIL_SAFE_PASSWORD_MAX + 2, 0)) != 0)
		goto out;
	rc = 1;
	if ((prc = veil_safe_derive(c->backup_id, c->key, pw, strlen(pw), id)) != 0) {
		cli_err("cannot derive the backup key: %s", veil_strerror(prc));
		goto out;
	}
	if (veil_backup_download(&c->t, c->backup_id, &blob, err, sizeof err) != 0) {
		cli_err("%s", err);
		goto out;
	}
	prc = veil_safe_open(&json, c->key, blob.p, blob.len);
	if (prc == VEIL_ECRYPTO || prc == VEIL_ETRUNC) {
		cli_err("cannot decrypt the backup: wrong password, or the backup is damaged");
		goto out;
	}
	if (prc != 0 || (prc = veil_backup_parse(json.p, json.len, &b)) != 0) {
		cli_err("the backup is damaged: %s", veil_strerror(prc));
		goto out;
	}
	struct veil_msgr_init_opts io = {.server_url = o->server,
	                                 .server_key = o->server_key ? server_pk : NULL,
	                                 .ca_file = o->server_cacert};
	if (veil_msgr_restore(&m, home, &io, id, b) != 0) {
		cli_err("%s", m.errtext);
		goto out;
	}
	opened = 1;
	/* Later backups go to the same place under the same password. */
	if ((prc = veil_backup_cfg_save(&m.prof, c)) != 0)
		fprintf(stderr, "veil: warning: cannot save the backup settings in %s: %s\n", home,
		        veil_strerror(prc));
	printf("restored %s: %zu contacts, %zu groups\n", o->id, b->n_contacts, b->n_groups);
	rc = 0;
out:
	if (opened)
		veil_msgr_close(&m);
	veil_backup_free(b);
	veil_buf_release(&blob);
	veil_buf_release(&json);
	sodium_free(c);
	sodium_free(pw);
	return rc;
}

int cmd_backup(int argc, char **argv)
{
	struct opts o;
	int rc;
	if (argc < 2)
		return cli_usage_err("backup", "which backup command?");
	if ((rc = parse("backup", argc, argv, &o)) != 0)
		return rc;
	if (strcmp(argv[1], "config") == 0)
		return do_config(&o);
	if (strcmp(argv[1], "now") == 0)
		return do_now(&o);
	if (strcmp(argv[1], "status") == 0)
		return do_status(&o);
	if (strcmp(argv[1], "restore") == 0)
		return do_restore(&o);
	return cli_usage_err("backup", "unknown backup command");
}
