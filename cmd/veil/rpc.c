/*
 * The client side of the daemon's JSON-RPC socket: 'veil send', 'veil group
 * send' and 'veil chat' talk to a running daemon instead of logging in
 * themselves (a second login would end the daemon's connection).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

/* A response is at most a log of DAEMON_LOG_LIMIT_MAX entries of a frame each. */
#define RPC_LINE_MAX (16u << 20)

int cli_rpc_connect(void)
{
	char home[VEIL_PROFILE_PATH_MAX];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (veil_profile_home(home, sizeof home) != 0)
		return -1;
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/daemon.sock", home) >=
	    sizeof sa.sun_path)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* No socket, or one left by a daemon that died (refused): no daemon runs. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int cli_rpc_write(int fd, json_t *msg)
{
	char *s = msg != NULL ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	if (s == NULL)
		return -1;
	size_t n = strlen(s), off = 0;
	int rc = 0;
	while (off < n + 1 && rc == 0) {
		/* The text, then its newline. */
		const char *p = off < n ? s + off : "\n";
		size_t k = off < n ? n - off : 1;
		ssize_t w = send(fd, p, k, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = -1;
		else
			off += (size_t)w;
	}
	free(s);
	return rc;
}

void cli_rpc_reader_init(struct cli_rpc_reader *r, int fd)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
}

void cli_rpc_reader_release(struct cli_rpc_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = 0;
}

/* Takes one complete line out of the buffer as JSON; 1 with *out, 0 if none is complete. */
static int take_line(struct cli_rpc_reader *r, json_t **out)
{
	char *nl = r->len > 0 ? memchr(r->buf, '\n', r->len) : NULL;
	if (nl == NULL)
		return 0;
	size_t k = (size_t)(nl - r->buf);
	*out = json_loadb(r->buf, k, 0, NULL);
	memmove(r->buf, nl + 1, r->len - k - 1);
	r->len -= k + 1;
	return 1;
}

int cli_rpc_read(struct cli_rpc_reader *r, json_t **out, int timeout_ms)
{
	*out = NULL;
	for (;;) {
		json_t *v;
		if (take_line(r, &v)) {
			if (v == NULL)
				return -1; /* the daemon sent something that is not JSON */
			*out = v;
			return 1;
		}
		if (timeout_ms >= 0) {
			struct pollfd p = {.fd = r->fd, .events = POLLIN};
			int n = poll(&p, 1, timeout_ms);
			if (n == 0)
				return 0;
			if (n < 0)
				return errno == EINTR ? 0 : -1;
		}
		if (r->len == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 65536;
			char *b = cap <= RPC_LINE_MAX ? realloc(r->buf, cap) : NULL;
			if (b == NULL)
				return -1;
			r->buf = b;
			r->cap = cap;
		}
		ssize_t k = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		r->len += (size_t)k;
		timeout_ms = 0 < timeout_ms ? 0 : timeout_ms;
	}
}

json_t *cli_rpc_call(int fd, const char *method, json_t *params)
{
	static int next_id = 1;
	struct cli_rpc_reader r;
	int id = next_id++;
	json_t *req = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method",
	                        method, "params", params != NULL ? params : json_object());
	if (cli_rpc_write(fd, req) != 0) {
		cli_err("cannot talk to the daemon: %s", strerror(errno));
		return NULL;
	}
	cli_rpc_reader_init(&r, fd);
	for (;;) {
		json_t *v;
		/* No deadline: the daemon's own deadlines bound a send (an upload may be long). */
		if (cli_rpc_read(&r, &v, -1) != 1) {
			cli_rpc_reader_release(&r);
			cli_err("the daemon closed the connection without an answer");
			return NULL;
		}
		json_t *vid = json_object_get(v, "id");
		if (json_is_integer(vid) && json_integer_value(vid) == id) {
			cli_rpc_reader_release(&r);
			return v;
		}
		json_decref(v); /* a notification, or an answer to someone else */
	}
}

int cli_rpc_status(json_t *resp)
{
	json_t *e = json_object_get(resp, "error");
	if (e == NULL)
		return 0;
	const char *msg = json_string_value(json_object_get(e, "message"));
	json_int_t code = json_integer_value(json_object_get(e, "code"));
	cli_err("%s", msg != NULL ? msg : "the daemon failed");
	return code == CLI_EXIT_PARTIAL ? CLI_EXIT_PARTIAL : 1;
}

int cli_rpc_sent(json_t *resp)
{
	json_t *info, *v;
	size_t i;
	if (resp == NULL)
		return 1;
	info = json_object_get(resp, "result");
	if (info == NULL)
		info = json_object_get(json_object_get(resp, "error"), "data");
	json_array_foreach(json_object_get(info, "alerts"), i, v)
	    cli_err("server alert: %s", json_string_value(v));
	json_array_foreach(json_object_get(info, "failed"), i, v)
	{
		const char *id = json_string_value(json_object_get(v, "member"));
		const char *why = json_string_value(json_object_get(v, "why"));
		cli_err("%s did not get the message%s: %s", id ? id : "?",
		        json_is_true(json_object_get(v, "unreachable")) ? " (unreachable)" : "",
		        why ? why : "");
	}
	const char *id = json_string_value(json_object_get(info, "id"));
	if (id != NULL) {
		printf("%s\n", id);
		fflush(stdout);
	}
	int rc = cli_rpc_status(resp);
	json_decref(resp);
	return rc;
}

int cli_rpc_abs_path(char *out, size_t cap, const char *path)
{
	char cwd[VEIL_PROFILE_PATH_MAX];
	if (path[0] == '/')
		return (size_t)snprintf(out, cap, "%s", path) < cap ? 0 : -1;
	if (getcwd(cwd, sizeof cwd) == NULL)
		return -1;
	return (size_t)snprintf(out, cap, "%s/%s", cwd, path) < cap ? 0 : -1;
}
