/*
 * veil revoke: revoke the own identity for good, after confirmation; set a
 * revocation password; or revoke any ID with its revocation password,
 * without its profile (identity/ws/revoke).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/dir.h"
#include "cli.h"

/* Asks for the ID to be typed; 0 if it was. */
static int confirm(const char *id)
{
	char line[64];
	fprintf(stderr,
	        "This revokes %s for good: nobody can write to it or log in with it again.\n"
	        "Type the ID to confirm: ",
	        id);
	if (fgets(line, sizeof line, stdin) == NULL || strncmp(line, id, VEIL_ID_LEN) != 0 ||
	    (line[VEIL_ID_LEN] != '\n' && line[VEIL_ID_LEN] != 0))
		return -1;
	return 0;
}

/*
 * revoke ID --password PASSWORD [--server URL]: the directory comes from
 * --server's provisioning document, else from the profile if there is one.
 */
static int revoke_with_password(const char *idarg, const char *password, const char *server,
                                const char *cacert, int yes)
{
	uint8_t id[VEIL_ID_LEN];
	char ids[VEIL_ID_LEN + 1], dir_url[VEIL_DIR_MAX_URL], pw[1024];
	int rc = 0;
	if (idarg == NULL)
		return cli_usage_err("revoke", "revoke --password needs the ID to revoke");
	if (cli_parse_id(id, idarg) != 0)
		return 2;
	veil_id_str(ids, id);
	if (strcmp(password, "-") == 0) {
		/* From standard input, so that it stays out of the process list. */
		if (fgets(pw, sizeof pw, stdin) == NULL)
			return cli_err("cannot read the revocation password from standard input");
		pw[strcspn(pw, "\r\n")] = 0;
		password = pw;
	}
	if (password[0] == 0) {
		rc = cli_usage_err("revoke", "the revocation password is empty");
		goto out;
	}
	if (server != NULL) {
		struct veil_dir_provisioning prov;
		if (cacert != NULL) {
			uint8_t *pem = NULL;
			size_t len = 0;
			int crc = veil_profile_ca_read(cacert, &pem, &len);
			free(pem);
			if (crc != 0 || veil_dir_set_ca_file(cacert) != 0) {
				rc = cli_err("cannot use the CA file %s: %s", cacert,
				             crc == VEIL_EPROTO ? "it holds no PEM certificate"
				                                : veil_strerror(crc));
				goto out;
			}
		}
		if (veil_dir_fetch_provisioning(server, NULL, NULL, &prov) != 0) {
			rc = cli_err("cannot read the provisioning document of %s: %s", server,
			             veil_dir_errmsg());
			goto out;
		}
		snprintf(dir_url, sizeof dir_url, "%s", prov.directory_url);
	} else {
		struct veil_msgr m;
		char home[VEIL_PROFILE_PATH_MAX];
		if (veil_profile_home(home, sizeof home) != 0 || veil_msgr_open(&m, home) != 0) {
			rc = cli_usage_err("revoke",
			                   "without a profile, give the server: --server URL");
			goto out;
		}
		snprintf(dir_url, sizeof dir_url, "%s", m.prof.dir_url);
		veil_msgr_close(&m);
	}
	if (!yes && confirm(ids) != 0) {
		rc = cli_err("not confirmed; nothing revoked");
		goto out;
	}
	if (veil_dir_revoke_with_password(dir_url, id, password) != 0)
		rc = cli_err("%s not revoked: %s", ids, veil_dir_errmsg());
	else
		printf("%s revoked\n", ids);
out:
	sodium_memzero(pw, sizeof pw);
	return rc;
}

int cmd_revoke(int argc, char **argv)
{
	const char *password = NULL, *revoke_pw = NULL, *server = NULL, *idarg = NULL;
	const char *cacert = NULL;
	int yes = 0;
	for (int i = 1; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "set-password", &password);
		if (r == 0)
			r = cli_opt(argc, argv, &i, "password", &revoke_pw);
		if (r == 0)
			r = cli_opt(argc, argv, &i, "server", &server);
		if (r == 0)
			r = cli_opt(argc, argv, &i, "cacert", &cacert);
		if (r < 0)
			return cli_usage_err(
			    "revoke", "--set-password, --password, --server and --cacert need "
			              "a value");
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--yes") == 0)
			yes = 1;
		else if (idarg == NULL && argv[i][0] != '-')
			idarg = argv[i];
		else
			return cli_usage_err("revoke", "unexpected argument");
	}
	if (revoke_pw != NULL)
		return revoke_with_password(idarg, revoke_pw, server, cacert, yes);
	if (idarg != NULL || server != NULL || cacert != NULL)
		return cli_usage_err("revoke", "an ID, --server and --cacert go with --password");
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
	if (!yes && confirm(id) != 0) {
		rc = cli_err("not confirmed; nothing revoked");
		goto out;
	}
	if (veil_dir_revoke(m.prof.dir_url, m.prof.id, m.prof.sk) != 0)
		rc = cli_err("%s", veil_dir_errmsg());
	else
		printf("%s revoked\n", id);
out:
	veil_msgr_close(&m);
	return rc;
}
