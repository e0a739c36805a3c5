/*
 * Blob transfer speed: an in-process veild HTTP listener with the blob
 * service on loopback (temporary data directory), driven by the libveil
 * blob client. Measures, for a file of BLOB_BENCH_MIB MiB (default 256):
 *   upload    encrypt (two passes) + multipart POST + server fsync and rename
 *   download  GET + decrypt + tag check + fsync
 * beside two limits measured in the same run: plain loopback TCP of the same
 * bytes (one sender thread, one receiver), and the chunked secretbox alone.
 * Prints MB/s and the ratio of each transfer to the loopback limit; the
 * median of three runs each. Nothing is asserted.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sodium.h>

#include "veil/client.h"
#include "veil/e2e.h"
#include "../srv/blob/blob.h"
#include "../srv/http/http.h"
#include "../srv/server.h"
#include "../srv/store/store.h"

#define RUNS 3

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v)
{
	qsort(v, RUNS, sizeof *v, cmp_d);
	return v[RUNS / 2];
}

/* --- loopback TCP limit --- */

struct tcp_rx {
	int lfd;
	uint64_t want, got;
};

static void *tcp_recv(void *arg)
{
	struct tcp_rx *r = arg;
	int c = accept(r->lfd, NULL, NULL);
	static uint8_t buf[256 * 1024];
	while (c >= 0 && r->got < r->want) {
		ssize_t n = recv(c, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		r->got += (uint64_t)n;
	}
	if (c >= 0)
		close(c);
	return NULL;
}

static double tcp_limit(uint64_t bytes)
{
	struct tcp_rx r = {0};
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	r.lfd = socket(AF_INET, SOCK_STREAM, 0);
	r.want = bytes;
	if (r.lfd < 0 || bind(r.lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(r.lfd, 1) != 0 || getsockname(r.lfd, (struct sockaddr *)&a, &al) != 0)
		return 0;
	pthread_t th;
	if (pthread_create(&th, NULL, tcp_recv, &r) != 0)
		return 0;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	static uint8_t buf[256 * 1024];
	double t0 = now_s();
	if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
		for (uint64_t o = 0; o < bytes;) {
			size_t n = bytes - o > sizeof buf ? sizeof buf : (size_t)(bytes - o);
			ssize_t w = send(s, buf, n, 0);
			if (w <= 0)
				break;
			o += (uint64_t)w;
		}
	}
	if (s >= 0)
		close(s);
	pthread_join(th, NULL);
	double t = now_s() - t0;
	close(r.lfd);
	return r.got == bytes ? (double)bytes / t / 1e6 : 0;
}

static double crypto_limit(uint64_t bytes)
{
	static uint8_t buf[256 * 1024];
	uint8_t key[32], nonce[24], tag[16];
	struct veil_sbstream st;
	randombytes_buf(key, sizeof key);
	veil_file_nonce(nonce, VEIL_FILE_NONCE_FILE);
	double t0 = now_s();
	if (veil_sbstream_init(&st, key, nonce) != 0)
		return 0;
	for (uint64_t o = 0; o < bytes; o += sizeof buf)
		veil_sbstream_encrypt(&st, buf, buf,
		                      bytes - o > sizeof buf ? sizeof buf : (size_t)(bytes - o));
	veil_sbstream_final(&st, tag);
	return (double)bytes / (now_s() - t0) / 1e6;
}

static void no_wake(void *arg)
{
	(void)arg;
}

int main(void)
{
	static struct veil_server srv;
	struct veil_http *http = NULL;
	char dir[64] = "/tmp/veil-blob-bench.XXXXXX", path[256], src[300], dst[300];
	const char *e = getenv("BLOB_BENCH_MIB");
	uint64_t mib = e != NULL ? strtoull(e, NULL, 10) : 0;
	if (mib == 0 || mib > 4096)
		mib = 256;
	uint64_t bytes = mib * 1024 * 1024;
	if (veil_crypto_init() != 0 || mkdtemp(dir) == NULL)
		return 1;
	snprintf(srv.cfg.data_dir, sizeof srv.cfg.data_dir, "%s", dir);
	snprintf(srv.cfg.listen, sizeof srv.cfg.listen, "127.0.0.1");
	srv.cfg.http_max_body = 64 * 1024;
	srv.cfg.blob_max_size = bytes + 1024;
	srv.cfg.blob_quota = UINT64_MAX / 2;
	srv.cfg.blob_ttl_s = 3600;
	srv.cfg.blob_persist_ttl_s = 3600;
	srv.keys.csp_sk = sodium_malloc(32);
	srv.keys.sign_sk = sodium_malloc(64);
	srv.keys.dir_sk = sodium_malloc(32);
	if (srv.keys.csp_sk == NULL || srv.keys.sign_sk == NULL || srv.keys.dir_sk == NULL)
		return 1;
	veil_keypair(srv.keys.csp_pk, srv.keys.csp_sk);
	crypto_sign_keypair(srv.keys.sign_pk, srv.keys.sign_sk);
	veil_keypair(srv.keys.dir_pk, srv.keys.dir_sk);
	snprintf(path, sizeof path, "%s/store.db", dir);
	struct veil_store_opts so = {.path = path, .wake = no_wake};
	if (veil_store_open(&srv.store, &so) != 0 || veil_http_start(&http, &srv) != 0)
		return 1;

	/* The source file, random bytes. */
	snprintf(src, sizeof src, "%s/src", dir);
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	static uint8_t buf[1 << 20];
	for (uint64_t o = 0; fd >= 0 && o < bytes; o += sizeof buf) {
		randombytes_buf(buf, sizeof buf);
		if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf)
			return 1;
	}
	if (fd < 0 || close(fd) != 0)
		return 1;

	struct veil_blob_client bc;
	memset(&bc, 0, sizeof bc);
	unsigned port = veil_http_port(http);
	snprintf(bc.upload_url, sizeof bc.upload_url, "http://127.0.0.1:%u/blob/upload", port);
	snprintf(bc.download_url, sizeof bc.download_url, "http://127.0.0.1:%u/blob/{blobId}",
	         port);
	snprintf(bc.done_url, sizeof bc.done_url, "http://127.0.0.1:%u/blob/{blobId}/done", port);
	uint8_t tok[VEIL_BLOB_TOKEN_LEN];
	if (veil_blob_token_issue(&srv.keys, (const uint8_t *)"BENCH001", veil_now_ms() + 3600000,
	                          tok) != 0 ||
	    veil_b64_encode(bc.token, sizeof bc.token, tok, sizeof tok) != 0)
		return 1;

	double up[RUNS], down[RUNS], tcp[RUNS], cry[RUNS];
	for (int r = 0; r < RUNS; r++) {
		uint8_t key[32], id[16];
		uint64_t size;
		randombytes_buf(key, sizeof key);
		tcp[r] = tcp_limit(bytes);
		cry[r] = crypto_limit(bytes);
		double t0 = now_s();
		if (veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size) != 0) {
			fprintf(stderr, "upload: %s\n", bc.errtext);
			return 1;
		}
		double t1 = now_s();
		snprintf(dst, sizeof dst, "%s/dst%d", dir, r);
		if (veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst) != 0) {
			fprintf(stderr, "download: %s\n", bc.errtext);
			return 1;
		}
		double t2 = now_s();
		up[r] = (double)bytes / (t1 - t0) / 1e6;
		down[r] = (double)bytes / (t2 - t1) / 1e6;
		unlink(dst);
		if (veil_blob_done(&bc, id) != 0)
			return 1;
	}
	double mt = median(tcp), mc = median(cry), mu = median(up), md = median(down);
	printf("srv_blob_bench: %" PRIu64 " MiB file, median of %d runs, loopback, one client\n",
	       mib, RUNS);
	printf("  loopback TCP limit      %8.0f MB/s\n", mt);
	printf("  secretbox (chunked)     %8.0f MB/s\n", mc);
	printf("  upload   (encrypt+POST) %8.0f MB/s   ratio to loopback %.2f\n", mu, mu / mt);
	printf("  download (GET+decrypt)  %8.0f MB/s   ratio to loopback %.2f\n", md, md / mt);

	veil_http_stop(http);
	veil_store_close(srv.store);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
