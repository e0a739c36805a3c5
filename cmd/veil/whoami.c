/* veil whoami: the ID and public key of the profile. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

int cmd_whoami(int argc, char **argv)
{
	struct veil_msgr m;
	char id[VEIL_ID_LEN + 1], pk[VEIL_HEX_LEN(VEIL_KEY_LEN)];
	int json = 0, rc = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			return cli_usage_err("whoami", "unexpected argument");
	}
	if (cli_open(&m) != 0)
		return 1;
	memcpy(id, m.prof.id, VEIL_ID_LEN);
	id[VEIL_ID_LEN] = 0;
	if (veil_hex_encode(pk, sizeof pk, m.prof.pk, VEIL_KEY_LEN) != 0) {
		rc = cli_err("cannot encode the public key");
		goto out;
	}
	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "public_key", pk, "server",
		                      m.prof.server_url, "nickname", m.prof.nickname);
		/* The device group's mediator (it is no longer readable in a file of the profile). */
		if (o != NULL && m.prof.md &&
		    json_object_set_new(o, "mediator_url", json_string(m.prof.md_url)) != 0) {
			json_decref(o);
			o = NULL;
		}
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (s == NULL)
			rc = cli_err("out of memory");
		else
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("%s %s\n", id, pk);
	}
out:
	veil_msgr_close(&m);
	return rc;
}
