/*
 * veild: the Veil server daemon. With no arguments it runs every service on
 * loopback with an embedded SQLite store in ./var/veil.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "admin/admin.h"
#include "admin/reload.h"
#include "metrics/adminhttp.h"
#include "chat/chat.h"
#include "config.h"
#include "privdrop.h"
#include "blob/blob.h"
#include "safe/safe.h"
#include "directory/directory.h"
#include "gateway/gateway.h"
#include "http/http.h"
#include "mediator/mediator.h"
#include "push/push.h"
#include "rendezvous/relay.h"
#include "web/web.h"

#define VEIL_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: veild [OPTIONS]\n"
	    "\n"
	    "Runs the Veil server: the chat service (Chat Server Protocol over TCP) and,\n"
	    "on one HTTP listener, the directory service (/directory/), the blob service\n"
	    "(/blob/), the Gateway message API for bots (/gateway/; identities made with\n"
	    "`veilctl gateway create`), the multi-device mediator (WebSocket, /mediator/),\n"
	    "the rendezvous relay for linking a new device (WebSocket, /rendezvous/),\n"
	    "Threema Safe backups (/safe/) and\n"
	    "the signed provisioning document (/.well-known/veil/provisioning). With no\n"
	    "options\n"
	    "everything listens on 127.0.0.1 and the store lives in %s.\n"
	    "\n"
	    "Options (each can also be set as `name = value` in the config file):\n"
	    "  --data DIR           data directory: keys, blobs and the SQLite store (%s)\n"
	    "  --store URL          keep the message store in PostgreSQL instead of SQLite:\n"
	    "                       postgresql://USER:PASSWORD@HOST:PORT/DB (see OPERATIONS.md)\n"
	    "  --blob-dir DIR       where blob files live (DATA/blobs); with a PostgreSQL\n"
	    "                       --store several nodes may share one directory (NFS or\n"
	    "                       the like, see OPERATIONS.md, Scaling out)\n"
	    "  --listen ADDR        IPv4 or IPv6 address both listeners bind exactly (127.0.0.1)\n"
	    "  --chat-port N        CSP port (5222)\n"
	    "  --http-port N        HTTP port for directory and provisioning (8080)\n"
	    "  --public-host NAME   host name clients are told to use (the listen address)\n"
	    "  --public-url URL     the HTTP services as clients reach them, e.g. through a\n"
	    "                       TLS proxy: https://HOST[:PORT][/PREFIX]; the provisioning\n"
	    "                       document names every HTTP endpoint below it\n"
	    "                       (http://PUBLIC-HOST:HTTP-PORT)\n"
	    "  --public-chat HOST:PORT  the chat service as clients reach it\n"
	    "                       (PUBLIC-HOST:CHAT-PORT)\n"
	    "  --chat-address HOST:PORT  a chat node clients may use (repeatable, up to 8):\n"
	    "                       with several nodes on one PostgreSQL store, give every\n"
	    "                       node the same list; clients try them in order and move\n"
	    "                       on when one is down (none: only the entry above)\n"
	    "  --signup MODE        who may create an identity: open (anyone who reaches the\n"
	    "                       directory), invite (with an invite code from `veilctl\n"
	    "                       invite create`) or closed (nobody) (open when --listen\n"
	    "                       is a loopback address and none of --public-url,\n"
	    "                       --public-host, --public-chat, --trusted-proxy is set,\n"
	    "                       else invite)\n"
	    "  --trusted-proxy ADDR[/BITS]  a reverse proxy in front of the HTTP listener\n"
	    "                       (repeatable, up to 16): from it, X-Forwarded-For (or\n"
	    "                       Forwarded) names the client that the per-address limits\n"
	    "                       count, and its own connections are not capped; from any\n"
	    "                       other peer those headers are ignored (none)\n"
	    "  --queue-ttl SECONDS  how long an undelivered message is kept (1209600 = 14 days)\n"
	    "  --queue-limit N      most messages queued for one identity (10000)\n"
	    "  --queue-sender-limit N  most of those from one sender, at most queue-limit\n"
	    "                       (a tenth of queue-limit: 1000)\n"
	    "  --chat-threads N     chat event loops, each on its own thread (0 = one per\n"
	    "                       CPU, at most 8: the default; 1 to 64)\n"
	    "  --handoff-ms N       how long a message delivered live may wait for the\n"
	    "                       recipient's ack before it is written to the store (100;\n"
	    "                       0 = always store first)\n"
	    "  --chat-coalesce-us N  at a steady, quiet rate, the chat loop polls at most\n"
	    "                       once per N microseconds, so that one wake-up serves\n"
	    "                       several messages; adds at most N to a message's way\n"
	    "                       through; a busy loop never waits (0 = off)\n"
	    "  --http-max-body N    largest HTTP request body in bytes (65536)\n"
	    "  --dir-rate N         directory requests per client address per minute, the\n"
	    "                       provisioning document as much again (120)\n"
	    "  --http-conn-per-addr N  open HTTP connections per client address (64)\n"
	    "  --http-conn-rate N   new HTTP connections per client address per minute (600)\n"
	    "  --blob-rate N        blob requests (/blob/) per client address per minute (600)\n"
	    "  --blob-max-size N    largest blob in bytes (104857600 = 100 MiB)\n"
	    "  --blob-quota N       bytes of stored blobs per identity (1073741824 = 1 GiB)\n"
	    "  --blob-ttl SECONDS   lifetime of a blob (1209600 = 14 days)\n"
	    "  --blob-persist-ttl SECONDS  lifetime of a persistent (group) blob (7776000 = 90 "
	    "days)\n"
	    "  --safe-max-size N    largest Threema Safe backup (/safe/) in bytes (524288;\n"
	    "                       0 turns the Safe service off)\n"
	    "  --safe-retention-days N  days a backup is kept after its last upload (180)\n"
	    "  --safe-rate N        Safe requests (/safe/) per client address per minute (60)\n"
	    "  --safe-max-backups N  backups kept at most (100000)\n"
	    "  --chat-conn-per-addr N  chat connections one client address may hold (1000)\n"
	    "  --chat-handshakes-per-addr N  of those, still in the handshake (32)\n"
	    "  --chat-conn-rate N   new chat connections per address per minute (1200; 0 = any)\n"
	    "  --store-check-ms N   time the integrity check of the store may take at start\n"
	    "                       (10000; 0 = no check)\n"
	    "  --store-reserve-mb N disk space held in reserve beside the store and released\n"
	    "                       when the disk fills, so that acks still free space (64)\n"
	    "  --mediator-max-slots N  devices one device group may register with the\n"
	    "                       mediator (/mediator/, multi-device) (4, at most 64)\n"
	    "  --mediator-tx-ttl S  longest mediator transaction (device-group lock), seconds;\n"
	    "                       the holder is then closed with 4011 (60, 1 to 3600)\n"
	    "  --rendezvous-wait S  how long a rendezvous connection (/rendezvous/, device\n"
	    "                       linking) waits for its peer, seconds; then 4003 (120)\n"
	    "  --rendezvous-max-paths N  rendezvous paths (pairs) open at once (256)\n"
	    "  --rendezvous-paths-per-addr N  of those, opened by one client address (8)\n"
	    "  --mediator-handshake-timeout S  a device that has not completed the D2M\n"
	    "                       handshake by then is closed with 4013 (10, 1 to 300)\n"
	    "  --mediator-queue-limit N  reflected messages queued for one device; a device\n"
	    "                       over it is dropped (4114) (100000, 1 to 10000000)\n"
	    "  --mediator-volatile-ttl S  a VOLATILE device slot is forgotten this long after\n"
	    "                       its device disconnected (300, 0 to 86400)\n"
	    "  --gateway-basic 0|1  allow the Gateway's basic mode (send_simple, veild encrypts\n"
	    "                       with a key it keeps) (1)\n"
	    "  --gateway-callbacks 0|1  deliver messages for Gateway API identities to their\n"
	    "                       callback URLs from this veild (1; with several veild on\n"
	    "                       one PostgreSQL store, let exactly one do it)\n"
	    "  --gateway-rate N     Gateway requests per API identity per minute (6000)\n"
	    "  --gateway-addr-rate N  Gateway requests per client address per minute (6000)\n"
	    "  --gateway-retry-max S  longest wait between tries of a failed Gateway callback,\n"
	    "                       seconds; the wait doubles from 1 s up to it (600)\n"
	    "  --log-level LEVEL    error, warn, info or debug (info)\n"
	    "  --smtp-url URL       SMTP relay for e-mail link codes, e.g. smtp://127.0.0.1:25\n"
	    "  --smtp-from ADDR     sender address of e-mail link codes\n"
	    "  --sms-webhook URL    SMS gateway webhook (POST {to, text}) for phone link codes\n"
	    "  --link-code-ttl S    how long a link code stays valid (600)\n"
	    "  --link-rate N        link codes sent per identity per minute (3)\n"
	    "  --match-rate N       contact hashes matched per identity per minute (4000)\n"
	    "  --oprf-rate N        private-matching evaluations per identity per minute (600)\n"
	    "  --revoke-rate N      revocation-password tries per identity per minute (5)\n"
	    "  --web-root DIR       the browser client's files, served under /app/ (the web/\n"
	    "                       directory next to the veild binary, else\n"
	    "                       ../share/veil/web from it; none: /app/ answers 404)\n"
	    "  --user NAME          started as root: run as NAME (and its groups) once the\n"
	    "                       ports are bound; the data directory is made for NAME or\n"
	    "                       must be NAME's; veild exits if it cannot drop root (none)\n"
	    "  --push-interval S    at most one push wake-up per identity in S seconds (60)\n"
	    "  --push-rate N        push wake-ups per minute, all identities together (600)\n"
	    "  --push-allow-loopback-http 0|1  accept http:// UnifiedPush endpoints on\n"
	    "                       loopback addresses, for tests (0: https:// only)\n"
	    "  --admin-listen [ADDR:]PORT  the admin listener: /healthz, /readyz and Prometheus\n"
	    "                       /metrics; a bare port is on 127.0.0.1 (off)\n"
	    "  --log-ip 0|1         name client addresses in log lines, cut to /24 (IPv4) or\n"
	    "                       /48 (IPv6) (0: never)\n"
	    "  --config FILE        read settings from FILE first (INI, optional [veild]\n"
	    "                       section) (%s)\n"
	    "  --help               show this help\n"
	    "  --version            show the version\n"
	    "\n"
	    "Files and directories veild creates are readable by its user only (mode 0600 and\n"
	    "0700); one data directory serves one veild at a time (a lock file, veild.lock).\n"
	    "veilctl administers a running veild (identities, invites, Gateway, status)\n"
	    "through DATA/admin.sock,\n"
	    "a socket only veild's user and root may use (see veilctl --help).\n"
	    "\n"
	    "SIGTERM or SIGINT stops the server cleanly: pending writes are made durable and\n"
	    "connected clients get a close-error that lets them reconnect. SIGHUP reads the\n"
	    "config file and command line again and applies what can change without a\n"
	    "restart (log-level, signup, log-ip, dir-rate, blob-rate, gateway-addr-rate,\n"
	    "queue-ttl, handoff-ms, chat-coalesce-us, blob-max-size); it logs each change\n"
	    "and each setting that needs a restart. Connections stay open.\n",
	    veil_default_data_dir, veil_default_data_dir,
	    veil_default_config[0] != '\0' ? veil_default_config : "none");
}

static const struct option long_opts[] = {
    {"data", required_argument, NULL, 0},
    {"web-root", required_argument, NULL, 0},
    {"blob-dir", required_argument, NULL, 0},
    {"store", required_argument, NULL, 0},
    {"listen", required_argument, NULL, 0},
    {"chat-port", required_argument, NULL, 0},
    {"http-port", required_argument, NULL, 0},
    {"public-host", required_argument, NULL, 0},
    {"public-url", required_argument, NULL, 0},
    {"public-chat", required_argument, NULL, 0},
    {"chat-address", required_argument, NULL, 0},
    {"trusted-proxy", required_argument, NULL, 0},
    {"signup", required_argument, NULL, 0},
    {"queue-ttl", required_argument, NULL, 0},
    {"queue-limit", required_argument, NULL, 0},
    {"queue-sender-limit", required_argument, NULL, 0},
    {"http-max-body", required_argument, NULL, 0},
    {"dir-rate", required_argument, NULL, 0},
    {"http-conn-per-addr", required_argument, NULL, 0},
    {"http-conn-rate", required_argument, NULL, 0},
    {"log-level", required_argument, NULL, 0},
    {"blob-rate", required_argument, NULL, 0},
    {"blob-max-size", required_argument, NULL, 0},
    {"blob-quota", required_argument, NULL, 0},
    {"blob-ttl", required_argument, NULL, 0},
    {"blob-persist-ttl", required_argument, NULL, 0},
    {"safe-max-size", required_argument, NULL, 0},
    {"safe-retention-days", required_argument, NULL, 0},
    {"safe-rate", required_argument, NULL, 0},
    {"safe-max-backups", required_argument, NULL, 0},
    {"smtp-url", required_argument, NULL, 0},
    {"smtp-from", required_argument, NULL, 0},
    {"sms-webhook", required_argument, NULL, 0},
    {"link-code-ttl", required_argument, NULL, 0},
    {"link-rate", required_argument, NULL, 0},
    {"match-rate", required_argument, NULL, 0},
    {"oprf-rate", required_argument, NULL, 0},
    {"revoke-rate", required_argument, NULL, 0},
    {"handoff-ms", required_argument, NULL, 0},
    {"chat-threads", required_argument, NULL, 0},
    {"chat-coalesce-us", required_argument, NULL, 0},
    {"chat-conn-per-addr", required_argument, NULL, 0},
    {"chat-handshakes-per-addr", required_argument, NULL, 0},
    {"chat-conn-rate", required_argument, NULL, 0},
    {"store-check-ms", required_argument, NULL, 0},
    {"store-reserve-mb", required_argument, NULL, 0},
    {"mediator-max-slots", required_argument, NULL, 0},
    {"mediator-tx-ttl", required_argument, NULL, 0},
    {"rendezvous-wait", required_argument, NULL, 0},
    {"rendezvous-max-paths", required_argument, NULL, 0},
    {"rendezvous-paths-per-addr", required_argument, NULL, 0},
    {"mediator-handshake-timeout", required_argument, NULL, 0},
    {"mediator-queue-limit", required_argument, NULL, 0},
    {"mediator-volatile-ttl", required_argument, NULL, 0},
    {"gateway-basic", required_argument, NULL, 0},
    {"gateway-callbacks", required_argument, NULL, 0},
    {"gateway-rate", required_argument, NULL, 0},
    {"gateway-addr-rate", required_argument, NULL, 0},
    {"gateway-retry-max", required_argument, NULL, 0},
    {"user", required_argument, NULL, 0},
    {"push-interval", required_argument, NULL, 0},
    {"push-rate", required_argument, NULL, 0},
    {"push-allow-loopback-http", required_argument, NULL, 0},
    {"admin-listen", required_argument, NULL, 0},
    {"log-ip", required_argument, NULL, 0},
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

struct app {
	uv_loop_t *loop;
	struct veil_chat *chat;
	struct veil_gateway *gw;
	struct veil_http *http;
	struct veil_admin *admin;
	struct veil_adminhttp *ahttp;
	uv_signal_t sigint, sigterm, sighup;
	struct veil_server *srv;
	int argc;
	char **argv;
	uint64_t started_ms;
};

static void on_signal(uv_signal_t *s, int signum)
{
	struct app *app = s->data;
	veil_log_info("veild: signal %d, shutting down", signum);
	uv_close((uv_handle_t *)&app->sigint, NULL);
	uv_close((uv_handle_t *)&app->sigterm, NULL);
	uv_close((uv_handle_t *)&app->sighup, NULL);
	veil_adminhttp_stop(app->ahttp);
	app->ahttp = NULL;
	/*
	 * The HTTP services first: the mediator's CSP sessions end with their
	 * devices' connections instead of seeing the chat service go and
	 * promoting other devices towards a closing port.
	 */
	veil_http_stop(app->http);
	app->http = NULL;
	veil_admin_stop(app->admin);
	app->admin = NULL;
	veil_chat_shutdown(app->chat);
}

static int parse_args(int argc, char **argv, struct veil_config *cfg);

/* SIGHUP: the config file and the command line again, over the defaults. */
static void on_hup(uv_signal_t *s, int signum)
{
	(void)signum;
	struct app *app = s->data;
	static struct veil_config next;
	veil_config_defaults(&next);
	veil_log_info("veild: SIGHUP, reading the configuration again%s%s",
	              app->srv->cfg.config_path[0] ? " from " : "", app->srv->cfg.config_path);
	if (parse_args(app->argc, app->argv, &next) != 0) {
		veil_log_error("reload: the configuration has an error (above): nothing changed");
		return;
	}
	veil_reload_apply(app->srv, app->http, &next);
}

/* The loop's figures for /metrics. */
static void collect_metrics(void *arg, struct veil_metrics_input *in)
{
	struct app *app = arg;
	struct veil_chat_stats st;
	veil_chat_get_stats(app->chat, &st);
	in->uptime_s = (veil_mono_ms() - app->started_ms) / 1000u;
	in->connections = st.connections;
	in->logins = st.logins;
	in->messages_in = st.messages_in;
	in->messages_out = st.messages_out;
	in->messages_stored = st.messages_stored;
	in->handoffs = st.handoffs;
	in->protocol_errors = st.protocol_errors;
}

static void admin_kick(void *arg, const uint8_t id[VEIL_ID_LEN])
{
	struct app *app = arg;
	veil_chat_kick(app->chat, id);
}

/* What `veilctl status` learns from the running process. */
static void admin_status(void *arg, json_t *o)
{
	struct app *app = arg;
	const struct veil_config *cfg = &app->srv->cfg;
	struct veil_chat_stats st;
	veil_chat_get_stats(app->chat, &st);
	char chat[96], http[96], adm[96] = "";
	snprintf(chat, sizeof chat, "%s:%u", cfg->listen, (unsigned)cfg->chat_port);
	snprintf(http, sizeof http, "%s:%u", cfg->listen, (unsigned)veil_http_port(app->http));
	if (app->ahttp != NULL)
		snprintf(adm, sizeof adm, "%s:%u", cfg->admin_listen_host,
		         (unsigned)veil_adminhttp_port(app->ahttp));
	json_t *add = json_pack(
	    "{s:s, s:I, s:I, s:s, s:{s:s, s:s, s:s}, s:[s,s,s,s,s,s,s], s:I, s:I, s:I, s:I, s:I}",
	    "version", VEIL_VERSION, "pid", (json_int_t)getpid(), "uptime_s",
	    (json_int_t)((veil_mono_ms() - app->started_ms) / 1000u), "signup",
	    veil_signup_name(cfg->signup), "listen", "chat", chat, "http", http, "admin", adm,
	    "services", "chat", "directory", "blob", "gateway", "mediator", "rendezvous",
	    "provisioning", "connections", (json_int_t)st.connections, "logins",
	    (json_int_t)st.logins, "messages_in", (json_int_t)st.messages_in, "messages_out",
	    (json_int_t)st.messages_out, "messages_stored", (json_int_t)st.messages_stored);
	if (add != NULL)
		json_object_update(o, add);
	json_decref(add);
}

/*
 * The Gateway stored a message for id (on the loop thread): a recipient
 * connected here fetches it, and the callback worker looks at once if id is
 * an API identity.
 */
static void gateway_stored(void *arg, const uint8_t id[VEIL_ID_LEN])
{
	struct app *app = arg;
	veil_chat_store_event(app->chat, VEIL_STORE_EV_PUT, id, 0);
	veil_chat_wake_offline(app->chat, id);
	if (id[0] == '*')
		veil_gateway_wake(app->gw);
}

/* Parses argv in two passes: --config first, then every flag over it. */
static int parse_args(int argc, char **argv, struct veil_config *cfg)
{
	char err[256];
	int idx, opt, had_config = 0;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			exit(0);
		} else if (opt == 'V') {
			printf("veild %s\n", VEIL_VERSION);
			exit(0);
		} else if (opt == 'c') {
			had_config = 1;
			snprintf(cfg->config_path, sizeof cfg->config_path, "%s", optarg);
			if (veil_config_load(cfg, optarg, err, sizeof err) != 0) {
				fprintf(stderr, "veild: %s\n", err);
				return -1;
			}
		} else if (opt == '?' || opt == ':') {
			fprintf(stderr, "veild: unknown or incomplete option '%s' (see --help)\n",
			        argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "veild: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -1;
	}
	/* The installed veild reads /etc/veil/veild.conf when it is there. */
	if (!had_config && veil_default_config[0] != '\0' &&
	    access(veil_default_config, F_OK) == 0) {
		if (veil_config_load(cfg, veil_default_config, err, sizeof err) != 0) {
			fprintf(stderr, "veild: %s\n", err);
			return -1;
		}
		/* SIGHUP reads it again. */
		snprintf(cfg->config_path, sizeof cfg->config_path, "%s", veil_default_config);
	}
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
		if (opt != 0)
			continue;
		if (veil_config_set(cfg, long_opts[idx].name, optarg, err, sizeof err) != 0) {
			fprintf(stderr, "veild: %s\n", err);
			return -1;
		}
	}
	if (veil_config_check(cfg, err, sizeof err) != 0) {
		fprintf(stderr, "veild: %s\n", err);
		return -1;
	}
	return 0;
}

/*
 * Takes the data directory's lock (flock on DIR/veild.lock, held until
 * exit), so that two veild never share a store. Returns the lock's fd or -1
 * with a message printed.
 */
static int lock_data_dir(const char *dir)
{
	char path[1100];
	snprintf(path, sizeof path, "%s/veild.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "veild: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (errno == EWOULDBLOCK || errno == EAGAIN)
			fprintf(stderr,
			        "veild: the data directory %s is in use by another veild%s%s%s\n",
			        dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		else
			fprintf(stderr, "veild: cannot lock %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	char line[32];
	int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n)
		veil_log_warn("veild: cannot write the pid to %s", path);
	return fd;
}

/* Warns if other users may read or enter the data directory. */
static void check_data_dir_mode(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) == 0 && (st.st_mode & 077) != 0)
		veil_log_warn(
		    "veild: the data directory %s is open to other users (mode %03o): it "
		    "holds the server's secret keys and every queued message; chmod 700 it",
		    dir, (unsigned)(st.st_mode & 0777));
}

/* Why the store did not open, in words an operator can act on. */
static void store_open_error(const char *path, int rc, const char *why)
{
	const char *hint = "";
	char shown[1100];
	veil_store_describe(path, shown, sizeof shown);
	if (rc == VEIL_ECORRUPT)
		hint = " (the store is damaged: restore it from a backup, or move it away to "
		       "start with an empty one)";
	else if (rc == VEIL_ENOSPC)
		hint = " (free some space on its file system)";
	fprintf(stderr, "veild: cannot open the store %s: %s%s\n", shown,
	        why[0] ? why : veil_strerror(rc), hint);
}

/*
 * Registers the services that speak HTTP or WebSocket on the listener and
 * starts its thread. Only this file knows which services exist.
 */
static int start_http_services(struct veil_http *http, struct veil_server *srv,
                               struct veil_gateway *gw)
{
	/* The blob service first: its /directory/identity/blob_cred is more specific. */
	struct veil_blobsvc *blobs = NULL;
	int rc = veil_blobsvc_register_ex(http, srv, &blobs);
	if (rc == 0)
		rc = veil_gateway_register(gw, http, blobs);
	if (rc == 0)
		rc = veil_dirsvc_register(http, srv);
	if (rc == 0)
		rc = veil_medsvc_register(http, srv);
	if (rc == 0)
		rc = veil_rdvsvc_register(http, srv);
	char web_root[1024];
	if (rc == 0 && veil_websvc_root(&srv->cfg, web_root, sizeof web_root) == 0 &&
	    (rc = veil_websvc_register(http, srv, web_root)) != 0)
		fprintf(stderr, "veild: cannot serve the web client from %s\n", web_root);
	if (rc == 0)
		rc = veil_safesvc_register(http, srv);
	if (rc == 0)
		rc = veil_http_run(http);
	if (rc != 0)
		fprintf(stderr, "veild: cannot start the HTTP services: %s\n", veil_strerror(rc));
	return rc;
}

int main(int argc, char **argv)
{
	static struct veil_server srv;
	struct veil_privdrop drop = {0};
	struct app app = {0};
	struct veil_http *http = NULL;
	char err[512], dbpath[1100], hex[VEIL_HEX_LEN(32)];
	int rc = 1, lock_fd = -1;

	veil_config_defaults(&srv.cfg);
	if (parse_args(argc, argv, &srv.cfg) != 0)
		return 2;
	veil_log_set_level((enum veil_log_level)srv.cfg.log_level);
	veil_metrics_log_ip = &srv.cfg.log_ip;
	/* Everything veild writes (store, keys, blobs) is its user's alone. */
	umask(077);
	/* Room for every connection the services allow: the soft limit up to the hard one. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	if (veil_crypto_init() != 0) {
		fprintf(stderr, "veild: cannot initialise libsodium\n");
		return 1;
	}
	if (srv.cfg.user[0] != '\0' &&
	    veil_privdrop_prepare(&drop, srv.cfg.user, srv.cfg.data_dir, err, sizeof err) != 0) {
		fprintf(stderr, "veild: %s\n", err);
		return 1;
	}
	if (veil_server_keys_load(&srv.keys, srv.cfg.data_dir, err, sizeof err) != 0) {
		fprintf(stderr, "veild: %s\n", err);
		return 1;
	}
	check_data_dir_mode(srv.cfg.data_dir);
	lock_fd = lock_data_dir(srv.cfg.data_dir);
	if (lock_fd < 0) {
		veil_server_keys_free(&srv.keys);
		return 1;
	}
	app.loop = uv_default_loop();
	/*
	 * A login's X25519 work runs on libuv's pool, 4 threads unless told:
	 * one per CPU (and per chat loop), so that logins use every core, also
	 * beyond the VEIL_CHAT_AUTO_THREADS loops.
	 */
	unsigned pool =
	    veil_chat_pool_threads(veil_chat_threads(&srv.cfg), uv_available_parallelism());
	if (getenv("UV_THREADPOOL_SIZE") == NULL && pool > 4) {
		char n[16];
		snprintf(n, sizeof n, "%u", pool);
		setenv("UV_THREADPOOL_SIZE", n, 1);
	}
	app.chat = veil_chat_new(app.loop, &srv);
	if (app.chat == NULL) {
		fprintf(stderr, "veild: out of memory\n");
		goto out;
	}
	srv.chat = app.chat;
	if (srv.cfg.store[0] != '\0')
		snprintf(dbpath, sizeof dbpath, "%s", srv.cfg.store);
	else
		snprintf(dbpath, sizeof dbpath, "%s/veil.db", srv.cfg.data_dir);
	struct veil_store_opts so = {.path = dbpath,
	                             .queue_limit = srv.cfg.queue_limit,
	                             .queue_sender_limit = srv.cfg.queue_sender_limit,
	                             .wake = veil_chat_store_wake,
	                             .wake_arg = app.chat,
	                             .event = veil_chat_store_event,
	                             .event_arg = app.chat,
	                             .check_ms = srv.cfg.store_check_ms,
	                             .reserve_bytes = (uint64_t)srv.cfg.store_reserve_mb << 20,
	                             .err = err,
	                             .errcap = sizeof err};
	err[0] = '\0';
	int src = veil_store_open(&srv.store, &so);
	if (src != 0) {
		store_open_error(dbpath, src, err);
		goto out;
	}
	if (veil_push_new(&srv.push, &srv) != 0) {
		fprintf(stderr, "veild: cannot start the push worker\n");
		goto out;
	}
	if (veil_chat_start(app.chat, err, sizeof err) != 0) {
		fprintf(stderr, "veild: %s\n", err);
		goto out;
	}
	if (veil_gateway_new(&app.gw, &srv, gateway_stored, &app) != 0) {
		if (srv.cfg.store[0] != '\0')
			fprintf(stderr, "veild: cannot open the Gateway's accounts in the store\n");
		else
			fprintf(stderr, "veild: cannot open %s/gateway.db\n", srv.cfg.data_dir);
		goto out;
	}
	if (srv.cfg.http_port != 0 &&
	    veil_http_probe(srv.cfg.listen, srv.cfg.http_port, err, sizeof err) != 0) {
		fprintf(stderr, "veild: %s\n", err);
		goto out;
	}
	if (veil_http_new(&http, &srv) != 0) {
		fprintf(stderr,
		        "veild: cannot listen on %s:%u for HTTP (is another server running?)\n",
		        srv.cfg.listen, srv.cfg.http_port);
		goto out;
	}
	app.http = http;
	if (start_http_services(http, &srv, app.gw) != 0 ||
	    veil_gateway_start(app.gw, srv.cfg.gw_callbacks) != 0)
		goto out;
	if (veil_admin_start(&app.admin, app.loop, &srv, err, sizeof err) != 0) {
		fprintf(stderr, "veild: %s\n", err);
		goto out;
	}
	app.srv = &srv;
	app.argc = argc;
	app.argv = argv;
	app.started_ms = veil_mono_ms();
	const struct veil_admin_hooks hooks = {
	    .kick = admin_kick, .status = admin_status, .arg = &app};
	veil_admin_set(app.admin, veil_gateway_db(app.gw), &hooks);
	if (srv.cfg.admin_listen_host[0] != '\0' &&
	    veil_adminhttp_start(&app.ahttp, app.loop, &srv, srv.cfg.admin_listen_host,
	                         srv.cfg.admin_listen_port, collect_metrics, &app, err,
	                         sizeof err) != 0) {
		fprintf(stderr, "veild: %s\n", err);
		goto out;
	}
	/* Every port is bound (the admin listener's too): root is no longer needed. */
	if (veil_privdrop_finish(&drop, err, sizeof err) != 0) {
		fprintf(stderr, "veild: %s\n", err);
		goto out;
	}
	uv_signal_init(app.loop, &app.sigint);
	uv_signal_init(app.loop, &app.sigterm);
	app.sigint.data = app.sigterm.data = &app;
	uv_signal_start(&app.sigint, on_signal, SIGINT);
	uv_signal_start(&app.sigterm, on_signal, SIGTERM);
	uv_signal_init(app.loop, &app.sighup);
	app.sighup.data = &app;
	uv_signal_start(&app.sighup, on_hup, SIGHUP);

	if (veil_hex_encode(hex, sizeof hex, srv.keys.csp_pk, 32) != 0)
		hex[0] = 0;
	printf("veild %s, data in %s\n", VEIL_VERSION, srv.cfg.data_dir);
	/* In a URL an IPv6 literal goes in brackets. */
	char uhost[80];
	snprintf(uhost, sizeof uhost, strchr(srv.cfg.listen, ':') != NULL ? "[%s]" : "%s",
	         srv.cfg.listen);
	printf("  chat        %s:%u (Chat Server Protocol)\n", uhost, srv.cfg.chat_port);
	printf("  directory   http://%s:%u/directory/\n", uhost, veil_http_port(http));
	printf("  provisioning http://%s:%u/.well-known/veil/provisioning\n", uhost,
	       veil_http_port(http));
	if (srv.cfg.blob_dir[0] != '\0')
		printf("  blob        http://%s:%u/blob/ (files in %s)\n", uhost,
		       veil_http_port(http), srv.cfg.blob_dir);
	else
		printf("  blob        http://%s:%u/blob/ (files in %s/blobs)\n", uhost,
		       veil_http_port(http), srv.cfg.data_dir);
	if (srv.cfg.safe_max_size > 0)
		printf("  safe        http://%s:%u/safe/ (Threema Safe backups in %s/safe)\n",
		       uhost, veil_http_port(http), srv.cfg.data_dir);
	printf("  gateway     http://%s:%u/gateway (message API for bots; veilctl gateway)\n",
	       uhost, veil_http_port(http));
	printf("  mediator    ws://%s:%u%s<hex of ClientUrlInfo> (multi-device)\n", uhost,
	       veil_http_port(http), VEIL_MEDIATOR_PREFIX);
	printf("  rendezvous  ws://%s:%u%s<64 hex digits> (device linking relay)\n", uhost,
	       veil_http_port(http), VEIL_RDV_PREFIX);
	{
		char web_root[1024];
		if (veil_websvc_root(&srv.cfg, web_root, sizeof web_root) == 0)
			printf("  web app     http://%s:%u%s/ (browser client, files in %s)\n",
			       uhost, veil_http_port(http), VEIL_WEB_PREFIX, web_root);
	}
	if (srv.cfg.public_url[0] != '\0')
		printf("  public URL  %s (announced for the HTTP services)\n", srv.cfg.public_url);
	if (srv.cfg.public_chat_port != 0)
		printf(strchr(srv.cfg.public_chat_host, ':') != NULL
		           ? "  public chat [%s]:%u (announced for the chat service)\n"
		           : "  public chat %s:%u (announced for the chat service)\n",
		       srv.cfg.public_chat_host, (unsigned)srv.cfg.public_chat_port);
	if (srv.cfg.store[0] != '\0') {
		char shown[1100];
		veil_store_describe(srv.cfg.store, shown, sizeof shown);
		printf("  store       %s (PostgreSQL)\n", shown);
	}
	printf("  sign-up     %s\n", veil_signup_name(srv.cfg.signup));
	printf("  admin       %s/%s (veilctl)\n", srv.cfg.data_dir, VEIL_ADMIN_SOCKET);
	if (app.ahttp != NULL)
		printf(strchr(srv.cfg.admin_listen_host, ':') != NULL
		           ? "  metrics     http://[%s]:%u/metrics (/healthz, /readyz)\n"
		           : "  metrics     http://%s:%u/metrics (/healthz, /readyz)\n",
		       srv.cfg.admin_listen_host, (unsigned)veil_adminhttp_port(app.ahttp));
	printf("  server key  %s\n", hex);
	printf("ready, pid %ld\n", (long)getpid());
	fflush(stdout);

	uv_run(app.loop, UV_RUN_DEFAULT);
	rc = 0;
out:
	veil_adminhttp_stop(app.ahttp);
	veil_http_stop(app.http);
	veil_admin_stop(app.admin);
	if (app.chat != NULL && rc != 0) {
		/* A failed start: close every handle the chat service put on the loop. */
		veil_chat_shutdown(app.chat);
		uv_run(app.loop, UV_RUN_DEFAULT);
	}
	/* The callback worker makes store calls: it ends before the store does. */
	veil_gateway_stop(app.gw);
	veil_push_free(srv.push);
	srv.push = NULL;
	/* The other chat loops end before the store does. */
	veil_chat_join(app.chat);
	/* Finishes queued writes durably and runs their completions. */
	veil_store_close(srv.store);
	veil_gateway_free(app.gw);
	srv.store = NULL;
	if (app.chat != NULL) {
		uv_run(app.loop, UV_RUN_NOWAIT);
		veil_chat_free(app.chat);
	}
	if (app.loop != NULL && uv_loop_close(app.loop) != 0)
		veil_log_error("veild: handles left open at exit");
	veil_server_keys_free(&srv.keys);
	if (lock_fd >= 0)
		close(lock_fd);
	if (rc == 0)
		veil_log_info("veild: stopped");
	return rc;
}
