/* veil recv: receive and print messages. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "veil/e2e.h"

#include "cli.h"
#include "progress.h"

/* A file message, kept until the queue is read, then downloaded. */
struct pending_file {
	uint8_t from[VEIL_ID_LEN];
	uint64_t msg_id, date_ms;
	uint8_t *body;
	size_t len;
	/* group files: */
	int group;
	uint8_t group_creator[VEIL_ID_LEN];
	uint64_t group_id;
	char group_name[VEIL_GROUP_NAME_MAX + 1];
};
#define RECV_MAX_PENDING_FILES 4096

struct recv_ctx {
	struct veil_msgr *m; /* for the contacts' local names */
	int json;
	int failed; /* output could not be written */
	struct pending_file *files;
	size_t nfiles;
	int files_dropped; /* file messages beyond RECV_MAX_PENDING_FILES */
};

/* The status words are the same in every command (cli_status_word). */
static const char *status_name(uint8_t s)
{
	return cli_status_word(s);
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

/* Group messages: "[date] FROM in NAME (GID): ..." */
static void not_shown(uint8_t type)
{
	const char *t = veil_msgr_type_name(type);
	if (t != NULL)
		printf("(%s message, not shown)", t);
	else
		printf("(message of type 0x%02x, not shown)", type);
}

static void print_group(const struct veil_msgr_event *ev)
{
	char gid[17];
	cli_msgid(gid, ev->group_id);
	printf(" in ");
	put_text(ev->group_name[0] ? ev->group_name : "(no name)",
	         strlen(ev->group_name[0] ? ev->group_name : "(no name)"));
	printf(" (%s): ", gid);
	switch (ev->type) {
	case VEIL_E2E_GROUP_TEXT: put_text(ev->text, ev->text_len); break;
	case VEIL_E2E_GROUP_SETUP:
		if (ev->group_removed) {
			printf("(removed you from the group, or disbanded it)");
			break;
		}
		printf("(group setup: members %.8s (creator)", (const char *)ev->group_creator);
		for (size_t i = 0; i < ev->group_n_members; i++)
			printf(" %.8s", (const char *)ev->group_members[i]);
		putchar(')');
		break;
	case VEIL_E2E_GROUP_NAME: printf("(named the group)"); break;
	case VEIL_E2E_GROUP_LEAVE: printf("(left the group)"); break;
	case VEIL_E2E_GROUP_SYNC_REQUEST: printf("(asked for the group's state; sent)"); break;
	case VEIL_E2E_GROUP_DELIVERY_RECEIPT:
		printf("(receipt: %s ", status_name(ev->status));
		put_ids(ev);
		putchar(')');
		break;
	default: not_shown(ev->type);
	}
	putchar('\n');
}

/* The JSON object of a message stored raw (ev->raw), as recv --json prints it. */
static json_t *raw_json(struct veil_msgr *m, const struct veil_msgr_event *ev)
{
	char from[VEIL_ID_LEN + 1], date[32], id[17], tbuf[8];
	veil_id_str(from, ev->from);
	cli_date(date, ev->date_ms);
	cli_msgid(id, ev->msg_id);
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:s, s:i, s:b, s:I, s:s}", "from", from, "id", id, "date", date,
	    "type", ev->type ? cli_type(tbuf, ev->type) : "undecrypted", "type_code", (int)ev->type,
	    "raw", 1, "size", (json_int_t)ev->body_len, "error", ev->errtext);
	if (o != NULL)
		cli_json_who(o, m, ev->from);
	return o;
}

static int print_json(struct recv_ctx *r, const struct veil_msgr_event *ev);

/* A message stored as it came because it could not be decoded (ev->raw). */
static int print_raw(struct recv_ctx *r, const struct veil_msgr_event *ev, int json)
{
	char date[32];
	cli_date(date, ev->date_ms);
	if (!json) {
		printf("[%s] ", date);
		cli_put_who(stdout, r->m, ev->from);
		printf(": (%s: ", ev->errtext);
		cli_raw_desc(ev->type, ev->body_len);
		printf("; see 'veil log')\n");
		return 0;
	}
	return print_json(r, ev); /* cli_event_json knows raw events */
}

static int print_human(struct recv_ctx *r, const struct veil_msgr_event *ev)
{
	char date[32];
	cli_date(date, ev->date_ms);
	printf("[%s] ", date);
	if (ev->outgoing) {
		/* Sent by another device of this identity. */
		printf("you (on another device)");
		if (!ev->group) {
			printf(" to ");
			cli_put_who(stdout, r->m, ev->to);
		}
	} else {
		cli_put_who(stdout, r->m, ev->from);
	}
	if (ev->group) {
		print_group(ev);
		return 0;
	}
	printf(": ");
	switch (ev->type) {
	case VEIL_E2E_TEXT: put_text(ev->text, ev->text_len); break;
	case VEIL_E2E_DELIVERY_RECEIPT:
		printf("(receipt: %s ", status_name(ev->status));
		put_ids(ev);
		putchar(')');
		break;
	case VEIL_E2E_TYPING: printf(ev->typing ? "(typing)" : "(stopped typing)"); break;
	default: not_shown(ev->type);
	}
	putchar('\n');
	return 0;
}

json_t *cli_event_json(struct veil_msgr *m, const struct veil_msgr_event *ev)
{
	char from[VEIL_ID_LEN + 1], date[32], id[17], tbuf[8];
	if (ev->raw)
		return raw_json(m, ev);
	veil_id_str(from, ev->from);
	cli_date(date, ev->date_ms);
	cli_msgid(id, ev->msg_id);
	const char *type = cli_type(tbuf, ev->type);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i}", "from", from, "id", id, "date", date,
	                      "type", type, "type_code", (int)ev->type);
	if (o == NULL)
		return NULL;
	if (ev->nickname != NULL)
		json_object_set_new(o, "nickname", json_string(ev->nickname));
	cli_json_who(o, m, ev->from);
	if (ev->new_contact)
		json_object_set_new(o, "new_contact", json_true());
	if (ev->outgoing) {
		json_object_set_new(o, "outgoing", json_true());
		json_object_set_new(o, "to", json_stringn((const char *)ev->to, VEIL_ID_LEN));
	}
	if (ev->other_device)
		json_object_set_new(o, "other_device", json_true());
	if (ev->group) {
		char gid[17];
		cli_msgid(gid, ev->group_id);
		json_t *g = json_pack("{s:s, s:s#, s:s}", "id", gid, "creator",
		                      (const char *)ev->group_creator, (int)VEIL_ID_LEN, "name",
		                      ev->group_name);
		if (ev->type == VEIL_E2E_GROUP_SETUP && g != NULL) {
			json_t *mem = json_array();
			for (size_t i = 0; i < ev->group_n_members; i++)
				json_array_append_new(
				    mem,
				    json_stringn((const char *)ev->group_members[i], VEIL_ID_LEN));
			json_object_set_new(g, "members", mem);
			json_object_set_new(g, "removed", json_boolean(ev->group_removed));
		}
		json_object_set_new(o, "group", g);
	}
	if (ev->type == VEIL_E2E_TEXT || ev->type == VEIL_E2E_GROUP_TEXT) {
		json_object_set_new(o, "text", json_stringn(ev->text, ev->text_len));
	} else if (ev->type == VEIL_E2E_DELIVERY_RECEIPT ||
	           ev->type == VEIL_E2E_GROUP_DELIVERY_RECEIPT) {
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
	return o;
}

static int print_json(struct recv_ctx *r, const struct veil_msgr_event *ev)
{
	json_t *o = cli_event_json(r->m, ev);
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s == NULL)
		return VEIL_ENOMEM;
	printf("%s\n", s);
	free(s);
	return 0;
}

static void queue_file(struct recv_ctx *r, const struct veil_msgr_event *ev)
{
	if (r->nfiles >= RECV_MAX_PENDING_FILES) {
		r->files_dropped++;
		return;
	}
	struct pending_file *f = realloc(r->files, (r->nfiles + 1) * sizeof *f);
	if (f == NULL) {
		r->files_dropped++;
		return;
	}
	r->files = f;
	f += r->nfiles;
	f->body = malloc(ev->body_len > 0 ? ev->body_len : 1);
	if (f->body == NULL) {
		r->files_dropped++;
		return;
	}
	memcpy(f->body, ev->body, ev->body_len);
	f->len = ev->body_len;
	memcpy(f->from, ev->from, VEIL_ID_LEN);
	f->msg_id = ev->msg_id;
	f->date_ms = ev->date_ms;
	f->group = ev->group;
	if (ev->group) {
		memcpy(f->group_creator, ev->group_creator, VEIL_ID_LEN);
		f->group_id = ev->group_id;
		snprintf(f->group_name, sizeof f->group_name, "%s", ev->group_name);
	}
	r->nfiles++;
}

/* Downloads one file message into dir and prints where it went; 0 or 1 (failed). */
static int save_file(struct veil_msgr *m, const struct recv_ctx *r, const struct pending_file *pf,
                     const char *dir)
{
	char from[VEIL_ID_LEN + 1], date[32], id[17], path[VEIL_PROFILE_PATH_MAX], label[64];
	char thumb[VEIL_PROFILE_PATH_MAX + 16];
	struct veil_e2e_file *f = malloc(sizeof *f);
	struct cli_progress pr;
	int rc = 0;
	veil_id_str(from, pf->from);
	cli_date(date, pf->date_ms);
	cli_msgid(id, pf->msg_id);
	if (f == NULL || veil_e2e_file_decode(pf->body, pf->len, f) != 0) {
		free(f);
		return cli_err("malformed file message from %s (message %s)", from, id);
	}
	snprintf(label, sizeof label, "download %.38s", f->name[0] ? f->name : "file");
	cli_progress_init(&pr, label);
	/* Group blobs are shared by all members: only 1:1 blobs are marked done. */
	rc = veil_msgr_file_download(m, pf->body, pf->len, dir, !pf->group, cli_progress_cb, &pr,
	                             path, sizeof path);
	cli_progress_end(&pr);
	thumb[0] = '\0';
	if (rc == 0 && f->has_thumb &&
	    veil_msgr_thumb_download(m, pf->body, pf->len, path, !pf->group, thumb, sizeof thumb) !=
	        0)
		/* The file itself is saved: a lost thumbnail is only worth a line. */
		cli_err("thumbnail of the file from %s (message %s) not saved: %s", from, id,
		        m->errtext);
	if (rc != 0) {
		rc = cli_err("file from %s (message %s) not saved: %s", from, id, m->errtext);
	} else if (r->json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:s}", "from", from,
		                      "id", id, "date", date, "type", "file", "type_code",
		                      (int)VEIL_E2E_FILE, "name", f->name, "mime", f->mime, "size",
		                      (json_int_t)f->size, "path", path);
		if (o != NULL && f->caption[0])
			json_object_set_new(o, "caption", json_string(f->caption));
		if (o != NULL && thumb[0])
			json_object_set_new(o, "thumbnail", json_string(thumb));
		cli_json_who(o, m, pf->from);
		if (o != NULL && pf->group) {
			char gid[17];
			cli_msgid(gid, pf->group_id);
			json_object_set_new(o, "type", json_string("group-file"));
			json_object_set_new(o, "type_code", json_integer(VEIL_E2E_GROUP_FILE));
			json_object_set_new(o, "group",
			                    json_pack("{s:s, s:s#, s:s}", "id", gid, "creator",
			                              (const char *)pf->group_creator,
			                              (int)VEIL_ID_LEN, "name", pf->group_name));
		}
		char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (s != NULL)
			printf("%s\n", s);
		free(s);
	} else {
		printf("[%s] ", date);
		cli_put_who(stdout, m, pf->from);
		if (pf->group) {
			char gid[17];
			const char *gn = pf->group_name[0] ? pf->group_name : "(no name)";
			cli_msgid(gid, pf->group_id);
			printf(" in ");
			put_text(gn, strlen(gn));
			printf(" (%s)", gid);
		}
		printf(": file saved to ");
		put_text(path, strlen(path));
		printf(" (%" PRIu64 " bytes, %s", f->size, f->mime);
		if (thumb[0]) {
			printf("; thumbnail ");
			put_text(thumb, strlen(thumb));
		}
		putchar(')');
		if (f->caption[0]) {
			printf(": ");
			put_text(f->caption, strlen(f->caption));
		}
		putchar('\n');
	}
	fflush(stdout);
	sodium_memzero(f, sizeof *f);
	free(f);
	return rc;
}

static int on_event(const struct veil_msgr_event *ev, void *ctx)
{
	struct recv_ctx *r = ctx;
	char from[VEIL_ID_LEN + 1], id[17];
	switch (ev->kind) {
	case VEIL_MSGR_EV_MESSAGE:
		if (ev->raw) {
			if (print_raw(r, ev, r->json) != 0)
				r->failed = 1;
			break;
		}
		if (ev->type == VEIL_E2E_FILE || ev->type == VEIL_E2E_GROUP_FILE) {
			queue_file(r, ev);
			break;
		}
		if ((r->json ? print_json(r, ev) : print_human(r, ev)) != 0)
			r->failed = 1;
		break;
	case VEIL_MSGR_EV_ALERT: cli_err("%s", ev->errtext); break;
	case VEIL_MSGR_EV_ERROR:
		veil_id_str(from, ev->from);
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
	const char *wait = NULL, *ddir = NULL;
	long wait_s = 0;
	for (int i = 1; i < argc; i++) {
		int o = cli_opt(argc, argv, &i, "wait", &wait);
		if (o < 0)
			return cli_usage_err("recv", "--wait needs a number of seconds");
		if (o > 0)
			continue;
		o = cli_opt(argc, argv, &i, "download-dir", &ddir);
		if (o < 0)
			return cli_usage_err("recv", "--download-dir needs a directory");
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
	r.m = &m;
	int rc = veil_msgr_receive(&m, (int)wait_s, on_event, &r);
	if (rc != 0)
		rc = cli_err("%s", m.errtext);
	/* Files are fetched after the queue, so a long download never stalls the chat connection. */
	char fdir[VEIL_PROFILE_PATH_MAX + 8];
	if (ddir == NULL)
		snprintf(fdir, sizeof fdir, "%s/files", m.prof.home);
	else
		snprintf(fdir, sizeof fdir, "%s", ddir);
	for (size_t i = 0; i < r.nfiles; i++) {
		if (save_file(&m, &r, &r.files[i], fdir) != 0 && rc == 0)
			rc = 1;
		free(r.files[i].body);
	}
	free(r.files);
	if (r.files_dropped > 0)
		rc = cli_err("%d file messages not downloaded (see 'veil log')", r.files_dropped);
	else if (r.failed)
		rc = cli_err("cannot write the output");
	veil_msgr_close(&m);
	return rc;
}
