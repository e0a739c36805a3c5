/*
 * chatbench: measures the chat relay against the bare relay ceiling in the
 * same run, on this machine.
 *
 * It starts veild (fresh data directory) and bench/bare_relay as child
 * processes pinned to CPU 0, pins itself to CPU 1, creates identities
 * through the directory, and drives workloads over the real Chat Server
 * Protocol (handshake, encrypted frames, server acks and client acks) or
 * over the bare relay's plain framing with frames of the same size. The
 * bare relay runs twice: writing each frame as it comes (the minimal relay
 * the ratio is to) and coalescing writes per loop pass (a copying pump, the
 * ceiling of kernel and generator):
 *
 *   W1 handshake storm   logins per second and login latency
 *   W2 idle              server memory per authenticated idle connection
 *   W3 1:1 relay         pairs flat out (msgs/s, CPU us per message), the
 *                        same with the hand-off off (store first), and
 *                        paced from many senders (latency from intended
 *                        send time)
 *   W4 offline drain     recipients x queued messages, durable
 *   W5 mixed run         minutes of churn (logouts, logins), 1:1 and group
 *                        messages paced, online and queued: veild memory
 *                        growth after warm-up and p99 drift (see w5())
 *   W6 login storm       a paced stream's latency while others log in
 *   W7 quiet messages    1,000 senders paced at 5,000, 10,000 and 20,000
 *                        msgs/s, veild with its wake-up coalescing off and
 *                        on (--chat-coalesce-us), beside the bare relay at
 *                        the same pacing and veild flat out (10 pairs): the
 *                        CPU a message costs when the server is not busy,
 *                        and veild's sleeps per message
 *
 * Every run counts lost and duplicated messages; any is a failure (exit 1).
 * Figures are medians of --runs runs; --json FILE writes them.
 * --smoke runs every workload briefly for correctness only.
 */
#define _GNU_SOURCE /* sched_setaffinity, accept4 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "veil/csp.h"
#include "veil/dir.h"
#include "veil/e2e.h"

#include "proc.h"

#define INBUF (2 + VEIL_CSP_MAX_FRAME + 4096)
/*
 * Message IDs carry a tag of the run in their high bits, so that a message
 * left over from an earlier run (redelivered because its ack was in flight
 * when that run closed its connections) is recognised and not counted.
 */
#define SEQ_BITS 40
static uint64_t run_tag;
static int opt_window = 64;
static int opt_pairs;
static const char *opt_handoff = "100"; /* veild --handoff-ms */
static const char *opt_coalesce;        /* veild --chat-coalesce-us, NULL: its default */
static const char *opt_threads;         /* veild --chat-threads, if given */
static int opt_unpinned;                /* --cpus all: neither veild nor chatbench is pinned */
static int opt_storm;                   /* --storm N: W6's concurrent logins */
/*
 * --store URL: veild keeps its store in PostgreSQL; --nodes 2: a second
 * veild on the same store (same keys) takes W3's receivers, so that every
 * message crosses nodes (stored, then a NOTIFY wakes node B); --pg-pid: the
 * postmaster, whose processes' CPU is summed beside veild's in W3.
 */
static const char *opt_store;
static int opt_nodes = 1;
static pid_t opt_pg_pid;
static struct proc *node_b; /* the second node while W3 runs on veild */
#define RING 8192

/* --- server processes --- */

struct proc {
	pid_t pid;
	uint16_t port, http_port;
	char data[128];
	char url[96];
	uint8_t csp_pk[32];
};

static const char *bindir = "build";

/* Runs veild on p's data directory and ports, pinned to CPU 0, and waits for both ports. */
static int exec_veild(struct proc *p)
{
	char exe[256], cp[8], hp[8];
	snprintf(exe, sizeof exe, "%s/veild", bindir);
	snprintf(cp, sizeof cp, "%u", p->port);
	snprintf(hp, sizeof hp, "%u", p->http_port);
	/* The child's freopen would flush a copy of our pending stdout into a pipe. */
	fflush(NULL);
	p->pid = fork();
	if (p->pid == 0) {
		char logp[200];
		if (!opt_unpinned)
			pin_cpu(0);
		snprintf(logp, sizeof logp, "%s/veild.log", p->data);
		if (freopen(logp, "a", stdout) == NULL || freopen(logp, "a", stderr) == NULL)
			_exit(127);
		const char *argv[32] = {
		    exe,       "--data",           p->data,    "--chat-port",
		    cp,        "--http-port",      hp,         "--dir-rate",
		    "1000000", "--http-conn-rate", "1000000",  "--http-conn-per-addr",
		    "4096",    "--queue-limit",    "2000000",  "--log-level",
		    "warn",    "--handoff-ms",     opt_handoff};
		int argc = 19;
		/*
		 * The per-address limits a server on a network needs would refuse
		 * the benchmark's clients (19,000 from 250 addresses, connecting at
		 * once): lift them.
		 */
		argv[argc++] = "--chat-handshakes-per-addr";
		argv[argc++] = "19000";
		argv[argc++] = "--chat-conn-per-addr";
		argv[argc++] = "19000";
		argv[argc++] = "--chat-conn-rate";
		argv[argc++] = "0";
		if (opt_store != NULL) {
			argv[argc++] = "--store";
			argv[argc++] = opt_store;
		}
		if (opt_threads != NULL) {
			argv[argc++] = "--chat-threads";
			argv[argc++] = opt_threads;
		}
		if (opt_coalesce != NULL) {
			argv[argc++] = "--chat-coalesce-us";
			argv[argc++] = opt_coalesce;
		}
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	return wait_port(p->port, p->pid) != 0 || wait_port(p->http_port, p->pid) != 0 ? -1 : 0;
}

static int start_veild(struct proc *p)
{
	snprintf(p->data, sizeof p->data, "/tmp/veil-bench-XXXXXX");
	if (mkdtemp(p->data) == NULL)
		return -1;
	p->port = free_port();
	p->http_port = free_port();
	snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", p->http_port);
	if (exec_veild(p) != 0)
		return -1;
	struct veil_dir_provisioning prov;
	if (veil_dir_fetch_provisioning(p->url, NULL, NULL, &prov) != 0)
		return -1;
	memcpy(p->csp_pk, prov.csp_pk, 32);
	return 0;
}

/* A second node: its own data directory with a's key files, the same --store. */
static int start_node_b(const struct proc *a, struct proc *b)
{
	char cmd[700];
	snprintf(b->data, sizeof b->data, "/tmp/veil-bench-XXXXXX");
	if (mkdtemp(b->data) == NULL)
		return -1;
	snprintf(cmd, sizeof cmd, "cp -p '%s'/chat.key '%s'/directory.key '%s'/sign.key '%s'/",
	         a->data, a->data, a->data, b->data);
	if (system(cmd) != 0)
		return -1;
	b->port = free_port();
	b->http_port = free_port();
	snprintf(b->url, sizeof b->url, "http://127.0.0.1:%u", b->http_port);
	memcpy(b->csp_pk, a->csp_pk, 32);
	return exec_veild(b);
}

/* CPU time of the postmaster and every process it started (the backends), us. */
static uint64_t pg_cpu_us(void)
{
	if (opt_pg_pid <= 0)
		return 0;
	uint64_t sum = proc_cpu_us(opt_pg_pid);
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		char path[300], buf[512];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = 0;
		/* After the command: state, then the parent's PID. */
		char *p = strrchr(buf, ')');
		if (p != NULL && strtol(p + 4, NULL, 10) == (long)opt_pg_pid)
			sum += proc_cpu_us((pid_t)strtol(e->d_name, NULL, 10));
	}
	if (d != NULL)
		closedir(d);
	return sum;
}

/* Restarts veild on the same data directory and ports (a fresh process, same identities). */
static int restart_veild(struct proc *p)
{
	kill(p->pid, SIGTERM);
	waitpid(p->pid, NULL, 0);
	if (exec_veild(p) != 0)
		return -1;
	sleep(1);
	return 0;
}

static int start_bare(struct proc *p, int coalesce)
{
	char exe[256], port[8];
	p->port = free_port();
	snprintf(exe, sizeof exe, "%s/bench/bare_relay", bindir);
	snprintf(port, sizeof port, "%u", p->port);
	p->pid = fork();
	if (p->pid == 0) {
		pin_cpu(0);
		execl(exe, exe, port, coalesce ? "--coalesce" : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	return wait_port(p->port, p->pid);
}

static void stop_proc(struct proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
	if (p->data[0]) {
		char cmd[400];
		/* Keep the server's log of the last run for a look after a failure. */
		snprintf(cmd, sizeof cmd,
		         "cp '%s/veild.log' /tmp/chatbench-veild.log 2>/dev/null; rm -rf '%s'",
		         p->data, p->data);
		if (system(cmd) != 0)
			fprintf(stderr, "chatbench: could not remove %s\n", p->data);
		p->data[0] = 0;
	}
}

/* --- identities --- */

struct user {
	uint8_t id[8];
	uint8_t pk[32];
	uint8_t sk[32];
};

/* Registers n identities with k parallel worker processes. */
static int make_users(const struct proc *p, struct user *u, int n)
{
	enum { K = 6 };
	int fds[K][2];
	pid_t pids[K];
	char dir_url[128];
	snprintf(dir_url, sizeof dir_url, "%s/directory/", p->url);
	for (int w = 0; w < K; w++) {
		if (pipe(fds[w]) != 0)
			return -1;
		pids[w] = fork();
		if (pids[w] == 0) {
			close(fds[w][0]);
			for (int i = w; i < n; i += K) {
				struct user x;
				veil_keypair(x.pk, x.sk);
				if (veil_dir_create_identity(dir_url, x.pk, x.sk, NULL, x.id) !=
				    0) {
					fprintf(stderr, "register: %s\n", veil_dir_errmsg());
					_exit(1);
				}
				if (write(fds[w][1], &x, sizeof x) != sizeof x)
					_exit(1);
			}
			_exit(0);
		}
		close(fds[w][1]);
	}
	int ok = 0;
	for (int w = 0; w < K; w++) {
		for (int i = w; i < n; i += K) {
			size_t got = 0;
			while (got < sizeof u[i]) {
				ssize_t r =
				    read(fds[w][0], (uint8_t *)&u[i] + got, sizeof u[i] - got);
				if (r <= 0) {
					ok = -1;
					break;
				}
				got += (size_t)r;
			}
		}
		close(fds[w][0]);
		int st;
		waitpid(pids[w], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			ok = -1;
	}
	return ok;
}

/* --- connections --- */

/* C_LEAVING: W5 closed its write side and reads until the server closes. */
enum cstate { C_CONNECTING, C_HELLO, C_ACK, C_READY, C_LEAVING, C_DEAD };

struct lconn {
	int fd;
	enum cstate st;
	int user;       /* index into users */
	int pair;       /* pair index, -1 if none */
	int sender;     /* 1 sender, 0 receiver */
	int drained;    /* got queue-send-complete */
	int pollout;    /* registered for EPOLLOUT */
	int leave;      /* W5: go offline once the output (client acks) is written */
	int dirty;      /* on the run's list of connections with output to write */
	uint64_t rx_us; /* paced: when the kernel received what was read last (SO_TIMESTAMPNS) */
	struct run *run;
	uint32_t sess;    /* session number of the current login, 0 before one */
	uint64_t off_us;  /* W5: how long to stay offline */
	uint64_t back_at; /* W5: reconnect at this time */
	uint64_t t_start;
	struct veil_csp_client hs;
	size_t in_len;
	uint8_t *in;
	size_t out_len, out_cap;
	uint8_t *out;
};

struct pair {
	int s, r; /* connection indexes */
	uint64_t sent, acked, received, next_seq, dups, gaps;
	uint64_t next_due_us; /* paced mode */
	uint64_t heap_at;     /* its key in the run's heap: next_due_us, or a retry time */
	uint64_t ring[RING];  /* intended send times by seq % RING */
	uint32_t late[RING];  /* paced: how late the generator sent it, us */
	uint8_t *tmpl;        /* sealed message, msg_id at offset 16 */
	size_t tmpl_len;
};

struct run {
	int bare;
	int split; /* W3 on two nodes: receivers on node_b */
	struct proc *srv;
	struct user *users;
	struct lconn *c;
	int nconn;
	struct pair *pairs;
	int npairs;
	int ep;
	int window;         /* flat out: max unacked per pair */
	double rate;        /* paced: total msgs/s, 0 = flat out */
	uint64_t frame_len; /* CSP frame length of one message, bare mimics it */
	uint32_t *lat;      /* latency samples, us */
	size_t nlat, lat_cap;
	/*
	 * Paced: each sample's parts, by the same index (see tail_parts()): how
	 * late the generator sent it, and how long the received bytes waited in
	 * the generator's socket before it read them. The rest is the server's
	 * and the kernel's.
	 */
	uint32_t *sent_late, *read_late;
	size_t parts_cap;
	uint64_t logins;
	uint32_t *login_lat;
	size_t nlogin_lat, login_lat_cap;
	int storm;         /* W1: reconnect after login */
	uint32_t sessions; /* logins so far, numbers sessions */
	/*
	 * The generator must cost little per message, or a paced run measures it
	 * rather than the server: connections with output are kept on a list
	 * instead of scanning every connection per loop pass, and paced pairs sit
	 * in a heap by due time instead of scanning every pair.
	 */
	int *dirty, ndirty;
	int *due, ndue; /* heap of pair indexes by next_due_us */
	int due_all;    /* every pair has been scheduled */
	struct w5 *w5;  /* W5 state, NULL in the other workloads */
	uint64_t errors;
};

struct w5;
static void w5_tick(struct run *r);
static uint64_t w5_next_due(struct run *r);
static void w5_on_ack(struct run *r, struct lconn *c, const uint8_t *d, size_t n);
static void w5_on_msg(struct run *r, struct lconn *c, const uint8_t *m);
static void w5_gone(struct run *r, struct lconn *c);

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void out_append(struct lconn *c, const uint8_t *p, size_t n)
{
	if (!c->dirty) {
		c->dirty = 1;
		c->run->dirty[c->run->ndirty++] = (int)(c - c->run->c);
	}
	if (c->out_len + n > c->out_cap) {
		c->out_cap = (c->out_len + n) * 2 + 4096;
		c->out = realloc(c->out, c->out_cap);
		if (c->out == NULL)
			abort();
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void conn_flush(struct run *r, struct lconn *c)
{
	(void)r;
	while (c->out_len > 0) {
		ssize_t k = write(c->fd, c->out, c->out_len);
		if (k <= 0)
			break;
		memmove(c->out, c->out + k, c->out_len - (size_t)k);
		c->out_len -= (size_t)k;
	}
	/* Change the registration only when the need to wait for POLLOUT changes. */
	int want = c->out_len > 0;
	if (want != c->pollout) {
		struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
		                         .data.u32 = (uint32_t)(c - r->c)};
		epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->pollout = want;
	}
}

static void send_csp(struct lconn *c, uint8_t type, const uint8_t *d, size_t n)
{
	uint8_t plain[VEIL_CSP_MAX_PAYLOAD], frame[2 + VEIL_CSP_MAX_FRAME];
	veil_csp_payload_header(plain, type);
	memcpy(plain + 4, d, n);
	if (veil_csp_frame_seal(&c->hs.sess, frame, plain, n + 4) != 0)
		abort();
	out_append(c, frame, 2 + VEIL_MAC_LEN + n + 4);
}

static int conn_open(struct run *r, int i)
{
	struct lconn *c = &r->c[i];
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		return -1;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (r->sent_late)
		setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
	set_nonblock(c->fd);
	/*
	 * Spread the connections over source addresses 127.0.0.2-251: one
	 * address has ~28k ephemeral ports, and the TIME_WAIT left by a
	 * handshake storm or by closing 19k idle connections would use them up
	 * for the next minute.
	 */
	struct sockaddr_in src = {.sin_family = AF_INET,
	                          .sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)i % 250u)};
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0)
		return -1;
	/* With two nodes, W3's receivers (odd connections) log in on node B. */
	uint16_t port = r->split && i % 2 == 1 ? node_b->port : r->srv->port;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	c->st = C_CONNECTING;
	c->in_len = 0;
	c->out_len = 0;
	c->drained = 0;
	c->leave = 0;
	c->t_start = now_us();
	if (c->in == NULL)
		c->in = malloc(INBUF);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
		return -1;
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
	epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev);
	c->pollout = 1;
	return 0;
}

static void conn_close(struct run *r, struct lconn *c)
{
	epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->st = C_DEAD;
}

static void on_connected(struct run *r, struct lconn *c)
{
	if (r->bare) {
		uint32_t num = (uint32_t)c->user;
		out_append(c, (uint8_t *)&num, 4);
		c->st = C_ACK; /* until the relay echoes the number */
		return;
	}
	uint8_t ch[48];
	veil_csp_client_hello(&c->hs, r->srv->csp_pk, ch);
	out_append(c, ch, sizeof ch);
	c->st = C_HELLO;
}

static void pair_send(struct run *r, struct pair *p, uint64_t intended_us)
{
	struct lconn *c = &r->c[p->s];
	uint64_t seq = p->sent++;
	p->ring[seq % RING] = intended_us;
	if (r->sent_late) {
		uint64_t now = now_us();
		p->late[seq % RING] = now > intended_us ? (uint32_t)(now - intended_us) : 0;
	}
	if (r->bare) {
		uint8_t frame[2 + VEIL_CSP_MAX_FRAME];
		size_t len = r->frame_len - 2;
		uint32_t dest = (uint32_t)r->c[p->r].user;
		memset(frame, 0, 2 + len);
		veil_store_u16le(frame, (uint16_t)len);
		memcpy(frame + 2, &dest, 4);
		veil_store_u64le(frame + 6, (run_tag << SEQ_BITS) | (seq + 1));
		out_append(c, frame, 2 + len);
		p->acked++; /* the bare relay has no acks */
		return;
	}
	veil_store_u64le(p->tmpl + 16, (run_tag << SEQ_BITS) | (seq + 1));
	send_csp(c, VEIL_CSP_OUTGOING_MESSAGE, p->tmpl, p->tmpl_len);
}

static void record_delivery(struct run *r, struct pair *p, uint64_t msg_id, uint64_t rx_us)
{
	uint64_t now = now_us();
	if (msg_id >> SEQ_BITS != run_tag)
		return; /* from an earlier run */
	uint64_t seq = (msg_id & ((1ull << SEQ_BITS) - 1)) - 1;
	if (seq < p->next_seq) {
		p->dups++;
		return;
	}
	if (seq > p->next_seq)
		p->gaps += seq - p->next_seq;
	p->next_seq = seq + 1;
	p->received++;
	if (r->nlat >= r->lat_cap)
		return;
	if (r->sent_late && r->nlat < r->parts_cap) {
		r->sent_late[r->nlat] = p->late[seq % RING];
		r->read_late[r->nlat] = rx_us && rx_us < now ? (uint32_t)(now - rx_us) : 0;
	}
	r->lat[r->nlat++] = (uint32_t)(now - p->ring[seq % RING]);
}

/* Handles one whole frame (box after the length prefix) of a ready connection. */
static void on_frame(struct run *r, struct lconn *c, const uint8_t *box, size_t n)
{
	if (r->bare) {
		record_delivery(r, &r->pairs[c->pair], veil_load_u64le(box + 4), c->rx_us);
		return;
	}
	uint8_t plain[VEIL_CSP_MAX_FRAME];
	if (veil_csp_frame_open(&c->hs.sess, plain, box, n) != 0) {
		r->errors++;
		conn_close(r, c);
		return;
	}
	size_t len = n - VEIL_MAC_LEN;
	switch (plain[0]) {
	case VEIL_CSP_OUTGOING_ACK:
		if (r->w5)
			w5_on_ack(r, c, plain + 4, len - 4);
		else if (c->pair >= 0)
			r->pairs[c->pair].acked++;
		break;
	case VEIL_CSP_INCOMING_MESSAGE: {
		if (len < 4 + 64) {
			r->errors++;
			break;
		}
		const uint8_t *m = plain + 4;
		if (r->w5) {
			w5_on_msg(r, c, m);
			break;
		}
		uint64_t msg_id = veil_load_u64le(m + 16);
		uint8_t ack[16];
		veil_csp_ack_encode(ack, m, msg_id);
		send_csp(c, VEIL_CSP_INCOMING_ACK, ack, sizeof ack);
		if (c->pair >= 0)
			record_delivery(r, &r->pairs[c->pair], msg_id, c->rx_us);
		else if (msg_id >> SEQ_BITS == run_tag)
			r->pairs[0].received++; /* the drain workload counts in pair 0 */
		break;
	}
	case VEIL_CSP_QUEUE_SEND_COMPLETE: c->drained = 1; break;
	case VEIL_CSP_ECHO_REQUEST:
		if (c->st != C_LEAVING) /* the write side is closed */
			send_csp(c, VEIL_CSP_ECHO_RESPONSE, plain + 4, len - 4);
		break;
	case VEIL_CSP_CLOSE_ERROR:
	case VEIL_CSP_ALERT: r->errors++; break;
	default: break;
	}
}

/* Monotonic minus real time, to place SO_TIMESTAMPNS's real-time stamps. */
static int64_t mono_minus_real_us(void)
{
	struct timespec m, t;
	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &t);
	return ((int64_t)m.tv_sec - (int64_t)t.tv_sec) * 1000000 +
	       ((int64_t)m.tv_nsec - (int64_t)t.tv_nsec) / 1000;
}

/* read(), and on a paced run's receivers the kernel's time of receipt too. */
static ssize_t conn_read(struct run *r, struct lconn *c)
{
	if (r->sent_late == NULL || c->sender || c->pair < 0)
		return read(c->fd, c->in + c->in_len, INBUF - c->in_len);
	static int64_t off;
	if (off == 0)
		off = mono_minus_real_us();
	struct iovec iov = {c->in + c->in_len, INBUF - c->in_len};
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	ssize_t k = recvmsg(c->fd, &mh, 0);
	c->rx_us = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); k > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(cm), sizeof ts);
			int64_t us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + off;
			c->rx_us = us > 0 ? (uint64_t)us : 0;
		}
	return k;
}

static void on_readable(struct run *r, struct lconn *c)
{
	for (;;) {
		ssize_t k = conn_read(r, c);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
			if (c->st == C_LEAVING) {
				w5_gone(r, c); /* the server closed after our EOF */
				return;
			}
			if (!r->storm || c->pair >= 0)
				r->errors++;
			conn_close(r, c);
			return;
		}
		if (k < 0)
			return;
		c->in_len += (size_t)k;
		size_t off = 0;
		for (;;) {
			size_t avail = c->in_len - off;
			const uint8_t *p = c->in + off;
			if (c->st == C_HELLO) {
				if (avail < 80)
					break;
				struct veil_buf login;
				veil_buf_init(&login, 8192);
				if (veil_csp_client_server_hello(&c->hs, p) != 0 ||
				    veil_csp_client_login(&c->hs, &login, r->users[c->user].id,
				                          r->users[c->user].sk, "bench;B;en/CH;x;y",
				                          0, NULL) != 0) {
					r->errors++;
					conn_close(r, c);
					veil_buf_release(&login);
					return;
				}
				out_append(c, login.p, login.len);
				veil_buf_release(&login);
				c->st = C_ACK;
				off += 80;
				continue;
			}
			if (c->st == C_ACK && r->bare) {
				if (avail < 4)
					break;
				off += 4;
				c->st = C_READY;
				c->drained = 1;
				r->logins++;
				continue;
			}
			if (c->st == C_ACK) {
				if (avail < 32)
					break;
				if (veil_csp_client_login_ack(&c->hs, p) != 0) {
					r->errors++;
					conn_close(r, c);
					return;
				}
				off += 32;
				c->st = C_READY;
				c->sess = ++r->sessions;
				r->logins++;
				if (r->nlogin_lat < r->login_lat_cap)
					r->login_lat[r->nlogin_lat++] =
					    (uint32_t)(now_us() - c->t_start);
				if (r->storm && c->pair < 0) {
					conn_close(r, c);
					return;
				}
				continue;
			}
			if (avail < 2)
				break;
			size_t flen = veil_load_u16le(p);
			if (avail < 2 + flen)
				break;
			on_frame(r, c, p + 2, flen);
			if (c->st == C_DEAD)
				return;
			off += 2 + flen;
		}
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

static int due_before(const struct run *r, int a, int b)
{
	return r->pairs[r->due[a]].heap_at < r->pairs[r->due[b]].heap_at;
}

static void due_swap(struct run *r, int a, int b)
{
	int t = r->due[a];
	r->due[a] = r->due[b];
	r->due[b] = t;
}

static void due_push(struct run *r, int pair)
{
	int i = r->ndue++;
	r->due[i] = pair;
	while (i > 0 && due_before(r, i, (i - 1) / 2)) {
		due_swap(r, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static int due_pop(struct run *r)
{
	int top = r->due[0];
	r->due[0] = r->due[--r->ndue];
	for (int i = 0;;) {
		int l = 2 * i + 1, m = i;
		if (l < r->ndue && due_before(r, l, m))
			m = l;
		if (l + 1 < r->ndue && due_before(r, l + 1, m))
			m = l + 1;
		if (m == i)
			break;
		due_swap(r, i, m);
		i = m;
	}
	return top;
}

static int pair_ready(struct run *r, const struct pair *p)
{
	return p->s >= 0 && r->c[p->s].st == C_READY && r->c[p->s].drained && r->c[p->r].drained;
}

/*
 * Paced: every pair sends every step microseconds, the pairs' first sends
 * spread over one step. A pair not ready when its message is due keeps that
 * due time and sends its backlog once ready (looked at once a millisecond).
 */
static void paced_send(struct run *r, uint64_t now)
{
	uint64_t step = (uint64_t)(1e6 / (r->rate / r->npairs));
	if (r->due == NULL)
		r->due = malloc((size_t)r->npairs * sizeof *r->due);
	if (!r->due_all) {
		int all = 1;
		for (int i = 0; i < r->npairs; i++) {
			struct pair *p = &r->pairs[i];
			if (p->next_due_us != 0)
				continue;
			if (!pair_ready(r, p)) {
				all = 0;
				continue;
			}
			p->next_due_us = now + (uint64_t)i * step / (uint64_t)r->npairs;
			p->heap_at = p->next_due_us;
			due_push(r, i);
		}
		r->due_all = all;
	}
	while (r->ndue > 0 && r->pairs[r->due[0]].heap_at <= now) {
		int i = due_pop(r);
		struct pair *p = &r->pairs[i];
		if (!pair_ready(r, p)) {
			p->heap_at = now + 1000;
			due_push(r, i);
			continue;
		}
		while (p->next_due_us <= now) {
			pair_send(r, p, p->next_due_us);
			p->next_due_us += step;
		}
		p->heap_at = p->next_due_us;
		due_push(r, i);
	}
}

/* Runs the event loop until done() says so or the deadline passes. */
static void loop(struct run *r, uint64_t deadline_us, int (*done)(struct run *))
{
	struct epoll_event evs[512];
	while (!done(r) && now_us() < deadline_us) {
		/* Senders: flat out within the window, or on schedule when paced. */
		uint64_t now = now_us();
		if (r->rate > 0) {
			paced_send(r, now);
		} else {
			for (int i = 0; i < r->npairs; i++) {
				struct pair *p = &r->pairs[i];
				if (!pair_ready(r, p))
					continue;
				while (p->sent - p->received < (uint64_t)r->window &&
				       p->sent - p->acked < (uint64_t)r->window)
					pair_send(r, p, now);
			}
		}
		if (r->w5)
			w5_tick(r);
		/* Write what the pass queued; a connection not ready to write stays listed. */
		int keep = 0;
		for (int k = 0; k < r->ndirty; k++) {
			struct lconn *c = &r->c[r->dirty[k]];
			if (c->out_len == 0 || c->st == C_DEAD) {
				c->dirty = 0;
			} else if (c->st == C_CONNECTING || c->st == C_LEAVING) {
				r->dirty[keep++] = r->dirty[k];
			} else {
				c->dirty = 0;
				conn_flush(r, c);
			}
		}
		r->ndirty = keep;
		/*
		 * Paced: wake exactly when the next message is due (epoll_wait's
		 * millisecond timeout would send up to 1 ms late, and latency counts
		 * from the intended send time).
		 */
		struct timespec ts = {0, 5000000};
		if (r->rate > 0 || r->w5) {
			uint64_t next = r->w5 ? w5_next_due(r) : UINT64_MAX, t = now_us();
			if (r->rate > 0 && r->ndue > 0 && r->pairs[r->due[0]].heap_at < next)
				next = r->pairs[r->due[0]].heap_at;
			if (r->rate > 0 && !r->due_all)
				next = t + 1000 < next ? t + 1000 : next;
			uint64_t wait = next == UINT64_MAX ? 1000 : next > t ? next - t : 0;
			if (wait > 1000)
				wait = 1000;
			ts.tv_nsec = (long)wait * 1000;
		}
		int n = epoll_pwait2(r->ep, evs, 512, &ts, NULL);
		for (int k = 0; k < n; k++) {
			struct lconn *c = &r->c[evs[k].data.u32];
			if (c->st == C_DEAD)
				continue;
			if (c->st == C_CONNECTING && (evs[k].events & (EPOLLOUT | EPOLLERR))) {
				int err = 0;
				socklen_t l = sizeof err;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
				if (err != 0) {
					r->errors++;
					conn_close(r, c);
					continue;
				}
				on_connected(r, c);
				conn_flush(r, c);
				continue;
			}
			if (evs[k].events & EPOLLOUT)
				conn_flush(r, c);
			if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(r, c);
		}
		if (r->storm) {
			/* Reopen closed connections to keep the storm going. */
			for (int i = 0; i < r->nconn; i++)
				if (r->c[i].pair < 0 && r->c[i].st == C_DEAD &&
				    conn_open(r, i) != 0)
					r->errors++;
		}
	}
}

static int all_ready(struct run *r)
{
	for (int i = 0; i < r->nconn; i++)
		if (r->c[i].st != C_READY || !r->c[i].drained)
			return 0;
	return 1;
}

static int never(struct run *r)
{
	(void)r;
	return 0;
}

/*
 * Every message sent has been answered by the server (acked) and every
 * acked one has arrived. Received alone is not enough: a put still on its
 * way when the senders stop is acked later, and delivered later still.
 */
static int all_settled(struct run *r)
{
	for (int i = 0; i < r->npairs; i++)
		if (r->pairs[i].acked < r->pairs[i].sent ||
		    r->pairs[i].received < r->pairs[i].acked)
			return 0;
	return 1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(uint32_t *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_u32);
	size_t i = (size_t)(q * (double)(n - 1));
	return v[i] / 1000.0; /* ms */
}

static void run_init(struct run *r, struct proc *srv, struct user *users, int nconn, int bare)
{
	memset(r, 0, sizeof *r);
	run_tag++;
	r->bare = bare;
	r->srv = srv;
	r->users = users;
	r->nconn = nconn;
	r->c = calloc((size_t)nconn, sizeof *r->c);
	r->ep = epoll_create1(0);
	r->lat_cap = 20000000;
	r->lat = malloc(r->lat_cap * sizeof *r->lat);
	r->login_lat_cap = 2000000;
	r->login_lat = malloc(r->login_lat_cap * sizeof *r->login_lat);
	r->dirty = malloc((size_t)nconn * sizeof *r->dirty);
	for (int i = 0; i < nconn; i++) {
		r->c[i].run = r;
		r->c[i].fd = -1;
		r->c[i].user = i;
		r->c[i].pair = -1;
		r->c[i].st = C_DEAD;
	}
}

static void run_free(struct run *r)
{
	for (int i = 0; i < r->nconn; i++) {
		if (r->c[i].fd >= 0)
			close(r->c[i].fd);
		free(r->c[i].in);
		free(r->c[i].out);
	}
	for (int i = 0; i < r->npairs; i++)
		free(r->pairs[i].tmpl);
	free(r->pairs);
	free(r->due);
	free(r->dirty);
	free(r->c);
	free(r->lat);
	free(r->sent_late);
	free(r->read_late);
	free(r->login_lat);
	close(r->ep);
}

static int ready_drained(const struct run *r)
{
	int n = 0;
	for (int i = 0; i < r->nconn; i++)
		n += r->c[i].st == C_READY && r->c[i].drained;
	return n;
}

/*
 * Opens every connection, at most CONNECT_WAVE still connecting or in the
 * handshake at a time: thousands of SYNs at once overflow the server's
 * listen queue (the kernel then drops or resets them), which clients coming
 * online do not do.
 */
#define CONNECT_WAVE 512

static int connect_all(struct run *r, int timeout_s)
{
	uint64_t deadline = now_us() + (uint64_t)timeout_s * 1000000u;
	int opened = 0;
	while (opened < r->nconn && now_us() < deadline) {
		int pending = 0;
		for (int i = 0; i < opened; i++)
			pending += r->c[i].st != C_READY && r->c[i].st != C_DEAD;
		while (pending < CONNECT_WAVE && opened < r->nconn) {
			if (conn_open(r, opened++) != 0)
				return -1;
			pending++;
		}
		loop(r, now_us() + 10000u, never);
	}
	loop(r, deadline, all_ready);
	if (all_ready(r))
		return 0;
	int st[C_DEAD + 1] = {0};
	for (int i = 0; i < r->nconn; i++)
		st[r->c[i].st]++;
	fprintf(stderr,
	        "chatbench: after %d s: connecting %d, hello %d, ack %d, ready %d (%d of them "
	        "not drained), dead %d; %llu errors\n",
	        timeout_s, st[C_CONNECTING], st[C_HELLO], st[C_ACK], st[C_READY],
	        st[C_READY] - ready_drained(r), st[C_DEAD], (unsigned long long)r->errors);
	return -1;
}

/* A sealed message of type with a body of n bytes from a to b; the caller frees *out. */
static void seal_message(uint8_t **out, size_t *out_len, const struct user *a, const struct user *b,
                         uint8_t type, size_t n)
{
	struct veil_buf m;
	uint8_t body[200];
	memset(body, 'x', sizeof body);
	struct veil_e2e_out o = {.msg_id = 1, .created_at_ms = veil_now_ms(), .type = type};
	memcpy(o.sender, a->id, 8);
	memcpy(o.receiver, b->id, 8);
	veil_buf_init(&m, 8192);
	if (n > sizeof body || veil_e2e_seal(&m, &o, a->sk, b->pk, body, n) != 0)
		abort();
	*out = m.p;
	*out_len = m.len;
}

/* A sealed 100-byte text message from users[a] to users[b]. */
static void make_template(struct pair *p, const struct user *a, const struct user *b)
{
	seal_message(&p->tmpl, &p->tmpl_len, a, b, VEIL_E2E_TEXT, 100);
}

struct result {
	double msgs_s, p50, p99, p999, cpu_us_msg, logins_s, bytes_per_conn;
	double gen_us;        /* chatbench's own CPU per message (per login in W1) */
	double sleeps;        /* W3: veild's sleeps (voluntary context switches) per message */
	double pg_cpu_us_msg; /* W3 with --pg-pid: PostgreSQL's CPU per message */
	/* Paced: the slowest 1%'s mean latency (ms), and the generator's shares of it. */
	double tail_ms, tail_sent_late, tail_read_late;
	/* W5 only (w5 set): churn, server memory and the p99 of the first and last window. */
	int w5;
	double logins, warm_s, secs, rss_warm_kb, rss_end_kb, rss_growth_kb, rss_kb_min;
	double window_s, p99_first, p99_last, p99_drift;
	uint64_t lost, dups, errors;
};

/*
 * Whose tail is it: over the slowest 1% of a paced run's messages, the mean
 * latency and the shares of it the generator itself added, by sending late
 * and by reading late. Called before pct(), which sorts r->lat.
 */
static void tail_parts(struct run *r, struct result *res)
{
	size_t n = r->nlat < r->parts_cap ? r->nlat : r->parts_cap;
	if (r->sent_late == NULL || n < 100)
		return;
	uint32_t *v = malloc(n * sizeof *v);
	if (v == NULL)
		return;
	memcpy(v, r->lat, n * sizeof *v);
	qsort(v, n, sizeof *v, cmp_u32);
	uint32_t cut = v[(size_t)(0.99 * (double)(n - 1))];
	free(v);
	double lat = 0, sent = 0, read = 0, k = 0;
	for (size_t i = 0; i < n; i++) {
		if (r->lat[i] < cut)
			continue;
		lat += r->lat[i];
		sent += r->sent_late[i];
		read += r->read_late[i];
		k++;
	}
	if (lat <= 0)
		return;
	res->tail_ms = lat / k / 1000.0;
	res->tail_sent_late = sent / lat;
	res->tail_read_late = read / lat;
}

/* CPU time of this process (the load generator), microseconds. */
static uint64_t self_cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
	       (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/*
 * W3: npairs pairs for secs seconds, flat out (rate 0) or paced; with storm
 * (W6) as many more identities log in over and over meanwhile.
 */
static int w3s(struct proc *srv, struct user *users, int npairs, double rate, double secs, int bare,
               int storm, struct result *res)
{
	struct run r;
	run_init(&r, srv, users, 2 * npairs + storm, bare);
	r.window = opt_window;
	r.rate = rate;
	r.npairs = npairs;
	r.split = !bare && node_b != NULL;
	r.pairs = calloc((size_t)npairs, sizeof *r.pairs);
	if (rate > 0) {
		r.parts_cap = (size_t)(rate * (secs + 2));
		if (r.parts_cap > r.lat_cap)
			r.parts_cap = r.lat_cap;
		r.sent_late = malloc(r.parts_cap * sizeof *r.sent_late);
		r.read_late = malloc(r.parts_cap * sizeof *r.read_late);
		if (r.sent_late == NULL || r.read_late == NULL)
			abort();
	}
	for (int i = 0; i < npairs; i++) {
		struct pair *p = &r.pairs[i];
		p->s = 2 * i;
		p->r = 2 * i + 1;
		r.c[p->s].pair = r.c[p->r].pair = i;
		r.c[p->s].sender = 1;
		make_template(p, &users[2 * i], &users[2 * i + 1]);
	}
	r.frame_len = 2 + VEIL_MAC_LEN + 4 + r.pairs[0].tmpl_len;
	memset(res, 0, sizeof *res);
	if (connect_all(&r, 60) != 0) {
		fprintf(stderr, "chatbench: could not connect %d clients to %s\n", r.nconn,
		        bare ? "the bare relay" : "veild");
		run_free(&r);
		return -1;
	}
	r.storm = storm > 0;
	for (int i = 2 * npairs; i < r.nconn; i++)
		if (conn_open(&r, i) != 0)
			r.errors++;
	/* Warm up for a second, then measure. */
	loop(&r, now_us() + 1000000u, never);
	pid_t pid_b = !bare && node_b != NULL ? node_b->pid : 0;
	uint64_t base_recv = 0, base_cpu = proc_cpu_us(srv->pid) + (pid_b ? proc_cpu_us(pid_b) : 0);
	uint64_t base_pg = bare ? 0 : pg_cpu_us(), gen0 = self_cpu_us();
	uint64_t l0 = r.logins, base_sleeps = proc_sleeps(srv->pid);
	for (int i = 0; i < npairs; i++)
		base_recv += r.pairs[i].received;
	r.nlat = 0;
	uint64_t t0 = now_us();
	loop(&r, t0 + (uint64_t)(secs * 1e6), never);
	uint64_t t1 = now_us();
	/*
	 * VEIL_BENCH_WINDOWS=FILE: each measured window, in CLOCK_MONOTONIC
	 * microseconds, for tools that look at the same time (bench/schedtail).
	 */
	const char *wpath = getenv("VEIL_BENCH_WINDOWS");
	FILE *wf = wpath ? fopen(wpath, "a") : NULL;
	if (wf) {
		fprintf(wf, "%s %.0f %d %llu %llu %d\n", bare ? "bare" : "veild", rate, npairs,
		        (unsigned long long)t0, (unsigned long long)t1, (int)srv->pid);
		fclose(wf);
	}
	uint64_t cpu = proc_cpu_us(srv->pid) + (pid_b ? proc_cpu_us(pid_b) : 0) - base_cpu;
	uint64_t pg_cpu = bare ? 0 : pg_cpu_us() - base_pg;
	uint64_t gen = self_cpu_us() - gen0, recv = 0, sleeps = proc_sleeps(srv->pid) - base_sleeps;
	res->logins_s = (double)(r.logins - l0) / ((double)(t1 - t0) / 1e6);
	r.storm = 0; /* the storm's connections stay closed from here */
	for (int i = 0; i < npairs; i++)
		recv += r.pairs[i].received;
	recv -= base_recv;
	/*
	 * Stop sending and wait until every message sent is acked and has
	 * arrived. Waiting only for the acked ones to arrive ended the run while
	 * puts were still under way (up to a window per pair when every message
	 * is stored first); the clients then closed, so an ack that came in the
	 * last moments counted its message as lost, and the rows stayed queued
	 * for recipients no longer connected.
	 */
	r.window = 0;
	r.rate = 0;
	loop(&r, now_us() + 20000000u, all_settled);
	/* Let the last client acks reach the server before closing. */
	loop(&r, now_us() + 300000u, never);
	res->msgs_s = (double)recv / ((double)(t1 - t0) / 1e6);
	res->cpu_us_msg = recv ? (double)cpu / (double)recv : 0;
	res->gen_us = recv ? (double)gen / (double)recv : 0;
	res->sleeps = recv ? (double)sleeps / (double)recv : 0;
	res->pg_cpu_us_msg = recv ? (double)pg_cpu / (double)recv : 0;
	tail_parts(&r, res);
	res->p50 = pct(r.lat, r.nlat, 0.5);
	res->p99 = pct(r.lat, r.nlat, 0.99);
	res->p999 = pct(r.lat, r.nlat, 0.999);
	res->errors = r.errors;
	for (int i = 0; i < npairs; i++) {
		struct pair *p = &r.pairs[i];
		res->lost += p->acked > p->received ? p->acked - p->received : 0;
		res->lost += p->gaps;
		res->dups += p->dups;
		/* Not answered after 20 s: neither lost (not acked) nor fine. */
		res->errors += p->sent - p->acked;
		if (p->acked > p->received || p->gaps || p->sent > p->acked)
			fprintf(stderr,
			        "chatbench: W3 pair %d: sent %llu, acked %llu, received %llu, "
			        "gaps %llu\n",
			        i, (unsigned long long)p->sent, (unsigned long long)p->acked,
			        (unsigned long long)p->received, (unsigned long long)p->gaps);
	}
	run_free(&r);
	return 0;
}

static int w3(struct proc *srv, struct user *users, int npairs, double rate, double secs, int bare,
              struct result *res)
{
	return w3s(srv, users, npairs, rate, secs, bare, 0, res);
}

/* W1: n identities log in over and over for secs seconds, conc at a time. */
static int w1(struct proc *srv, struct user *users, int conc, double secs, struct result *res)
{
	struct run r;
	run_init(&r, srv, users, conc, 0);
	r.storm = 1;
	memset(res, 0, sizeof *res);
	for (int i = 0; i < conc; i++)
		if (conn_open(&r, i) != 0)
			return -1;
	loop(&r, now_us() + 1000000u, never);
	uint64_t l0 = r.logins, t0 = now_us(), c0 = proc_cpu_us(srv->pid), g0 = self_cpu_us();
	r.nlogin_lat = 0;
	loop(&r, t0 + (uint64_t)(secs * 1e6), never);
	if (r.logins > l0)
		res->gen_us = (double)(self_cpu_us() - g0) / (double)(r.logins - l0);
	res->logins_s = (double)(r.logins - l0) / ((double)(now_us() - t0) / 1e6);
	/* The generator does the same X25519 work per login, so report the server's cost too. */
	if (r.logins > l0)
		res->cpu_us_msg = (double)(proc_cpu_us(srv->pid) - c0) / (double)(r.logins - l0);
	res->p50 = pct(r.login_lat, r.nlogin_lat, 0.5);
	res->p99 = pct(r.login_lat, r.nlogin_lat, 0.99);
	res->errors = r.errors;
	run_free(&r);
	return 0;
}

/* W2: n authenticated idle connections; server memory per connection. */
static int w2(struct proc *srv, struct user *users, int n, struct result *res)
{
	struct run r;
	run_init(&r, srv, users, n, 0);
	memset(res, 0, sizeof *res);
	long before = proc_rss_kb(srv->pid);
	if (connect_all(&r, 120) != 0) {
		fprintf(stderr, "chatbench: only some of %d idle connections came up\n", n);
		res->errors = 1;
	}
	sleep(2);
	long after = proc_rss_kb(srv->pid);
	uint64_t c0 = proc_cpu_us(srv->pid);
	loop(&r, now_us() + 5000000u, never);
	uint64_t c1 = proc_cpu_us(srv->pid);
	res->bytes_per_conn = (double)(after - before) * 1024.0 / n;
	res->cpu_us_msg = (double)(c1 - c0) / 5.0; /* idle CPU us per second */
	res->errors += r.errors;
	run_free(&r);
	return 0;
}

/*
 * W4: nrecv offline recipients each get per messages queued (sent by
 * nrecv senders, one per recipient), then all connect and drain.
 */
static int w4(struct proc *srv, struct user *users, int nrecv, int per, struct result *res)
{
	struct run r;
	memset(res, 0, sizeof *res);
	run_init(&r, srv, users, nrecv, 0);
	r.window = 256;
	r.npairs = nrecv;
	r.pairs = calloc((size_t)nrecv, sizeof *r.pairs);
	/* Phase 1: senders (users nrecv..2*nrecv) queue messages; recipients offline. */
	for (int i = 0; i < nrecv; i++) {
		r.c[i].user = nrecv + i;
		r.c[i].pair = i;
		r.c[i].sender = 1;
		r.pairs[i].s = i;
		r.pairs[i].r = i;
		make_template(&r.pairs[i], &users[nrecv + i], &users[i]);
	}
	if (connect_all(&r, 60) != 0)
		return -1;
	/* Flat out until every pair has sent `per` messages, all acked. */
	for (;;) {
		int done = 1;
		for (int i = 0; i < nrecv; i++) {
			struct pair *p = &r.pairs[i];
			if (p->sent < (uint64_t)per) {
				done = 0;
				int burst = 0;
				while (p->sent < (uint64_t)per && p->sent - p->acked < 256 &&
				       burst++ < 64)
					pair_send(&r, p, now_us());
			} else if (p->acked < p->sent) {
				done = 0;
			}
		}
		if (done)
			break;
		for (int i = 0; i < r.nconn; i++)
			if (r.c[i].out_len > 0)
				conn_flush(&r, &r.c[i]);
		struct epoll_event evs[512];
		int n = epoll_wait(r.ep, evs, 512, 5);
		for (int k = 0; k < n; k++) {
			struct lconn *c = &r.c[evs[k].data.u32];
			if (c->st == C_DEAD)
				continue;
			if (evs[k].events & EPOLLOUT)
				conn_flush(&r, c);
			if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(&r, c);
		}
		if (r.errors)
			break;
	}
	uint64_t queued = 0;
	for (int i = 0; i < nrecv; i++)
		queued += r.pairs[i].acked;
	res->errors = r.errors;
	run_free(&r);
	/* Phase 2: recipients connect and drain; pair 0 counts every delivery. */
	struct run d;
	uint64_t tag = run_tag;
	run_init(&d, srv, users, nrecv, 0);
	run_tag = tag;
	d.npairs = 1;
	d.pairs = calloc(1, sizeof *d.pairs);
	uint64_t t0 = now_us(), c0 = proc_cpu_us(srv->pid);
	for (int i = 0; i < nrecv; i++)
		if (conn_open(&d, i) != 0)
			return -1;
	loop(&d, now_us() + 600000000u, all_ready);
	uint64_t t1 = now_us();
	res->msgs_s = (double)d.pairs[0].received / ((double)(t1 - t0) / 1e6);
	res->cpu_us_msg = d.pairs[0].received
	                      ? (double)(proc_cpu_us(srv->pid) - c0) / (double)d.pairs[0].received
	                      : 0;
	res->lost = queued > d.pairs[0].received ? queued - d.pairs[0].received : 0;
	res->dups = d.pairs[0].received > queued ? d.pairs[0].received - queued : 0;
	res->errors += d.errors;
	run_free(&d);
	return 0;
}

/*
 * W5: a mixed run of --w5-secs seconds over a population of identities,
 * for memory growth and p99 drift.
 *
 * - Churn: each second about W5_CHURN_PCT % of the users go offline for 1 to
 *   10 s and then log in again with a full handshake.
 * - Traffic paced at --w5-rate outgoing messages per second in total (every
 *   group copy counts as one message): W5_GROUP_PCT % of the sends are a
 *   group message, one copy per member with the same message ID as Threema
 *   groups do, the rest 1:1. Senders are online users; recipients are any
 *   users, so messages to offline users are queued and drained at their next
 *   login.
 * - Each copy is tracked by (recipient, message ID): acked by the server,
 *   and how often delivered. At the end everyone logs in again and drains;
 *   a copy the server acked and nobody received is lost, a copy received
 *   twice is a duplicate.
 *
 * Going offline without false duplicates: a copy counts as received only
 * when the client also acks it. A user that leaves stops sending, waits
 * until its output (the client acks) is written, then shuts its write side
 * down and reads until the server closes: the server has read every ack
 * before it sees the end of the stream, and the store runs the acks before
 * the fetch of any later login. Copies that arrive after the shutdown are
 * neither acked nor counted, so the server's redelivery of them at the next
 * login is correct and is counted as their delivery. Any second delivery
 * of a counted copy is therefore a real duplicate.
 *
 * The server never opens the boxes, so every copy is the same sealed
 * message with its header's sender, receiver and message ID patched (as
 * W3 patches the ID); the bench's receivers do not open them either.
 *
 * Latency (intended send time to delivery) is taken only for copies whose
 * recipient was online when they were sent and received them in that same
 * session, after the warm-up (a fifth of the run). Server memory (VmRSS) is
 * sampled every 5 s; growth is from the end of the warm-up to the end.
 */
#define W5_CHURN_PCT 2.0
#define W5_GROUP_PCT 10
#define W5_GROUP 20
#define W5_OFF_MIN_US 1000000u
#define W5_OFF_MAX_US 10000000u
#define W5_WINDOW_S 30.0
#define W5_RSS_EVERY_US 5000000u

/* One copy of a message: (recipient, message ID). */
struct w5copy {
	uint32_t to;   /* recipient (user and connection index) */
	uint32_t sess; /* recipient's session when sent; 0 if it was not online */
	uint8_t acked; /* the server acked it to the sender */
	uint8_t got;   /* deliveries counted (received and acked by the client) */
};

/* One send: a 1:1 message or a group message's copies. */
struct w5send {
	uint64_t t_us;      /* intended send time */
	uint32_t first;     /* index of the first copy */
	uint32_t from;      /* sender */
	uint32_t from_sess; /* sender's session: its acks can come only there */
	uint16_t n;         /* copies */
};

struct w5lat {
	uint32_t at_ms; /* delivery time since the start */
	uint32_t us;    /* latency */
};

struct w5 {
	int users;
	double rate;
	struct w5send *sends;
	size_t nsends, sends_cap;
	struct w5copy *copies;
	size_t ncopies, copies_cap;
	uint8_t *tmpl, *gtmpl; /* 1:1 and group templates */
	size_t tmpl_len, gtmpl_len;
	int sending, churning;
	double next_due_us, churn_credit;
	uint64_t t0, t_warm, t_end, last_tick, last_scan, next_rss, rng;
	int warm_done;
	uint64_t cpu_warm, logins_warm, delivered; /* delivered: first deliveries after warm-up */
	long rss_warm;
	long rss[256];
	int nrss;
	struct w5lat *lat;
	size_t nlat, lat_cap;
	uint64_t dups, no_sender;
};

static uint64_t w5_rand(struct w5 *w)
{
	/* xorshift64*: cheap and good enough to pick users. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 2685821657736338717ull;
}

static uint32_t w5_pick(struct w5 *w, uint32_t n)
{
	return (uint32_t)((w5_rand(w) >> 32) % n);
}

/* Online: logged in, queue drained, not on its way out. */
static int w5_online(const struct lconn *c)
{
	return c->st == C_READY && c->drained && !c->leave;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	*cap = need * 2 + 1024;
	p = realloc(p, *cap * elem);
	if (p == NULL)
		abort();
	return p;
}

/* Sends one message to n recipients (1, or a group) from a random online user. */
static void w5_send(struct run *r, struct w5 *w, int n, uint64_t intended_us)
{
	uint32_t from = 0;
	int tries = 0;
	do
		from = w5_pick(w, (uint32_t)w->users);
	while (!w5_online(&r->c[from]) && ++tries < 64);
	if (!w5_online(&r->c[from])) {
		w->no_sender++;
		return;
	}
	w->sends = grow(w->sends, &w->sends_cap, w->nsends + 1, sizeof *w->sends);
	w->copies = grow(w->copies, &w->copies_cap, w->ncopies + (size_t)n, sizeof *w->copies);
	uint64_t seq = w->nsends++;
	struct w5send *s = &w->sends[seq];
	s->t_us = intended_us;
	s->first = (uint32_t)w->ncopies;
	s->from = from;
	s->from_sess = r->c[from].sess;
	s->n = (uint16_t)n;
	uint8_t *t = n > 1 ? w->gtmpl : w->tmpl;
	size_t tlen = n > 1 ? w->gtmpl_len : w->tmpl_len;
	memcpy(t, r->users[from].id, 8);
	veil_store_u64le(t + 16, (run_tag << SEQ_BITS) | (seq + 1));
	for (int k = 0; k < n; k++) {
		uint32_t to;
		int again;
		do {
			to = w5_pick(w, (uint32_t)w->users);
			again = to == from;
			for (int j = 0; j < k && !again; j++)
				again = w->copies[s->first + (uint32_t)j].to == to;
		} while (again);
		struct w5copy *cp = &w->copies[w->ncopies++];
		cp->to = to;
		cp->sess = w5_online(&r->c[to]) ? r->c[to].sess : 0;
		cp->acked = cp->got = 0;
		memcpy(t + 8, r->users[to].id, 8);
		send_csp(&r->c[from], VEIL_CSP_OUTGOING_MESSAGE, t, tlen);
	}
}

static struct w5send *w5_find(struct w5 *w, uint64_t msg_id)
{
	uint64_t seq = (msg_id & ((1ull << SEQ_BITS) - 1)) - 1;
	if (msg_id >> SEQ_BITS != run_tag || seq >= w->nsends)
		return NULL;
	return &w->sends[seq];
}

/* A server ack (0x81) for one copy this connection sent. */
static void w5_on_ack(struct run *r, struct lconn *c, const uint8_t *d, size_t n)
{
	struct w5 *w = r->w5;
	uint8_t id[VEIL_ID_LEN];
	uint64_t msg_id;
	struct w5send *s;
	if (veil_csp_ack_parse(d, n, id, &msg_id) != 0 || (s = w5_find(w, msg_id)) == NULL ||
	    s->from != (uint32_t)c->user) {
		r->errors++;
		return;
	}
	for (uint32_t k = 0; k < s->n; k++) {
		struct w5copy *cp = &w->copies[s->first + k];
		if (memcmp(r->users[cp->to].id, id, VEIL_ID_LEN) == 0) {
			if (cp->acked++)
				r->errors++; /* acked twice */
			return;
		}
	}
	r->errors++; /* an ack for a recipient this message was not sent to */
}

/* An incoming message m (at least its 64-byte header) on c. */
static void w5_on_msg(struct run *r, struct lconn *c, const uint8_t *m)
{
	struct w5 *w = r->w5;
	if (c->st == C_LEAVING)
		return; /* neither acked nor counted: the server delivers it again */
	uint64_t msg_id = veil_load_u64le(m + 16);
	uint8_t ack[VEIL_CSP_ACK_LEN];
	veil_csp_ack_encode(ack, m, msg_id);
	send_csp(c, VEIL_CSP_INCOMING_ACK, ack, sizeof ack);
	if (msg_id >> SEQ_BITS != run_tag)
		return; /* from an earlier run */
	struct w5send *s = w5_find(w, msg_id);
	if (s == NULL || memcmp(m, r->users[s->from].id, VEIL_ID_LEN) != 0) {
		r->errors++;
		return;
	}
	struct w5copy *cp = NULL;
	for (uint32_t k = 0; k < s->n && cp == NULL; k++)
		if (w->copies[s->first + k].to == (uint32_t)c->user)
			cp = &w->copies[s->first + k];
	if (cp == NULL) {
		r->errors++; /* delivered to someone it was not sent to */
		return;
	}
	if (cp->got++ > 0) {
		w->dups++;
		return;
	}
	uint64_t now = now_us();
	if (now < w->t_warm || now >= w->t_end)
		return;
	w->delivered++;
	if (cp->sess != 0 && cp->sess == c->sess) {
		w->lat = grow(w->lat, &w->lat_cap, w->nlat + 1, sizeof *w->lat);
		w->lat[w->nlat].at_ms = (uint32_t)((now - w->t0) / 1000u);
		w->lat[w->nlat].us = (uint32_t)(now - s->t_us);
		w->nlat++;
	}
}

/* The server closed a connection that left: offline until back_at. */
static void w5_gone(struct run *r, struct lconn *c)
{
	conn_close(r, c);
	c->back_at = now_us() + c->off_us;
}

static void w5_rss(struct run *r, struct w5 *w)
{
	if (w->nrss < (int)VEIL_ARRAY_LEN(w->rss))
		w->rss[w->nrss++] = proc_rss_kb(r->srv->pid);
}

/* When the next W5 message is due (UINT64_MAX when not sending). */
static uint64_t w5_next_due(struct run *r)
{
	const struct w5 *w = r->w5;
	return w->sending && w->next_due_us > 0 ? (uint64_t)w->next_due_us : UINT64_MAX;
}

/* Called once per loop pass: pacing, churn, reconnects, samples. */
static void w5_tick(struct run *r)
{
	struct w5 *w = r->w5;
	uint64_t now = now_us();
	if (w->sending) {
		if (w->next_due_us == 0)
			w->next_due_us = (double)now;
		while (w->next_due_us <= (double)now) {
			int n = w5_pick(w, 100) < W5_GROUP_PCT ? W5_GROUP : 1;
			w5_send(r, w, n, (uint64_t)w->next_due_us);
			w->next_due_us += n * 1e6 / w->rate;
		}
		if (!w->warm_done && now >= w->t_warm) {
			w->warm_done = 1;
			w->cpu_warm = proc_cpu_us(r->srv->pid);
			w->logins_warm = r->logins;
			w->rss_warm = proc_rss_kb(r->srv->pid);
		}
		if (now >= w->next_rss) {
			w5_rss(r, w);
			w->next_rss += W5_RSS_EVERY_US;
		}
	}
	/* The rest walks every connection: 100 times a second is enough. */
	if (now < w->last_tick + 10000u)
		return;
	double dt = w->last_tick ? (double)(now - w->last_tick) / 1e6 : 0;
	w->last_tick = now;
	if (w->churning) {
		w->churn_credit += dt * w->users * W5_CHURN_PCT / 100.0;
		for (int tries = 0; w->churn_credit >= 1 && tries < 64; tries++) {
			struct lconn *c = &r->c[w5_pick(w, (uint32_t)w->users)];
			if (!w5_online(c))
				continue;
			c->leave = 1;
			c->off_us = W5_OFF_MIN_US + w5_pick(w, W5_OFF_MAX_US - W5_OFF_MIN_US + 1);
			w->churn_credit -= 1;
		}
	}
	for (int i = 0; i < w->users; i++) {
		struct lconn *c = &r->c[i];
		if (c->leave && c->st == C_READY && c->out_len == 0) {
			/* Every client ack is written: close the write side, read to the end. */
			shutdown(c->fd, SHUT_WR);
			c->st = C_LEAVING;
		} else if (c->st == C_DEAD && (now >= c->back_at || !w->churning)) {
			if (conn_open(r, i) != 0)
				r->errors++;
		}
	}
}

/* Final phase: everyone online and drained, every acked copy received, no ack pending. */
static int w5_done(struct run *r)
{
	struct w5 *w = r->w5;
	uint64_t now = now_us();
	if (now < w->last_scan + 100000u)
		return 0;
	w->last_scan = now;
	for (int i = 0; i < w->users; i++)
		if (r->c[i].st != C_READY || !r->c[i].drained)
			return 0;
	for (size_t i = 0; i < w->nsends; i++) {
		const struct w5send *s = &w->sends[i];
		int sender_here = r->c[s->from].sess == s->from_sess;
		for (uint32_t k = 0; k < s->n; k++) {
			const struct w5copy *cp = &w->copies[s->first + k];
			if ((cp->acked && !cp->got) || (!cp->acked && sender_here))
				return 0;
		}
	}
	return 1;
}

/* Percentile (ms) of the samples delivered in [from_ms, to_ms). */
static double w5_pct(const struct w5 *w, uint32_t from_ms, uint32_t to_ms, double q, uint32_t *tmp)
{
	size_t n = 0;
	for (size_t i = 0; i < w->nlat; i++)
		if (w->lat[i].at_ms >= from_ms && w->lat[i].at_ms < to_ms)
			tmp[n++] = w->lat[i].us;
	return pct(tmp, n, q);
}

/* W5: users identities for secs seconds at rate msgs/s; see above. */
static int w5(struct proc *srv, struct user *users, int nusers, double rate, double secs,
              struct result *res)
{
	struct run r;
	struct w5 w = {0};
	memset(res, 0, sizeof *res);
	run_init(&r, srv, users, nusers, 0);
	w.users = nusers;
	w.rate = rate;
	w.rng = 0x9e3779b97f4a7c15ull ^ now_us();
	seal_message(&w.tmpl, &w.tmpl_len, &users[0], &users[1], VEIL_E2E_TEXT, 100);
	/* A group text carries the creator and group ID (16 bytes) before the text. */
	seal_message(&w.gtmpl, &w.gtmpl_len, &users[0], &users[1], VEIL_E2E_GROUP_TEXT, 116);
	if (connect_all(&r, 60) != 0) {
		fprintf(stderr, "chatbench: W5: could not connect %d clients\n", nusers);
		res->errors = 1;
		goto out;
	}
	r.w5 = &w;
	w.t0 = now_us();
	w.t_warm = w.t0 + (uint64_t)(secs * 1e6 / 5);
	w.t_end = w.t0 + (uint64_t)(secs * 1e6);
	w.next_rss = w.t0;
	w.sending = w.churning = 1;
	uint64_t logins0 = r.logins;
	loop(&r, w.t_end, never);
	uint64_t cpu = proc_cpu_us(srv->pid) - w.cpu_warm, logins = r.logins - w.logins_warm;
	long rss_end = proc_rss_kb(srv->pid);
	w.t_end = now_us();
	/* Stop sending and churning; everyone logs in again and drains. */
	w.sending = w.churning = 0;
	loop(&r, now_us() + 60000000u, w5_done);
	/* Let the last client acks reach the server before closing. */
	loop(&r, now_us() + 300000u, never);

	double post_s = (double)(w.t_end - w.t_warm) / 1e6;
	res->w5 = 1;
	res->secs = secs;
	res->warm_s = (double)(w.t_warm - w.t0) / 1e6;
	res->msgs_s = (double)w.delivered / post_s;
	res->cpu_us_msg = w.delivered ? (double)cpu / (double)w.delivered : 0;
	res->logins = (double)(r.logins - logins0);
	res->logins_s = (double)logins / post_s;
	uint32_t *tmp = malloc((w.nlat + 1) * sizeof *tmp);
	uint32_t warm_ms = (uint32_t)((w.t_warm - w.t0) / 1000u);
	uint32_t end_ms = (uint32_t)((w.t_end - w.t0) / 1000u);
	res->p50 = w5_pct(&w, warm_ms, end_ms, 0.5, tmp);
	res->p99 = w5_pct(&w, warm_ms, end_ms, 0.99, tmp);
	res->p999 = w5_pct(&w, warm_ms, end_ms, 0.999, tmp);
	/* Windows of 30 s after the warm-up (at least two); the remainder joins the last. */
	double win_s = W5_WINDOW_S;
	if (post_s < 2 * win_s)
		win_s = post_s / 2;
	int nwin = (int)(post_s / win_s);
	if (nwin < 1)
		nwin = 1;
	uint32_t win_ms = (uint32_t)(win_s * 1000);
	res->window_s = win_s;
	res->p99_first = w5_pct(&w, warm_ms, warm_ms + win_ms, 0.99, tmp);
	res->p99_last = w5_pct(&w, warm_ms + (uint32_t)(nwin - 1) * win_ms, end_ms, 0.99, tmp);
	res->p99_drift = res->p99_first > 0 ? res->p99_last / res->p99_first : 0;
	fprintf(stderr, "chatbench: W5 p99 ms per %.0f-s window:", win_s);
	for (int k = 0; k < nwin; k++)
		fprintf(stderr, " %.2f",
		        w5_pct(&w, warm_ms + (uint32_t)k * win_ms,
		               k == nwin - 1 ? end_ms : warm_ms + (uint32_t)(k + 1) * win_ms, 0.99,
		               tmp));
	fprintf(stderr, "\n");
	free(tmp);
	res->rss_warm_kb = (double)w.rss_warm;
	res->rss_end_kb = (double)rss_end;
	res->rss_growth_kb = (double)(rss_end - w.rss_warm);
	res->rss_kb_min = res->rss_growth_kb / (post_s / 60);
	fprintf(stderr, "chatbench: W5 veild RSS KB every 5 s:");
	for (int k = 0; k < w.nrss; k++)
		fprintf(stderr, " %ld", w.rss[k]);
	fprintf(stderr, " (end %ld)\n", rss_end);

	uint64_t acked = 0, unacked_got = 0, shown = 0;
	for (size_t i = 0; i < w.nsends; i++) {
		const struct w5send *s = &w.sends[i];
		for (uint32_t k = 0; k < s->n; k++) {
			const struct w5copy *cp = &w.copies[s->first + k];
			acked += cp->acked != 0;
			unacked_got += !cp->acked && cp->got;
			if (cp->acked && !cp->got) {
				res->lost++;
				if (shown++ < 5)
					fprintf(
					    stderr,
					    "chatbench: W5 lost: message %016llx from %.8s to "
					    "%.8s (sent at +%.3f s)\n",
					    (unsigned long long)((run_tag << SEQ_BITS) | (i + 1)),
					    (const char *)users[s->from].id,
					    (const char *)users[cp->to].id,
					    (double)(s->t_us - w.t0) / 1e6);
			}
		}
	}
	res->dups = w.dups;
	fprintf(stderr,
	        "chatbench: W5 %zu sends, %zu copies (%llu acked, %llu received without an ack "
	        "because the sender left), %llu logins, %llu sends without an online sender\n",
	        w.nsends, w.ncopies, (unsigned long long)acked, (unsigned long long)unacked_got,
	        (unsigned long long)(r.logins - logins0), (unsigned long long)w.no_sender);
out:
	res->errors += r.errors;
	r.w5 = NULL;
	free(w.sends);
	free(w.copies);
	free(w.lat);
	free(w.tmpl);
	free(w.gtmpl);
	run_free(&r);
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return v[n / 2];
}

#define MAXRUNS 9

/* Median of each field over runs. */
static void med(struct result *out, struct result *rs, int n)
{
	double v[MAXRUNS];
#define M(f)                                                                                       \
	do {                                                                                       \
		for (int i = 0; i < n; i++)                                                        \
			v[i] = rs[i].f;                                                            \
		out->f = median(v, n);                                                             \
	} while (0)
	M(msgs_s);
	M(p50);
	M(p99);
	M(p999);
	M(cpu_us_msg);
	M(gen_us);
	M(sleeps);
	M(pg_cpu_us_msg);
	M(tail_ms);
	M(tail_sent_late);
	M(tail_read_late);
	M(logins_s);
	M(bytes_per_conn);
	M(logins);
	M(warm_s);
	M(secs);
	M(rss_warm_kb);
	M(rss_end_kb);
	M(rss_growth_kb);
	M(rss_kb_min);
	M(window_s);
	M(p99_first);
	M(p99_last);
	M(p99_drift);
#undef M
	out->w5 = rs[0].w5;
	out->lost = out->dups = out->errors = 0;
	for (int i = 0; i < n; i++) {
		out->lost += rs[i].lost;
		out->dups += rs[i].dups;
		out->errors += rs[i].errors;
	}
}

static FILE *json;
static int json_first = 1;
static int failures;

/*
 * One table row for veil, the bare relay's row under it (write per frame:
 * the ratio is to this one) and the coalescing pump's when measured.
 */
/* CPU time of this thread in microseconds. */
static uint64_t thread_cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Microseconds of CPU per X25519 scalar multiplication (median of 5 rounds
 * of 500), and in *base per fixed-base one as veild makes its ephemeral
 * keys (veil_x25519_base). CPU time, not wall time, like veild's CPU per
 * login: on a shared machine, time spent waiting for the CPU would make
 * the reference larger and the ratio look better than it is.
 */
static double x25519_us(double *base)
{
	uint8_t sk[32], pk[32], out[32];
	double t[5], b[5];
	randombytes_buf(sk, sizeof sk);
	crypto_scalarmult_base(pk, sk);
	for (int r = 0; r < 5; r++) {
		uint64_t t0 = thread_cpu_us();
		for (int i = 0; i < 500; i++) {
			if (crypto_scalarmult(out, sk, pk) != 0)
				return 0;
		}
		uint64_t t1 = thread_cpu_us();
		for (int i = 0; i < 500; i++) {
			sk[0] = (uint8_t)i;
			if (veil_x25519_base(out, sk) != 0)
				return 0;
		}
		t[r] = (double)(t1 - t0) / 500.0;
		b[r] = (double)(thread_cpu_us() - t1) / 500.0;
	}
	qsort(t, 5, sizeof t[0], cmp_d);
	qsort(b, 5, sizeof b[0], cmp_d);
	*base = b[2];
	return t[2];
}

/* The paced tail's parts (tail_parts()) of one measured row. */
static void report_tail(const char *who, const struct result *m)
{
	if (m->tail_ms <= 0)
		return;
	double gen = m->tail_sent_late + m->tail_read_late;
	printf("%-28s %s: mean %.2f ms; the generator's share %.0f%% (sending late %.0f%%, "
	       "reading late %.0f%%), the server's and the kernel's %.0f%%\n",
	       "  slowest 1%", who, m->tail_ms, 100 * gen, 100 * m->tail_sent_late,
	       100 * m->tail_read_late, 100 * (1 - gen));
}

static void report(const char *name, const struct result *veil, const struct result *bare,
                   const struct result *pump)
{
	char ratio[32] = "";
	if (bare && bare->msgs_s > 0)
		snprintf(ratio, sizeof ratio, "%.2f", veil->msgs_s / bare->msgs_s);
	printf("%-28s %10.0f %9s %8.2f %8.2f %8.2f %8.1f %8.0f %9.0f %5llu %5llu %6.1f\n", name,
	       veil->msgs_s, ratio[0] || !veil->w5 ? ratio : "-", veil->p50, veil->p99, veil->p999,
	       veil->cpu_us_msg, veil->logins_s, veil->bytes_per_conn,
	       (unsigned long long)veil->lost, (unsigned long long)veil->dups, veil->gen_us);
	if (opt_pg_pid > 0 && veil->pg_cpu_us_msg > 0)
		printf("%-28s %37s %8.1f  (PostgreSQL's processes)\n", "  PostgreSQL CPU us/msg",
		       "", veil->pg_cpu_us_msg);
	if (bare)
		printf("%-28s %10.0f %9s %8.2f %8.2f %8.2f %8.1f\n", "  bare relay, same load",
		       bare->msgs_s, "1.00", bare->p50, bare->p99, bare->p999, bare->cpu_us_msg);
	if (pump)
		printf("%-28s %10.0f %9s %8.2f %8.2f %8.2f %8.1f\n", "  bare relay, coalesced",
		       pump->msgs_s, "", pump->p50, pump->p99, pump->p999, pump->cpu_us_msg);
	if (veil->w5) {
		printf("%-28s %.0f KB after %.0f s warm-up, %.0f KB at %.0f s: %+.0f KB "
		       "(%+.1f KB/min)\n",
		       "  veild RSS", veil->rss_warm_kb, veil->warm_s, veil->rss_end_kb, veil->secs,
		       veil->rss_growth_kb, veil->rss_kb_min);
		printf("%-28s first %.2f ms, last %.2f ms (%.0f-s windows): drift x%.2f\n",
		       "  p99 after warm-up", veil->p99_first, veil->p99_last, veil->window_s,
		       veil->p99_drift);
		printf("%-28s %.0f logins with a full handshake (%.0f/s after warm-up)\n",
		       "  churn", veil->logins, veil->logins_s);
	}
	fflush(stdout);
	if (veil->lost || veil->dups || veil->errors) {
		fprintf(stderr, "chatbench: %s: %llu lost, %llu duplicated, %llu errors\n", name,
		        (unsigned long long)veil->lost, (unsigned long long)veil->dups,
		        (unsigned long long)veil->errors);
		failures++;
	}
	if (json) {
		fprintf(json,
		        "%s\n  {\"workload\": \"%s\", \"msgs_s\": %.0f, \"ratio_to_bare\": %s, "
		        "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"cpu_us\": %.2f, "
		        "\"logins_s\": %.0f, \"bytes_per_conn\": %.0f, \"lost\": %llu, \"dups\": "
		        "%llu, \"errors\": %llu, \"bare_msgs_s\": %.0f, \"bare_cpu_us\": %.2f, "
		        "\"coalesced_msgs_s\": %.0f, \"coalesced_cpu_us\": %.2f",
		        json_first ? "" : ",", name, veil->msgs_s, ratio[0] ? ratio : "null",
		        veil->p50, veil->p99, veil->p999, veil->cpu_us_msg, veil->logins_s,
		        veil->bytes_per_conn, (unsigned long long)veil->lost,
		        (unsigned long long)veil->dups, (unsigned long long)veil->errors,
		        bare ? bare->msgs_s : 0, bare ? bare->cpu_us_msg : 0,
		        pump ? pump->msgs_s : 0, pump ? pump->cpu_us_msg : 0);
		if (veil->w5)
			fprintf(json,
			        ", \"secs\": %.0f, \"warmup_s\": %.0f, \"logins\": %.0f, "
			        "\"rss_warmup_kb\": %.0f, \"rss_end_kb\": %.0f, \"rss_growth_kb\": "
			        "%.0f, \"rss_growth_kb_per_min\": %.2f, \"p99_window_s\": %.0f, "
			        "\"p99_first_window_ms\": %.3f, \"p99_last_window_ms\": %.3f, "
			        "\"p99_drift\": %.3f",
			        veil->secs, veil->warm_s, veil->logins, veil->rss_warm_kb,
			        veil->rss_end_kb, veil->rss_growth_kb, veil->rss_kb_min,
			        veil->window_s, veil->p99_first, veil->p99_last, veil->p99_drift);
		fprintf(json, "}");
		json_first = 0;
	}
}

/* Whether the --only list names workload w (any case: --only w5 works). */
static int want(const char *only, const char *w)
{
	return strcasestr(only, w) != NULL;
}

static void usage(void)
{
	printf("Usage: chatbench [--smoke] [--runs N] [--secs S] [--idle N] [--drain RxM]\n"
	       "                 [--only W1,...,W7] [--json FILE] [--bin DIR]\n"
	       "                 [--pairs N] [--window N] [--handoff-ms N]\n"
	       "                 [--w5-secs S] [--w5-rate MSGS] [--w5-users N]\n"
	       "                 [--chat-threads N] [--cpus all] [--storm N] [--coalesce-us N]\n"
	       "                 [--store postgresql://...] [--nodes 1|2] [--pg-pid PID]\n"
	       "--store: veild on PostgreSQL (a fresh database); --nodes 2: W3's receivers\n"
	       "on a second veild on that store; --pg-pid: the postmaster, whose processes'\n"
	       "CPU per message W3 reports (see bench/pgscale).\n"
	       "Measures veild against a bare relay in the same run (see the file header).\n"
	       "--chat-threads is passed to veild; --cpus all pins neither veild (CPU 0 by\n"
	       "default) nor chatbench (CPU 1). W6 (--only W6) is a paced stream of 5000\n"
	       "msgs/s from 100 senders while --storm N (200) other identities log in over\n"
	       "and over: its p99 is the messages' latency during a login storm. The last\n"
	       "column is chatbench's own CPU per message (per login in W1).\n"
	       "W7 (quiet messages) runs veild with --chat-coalesce-us 0 and --coalesce-us N\n"
	       "(500). Paced rows also print their slowest 1%%'s parts: the generator's\n"
	       "(sending late, reading late) and the server's and kernel's.\n"
	       "VEIL_BENCH_WINDOWS=FILE appends each measured window (monotonic us) to FILE\n"
	       "(bench/schedtail uses it).\n"
	       "--handoff-ms is passed to veild (0: every message is stored before its ack).\n"
	       "W5 (mixed, default 300 s at 5000 msgs/s over 2000 users) takes --runs times\n"
	       "that long; --only W5 runs it alone.\n");
}

int main(int argc, char **argv)
{
	int smoke = 0, runs = 3, idle = 19000, drain_r = 1000, drain_m = 1000, w5_users = 2000;
	double secs = 8, w5_secs = 300, w5_rate = 5000;
	const char *only = "W1,W2,W3,W4,W5,W6,W7", *json_path = NULL, *w7_on = "500";
	static const struct option opts[] = {{"smoke", no_argument, NULL, 's'},
	                                     {"runs", required_argument, NULL, 'r'},
	                                     {"secs", required_argument, NULL, 't'},
	                                     {"idle", required_argument, NULL, 'i'},
	                                     {"drain", required_argument, NULL, 'd'},
	                                     {"only", required_argument, NULL, 'o'},
	                                     {"json", required_argument, NULL, 'j'},
	                                     {"bin", required_argument, NULL, 'b'},
	                                     {"window", required_argument, NULL, 'w'},
	                                     {"pairs", required_argument, NULL, 'p'},
	                                     {"handoff-ms", required_argument, NULL, 'H'},
	                                     {"w5-secs", required_argument, NULL, 'S'},
	                                     {"w5-rate", required_argument, NULL, 'R'},
	                                     {"w5-users", required_argument, NULL, 'U'},
	                                     {"chat-threads", required_argument, NULL, 'T'},
	                                     {"cpus", required_argument, NULL, 'C'},
	                                     {"storm", required_argument, NULL, 'X'},
	                                     {"coalesce-us", required_argument, NULL, 'Q'},
	                                     {"store", required_argument, NULL, 'G'},
	                                     {"nodes", required_argument, NULL, 'N'},
	                                     {"pg-pid", required_argument, NULL, 'P'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': smoke = 1; break;
		case 'r': runs = (int)strtol(optarg, NULL, 10); break;
		case 't': secs = strtod(optarg, NULL); break;
		case 'i': idle = (int)strtol(optarg, NULL, 10); break;
		case 'd': {
			char *x;
			drain_r = (int)strtol(optarg, &x, 10);
			drain_m = *x == 'x' ? (int)strtol(x + 1, NULL, 10) : drain_m;
			break;
		}
		case 'o': only = optarg; break;
		case 'j': json_path = optarg; break;
		case 'b': bindir = optarg; break;
		case 'p': opt_pairs = (int)strtol(optarg, NULL, 10); break;
		case 'w': opt_window = (int)strtol(optarg, NULL, 10); break;
		case 'H': opt_handoff = optarg; break;
		case 'S': w5_secs = strtod(optarg, NULL); break;
		case 'R': w5_rate = strtod(optarg, NULL); break;
		case 'U': w5_users = (int)strtol(optarg, NULL, 10); break;
		case 'T': opt_threads = optarg; break;
		case 'C': opt_unpinned = strcmp(optarg, "all") == 0; break;
		case 'X': opt_storm = (int)strtol(optarg, NULL, 10); break;
		case 'Q': w7_on = optarg; break;
		case 'G': opt_store = optarg; break;
		case 'N': opt_nodes = (int)strtol(optarg, NULL, 10); break;
		case 'P': opt_pg_pid = (pid_t)strtol(optarg, NULL, 10); break;
		default: usage(); return o == 'h' ? 0 : 2;
		}
	}
	if (runs < 1 || runs > MAXRUNS)
		runs = 3;
	if (smoke) {
		runs = 1;
		secs = 2;
		idle = 200;
		drain_r = 20;
		drain_m = 50;
		w5_secs = 10;
		w5_rate = 500;
		w5_users = 100;
	}
	if (w5_secs < 5 || w5_rate <= 0 || w5_users <= W5_GROUP) {
		fprintf(stderr,
		        "chatbench: W5 needs --w5-secs >= 5, --w5-rate > 0 and more than %d "
		        "users\n",
		        W5_GROUP);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (veil_crypto_init() != 0)
		return 1;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if ((rlim_t)idle + 100 > rl.rlim_cur)
		idle = (int)rl.rlim_cur - 100;
	if (!opt_unpinned)
		pin_cpu(1);
	if (opt_storm <= 0)
		opt_storm = 200;
	if (json_path && (json = fopen(json_path, "w")) != NULL)
		fprintf(json, "[");

	int pairs_list[] = {10, 100, 500};
	double paced_list[] = {1000, 5000, 20000};
	int nusers = want(only, "W2") ? idle : 0;
	if (nusers < 2000)
		nusers = 2000;
	if (nusers < 2 * drain_r)
		nusers = 2 * drain_r;
	if ((rlim_t)w5_users + 100 > rl.rlim_cur)
		w5_users = (int)rl.rlim_cur - 100;
	if (want(only, "W5") && nusers < w5_users)
		nusers = w5_users;
	struct user *users = calloc((size_t)nusers, sizeof *users);

	struct proc srv = {0};
	if (start_veild(&srv) != 0) {
		fprintf(stderr, "chatbench: cannot start %s/veild\n", bindir);
		return 1;
	}
	uint64_t t0 = now_us();
	if (make_users(&srv, users, nusers) != 0) {
		fprintf(stderr, "chatbench: cannot register identities\n");
		stop_proc(&srv);
		return 1;
	}
	fprintf(stderr, "chatbench: %d identities registered in %.1f s\n", nusers,
	        (double)(now_us() - t0) / 1e6);
	printf("%-28s %10s %9s %8s %8s %8s %8s %8s %9s %5s %5s %6s\n", "workload (median of runs)",
	       "msgs/s", "vs bare", "p50 ms", "p99 ms", "p99.9ms", "CPU us", "logins/s", "B/conn",
	       "lost", "dups", "gen us");

	struct result rs[MAXRUNS], br[MAXRUNS], bc[MAXRUNS], m, mb, mc;
	struct proc srv_b = {0};
	if (opt_nodes == 2) {
		if (opt_store == NULL || start_node_b(&srv, &srv_b) != 0) {
			fprintf(stderr, "chatbench: --nodes 2 needs --store and a second veild\n");
			stop_proc(&srv);
			return 1;
		}
		node_b = &srv_b;
	}
	if (want(only, "W3")) {
		for (size_t k = 0; k < VEIL_ARRAY_LEN(pairs_list); k++) {
			int np = smoke ? 10 : opt_pairs ? opt_pairs : pairs_list[k];
			for (int i = 0; i < runs; i++) {
				struct proc bare = {0}, pump = {0};
				if (start_bare(&bare, 0) != 0 ||
				    w3(&bare, users, np, 0, secs, 1, &br[i]) != 0 ||
				    start_bare(&pump, 1) != 0 ||
				    w3(&pump, users, np, 0, secs, 1, &bc[i]) != 0 ||
				    w3(&srv, users, np, 0, secs, 0, &rs[i]) != 0)
					failures++;
				stop_proc(&bare);
				stop_proc(&pump);
			}
			med(&m, rs, runs);
			med(&mb, br, runs);
			med(&mc, bc, runs);
			char name[64];
			snprintf(name, sizeof name, "W3 flat out, %d pairs", np);
			report(name, &m, &mb, &mc);
			if (smoke || opt_pairs)
				break;
		}
		if (!smoke && !opt_pairs) {
			/* The store path alone: every message committed before its sender is acked. */
			const char *saved = opt_handoff;
			opt_handoff = "0";
			for (int i = 0; i < runs; i++)
				if (restart_veild(&srv) != 0 ||
				    w3(&srv, users, 10, 0, secs, 0, &rs[i]) != 0)
					failures++;
			med(&m, rs, runs);
			report("W3 10 pairs, store first", &m, NULL, NULL);
			opt_handoff = saved;
			if (restart_veild(&srv) != 0)
				failures++;
		}
		int paced_n = smoke ? 50 : 1000;
		for (size_t k = 0; k < VEIL_ARRAY_LEN(paced_list) && !opt_pairs; k++) {
			double rate = smoke ? 500 : paced_list[k];
			for (int i = 0; i < runs; i++) {
				struct proc bare = {0};
				if (start_bare(&bare, 0) != 0 ||
				    w3(&bare, users, paced_n, rate, secs, 1, &br[i]) != 0 ||
				    w3(&srv, users, paced_n, rate, secs, 0, &rs[i]) != 0)
					failures++;
				stop_proc(&bare);
			}
			med(&m, rs, runs);
			med(&mb, br, runs);
			char name[64];
			snprintf(name, sizeof name, "W3 paced %.0f/s, %d senders", rate, paced_n);
			report(name, &m, &mb, NULL);
			report_tail("veild", &m);
			report_tail("the bare relay", &mb);
			if (smoke)
				break;
		}
	}
	if (want(only, "W6")) {
		int np = smoke ? 10 : 100;
		for (int i = 0; i < runs; i++)
			if (w3s(&srv, users, np, smoke ? 500 : 5000, secs, 0,
			        smoke ? 20 : opt_storm, &rs[i]) != 0)
				failures++;
		med(&m, rs, runs);
		char name[64];
		snprintf(name, sizeof name, "W6 paced %d/s, storm of %d", smoke ? 500 : 5000,
		         smoke ? 20 : opt_storm);
		report(name, &m, NULL, NULL);
		report_tail("the stream", &m);
	}
	if (want(only, "W7")) {
		/*
		 * Quiet messages: what a message costs when the server is far from
		 * busy. Each run measures, in this order: veild flat out (the
		 * reference the CPU per paced message is compared to), the bare
		 * relay paced, then veild paced with coalescing off and on.
		 */
		double quiet_list[] = {5000, 10000, 20000};
		const char *saved = opt_coalesce;
		struct result flat[MAXRUNS], off[MAXRUNS], on[MAXRUNS], mf, moff, mon;
		int quiet_n = smoke ? 50 : 1000;
		for (size_t k = 0; k < VEIL_ARRAY_LEN(quiet_list); k++) {
			double rate = smoke ? 500 : quiet_list[k];
			for (int i = 0; i < runs; i++) {
				struct proc bare = {0};
				opt_coalesce = "0";
				if (restart_veild(&srv) != 0 ||
				    w3(&srv, users, 10, 0, secs, 0, &flat[i]) != 0 ||
				    start_bare(&bare, 0) != 0 ||
				    w3(&bare, users, quiet_n, rate, secs, 1, &br[i]) != 0 ||
				    w3(&srv, users, quiet_n, rate, secs, 0, &off[i]) != 0)
					failures++;
				stop_proc(&bare);
				opt_coalesce = w7_on;
				if (restart_veild(&srv) != 0 ||
				    w3(&srv, users, quiet_n, rate, secs, 0, &on[i]) != 0)
					failures++;
			}
			med(&mf, flat, runs);
			med(&mb, br, runs);
			med(&moff, off, runs);
			med(&mon, on, runs);
			char name[64];
			snprintf(name, sizeof name, "W7 %.0f/s, coalesce off", rate);
			report(name, &moff, &mb, NULL);
			snprintf(name, sizeof name, "W7 %.0f/s, coalesce %sus", rate, w7_on);
			report(name, &mon, NULL, NULL);
			printf("%-28s veild's sleeps per message: off %.2f, on %.2f; the bare "
			       "relay's %.2f\n",
			       "  wake-ups", moff.sleeps, mon.sleeps, mb.sleeps);
			report_tail("veild, coalescing off", &moff);
			report_tail("veild, coalescing on", &mon);
			report_tail("the bare relay", &mb);
			printf("%-28s %.1f us per message (10 pairs); CPU per paced message: off "
			       "%.1fx flat out, %.2fx bare; on %.1fx flat out, %.2fx bare\n",
			       "  veild flat out", mf.cpu_us_msg,
			       mf.cpu_us_msg > 0 ? moff.cpu_us_msg / mf.cpu_us_msg : 0,
			       mb.cpu_us_msg > 0 ? moff.cpu_us_msg / mb.cpu_us_msg : 0,
			       mf.cpu_us_msg > 0 ? mon.cpu_us_msg / mf.cpu_us_msg : 0,
			       mb.cpu_us_msg > 0 ? mon.cpu_us_msg / mb.cpu_us_msg : 0);
			fflush(stdout);
			if (smoke)
				break;
		}
		opt_coalesce = saved;
		if (restart_veild(&srv) != 0)
			failures++;
	}
	if (want(only, "W1")) {
		for (int i = 0; i < runs; i++)
			if (w1(&srv, users, smoke ? 20 : 200, secs, &rs[i]) != 0)
				failures++;
		med(&m, rs, runs);
		report("W1 handshake storm (CPU us/login)", &m, NULL, NULL);
		/*
		 * The floor of a login's cost: a login's public-key work is three
		 * variable-base X25519 and one fixed-base (the server's ephemeral key).
		 */
		double xb = 0, x = x25519_us(&xb), pkfloor = 3 * x + xb;
		printf("%-28s %.1f us CPU per X25519 on this CPU now: veild's CPU per login is "
		       "%.1fx\n",
		       "  X25519 reference", x, x > 0 ? m.cpu_us_msg / x : 0);
		printf(
		    "%-28s %.1f us (3 X25519 and one fixed-base at %.1f us, %.1fx): veild's login "
		    "is %.2fx that\n",
		    "  public-key floor", pkfloor, xb, x > 0 ? pkfloor / x : 0,
		    pkfloor > 0 ? m.cpu_us_msg / pkfloor : 0);
	}
	if (want(only, "W2")) {
		/* A fresh process, so that memory freed by earlier workloads does not hide the cost. */
		for (int i = 0; i < runs; i++)
			if (restart_veild(&srv) != 0 || w2(&srv, users, idle, &rs[i]) != 0)
				failures++;
		med(&m, rs, runs);
		char name[64];
		snprintf(name, sizeof name, "W2 %d idle (CPU us/s)", idle);
		report(name, &m, NULL, NULL);
	}
	if (want(only, "W4")) {
		for (int i = 0; i < runs; i++)
			if (w4(&srv, users, drain_r, drain_m, &rs[i]) != 0)
				failures++;
		med(&m, rs, runs);
		char name[64];
		snprintf(name, sizeof name, "W4 drain %dx%d", drain_r, drain_m);
		report(name, &m, NULL, NULL);
	}
	if (want(only, "W5")) {
		/* A fresh process, so that its memory growth is W5's alone. */
		for (int i = 0; i < runs; i++)
			if (restart_veild(&srv) != 0 ||
			    w5(&srv, users, w5_users, w5_rate, w5_secs, &rs[i]) != 0)
				failures++;
		med(&m, rs, runs);
		char name[64];
		snprintf(name, sizeof name, "W5 mixed %.0f s, %d users", w5_secs, w5_users);
		report(name, &m, NULL, NULL);
	}
	node_b = NULL;
	stop_proc(&srv_b);
	stop_proc(&srv);
	if (json) {
		fprintf(json, "\n]\n");
		fclose(json);
	}
	free(users);
	if (failures)
		fprintf(stderr,
		        "chatbench: %d failed workloads (lost or duplicated messages, or errors)\n",
		        failures);
	return failures ? 1 : 0;
}
