/* veil recv: receive and print messages. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "veil/e2e.h"

#include "cli.h"

struct recv_ctx {
	int json;
	int failed; /* output could not be written */
};

static const char *status_name(uint8_t s)
{
	switch (s) {
	case VEIL_RECEIPT_RECEIVED: return "received";
	case VEIL_RECEIPT_READ: return "read";
	case VEIL_RECEIPT_ACK: return "acknowledged";
	case VEIL_RECEIPT_DECLINE: return "declined";
	default: return "unknown";
	}
}

/* Writes text for a terminal: control characters other than newline and tab become '?'. */
static void put_text(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		putchar((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f ? '?' : ch);
	}
}

static void put_ids(const struct veil_msgr_event *ev)
{
	size_t n = ev->n_ids < VEIL_MSGR_EV_MAX_IDS ? ev->n_ids : VEIL_MSGR_EV_MAX_IDS;
	for (size_t i = 0; i < n; i++) {
		char h[17];
		cli_msgid(h, ev->ids[i]);
		printf("%s%s", i ? " " : "", h);
	}
	if (ev->n_ids > n)
		printf(" (+%zu more)", ev->n_ids - n);
}

static int print_human(const struct veil_msgr_event *ev)
{
	char from[VEIL_ID_LEN + 1], date[32];
	memcpy(from, ev->from, VEIL_ID_LEN);
	from[VEIL_ID_LEN] = 0;
	cli_date(date, ev->date_ms);
	printf("[%s] %s: ", date, from);
	switch (ev->type) {
	case VEIL_E2E_TEXT: put_text(ev->text, ev->text_len); break;
	case VEIL_E2E_DELIVERY_RECEIPT:
		printf("(receipt: %s ", status_name(ev->status));
		put_ids(ev);
		putchar(')');
		break;
	case VEIL_E2E_TYPING: printf(ev->typing ? "(typing)" : "(stopped typing)"); break;
	default: {
		const char *t = veil_msgr_type_name(ev->type);
		if (t != NULL)
			printf("(%s message, not shown)", t);
		else
			printf("(message of type 0x%02x, not shown)", ev->type);
	}
	}
	putchar('\n');
	return 0;
}

static int print_json(const struct veil_msgr_event *ev)
{
	char from[VEIL_ID_LEN + 1], date[32], id[17], tbuf[8];
	memcpy(from, ev->from, VEIL_ID_LEN);
	from[VEIL_ID_LEN] = 0;
	cli_date(date, ev->date_ms);
	cli_msgid(id, ev->msg_id);
	const char *type = veil_msgr_type_name(ev->type);
	if (type == NULL) {
		snprintf(tbuf, sizeof tbuf, "0x%02x", ev->type);
		type = tbuf;
	}
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i}", "from", from, "id", id, "date", date,
	                      "type", type, "type_code", (int)ev->type);
	if (o == NULL)
		return VEIL_ENOMEM;
	if (ev->nickname != NULL)
		json_object_set_new(o, "nickname", json_string(ev->nickname));
	if (ev->new_contact)
		json_object_set_new(o, "new_contact", json_true());
	if (ev->type == VEIL_E2E_TEXT) {
		json_object_set_new(o, "text", json_stringn(ev->text, ev->text_len));
	} else if (ev->type == VEIL_E2E_DELIVERY_RECEIPT) {
		json_t *ids = json_array();
		size_t n = ev->n_ids < VEIL_MSGR_EV_MAX_IDS ? ev->n_ids : VEIL_MSGR_EV_MAX_IDS;
		for (size_t i = 0; i < n; i++) {
			char h[17];
			cli_msgid(h, ev->ids[i]);
			json_array_append_new(ids, json_string(h));
		}
		json_object_set_new(o, "status", json_string(status_name(ev->status)));
		json_object_set_new(o, "status_code", json_integer(ev->status));
		json_object_set_new(o, "ids", ids);
	} else if (ev->type == VEIL_E2E_TYPING) {
		json_object_set_new(o, "typing", json_boolean(ev->typing));
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return VEIL_ENOMEM;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int on_event(const struct veil_msgr_event *ev, void *ctx)
{
	struct recv_ctx *r = ctx;
	char from[VEIL_ID_LEN + 1], id[17];
	switch (ev->kind) {
	case VEIL_MSGR_EV_MESSAGE:
		if ((r->json ? print_json(ev) : print_human(ev)) != 0)
			r->failed = 1;
		break;
	case VEIL_MSGR_EV_ALERT: cli_err("%s", ev->errtext); break;
	case VEIL_MSGR_EV_ERROR:
		memcpy(from, ev->from, VEIL_ID_LEN);
		from[VEIL_ID_LEN] = 0;
		cli_msgid(id, ev->msg_id);
		if (from[0] != 0)
			cli_err("%s (message %s)", ev->errtext, id);
		else
			cli_err("%s", ev->errtext);
		break;
	}
	/* Flush per message so that a reader of a pipe sees it at once. */
	if (fflush(stdout) != 0)
		r->failed = 1;
	return r->failed;
}

int cmd_recv(int argc, char **argv)
{
	struct recv_ctx r = {0};
	struct veil_msgr m;
	const char *wait = NULL;
	long wait_s = 0;
	for (int i = 1; i < argc; i++) {
		int o = cli_opt(argc, argv, &i, "wait", &wait);
		if (o < 0)
			return cli_usage_err("recv", "--wait needs a number of seconds");
		if (o > 0)
			continue;
		if (strcmp(argv[i], "--json") == 0)
			r.json = 1;
		else
			return cli_usage_err("recv", "unexpected argument");
	}
	if (wait != NULL) {
		char *end;
		errno = 0;
		wait_s = strtol(wait, &end, 10);
		if (errno != 0 || end == wait || *end != 0 || wait_s < 0 || wait_s > 86400)
			return cli_usage_err("recv", "--wait needs a number of seconds (0..86400)");
	}
	if (cli_open(&m) != 0)
		return 1;
	int rc = veil_msgr_receive(&m, (int)wait_s, on_event, &r);
	if (rc != 0)
		rc = cli_err("%s", m.errtext);
	else if (r.failed)
		rc = cli_err("cannot write the output");
	veil_msgr_close(&m);
	return rc;
}
