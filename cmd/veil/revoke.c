/* veil revoke: revoke the own identity for good, after confirmation. */
#include <stdio.h>
#include <string.h>

#include "veil/dir.h"
#include "cli.h"

int cmd_revoke(int argc, char **argv)
{
	const char *password = NULL;
	int yes = 0;
	for (int i = 1; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "set-password", &password);
		if (r < 0)
			return cli_usage_err("revoke", "--set-password needs a value");
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--yes") == 0)
			yes = 1;
		else
			return cli_usage_err("revoke", "unexpected argument");
	}
	struct veil_msgr m;
	if (cli_open(&m) != 0)
		return 1;
	char id[VEIL_ID_LEN + 1];
	memcpy(id, m.prof.id, VEIL_ID_LEN);
	id[VEIL_ID_LEN] = 0;
	int rc = 0;
	if (password != NULL) {
		if (veil_dir_set_revocation_key(m.prof.dir_url, m.prof.id, m.prof.sk, password) !=
		    0)
			rc = cli_err("%s", veil_dir_errmsg());
		else
			printf("revocation password set for %s\n", id);
		goto out;
	}
	if (!yes) {
		char line[64];
		fprintf(
		    stderr,
		    "This revokes %s for good: nobody can write to it or log in with it again.\n"
		    "Type the ID to confirm: ",
		    id);
		if (fgets(line, sizeof line, stdin) == NULL ||
		    strncmp(line, id, VEIL_ID_LEN) != 0 ||
		    (line[VEIL_ID_LEN] != '\n' && line[VEIL_ID_LEN] != 0)) {
			rc = cli_err("not confirmed; nothing revoked");
			goto out;
		}
	}
	if (veil_dir_revoke(m.prof.dir_url, m.prof.id, m.prof.sk) != 0)
		rc = cli_err("%s", veil_dir_errmsg());
	else
		printf("%s revoked\n", id);
out:
	veil_msgr_close(&m);
	return rc;
}
