/* veil log: print the local message log. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "veil/e2e.h"

#include "cli.h"

struct log_ctx {
	int json;
};

static int log_one(const struct veil_log_entry *e, void *ctx)
{
	struct log_ctx *l = ctx;
	char peer[VEIL_ID_LEN + 1], date[32], id[17], tbuf[8];
	veil_id_str(peer, e->peer);
	cli_date(date, e->date_ms);
	cli_msgid(id, e->msg_id);
	const char *type = cli_type(tbuf, e->type);
	int raw = e->dir == VEIL_LOG_IN && e->status == VEIL_LOG_RAW;
	int is_text = !raw && e->type == VEIL_E2E_TEXT && veil_utf8_valid(e->body, e->body_len);
	if (raw && e->type == 0)
		type = "undecrypted";
	if (l->json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "dir",
		                      e->dir == VEIL_LOG_OUT ? "out" : "in", "peer", peer, "id", id,
		                      "date", date, "type", type, "type_code", (int)e->type,
		                      "status", raw ? 0 : e->status);
		if (o == NULL)
			return VEIL_ENOMEM;
		if (raw) {
			json_object_set_new(o, "raw", json_true());
			json_object_set_new(o, "size", json_integer((json_int_t)e->body_len));
		}
		if (is_text)
			json_object_set_new(o, "text",
			                    json_stringn((const char *)e->body, e->body_len));
		char *s = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (s == NULL)
			return VEIL_ENOMEM;
		printf("%s\n", s);
		free(s);
		return 0;
	}
	printf("[%s] %s %s %s: ", date, id, e->dir == VEIL_LOG_OUT ? "->" : "<-", peer);
	if (is_text) {
		for (size_t i = 0; i < e->body_len; i++) {
			unsigned char ch = e->body[i];
			putchar((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f ? '?' : ch);
		}
	} else if (raw) {
		putchar('(');
		cli_raw_desc(e->type, e->body_len);
		putchar(')');
	} else {
		printf("(%s)", type);
	}
	if (e->dir == VEIL_LOG_OUT && e->status > 0)
		printf(" [%s]", e->status >= 2 ? "read" : "received");
	putchar('\n');
	return 0;
}

int cmd_log(int argc, char **argv)
{
	struct log_ctx l = {0};
	struct veil_msgr m;
	uint8_t peer[VEIL_ID_LEN];
	int have_peer = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			l.json = 1;
		} else if (!have_peer && argv[i][0] != '-') {
			if (cli_parse_id(peer, argv[i]) != 0)
				return 2;
			have_peer = 1;
		} else {
			return cli_usage_err("log", "unexpected argument");
		}
	}
	if (cli_open(&m) != 0)
		return 1;
	int rc = veil_profile_log_list(&m.prof, have_peer ? peer : NULL, log_one, &l);
	if (rc != 0)
		rc = cli_err("cannot read the message log: %s", veil_strerror(rc));
	veil_msgr_close(&m);
	return rc;
}
