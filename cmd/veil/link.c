/* veil link: link an e-mail address or phone number to the own identity. */
#include <stdio.h>
#include <string.h>

#include "veil/contacts.h"
#include "veil/dir.h"
#include "cli.h"

static int link_start(struct veil_msgr *m, int kind, const char *arg, const char *cc)
{
	char norm[VEIL_CONTACT_MAX + 1], vid[VEIL_DIR_VID_LEN + 1];
	size_t len = 0;
	int already = 0;
	if (arg[0] != 0 && veil_contact_normalize(kind, arg, strlen(arg), cc, norm, &len) != 0)
		return cli_err(
		    kind == VEIL_CONTACT_EMAIL
		        ? "invalid e-mail address '%.80s'"
		        : "invalid phone number '%.40s' (use +<country code> or --country)",
		    arg);
	if (arg[0] == 0)
		norm[0] = 0;
	int rc = veil_dir_link(m->prof.dir_url, kind, m->prof.id, m->prof.sk, norm, vid, &already);
	if (rc != 0)
		return cli_err("%s", veil_dir_errmsg());
	if (norm[0] == 0) {
		printf("unlinked\n");
		return 0;
	}
	if (already) {
		printf("already linked\n");
		return 0;
	}
	if (veil_contacts_pending_set(&m->prof, kind, vid) != 0)
		return cli_err("cannot save the pending link in the profile");
	printf("code sent to %s; run 'veil link verify CODE'\n",
	       kind == VEIL_CONTACT_EMAIL ? "the address" : "the number");
	return 0;
}

int cmd_link(int argc, char **argv)
{
	const char *cc = NULL, *what = NULL, *arg = NULL;
	for (int i = 1; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "country", &cc);
		if (r < 0)
			return cli_usage_err("link", "--country needs a value");
		if (r > 0)
			continue;
		if (what == NULL)
			what = argv[i];
		else if (arg == NULL)
			arg = argv[i];
		else
			return cli_usage_err("link", "unexpected argument");
	}
	if (what == NULL || arg == NULL)
		return cli_usage_err("link",
		                     "link needs 'email ADDR', 'phone NUMBER' or 'verify CODE'");
	int kind;
	if (strcmp(what, "email") == 0)
		kind = VEIL_CONTACT_EMAIL;
	else if (strcmp(what, "phone") == 0)
		kind = VEIL_CONTACT_PHONE;
	else if (strcmp(what, "verify") == 0)
		kind = -1;
	else
		return cli_usage_err("link", "link needs 'email', 'phone' or 'verify'");
	struct veil_msgr m;
	if (cli_open(&m) != 0)
		return 1;
	int rc;
	if (kind >= 0) {
		rc = link_start(&m, kind, arg, cc);
	} else {
		char vid[33];
		int k = 0;
		if (veil_contacts_pending_get(&m.prof, &k, vid) != 0) {
			rc = cli_err(
			    "no link is waiting for a code; run 'veil link email|phone' first");
		} else if (veil_dir_link_verify(m.prof.dir_url, k, vid, arg) != 0) {
			rc = cli_err("%s", veil_dir_errmsg());
		} else {
			rc = veil_contacts_pending_clear(&m.prof, k) == 0 ? 0 : 1;
			printf("%s linked\n",
			       k == VEIL_CONTACT_EMAIL ? "e-mail address" : "phone number");
		}
	}
	veil_msgr_close(&m);
	return rc;
}
