/* veilctl's side of the admin socket: one request line, one answer line. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_SOCKET "admin.sock"
#define CTL_MAX_ANSWER (16u * 1024u * 1024u)
#define CTL_TIMEOUT_S 30

int ctl_err(const char *fmt, ...)
{
	va_list ap;
	fputs("veilctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_EXIT_FAIL;
}

int ctl_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
		return 0;
	if (a[2 + n] == '=') {
		*val = a + 3 + n;
		return 1;
	}
	if (a[2 + n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

int ctl_number(const char *s, long min, long max, long *out)
{
	char *end;
	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * Connects to DATA/admin.sock: the fd, -2 if no veild listens there (no
 * socket, or a stale one), or -1 with the reason printed.
 */
static int connect_admin(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", ctl_data_dir, CTL_SOCKET);
	if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
		ctl_err("the data directory's path %s is too long for a Unix socket", ctl_data_dir);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {CTL_TIMEOUT_S, 0};
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
		ctl_err("cannot create a socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			return -2;
		if (e == EACCES)
			ctl_err("permission denied on %s: run veilctl as veild's user",
			        sa.sun_path);
		else
			ctl_err("cannot connect to %s: %s", sa.sun_path, strerror(e));
		return -1;
	}
	return fd;
}

/* The answer object of a command: 0 if it says ok, else its error printed. */
static int check_answer(json_t *o)
{
	if (!json_is_object(o))
		return ctl_err("out of memory");
	if (json_is_true(json_object_get(o, "ok")))
		return 0;
	json_t *e = json_object_get(o, "error");
	return ctl_err("%s", json_is_string(e) ? json_string_value(e) : "failed");
}

/* No veild runs: the same command on the data directory (srv/admin through local.c). */
static int call_local(json_t *req, json_t **resp)
{
	struct ctl c;
	if (ctl_open(&c, NULL, ctl_store_url) != 0)
		return CTL_EXIT_FAIL;
	struct veil_admin_ctx x = {.srv = &c.srv, .gw = c.gw, .running = 0};
	json_t *o = veil_admin_run(&x, req);
	ctl_close(&c);
	int rc = check_answer(o);
	if (rc != 0) {
		json_decref(o);
		return rc;
	}
	json_object_del(o, "_kick");
	*resp = o;
	return 0;
}

int ctl_call(json_t *req, json_t **resp)
{
	*resp = NULL;
	int fd = connect_admin();
	if (fd == -2)
		return call_local(req, resp);
	if (fd < 0)
		return CTL_EXIT_FAIL;
	char *text = json_dumps(req, JSON_COMPACT);
	if (text == NULL) {
		close(fd);
		return ctl_err("out of memory");
	}
	size_t n = strlen(text);
	int ok =
	    send(fd, text, n, MSG_NOSIGNAL) == (ssize_t)n && send(fd, "\n", 1, MSG_NOSIGNAL) == 1;
	free(text);
	if (!ok) {
		close(fd);
		return ctl_err("cannot send to veild: %s", strerror(errno));
	}
	struct veil_buf in;
	veil_buf_init(&in, CTL_MAX_ANSWER);
	char buf[4096];
	int rc = 0;
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = ctl_err("no answer from veild: %s", strerror(errno));
			break;
		}
		if (r == 0)
			break;
		if (veil_buf_append(&in, buf, (size_t)r) != 0) {
			rc = ctl_err("veild's answer is larger than %u bytes", CTL_MAX_ANSWER);
			break;
		}
	}
	close(fd);
	json_t *o = NULL;
	if (rc == 0) {
		const uint8_t *lf = in.len > 0 ? memchr(in.p, '\n', in.len) : NULL;
		o = lf != NULL ? json_loadb((const char *)in.p, (size_t)(lf - in.p), 0, NULL)
		               : NULL;
		if (!json_is_object(o)) {
			rc = in.len == 0 ? ctl_err("veild closed the connection without an answer "
			                           "(refused: another user?)")
			                 : ctl_err("veild's answer is not a JSON object");
		} else if (!json_is_true(json_object_get(o, "ok"))) {
			json_t *e = json_object_get(o, "error");
			rc = ctl_err("%s", json_is_string(e) ? json_string_value(e) : "failed");
		}
	}
	veil_buf_release(&in);
	if (rc != 0) {
		json_decref(o);
		return rc;
	}
	*resp = o;
	return 0;
}
