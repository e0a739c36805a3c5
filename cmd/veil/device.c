/* veil device: the devices of this identity (multi-device through the mediator). */
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char *platform_name(int p)
{
	switch (p) {
	case VEIL_MD_PLATFORM_ANDROID: return "android";
	case VEIL_MD_PLATFORM_IOS: return "ios";
	case VEIL_MD_PLATFORM_DESKTOP: return "desktop";
	case VEIL_MD_PLATFORM_WEB: return "web";
	default: return "unknown";
	}
}

struct list_ctx {
	int json;
};

static int print_device(const struct veil_device *d, void *ctx)
{
	struct list_ctx *l = ctx;
	char id[17], when[32];
	snprintf(id, sizeof id, "%016" PRIx64, d->device_id);
	cli_date(when, d->since_ms);
	if (l->json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:b}", "id", id, "label",
		                      d->label, "platform", platform_name(d->platform), "details",
		                      d->platform_details, "connected", d->connected, "this_device",
		                      d->self, d->connected ? "connected_since" : "last_seen", when,
		                      "unreadable", d->unreadable);
		char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (s == NULL)
			return cli_err("out of memory");
		printf("%s\n", s);
		free(s);
		return 0;
	}
	printf("%s%s  %-20s %-8s %s %s\n", id, d->self ? " *" : "  ",
	       d->unreadable ? "(unreadable)"
	       : d->label[0] ? d->label
	                     : "(no label)",
	       platform_name(d->platform), d->connected ? "connected since" : "last seen", when);
	return 0;
}

void cli_sync_contact(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN], int create)
{
	if (m->prof.md && veil_msgr_md_sync_contact(m, id, create) != 0)
		fprintf(stderr, "%s: warning: your other devices were not told: %s\n", cli_prog,
		        m->errtext);
}

int cli_confirm_rph(const char *rph, void *ctx)
{
	int yes = *(const int *)ctx;
	char line[16];
	fprintf(stderr, "Both devices must show the same code: %s\n", rph);
	if (yes)
		return 1;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "%s: cannot ask on a terminal; compare the codes and use --yes\n",
		        cli_prog);
		return 0;
	}
	fprintf(stderr, "Does the other device show %s too? [y/N] ", rph);
	if (fgets(line, sizeof line, stdin) == NULL)
		return 0;
	return line[0] == 'y' || line[0] == 'Y';
}

static int device_link(struct veil_msgr *m, int argc, char **argv)
{
	const char *label = NULL, *tmo = NULL;
	int yes = 0, rc;
	for (int i = 2; i < argc; i++) {
		int o;
		if (strcmp(argv[i], "--yes") == 0) {
			yes = 1;
			continue;
		}
		if ((o = cli_opt(argc, argv, &i, "label", &label)) != 0 ||
		    (o = cli_opt(argc, argv, &i, "timeout", &tmo)) != 0) {
			if (o < 0)
				return cli_usage_err("device", "an option lacks its value");
			continue;
		}
		return cli_usage_err("device", "unexpected argument");
	}
	long secs = tmo != NULL ? strtol(tmo, NULL, 10) : 600;
	if (secs < 1 || secs > 86400)
		return cli_usage_err("device", "--timeout takes 1 to 86400 seconds");
	struct veil_link *l = calloc(1, sizeof *l);
	if (l == NULL)
		return cli_err("out of memory");
	if (veil_msgr_link_offer(m, l, label) != 0) {
		free(l);
		return cli_err("%s", m->errtext);
	}
	if (isatty(STDOUT_FILENO) && cli_qr_print(stdout, l->link) != 0)
		fprintf(stderr, "%s: cannot draw the QR code\n", cli_prog);
	printf("%s\n", l->link);
	fflush(stdout);
	fprintf(stderr, "On the new device: veil init --join LINK (waiting up to %ld s)\n", secs);
	rc = veil_msgr_link_run(m, l, cli_confirm_rph, &yes, (int)secs * 1000);
	veil_link_release(l);
	free(l);
	if (rc != 0)
		return cli_err("%s", m->errtext);
	printf("linked: the new device is part of this identity\n");
	return 0;
}

int cli_init_join(const char *link, const char *server, const char *cacert, const char *label,
                  int yes)
{
	struct veil_msgr m;
	char home[VEIL_PROFILE_PATH_MAX];
	if (veil_profile_home(home, sizeof home) != 0)
		return cli_err("set VEIL_HOME or HOME");
	memset(&m, 0, sizeof m);
	if (veil_msgr_join_link(&m, home, link, server, cacert, label, cli_confirm_rph, &yes,
	                        600000) != 0)
		return cli_err("%s", m.errtext);
	printf("%.8s\n", (const char *)m.prof.id);
	veil_msgr_close(&m);
	return 0;
}

static int parse_device_id(uint64_t *out, const char *s)
{
	char *end = NULL;
	if (strlen(s) != 16)
		return -1;
	*out = strtoull(s, &end, 16);
	return end != NULL && *end == 0 ? 0 : -1;
}

int cmd_device(int argc, char **argv)
{
	struct veil_msgr m;
	int rc = 0;
	if (argc < 2)
		return cli_usage_err("device", "missing subcommand");
	const char *sub = argv[1];
	if (cli_open(&m) != 0)
		return 1;
	if (strcmp(sub, "link") == 0) {
		rc = device_link(&m, argc, argv);
	} else if (strcmp(sub, "list") == 0) {
		struct list_ctx l = {0};
		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--json") == 0)
				l.json = 1;
			else {
				rc = cli_usage_err("device", "unexpected argument");
				goto out;
			}
		}
		if (!m.prof.md) {
			rc = cli_err(
			    "this profile has one device, this one ('veil device link' adds "
			    "another)");
			goto out;
		}
		if (!l.json)
			printf("%-16s    %-20s %-8s %s\n", "DEVICE", "LABEL", "PLATFORM",
			       "STATE (* this device)");
		if (veil_msgr_devices(&m, print_device, &l) != 0)
			rc = cli_err("%s", m.errtext);
	} else if (strcmp(sub, "rename") == 0) {
		if (argc != 3) {
			rc = cli_usage_err("device", "rename takes one LABEL");
			goto out;
		}
		if (veil_msgr_device_rename(&m, argv[2]) != 0)
			rc = cli_err("%s", m.errtext);
	} else if (strcmp(sub, "drop") == 0) {
		uint64_t id;
		if (argc != 3 || parse_device_id(&id, argv[2]) != 0) {
			rc = cli_usage_err("device", "drop takes a device ID (16 hex digits, as "
			                             "'veil device list' prints it)");
			goto out;
		}
		if (veil_msgr_device_drop(&m, id) != 0)
			rc = cli_err("%s", m.errtext);
		else
			printf("dropped %s\n", argv[2]);
	} else if (strcmp(sub, "enable") == 0) {
		const char *label = NULL;
		for (int i = 2; i < argc; i++) {
			int o = cli_opt(argc, argv, &i, "label", &label);
			if (o != 1) {
				rc = cli_usage_err("device", "unexpected argument");
				goto out;
			}
		}
		if (m.prof.md)
			printf("already a device group\n");
		else if (veil_msgr_md_enable(&m, label) != 0)
			rc = cli_err("%s", m.errtext);
		else
			printf("this profile is now the first device of a device group\n");
	} else {
		rc = cli_usage_err("device", "unknown subcommand");
	}
out:
	veil_msgr_close(&m);
	return rc;
}
