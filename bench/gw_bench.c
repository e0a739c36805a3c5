/*
 * gw_bench: Gateway throughput. Starts veild (fresh data directory, API
 * identities made with veilctl) and drives it over keep-alive HTTP/1.1 from
 * CONNS connections in one poll loop, each sending its next request as soon
 * as the answer is in. Three endpoints on the same listener, in the same
 * run:
 *
 *   trivial   GET /x                 an unrouted path: 404 from the router
 *   credits   GET /gateway/credits   authentication and an account read
 *   send_e2e  POST /gateway/send_e2e a 200-byte box to another API
 *             identity, answered once durable in the store
 *
 * Prints requests per second (median of --runs) and send_e2e's ratio to the
 * trivial endpoint. Every answer must be 200 (404 for trivial); any other
 * counts as an error and fails the run (exit 1). Nothing is asserted about
 * speed.
 *
 *   gw_bench [--bin DIR] [--conns N] [--secs S] [--runs R]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#define MAX_CONNS 256

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A free loopback port in 20000-32000. */
static int free_port(void)
{
	for (int i = 0; i < 1000; i++) {
		int p = 20000 + (int)randombytes_uniform(12000);
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
		close(s);
		if (ok)
			return p;
	}
	return -1;
}

/* 1 once something accepts connections on the loopback port. */
static int listening(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
	close(s);
	return ok;
}

/* Runs argv, its stdout into out (cap); returns the exit status. */
static int run_capture(char *const argv[], char *out, size_t cap)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fds[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct conn {
	int fd;
	size_t sent, got;
	char buf[8192];
};

/*
 * Drives req (the whole request) over conns keep-alive connections for
 * secs; returns answers per second, or -1 if an answer had another status
 * than want or a connection failed.
 */
static double drive(int port, const char *req, int want, int nconns, double secs)
{
	static struct conn cs[MAX_CONNS];
	struct pollfd pf[MAX_CONNS];
	size_t rlen = strlen(req);
	long done = 0, bad = 0;
	for (int i = 0; i < nconns; i++) {
		cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int one = 1;
		setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(cs[i].fd, (struct sockaddr *)&a, sizeof a) != 0) {
			perror("gw_bench: connect");
			return -1;
		}
		cs[i].sent = cs[i].got = 0;
	}
	double t0 = now_s(), end = t0 + secs;
	while (now_s() < end) {
		for (int i = 0; i < nconns; i++) {
			pf[i].fd = cs[i].fd;
			pf[i].events = cs[i].sent < rlen ? POLLOUT : POLLIN;
		}
		if (poll(pf, (nfds_t)nconns, 100) < 0)
			return -1;
		for (int i = 0; i < nconns; i++) {
			struct conn *c = &cs[i];
			if (pf[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
				fprintf(stderr, "gw_bench: connection %d closed (%ld answers)\n", i,
				        done);
				return -1;
			}
			if ((pf[i].revents & POLLOUT) && c->sent < rlen) {
				ssize_t w = write(c->fd, req + c->sent, rlen - c->sent);
				if (w < 0)
					return -1;
				c->sent += (size_t)w;
			} else if (pf[i].revents & POLLIN) {
				ssize_t r =
				    read(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got);
				if (r <= 0) {
					fprintf(stderr,
					        "gw_bench: connection %d closed (%ld answers)\n", i,
					        done);
					return -1;
				}
				c->got += (size_t)r;
				c->buf[c->got] = '\0';
				char *hend = strstr(c->buf, "\r\n\r\n");
				if (hend == NULL)
					continue;
				long clen = 0;
				for (char *p = c->buf; p < hend; p++)
					if ((p == c->buf || p[-1] == '\n') &&
					    strncasecmp(p, "content-length:", 15) == 0)
						clen = strtol(p + 15, NULL, 10);
				size_t total = (size_t)(hend + 4 - c->buf) + (size_t)clen;
				if (c->got < total)
					continue;
				int status = (int)strtol(c->buf + 9, NULL, 10);
				if (status != want)
					bad++;
				done++;
				memmove(c->buf, c->buf + total, c->got - total);
				c->got -= total;
				c->sent = 0;
			}
		}
	}
	double el = now_s() - t0;
	for (int i = 0; i < nconns; i++)
		close(cs[i].fd);
	if (bad > 0) {
		fprintf(stderr, "gw_bench: %ld of %ld answers had another status than %d\n", bad,
		        done, want);
		return -1;
	}
	return (double)done / el;
}

/* Splits veilctl's "ID SECRET\n" into its words. */
static int split(const char *line, char *id, size_t idcap, char *secret, size_t scap)
{
	const char *sp = strchr(line, ' '), *nl = strchr(line, '\n');
	if (sp == NULL || nl == NULL || nl < sp || (size_t)(sp - line) >= idcap)
		return -1;
	memcpy(id, line, (size_t)(sp - line));
	id[sp - line] = '\0';
	if (secret != NULL) {
		if ((size_t)(nl - sp - 1) >= scap)
			return -1;
		memcpy(secret, sp + 1, (size_t)(nl - sp - 1));
		secret[nl - sp - 1] = '\0';
	}
	return 0;
}

/* CPU seconds (user + system, all threads) pid has used so far, or -1. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th. */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	p += 2;
	for (int i = 0; i < 11 && p != NULL; i++) {
		p = strchr(p, ' ');
		if (p != NULL)
			p++;
	}
	if (p == NULL)
		return -1;
	char *end;
	unsigned long ut = strtoul(p, &end, 10), st = strtoul(end, NULL, 10);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *bin = "build";
	int conns = 16, runs = 3, rc = 1;
	double secs = 3;
	static const struct option opts[] = {{"bin", required_argument, NULL, 'b'},
	                                     {"conns", required_argument, NULL, 'c'},
	                                     {"secs", required_argument, NULL, 's'},
	                                     {"runs", required_argument, NULL, 'r'},
	                                     {NULL, 0, NULL, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'b')
			bin = optarg;
		else if (o == 'c')
			conns = (int)strtol(optarg, NULL, 10);
		else if (o == 's')
			secs = strtod(optarg, NULL);
		else if (o == 'r')
			runs = (int)strtol(optarg, NULL, 10);
		else
			return 2;
	}
	if (conns < 1 || conns > MAX_CONNS || runs < 1 || runs > 20 || secs <= 0 ||
	    sodium_init() < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	char dir[] = "/tmp/veil-gwbench.XXXXXX", data[64], veild[512], veilctl[512], out[256];
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(data, sizeof data, "%s/srv", dir);
	mkdir(data, 0700);
	snprintf(veild, sizeof veild, "%s/veild", bin);
	snprintf(veilctl, sizeof veilctl, "%s/veilctl", bin);
	char from[16], secret[64], to[16];
	char *c1[] = {veilctl, "gateway", "--data", data, "create", "--id", "*BENCH01", NULL};
	char *c2[] = {veilctl, "gateway", "--data", data, "create", "--id", "*BENCH02", NULL};
	if (run_capture(c1, out, sizeof out) != 0 ||
	    split(out, from, sizeof from, secret, sizeof secret) != 0 ||
	    run_capture(c2, out, sizeof out) != 0 || split(out, to, sizeof to, NULL, 0) != 0) {
		fprintf(stderr, "gw_bench: veilctl gateway create failed\n");
		return 1;
	}
	int hp = free_port(), cp = free_port();
	char hps[16], cps[16];
	snprintf(hps, sizeof hps, "%d", hp);
	snprintf(cps, sizeof cps, "%d", cp);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", 1);
		dup2(null, 1);
		dup2(null, 2);
		execl(veild, veild, "--data", data, "--http-port", hps, "--chat-port", cps,
		      "--gateway-rate", "100000000", "--gateway-addr-rate", "100000000",
		      "--queue-limit", "10000000", "--queue-sender-limit", "10000000",
		      "--http-conn-per-addr", "1024", "--http-conn-rate", "1000000", (char *)NULL);
		_exit(127);
	}
	/* Ready once the listener answers. */
	for (int i = 0; i < 100 && !listening(hp); i++)
		usleep(100000);
	char get_trivial[128], get_credits[256], post[2048], body[1024], nonce[49], box[401];
	uint8_t raw[200];
	randombytes_buf(raw, 24);
	sodium_bin2hex(nonce, sizeof nonce, raw, 24);
	randombytes_buf(raw, sizeof raw);
	sodium_bin2hex(box, sizeof box, raw, sizeof raw);
	snprintf(get_trivial, sizeof get_trivial, "GET /x HTTP/1.1\r\nHost: b\r\n\r\n");
	snprintf(get_credits, sizeof get_credits,
	         "GET /gateway/credits?from=%%2A%s&secret=%s HTTP/1.1\r\nHost: b\r\n\r\n", from + 1,
	         secret);
	int bl = snprintf(body, sizeof body, "from=%%2A%s&to=%%2A%s&nonce=%s&box=%s&secret=%s",
	                  from + 1, to + 1, nonce, box, secret);
	snprintf(post, sizeof post,
	         "POST /gateway/send_e2e HTTP/1.1\r\nHost: b\r\nContent-Type: "
	         "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
	         bl, body);
	double t[20], c[20], s[20];
	double tc[20], cc[20], sc[20]; /* veild CPU microseconds per request */
	double tg[20], cg[20], sg[20]; /* gw_bench's own, to see when it was the limit */
	pid_t self = getpid();
	for (int r = 0; r < runs; r++) {
		double u0 = cpu_s(pid), g0 = cpu_s(self);
		t[r] = drive(hp, get_trivial, 404, conns, secs);
		double u1 = cpu_s(pid), g1 = cpu_s(self);
		c[r] = drive(hp, get_credits, 200, conns, secs);
		double u2 = cpu_s(pid), g2 = cpu_s(self);
		s[r] = drive(hp, post, 200, conns, secs);
		double u3 = cpu_s(pid), g3 = cpu_s(self);
		tc[r] = (u1 - u0) * 1e6 / (t[r] * secs);
		cc[r] = (u2 - u1) * 1e6 / (c[r] * secs);
		sc[r] = (u3 - u2) * 1e6 / (s[r] * secs);
		tg[r] = (g1 - g0) * 1e6 / (t[r] * secs);
		cg[r] = (g2 - g1) * 1e6 / (c[r] * secs);
		sg[r] = (g3 - g2) * 1e6 / (s[r] * secs);
		if (t[r] < 0 || c[r] < 0 || s[r] < 0) {
			fprintf(stderr, "gw_bench: run %d failed\n", r + 1);
			goto out;
		}
	}
	qsort(t, (size_t)runs, sizeof t[0], cmp_d);
	qsort(c, (size_t)runs, sizeof c[0], cmp_d);
	qsort(s, (size_t)runs, sizeof s[0], cmp_d);
	qsort(tc, (size_t)runs, sizeof tc[0], cmp_d);
	qsort(cc, (size_t)runs, sizeof cc[0], cmp_d);
	qsort(sc, (size_t)runs, sizeof sc[0], cmp_d);
	qsort(tg, (size_t)runs, sizeof tg[0], cmp_d);
	qsort(cg, (size_t)runs, sizeof cg[0], cmp_d);
	qsort(sg, (size_t)runs, sizeof sg[0], cmp_d);
	printf("gateway, %d keep-alive connections, %.0f s per endpoint, median of %d runs:\n",
	       conns, secs, runs);
	printf("  trivial  GET /x (404)            %8.0f req/s  %6.1f us veild CPU/req  %6.1f us "
	       "gw_bench's\n",
	       t[runs / 2], tc[runs / 2], tg[runs / 2]);
	printf("  credits  GET /gateway/credits    %8.0f req/s  %6.1f us veild CPU/req  %6.1f us "
	       "gw_bench's  (%.2fx trivial)\n",
	       c[runs / 2], cc[runs / 2], cg[runs / 2], c[runs / 2] / t[runs / 2]);
	printf("  send_e2e POST /gateway/send_e2e  %8.0f req/s  %6.1f us veild CPU/req  %6.1f us "
	       "gw_bench's  (%.2fx trivial, durable)\n",
	       s[runs / 2], sc[runs / 2], sg[runs / 2], s[runs / 2] / t[runs / 2]);
	rc = 0;
out:
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
