/* The admin socket (see admin.h). */
#define _GNU_SOURCE /* struct ucred for SO_PEERCRED */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "veil/util.h"

#define ADMIN_MAX_DEPTH 4

static const struct {
	const char *name;
	veil_admin_fn fn;
} commands[] = {
    {"invite.create", veil_admin_invite_create},
    {"invite.list", veil_admin_invite_list},
    {"invite.revoke", veil_admin_invite_revoke},
    {"id.list", veil_admin_id_list},
    {"id.show", veil_admin_id_show},
    {"id.block", veil_admin_id_block},
    {"id.unblock", veil_admin_id_unblock},
    {"id.delete", veil_admin_id_delete},
    {"id.revoke", veil_admin_id_revoke},
    {"status", veil_admin_status},
    {"queue.stats", veil_admin_queue_stats},
    {"gateway.create", veil_admin_gw_create},
    {"gateway.list", veil_admin_gw_list},
    {"gateway.callback", veil_admin_gw_callback},
    {"gateway.credits", veil_admin_gw_credits},
};

veil_admin_fn veil_admin_find(const char *cmd)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, cmd) == 0)
			return commands[i].fn;
	return NULL;
}

json_t *veil_admin_run(const struct veil_admin_ctx *x, json_t *req)
{
	json_t *c = json_object_get(req, "cmd");
	veil_admin_fn fn = json_is_string(c) ? veil_admin_find(json_string_value(c)) : NULL;
	if (fn == NULL)
		return veil_admin_error("unknown command");
	return fn(x, req);
}

int veil_admin_int_arg(json_t *req, const char *name, json_int_t min, json_int_t max,
                       json_int_t def, json_int_t *out)
{
	json_t *v = json_object_get(req, name);
	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

int veil_admin_id_arg(json_t *req, uint8_t id[static VEIL_ID_LEN])
{
	json_t *v = json_object_get(req, "id");
	if (!json_is_string(v) || json_string_length(v) != VEIL_ID_LEN)
		return -1;
	char s[VEIL_ID_LEN + 1];
	for (size_t i = 0; i < VEIL_ID_LEN; i++) {
		char ch = json_string_value(v)[i];
		s[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
	}
	s[VEIL_ID_LEN] = '\0';
	return veil_id_parse(id, s) == 0 ? 0 : -1;
}

void veil_admin_date(char out[static 32], uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	out[0] = '\0';
	if (ms == 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

struct admin_conn {
	uv_pipe_t pipe;
	struct veil_admin *a;
	struct admin_conn *next;
	char in[VEIL_ADMIN_MAX_REQUEST];
	size_t len;
	int busy;    /* a command runs on the thread pool */
	int closing; /* uv_close called */
	uv_work_t work;
	json_t *req;
	veil_admin_fn fn;
	char cmd[VEIL_ADMIN_MAX_CMD + 1];
	char *out; /* the answer line, malloc'd */
	uv_write_t wr;
};

struct veil_admin {
	uv_loop_t *loop;
	struct veil_server *srv;
	uv_pipe_t server;
	char path[1100];
	struct admin_conn *conns;
	size_t nconns;
	int stopping;
	struct veil_admin_ctx ctx;
	struct veil_admin_hooks hooks;
};

void veil_admin_set(struct veil_admin *a, struct veil_gwdb *gw, const struct veil_admin_hooks *h)
{
	if (a == NULL)
		return;
	a->ctx.gw = gw;
	if (h != NULL)
		a->hooks = *h;
}

json_t *veil_admin_ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

json_t *veil_admin_error(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

int veil_admin_parse(const uint8_t *p, size_t n, json_t **req, const char **cmd, const char **why)
{
	json_error_t e;
	*req = NULL;
	*cmd = NULL;
	*why = NULL;
	if (n > VEIL_ADMIN_MAX_REQUEST) {
		*why = "request too long";
		return VEIL_ELIMIT;
	}
	/* Depth first: jansson itself would recurse as deep as the input nests. */
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > ADMIN_MAX_DEPTH) {
				*why = "request nested too deeply";
				return VEIL_ELIMIT;
			}
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	json_t *o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &e);
	json_t *c = o != NULL ? json_object_get(o, "cmd") : NULL;
	if (!json_is_object(o) || !json_is_string(c) || json_string_length(c) == 0 ||
	    json_string_length(c) > VEIL_ADMIN_MAX_CMD ||
	    strlen(json_string_value(c)) != json_string_length(c)) {
		json_decref(o);
		*why = "not a JSON object with a string cmd";
		return VEIL_EPROTO;
	}
	*req = o;
	*cmd = json_string_value(c);
	return 0;
}

static void conn_closed(uv_handle_t *h)
{
	struct admin_conn *c = h->data;
	struct veil_admin *a = c->a;
	for (struct admin_conn **pp = &a->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	a->nconns--;
	json_decref(c->req);
	free(c->out);
	free(c);
	if (a->stopping && a->nconns == 0 && a->server.data == NULL)
		free(a);
}

static void conn_close(struct admin_conn *c)
{
	if (c->closing || c->busy)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	conn_close(w->data);
}

/* Sends the answer object (NULL: out of memory) as one line and closes. */
static void answer(struct admin_conn *c, json_t *resp)
{
	char *text = resp != NULL ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	size_t n = text != NULL ? strlen(text) : 0;
	c->out = text != NULL ? malloc(n + 2) : NULL;
	if (c->out == NULL) {
		free(text);
		conn_close(c);
		return;
	}
	memcpy(c->out, text, n);
	c->out[n] = '\n';
	free(text);
	uv_buf_t b = uv_buf_init(c->out, (unsigned)(n + 1));
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, on_written) != 0)
		conn_close(c);
}

static void work_run(uv_work_t *w)
{
	struct admin_conn *c = w->data;
	json_t *resp = c->fn(&c->a->ctx, c->req);
	json_decref(c->req);
	c->req = resp; /* the answer travels back in req */
}

static void work_done(uv_work_t *w, int status)
{
	struct admin_conn *c = w->data;
	json_t *resp = status == 0 ? c->req : NULL;
	c->req = NULL;
	c->busy = 0;
	if (c->a->stopping) {
		json_decref(resp);
		conn_close(c);
		return;
	}
	/* The loop's part: close the sessions of an identity the command shut out, add figures. */
	const struct veil_admin_hooks *h = &c->a->hooks;
	json_t *kick = json_object_get(resp, "_kick");
	uint8_t id[VEIL_ID_LEN];
	if (json_is_string(kick) && json_string_length(kick) == VEIL_ID_LEN) {
		memcpy(id, json_string_value(kick), VEIL_ID_LEN);
		if (h->kick != NULL)
			h->kick(h->arg, id);
	}
	json_object_del(resp, "_kick");
	if (strcmp(c->cmd, "status") == 0 && json_is_true(json_object_get(resp, "ok")) &&
	    h->status != NULL)
		h->status(h->arg, resp);
	answer(c, resp);
}

/* A whole request line is in: parse it and run its command on the thread pool. */
static void dispatch(struct admin_conn *c, size_t n)
{
	const char *cmd, *why;
	json_t *req;
	uv_read_stop((uv_stream_t *)&c->pipe);
	if (veil_admin_parse((const uint8_t *)c->in, n, &req, &cmd, &why) != 0) {
		answer(c, veil_admin_error("%s", why));
		return;
	}
	for (size_t i = 0; i < VEIL_ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, cmd) == 0) {
			c->fn = commands[i].fn;
			snprintf(c->cmd, sizeof c->cmd, "%s", cmd);
			c->req = req;
			c->work.data = c;
			c->busy = 1;
			if (uv_queue_work(c->a->loop, &c->work, work_run, work_done) != 0) {
				c->busy = 0;
				answer(c, veil_admin_error("cannot run the command"));
			}
			return;
		}
	answer(c, veil_admin_error("unknown command '%.64s'", cmd));
	json_decref(req);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct admin_conn *c = h->data;
	*buf = uv_buf_init(c->in + c->len, (unsigned)(sizeof c->in - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct admin_conn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	char *lf = memchr(c->in + c->len, '\n', (size_t)nread);
	c->len += (size_t)nread;
	if (lf != NULL) {
		dispatch(c, (size_t)(lf - c->in));
		return;
	}
	if (c->len == sizeof c->in) {
		uv_read_stop(s);
		answer(c, veil_admin_error("request longer than %d bytes", VEIL_ADMIN_MAX_REQUEST));
	}
}

/* Only veild's own user (or root) may give commands. */
static int peer_allowed(uv_pipe_t *p)
{
	uv_os_fd_t fd;
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (uv_fileno((uv_handle_t *)p, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return 0;
	return cr.uid == geteuid() || cr.uid == 0;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct veil_admin *a = server->data;
	if (status != 0 || a->stopping)
		return;
	struct admin_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	c->a = a;
	uv_pipe_init(a->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->next = a->conns;
	a->conns = c;
	a->nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
		conn_close(c);
		return;
	}
	if (a->nconns > VEIL_ADMIN_MAX_CONNS || !peer_allowed(&c->pipe)) {
		if (a->nconns <= VEIL_ADMIN_MAX_CONNS)
			veil_log_warn("admin: refused a connection from another user");
		conn_close(c);
		return;
	}
	if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0)
		conn_close(c);
}

static void server_closed(uv_handle_t *h)
{
	struct veil_admin *a = h->data;
	a->server.data = NULL;
	if (a->nconns == 0)
		free(a);
}

int veil_admin_start(struct veil_admin **out, uv_loop_t *loop, struct veil_server *srv, char *err,
                     size_t errcap)
{
	*out = NULL;
	struct veil_admin *a = calloc(1, sizeof *a);
	if (a == NULL) {
		snprintf(err, errcap, "out of memory");
		return VEIL_ENOMEM;
	}
	a->loop = loop;
	a->srv = srv;
	a->ctx.srv = srv;
	a->ctx.running = 1;
	int n = snprintf(a->path, sizeof a->path, "%s/%s", srv->cfg.data_dir, VEIL_ADMIN_SOCKET);
	/* sun_path holds 108 bytes with its NUL. */
	if (n < 0 || (size_t)n >= 108) {
		veil_log_warn("admin: the path %s is too long for a Unix socket: no admin socket "
		              "(veilctl cannot reach this veild); use a shorter --data",
		              a->path);
		free(a);
		return 0;
	}
	(void)unlink(a->path); /* left by a veild that died: we hold the data directory's lock */
	uv_pipe_init(loop, &a->server, 0);
	a->server.data = a;
	int rc = uv_pipe_bind(&a->server, a->path);
	if (rc == 0 && chmod(a->path, 0600) != 0)
		rc = uv_translate_sys_error(errno);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->server, 8, on_connection);
	if (rc != 0) {
		snprintf(err, errcap, "cannot listen on %s: %s", a->path, uv_strerror(rc));
		a->stopping = 1;
		uv_close((uv_handle_t *)&a->server, server_closed);
		(void)unlink(a->path);
		return VEIL_EIO;
	}
	*out = a;
	return 0;
}

void veil_admin_stop(struct veil_admin *a)
{
	if (a == NULL || a->stopping)
		return;
	a->stopping = 1;
	(void)unlink(a->path);
	for (struct admin_conn *c = a->conns; c != NULL; c = c->next)
		conn_close(c);
	uv_close((uv_handle_t *)&a->server, server_closed);
}
