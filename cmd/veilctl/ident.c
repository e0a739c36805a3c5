/*
 * veilctl list | show | block | unblock | delete | revoke | status | queue
 * (srv/admin/ident.c serves them, on the socket or on the data directory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

int ctl_print_json(json_t *o)
{
	json_object_del(o, "ok");
	char *t = json_dumps(o, JSON_COMPACT);
	if (t == NULL)
		return ctl_err("out of memory");
	printf("%s\n", t);
	free(t);
	return 0;
}

void ctl_date(char out[static 32], json_int_t ms, const char *dflt)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%MZ", &tm) == 0)
		snprintf(out, 32, "%s", dflt);
}

static json_int_t int_of(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *str_of(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s != NULL ? s : "";
}

/* Sends req (taking its reference) and hands the answer to show, or prints it as JSON. */
static int run(json_t *req, void (*show)(json_t *resp))
{
	json_t *resp = NULL;
	int rc = req != NULL ? ctl_call(req, &resp) : ctl_err("out of memory");
	json_decref(req);
	if (rc != 0)
		return rc;
	if (ctl_json)
		rc = ctl_print_json(resp);
	else if (show != NULL)
		show(resp);
	json_decref(resp);
	return rc;
}

static void print_identity_line(json_t *e)
{
	char created[32], login[32];
	ctl_date(created, int_of(e, "created_ms"), "-");
	ctl_date(login, int_of(e, "last_login_ms"), "never");
	printf("%-8s %-8s created %s last login %-17s queue %lld\n", str_of(e, "id"),
	       str_of(e, "state"), created, login, (long long)int_of(e, "queued"));
}

static void show_list(json_t *resp)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(resp, "identities"), i, e) print_identity_line(e);
	if (json_is_true(json_object_get(resp, "more")))
		fprintf(stderr, "(more: veilctl list --after LAST-ID)\n");
}

int cmd_list(int argc, char **argv)
{
	const char *after = NULL, *limit_s = NULL;
	long limit = 100;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = ctl_opt(argc, argv, &i, "after", &after)) != 0 ||
		    (r = ctl_opt(argc, argv, &i, "limit", &limit_s)) != 0) {
			if (r < 0)
				return ctl_usage_err("list", "an option lacks its value");
			continue;
		}
		return ctl_usage_err("list", "unexpected argument");
	}
	if (limit_s != NULL && ctl_number(limit_s, 1, VEIL_STORE_MAX_LIST, &limit) != 0)
		return ctl_usage_err("list", "--limit takes a number from 1 to 1000");
	json_t *req = json_pack("{s:s, s:I}", "cmd", "id.list", "limit", (json_int_t)limit);
	if (req != NULL && after != NULL)
		json_object_set_new(req, "after", json_string(after));
	return run(req, show_list);
}

static void show_one(json_t *resp)
{
	json_t *e = json_object_get(resp, "identity");
	char created[32], login[32];
	ctl_date(created, int_of(e, "created_ms"), "-");
	ctl_date(login, int_of(e, "last_login_ms"), "never");
	printf("id          %s\nstate       %s\ncreated     %s\nlast login  %s\nqueue       %lld "
	       "messages\npublic key  %s\nfeatures    0x%llx\n",
	       str_of(e, "id"), str_of(e, "state"), created, login, (long long)int_of(e, "queued"),
	       str_of(e, "public_key"), (unsigned long long)int_of(e, "feature_mask"));
}

/* A command taking one identity: cmd ID. */
static int one_id(int argc, char **argv, const char *cmd, void (*show)(json_t *))
{
	if (argc != 2)
		return ctl_usage_err(argv[0], "give one identity");
	return run(json_pack("{s:s, s:s}", "cmd", cmd, "id", argv[1]), show);
}

int cmd_show(int argc, char **argv)
{
	return one_id(argc, argv, "id.show", show_one);
}

int cmd_block(int argc, char **argv)
{
	return one_id(argc, argv, "id.block", NULL);
}

int cmd_unblock(int argc, char **argv)
{
	return one_id(argc, argv, "id.unblock", NULL);
}

int cmd_revoke(int argc, char **argv)
{
	return one_id(argc, argv, "id.revoke", NULL);
}

static void show_deleted(json_t *resp)
{
	printf("deleted; %lld queued messages removed\n", (long long)int_of(resp, "dropped"));
}

int cmd_delete(int argc, char **argv)
{
	int yes = argc == 3 && strcmp(argv[2], "--yes") == 0;
	if (argc == 3 && !yes)
		return ctl_usage_err("delete", "unexpected argument");
	if (!yes)
		return ctl_usage_err("delete", "deleting cannot be undone: add --yes");
	return one_id(2, argv, "id.delete", show_deleted);
}

static void show_queue_obj(json_t *q)
{
	json_t *l = json_object_get(q, "longest");
	printf("queued      %lld messages, %lld bytes, for %lld identities\nexpired     %lld "
	       "(purged within a minute)\n",
	       (long long)int_of(q, "messages"), (long long)int_of(q, "bytes"),
	       (long long)int_of(q, "recipients"), (long long)int_of(q, "expired"));
	if (int_of(l, "messages") > 0)
		printf("longest     %s, %lld messages\n", str_of(l, "id"),
		       (long long)int_of(l, "messages"));
}

static void show_queue(json_t *resp)
{
	show_queue_obj(resp);
}

int cmd_queue(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return ctl_usage_err("queue", "takes no arguments");
	return run(json_pack("{s:s}", "cmd", "queue.stats"), show_queue);
}

static void show_status(json_t *resp)
{
	json_t *st = json_object_get(resp, "store");
	int running = json_is_true(json_object_get(resp, "running"));
	if (running) {
		json_t *l = json_object_get(resp, "listen");
		json_t *sv = json_object_get(resp, "services");
		printf("veild       %s, running, pid %lld, up %lld s\n", str_of(resp, "version"),
		       (long long)int_of(resp, "pid"), (long long)int_of(resp, "uptime_s"));
		printf("listen      chat %s, http %s%s%s\n", str_of(l, "chat"), str_of(l, "http"),
		       str_of(l, "admin")[0] ? ", admin " : "", str_of(l, "admin"));
		printf("services   ");
		size_t i;
		json_t *e;
		json_array_foreach(sv, i, e) printf(" %s", json_string_value(e));
		printf("\nsign-up     %s\n", str_of(resp, "signup"));
		printf(
		    "connections %lld; since start: %lld logins, %lld messages in, %lld out, %lld "
		    "stored\n",
		    (long long)int_of(resp, "connections"), (long long)int_of(resp, "logins"),
		    (long long)int_of(resp, "messages_in"), (long long)int_of(resp, "messages_out"),
		    (long long)int_of(resp, "messages_stored"));
	} else {
		printf("veild       not running (read from the data directory)\n");
	}
	printf("data        %s\n", str_of(resp, "data"));
	printf("store       %s %s, %s\n", str_of(st, "backend"), str_of(st, "location"),
	       json_is_true(json_object_get(st, "up")) ? "answers" : "DOES NOT ANSWER");
	json_t *q = json_object_get(resp, "queue");
	if (json_is_object(q))
		show_queue_obj(q);
}

int cmd_status(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return ctl_usage_err("status", "takes no arguments");
	return run(json_pack("{s:s}", "cmd", "status"), show_status);
}
