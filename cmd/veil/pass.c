/*
 * Passphrases: where the CLI gets them (a file named by the environment, or
 * the terminal without echo), `veil passphrase set|change|remove`, and
 * `veil export|import` of the message history.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "veil/vault.h"

/* Reads one line from the terminal without echo; VEIL_ELOCKED if there is no terminal. */
static int tty_read(const char *prompt, uint8_t *buf, size_t cap, size_t *len)
{
	struct termios old, quiet;
	size_t n = 0;
	int rc = 0, restore = 0;
	*len = 0;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return VEIL_ELOCKED;
	if (tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	if (write(fd, prompt, strlen(prompt)) < 0)
		rc = VEIL_EIO;
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = rc ? rc : VEIL_EIO;
			break;
		}
		if (c == '\n' || c == '\r')
			break;
		if (n >= cap) {
			rc = VEIL_ELIMIT; /* read on to the end of the line, keep nothing */
			continue;
		}
		buf[n++] = (uint8_t)c;
	}
	if (restore)
		(void)tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0 && rc == 0)
		rc = VEIL_EIO;
	close(fd);
	if (rc == 0 && n == 0)
		rc = VEIL_EINVAL;
	if (rc != 0)
		sodium_memzero(buf, cap);
	else
		*len = n;
	return rc;
}

int cli_pass_read(const char *env, const char *prompt, int confirm, uint8_t *buf, size_t cap,
                  size_t *len)
{
	const char *path = env != NULL ? getenv(env) : NULL;
	if (path == NULL || path[0] == 0)
		path = getenv("VEIL_PASSPHRASE_FILE");
	if (path != NULL && path[0] != 0)
		return veil_vault_passphrase_file(path, buf, cap, len);
	int rc = tty_read(prompt, buf, cap, len);
	if (rc != 0 || !confirm)
		return rc;
	uint8_t *again = sodium_malloc(cap);
	size_t alen = 0;
	if (again == NULL)
		return VEIL_ENOMEM;
	if ((rc = tty_read("Repeat it: ", again, cap, &alen)) == 0 &&
	    (alen != *len || sodium_memcmp(again, buf, alen) != 0)) {
		cli_err("the two passphrases differ");
		rc = VEIL_EAUTH;
	}
	sodium_free(again);
	if (rc != 0) {
		sodium_memzero(buf, cap);
		*len = 0;
	}
	return rc;
}

/* A new passphrase asked before anything else happens (init asks before registering). */
static uint8_t *early_pass;
static size_t early_len;

int cli_pass_prefetch_new(void)
{
	if (early_pass == NULL && (early_pass = sodium_malloc(VEIL_PASSPHRASE_MAX)) == NULL)
		return cli_err("out of memory");
	int rc = cli_pass_read("VEIL_NEW_PASSPHRASE_FILE", "New passphrase for the profile: ", 1,
	                       early_pass, VEIL_PASSPHRASE_MAX, &early_len);
	if (rc == VEIL_ELOCKED)
		return cli_err("no terminal to ask for a passphrase: name a file holding it in "
		               "VEIL_PASSPHRASE_FILE, or use --no-passphrase");
	if (rc == VEIL_EINVAL)
		return cli_err("the passphrase is empty");
	if (rc == VEIL_EIO)
		return cli_err("cannot read the passphrase (VEIL_PASSPHRASE_FILE?)");
	if (rc != 0)
		return rc == VEIL_EAUTH ? 1 : cli_err("no passphrase: %s", veil_strerror(rc));
	return 0;
}

static int pass_source(uint8_t *buf, size_t cap, size_t *len, int why, void *ctx)
{
	(void)ctx;
	if (why == VEIL_PASS_NEW && early_pass != NULL && early_len > 0 && early_len <= cap) {
		memcpy(buf, early_pass, early_len);
		*len = early_len;
		return 0;
	}
	if (why == VEIL_PASS_NEW)
		return cli_pass_read("VEIL_NEW_PASSPHRASE_FILE",
		                     "New passphrase for the profile: ", 1, buf, cap, len);
	return cli_pass_read(NULL, "Passphrase of the profile: ", 0, buf, cap, len);
}

void cli_pass_setup(void)
{
	veil_vault_set_passphrase_fn(pass_source, NULL);
}

int cli_kdf_option(const char *cmd, const char *v, int *level)
{
	int l = veil_kdf_level_parse(v);
	if (l <= VEIL_KDF_NONE)
		return cli_usage_err(cmd, "--kdf takes min, interactive, moderate or sensitive");
	*level = l;
	return 0;
}

int cli_new_level(const char *cmd, const char *kdf, int no_pass, int *level)
{
	const char *env = getenv("VEIL_KDF");
	*level = VEIL_KDF_MODERATE;
	if (kdf == NULL && env != NULL && env[0] != 0)
		kdf = env;
	if (kdf != NULL && cli_kdf_option(cmd, kdf, level) != 0)
		return 2;
	if (no_pass)
		*level = VEIL_KDF_NONE;
	return 0;
}

/* --- veil passphrase --- */

static void test_kill(int step, uint64_t n, void *ctx)
{
	(void)ctx;
	/*
	 * VEIL_TEST_KILL_MIGRATION=STEP:N (tests only) kills the process as a
	 * crash would, at step 0 after N messages or at step 1 after the rename.
	 */
	const char *v = getenv("VEIL_TEST_KILL_MIGRATION");
	char want[32];
	if (v == NULL)
		return;
	snprintf(want, sizeof want, "%d:%llu", step, (unsigned long long)n);
	if (strcmp(v, want) == 0)
		raise(SIGKILL);
}

static int open_home(char *home, size_t cap)
{
	if (veil_profile_home(home, cap) != 0)
		return cli_err("cannot find the profile directory: set VEIL_HOME or HOME");
	return 0;
}

static int migrate(const char *home, int level, const uint8_t *pass, size_t len)
{
	int rc = veil_profile_migrate(home, pass, len, level, test_kill, NULL);
	if (rc == VEIL_EAGAIN)
		return cli_err(
		    "the profile in %s is in use (stop its daemon and other veil commands "
		    "first)",
		    home);
	if (rc != 0)
		return cli_err("cannot convert the profile in %s: %s (it is unchanged)", home,
		               veil_strerror(rc));
	return 0;
}

int cmd_passphrase(int argc, char **argv)
{
	const char *kdf = NULL;
	char home[VEIL_PROFILE_PATH_MAX];
	struct veil_msgr m;
	uint8_t *pass = NULL;
	size_t len = 0;
	int level = -1, ret = 1;
	if (argc < 2)
		return cli_usage_err("passphrase", "set, change or remove?");
	const char *sub = argv[1];
	int set = strcmp(sub, "set") == 0, change = strcmp(sub, "change") == 0;
	int remove = strcmp(sub, "remove") == 0;
	if (!set && !change && !remove)
		return cli_usage_err("passphrase", "set, change or remove?");
	for (int i = 2; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "kdf", &kdf);
		if (r < 0)
			return cli_usage_err("passphrase", "an option lacks its value");
		if (r == 0 || remove)
			return cli_usage_err("passphrase", "unexpected argument");
	}
	if (kdf != NULL && cli_kdf_option("passphrase", kdf, &level) != 0)
		return 2;
	if (open_home(home, sizeof home) != 0)
		return 1;
	if ((pass = sodium_malloc(VEIL_PASSPHRASE_MAX)) == NULL)
		return cli_err("out of memory");
	if (veil_profile_is_plaintext(home)) {
		if (change) {
			ret =
			    cli_err("the profile in %s has no passphrase yet: use 'veil passphrase "
			            "set'",
			            home);
			goto out;
		}
		if (set &&
		    cli_pass_read("VEIL_NEW_PASSPHRASE_FILE", "New passphrase for the profile: ", 1,
		                  pass, VEIL_PASSPHRASE_MAX, &len) != 0) {
			ret = cli_err(
			    "no new passphrase given (type it on a terminal, or name a file "
			    "with it in VEIL_NEW_PASSPHRASE_FILE)");
			goto out;
		}
		if (set && level < 0 && cli_new_level("passphrase", NULL, 0, &level) != 0) {
			ret = 2;
			goto out;
		}
		ret = migrate(home, set ? level : VEIL_KDF_NONE, pass, len);
		if (ret == 0)
			printf("%s\n",
			       set ? "converted: the profile is encrypted under the passphrase"
			           : "converted: the profile is encrypted, without passphrase");
		goto out;
	}
	if (cli_open(&m) != 0)
		goto out;
	int cur = veil_profile_kdf_level(&m.prof);
	if (set && cur != VEIL_KDF_NONE) {
		ret = cli_err("the profile already has a passphrase: use 'veil passphrase change'");
		goto close;
	}
	if ((change || remove) && cur == VEIL_KDF_NONE) {
		ret = cli_err("the profile has no passphrase%s",
		              change ? ": use 'veil passphrase set'" : "");
		goto close;
	}
	if (remove) {
		level = VEIL_KDF_NONE;
	} else {
		if (level < 0) {
			if (cur != VEIL_KDF_NONE)
				level = cur;
			else if (cli_new_level("passphrase", NULL, 0, &level) != 0) {
				ret = 2;
				goto close;
			}
		}
		if (cli_pass_read("VEIL_NEW_PASSPHRASE_FILE", "New passphrase for the profile: ", 1,
		                  pass, VEIL_PASSPHRASE_MAX, &len) != 0) {
			ret = cli_err(
			    "no new passphrase given (type it on a terminal, or name a file "
			    "with it in VEIL_NEW_PASSPHRASE_FILE)");
			goto close;
		}
	}
	int rc = veil_profile_passphrase_set(&m.prof, pass, len, level);
	if (rc != 0) {
		ret = cli_err("cannot change the passphrase: %s (it is unchanged)",
		              veil_strerror(rc));
		goto close;
	}
	printf("%s\n", remove ? "passphrase removed" : "passphrase set");
	ret = 0;
close:
	veil_msgr_close(&m);
out:
	sodium_free(pass);
	return ret;
}

/* --- veil export / import --- */

int cmd_export(int argc, char **argv)
{
	const char *kdf = NULL, *file = NULL;
	struct veil_msgr m;
	uint8_t *pass = NULL;
	size_t len = 0;
	uint64_t count = 0;
	int level = VEIL_KDF_MODERATE, ret = 1;
	for (int i = 1; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "kdf", &kdf);
		if (r < 0)
			return cli_usage_err("export", "an option lacks its value");
		if (r > 0)
			continue;
		if (file != NULL || argv[i][0] == '-')
			return cli_usage_err("export", "unexpected argument");
		file = argv[i];
	}
	if (file == NULL)
		return cli_usage_err("export", "FILE is required");
	if (kdf == NULL)
		kdf = getenv("VEIL_KDF");
	if (kdf != NULL && kdf[0] != 0 && cli_kdf_option("export", kdf, &level) != 0)
		return 2;
	if (cli_open(&m) != 0)
		return 1;
	if ((pass = sodium_malloc(VEIL_PASSPHRASE_MAX)) == NULL) {
		veil_msgr_close(&m);
		return cli_err("out of memory");
	}
	if (cli_pass_read("VEIL_EXPORT_PASSPHRASE_FILE", "Passphrase for the export: ", 1, pass,
	                  VEIL_PASSPHRASE_MAX, &len) != 0) {
		ret = cli_err("no passphrase for the export (type it on a terminal, or name a file "
		              "with it in VEIL_EXPORT_PASSPHRASE_FILE)");
		goto out;
	}
	/* Never over an existing file: an export is often made to keep beside an older one. */
	int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = cli_err("cannot create %s: %s", file, strerror(errno));
		goto out;
	}
	int rc = veil_profile_export(&m.prof, fd, pass, len, level, &count);
	if (close(fd) != 0 && rc == 0)
		rc = VEIL_EIO;
	if (rc != 0) {
		(void)unlink(file);
		ret = cli_err("cannot export to %s: %s", file, veil_strerror(rc));
		goto out;
	}
	printf("%llu messages exported to %s\n", (unsigned long long)count, file);
	ret = 0;
out:
	sodium_free(pass);
	veil_msgr_close(&m);
	return ret;
}

int cmd_import(int argc, char **argv)
{
	struct veil_msgr m;
	uint8_t *pass = NULL;
	size_t len = 0;
	uint64_t added = 0, skipped = 0;
	int ret = 1;
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_err("import",
		                     argc < 2 ? "FILE is required" : "unexpected argument");
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_err("cannot open %s: %s", argv[1], strerror(errno));
	if (cli_open(&m) != 0) {
		close(fd);
		return 1;
	}
	if ((pass = sodium_malloc(VEIL_PASSPHRASE_MAX)) == NULL) {
		ret = cli_err("out of memory");
		goto out;
	}
	if (cli_pass_read("VEIL_EXPORT_PASSPHRASE_FILE", "Passphrase of the export: ", 0, pass,
	                  VEIL_PASSPHRASE_MAX, &len) != 0) {
		ret = cli_err("no passphrase for the export (type it on a terminal, or name a file "
		              "with it in VEIL_EXPORT_PASSPHRASE_FILE)");
		goto out;
	}
	int rc = veil_profile_import(&m.prof, fd, pass, len, &added, &skipped);
	switch (rc) {
	case 0:
		printf("%llu messages imported, %llu already there\n", (unsigned long long)added,
		       (unsigned long long)skipped);
		ret = 0;
		break;
	case VEIL_EPASS:
		ret = cli_err("wrong passphrase for %s (nothing imported)", argv[1]);
		break;
	case VEIL_ETRUNC: ret = cli_err("%s is truncated (nothing imported)", argv[1]); break;
	case VEIL_ECRYPTO:
	case VEIL_EPROTO:
		ret =
		    cli_err("%s is not a whole, untouched veil export (nothing imported)", argv[1]);
		break;
	default:
		ret =
		    cli_err("cannot import %s: %s (nothing imported)", argv[1], veil_strerror(rc));
	}
out:
	if (pass != NULL)
		sodium_free(pass);
	close(fd);
	veil_msgr_close(&m);
	return ret;
}
