/*
 * veil daemon: holds the one chat connection of $VEIL_HOME, receives all
 * the time (storing and acking as recv does) and serves JSON-RPC 2.0 on
 * the unix socket $VEIL_HOME/daemon.sock, one request or notification per
 * line, in the manner of signal-cli's daemon. Single-threaded: one poll()
 * loop over the signal pipe, the listener, the chat connection and the
 * clients. A request that sends blocks the loop until the server acked it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "veil/e2e.h"
#include "veil/safe.h"

#include "cli.h"

#define DAEMON_MAX_CLIENTS 16
/* A text of 6000 bytes escaped as \uXXXX is 36000 bytes: a line holds any valid request. */
#define DAEMON_LINE_MAX 65536
/* A subscriber that does not read loses its connection rather than our memory. */
#define DAEMON_OUT_MAX (4u << 20)
#define DAEMON_LOG_LIMIT_MAX 1000
#define DAEMON_LOG_LIMIT_DEFAULT 50
#define DAEMON_MAX_PENDING_FILES 256
/* How long the daemon leaves the connection to another login that ended its own. */
#define DAEMON_YIELD_MS 10000
/* How often the daemon looks whether a Safe backup is due (veil_backup_run decides). */
#define DAEMON_BACKUP_CHECK_MS (10u * 60u * 1000u)

/* JSON-RPC 2.0 error codes; application errors use the CLI's exit statuses (1, 3). */
enum {
	RPC_PARSE = -32700,
	RPC_INVALID = -32600,
	RPC_NO_METHOD = -32601,
	RPC_BAD_PARAMS = -32602,
	RPC_FAILED = 1,
	RPC_PARTIAL = CLI_EXIT_PARTIAL,
};

struct client {
	int fd;
	int subscribed;
	int closing; /* close once out is written */
	char *in;
	size_t inlen;
	char *out;
	size_t outlen;
};

struct dfile {
	uint8_t *body;
	size_t len;
	int group;
	json_t *ev; /* the event's JSON, completed after the download */
};

struct cli_daemon {
	struct veil_msgr m;
	int open; /* m holds a profile */
	int quiet;
	int lock_fd;
	int lfd;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct client cl[DAEMON_MAX_CLIENTS];
	struct veil_backoff bo;
	uint64_t next_connect;
	int was_connected;
	uint64_t conn_gen; /* the connection was_connected is about (veil_msgr_session_gen) */
	json_t *failed;    /* group sends: receivers that missed out */
	json_t *alerts;    /* server alerts during a request */
	struct dfile files[DAEMON_MAX_PENDING_FILES];
	size_t nfiles;
	uint64_t next_backup; /* veil_mono_ms() of the next backup check, 0 = at once */
	int backup_said;      /* the state of backups was logged once */
};

static void dlog(struct cli_daemon *d, const char *fmt, ...) VEIL_PRINTF(2, 3);
static void dlog(struct cli_daemon *d, const char *fmt, ...)
{
	va_list ap;
	if (d->quiet)
		return;
	fprintf(stderr, "%s daemon: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* --- output to clients --- */

static void client_drop(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

/* Queues one JSON value as a line for c (steals o); a client over its limit is dropped. */
static void client_put(struct client *c, json_t *o)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s == NULL || c->fd < 0) {
		free(s);
		return;
	}
	size_t n = strlen(s);
	char *p = c->outlen + n + 1 <= DAEMON_OUT_MAX ? realloc(c->out, c->outlen + n + 1) : NULL;
	if (p == NULL) {
		free(s);
		client_drop(c);
		return;
	}
	memcpy(p + c->outlen, s, n);
	p[c->outlen + n] = '\n';
	c->out = p;
	c->outlen += n + 1;
	free(s);
}

static void client_flush(struct client *c)
{
	while (c->fd >= 0 && c->outlen > 0) {
		ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w <= 0) {
			client_drop(c);
			return;
		}
		memmove(c->out, c->out + w, c->outlen - (size_t)w);
		c->outlen -= (size_t)w;
	}
	if (c->fd >= 0 && c->closing && c->outlen == 0)
		client_drop(c);
}

static json_t *rpc_error(json_t *id, int code, const char *msg, json_t *data)
{
	json_t *e = json_pack("{s:i, s:s}", "code", code, "message", msg);
	if (e != NULL && data != NULL)
		json_object_set_new(e, "data", data);
	else
		json_decref(data);
	return json_pack("{s:s, s:O?, s:o}", "jsonrpc", "2.0", "id", id, "error", e);
}

static json_t *rpc_result(json_t *id, json_t *result)
{
	return json_pack("{s:s, s:O?, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

/* --- events from the chat connection --- */

static void notify(struct cli_daemon *d, json_t *ev)
{
	for (size_t i = 0; i < DAEMON_MAX_CLIENTS; i++)
		if (d->cl[i].fd >= 0 && d->cl[i].subscribed)
			client_put(&d->cl[i], json_pack("{s:s, s:s, s:O}", "jsonrpc", "2.0",
			                                "method", "receive", "params", ev));
	json_decref(ev);
}

static int on_event(const struct veil_msgr_event *ev, void *ctx)
{
	struct cli_daemon *d = ctx;
	char id[17];
	switch (ev->kind) {
	case VEIL_MSGR_EV_MESSAGE:
		if (!ev->raw && (ev->type == VEIL_E2E_FILE || ev->type == VEIL_E2E_GROUP_FILE) &&
		    d->nfiles < DAEMON_MAX_PENDING_FILES) {
			/* Downloaded after the payloads at hand, as recv does after the queue. */
			struct dfile *f = &d->files[d->nfiles];
			f->body = malloc(ev->body_len > 0 ? ev->body_len : 1);
			f->ev = cli_event_json(&d->m, ev);
			if (f->body != NULL && f->ev != NULL) {
				memcpy(f->body, ev->body, ev->body_len);
				f->len = ev->body_len;
				f->group = ev->group;
				d->nfiles++;
				break;
			}
			free(f->body);
			json_decref(f->ev);
		}
		notify(d, cli_event_json(&d->m, ev));
		break;
	case VEIL_MSGR_EV_ALERT: dlog(d, "%s", ev->errtext); break;
	case VEIL_MSGR_EV_ERROR:
		cli_msgid(id, ev->msg_id);
		if (ev->from[0] != 0)
			dlog(d, "%s (message %s)", ev->errtext, id);
		else
			dlog(d, "%s", ev->errtext);
		break;
	}
	return 0;
}

/* Downloads the queued file messages into $VEIL_HOME/files, then tells the subscribers. */
static void download_files(struct cli_daemon *d)
{
	char dir[VEIL_PROFILE_PATH_MAX + 8], path[VEIL_PROFILE_PATH_MAX];
	snprintf(dir, sizeof dir, "%s/files", d->m.prof.home);
	for (size_t i = 0; i < d->nfiles; i++) {
		struct dfile *f = &d->files[i];
		struct veil_e2e_file *ef = malloc(sizeof *ef);
		if (ef != NULL && veil_e2e_file_decode(f->body, f->len, ef) == 0) {
			json_object_set_new(f->ev, "name", json_string(ef->name));
			json_object_set_new(f->ev, "mime", json_string(ef->mime));
			json_object_set_new(f->ev, "size", json_integer((json_int_t)ef->size));
			if (ef->caption[0])
				json_object_set_new(f->ev, "caption", json_string(ef->caption));
		}
		if (ef != NULL) {
			sodium_memzero(ef, sizeof *ef);
			free(ef);
		}
		/* Group blobs are shared by all members: only 1:1 blobs are marked done. */
		if (veil_msgr_file_download(&d->m, f->body, f->len, dir, !f->group, NULL, NULL,
		                            path, sizeof path) == 0) {
			json_object_set_new(f->ev, "path", json_string(path));
		} else {
			dlog(d, "file not saved: %s", d->m.errtext);
			json_object_set_new(f->ev, "error", json_string(d->m.errtext));
		}
		free(f->body);
		notify(d, f->ev);
	}
	d->nfiles = 0;
}

/* --- requests --- */

/* An ID in any case; 0 or -1. */
static int parse_id(uint8_t id[static VEIL_ID_LEN], const char *s)
{
	char up[VEIL_ID_LEN + 1];
	if (strlen(s) != VEIL_ID_LEN)
		return -1;
	for (size_t i = 0; i < VEIL_ID_LEN; i++)
		up[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
	up[VEIL_ID_LEN] = 0;
	return veil_id_parse(id, up);
}

struct gfind {
	uint64_t gid;
	const uint8_t *creator;
	size_t n;
	uint8_t found[VEIL_ID_LEN];
};

static int gfind_fn(const struct veil_group *g, void *ctx)
{
	struct gfind *f = ctx;
	if (g->gid == f->gid &&
	    (f->creator == NULL || memcmp(f->creator, g->creator, VEIL_ID_LEN) == 0) && f->n++ == 0)
		memcpy(f->found, g->creator, VEIL_ID_LEN);
	return 0;
}

/* "GID" or "CREATOR:GID" as 'veil group' takes it; 0, or an RPC code with why set. */
static int find_group(struct cli_daemon *d, const char *arg, uint8_t creator[static VEIL_ID_LEN],
                      uint64_t *gid, char *why, size_t cap)
{
	struct gfind f = {0};
	uint8_t c[VEIL_ID_LEN], b[8];
	const char *hex = arg, *colon = strchr(arg, ':');
	if (colon != NULL) {
		char ids[VEIL_ID_LEN + 1];
		if (colon - arg != VEIL_ID_LEN)
			goto bad;
		memcpy(ids, arg, VEIL_ID_LEN);
		ids[VEIL_ID_LEN] = 0;
		if (parse_id(c, ids) != 0)
			goto bad;
		f.creator = c;
		hex = colon + 1;
	}
	if (strlen(hex) != 16 || veil_hex_decode(b, sizeof b, hex, 16) != 0)
		goto bad;
	f.gid = veil_load_u64le(b);
	if (veil_profile_group_list(&d->m.prof, gfind_fn, &f) != 0)
		return snprintf(why, cap, "cannot read the groups"), RPC_FAILED;
	if (f.n == 0)
		return snprintf(why, cap, "unknown group %s (see 'veil group list')", hex),
		       RPC_FAILED;
	if (f.n > 1)
		return snprintf(why, cap, "%d groups have the ID %s: name one as CREATOR:%s",
		                (int)f.n, hex, hex),
		       RPC_FAILED;
	memcpy(creator, f.found, VEIL_ID_LEN);
	*gid = f.gid;
	return 0;
bad:
	snprintf(why, cap, "invalid group '%.40s': expected 16 hex digits or CREATOR:GID", arg);
	return RPC_BAD_PARAMS;
}

static void alert_fn(const char *text, void *ctx)
{
	struct cli_daemon *d = ctx;
	json_array_append_new(d->alerts, json_string(text));
}

static void receiver_fail_fn(const uint8_t id[VEIL_ID_LEN], int unreachable, const char *why,
                             void *ctx)
{
	struct cli_daemon *d = ctx;
	json_array_append_new(d->failed,
	                      json_pack("{s:s#, s:b, s:s}", "member", (const char *)id,
	                                (int)VEIL_ID_LEN, "unreachable", unreachable, "why", why));
}

/* Optional string member: 0 (absent: *out NULL), or -1 if present but not a string. */
static int opt_str(json_t *params, const char *key, const char **out)
{
	json_t *v = json_object_get(params, key);
	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -1;
	*out = json_string_value(v);
	return 0;
}

/* What a request answers: a result, or an error code with its message (and data). */
struct answer {
	json_t *result;
	int code;
	char msg[VEIL_MSGR_ERRTEXT_MAX + 64];
	json_t *data;
};

static void fail(struct answer *a, int code, const char *fmt, ...) VEIL_PRINTF(3, 4);
static void fail(struct answer *a, int code, const char *fmt, ...)
{
	va_list ap;
	a->code = code;
	va_start(ap, fmt);
	vsnprintf(a->msg, sizeof a->msg, fmt, ap);
	va_end(ap);
}

/* The body of send and groupSend: text, or file with an optional caption. */
struct content {
	const char *text, *file, *caption;
	size_t text_len; /* a text may hold NUL characters */
};

static int get_content(json_t *p, struct content *ct, struct answer *a)
{
	if (opt_str(p, "text", &ct->text) != 0 || opt_str(p, "file", &ct->file) != 0 ||
	    opt_str(p, "caption", &ct->caption) != 0)
		return fail(a, RPC_BAD_PARAMS, "text, file and caption must be strings"), -1;
	if ((ct->text == NULL) == (ct->file == NULL))
		return fail(a, RPC_BAD_PARAMS, "give either text or file"), -1;
	if (ct->caption != NULL && ct->file == NULL)
		return fail(a, RPC_BAD_PARAMS, "caption goes only with file"), -1;
	ct->text_len = ct->text != NULL ? json_string_length(json_object_get(p, "text")) : 0;
	if (ct->text != NULL && ct->text_len == 0)
		return fail(a, RPC_BAD_PARAMS, "empty message"), -1;
	if (ct->file != NULL && ct->file[0] == 0)
		return fail(a, RPC_BAD_PARAMS, "file needs a path"), -1;
	return 0;
}

static void m_send(struct cli_daemon *d, json_t *p, struct answer *a)
{
	struct content ct = {0};
	const char *to_s;
	uint8_t to[VEIL_ID_LEN];
	uint64_t msg_id;
	char hex[17];
	int rc;
	if (opt_str(p, "to", &to_s) != 0 || to_s == NULL)
		return fail(a, RPC_BAD_PARAMS, "send needs 'to', an ID");
	if (parse_id(to, to_s) != 0)
		return fail(a, RPC_BAD_PARAMS, "invalid ID '%.40s' (8 characters: A-Z, 0-9)", to_s);
	if (get_content(p, &ct, a) != 0)
		return;
	if (ct.text != NULL) {
		rc = veil_msgr_send_text(&d->m, to, ct.text, ct.text_len, &msg_id);
	} else {
		struct veil_file_opts o = {.caption = ct.caption};
		rc = veil_msgr_send_file(&d->m, to, ct.file, &o, &msg_id);
	}
	if (rc != 0)
		return fail(a, RPC_FAILED, "%s", d->m.errtext);
	cli_msgid(hex, msg_id);
	a->result = json_pack("{s:s}", "id", hex);
}

static void m_group_send(struct cli_daemon *d, json_t *p, struct answer *a)
{
	struct content ct = {0};
	const char *g_s;
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid, msg_id = 0;
	char hex[17], why[256];
	int rc;
	if (opt_str(p, "group", &g_s) != 0 || g_s == NULL)
		return fail(a, RPC_BAD_PARAMS, "groupSend needs 'group', a group ID");
	if ((rc = find_group(d, g_s, creator, &gid, why, sizeof why)) != 0)
		return fail(a, rc, "%s", why);
	if (get_content(p, &ct, a) != 0)
		return;
	if (ct.text != NULL) {
		rc = veil_msgr_group_send_text(&d->m, creator, gid, ct.text, ct.text_len, &msg_id);
	} else {
		struct veil_file_opts o = {.caption = ct.caption};
		rc = veil_msgr_group_send_file(&d->m, creator, gid, ct.file, &o, &msg_id);
	}
	if (rc != 0 && rc != VEIL_EPARTIAL)
		return fail(a, RPC_FAILED, "%s", d->m.errtext);
	cli_msgid(hex, msg_id);
	json_t *r = json_pack("{s:s, s:O}", "id", hex, "failed", d->failed);
	if (rc == 0) {
		a->result = r;
		return;
	}
	/* Partly delivered: the ID still names what the others got. */
	fail(a, RPC_PARTIAL, "%s", d->m.errtext);
	a->data = r;
}

static void m_mark_read(struct cli_daemon *d, json_t *p, struct answer *a)
{
	const char *to_s;
	uint8_t to[VEIL_ID_LEN];
	uint64_t ids[VEIL_E2E_RECEIPT_MAX_IDS];
	size_t n = 0, i;
	json_t *arr = json_object_get(p, "ids"), *v;
	if (opt_str(p, "to", &to_s) != 0 || to_s == NULL || parse_id(to, to_s) != 0)
		return fail(a, RPC_BAD_PARAMS, "markRead needs 'to', an ID");
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > VEIL_ARRAY_LEN(ids))
		return fail(a, RPC_BAD_PARAMS, "markRead needs 'ids', 1 to %d message IDs",
		            (int)VEIL_ARRAY_LEN(ids));
	json_array_foreach(arr, i, v)
	{
		uint8_t b[8];
		const char *s = json_string_value(v);
		if (s == NULL || strlen(s) != 16 || veil_hex_decode(b, 8, s, 16) != 0)
			return fail(a, RPC_BAD_PARAMS, "a message ID is 16 hex digits");
		ids[n++] = veil_load_u64le(b);
	}
	/* The receipt (if the settings allow it), the other devices, the log's read state. */
	if (veil_msgr_mark_read(&d->m, to, ids, n) != 0)
		fail(a, RPC_FAILED, "%s", d->m.errtext);
	else
		a->result = json_true();
}

static void m_mark_conv_read(struct cli_daemon *d, json_t *p, struct answer *a)
{
	const char *peer_s;
	uint8_t peer[VEIL_ID_LEN];
	size_t n = 0;
	if (opt_str(p, "peer", &peer_s) != 0 || peer_s == NULL || parse_id(peer, peer_s) != 0)
		return fail(a, RPC_BAD_PARAMS, "markConversationRead needs 'peer', an ID");
	if (veil_msgr_read_conversation(&d->m, peer, &n) != 0)
		fail(a, RPC_FAILED, "%s", d->m.errtext);
	else
		a->result = json_integer((json_int_t)n);
}

static int contact_fn(const struct veil_contact *c, void *ctx)
{
	char id[VEIL_ID_LEN + 1], pk[VEIL_HEX_LEN(VEIL_KEY_LEN)], date[32];
	veil_id_str(id, c->id);
	if (veil_hex_encode(pk, sizeof pk, c->pk, VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	cli_date(date, c->first_seen_ms);
	return json_array_append_new(ctx,
	                             json_pack("{s:s, s:s, s:s, s:s}", "id", id, "public_key", pk,
	                                       "first_seen", date, "nickname", c->nickname)) != 0
	           ? VEIL_ENOMEM
	           : 0;
}

struct group_list {
	json_t *arr;
	const uint8_t *me;
};

static int group_fn(const struct veil_group *g, void *ctx)
{
	struct group_list *l = ctx;
	char gh[17], cs[VEIL_ID_LEN + 1];
	cli_msgid(gh, g->gid);
	veil_id_str(cs, g->creator);
	json_t *mem = json_array();
	for (size_t i = 0; i < g->n_members; i++)
		json_array_append_new(mem, json_stringn((const char *)g->members[i], VEIL_ID_LEN));
	return json_array_append_new(l->arr,
	                             json_pack("{s:s, s:s, s:s, s:o, s:b, s:b}", "id", gh,
	                                       "creator", cs, "name", g->name, "members", mem,
	                                       "left", g->left, "created_by_you",
	                                       memcmp(g->creator, l->me, VEIL_ID_LEN) == 0)) != 0
	           ? VEIL_ENOMEM
	           : 0;
}

struct log_list {
	json_t *arr;
	size_t limit;
	const uint8_t *creator; /* group filter, or NULL */
	uint64_t gid;
};

static int log_fn(const struct veil_log_entry *e, void *ctx)
{
	struct log_list *l = ctx;
	char peer[VEIL_ID_LEN + 1], date[32], id[17], tbuf[8];
	int raw = e->dir == VEIL_LOG_IN && e->status == VEIL_LOG_RAW;
	const uint8_t *text = NULL;
	size_t text_len = 0;
	json_t *group = NULL;
	if (!raw && veil_e2e_group_container(e->type) == VEIL_GROUP_CONTAINER_MEMBER) {
		uint8_t creator[VEIL_ID_LEN];
		uint64_t gid;
		const uint8_t *inner;
		size_t n;
		if (veil_e2e_group_member_unwrap(e->body, e->body_len, creator, &gid, &inner, &n) ==
		    0) {
			char gh[17];
			if (l->creator != NULL &&
			    (gid != l->gid || memcmp(creator, l->creator, VEIL_ID_LEN) != 0))
				return 0;
			cli_msgid(gh, gid);
			group = json_pack("{s:s, s:s#}", "id", gh, "creator", (const char *)creator,
			                  (int)VEIL_ID_LEN);
			if (e->type == VEIL_E2E_GROUP_TEXT) {
				text = inner;
				text_len = n;
			}
		}
	} else if (!raw && e->type == VEIL_E2E_TEXT) {
		text = e->body;
		text_len = e->body_len;
	}
	if (l->creator != NULL && group == NULL)
		return 0;
	veil_id_str(peer, e->peer);
	cli_date(date, e->date_ms);
	cli_msgid(id, e->msg_id);
	json_t *o =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "dir",
	              e->dir == VEIL_LOG_OUT ? "out" : "in", "peer", peer, "id", id, "date", date,
	              "type", raw && e->type == 0 ? "undecrypted" : cli_type(tbuf, e->type),
	              "type_code", (int)e->type, "status", raw ? 0 : e->status);
	if (o == NULL) {
		json_decref(group);
		return VEIL_ENOMEM;
	}
	if (raw) {
		json_object_set_new(o, "raw", json_true());
		json_object_set_new(o, "size", json_integer((json_int_t)e->body_len));
	}
	if (group != NULL)
		json_object_set_new(o, "group", group);
	if (text != NULL && veil_utf8_valid(text, text_len))
		json_object_set_new(o, "text", json_stringn((const char *)text, text_len));
	/* Only the last `limit` entries are kept. */
	if (json_array_append_new(l->arr, o) != 0)
		return VEIL_ENOMEM;
	if (json_array_size(l->arr) > l->limit)
		json_array_remove(l->arr, 0);
	return 0;
}

static void m_log(struct cli_daemon *d, json_t *p, struct answer *a)
{
	const char *peer_s, *g_s;
	uint8_t peer[VEIL_ID_LEN], creator[VEIL_ID_LEN];
	struct log_list l = {.limit = DAEMON_LOG_LIMIT_DEFAULT};
	json_t *lim = json_object_get(p, "limit");
	char why[256];
	int rc;
	if (opt_str(p, "peer", &peer_s) != 0 || opt_str(p, "group", &g_s) != 0)
		return fail(a, RPC_BAD_PARAMS, "peer and group must be strings");
	if (peer_s != NULL && parse_id(peer, peer_s) != 0)
		return fail(a, RPC_BAD_PARAMS, "invalid ID '%.40s' (8 characters: A-Z, 0-9)",
		            peer_s);
	if (peer_s != NULL && g_s != NULL)
		return fail(a, RPC_BAD_PARAMS, "give peer or group, not both");
	if (lim != NULL) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > DAEMON_LOG_LIMIT_MAX)
			return fail(a, RPC_BAD_PARAMS, "limit must be an integer from 1 to %d",
			            DAEMON_LOG_LIMIT_MAX);
		l.limit = (size_t)json_integer_value(lim);
	}
	if (g_s != NULL) {
		if ((rc = find_group(d, g_s, creator, &l.gid, why, sizeof why)) != 0)
			return fail(a, rc, "%s", why);
		l.creator = creator;
	}
	l.arr = json_array();
	rc = veil_profile_log_list(&d->m.prof, peer_s != NULL ? peer : NULL, log_fn, &l);
	if (rc != 0) {
		json_decref(l.arr);
		return fail(a, RPC_FAILED, "cannot read the message log: %s", veil_strerror(rc));
	}
	a->result = l.arr;
}

/* Handles one parsed request of client c; NULL if it was a notification. */
static json_t *dispatch(struct cli_daemon *d, struct client *c, json_t *req)
{
	struct answer a = {0};
	json_t *id = json_object_get(req, "id"), *params, *out;
	const char *method;
	int is_call = id != NULL;
	if (!json_is_object(req))
		return rpc_error(NULL, RPC_INVALID, "invalid request: not an object", NULL);
	if (id != NULL && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id))
		return rpc_error(NULL, RPC_INVALID, "invalid request: bad id", NULL);
	if (!json_is_string(json_object_get(req, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(req, "jsonrpc")), "2.0") != 0)
		return rpc_error(id, RPC_INVALID, "invalid request: jsonrpc must be \"2.0\"", NULL);
	if (!json_is_string(json_object_get(req, "method")))
		return rpc_error(id, RPC_INVALID, "invalid request: no method", NULL);
	method = json_string_value(json_object_get(req, "method"));
	params = json_object_get(req, "params");
	if (params != NULL && !json_is_object(params)) {
		fail(&a, RPC_BAD_PARAMS, "params must be an object");
		goto done;
	}
	json_t *empty = params == NULL ? json_object() : NULL;
	if (params == NULL)
		params = empty;
	d->failed = json_array();
	d->alerts = json_array();
	d->m.alert_fn = alert_fn;
	d->m.alert_ctx = d;
	d->m.receiver_fail_fn = receiver_fail_fn;
	d->m.receiver_fail_ctx = d;
	if (strcmp(method, "version") == 0) {
		char me[VEIL_ID_LEN + 1];
		veil_id_str(me, d->m.prof.id);
		a.result = json_pack("{s:s, s:s}", "version", CLI_VERSION, "account", me);
	} else if (strcmp(method, "send") == 0) {
		m_send(d, params, &a);
	} else if (strcmp(method, "groupSend") == 0) {
		m_group_send(d, params, &a);
	} else if (strcmp(method, "markRead") == 0) {
		m_mark_read(d, params, &a);
	} else if (strcmp(method, "markConversationRead") == 0) {
		m_mark_conv_read(d, params, &a);
	} else if (strcmp(method, "listContacts") == 0) {
		json_t *arr = json_array();
		if (veil_profile_contact_list(&d->m.prof, contact_fn, arr) != 0) {
			json_decref(arr);
			fail(&a, RPC_FAILED, "cannot read the contacts");
		} else {
			a.result = arr;
		}
	} else if (strcmp(method, "listGroups") == 0) {
		struct group_list gl = {.arr = json_array(), .me = d->m.prof.id};
		if (veil_profile_group_list(&d->m.prof, group_fn, &gl) != 0) {
			json_decref(gl.arr);
			fail(&a, RPC_FAILED, "cannot read the groups");
		} else {
			a.result = gl.arr;
		}
	} else if (strcmp(method, "log") == 0) {
		m_log(d, params, &a);
	} else if (strcmp(method, "subscribe") == 0) {
		c->subscribed = 1;
		a.result = json_true();
	} else if (strcmp(method, "unsubscribe") == 0) {
		c->subscribed = 0;
		a.result = json_true();
	} else {
		fail(&a, RPC_NO_METHOD, "method not found: %.64s", method);
	}
	/* Alerts the server sent during the request go with its answer. */
	if (json_array_size(d->alerts) > 0) {
		if (a.result != NULL && json_is_object(a.result))
			json_object_set(a.result, "alerts", d->alerts);
		else if (a.code != 0 && a.data == NULL)
			a.data = json_pack("{s:O}", "alerts", d->alerts);
		else if (a.data != NULL)
			json_object_set(a.data, "alerts", d->alerts);
	}
	json_decref(d->failed);
	json_decref(d->alerts);
	d->failed = d->alerts = NULL;
	json_decref(empty);
done:
	if (!is_call) {
		json_decref(a.result);
		json_decref(a.data);
		return NULL;
	}
	if (a.code != 0) {
		json_decref(a.result);
		out = rpc_error(id, a.code, a.msg, a.data);
	} else {
		out = rpc_result(id, a.result != NULL ? a.result : json_null());
	}
	return out;
}

static void handle_line(struct cli_daemon *d, struct client *c, const char *line, size_t len)
{
	json_error_t err;
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	json_t *req = json_loadb(line, len, 0, &err);
	json_t *out;
	if (req == NULL)
		out = rpc_error(NULL, RPC_PARSE, "parse error: not JSON", NULL);
	else if (json_is_array(req))
		out = rpc_error(NULL, RPC_INVALID, "invalid request: batches are not supported",
		                NULL);
	else
		out = dispatch(d, c, req);
	json_decref(req);
	if (out != NULL)
		client_put(c, out);
}

static void client_read(struct cli_daemon *d, struct client *c)
{
	char buf[8192];
	ssize_t r = recv(c->fd, buf, sizeof buf, 0);
	if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (r <= 0) {
		client_drop(c);
		return;
	}
	for (ssize_t i = 0; i < r && c->fd >= 0 && !c->closing; i++) {
		if (buf[i] == '\n') {
			handle_line(d, c, c->in, c->inlen);
			c->inlen = 0;
			continue;
		}
		if (c->inlen >= DAEMON_LINE_MAX) {
			/* The rest of the line cannot be told from the next request: close. */
			client_put(c, rpc_error(NULL, RPC_INVALID,
			                        "invalid request: line longer than 65536 bytes",
			                        NULL));
			c->closing = 1;
			break;
		}
		c->in[c->inlen++] = buf[i];
	}
}

static void accept_client(struct cli_daemon *d)
{
	int fd = accept(d->lfd, NULL, NULL);
	if (fd < 0)
		return;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		close(fd);
		return;
	}
	for (size_t i = 0; i < DAEMON_MAX_CLIENTS; i++) {
		struct client *c = &d->cl[i];
		if (c->fd >= 0)
			continue;
		if ((c->in = malloc(DAEMON_LINE_MAX)) == NULL)
			break;
		c->fd = fd;
		return;
	}
	static const char busy[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":1,"
	                           "\"message\":\"too many clients of the daemon\"}}\n";
	(void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
	close(fd);
}

/* --- lifecycle --- */

void cli_daemon_free(struct cli_daemon *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < DAEMON_MAX_CLIENTS; i++)
		if (d->cl[i].fd >= 0)
			client_drop(&d->cl[i]);
	for (size_t i = 0; i < d->nfiles; i++) {
		free(d->files[i].body);
		json_decref(d->files[i].ev);
	}
	if (d->lfd >= 0) {
		close(d->lfd);
		unlink(d->sock_path);
	}
	if (d->open)
		veil_msgr_close(&d->m);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	free(d);
}

struct cli_daemon *cli_daemon_open(int quiet)
{
	char home[VEIL_PROFILE_PATH_MAX], lock[VEIL_PROFILE_PATH_MAX + 16];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct cli_daemon *d = calloc(1, sizeof *d);
	if (d == NULL)
		return cli_err("out of memory"), NULL;
	d->quiet = quiet;
	d->lock_fd = d->lfd = -1;
	for (size_t i = 0; i < DAEMON_MAX_CLIENTS; i++)
		d->cl[i].fd = -1;
	if (veil_profile_home(home, sizeof home) != 0) {
		cli_err("not initialised: set VEIL_HOME or HOME");
		goto fail;
	}
	if (cli_open(&d->m) != 0)
		goto fail;
	d->open = 1;
	/* One daemon per profile: the lock is held for the daemon's life, and dies with it. */
	snprintf(lock, sizeof lock, "%s/daemon.lock", home);
	if ((d->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		cli_err("cannot open %s: %s", lock, strerror(errno));
		goto fail;
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			cli_err("a daemon already runs for %s", home);
		else
			cli_err("cannot lock %s: %s", lock, strerror(errno));
		goto fail;
	}
	if ((size_t)snprintf(d->sock_path, sizeof d->sock_path, "%s/daemon.sock", home) >=
	    sizeof d->sock_path) {
		cli_err("the socket path %s/daemon.sock is too long for a unix socket", home);
		goto fail;
	}
	memcpy(sa.sun_path, d->sock_path, sizeof sa.sun_path);
	/* A socket left by a daemon that died: we hold the lock, so it is no one's. */
	unlink(d->sock_path);
	if ((d->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		cli_err("cannot create a unix socket: %s", strerror(errno));
		goto fail;
	}
	mode_t old = umask(0177);
	int brc = bind(d->lfd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (brc != 0 || chmod(d->sock_path, 0600) != 0 || listen(d->lfd, 8) != 0) {
		cli_err("cannot listen on %s: %s", d->sock_path, strerror(errno));
		close(d->lfd);
		d->lfd = -1;
		goto fail;
	}
	if (veil_msgr_session_start(&d->m, on_event, d) != 0) {
		cli_err("%s", d->m.errtext);
		goto fail;
	}
	veil_backoff_init(&d->bo, VEIL_BACKOFF_BASE_MS, VEIL_BACKOFF_MAX_MS);
	return d;
fail:
	cli_daemon_free(d);
	return NULL;
}

const char *cli_daemon_socket(const struct cli_daemon *d)
{
	return d->sock_path;
}

/* Connects (or reconnects, with backoff) when it is time; logs the change of state. */
static void maybe_connect(struct cli_daemon *d)
{
	if (veil_msgr_session_fd(&d->m) >= 0 &&
	    (d->was_connected != 1 || veil_msgr_session_gen(&d->m) != d->conn_gen)) {
		/*
		 * A send took the connection back first, or lost it while waiting
		 * for its ack and opened another (to the next chat node, maybe).
		 */
		dlog(d, "connected to %s:%u", veil_profile_chat_host(&d->m.prof),
		     veil_profile_chat_port(&d->m.prof));
		veil_backoff_reset(&d->bo);
		d->was_connected = 1;
		d->conn_gen = veil_msgr_session_gen(&d->m);
	}
	if (veil_msgr_session_fd(&d->m) >= 0 || veil_mono_ms() < d->next_connect)
		return;
	if (veil_msgr_session_connect(&d->m) != 0) {
		uint32_t delay = veil_backoff_next(&d->bo);
		/* A server that refuses the key or the login will not change its mind soon. */
		if (d->m.errtext[0] &&
		    (strstr(d->m.errtext, "wrong server key") ||
		     strstr(d->m.errtext, "refused the login") || strstr(d->m.errtext, "clock is")))
			delay = 60000;
		d->next_connect = veil_mono_ms() + delay;
		if (d->was_connected != -1)
			dlog(d, "%s (retrying)", d->m.errtext);
		d->was_connected = -1;
		return;
	}
	veil_backoff_reset(&d->bo);
	if (d->was_connected != 1 || veil_msgr_session_gen(&d->m) != d->conn_gen)
		dlog(d, "connected to %s:%u", veil_profile_chat_host(&d->m.prof),
		     veil_profile_chat_port(&d->m.prof));
	d->was_connected = 1;
	d->conn_gen = veil_msgr_session_gen(&d->m);
}

/*
 * Uploads a Safe backup when one is due (configured with 'veil backup
 * config'; at most daily, and only after changes or half the retention
 * time). Blocks the loop for the upload, as a send does.
 */
static void maybe_backup(struct cli_daemon *d)
{
	char err[512];
	if (veil_mono_ms() < d->next_backup)
		return;
	d->next_backup = veil_mono_ms() + DAEMON_BACKUP_CHECK_MS;
	int rc = veil_backup_run(&d->m.prof, 0, err, sizeof err);
	if (rc == VEIL_ENOTFOUND)
		return; /* no backups configured */
	if (rc < 0) {
		dlog(d, "backup failed: %s (retrying in %u min)", err,
		     DAEMON_BACKUP_CHECK_MS / 60000u);
	} else if (rc == 0) {
		struct veil_backup_cfg c;
		if (veil_backup_cfg_load(&d->m.prof, &c) == 0)
			dlog(d, "backup uploaded (%llu bytes)", (unsigned long long)c.last_size);
		veil_backup_cfg_wipe(&c);
	} else if (!d->backup_said) {
		dlog(d, "backup up to date");
	}
	d->backup_said = 1;
}

int cli_daemon_run(struct cli_daemon *d, int stop_fd)
{
	struct pollfd pf[3 + DAEMON_MAX_CLIENTS];
	for (;;) {
		maybe_connect(d);
		int cfd = veil_msgr_session_fd(&d->m);
		size_t n = 0, first_client;
		pf[n++] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = d->lfd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = cfd, .events = POLLIN};
		first_client = n;
		for (size_t i = 0; i < DAEMON_MAX_CLIENTS; i++)
			pf[n++] = (struct pollfd){
			    .fd = d->cl[i].fd,
			    .events = (short)(POLLIN | (d->cl[i].outlen ? POLLOUT : 0))};
		int timeout = 20000;
		if (cfd < 0) {
			uint64_t now = veil_mono_ms();
			timeout = d->next_connect > now ? (int)(d->next_connect - now) : 0;
		}
		if (poll(pf, n, timeout) < 0 && errno != EINTR) {
			cli_err("poll: %s", strerror(errno));
			return 1;
		}
		if (pf[0].revents)
			return 0;
		/* Pumped every turn: echo requests keep the connection alive, frames already read get handled. */
		if (cfd >= 0 && veil_msgr_session_pump(&d->m, 0) != 0) {
			uint64_t delay = veil_backoff_next(&d->bo);
			/*
			 * Ended by the server (another login of this identity, say a
			 * 'veil recv' or 'veil group create'): let that one finish its
			 * work before taking the connection back.
			 */
			if (strncmp(d->m.errtext, "server closed the connection", 28) == 0)
				delay = DAEMON_YIELD_MS;
			dlog(d, "%s (reconnecting in %u s)", d->m.errtext,
			     (unsigned)(delay + 999) / 1000);
			d->was_connected = 0;
			d->next_connect = veil_mono_ms() + delay;
		}
		if (d->nfiles > 0)
			download_files(d);
		maybe_backup(d);
		if (pf[1].revents & POLLIN)
			accept_client(d);
		for (size_t i = 0; i < DAEMON_MAX_CLIENTS; i++) {
			struct client *c = &d->cl[i];
			short re = pf[first_client + i].revents;
			if (c->fd < 0 || c->fd != pf[first_client + i].fd)
				continue;
			if (re & (POLLIN | POLLHUP | POLLERR))
				client_read(d, c);
		}
		for (size_t i = 0; i < DAEMON_MAX_CLIENTS; i++)
			if (d->cl[i].fd >= 0)
				client_flush(&d->cl[i]);
	}
}

/* --- veil daemon --- */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int e = errno;
	(void)sig;
	(void)!write(sig_pipe[1], "x", 1);
	errno = e;
}

int cmd_daemon(int argc, char **argv)
{
	int quiet = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
			quiet = 1;
		else
			return cli_usage_err("daemon", "unexpected argument");
	}
	if (pipe(sig_pipe) != 0 || fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK) != 0)
		return cli_err("cannot create a pipe: %s", strerror(errno));
	struct cli_daemon *d = cli_daemon_open(quiet);
	if (d == NULL)
		return 1;
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	dlog(d, "listening on %s", cli_daemon_socket(d));
	int rc = cli_daemon_run(d, sig_pipe[0]);
	cli_daemon_free(d);
	if (!quiet && rc == 0)
		fprintf(stderr, "%s daemon: stopped\n", cli_prog);
	return rc;
}
