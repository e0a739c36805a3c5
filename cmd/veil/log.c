/*
 * veil log: the message history stored in the profile, every message type in
 * words, ordered by date, with filters (--peer, --since, --grep, --limit) and
 * JSON Lines (--json).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "veil/e2e.h"

#include "cli.h"

#define LOG_LIMIT_MAX 1000000

struct log_ctx {
	struct veil_msgr *m;
	int json;
	/* --peer GID: only this group's messages */
	int by_group;
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	const char *grep; /* NULL: no filter */
	/* --limit N: the N newest lines, kept in a ring until the end */
	size_t limit;
	char **ring;
	size_t n; /* lines seen (the ring holds the last min(n, limit)) */
	int failed;
	struct veil_group *g;            /* scratch for group name lookups */
	struct veil_e2e_file *file;      /* scratch for file messages */
	uint8_t (*members)[VEIL_ID_LEN]; /* scratch for group setups */
};

/* What one log entry says, decoded for both output forms. */
struct entry_view {
	const char *type;
	int raw;
	int group; /* a group message: creator, gid and name below */
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	const char *gname;
	const uint8_t *inner; /* body without the group container */
	size_t inner_len;
	const char *text; /* text, group text, group name */
	size_t text_len;
	int is_file;
	int is_receipt;
	uint8_t rstatus;
	uint64_t ids[VEIL_MSGR_EV_MAX_IDS];
	size_t n_ids;
	uint8_t (*members)[VEIL_ID_LEN];
	size_t n_members;
	int is_setup;
};

/* ASCII case-insensitive substring search (memmem ignoring case). */
static int contains_ci(const char *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	if (k == 0)
		return 1;
	for (size_t i = 0; i + k <= n; i++) {
		size_t j = 0;
		while (j < k) {
			unsigned char a = (unsigned char)hay[i + j], b = (unsigned char)needle[j];
			if (a >= 'A' && a <= 'Z')
				a = (unsigned char)(a - 'A' + 'a');
			if (b >= 'A' && b <= 'Z')
				b = (unsigned char)(b - 'A' + 'a');
			if (a != b)
				break;
			j++;
		}
		if (j == k)
			return 1;
	}
	return 0;
}

/* Decodes e into v; anything that does not decode is described by its type and size. */
static void view(struct log_ctx *l, const struct veil_log_entry *e, struct entry_view *v,
                 uint8_t (*members)[VEIL_ID_LEN])
{
	static char tbuf[8];
	memset(v, 0, sizeof *v);
	v->type = cli_type(tbuf, e->type);
	v->inner = e->body;
	v->inner_len = e->body_len;
	v->gname = "";
	if (e->dir == VEIL_LOG_IN && e->status == VEIL_LOG_RAW) {
		v->raw = 1;
		if (e->type == 0)
			v->type = "undecrypted";
		return;
	}
	int container = veil_e2e_group_container(e->type);
	if (container == VEIL_GROUP_CONTAINER_MEMBER) {
		if (veil_e2e_group_member_unwrap(e->body, e->body_len, v->creator, &v->gid,
		                                 &v->inner, &v->inner_len) != 0)
			return;
		v->group = 1;
	} else if (container == VEIL_GROUP_CONTAINER_CREATOR) {
		if (veil_e2e_group_creator_unwrap(e->body, e->body_len, &v->gid, &v->inner,
		                                  &v->inner_len) != 0)
			return;
		/* The creator sent it: the peer of an incoming message, else us. */
		memcpy(v->creator, e->dir == VEIL_LOG_IN ? e->peer : l->m->prof.id, VEIL_ID_LEN);
		v->group = 1;
	}
	if (v->group && veil_profile_group_get(&l->m->prof, v->creator, v->gid, l->g) == 0)
		v->gname = l->g->name;
	switch (e->type) {
	case VEIL_E2E_TEXT:
	case VEIL_E2E_GROUP_TEXT:
		if (veil_e2e_text_decode(v->inner, v->inner_len, &v->text, &v->text_len) != 0)
			v->text = NULL;
		break;
	case VEIL_E2E_FILE:
	case VEIL_E2E_GROUP_FILE:
		v->is_file = veil_e2e_file_decode(v->inner, v->inner_len, l->file) == 0;
		break;
	case VEIL_E2E_DELIVERY_RECEIPT:
	case VEIL_E2E_GROUP_DELIVERY_RECEIPT:
		v->is_receipt = veil_e2e_receipt_decode(v->inner, v->inner_len, &v->rstatus, v->ids,
		                                        VEIL_MSGR_EV_MAX_IDS, &v->n_ids) == 0;
		break;
	case VEIL_E2E_GROUP_NAME:
		if (veil_e2e_group_name_decode(v->inner, v->inner_len, &v->text, &v->text_len) != 0)
			v->text = NULL;
		break;
	case VEIL_E2E_GROUP_SETUP:
		v->is_setup =
		    veil_e2e_group_setup_decode(v->inner, v->inner_len, members,
		                                VEIL_GROUP_MAX_MEMBERS, &v->n_members) == 0;
		v->members = members;
		break;
	default: break;
	}
}

/* The words of a message after "PEER: " (used for --grep as well). */
static void describe(FILE *f, const struct veil_log_entry *e, const struct entry_view *v,
                     const struct veil_e2e_file *file)
{
	char h[17];
	if (v->raw) {
		if (e->type == 0)
			fprintf(f, "stored raw: not decrypted, %zu bytes", e->body_len);
		else
			fprintf(f, "stored raw: type 0x%02x, %zu bytes", e->type, e->body_len);
		return;
	}
	switch (e->type) {
	case VEIL_E2E_TEXT:
	case VEIL_E2E_GROUP_TEXT:
		if (v->text != NULL) {
			cli_put_text(f, v->text, v->text_len);
			return;
		}
		break;
	case VEIL_E2E_FILE:
	case VEIL_E2E_GROUP_FILE:
		if (v->is_file) {
			fprintf(f, "file ");
			cli_put_text(f, file->name, strlen(file->name));
			fprintf(f, " (%" PRIu64 " bytes, ", file->size);
			cli_put_text(f, file->mime, strlen(file->mime));
			fputc(')', f);
			if (file->caption[0]) {
				fprintf(f, ": ");
				cli_put_text(f, file->caption, strlen(file->caption));
			}
			return;
		}
		break;
	case VEIL_E2E_DELIVERY_RECEIPT:
	case VEIL_E2E_GROUP_DELIVERY_RECEIPT:
		if (v->is_receipt) {
			fprintf(f, "receipt: %s", cli_status_word(v->rstatus));
			for (size_t i = 0; i < v->n_ids; i++) {
				cli_msgid(h, v->ids[i]);
				fprintf(f, " %s", h);
			}
			return;
		}
		break;
	case VEIL_E2E_GROUP_NAME:
		if (v->text != NULL) {
			fprintf(f, "named the group ");
			cli_put_text(f, v->text, v->text_len);
			return;
		}
		break;
	case VEIL_E2E_GROUP_SETUP:
		if (v->is_setup) {
			if (v->n_members == 0) {
				fprintf(f, "removed you from the group, or disbanded it");
			} else {
				fprintf(f, "group setup: members %.8s (creator)",
				        (const char *)v->creator);
				for (size_t i = 0; i < v->n_members; i++)
					fprintf(f, " %.8s", (const char *)v->members[i]);
			}
			return;
		}
		break;
	case VEIL_E2E_GROUP_LEAVE: fprintf(f, "left the group"); return;
	case VEIL_E2E_GROUP_SYNC_REQUEST: fprintf(f, "asked for the group's state"); return;
	default: break;
	}
	const char *t = veil_msgr_type_name(e->type);
	if (t != NULL)
		fprintf(f, "%s message, %zu bytes", t, e->body_len);
	else
		fprintf(f, "message of type 0x%02x, %zu bytes", e->type, e->body_len);
}

static json_t *entry_json(struct log_ctx *l, const struct veil_log_entry *e,
                          const struct entry_view *v)
{
	char peer[VEIL_ID_LEN + 1], date[32], id[17];
	veil_id_str(peer, e->peer);
	cli_date(date, e->date_ms);
	cli_msgid(id, e->msg_id);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "dir",
	                      e->dir == VEIL_LOG_OUT ? "out" : "in", "peer", peer, "id", id, "date",
	                      date, "type", v->type, "type_code", (int)e->type);
	if (o == NULL)
		return NULL;
	cli_json_who(o, l->m, e->peer);
	if (v->raw) {
		json_object_set_new(o, "raw", json_true());
		json_object_set_new(o, "size", json_integer((json_int_t)e->body_len));
		return o;
	}
	if (e->dir == VEIL_LOG_OUT && !v->is_receipt)
		json_object_set_new(o, "status", json_string(cli_status_word(e->status)));
	if (e->dir == VEIL_LOG_IN && !v->is_receipt)
		json_object_set_new(o, "read", json_boolean(e->status == VEIL_LOG_READ));
	if (v->group) {
		char gid[17];
		cli_msgid(gid, v->gid);
		json_object_set_new(o, "group",
		                    json_pack("{s:s, s:s#, s:s}", "id", gid, "creator",
		                              (const char *)v->creator, (int)VEIL_ID_LEN, "name",
		                              v->gname));
	}
	if (v->text != NULL && e->type == VEIL_E2E_GROUP_NAME)
		json_object_set_new(o, "name", json_stringn(v->text, v->text_len));
	else if (v->text != NULL)
		json_object_set_new(o, "text", json_stringn(v->text, v->text_len));
	if (v->is_file) {
		const struct veil_e2e_file *f = l->file;
		json_object_set_new(o, "name", json_string(f->name));
		json_object_set_new(o, "mime", json_string(f->mime));
		json_object_set_new(o, "size", json_integer((json_int_t)f->size));
		if (f->caption[0])
			json_object_set_new(o, "caption", json_string(f->caption));
	}
	if (v->is_receipt) {
		json_t *ids = json_array();
		for (size_t i = 0; i < v->n_ids; i++) {
			char h[17];
			cli_msgid(h, v->ids[i]);
			json_array_append_new(ids, json_string(h));
		}
		json_object_set_new(o, "status", json_string(cli_status_word(v->rstatus)));
		json_object_set_new(o, "status_code", json_integer(v->rstatus));
		json_object_set_new(o, "ids", ids);
	}
	if (v->is_setup) {
		json_t *mem = json_array();
		for (size_t i = 0; i < v->n_members; i++)
			json_array_append_new(
			    mem, json_stringn((const char *)v->members[i], VEIL_ID_LEN));
		json_object_set_new(o, "members", mem);
	}
	return o;
}

/* Prints the line now, or keeps it among the newest --limit lines. Takes line. */
static void emit(struct log_ctx *l, char *line)
{
	if (l->limit == 0) {
		if (fputs(line, stdout) == EOF)
			l->failed = 1;
		free(line);
		return;
	}
	size_t k = l->n % l->limit;
	free(l->ring[k]);
	l->ring[k] = line;
	l->n++;
}

static int log_one(const struct veil_log_entry *e, void *ctx)
{
	struct log_ctx *l = ctx;
	struct entry_view v;
	char *words = NULL, *line = NULL;
	size_t wlen = 0, llen = 0;
	int rc = 0;
	view(l, e, &v, l->members);
	if (l->by_group &&
	    (!v.group || v.gid != l->gid || memcmp(v.creator, l->creator, VEIL_ID_LEN) != 0))
		goto out;
	FILE *w = open_memstream(&words, &wlen);
	if (w == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (v.group) {
		/* The group's name and ID are part of what --grep searches. */
		fputs(" in ", w);
		cli_put_text(w, v.gname[0] ? v.gname : "(no name)",
		             strlen(v.gname[0] ? v.gname : "(no name)"));
		char gid[17];
		cli_msgid(gid, v.gid);
		fprintf(w, " (%s)", gid);
	}
	fputs(": ", w);
	describe(w, e, &v, l->file);
	if (e->dir == VEIL_LOG_OUT && e->status > 0 && !v.is_receipt)
		fprintf(w, " [%s]", cli_status_word(e->status));
	if (e->dir == VEIL_LOG_IN && e->status == VEIL_LOG_READ)
		fputs(" [read]", w);
	if (fclose(w) != 0 || words == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (l->grep != NULL && !contains_ci(words, wlen, l->grep))
		goto out;
	if (l->json) {
		json_t *o = entry_json(l, e, &v);
		char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (s == NULL) {
			rc = VEIL_ENOMEM;
			goto out;
		}
		size_t n = strlen(s);
		line = malloc(n + 2);
		if (line != NULL) {
			memcpy(line, s, n);
			memcpy(line + n, "\n", 2);
		}
		free(s);
	} else {
		char peer[VEIL_ID_LEN + 1], date[32], id[17];
		veil_id_str(peer, e->peer);
		cli_date(date, e->date_ms);
		cli_msgid(id, e->msg_id);
		FILE *o = open_memstream(&line, &llen);
		if (o != NULL) {
			/* Our own group messages are logged with our ID: say only "->". */
			if (e->dir == VEIL_LOG_OUT && v.group) {
				fprintf(o, "[%s] %s ->%s\n", date, id, words);
			} else {
				fprintf(o, "[%s] %s %s ", date, id,
				        e->dir == VEIL_LOG_OUT ? "->" : "<-");
				cli_put_who(o, l->m, e->peer);
				fprintf(o, "%s\n", words);
			}
			if (fclose(o) != 0) {
				free(line);
				line = NULL;
			}
		}
	}
	if (line == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	emit(l, line);
out:
	free(words);
	sodium_memzero(l->file, sizeof *l->file);
	return rc;
}

int cmd_log(int argc, char **argv)
{
	struct log_ctx l = {0};
	struct veil_log_query q = {0};
	struct veil_msgr m;
	uint8_t peer[VEIL_ID_LEN];
	const char *peer_arg = NULL, *since = NULL, *limit = NULL;
	int rc;
	for (int i = 1; i < argc; i++) {
		const char *val;
		int o;
		if (strcmp(argv[i], "--json") == 0) {
			l.json = 1;
		} else if ((o = cli_opt(argc, argv, &i, "peer", &peer_arg)) != 0) {
			if (o < 0)
				return cli_usage_err("log", "--peer needs an ID or a group ID");
		} else if ((o = cli_opt(argc, argv, &i, "since", &since)) != 0) {
			if (o < 0)
				return cli_usage_err("log", "--since needs a date or a duration");
		} else if ((o = cli_opt(argc, argv, &i, "limit", &limit)) != 0) {
			if (o < 0)
				return cli_usage_err("log", "--limit needs a number");
		} else if ((o = cli_opt(argc, argv, &i, "grep", &val)) != 0) {
			if (o < 0)
				return cli_usage_err("log", "--grep needs a text");
			l.grep = val;
		} else if (peer_arg == NULL && argv[i][0] != '-') {
			peer_arg = argv[i]; /* "veil log ID", as before --peer */
		} else {
			return cli_usage_err("log", "unexpected argument");
		}
	}
	if (since != NULL && cli_parse_since(since, veil_now_ms(), &q.since_ms) != 0)
		return cli_usage_err("log", "--since needs a date (2024-05-01, 2024-05-01T12:00Z, "
		                            "UTC) or a duration (30m, 12h, 7d, 2w)");
	if (limit != NULL) {
		char *end;
		errno = 0;
		long v = strtol(limit, &end, 10);
		if (errno != 0 || end == limit || *end != 0 || v < 1 || v > LOG_LIMIT_MAX)
			return cli_usage_err("log", "--limit needs a number from 1 to 1000000");
		l.limit = (size_t)v;
	}
	int peer_is_id = peer_arg != NULL && strlen(peer_arg) == VEIL_ID_LEN;
	if (peer_is_id && cli_parse_id(peer, peer_arg) != 0)
		return 2;
	if (cli_open(&m) != 0)
		return 1;
	l.m = &m;
	if (peer_arg != NULL && !peer_is_id) {
		if ((rc = cli_group_resolve(&m, peer_arg, l.creator, &l.gid)) != 0)
			goto out;
		l.by_group = 1;
	}
	q.peer = peer_is_id ? peer : NULL;
	l.g = malloc(sizeof *l.g);
	l.file = sodium_malloc(sizeof *l.file);
	l.members = malloc(VEIL_GROUP_MAX_MEMBERS * sizeof *l.members);
	l.ring = l.limit ? calloc(l.limit, sizeof *l.ring) : NULL;
	if (l.g == NULL || l.file == NULL || l.members == NULL || (l.limit && l.ring == NULL)) {
		rc = cli_err("out of memory");
		goto out;
	}
	rc = veil_profile_log_query(&m.prof, &q, log_one, &l);
	if (rc != 0) {
		rc = cli_err("cannot read the message log: %s", veil_strerror(rc));
		goto out;
	}
	if (l.limit) {
		size_t have = l.n < l.limit ? l.n : l.limit;
		for (size_t i = 0; i < have; i++) {
			size_t k = (l.n - have + i) % l.limit;
			if (fputs(l.ring[k], stdout) == EOF)
				l.failed = 1;
		}
	}
	if (fflush(stdout) != 0 || l.failed)
		rc = cli_err("cannot write the output");
out:
	if (l.ring != NULL)
		for (size_t i = 0; i < l.limit; i++)
			free(l.ring[i]);
	free(l.ring);
	free(l.g);
	free(l.members);
	if (l.file != NULL)
		sodium_free(l.file);
	veil_msgr_close(&m);
	return rc;
}
