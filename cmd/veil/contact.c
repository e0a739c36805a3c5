/* veil contact: add and list contacts. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static int contact_add(int argc, char **argv)
{
	const char *idarg = NULL, *key = NULL;
	uint8_t id[VEIL_ID_LEN], pk[VEIL_KEY_LEN];
	struct veil_contact c;
	struct veil_msgr m;
	char ids[VEIL_ID_LEN + 1], hex[VEIL_HEX_LEN(VEIL_KEY_LEN)];
	for (int i = 1; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "key", &key);
		if (r < 0)
			return cli_usage_err("contact", "--key needs a value");
		if (r > 0)
			continue;
		if (idarg != NULL || argv[i][0] == '-')
			return cli_usage_err("contact", "unexpected argument");
		idarg = argv[i];
	}
	if (idarg == NULL)
		return cli_usage_err("contact", "contact add needs an ID");
	if (cli_parse_id(id, idarg) != 0)
		return 2;
	if (key != NULL && cli_parse_key(pk, key, "--key") != 0)
		return 2;
	if (cli_open(&m) != 0)
		return 1;
	int rc = 0;
	rc = veil_msgr_contact_add(&m, id, key ? pk : NULL, &c);
	if (rc == 0)
		cli_sync_contact(&m, id, 1);
	/* Adding a contact that is already there with this key changes nothing: success. */
	if (rc == VEIL_EEXIST)
		rc = veil_profile_contact_get(&m.prof, id, &c);
	if (rc != 0) {
		rc = cli_err("%s", m.errtext);
		goto out;
	}
	veil_id_str(ids, c.id);
	if (veil_hex_encode(hex, sizeof hex, c.pk, VEIL_KEY_LEN) == 0)
		printf("%s %s\n", ids, hex);
out:
	veil_msgr_close(&m);
	return rc;
}

/* contact name ID [NAME]: sets (or with "" removes) the local name; without NAME prints it. */
static int contact_name(int argc, char **argv)
{
	uint8_t id[VEIL_ID_LEN];
	struct veil_msgr m;
	char name[VEIL_PROFILE_NICK_MAX + 1];
	if (argc < 2 || argc > 3 || argv[1][0] == '-')
		return cli_usage_err("contact", "contact name needs an ID and a name");
	if (cli_parse_id(id, argv[1]) != 0)
		return 2;
	if (cli_open(&m) != 0)
		return 1;
	int rc = 0;
	if (argc == 2) {
		if (veil_profile_contact_name(&m.prof, id, name, sizeof name) == 0)
			printf("%s\n", name);
		goto out;
	}
	rc = veil_profile_contact_set_name(&m.prof, id, argv[2]);
	if (rc == VEIL_ENOTFOUND)
		rc = cli_err("%.8s is not a contact (veil contact add %.8s)", (const char *)id,
		             (const char *)id);
	else if (rc == VEIL_EINVAL)
		rc = cli_err("the name must be UTF-8 of at most %d bytes", VEIL_PROFILE_NICK_MAX);
	else if (rc != 0)
		rc = cli_err("cannot store the name: %s", veil_strerror(rc));
	else
		cli_sync_contact(&m, id, 0);
out:
	veil_msgr_close(&m);
	return rc;
}

struct list_ctx {
	int json;
	struct veil_msgr *m;
};

static int list_one(const struct veil_contact *c, void *ctx)
{
	struct list_ctx *l = ctx;
	char id[VEIL_ID_LEN + 1], pk[VEIL_HEX_LEN(VEIL_KEY_LEN)], date[32];
	veil_id_str(id, c->id);
	if (veil_hex_encode(pk, sizeof pk, c->pk, VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	cli_date(date, c->first_seen_ms);
	if (!l->json) {
		char name[VEIL_PROFILE_NICK_MAX + 1];
		printf("%s %s %s %s", id, pk, date, c->nickname[0] ? c->nickname : "-");
		if (veil_profile_contact_name(&l->m->prof, c->id, name, sizeof name) == 0) {
			printf(" (");
			cli_put_text(stdout, name, strlen(name));
			putchar(')');
		}
		putchar('\n');
		return 0;
	}
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "public_key", pk, "first_seen",
	                      date, "nickname", c->nickname);
	cli_json_who(o, l->m, c->id);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s == NULL)
		return VEIL_ENOMEM;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int contact_list(int argc, char **argv)
{
	struct list_ctx l = {0};
	struct veil_msgr m;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			l.json = 1;
		else
			return cli_usage_err("contact", "unexpected argument");
	}
	if (cli_open(&m) != 0)
		return 1;
	l.m = &m;
	int rc = veil_profile_contact_list(&m.prof, list_one, &l);
	if (rc != 0)
		rc = cli_err("cannot list the contacts: %s", veil_strerror(rc));
	veil_msgr_close(&m);
	return rc;
}

int cmd_contact(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_err("contact",
		                     "contact needs add, list, match, show, verify or name");
	if (strcmp(argv[1], "add") == 0)
		return contact_add(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0)
		return contact_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "match") == 0)
		return cli_contact_match(argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return cli_contact_show(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cli_contact_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "name") == 0)
		return contact_name(argc - 1, argv + 1);
	return cli_usage_err("contact", "contact needs add, list, match, show, verify or name");
}
