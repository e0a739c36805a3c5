/*
 * md_bench: the mediator's reflection, measured from outside. veild runs
 * as a child pinned to CPU 0 (fresh data directory); the devices are
 * WebSocket clients of this process on CPU 1 (lib/client/ws.c, lib/md).
 *
 * Groups of three devices: device 0 of each group reflects envelopes of
 * 256 opaque bytes (the mediator never opens them), devices 1 and 2
 * receive them as reflected and ack them. Reported per run:
 *   flat out  reflects in flight up to a window per sender; reflected
 *             envelopes delivered per second, server CPU per delivered
 *             envelope, latency from reflect to reflected (p50/p99);
 *   paced     the same at a fixed total rate of reflects;
 *   idle      veild's resident memory per idle device connection (measured
 *             first, on the fresh veild: devices in groups of 3, past the
 *             handshake, each with the CSP session the mediator opens);
 * and the machine's own limit in the same run: fdatasync calls per second
 * in the data directory (every reflect is made durable before its ack).
 * Medians of --runs runs; nothing is asserted.
 */
#define _GNU_SOURCE /* sched_setaffinity */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <sodium.h>

#include "veil/client.h"
#include "veil/md.h"

#include "proc.h"

#define ENV_LEN 256
#define MAX_DEV 3072
#define LAT_MAX 400000

#define IO_CAP (256u * 1024u) /* bytes buffered per device each way in the phases */

struct dev {
	struct veil_ws *ws;
	int group, role; /* role 0 sends, 1 and 2 receive */
	uint32_t next_id;
	int inflight;
	/*
	 * In the phases the devices' sockets are read and written here, not
	 * through veil_ws (one libcurl call, a fresh mask and an allocation
	 * per message, a memmove per message read), so that the benchmark's
	 * own client is not what is measured: frames are read in bulk and
	 * written once per pass for every device.
	 */
	int fd;
	uint8_t *in, *out;
	size_t in_len, out_len;
};

static struct dev devs[MAX_DEV];
static int ndev;
static uint64_t *lat;
static size_t nlat;
static uint64_t delivered, sent;
static const char *bindir = "build";
static pid_t srv_pid;
static char data_dir[128], base_url[128];

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int start_veild(void)
{
	char exe[256], cp[8], hp[8];
	uint16_t chat = free_port(), http = free_port();
	snprintf(data_dir, sizeof data_dir, "/tmp/veil-mdbench-XXXXXX");
	if (mkdtemp(data_dir) == NULL)
		return -1;
	snprintf(exe, sizeof exe, "%s/veild", bindir);
	snprintf(cp, sizeof cp, "%u", chat);
	snprintf(hp, sizeof hp, "%u", http);
	snprintf(base_url, sizeof base_url, "ws://127.0.0.1:%u/mediator/", http);
	fflush(NULL);
	srv_pid = fork();
	if (srv_pid == 0) {
		char logp[200];
		/* veild goes with the benchmark, however that ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pin_cpu(0);
		snprintf(logp, sizeof logp, "%s/veild.log", data_dir);
		if (freopen(logp, "a", stdout) == NULL || freopen(logp, "a", stderr) == NULL)
			_exit(127);
		execl(exe, exe, "--data", data_dir, "--chat-port", cp, "--http-port", hp,
		      "--http-conn-rate", "1000000", "--http-conn-per-addr", "4096",
		      "--mediator-max-slots", "64", "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	return wait_port(http, srv_pid);
}

static void stop_veild(void)
{
	char cmd[300];
	if (srv_pid > 0) {
		kill(srv_pid, SIGTERM);
		waitpid(srv_pid, NULL, 0);
		srv_pid = 0;
	}
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "md_bench: could not remove %s\n", data_dir);
}

/* Connects one device of the group keyed by k and runs the D2M handshake. */
static int dev_open(struct dev *d, const struct veil_md_keys *k, uint64_t device_id)
{
	char url[VEIL_WS_URL_MAX], hex[VEIL_MD_URL_INFO_HEX_MAX];
	struct veil_md_server_hello sh;
	struct veil_md_client_hello ch;
	struct veil_md_server_info si;
	const uint8_t *msg, *pl;
	size_t len, pn;
	uint8_t type;
	struct veil_buf b;
	int rc = -1;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	if ((d->ws = calloc(1, sizeof *d->ws)) == NULL ||
	    veil_md_url_info_encode(hex, sizeof hex, k->group_id, "a0") != 0)
		goto out;
	snprintf(url, sizeof url, "%s%s", base_url, hex);
	if (veil_ws_open(d->ws, url, NULL, 10000) != 0 || veil_ws_recv(d->ws, &msg, &len, 10000) ||
	    veil_md_container_parse(msg, len, &type, &pl, &pn) != 0 ||
	    veil_md_server_hello_parse(&sh, pl, pn) != 0)
		goto out;
	memset(&ch, 0, sizeof ch);
	ch.device_id = device_id;
	ch.slot_expiration_policy = VEIL_MD_SLOT_PERSISTENT;
	ch.expected_slot_state = VEIL_MD_SLOT_NEW;
	if (veil_md_client_hello_make(&b, &ch, k, &sh, NULL) != 0 ||
	    veil_ws_send(d->ws, b.p, b.len) != 0 || veil_ws_recv(d->ws, &msg, &len, 10000) != 0 ||
	    veil_md_container_parse(msg, len, &type, &pl, &pn) != 0 ||
	    veil_md_server_info_parse(&si, pl, pn) != 0)
		goto out;
	rc = 0;
out:
	veil_buf_release(&b);
	return rc;
}

static void dev_close_all(void)
{
	for (int i = 0; i < ndev; i++) {
		veil_ws_close(devs[i].ws, 1000);
		free(devs[i].ws);
		free(devs[i].in);
		free(devs[i].out);
	}
	ndev = 0;
}

/* Takes a connected device's socket over for the bulk I/O (with what veil_ws had read). */
static int dev_fast(struct dev *d)
{
	d->fd = veil_ws_fd(d->ws);
	d->in = malloc(IO_CAP);
	d->out = malloc(IO_CAP);
	int fl = fcntl(d->fd, F_GETFL);
	if (d->in == NULL || d->out == NULL || d->ws->rlen > IO_CAP || fl < 0 ||
	    fcntl(d->fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return -1;
	memcpy(d->in, d->ws->rbuf, d->ws->rlen);
	d->in_len = d->ws->rlen;
	d->ws->rlen = 0;
	d->out_len = 0;
	return 0;
}

/* Writes what the device has buffered; all of it when wait is set. */
static int dev_flush(struct dev *d, int wait)
{
	size_t o = 0;
	while (o < d->out_len) {
		ssize_t n = write(d->fd, d->out + o, d->out_len - o);
		if (n > 0) {
			o += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait)
				break;
			struct pollfd p = {.fd = d->fd, .events = POLLOUT};
			if (poll(&p, 1, 10000) <= 0)
				return -1;
			continue;
		}
		return -1;
	}
	memmove(d->out, d->out + o, d->out_len - o);
	d->out_len -= o;
	return 0;
}

/*
 * Buffers one container as a client frame: masked, with the mask 0 (the
 * server unmasks all the same; the bytes need no XOR).
 */
static int dev_queue(struct dev *d, uint8_t type, const uint8_t *p, size_t n)
{
	size_t len = VEIL_MD_HDR_LEN + n, h = len < 126 ? 6 : 8;
	if (len > 65535)
		return -1;
	if (d->out_len + h + len > IO_CAP && dev_flush(d, 1) != 0)
		return -1;
	uint8_t *f = d->out + d->out_len;
	f[0] = 0x82;
	if (len < 126) {
		f[1] = (uint8_t)(0x80 | len);
	} else {
		f[1] = 0x80 | 126;
		f[2] = (uint8_t)(len >> 8);
		f[3] = (uint8_t)len;
	}
	memset(f + h - 4, 0, 4 + VEIL_MD_HDR_LEN);
	f[h] = type;
	if (n > 0)
		memcpy(f + h + VEIL_MD_HDR_LEN, p, n);
	d->out_len += h + len;
	return 0;
}

static int make_groups(int groups, int per_group)
{
	for (int g = 0; g < groups; g++) {
		uint8_t dgk[VEIL_MD_DGK_LEN];
		struct veil_md_keys k;
		randombytes_buf(dgk, sizeof dgk);
		if (veil_md_keys_derive(&k, dgk) != 0)
			return -1;
		for (int r = 0; r < per_group; r++) {
			struct dev *d = &devs[ndev++];
			memset(d, 0, sizeof *d);
			d->group = g;
			d->role = r;
			d->next_id = 1;
			if (dev_open(d, &k, veil_random_u64()) != 0) {
				fprintf(stderr, "md_bench: device %d could not connect\n", ndev);
				return -1;
			}
		}
	}
	return 0;
}

static int reflect_one(struct dev *d)
{
	uint8_t p[VEIL_MD_REFLECT_HDR_LEN + ENV_LEN];
	memset(p, 0, sizeof p);
	p[0] = VEIL_MD_REFLECT_HDR_LEN;
	veil_store_u32le(p + 4, d->next_id++);
	veil_store_u64le(p + VEIL_MD_REFLECT_HDR_LEN, now_us());
	d->inflight++;
	sent++;
	return dev_queue(d, VEIL_MD_REFLECT, p + 0, sizeof p);
}

/* One container from the mediator: reflect-acks (senders), reflected (receivers, acked). */
static int dev_message(struct dev *d, const uint8_t *msg, size_t len)
{
	const uint8_t *pl;
	size_t pn;
	uint8_t type;
	if (veil_md_container_parse(msg, len, &type, &pl, &pn) != 0)
		return -1;
	if (type == VEIL_MD_REFLECT_ACK) {
		d->inflight--;
	} else if (type == VEIL_MD_REFLECTED) {
		struct veil_md_reflect r;
		uint8_t ack[VEIL_MD_REFLECTED_ACK_LEN] = {0};
		if (veil_md_reflected_parse(&r, pl, pn) != 0 || r.envelope_len < 8)
			return -1;
		uint64_t t = veil_load_u64le(r.envelope);
		if (nlat < LAT_MAX)
			lat[nlat++] = now_us() - t;
		delivered++;
		veil_store_u32le(ack + 4, r.id);
		return dev_queue(d, VEIL_MD_REFLECTED_ACK, ack, sizeof ack);
	}
	return 0;
}

/* Reads what the socket has and handles every whole frame in it (server frames: unmasked). */
static int dev_read(struct dev *d)
{
	ssize_t got = read(d->fd, d->in + d->in_len, IO_CAP - d->in_len);
	if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		fprintf(stderr, "md_bench: device %d of group %d: the connection ended\n", d->role,
		        d->group);
		return -1;
	}
	if (got > 0)
		d->in_len += (size_t)got;
	size_t o = 0;
	while (d->in_len - o >= 2) {
		const uint8_t *f = d->in + o;
		size_t h = 2, plen = f[1] & 0x7f;
		if (plen == 126) {
			if (d->in_len - o < 4)
				break;
			h = 4;
			plen = (size_t)f[2] << 8 | f[3];
		} else if (plen == 127) {
			return -1; /* never longer than 64 KiB here */
		}
		if (d->in_len - o < h + plen)
			break;
		if ((f[0] & 0x0f) == 0x8) {
			fprintf(stderr, "md_bench: device %d of group %d: closed (code %d)\n",
			        d->role, d->group, plen >= 2 ? f[h] << 8 | f[h + 1] : 0);
			return -1;
		}
		if ((f[0] & 0x0f) == 0x2 && dev_message(d, f + h, plen) != 0)
			return -1;
		o += h + plen;
	}
	memmove(d->in, d->in + o, d->in_len - o);
	d->in_len -= o;
	return 0;
}

static int flush_all(void)
{
	for (int i = 0; i < ndev; i++)
		if (devs[i].out_len > 0 && dev_flush(&devs[i], 0) != 0)
			return -1;
	return 0;
}

struct result {
	double per_s, cpu_us, p50_ms, p99_ms;
	double gen_us; /* md_bench's own CPU per envelope: when it, not veild, was the limit */
};

/* One phase: rate 0 = flat out with window per sender, else reflects per second in total. */
static int phase(int secs, int rate, int window, struct result *res)
{
	struct pollfd pfd[MAX_DEV];
	nlat = 0;
	delivered = sent = 0;
	for (int i = 0; i < ndev; i++)
		if (devs[i].in == NULL && dev_fast(&devs[i]) != 0)
			return -1;
	uint64_t t0 = now_us(), c0 = proc_cpu_us(srv_pid), g0 = proc_cpu_us(getpid());
	uint64_t end = t0 + (uint64_t)secs * 1000000u;
	uint64_t next_tick = t0;
	while (now_us() < end) {
		uint64_t now = now_us();
		if (rate == 0) {
			for (int i = 0; i < ndev; i++)
				while (devs[i].role == 0 && devs[i].inflight < window)
					if (reflect_one(&devs[i]) != 0)
						return -1;
		} else if (now >= next_tick) {
			/* Every millisecond, the reflects due so far, round robin over the senders. */
			uint64_t due = (now - t0) * (uint64_t)rate / 1000000u;
			static int rr;
			while (sent < due) {
				int tries = 0;
				while (devs[rr].role != 0 && tries++ < ndev)
					rr = (rr + 1) % ndev;
				if (reflect_one(&devs[rr]) != 0)
					return -1;
				rr = (rr + 1) % ndev;
			}
			next_tick = now + 1000;
		}
		if (flush_all() != 0)
			return -1;
		for (int i = 0; i < ndev; i++) {
			pfd[i].fd = devs[i].fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)ndev, 1) < 0)
			return -1;
		for (int i = 0; i < ndev; i++)
			if ((pfd[i].revents & POLLIN) && dev_read(&devs[i]) != 0)
				return -1;
	}
	/*
	 * Let what is in flight arrive, so that the CPU counted matches the
	 * envelopes counted, and check that every reflect reached both other
	 * devices exactly once.
	 */
	uint64_t drain_end = now_us() + 30000000u;
	while (now_us() < drain_end && delivered < sent * 2) {
		if (flush_all() != 0)
			return -1;
		for (int i = 0; i < ndev; i++) {
			pfd[i].fd = devs[i].fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)ndev, 5) < 0)
			return -1;
		for (int i = 0; i < ndev; i++)
			if ((pfd[i].revents & POLLIN) && dev_read(&devs[i]) != 0)
				return -1;
	}
	uint64_t t1 = now_us(), cpu = proc_cpu_us(srv_pid) - c0, gen = proc_cpu_us(getpid()) - g0;
	if (delivered != sent * 2) {
		fprintf(stderr,
		        "md_bench: %llu reflects, %llu envelopes delivered (want twice as many)\n",
		        (unsigned long long)sent, (unsigned long long)delivered);
		return -1;
	}
	res->per_s = (double)delivered * 1e6 / (double)(t1 - t0);
	res->cpu_us = delivered ? (double)cpu / (double)delivered : 0;
	res->gen_us = delivered ? (double)gen / (double)delivered : 0;
	qsort(lat, nlat, sizeof *lat, cmp_u64);
	res->p50_ms = nlat ? (double)lat[nlat / 2] / 1000.0 : 0;
	res->p99_ms = nlat ? (double)lat[nlat * 99 / 100] / 1000.0 : 0;
	return 0;
}

/* The machine's limit for durable writes: fdatasync per second in the data directory. */
static double fsync_rate(void)
{
	char path[200];
	uint8_t blk[512] = {0};
	snprintf(path, sizeof path, "%s/fsync-probe", data_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 0;
	uint64_t t0 = now_us();
	int n = 0;
	while (now_us() - t0 < 1000000u) {
		if (pwrite(fd, blk, sizeof blk, (off_t)(n % 64) * 512) != (ssize_t)sizeof blk ||
		    fdatasync(fd) != 0)
			break;
		n++;
	}
	close(fd);
	unlink(path);
	return (double)n * 1e6 / (double)(now_us() - t0);
}

int main(int argc, char **argv)
{
	int runs = 3, secs = 5, groups = 32, idle = 500, paced = 5000, idle_only = 0, opt;
	static const struct option lo[] = {
	    {"bin", 1, 0, 'b'},       {"runs", 1, 0, 'r'}, {"secs", 1, 0, 's'},
	    {"groups", 1, 0, 'g'},    {"idle", 1, 0, 'i'}, {"rate", 1, 0, 'p'},
	    {"idle-only", 0, 0, 'o'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'b': bindir = optarg; break;
		case 'r': runs = (int)strtol(optarg, NULL, 10); break;
		case 's': secs = (int)strtol(optarg, NULL, 10); break;
		case 'g': groups = (int)strtol(optarg, NULL, 10); break;
		case 'i': idle = (int)strtol(optarg, NULL, 10); break;
		case 'p': paced = (int)strtol(optarg, NULL, 10); break;
		case 'o': idle_only = 1; break;
		default:
			printf(
			    "usage: md_bench [--bin DIR] [--runs N] [--secs S (1..8)] [--groups G] "
			    "[--idle N] [--rate R] [--idle-only]\n"
			    "  --idle-only  measure the idle devices' memory only (no reflection "
			    "phases)\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	/* A phase must end before the devices' CSP sessions time out (10 s, see above). */
	if (runs < 1 || runs > 9 || secs < 1 || secs > 8 || groups < 1 ||
	    groups * 3 > MAX_DEV / 2 || idle < 0 || idle > MAX_DEV / 2)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (veil_crypto_init() != 0 || (lat = malloc(LAT_MAX * sizeof *lat)) == NULL)
		return 1;
	double fg[9] = {0}, pg[9] = {0};
	double fl[9] = {0}, fc[9] = {0}, f50[9] = {0}, f99[9] = {0}, pr[9] = {0}, pc[9] = {0},
	       p50[9] = {0}, p99[9] = {0}, mem[9], fs[9], anon[9], file[9], shm[9];
	for (int r = 0; r < runs; r++) {
		struct result a, b;
		if (start_veild() != 0) {
			fprintf(stderr, "md_bench: veild did not start\n");
			return 1;
		}
		pin_cpu(1);
		fs[r] = fsync_rate();
		/*
		 * Idle devices first, in groups of 3 on a fresh veild, so that
		 * memory the phases freed does not hide what they cost.
		 */
		usleep(300000);
		long rss0 = proc_rss_kb(srv_pid), an0 = proc_status_kb(srv_pid, "RssAnon:"),
		     fi0 = proc_status_kb(srv_pid, "RssFile:"),
		     sh0 = proc_status_kb(srv_pid, "RssShmem:");
		if (make_groups(idle / 3, 3) != 0)
			return 1;
		usleep(300000);
		long rss1 = proc_rss_kb(srv_pid);
		double nd = ndev ? ndev : 1;
		mem[r] = (double)(rss1 - rss0) * 1024.0 / nd;
		anon[r] = (double)(proc_status_kb(srv_pid, "RssAnon:") - an0) * 1024.0 / nd;
		file[r] = (double)(proc_status_kb(srv_pid, "RssFile:") - fi0) * 1024.0 / nd;
		shm[r] = (double)(proc_status_kb(srv_pid, "RssShmem:") - sh0) * 1024.0 / nd;
		dev_close_all();
		if (idle_only) {
			stop_veild();
			printf(
			    "run %d: idle %.0f B/conn (anonymous %.0f, file %.0f, shared %.0f)\n",
			    r + 1, mem[r], anon[r], file[r], shm[r]);
			fflush(stdout);
			continue;
		}
		/*
		 * Fresh groups for each phase: the mediator opens a CSP session
		 * for every device, which the chat service closes (and the
		 * mediator the device, 4000) when no login follows within
		 * VEIL_CHAT_HANDSHAKE_TIMEOUT_MS (10 s); these devices never
		 * log in.
		 */
		int bad = make_groups(groups, 3) != 0 || phase(secs, 0, 64, &a) != 0;
		dev_close_all();
		if (bad || make_groups(groups, 3) != 0 || phase(secs, paced, 0, &b) != 0) {
			fprintf(stderr, "md_bench: a device failed (see %s/veild.log)\n", data_dir);
			return 1;
		}
		dev_close_all();
		stop_veild();
		fl[r] = a.per_s, fc[r] = a.cpu_us, f50[r] = a.p50_ms, f99[r] = a.p99_ms;
		pr[r] = b.per_s, pc[r] = b.cpu_us, p50[r] = b.p50_ms, p99[r] = b.p99_ms;
		fg[r] = a.gen_us, pg[r] = b.gen_us;
		printf("run %d: flat %.0f/s %.1f us (gen %.1f) p50 %.2f p99 %.2f ms | paced %.0f/s "
		       "%.1f "
		       "us (gen %.1f) p50 %.2f p99 %.2f ms | idle %.0f B/conn | fsync %.0f/s\n",
		       r + 1, a.per_s, a.cpu_us, a.gen_us, a.p50_ms, a.p99_ms, b.per_s, b.cpu_us,
		       b.gen_us, b.p50_ms, b.p99_ms, mem[r], fs[r]);
		printf("       idle memory: anonymous %.0f, file %.0f, shared %.0f B/conn\n",
		       anon[r], file[r], shm[r]);
		fflush(stdout);
	}
	double fsm = median(fs, runs), flm = median(fl, runs);
	if (idle_only) {
		printf(
		    "md_bench: idle device connection: %.0f bytes of veild's resident memory each "
		    "(anonymous %.0f, file %.0f, shared %.0f; %d devices in groups of 3, medians "
		    "of %d runs)\n",
		    median(mem, runs), median(anon, runs), median(file, runs), median(shm, runs),
		    idle / 3 * 3, runs);
		free(lat);
		return 0;
	}
	printf("md_bench: %d groups of 3 devices, %d-byte envelopes, medians of %d runs of %d s\n",
	       groups, ENV_LEN, runs, secs);
	printf("  flat out:  %.0f reflected envelopes/s delivered, %.1f us server CPU each "
	       "(md_bench's own %.1f us), p50 %.2f ms, p99 %.2f ms\n",
	       flm, median(fc, runs), median(fg, runs), median(f50, runs), median(f99, runs));
	printf("  paced %d reflects/s (%d envelopes/s): %.0f/s delivered, %.1f us CPU each "
	       "(md_bench's own %.1f us), p50 %.2f ms, p99 %.2f ms\n",
	       paced, paced * 2, median(pr, runs), median(pc, runs), median(pg, runs),
	       median(p50, runs), median(p99, runs));
	printf("  idle device connection: %.0f bytes of veild's resident memory each (%d "
	       "devices in groups of 3)\n",
	       median(mem, runs), idle / 3 * 3);
	printf("  machine limit: %.0f fdatasync/s in the data directory; flat out delivers %.2f "
	       "envelopes per fdatasync the disk can do\n",
	       fsm, fsm > 0 ? flm / fsm : 0);
	free(lat);
	return 0;
}
