/*
 * veil read, veil nickname, veil settings: what the user reads and sets on
 * this device, which a device group's other devices learn too.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

int cmd_read(int argc, char **argv)
{
	struct veil_msgr m;
	uint8_t peer[VEIL_ID_LEN];
	size_t n = 0;
	int rc;
	if (argc != 2)
		return cli_usage_err("read", "one ID");
	if ((rc = cli_parse_id(peer, argv[1])) != 0)
		return rc;
	int fd = cli_rpc_connect();
	if (fd >= 0) {
		/* A daemon holds the connection (a login of our own would end it): it sends. */
		char ids[VEIL_ID_LEN + 1];
		veil_id_str(ids, peer);
		json_t *r =
		    cli_rpc_call(fd, "markConversationRead", json_pack("{s:s}", "peer", ids));
		close(fd);
		if (r == NULL)
			return cli_err("the daemon did not answer");
		rc = cli_rpc_status(r);
		if (rc == 0)
			printf("%lld\n",
			       (long long)json_integer_value(json_object_get(r, "result")));
		json_decref(r);
		return rc;
	}
	if (cli_open(&m) != 0)
		return 1;
	rc = veil_msgr_read_conversation(&m, peer, &n) != 0 ? cli_err("%s", m.errtext) : 0;
	if (rc == 0)
		printf("%zu\n", n);
	veil_msgr_close(&m);
	return rc;
}

int cmd_nickname(int argc, char **argv)
{
	struct veil_msgr m;
	int rc = 0;
	if (argc > 2)
		return cli_usage_err("nickname", "at most one NAME");
	if (cli_open(&m) != 0)
		return 1;
	if (argc == 1)
		printf("%s\n", m.prof.nickname);
	else if (veil_msgr_set_nickname(&m, argv[1]) != 0)
		rc = cli_err("%s", m.errtext);
	veil_msgr_close(&m);
	return rc;
}

int cmd_settings(int argc, char **argv)
{
	struct veil_msgr m;
	struct veil_settings s;
	int rc = 0;
	if (argc != 1 && argc != 3)
		return cli_usage_err("settings", "no argument, or a setting and its value");
	if (argc == 3 && (strcmp(argv[1], "read-receipts") != 0 ||
	                  (strcmp(argv[2], "on") != 0 && strcmp(argv[2], "off") != 0)))
		return cli_usage_err("settings", "the setting is read-receipts on|off");
	if (cli_open(&m) != 0)
		return 1;
	if (veil_profile_settings_get(&m.prof, &s) != 0) {
		rc = cli_err("cannot read the settings");
	} else if (argc == 1) {
		printf("read-receipts %s\n", s.read_receipts ? "on" : "off");
	} else {
		s.read_receipts = strcmp(argv[2], "on") == 0;
		if (veil_msgr_settings_set(&m, &s) != 0)
			rc = cli_err("%s", m.errtext);
	}
	veil_msgr_close(&m);
	return rc;
}
