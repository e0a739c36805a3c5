/*
 * veilctl check: looks at a veild configuration the way an operator would
 * before (and after) starting it, like prosodyctl check: the config file
 * parses, the data directory and key files are private, the ports are free
 * (or held by this veild), the public URL is sane behind a TLS proxy, and
 * the sign-up mode fits the listening address. Every finding is one line,
 * "ok", "note", "warn" or "FAIL"; the exit status is 1 if any FAILed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"
#include "ctl.h"
#include "limit/cidr.h"

struct report {
	json_t *items;
	int failed, warned;
};

static void say(struct report *r, const char *level, const char *fmt, ...) VEIL_PRINTF(3, 4);
static void say(struct report *r, const char *level, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (strcmp(level, "FAIL") == 0)
		r->failed++;
	else if (strcmp(level, "warn") == 0)
		r->warned++;
	if (ctl_json)
		json_array_append_new(r->items,
		                      json_pack("{s:s, s:s}", "level", level, "message", msg));
	else
		printf("%-4s  %s\n", level, msg);
}

static int loopback(const char *addr)
{
	struct veil_cidr lo[2];
	if (veil_cidr_parse("127.0.0.0/8", &lo[0]) != 0 || veil_cidr_parse("::1", &lo[1]) != 0)
		return 0;
	return veil_cidr_match_text(lo, 2, addr);
}

/* Whether a veild answers on DATA/admin.sock. */
static int veild_running(const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/admin.sock", dir);
	if (n < 0 || (size_t)n >= sizeof sa.sun_path)
		return 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

/* 0 if a TCP port can be bound on addr now, else the errno. */
static int port_free(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t len;
	if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss) == 0)
		len = sizeof(struct sockaddr_in);
	else if (uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss) == 0)
		len = sizeof(struct sockaddr_in6);
	else
		return EINVAL;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	int rc = bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
	close(fd);
	return rc;
}

static void check_port(struct report *r, int running, const char *what, const char *addr,
                       uint16_t port)
{
	int e = port_free(addr, port);
	if (running && e == EADDRINUSE)
		say(r, "ok", "%s %s:%u is bound (by the running veild)", what, addr,
		    (unsigned)port);
	else if (running && e == 0)
		say(r, "warn", "%s %s:%u is not bound although veild runs (another config?)", what,
		    addr, (unsigned)port);
	else if (e == 0)
		say(r, "ok", "%s %s:%u is free", what, addr, (unsigned)port);
	else if (e == EADDRINUSE)
		say(r, "FAIL", "%s %s:%u is in use by another program: veild cannot start", what,
		    addr, (unsigned)port);
	else if (e == EACCES)
		say(r, "FAIL", "%s %s:%u needs privileges (a port below 1024)", what, addr,
		    (unsigned)port);
	else
		say(r, "FAIL", "%s %s:%u cannot be bound: %s", what, addr, (unsigned)port,
		    strerror(e));
}

static void check_dir(struct report *r, const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0) {
		say(r, "note", "data directory %s does not exist yet (veild creates it, mode 0700)",
		    dir);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		say(r, "FAIL", "data directory %s is not a directory", dir);
		return;
	}
	if (access(dir, R_OK | W_OK | X_OK) != 0)
		say(r, "FAIL",
		    "data directory %s is not writable by this user (uid %ld): run "
		    "veilctl as veild's user",
		    dir, (long)geteuid());
	else if (st.st_uid != geteuid())
		say(r, "warn", "data directory %s belongs to uid %ld, not to this user (uid %ld)",
		    dir, (long)st.st_uid, (long)geteuid());
	if ((st.st_mode & 077) != 0)
		say(r, "warn", "data directory %s is open to other users (mode %03o): chmod 700 it",
		    dir, (unsigned)(st.st_mode & 0777));
	else
		say(r, "ok", "data directory %s is private (mode %03o)", dir,
		    (unsigned)(st.st_mode & 0777));
	static const char *const keys[] = {"chat.key", "directory.key", "sign.key"};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(keys); i++) {
		char path[1100];
		snprintf(path, sizeof path, "%s/%s", dir, keys[i]);
		if (stat(path, &st) != 0)
			say(r, "note", "%s does not exist yet (made at the first start)", path);
		else if ((st.st_mode & 077) != 0)
			say(r, "FAIL",
			    "%s is readable by others (mode %03o): chmod 600 it; it is a "
			    "secret key",
			    path, (unsigned)(st.st_mode & 0777));
	}
}

static void check_public(struct report *r, const struct veil_config *cfg)
{
	int lo = loopback(cfg->listen);
	if (cfg->public_url[0] != '\0') {
		int https = strncmp(cfg->public_url, "https://", 8) == 0;
		say(r, https ? "ok" : "warn", "public URL %s%s", cfg->public_url,
		    https ? "" : " is not https: put a TLS proxy in front and announce https://");
		if (strstr(cfg->public_url, "://127.") != NULL ||
		    strstr(cfg->public_url, "://localhost") != NULL)
			say(r, "warn",
			    "public URL %s names this machine's loopback: other machines "
			    "cannot reach it",
			    cfg->public_url);
		if (https && cfg->n_trusted_proxies == 0)
			say(r, "warn",
			    "public URL is https (a TLS proxy) but no --trusted-proxy is set: "
			    "per-address limits count the proxy as one client");
		if (https && !lo)
			say(r, "note",
			    "--listen %s is not loopback: clients may bypass the TLS proxy; "
			    "listen on 127.0.0.1 behind a proxy on the same machine",
			    cfg->listen);
	} else if (!lo) {
		say(r, "warn",
		    "no --public-url: clients are told http://%s:%u (no TLS); behind a "
		    "TLS proxy set --public-url https://HOST",
		    cfg->public_host[0] ? cfg->public_host : cfg->listen, (unsigned)cfg->http_port);
	} else {
		say(r, "ok", "listening on loopback %s only (this machine's users)", cfg->listen);
	}
	if (cfg->public_chat_port == 0 && !lo && cfg->public_host[0] == '\0')
		say(r, "note",
		    "clients reach the chat service at %s:%u (its own encryption; no TLS "
		    "proxy needed)",
		    cfg->listen, (unsigned)cfg->chat_port);
}

static void check_signup(struct report *r, const struct veil_config *cfg)
{
	int lo = loopback(cfg->listen) && cfg->public_url[0] == '\0';
	const char *m = veil_signup_name(cfg->signup);
	if (cfg->signup == VEIL_SIGNUP_OPEN && !lo)
		say(r, "warn",
		    "signup = open on %s: anyone who reaches the directory can create "
		    "identities; use invite (veilctl invite create)",
		    cfg->public_url[0] ? cfg->public_url : cfg->listen);
	else if (cfg->signup == VEIL_SIGNUP_CLOSED)
		say(r, "note", "signup = closed: nobody can create an identity (Gateway IDs only)");
	else
		say(r, "ok", "signup = %s", m);
	if (cfg->admin_listen_host[0] != '\0' && !loopback(cfg->admin_listen_host))
		say(r, "warn",
		    "admin listener %s:%u is not loopback: /metrics is readable by anyone "
		    "who reaches it",
		    cfg->admin_listen_host, (unsigned)cfg->admin_listen_port);
}

int cmd_check(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return ctl_usage_err("check", "takes no arguments (veilctl --config FILE check)");
	static struct veil_config cfg;
	char err[512];
	struct report r = {.items = json_array()};
	if (r.items == NULL)
		return ctl_err("out of memory");
	veil_config_defaults(&cfg);
	if (ctl_config != NULL) {
		if (veil_config_load(&cfg, ctl_config, err, sizeof err) != 0) {
			say(&r, "FAIL", "config %s: %s", ctl_config, err);
			goto out;
		}
		say(&r, "ok", "config %s parses", ctl_config);
	} else {
		say(&r, "note", "no --config FILE: checking veild's defaults with --data %s",
		    ctl_data_dir);
	}
	if (ctl_config == NULL || ctl_data_given)
		snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", ctl_data_dir);
	if (veil_config_check(&cfg, err, sizeof err) != 0) {
		say(&r, "FAIL", "config: %s", err);
		goto out;
	}
	check_dir(&r, cfg.data_dir);
	int running = veild_running(cfg.data_dir);
	say(&r, "note",
	    running ? "a veild runs on %s (its admin socket answers)" : "no veild runs on %s",
	    cfg.data_dir);
	check_port(&r, running, "chat port", cfg.listen, cfg.chat_port);
	check_port(&r, running, "HTTP port", cfg.listen, cfg.http_port);
	if (cfg.admin_listen_host[0] != '\0')
		check_port(&r, running, "admin listener", cfg.admin_listen_host,
		           cfg.admin_listen_port);
	if (cfg.store[0] != '\0') {
		char shown[1100];
		veil_store_describe(cfg.store, shown, sizeof shown);
		say(&r, "note",
		    "store: PostgreSQL %s (not contacted by check; veilctl status does)", shown);
	}
	check_public(&r, &cfg);
	check_signup(&r, &cfg);
out:
	if (ctl_json) {
		json_t *o = json_pack("{s:o, s:i, s:i}", "checks", r.items, "failed", r.failed,
		                      "warnings", r.warned);
		int rc = o != NULL ? ctl_print_json(o) : ctl_err("out of memory");
		json_decref(o);
		if (rc != 0)
			return rc;
	} else {
		json_decref(r.items);
		printf("%d failed, %d warnings\n", r.failed, r.warned);
	}
	return r.failed > 0 ? CTL_EXIT_FAIL : 0;
}
