/* veilctl gateway: Gateway API identities (srv/admin/gateway.c serves them). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || v < min || v > max)
		return ctl_err("'%s' is not a number from %" PRId64 " to %" PRId64, s, min, max) +
		       1;
	*out = v;
	return 0;
}

static int call(json_t *req, json_t **resp)
{
	int rc = req != NULL ? ctl_call(req, resp) : ctl_err("out of memory");
	json_decref(req);
	return rc;
}

static int create(int argc, char **argv)
{
	const char *id = NULL, *pk = NULL, *cb = NULL, *credits = NULL;
	for (int i = 2; i < argc; i++) {
		int r;
		if ((r = ctl_opt(argc, argv, &i, "id", &id)) != 0 ||
		    (r = ctl_opt(argc, argv, &i, "public-key", &pk)) != 0 ||
		    (r = ctl_opt(argc, argv, &i, "callback", &cb)) != 0 ||
		    (r = ctl_opt(argc, argv, &i, "credits", &credits)) != 0) {
			if (r < 0)
				return ctl_usage_err("gateway", "an option lacks its value");
			continue;
		}
		return ctl_usage_err("gateway", "unexpected argument");
	}
	json_t *req = json_pack("{s:s}", "cmd", "gateway.create"), *resp = NULL;
	int64_t n;
	if (credits != NULL) {
		if (parse_i64(credits, 0, INT64_MAX / 2, &n) != 0) {
			json_decref(req);
			return 2;
		}
		json_object_set_new(req, "credits", json_integer(n));
	}
	if (id != NULL)
		json_object_set_new(req, "id", json_string(id));
	if (pk != NULL)
		json_object_set_new(req, "public_key", json_string(pk));
	if (cb != NULL)
		json_object_set_new(req, "callback", json_string(cb));
	int rc = call(req, &resp);
	if (rc != 0)
		return rc;
	if (ctl_json)
		rc = ctl_print_json(resp);
	else
		printf("%s %s\n", json_string_value(json_object_get(resp, "id")),
		       json_string_value(json_object_get(resp, "secret")));
	json_decref(resp);
	return rc;
}

static int list(int argc)
{
	if (argc != 2)
		return ctl_usage_err("gateway", "list takes no arguments");
	json_t *resp = NULL;
	int rc = call(json_pack("{s:s}", "cmd", "gateway.list"), &resp);
	if (rc != 0)
		return rc;
	if (ctl_json) {
		rc = ctl_print_json(resp);
		json_decref(resp);
		return rc;
	}
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(resp, "accounts"), i, e)
	{
		const char *cb = json_string_value(json_object_get(e, "callback"));
		printf("%s %s %lld %s", json_string_value(json_object_get(e, "id")),
		       json_string_value(json_object_get(e, "modes")),
		       (long long)json_integer_value(json_object_get(e, "credits")),
		       cb != NULL && cb[0] ? cb : "-");
		json_int_t fails = json_integer_value(json_object_get(e, "callback_failures"));
		if (fails > 0) {
			char when[32];
			ctl_date(when, json_integer_value(json_object_get(e, "last_error_ms")),
			         "?");
			printf(" (%lld callback failures in a row, last %s: %s)", (long long)fails,
			       when, json_string_value(json_object_get(e, "last_error")));
		}
		putchar('\n');
	}
	json_decref(resp);
	return 0;
}

static int callback(int argc, char **argv)
{
	if (argc != 3 && argc != 4)
		return ctl_usage_err("gateway", "callback takes an ID and perhaps a URL");
	json_t *req = json_pack("{s:s, s:s}", "cmd", "gateway.callback", "id", argv[2]), *resp;
	if (req != NULL && argc == 4)
		json_object_set_new(req, "url", json_string(argv[3]));
	int rc = call(req, &resp);
	if (rc != 0)
		return rc;
	if (ctl_json) {
		rc = ctl_print_json(resp);
	} else {
		const char *u = json_string_value(json_object_get(resp, "callback"));
		printf("%s\n", u != NULL && u[0] ? u : "-");
	}
	json_decref(resp);
	return rc;
}

static int credits(int argc, char **argv)
{
	int64_t n = 0;
	if (argc != 3 && argc != 4)
		return ctl_usage_err("gateway", "credits takes an ID and perhaps +N or -N");
	if (argc == 4 && parse_i64(argv[3], -INT64_MAX / 2, INT64_MAX / 2, &n) != 0)
		return 2;
	json_t *req = json_pack("{s:s, s:s, s:I}", "cmd", "gateway.credits", "id", argv[2], "add",
	                        (json_int_t)n),
	       *resp;
	int rc = call(req, &resp);
	if (rc != 0)
		return rc;
	if (ctl_json)
		rc = ctl_print_json(resp);
	else
		printf("%lld\n", (long long)json_integer_value(json_object_get(resp, "credits")));
	json_decref(resp);
	return rc;
}

int ctl_gateway(int argc0, char **argv0)
{
	/* --data and --store may come after "gateway" too (as they always could). */
	char *argv[32];
	int argc = 0;
	for (int i = 0; i < argc0; i++) {
		const char *v;
		int r = i > 0 ? ctl_opt(argc0, argv0, &i, "data", &v) : 0;
		if (r > 0) {
			ctl_data_dir = v;
			continue;
		}
		if (r == 0 && i > 0 && (r = ctl_opt(argc0, argv0, &i, "store", &v)) > 0) {
			ctl_store_url = v;
			continue;
		}
		if (r < 0)
			return ctl_usage_err("gateway", "an option lacks its value");
		if (argc == (int)(sizeof argv / sizeof argv[0]))
			return ctl_usage_err("gateway", "too many arguments");
		argv[argc++] = argv0[i];
	}
	if (argc < 2)
		return ctl_usage_err("gateway", "which gateway command?");
	const char *sub = argv[1];
	if (strcmp(sub, "create") == 0)
		return create(argc, argv);
	if (strcmp(sub, "list") == 0)
		return list(argc);
	if (strcmp(sub, "callback") == 0)
		return callback(argc, argv);
	if (strcmp(sub, "credits") == 0)
		return credits(argc, argv);
	return ctl_usage_err("gateway", "unknown gateway command");
}
