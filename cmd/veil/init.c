/* veil init: create an identity and a profile. */
#include <string.h>

#include "cli.h"

int cmd_init(int argc, char **argv)
{
	const char *server = NULL, *key = NULL, *nick = NULL, *cacert = NULL, *invite = NULL;
	const char *join = NULL, *label = NULL, *kdf = NULL;
	int yes = 0, no_pass = 0, level;
	uint8_t server_pk[VEIL_KEY_LEN];
	char home[VEIL_PROFILE_PATH_MAX], id[VEIL_ID_LEN + 1];
	struct veil_msgr m;
	for (int i = 1; i < argc; i++) {
		int r;
		if (strcmp(argv[i], "--yes") == 0) {
			yes = 1;
			continue;
		}
		if (strcmp(argv[i], "--no-passphrase") == 0) {
			no_pass = 1;
			continue;
		}
		if ((r = cli_opt(argc, argv, &i, "join", &join)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "label", &label)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "server", &server)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "server-key", &key)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "nickname", &nick)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "cacert", &cacert)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "invite", &invite)) != 0 ||
		    (r = cli_opt(argc, argv, &i, "kdf", &kdf)) != 0) {
			if (r < 0)
				return cli_usage_err("init", "an option lacks its value");
			continue;
		}
		return cli_usage_err("init", "unexpected argument");
	}
	if (kdf != NULL && no_pass)
		return cli_usage_err("init", "--kdf and --no-passphrase exclude each other");
	if (cli_new_level("init", kdf, no_pass, &level) != 0)
		return 2;
	veil_vault_set_new_level(level);
	/* Before the server is asked for anything: no identity without its profile. */
	if (level != VEIL_KDF_NONE && cli_pass_prefetch_new() != 0)
		return 1;
	if (join != NULL)
		return cli_init_join(join, server, cacert, label, yes);
	if (server == NULL)
		return cli_usage_err("init", "--server URL is required");
	if (key != NULL && cli_parse_key(server_pk, key, "--server-key") != 0)
		return 2;
	if (veil_profile_home(home, sizeof home) != 0)
		return cli_err("cannot find the profile directory: set VEIL_HOME or HOME");
	struct veil_msgr_init_opts o = {.server_url = server,
	                                .server_key = key ? server_pk : NULL,
	                                .nickname = nick,
	                                .ca_file = cacert,
	                                .invite = invite};
	if (veil_msgr_init(&m, home, &o) != 0)
		return cli_err("%s", m.errtext);
	memcpy(id, m.prof.id, VEIL_ID_LEN);
	id[VEIL_ID_LEN] = 0;
	printf("%s\n", id);
	veil_msgr_close(&m);
	return 0;
}
