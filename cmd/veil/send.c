/* veil send: send one text message, or a file (--file PATH [--caption TEXT]). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "veil/e2e.h"

#include "cli.h"
#include "progress.h"

/* Reads at most cap bytes of standard input; one more byte means "too long". */
static int read_stdin(char *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	while (n < cap) {
		ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return 0;
}

static void alert(const char *text, void *ctx)
{
	(void)ctx;
	cli_err("server alert: %s", text);
}

/* True if the first argument after the ID is --file (or --file=...). */
static int wants_file(int argc, char **argv)
{
	return argc > 2 && (strcmp(argv[2], "--file") == 0 || strncmp(argv[2], "--file=", 7) == 0);
}

static int send_file(const uint8_t to[static VEIL_ID_LEN], int argc, char **argv)
{
	const char *path = NULL, *caption = NULL;
	struct veil_msgr m;
	struct cli_progress pr;
	char idhex[17], label[64];
	uint64_t msg_id;
	for (int i = 2; i < argc; i++) {
		int a = cli_opt(argc, argv, &i, "file", &path);
		int b = a != 0 ? 0 : cli_opt(argc, argv, &i, "caption", &caption);
		if (a < 0 || b < 0)
			return cli_usage_err("send", "--file and --caption need a value");
		if (a == 0 && b == 0)
			return cli_usage_err("send", "with --file, only --caption may follow");
	}
	if (path == NULL || path[0] == '\0')
		return cli_usage_err("send", "--file needs a path");
	int fd = cli_rpc_connect();
	if (fd >= 0) {
		/* A daemon holds the connection: it sends (without a progress bar). */
		char abs[VEIL_PROFILE_PATH_MAX * 2], ids[VEIL_ID_LEN + 1];
		veil_id_str(ids, to);
		int rc =
		    cli_rpc_abs_path(abs, sizeof abs, path) != 0
		        ? cli_err("path too long")
		        : cli_rpc_sent(cli_rpc_call(fd, "send",
		                                    json_pack("{s:s, s:s, s:s?}", "to", ids, "file",
		                                              abs, "caption", caption)));
		close(fd);
		return rc;
	}
	if (cli_open(&m) != 0)
		return 1;
	m.alert_fn = alert;
	const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	snprintf(label, sizeof label, "upload %.40s", base);
	cli_progress_init(&pr, label);
	struct veil_file_opts o = {
	    .caption = caption, .progress = cli_progress_cb, .progress_ctx = &pr};
	int rc = veil_msgr_send_file(&m, to, path, &o, &msg_id);
	cli_progress_end(&pr);
	if (rc != 0) {
		rc = cli_err("%s", m.errtext);
	} else {
		cli_msgid(idhex, msg_id);
		printf("%s\n", idhex);
	}
	veil_msgr_close(&m);
	return rc;
}

int cmd_send(int argc, char **argv)
{
	uint8_t to[VEIL_ID_LEN];
	struct veil_msgr m;
	char *text = NULL, idhex[17];
	size_t len = 0;
	uint64_t msg_id;
	int rc = 0, first = 1;

	if (argc < 3)
		return cli_usage_err("send", "send needs an ID and a text");
	if (cli_parse_id(to, argv[1]) != 0)
		return 2;
	if (wants_file(argc, argv))
		return send_file(to, argc, argv);
	int start;
	if (cli_text_args("send", &argc, argv, 2, &start) != 0)
		return 2;
	if (start >= argc)
		return cli_usage_err("send", "send needs an ID and a text");
	/* One byte beyond the limit is enough to know that a text is too long. */
	size_t cap = VEIL_E2E_TEXT_MAX + 1;
	if ((text = malloc(cap + 1)) == NULL)
		return cli_err("out of memory");
	if (argc == start + 1 && strcmp(argv[start], "-") == 0) {
		if (read_stdin(text, cap, &len) != 0) {
			rc = cli_err("cannot read the message from standard input");
			goto out;
		}
		if (len > 0 && len <= VEIL_E2E_TEXT_MAX && text[len - 1] == '\n')
			len--;
	} else {
		for (int i = start; i < argc; i++) {
			size_t n = strlen(argv[i]) + (first ? 0 : 1);
			if (n > cap - len) {
				len = cap;
				break;
			}
			if (!first)
				text[len++] = ' ';
			memcpy(text + len, argv[i], n - (first ? 0 : 1));
			len += n - (first ? 0 : 1);
			first = 0;
		}
	}
	if (len > VEIL_E2E_TEXT_MAX) {
		rc = cli_err("message too long (more than %d bytes)", VEIL_E2E_TEXT_MAX);
		goto out;
	}
	if (len == 0) {
		rc = cli_err("empty message");
		goto out;
	}
	int fd = cli_rpc_connect();
	if (fd >= 0) {
		/* A daemon holds the connection (a login of our own would end it): it sends. */
		char ids[VEIL_ID_LEN + 1];
		veil_id_str(ids, to);
		if (!veil_utf8_valid((const uint8_t *)text, len))
			rc = cli_err("the message is not valid UTF-8 text");
		else
			rc = cli_rpc_sent(cli_rpc_call(
			    fd, "send", json_pack("{s:s, s:s%}", "to", ids, "text", text, len)));
		close(fd);
		goto out;
	}
	if (cli_open(&m) != 0) {
		rc = 1;
		goto out;
	}
	m.alert_fn = alert;
	if (veil_msgr_send_text(&m, to, text, len, &msg_id) != 0) {
		rc = cli_err("%s", m.errtext);
	} else {
		cli_msgid(idhex, msg_id);
		printf("%s\n", idhex);
	}
	veil_msgr_close(&m);
out:
	free(text);
	return rc;
}
