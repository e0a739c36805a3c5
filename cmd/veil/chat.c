/*
 * veil chat: a conversation in the terminal, built on the daemon's JSON-RPC
 * socket (a daemon is run on a thread of this process if none runs). Plain
 * line-based output: history and live messages scroll above one input line
 * that is redrawn after each; on a terminal the line is edited in raw mode.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "veil/e2e.h"

#include "cli.h"

#define CHAT_INPUT_MAX VEIL_E2E_TEXT_MAX
#define CHAT_SENT_MAX 128 /* our messages remembered to name them in receipts */
#define CHAT_HISTORY_DEFAULT 20

struct sent {
	char id[17];
	char text[48];
};

struct chat {
	int fd;
	int tty;
	struct termios saved;
	struct cli_rpc_reader rd;
	char peer[VEIL_ID_LEN + 1];   /* 1:1 */
	char group[VEIL_ID_LEN + 18]; /* CREATOR:GID for groups, else "" */
	char gid[17];
	char label[128];
	char in[CHAT_INPUT_MAX + 1];
	size_t inlen;
	int esc; /* skipping an escape sequence */
	int next_id;
	struct sent sent[CHAT_SENT_MAX];
	size_t nsent;
};

/* Appends s to out (cap bytes, at *len), control characters as '?'. */
static void put_clean(char *out, size_t cap, size_t *len, const char *s)
{
	for (; *s && *len + 1 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		out[(*len)++] = (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : (char)ch;
	}
	out[*len] = 0;
}

/* Prints a line above the input line, then redraws the input line. */
static void show(struct chat *c, const char *line)
{
	if (c->tty)
		fputs("\r\033[K", stdout);
	fputs(line, stdout);
	fputs("\n", stdout);
	if (c->tty) {
		fputs("> ", stdout);
		fwrite(c->in, 1, c->inlen, stdout);
	}
	fflush(stdout);
}

static void remember(struct chat *c, const char *id, const char *text)
{
	struct sent *s = &c->sent[c->nsent++ % CHAT_SENT_MAX];
	snprintf(s->id, sizeof s->id, "%.16s", id);
	snprintf(s->text, sizeof s->text, "%.47s", text);
}

static const char *sent_text(struct chat *c, const char *id)
{
	for (size_t i = 0; i < CHAT_SENT_MAX && i < c->nsent; i++)
		if (strcmp(c->sent[i].id, id) == 0)
			return c->sent[i].text;
	return NULL;
}

/* "2024-05-01T12:00:00Z" -> "12:00" in a short prefix. */
static void hhmm(char out[static 8], const char *date)
{
	if (date != NULL && strlen(date) >= 16)
		snprintf(out, 8, "%.5s", date + 11);
	else
		snprintf(out, 8, "--:--");
}

static void show_msg(struct chat *c, const char *date, const char *who, const char *text,
                     const char *suffix)
{
	char line[CHAT_INPUT_MAX + 512], t[8];
	size_t n = 0;
	hhmm(t, date);
	line[0] = 0;
	put_clean(line, sizeof line, &n, "[");
	put_clean(line, sizeof line, &n, t);
	put_clean(line, sizeof line, &n, "] ");
	put_clean(line, sizeof line, &n, who != NULL ? who : "?");
	put_clean(line, sizeof line, &n, ": ");
	put_clean(line, sizeof line, &n, text != NULL ? text : "");
	if (suffix != NULL)
		put_clean(line, sizeof line, &n, suffix);
	show(c, line);
}

static int request(struct chat *c, const char *method, json_t *params)
{
	int id = c->next_id++;
	return cli_rpc_write(c->fd,
	                     json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method",
	                               method, "params", params != NULL ? params : json_object()));
}

/* Waits for the answer to a request (notifications that come first are dropped). */
static json_t *call(struct chat *c, const char *method, json_t *params)
{
	int id = c->next_id;
	if (request(c, method, params) != 0)
		return NULL;
	for (;;) {
		json_t *v;
		if (cli_rpc_read(&c->rd, &v, -1) != 1)
			return NULL;
		if (json_integer_value(json_object_get(v, "id")) == id)
			return v;
		json_decref(v);
	}
}

/* Is this message JSON (log entry or event) part of our conversation? */
static int ours(struct chat *c, json_t *m, const char *peer)
{
	json_t *g = json_object_get(m, "group");
	if (c->group[0] == 0)
		return g == NULL && peer != NULL && strcmp(peer, c->peer) == 0;
	const char *gid = json_string_value(json_object_get(g, "id"));
	const char *cr = json_string_value(json_object_get(g, "creator"));
	return gid != NULL && cr != NULL && strcmp(gid, c->gid) == 0 &&
	       strncmp(cr, c->group, VEIL_ID_LEN) == 0;
}

static void show_history(struct chat *c, int n)
{
	json_t *p = c->group[0] ? json_pack("{s:s, s:i}", "group", c->group, "limit", n)
	                        : json_pack("{s:s, s:i}", "peer", c->peer, "limit", n);
	json_t *r = call(c, "log", p), *e;
	size_t i;
	json_array_foreach(json_object_get(r, "result"), i, e)
	{
		const char *text = json_string_value(json_object_get(e, "text"));
		const char *type = json_string_value(json_object_get(e, "type"));
		const char *id = json_string_value(json_object_get(e, "id"));
		int out = strcmp(json_string_value(json_object_get(e, "dir")), "out") == 0;
		json_int_t st = json_integer_value(json_object_get(e, "status"));
		char what[64];
		if (text == NULL) {
			if (type != NULL &&
			    (strstr(type, "receipt") || strcmp(type, "typing") == 0))
				continue;
			snprintf(what, sizeof what, "(%s)", type ? type : "message");
			text = what;
		}
		if (out && id != NULL)
			remember(c, id, text);
		show_msg(c, json_string_value(json_object_get(e, "date")),
		         out ? "me" : json_string_value(json_object_get(e, "peer")), text,
		         out && st >= 2   ? "  [read]"
		         : out && st == 1 ? "  [received]"
		                          : NULL);
	}
	json_decref(r);
	/* Opening a conversation reads it (as 'veil read': receipts, other devices). */
	if (c->group[0] == 0)
		json_decref(call(c, "markConversationRead", json_pack("{s:s}", "peer", c->peer)));
}

static void on_receive(struct chat *c, json_t *m)
{
	const char *from = json_string_value(json_object_get(m, "from"));
	const char *type = json_string_value(json_object_get(m, "type"));
	const char *text = json_string_value(json_object_get(m, "text"));
	const char *date = json_string_value(json_object_get(m, "date"));
	const char *id = json_string_value(json_object_get(m, "id"));
	const char *nick = json_string_value(json_object_get(m, "nickname"));
	char who[VEIL_ID_LEN + VEIL_PROFILE_NICK_MAX + 4], line[256];
	if (from == NULL || type == NULL || !ours(c, m, from))
		return;
	snprintf(who, sizeof who, "%s%s%s%s", from, nick ? " (" : "", nick ? nick : "",
	         nick ? ")" : "");
	if (strcmp(type, "receipt") == 0 || strcmp(type, "group-receipt") == 0) {
		const char *st = json_string_value(json_object_get(m, "status"));
		json_t *v;
		size_t i;
		json_array_foreach(json_object_get(m, "ids"), i, v)
		{
			const char *t = sent_text(c, json_string_value(v));
			snprintf(line, sizeof line, "%s %s \"%.40s\"", st ? st : "?",
			         t ? "your message" : "message", t ? t : json_string_value(v));
			show_msg(c, date, who, line, NULL);
		}
		return;
	}
	if (strcmp(type, "typing") == 0)
		return;
	if (text != NULL) {
		show_msg(c, date, who, text, NULL);
		/* Shown to the user: read (1:1 only; groups have no read receipts). */
		if (c->group[0] == 0 && id != NULL)
			(void)request(c, "markRead",
			              json_pack("{s:s, s:[s]}", "to", from, "ids", id));
		return;
	}
	const char *path = json_string_value(json_object_get(m, "path"));
	const char *name = json_string_value(json_object_get(m, "name"));
	snprintf(line, sizeof line, path ? "(file %.60s saved to %.120s)" : "(%.60s%.120s)",
	         path ? (name ? name : "") : type, path ? path : "");
	show_msg(c, date, who, line, NULL);
}

/* Handles what the daemon sends: our notifications, answers to our sends. */
static void on_daemon(struct chat *c, json_t *v)
{
	const char *method = json_string_value(json_object_get(v, "method"));
	json_t *err = json_object_get(v, "error"), *res = json_object_get(v, "result");
	if (method != NULL && strcmp(method, "receive") == 0) {
		on_receive(c, json_object_get(v, "params"));
		return;
	}
	if (err != NULL) {
		char line[VEIL_MSGR_ERRTEXT_MAX + 32];
		snprintf(line, sizeof line, "(not sent: %s)",
		         json_string_value(json_object_get(err, "message")));
		show(c, line);
		json_t *d = json_object_get(err, "data");
		if (json_object_get(d, "id") != NULL)
			res = d; /* partly delivered */
		else
			return;
	}
	const char *id = json_string_value(json_object_get(res, "id"));
	if (id != NULL && c->nsent > 0) {
		/* The last pending text gets the ID the daemon gave it. */
		for (size_t i = 0; i < CHAT_SENT_MAX && i < c->nsent; i++) {
			struct sent *s = &c->sent[i];
			if (s->id[0] == 0) {
				snprintf(s->id, sizeof s->id, "%.16s", id);
				break;
			}
		}
	}
}

static void submit(struct chat *c)
{
	char line[CHAT_INPUT_MAX + 1], now[32];
	memcpy(line, c->in, c->inlen);
	line[c->inlen] = 0;
	c->inlen = 0;
	cli_date(now, veil_now_ms());
	if (line[0] == 0)
		return;
	if (strcmp(line, "/quit") == 0)
		return;
	json_t *p;
	if (strncmp(line, "/file ", 6) == 0) {
		char abs[VEIL_PROFILE_PATH_MAX * 2], *path = line + 6, *cap;
		while (*path == ' ')
			path++;
		cap = strchr(path, ' ');
		if (cap != NULL)
			*cap++ = 0;
		if (cli_rpc_abs_path(abs, sizeof abs, path) != 0) {
			show(c, "(path too long)");
			return;
		}
		p = json_pack("{s:s, s:s, s:s?}", "file", abs, "caption", cap && *cap ? cap : NULL);
		show_msg(c, now, "me", "(file) ", path);
	} else {
		if (line[0] == '/' && line[1] != '/' && line[1] != ' ') {
			show(c, "(commands: /file PATH [CAPTION], /quit; start a text with // to "
			        "send a /)");
			return;
		}
		const char *t = line[0] == '/' && line[1] == '/' ? line + 1 : line;
		p = json_pack("{s:s}", "text", t);
		if (p == NULL) {
			show(c, "(not sent: not valid UTF-8)");
			return;
		}
		show_msg(c, now, "me", t, NULL);
		remember(c, "", t);
	}
	if (c->group[0])
		json_object_set_new(p, "group", json_string(c->group));
	else
		json_object_set_new(p, "to", json_string(c->peer));
	(void)request(c, c->group[0] ? "groupSend" : "send", p);
}

/* Reads the keyboard; returns 1 to leave. */
static int on_input(struct chat *c)
{
	char buf[512];
	ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (n == 0) {
		if (c->inlen > 0)
			submit(c);
		return 1;
	}
	for (ssize_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (c->esc) {
			/* CSI sequences (arrows, ...) end with a byte from 0x40 to 0x7e. */
			if (c->esc == 1 && ch == '[')
				c->esc = 2;
			else if (c->esc == 1 || (ch >= 0x40 && ch <= 0x7e))
				c->esc = 0;
			continue;
		}
		if (ch == '\r' || ch == '\n') {
			int quit = c->inlen == 5 && memcmp(c->in, "/quit", 5) == 0;
			if (c->tty)
				fputs("\r\033[K", stdout);
			submit(c);
			if (quit)
				return 1;
			if (c->tty) {
				fputs("> ", stdout);
				fflush(stdout);
			}
			continue;
		}
		if (ch == 0x04 || ch == 0x03) /* Ctrl-D, Ctrl-C */
			return ch == 0x03 || c->inlen == 0;
		if (ch == 0x7f || ch == 0x08) {
			while (c->inlen > 0 && (c->in[--c->inlen] & 0xc0) == 0x80)
				;
		} else if (ch == 0x15) {
			c->inlen = 0;
		} else if (ch == 0x1b) {
			c->esc = 1;
		} else if (ch >= 0x20 && c->inlen < CHAT_INPUT_MAX) {
			c->in[c->inlen++] = (char)ch;
		}
		if (c->tty) {
			fputs("\r\033[K> ", stdout);
			fwrite(c->in, 1, c->inlen, stdout);
			fflush(stdout);
		}
	}
	return 0;
}

struct inproc {
	struct cli_daemon *d;
	int stop[2];
	pthread_t th;
	int running;
};

static void *daemon_thread(void *arg)
{
	struct inproc *ip = arg;
	(void)cli_daemon_run(ip->d, ip->stop[0]);
	return NULL;
}

/* Finds the conversation's label and, for a group, CREATOR:GID. 0, or an exit status. */
static int resolve(struct chat *c, const char *arg)
{
	char up[VEIL_ID_LEN + 1];
	uint8_t id[VEIL_ID_LEN];
	if (strlen(arg) == VEIL_ID_LEN) {
		for (size_t i = 0; i < VEIL_ID_LEN; i++)
			up[i] = (char)toupper((unsigned char)arg[i]);
		up[VEIL_ID_LEN] = 0;
		if (veil_id_parse(id, up) != 0)
			return cli_parse_id(id, arg);
		snprintf(c->peer, sizeof c->peer, "%s", up);
		snprintf(c->label, sizeof c->label, "%s", up);
		json_t *r = call(c, "listContacts", NULL), *e;
		size_t i;
		json_array_foreach(json_object_get(r, "result"), i, e)
		{
			const char *nick = json_string_value(json_object_get(e, "nickname"));
			if (strcmp(json_string_value(json_object_get(e, "id")), up) == 0 && nick &&
			    nick[0])
				snprintf(c->label, sizeof c->label, "%s (%.80s)", up, nick);
		}
		json_decref(r);
		return 0;
	}
	const char *colon = strchr(arg, ':');
	const char *hex = colon ? colon + 1 : arg;
	json_t *r = call(c, "listGroups", NULL), *g;
	size_t i, n = 0;
	json_array_foreach(json_object_get(r, "result"), i, g)
	{
		const char *gid = json_string_value(json_object_get(g, "id"));
		const char *cr = json_string_value(json_object_get(g, "creator"));
		if (strcasecmp(gid, hex) != 0 ||
		    (colon &&
		     (colon - arg != VEIL_ID_LEN || strncasecmp(cr, arg, VEIL_ID_LEN) != 0)))
			continue;
		n++;
		snprintf(c->gid, sizeof c->gid, "%s", gid);
		snprintf(c->group, sizeof c->group, "%s:%s", cr, gid);
		snprintf(c->label, sizeof c->label, "%.80s (%s)",
		         json_string_value(json_object_get(g, "name")), gid);
	}
	json_decref(r);
	if (n == 1)
		return 0;
	if (n > 1)
		return cli_err("%zu groups have the ID %s: name one as CREATOR:%s", n, hex, hex);
	if (strlen(hex) != 16)
		return cli_usage_err("chat", "expected an ID (8 characters) or a group ID (16 hex "
		                             "digits)");
	return cli_err("unknown group %s (see 'veil group list')", hex);
}

int cmd_chat(int argc, char **argv)
{
	struct chat *c = calloc(1, sizeof *c);
	struct inproc ip = {.stop = {-1, -1}};
	const char *target = NULL, *hist = NULL;
	long nhist = CHAT_HISTORY_DEFAULT;
	int rc = 0;
	if (c == NULL)
		return cli_err("out of memory");
	c->fd = -1;
	c->next_id = 1;
	for (int i = 1; i < argc; i++) {
		int o = cli_opt(argc, argv, &i, "history", &hist);
		if (o < 0) {
			rc = cli_usage_err("chat", "--history needs a number");
			goto out;
		}
		if (o > 0)
			continue;
		if (target != NULL || argv[i][0] == '-') {
			rc = cli_usage_err("chat", "unexpected argument");
			goto out;
		}
		target = argv[i];
	}
	if (hist != NULL) {
		char *end;
		nhist = strtol(hist, &end, 10);
		if (*end != 0 || end == hist || nhist < 1 || nhist > 1000) {
			rc = cli_usage_err("chat", "--history needs a number from 1 to 1000");
			goto out;
		}
	}
	if (target == NULL) {
		rc = cli_usage_err("chat", "chat needs an ID or a group ID");
		goto out;
	}
	if ((c->fd = cli_rpc_connect()) < 0) {
		/* No daemon runs: one runs on a thread of ours while we chat. */
		if ((ip.d = cli_daemon_open(1)) == NULL) {
			rc = 1;
			goto out;
		}
		if (pipe(ip.stop) != 0 || pthread_create(&ip.th, NULL, daemon_thread, &ip) != 0) {
			rc = cli_err("cannot start the daemon");
			goto out;
		}
		ip.running = 1;
		if ((c->fd = cli_rpc_connect()) < 0) {
			rc = cli_err("cannot reach the daemon");
			goto out;
		}
	}
	cli_rpc_reader_init(&c->rd, c->fd);
	if ((rc = resolve(c, target)) != 0)
		goto out;
	json_decref(call(c, "subscribe", NULL));
	c->tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	printf("chat with %s: type and press Enter to send; /file PATH [CAPTION]; /quit or "
	       "Ctrl-D to leave\n",
	       c->label);
	show_history(c, (int)nhist);
	if (c->tty) {
		struct termios t;
		tcgetattr(STDIN_FILENO, &c->saved);
		t = c->saved;
		t.c_lflag &= (tcflag_t) ~(ICANON | ECHO | ISIG);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &t);
		fputs("> ", stdout);
		fflush(stdout);
	}
	/* Notifications read along with the answers above wait in the reader. */
	int first = 1;
	for (;;) {
		struct pollfd pf[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
		                       {.fd = c->fd, .events = POLLIN}};
		if (poll(pf, 2, first ? 0 : -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents || first) {
			json_t *v;
			int k;
			while ((k = cli_rpc_read(&c->rd, &v, 0)) == 1) {
				on_daemon(c, v);
				json_decref(v);
			}
			if (k < 0) {
				show(c, "(the daemon stopped)");
				rc = 1;
				break;
			}
		}
		first = 0;
		if (pf[0].revents && on_input(c))
			break;
	}
	if (c->tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &c->saved);
		fputs("\r\033[K", stdout);
		fflush(stdout);
	}
out:
	if (c->fd >= 0) {
		/* Let the daemon finish what we asked of it (a send in progress) before it stops. */
		if (ip.running)
			json_decref(call(c, "version", NULL));
		close(c->fd);
	}
	cli_rpc_reader_release(&c->rd);
	if (ip.running) {
		(void)!write(ip.stop[1], "x", 1);
		pthread_join(ip.th, NULL);
	}
	cli_daemon_free(ip.d);
	if (ip.stop[0] >= 0) {
		close(ip.stop[0]);
		close(ip.stop[1]);
	}
	free(c);
	return rc;
}
