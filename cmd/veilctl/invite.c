/* veilctl invite create | list | revoke (srv/admin/invite.c serves them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/* Unix milliseconds as a UTC date, or "never" for 0. */
static void date_of(char out[static 32], json_int_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms == 0 || gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%MZ", &tm) == 0)
		snprintf(out, 32, "never");
}

static int print_json(json_t *o)
{
	json_object_del(o, "ok");
	char *t = json_dumps(o, JSON_COMPACT);
	if (t == NULL)
		return ctl_err("out of memory");
	printf("%s\n", t);
	free(t);
	return 0;
}

static int invite_create(int argc, char **argv)
{
	const char *uses_s = NULL, *exp_s = NULL;
	long uses = 1, days = 7;
	for (int i = 2; i < argc; i++) {
		int r;
		if ((r = ctl_opt(argc, argv, &i, "uses", &uses_s)) != 0 ||
		    (r = ctl_opt(argc, argv, &i, "expires", &exp_s)) != 0) {
			if (r < 0)
				return ctl_usage_err("invite", "an option lacks its value");
			continue;
		}
		return ctl_usage_err("invite", "unexpected argument");
	}
	if (uses_s != NULL && ctl_number(uses_s, 1, 1000000, &uses) != 0)
		return ctl_usage_err("invite", "--uses takes a number from 1 to 1000000");
	if (exp_s != NULL && ctl_number(exp_s, 0, 3650, &days) != 0)
		return ctl_usage_err("invite", "--expires takes days from 0 (never) to 3650");
	json_t *req = json_pack("{s:s, s:I, s:I}", "cmd", "invite.create", "uses", (json_int_t)uses,
	                        "expires_days", (json_int_t)days);
	json_t *resp = NULL;
	int rc = req != NULL ? ctl_call(req, &resp) : ctl_err("out of memory");
	json_decref(req);
	if (rc != 0)
		return rc;
	if (ctl_json) {
		rc = print_json(resp);
	} else {
		char exp[32];
		date_of(exp, json_integer_value(json_object_get(resp, "expires_ms")));
		printf("%s\n", json_string_value(json_object_get(resp, "code")));
		fprintf(stderr, "invite %s: %lld use(s), expires %s; the code is shown only now\n",
		        json_string_value(json_object_get(resp, "id")),
		        (long long)json_integer_value(json_object_get(resp, "uses")), exp);
	}
	json_decref(resp);
	return rc;
}

static int invite_list(int argc, char **argv)
{
	(void)argv;
	if (argc > 2)
		return ctl_usage_err("invite", "list takes no arguments");
	json_t *req = json_pack("{s:s}", "cmd", "invite.list"), *resp = NULL;
	int rc = req != NULL ? ctl_call(req, &resp) : ctl_err("out of memory");
	json_decref(req);
	if (rc != 0)
		return rc;
	json_t *arr = json_object_get(resp, "invites");
	if (ctl_json) {
		rc = print_json(resp);
	} else {
		size_t i;
		json_t *e;
		json_array_foreach(arr, i, e)
		{
			char created[32], exp[32];
			date_of(created, json_integer_value(json_object_get(e, "created_ms")));
			date_of(exp, json_integer_value(json_object_get(e, "expires_ms")));
			printf("%s %lld/%lld created %s expires %s %s\n",
			       json_string_value(json_object_get(e, "id")),
			       (long long)json_integer_value(json_object_get(e, "used")),
			       (long long)json_integer_value(json_object_get(e, "uses")), created,
			       exp, json_string_value(json_object_get(e, "state")));
		}
	}
	json_decref(resp);
	return rc;
}

static int invite_revoke(int argc, char **argv)
{
	if (argc != 3)
		return ctl_usage_err("invite", "revoke takes one invite ID");
	json_t *req = json_pack("{s:s, s:s}", "cmd", "invite.revoke", "id", argv[2]), *resp = NULL;
	int rc = req != NULL ? ctl_call(req, &resp) : ctl_err("out of memory");
	json_decref(req);
	if (rc == 0 && ctl_json)
		rc = print_json(resp);
	json_decref(resp);
	return rc;
}

int cmd_invite(int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage_err("invite", "create, list or revoke?");
	if (strcmp(argv[1], "create") == 0)
		return invite_create(argc, argv);
	if (strcmp(argv[1], "list") == 0)
		return invite_list(argc, argv);
	if (strcmp(argv[1], "revoke") == 0)
		return invite_revoke(argc, argv);
	return ctl_usage_err("invite", "create, list or revoke?");
}
