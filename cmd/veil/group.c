/* veil group: creator-managed group chats. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "veil/e2e.h"

#include "cli.h"
#include "progress.h"

/* A group ID on the command line: 16 hex digits of its wire bytes, as for message IDs. */
static int parse_hex64(uint64_t *out, const char *s)
{
	uint8_t b[8];
	if (strlen(s) != 16 || veil_hex_decode(b, sizeof b, s, 16) != 0)
		return -1;
	*out = veil_load_u64le(b);
	return 0;
}

struct find_ctx {
	uint64_t gid;
	const uint8_t *creator; /* NULL: any */
	size_t n;
	uint8_t found[VEIL_ID_LEN];
	/* for list: */
	int json;
	struct veil_profile *prof;
};

static int find_fn(const struct veil_group *g, void *ctx)
{
	struct find_ctx *f = ctx;
	if (g->gid == f->gid &&
	    (f->creator == NULL || memcmp(f->creator, g->creator, VEIL_ID_LEN) == 0)) {
		if (f->n++ == 0)
			memcpy(f->found, g->creator, VEIL_ID_LEN);
	}
	return 0;
}

int cli_group_resolve(struct veil_msgr *m, const char *arg, uint8_t creator[static VEIL_ID_LEN],
                      uint64_t *gid)
{
	struct find_ctx f;
	uint8_t c[VEIL_ID_LEN];
	const char *hex = arg;
	memset(&f, 0, sizeof f);
	const char *colon = strchr(arg, ':');
	if (colon != NULL) {
		char ids[VEIL_ID_LEN + 1];
		if (colon - arg != VEIL_ID_LEN)
			return cli_err(
			           "invalid group '%.40s': expected 16 hex digits or CREATOR:GID",
			           arg),
			       2;
		for (size_t i = 0; i < VEIL_ID_LEN; i++)
			ids[i] = (char)toupper((unsigned char)arg[i]);
		ids[VEIL_ID_LEN] = 0;
		if (veil_id_parse(c, ids) != 0)
			return cli_err("invalid creator ID in '%.40s'", arg), 2;
		f.creator = c;
		hex = colon + 1;
	}
	if (parse_hex64(&f.gid, hex) != 0)
		return cli_err(
		           "invalid group '%.40s': expected 16 hex digits (see 'veil group list')",
		           arg),
		       2;
	if (veil_profile_group_list(&m->prof, find_fn, &f) != 0)
		return cli_err("cannot read the groups");
	if (f.n == 0)
		return cli_err("unknown group %s (see 'veil group list')", hex);
	if (f.n > 1)
		return cli_err("%d groups have the ID %s: name one as CREATOR:%s (see 'veil group "
		               "list')",
		               (int)f.n, hex, hex);
	memcpy(creator, f.found, VEIL_ID_LEN);
	*gid = f.gid;
	return 0;
}

static void gid_str(char out[static 17], uint64_t gid)
{
	cli_msgid(out, gid);
}

static int parse_ids(int argc, char **argv, uint8_t (*ids)[VEIL_ID_LEN], size_t *n)
{
	*n = 0;
	for (int i = 0; i < argc; i++) {
		if (*n >= VEIL_GROUP_MAX_MEMBERS)
			return cli_err("too many IDs: a group has at most %d members, its creator "
			               "included",
			               VEIL_GROUP_MAX_MEMBERS),
			       2;
		if (cli_parse_id(ids[*n], argv[i]) != 0)
			return 2;
		(*n)++;
	}
	return 0;
}

static void alert(const char *text, void *ctx)
{
	(void)ctx;
	cli_err("server alert: %s", text);
}

/* One stderr line for every receiver that did not get a group operation's message. */
static void receiver_fail(const uint8_t id[VEIL_ID_LEN], int unreachable, const char *why,
                          void *ctx)
{
	char ids[VEIL_ID_LEN + 1];
	(void)ctx;
	veil_id_str(ids, id);
	cli_err("%s did not get the message%s: %s", ids, unreachable ? " (unreachable)" : "", why);
}

/*
 * The exit status of a failed group operation: 3 if only some receivers
 * missed out (the others got it: sending again would duplicate), else 1.
 */
static int op_status(struct veil_msgr *m, int rc)
{
	cli_err("%s", m->errtext);
	return rc == VEIL_EPARTIAL ? CLI_EXIT_PARTIAL : 1;
}

/* --- list and show --- */

static int count_gid(const struct veil_group *g, void *ctx)
{
	struct find_ctx *f = ctx;
	if (g->gid == f->gid)
		f->n++;
	return 0;
}

static json_t *group_json(const struct veil_group *g, const struct veil_profile *p)
{
	char gh[17], cs[VEIL_ID_LEN + 1];
	gid_str(gh, g->gid);
	veil_id_str(cs, g->creator);
	json_t *mem = json_array();
	for (size_t i = 0; i < g->n_members; i++)
		json_array_append_new(mem, json_stringn((const char *)g->members[i], VEIL_ID_LEN));
	return json_pack("{s:s, s:s, s:s, s:o, s:b, s:b}", "id", gh, "creator", cs, "name", g->name,
	                 "members", mem, "left", g->left, "created_by_you",
	                 memcmp(g->creator, p->id, VEIL_ID_LEN) == 0);
}

static int list_fn(const struct veil_group *g, void *ctx)
{
	struct find_ctx *f = ctx;
	char gh[17], cs[VEIL_ID_LEN + 1];
	if (f->json) {
		/* JSON Lines, like every --json: one group per line. */
		json_t *o = group_json(g, f->prof);
		char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (s == NULL)
			return VEIL_ENOMEM;
		printf("%s\n", s);
		free(s);
		return 0;
	}
	struct find_ctx same = {.gid = g->gid};
	if (veil_profile_group_list(f->prof, count_gid, &same) != 0)
		return VEIL_EIO;
	gid_str(gh, g->gid);
	veil_id_str(cs, g->creator);
	/* Two groups with one ID (from different creators) are told apart by the creator. */
	if (same.n > 1)
		printf("%s:%s", cs, gh);
	else
		printf("%s", gh);
	printf("  %s  (creator %s%s, %zu members%s)\n", g->name[0] ? g->name : "(no name)", cs,
	       memcmp(g->creator, f->prof->id, VEIL_ID_LEN) == 0 ? " = you" : "", g->n_members + 1,
	       g->left ? ", left" : "");
	return 0;
}

static int group_list(struct veil_msgr *m, int json)
{
	struct find_ctx f;
	memset(&f, 0, sizeof f);
	f.json = json;
	f.prof = &m->prof;
	if (veil_profile_group_list(&m->prof, list_fn, &f) != 0)
		return cli_err("cannot read the groups");
	return 0;
}

static int group_show(struct veil_msgr *m, const char *arg, int json)
{
	struct veil_group *g = malloc(sizeof *g);
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	char gh[17], cs[VEIL_ID_LEN + 1];
	int rc;
	if (g == NULL)
		return cli_err("out of memory");
	if ((rc = cli_group_resolve(m, arg, creator, &gid)) != 0)
		goto out;
	if (veil_profile_group_get(&m->prof, creator, gid, g) != 0) {
		rc = cli_err("cannot read the groups");
		goto out;
	}
	if (json) {
		json_t *o = group_json(g, &m->prof);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (s == NULL) {
			rc = cli_err("out of memory");
			goto out;
		}
		printf("%s\n", s);
		free(s);
		goto out;
	}
	gid_str(gh, gid);
	veil_id_str(cs, creator);
	int mine = memcmp(creator, m->prof.id, VEIL_ID_LEN) == 0;
	printf("group:   %s\nname:    %s\ncreator: %s%s\nstate:   %s\nmembers: %zu\n", gh,
	       g->name[0] ? g->name : "(no name)", cs, mine ? " (you)" : "",
	       !g->left ? "active"
	       : mine   ? "disbanded"
	                : "left (you left or were removed)",
	       g->n_members + 1);
	printf("  %s (creator)%s\n", cs, mine ? " (you)" : "");
	for (size_t i = 0; i < g->n_members; i++)
		printf("  %.8s%s\n", (const char *)g->members[i],
		       memcmp(g->members[i], m->prof.id, VEIL_ID_LEN) == 0 ? " (you)" : "");
out:
	free(g);
	return rc;
}

/* --- changes --- */

static int group_create(struct veil_msgr *m, int argc, char **argv)
{
	uint8_t(*ids)[VEIL_ID_LEN] = malloc(VEIL_GROUP_MAX_MEMBERS * VEIL_ID_LEN);
	struct veil_group *g = malloc(sizeof *g);
	size_t n = 0;
	char gh[17];
	int rc;
	if (ids == NULL || g == NULL) {
		rc = cli_err("out of memory");
		goto out;
	}
	if ((rc = parse_ids(argc - 1, argv + 1, ids, &n)) != 0)
		goto out;
	rc = veil_msgr_group_create(m, argv[0], (const uint8_t(*)[VEIL_ID_LEN])ids, n, g);
	if (rc == VEIL_EPARTIAL) {
		gid_str(gh, g->gid);
		printf("%s\n", gh);
		rc = op_status(m, rc);
		goto out;
	}
	if (rc != 0) {
		/* The group is stored before it is sent: say so if only the sending failed. */
		if (g->gid != 0 && veil_profile_group_get(&m->prof, m->prof.id, g->gid, g) == 0) {
			gid_str(gh, g->gid);
			rc = cli_err("%s (group %s was created; its members learn of it with its "
			             "first message)",
			             m->errtext, gh);
		} else {
			rc = cli_err("%s", m->errtext);
		}
		goto out;
	}
	gid_str(gh, g->gid);
	printf("%s\n", gh);
out:
	free(ids);
	free(g);
	return rc;
}

static int group_members(struct veil_msgr *m, int add, int argc, char **argv)
{
	uint8_t(*ids)[VEIL_ID_LEN] = malloc(VEIL_GROUP_MAX_MEMBERS * VEIL_ID_LEN);
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	size_t n = 0;
	int rc;
	if (ids == NULL)
		return cli_err("out of memory");
	if ((rc = cli_group_resolve(m, argv[0], creator, &gid)) != 0 ||
	    (rc = parse_ids(argc - 1, argv + 1, ids, &n)) != 0)
		goto out;
	const uint8_t(*list)[VEIL_ID_LEN] = (const uint8_t(*)[VEIL_ID_LEN])ids;
	if ((rc = veil_msgr_group_update(m, creator, gid, add ? list : NULL, add ? n : 0,
	                                 add ? NULL : list, add ? 0 : n)) != 0)
		rc = op_status(m, rc);
out:
	free(ids);
	return rc;
}

static int read_msgids(int argc, char **argv, uint64_t *ids, size_t *n)
{
	*n = 0;
	for (int i = 0; i < argc; i++) {
		if (*n >= VEIL_E2E_RECEIPT_MAX_IDS)
			return cli_err("too many message IDs (at most %d)",
			               VEIL_E2E_RECEIPT_MAX_IDS),
			       2;
		if (parse_hex64(&ids[*n], argv[i]) != 0)
			return cli_err("invalid message ID '%.40s': expected 16 hex digits",
			               argv[i]),
			       2;
		(*n)++;
	}
	return 0;
}

/* veil group send GID --file PATH [--caption TEXT] */
static int group_send_file(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, int argc, char **argv)
{
	const char *path = NULL, *caption = NULL;
	struct cli_progress pr;
	char idhex[17], label[64];
	uint64_t msg_id;
	for (int i = 1; i < argc; i++) {
		int a = cli_opt(argc, argv, &i, "file", &path);
		int b = a != 0 ? 0 : cli_opt(argc, argv, &i, "caption", &caption);
		if (a < 0 || b < 0)
			return cli_usage_err("group", "--file and --caption need a value");
		if (a == 0 && b == 0)
			return cli_usage_err("group", "with --file, only --caption may follow");
	}
	if (path == NULL || path[0] == 0)
		return cli_usage_err("group", "--file needs a path");
	int fd = cli_rpc_connect();
	if (fd >= 0) {
		char abs[VEIL_PROFILE_PATH_MAX * 2], g[VEIL_ID_LEN + 18];
		veil_id_str(g, creator);
		g[VEIL_ID_LEN] = ':';
		cli_msgid(g + VEIL_ID_LEN + 1, gid);
		int rc =
		    cli_rpc_abs_path(abs, sizeof abs, path) != 0
		        ? cli_err("path too long")
		        : cli_rpc_sent(cli_rpc_call(fd, "groupSend",
		                                    json_pack("{s:s, s:s, s:s?}", "group", g,
		                                              "file", abs, "caption", caption)));
		close(fd);
		return rc;
	}
	const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	snprintf(label, sizeof label, "upload %.40s", base);
	cli_progress_init(&pr, label);
	struct veil_file_opts o = {
	    .caption = caption, .progress = cli_progress_cb, .progress_ctx = &pr};
	int rc = veil_msgr_group_send_file(m, creator, gid, path, &o, &msg_id);
	cli_progress_end(&pr);
	if (rc != 0 && rc != VEIL_EPARTIAL)
		return cli_err("%s", m->errtext);
	cli_msgid(idhex, msg_id);
	printf("%s\n", idhex);
	return rc != 0 ? op_status(m, rc) : 0;
}

static int group_send(struct veil_msgr *m, int argc, char **argv)
{
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid, msg_id;
	char idhex[17];
	size_t len = 0, cap = VEIL_E2E_TEXT_MAX + 1;
	int rc;
	char *text = malloc(cap + 1);
	if (text == NULL)
		return cli_err("out of memory");
	int file =
	    argc > 1 && (strcmp(argv[1], "--file") == 0 || strncmp(argv[1], "--file=", 7) == 0);
	int start = 1;
	if (!file && (rc = cli_text_args("group", &argc, argv, 1, &start)) != 0)
		goto out;
	if (!file && start >= argc) {
		rc = cli_usage_err("group", "group send needs a text");
		goto out;
	}
	if ((rc = cli_group_resolve(m, argv[0], creator, &gid)) != 0)
		goto out;
	if (file) {
		rc = group_send_file(m, creator, gid, argc, argv);
		goto out;
	}
	for (int i = start; i < argc; i++) {
		size_t k = strlen(argv[i]);
		if (i > start && len < cap)
			text[len++] = ' ';
		if (k > cap - len) {
			len = cap;
			break;
		}
		memcpy(text + len, argv[i], k);
		len += k;
	}
	if (len > VEIL_E2E_TEXT_MAX) {
		rc = cli_err("message too long (more than %d bytes)", VEIL_E2E_TEXT_MAX);
		goto out;
	}
	int fd = cli_rpc_connect();
	if (fd >= 0) {
		/* A daemon holds the connection (a login of our own would end it): it sends. */
		char g[VEIL_ID_LEN + 18];
		veil_id_str(g, creator);
		g[VEIL_ID_LEN] = ':';
		cli_msgid(g + VEIL_ID_LEN + 1, gid);
		if (!veil_utf8_valid((const uint8_t *)text, len))
			rc = cli_err("the message is not valid UTF-8 text");
		else
			rc = cli_rpc_sent(
			    cli_rpc_call(fd, "groupSend",
			                 json_pack("{s:s, s:s%}", "group", g, "text", text, len)));
		close(fd);
		goto out;
	}
	rc = veil_msgr_group_send_text(m, creator, gid, text, len, &msg_id);
	if (rc != 0 && rc != VEIL_EPARTIAL) {
		rc = cli_err("%s", m->errtext);
		goto out;
	}
	/* Partly delivered: the message ID still names what the others got. */
	cli_msgid(idhex, msg_id);
	printf("%s\n", idhex);
	if (rc != 0)
		rc = op_status(m, rc);
out:
	free(text);
	return rc;
}

int cmd_group(int argc, char **argv)
{
	struct veil_msgr m;
	int json = 0, rc = 0, n = 0;
	char **args;
	if (argc < 2)
		return cli_usage_err("group", "group needs a subcommand");
	const char *sub = argv[1];
	/*
	 * Positional arguments after the subcommand; --json is the only option,
	 * of list and show. Elsewhere it stays positional, so that group send
	 * refuses it rather than dropping it from the text.
	 */
	int takes_json = strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0;
	if ((args = calloc((size_t)argc, sizeof *args)) == NULL)
		return cli_err("out of memory");
	for (int i = 2; i < argc; i++) {
		if (takes_json && strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			args[n++] = argv[i];
	}
	struct {
		const char *name;
		int min, max; /* positional arguments; max -1: any number */
	} subs[] = {{"create", 1, -1}, {"list", 0, 0},    {"show", 1, 1},  {"add", 2, -1},
	            {"remove", 2, -1}, {"rename", 2, 2},  {"leave", 1, 1}, {"send", 2, -1},
	            {"ack", 2, -1},    {"decline", 2, -1}};
	size_t k;
	for (k = 0; k < VEIL_ARRAY_LEN(subs); k++)
		if (strcmp(subs[k].name, sub) == 0)
			break;
	if (k == VEIL_ARRAY_LEN(subs)) {
		free(args);
		return cli_usage_err("group", "unknown group subcommand");
	}
	if (n < subs[k].min || (subs[k].max >= 0 && n > subs[k].max)) {
		free(args);
		return cli_usage_err("group", "wrong number of arguments");
	}
	if (cli_open(&m) != 0) {
		free(args);
		return 1;
	}
	m.alert_fn = alert;
	m.receiver_fail_fn = receiver_fail;
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	if (strcmp(sub, "create") == 0) {
		rc = group_create(&m, n, args);
	} else if (strcmp(sub, "list") == 0) {
		rc = group_list(&m, json);
	} else if (strcmp(sub, "show") == 0) {
		rc = group_show(&m, args[0], json);
	} else if (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0) {
		rc = group_members(&m, sub[0] == 'a', n, args);
	} else if (strcmp(sub, "rename") == 0) {
		if ((rc = cli_group_resolve(&m, args[0], creator, &gid)) == 0 &&
		    (rc = veil_msgr_group_rename(&m, creator, gid, args[1])) != 0)
			rc = op_status(&m, rc);
	} else if (strcmp(sub, "leave") == 0) {
		if ((rc = cli_group_resolve(&m, args[0], creator, &gid)) == 0 &&
		    (rc = veil_msgr_group_leave(&m, creator, gid)) != 0)
			rc = op_status(&m, rc);
	} else if (strcmp(sub, "send") == 0) {
		rc = group_send(&m, n, args);
	} else {
		uint64_t ids[VEIL_E2E_RECEIPT_MAX_IDS];
		size_t nids;
		uint8_t st = sub[0] == 'a' ? VEIL_RECEIPT_ACK : VEIL_RECEIPT_DECLINE;
		if ((rc = cli_group_resolve(&m, args[0], creator, &gid)) == 0 &&
		    (rc = read_msgids(n - 1, args + 1, ids, &nids)) == 0 &&
		    (rc = veil_msgr_group_send_receipt(&m, creator, gid, st, ids, nids)) != 0)
			rc = op_status(&m, rc);
	}
	veil_msgr_close(&m);
	free(args);
	return rc;
}
