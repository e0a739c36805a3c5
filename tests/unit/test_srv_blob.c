/*
 * The blob service in-process (HTTP listener on a free loopback port, a
 * temporary data directory) driven by the libveil blob client: credential,
 * upload, download with Range and resume, done, limits, expiry, tampering,
 * concurrent uploads; and the streaming multipart parser on its own.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sodium.h>

#include "veil/client.h"
#include "veil/crypto.h"
#include "veil/e2e.h"
#include "veil/util.h"
#include "../../srv/blob/blob.h"
#include "../../srv/http/http.h"
#include "../../srv/server.h"
#include "../../srv/store/store.h"
#include "t.h"

static char tmpdir[256];
static struct veil_server srv;
static struct veil_http *http;
static char base[128];
static uint8_t owner[VEIL_ID_LEN], owner_pk[32], owner_sk[32];

/* ---------------------------------------------------------------------- */
/* Multipart parser                                                       */
/* ---------------------------------------------------------------------- */

struct sink {
	uint8_t buf[4096];
	size_t len;
};

static int sink_data(void *ctx, const uint8_t *p, size_t n)
{
	struct sink *s = ctx;
	if (n > sizeof s->buf - s->len)
		return VEIL_ELIMIT;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

static const char ct[] = "multipart/form-data; boundary=XyZ123";

/* Parses body in pieces of step bytes; returns feed/finish's result and the data in s. */
static int mp_run(const char *ctype, const uint8_t *body, size_t len, size_t step, struct sink *s)
{
	struct veil_multipart mp;
	s->len = 0;
	int rc = veil_multipart_init(&mp, ctype, "blob", sink_data, s);
	if (rc != 0)
		return rc;
	for (size_t o = 0; o < len;) {
		size_t n = step == 0 || step > len - o ? len - o : step;
		if ((rc = veil_multipart_feed(&mp, body + o, n)) != 0)
			return rc;
		o += n;
	}
	return veil_multipart_finish(&mp);
}

static void test_multipart_splits(void)
{
	/* Data that contains near-delimiters: CR, CRLF--, CRLF--XyZ12 (one short). */
	static const char body[] =
	    "preamble\r\n--XyZ123\r\n"
	    "Content-Disposition: form-data; name=\"persist\"\r\n\r\n1\r\n--XyZ123\r\n"
	    "Content-Disposition: form-data; name=\"blob\"; filename=\"b\"\r\n"
	    "Content-Type: application/octet-stream\r\n\r\n"
	    "a\rb\r\nc\r\n-d\r\n--XyZ12\r\n--XyZ12x\r\r\n--XyZ123\r\n"
	    "Content-Disposition: form-data; name=\"x\"\r\n\r\nzz\r\n--XyZ123--\r\nepilogue";
	static const char want[] = "a\rb\r\nc\r\n-d\r\n--XyZ12\r\n--XyZ12x\r";
	struct sink s;
	for (size_t step = 0; step < sizeof body; step++) {
		CHECK_RC(mp_run(ct, (const uint8_t *)body, sizeof body - 1, step, &s), 0);
		CHECK(s.len == sizeof want - 1);
		CHECK_MEM(s.buf, want, s.len);
	}
	/* First boundary at offset 0, quoted boundary parameter, binary data. */
	uint8_t b2[300];
	size_t n = 0;
	const char *h = "--a'b\r\nContent-Disposition: form-data; name=blob\r\n\r\n";
	memcpy(b2, h, strlen(h));
	n = strlen(h);
	for (int i = 0; i < 100; i++)
		b2[n++] = (uint8_t)(i * 37);
	memcpy(b2 + n, "\r\n--a'b--", 9);
	n += 9;
	for (size_t step = 1; step < 20; step++) {
		CHECK_RC(
		    mp_run("multipart/form-data; charset=x; boundary=\"a'b\"", b2, n, step, &s), 0);
		CHECK(s.len == 100 && s.buf[1] == 37);
	}
}

static int mp_str(const char *ctype, const char *body)
{
	struct sink s;
	return mp_run(ctype, (const uint8_t *)body, strlen(body), 0, &s);
}

static void test_multipart_errors(void)
{
	CHECK_RC(mp_str("text/plain", "x"), VEIL_EPROTO);
	CHECK_RC(mp_str("multipart/form-data", "x"), VEIL_EPROTO);
	CHECK_RC(mp_str("multipart/form-data; boundary=", "x"), VEIL_EPROTO);
	CHECK_RC(mp_str("multipart/form-data; boundary=a\rb", "x"), VEIL_EPROTO);
	/* Truncated: no closing delimiter. */
	CHECK_RC(mp_str(ct, "--XyZ123\r\nContent-Disposition: form-data; name=blob\r\n\r\nabc"),
	         VEIL_ETRUNC);
	/* No blob field. */
	CHECK_RC(mp_str(ct, "--XyZ123\r\nContent-Disposition: form-data; name=x\r\n\r\nabc\r\n"
	                    "--XyZ123--"),
	         VEIL_EPROTO);
	/* The field twice. */
	CHECK_RC(mp_str(ct, "--XyZ123\r\nContent-Disposition: form-data; name=blob\r\n\r\na\r\n"
	                    "--XyZ123\r\nContent-Disposition: form-data; name=blob\r\n\r\nb\r\n"
	                    "--XyZ123--"),
	         VEIL_EPROTO);
	/* Header line without CR, garbage after a delimiter. */
	CHECK_RC(mp_str(ct, "--XyZ123\r\nContent-Disposition: form-data; name=blob\n\nabc"),
	         VEIL_EPROTO);
	CHECK_RC(mp_str(ct, "--XyZ123x"), VEIL_EPROTO);
	/* Bounds: a long header line, a long preamble, a large other part. */
	char big[6000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	char doc[7000];
	snprintf(doc, sizeof doc, "--XyZ123\r\nX: %s\r\n", big);
	CHECK_RC(mp_str(ct, doc), VEIL_ELIMIT);
	snprintf(doc, sizeof doc, "%s\r\n--XyZ123--", big);
	CHECK_RC(mp_str(ct, doc), VEIL_ELIMIT);
	snprintf(doc, sizeof doc, "--XyZ123\r\nContent-Disposition: form-data; name=o\r\n\r\n%s",
	         big);
	CHECK_RC(mp_str(ct, doc), VEIL_ELIMIT);
}

static void test_token(void)
{
	uint8_t t[VEIL_BLOB_TOKEN_LEN], id[VEIL_ID_LEN];
	uint64_t now = veil_now_ms();
	CHECK_RC(veil_blob_token_issue(&srv.keys, (const uint8_t *)"ABCD1234", now + 1000, t), 0);
	CHECK_RC(veil_blob_token_check(&srv.keys, t, sizeof t, now, id), 0);
	CHECK_MEM(id, "ABCD1234", 8);
	CHECK_RC(veil_blob_token_check(&srv.keys, t, sizeof t, now + 1000, id), VEIL_ETIMEOUT);
	t[3] ^= 1; /* another identity */
	CHECK_RC(veil_blob_token_check(&srv.keys, t, sizeof t, now, id), VEIL_ECRYPTO);
	CHECK_RC(veil_blob_token_check(&srv.keys, t, sizeof t - 1, now, id), VEIL_ECRYPTO);
}

/* ---------------------------------------------------------------------- */
/* Service                                                                */
/* ---------------------------------------------------------------------- */

static void client(struct veil_blob_client *bc)
{
	memset(bc, 0, sizeof *bc);
	snprintf(bc->upload_url, sizeof bc->upload_url, "%s/blob/upload", base);
	snprintf(bc->download_url, sizeof bc->download_url, "%s/blob/{blobId}", base);
	snprintf(bc->done_url, sizeof bc->done_url, "%s/blob/{blobId}/done", base);
}

static int write_file(const char *path, size_t n, uint8_t seed)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return -1;
	uint8_t buf[4096];
	for (size_t o = 0; o < n;) {
		size_t k = n - o > sizeof buf ? sizeof buf : n - o;
		for (size_t i = 0; i < k; i++)
			buf[i] = (uint8_t)((o + i) * 131 + seed);
		fwrite(buf, 1, k, f);
		o += k;
	}
	return fclose(f);
}

static int same_files(const char *a, const char *b)
{
	FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
	int same = x != NULL && y != NULL;
	while (same) {
		int c = fgetc(x), d = fgetc(y);
		if (c != d)
			same = 0;
		if (c == EOF || d == EOF)
			break;
	}
	if (x)
		fclose(x);
	if (y)
		fclose(y);
	return same;
}

static void blob_file(const uint8_t id[16], char *out, size_t cap)
{
	char hex[33];
	if (veil_hex_encode(hex, sizeof hex, id, 16) != 0)
		hex[0] = 0;
	snprintf(out, cap, "%s/blobs/%.2s/%s", tmpdir, hex, hex);
}

static void test_cred_upload_download_done(void)
{
	struct veil_blob_client bc;
	char src[300], dst[300], dir_url[200];
	uint8_t key[32], id[16];
	uint64_t size = 0;
	client(&bc);
	snprintf(dir_url, sizeof dir_url, "%s/directory/", base);
	CHECK_RC(veil_blob_cred(&bc, dir_url, owner, owner_sk), 0);
	CHECK(bc.token[0] != 0);
	/* Another key cannot answer the challenge for owner. */
	struct veil_blob_client bad;
	client(&bad);
	uint8_t opk[32], osk[32];
	veil_keypair(opk, osk);
	CHECK(veil_blob_cred(&bad, dir_url, owner, osk) == VEIL_EAUTH);

	snprintf(src, sizeof src, "%s/src1", tmpdir);
	snprintf(dst, sizeof dst, "%s/dst1", tmpdir);
	CHECK(write_file(src, 300000, 1) == 0);
	veil_random(key, sizeof key);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size), 0);
	CHECK(size == 300000);
	char bf[400];
	blob_file(id, bf, sizeof bf);
	struct stat sb;
	CHECK(stat(bf, &sb) == 0 && sb.st_size == 300016);
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), 0);
	CHECK(same_files(src, dst));
	/* Never overwrites. */
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), VEIL_EEXIST);
	/* A wrong key: nothing saved. */
	unlink(dst);
	key[0] ^= 1;
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), VEIL_ECRYPTO);
	CHECK(access(dst, F_OK) != 0);
	char part[320];
	snprintf(part, sizeof part, "%s.part", dst);
	CHECK(access(part, F_OK) != 0);
	key[0] ^= 1;
	/* Done deletes a 1:1 blob. */
	CHECK_RC(veil_blob_done(&bc, id), 0);
	CHECK(stat(bf, &sb) != 0);
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), VEIL_ENOTFOUND);
	CHECK_RC(veil_blob_done(&bc, id), VEIL_ENOTFOUND);
	/* A persistent blob survives done. */
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 1, id, &size), 0);
	CHECK_RC(veil_blob_done(&bc, id), 0);
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), 0);
	CHECK(same_files(src, dst));
	unlink(dst);
	/* No or a forged credential. */
	struct veil_blob_client nt;
	client(&nt);
	snprintf(nt.token, sizeof nt.token, "AAAA");
	CHECK_RC(veil_blob_upload(&nt, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size), VEIL_EAUTH);
}

static void test_tampered_and_truncated(void)
{
	struct veil_blob_client bc;
	char src[300], dst[300], bf[400], dir_url[200];
	uint8_t key[32], id[16];
	uint64_t size;
	client(&bc);
	snprintf(dir_url, sizeof dir_url, "%s/directory/", base);
	CHECK_RC(veil_blob_cred(&bc, dir_url, owner, owner_sk), 0);
	snprintf(src, sizeof src, "%s/src2", tmpdir);
	snprintf(dst, sizeof dst, "%s/dst2", tmpdir);
	CHECK(write_file(src, 100000, 2) == 0);
	veil_random(key, sizeof key);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size), 0);
	blob_file(id, bf, sizeof bf);
	/* Flip one ciphertext byte on the server's disk. */
	int fd = open(bf, O_RDWR);
	CHECK(fd >= 0);
	uint8_t c;
	CHECK(pread(fd, &c, 1, 5000) == 1);
	c ^= 0x40;
	CHECK(pwrite(fd, &c, 1, 5000) == 1);
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), VEIL_ECRYPTO);
	CHECK(access(dst, F_OK) != 0);
	/* Cut short. */
	c ^= 0x40;
	CHECK(pwrite(fd, &c, 1, 5000) == 1);
	CHECK(ftruncate(fd, 60000) == 0);
	close(fd);
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), VEIL_ETRUNC);
	CHECK(access(dst, F_OK) != 0);
	/* A file message that claims a smaller size than the blob. */
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size), 0);
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size - 1, dst),
	         VEIL_EPROTO);
	CHECK(access(dst, F_OK) != 0);
}

/* A TCP proxy that cuts the first connection after cut bytes of the answer. */
struct proxy {
	int lfd;
	uint16_t port, target;
	size_t cut;
	int conns, saw_range;
	pthread_t th;
};

static int connect_to(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *proxy_run(void *arg)
{
	struct proxy *p = arg;
	for (int k = 0; k < 2; k++) {
		int c = accept(p->lfd, NULL, NULL);
		if (c < 0)
			return NULL;
		int s = connect_to(p->target);
		char req[4096];
		ssize_t n = recv(c, req, sizeof req - 1, 0);
		if (s < 0 || n <= 0) {
			close(c);
			if (s >= 0)
				close(s);
			continue;
		}
		req[n] = 0;
		if (strstr(req, "Range: bytes=") != NULL)
			p->saw_range = 1;
		p->conns++;
		if (send(s, req, (size_t)n, 0) != n) {
			close(c);
			close(s);
			continue;
		}
		size_t fwd = 0;
		uint8_t buf[8192];
		for (;;) {
			ssize_t r = recv(s, buf, sizeof buf, 0);
			if (r <= 0)
				break;
			size_t w = (size_t)r;
			if (k == 0 && fwd + w > p->cut)
				w = p->cut - fwd;
			if (w > 0 && send(c, buf, w, MSG_NOSIGNAL) != (ssize_t)w)
				break;
			fwd += w;
			if (k == 0 && fwd >= p->cut)
				break; /* the cut */
		}
		close(s);
		close(c);
	}
	return NULL;
}

static void test_resume_after_cut(void)
{
	struct veil_blob_client bc;
	char src[300], dst[300], dir_url[200];
	uint8_t key[32], id[16];
	uint64_t size;
	struct proxy p = {0};
	client(&bc);
	snprintf(dir_url, sizeof dir_url, "%s/directory/", base);
	CHECK_RC(veil_blob_cred(&bc, dir_url, owner, owner_sk), 0);
	snprintf(src, sizeof src, "%s/src3", tmpdir);
	snprintf(dst, sizeof dst, "%s/dst3", tmpdir);
	CHECK(write_file(src, 2000000, 3) == 0);
	veil_random(key, sizeof key);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size), 0);

	p.lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	CHECK(bind(p.lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(p.lfd, 4) == 0);
	CHECK(getsockname(p.lfd, (struct sockaddr *)&a, &al) == 0);
	p.port = ntohs(a.sin_port);
	p.target = veil_http_port(http);
	p.cut = 700000; /* headers and about a third of the blob */
	CHECK(pthread_create(&p.th, NULL, proxy_run, &p) == 0);
	snprintf(bc.download_url, sizeof bc.download_url, "http://127.0.0.1:%u/blob/{blobId}",
	         (unsigned)p.port);
	int rc = veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst);
	pthread_join(p.th, NULL);
	close(p.lfd);
	if (rc != 0)
		fprintf(stderr, "download: %s\n", bc.errtext);
	CHECK_RC(rc, 0);
	CHECK(p.conns == 2 && p.saw_range && bc.resumed == 1);
	CHECK(same_files(src, dst));
}

static void test_limits(void)
{
	struct veil_blob_client bc;
	char src[300], dir_url[200], path[400];
	uint8_t key[32], id[16], ids[4][16];
	uint64_t size;
	uint8_t pk[32], sk[32];
	struct veil_identity_rec rec;
	/* A fresh identity; the service reads its limits at each request. */
	srv.cfg.blob_max_size = 400000;
	srv.cfg.blob_quota = 600000;
	veil_keypair(pk, sk);
	CHECK_RC(veil_store_identity_create(srv.store, pk, &rec), 0);
	client(&bc);
	snprintf(dir_url, sizeof dir_url, "%s/directory/", base);
	CHECK_RC(veil_blob_cred(&bc, dir_url, rec.id, sk), 0);
	veil_random(key, sizeof key);
	/* Larger than blob_max_size (400000): refused from Content-Length alone. */
	snprintf(src, sizeof src, "%s/big", tmpdir);
	CHECK(write_file(src, 500000, 4) == 0);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size), VEIL_ELIMIT);
	CHECK(strstr(bc.errtext, "413") != NULL);
	/* Quota: two of 250 kB fit, the third does not. */
	snprintf(src, sizeof src, "%s/mid", tmpdir);
	CHECK(write_file(src, 250000, 5) == 0);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, ids[0], &size), 0);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, ids[1], &size), 0);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, ids[2], &size),
	         VEIL_ELIMIT);
	CHECK(strstr(bc.errtext, "507") != NULL && strstr(bc.errtext, "quota") != NULL);
	/* Done frees quota. */
	CHECK_RC(veil_blob_done(&bc, ids[0]), 0);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, ids[2], &size), 0);
	/* Nothing half-written stays in tmp/ (this node's uploads are in tmp/NODE/). */
	snprintf(path, sizeof path, "%s/blobs/tmp", tmpdir);
	int n = 0;
	char cmd[600];
	snprintf(cmd, sizeof cmd, "find %s -mindepth 1 -not -type d | wc -l", path);
	FILE *f = popen(cmd, "r");
	CHECK(f != NULL && fscanf(f, "%d", &n) == 1);
	pclose(f);
	CHECK(n == 0);
	srv.cfg.blob_max_size = 4000000;
	srv.cfg.blob_quota = 100000000;
}

struct conc {
	const char *src;
	uint8_t key[32], id[16];
	int rc;
	struct veil_blob_client bc;
};

static void *conc_up(void *arg)
{
	struct conc *c = arg;
	uint64_t size;
	c->rc = veil_blob_upload(&c->bc, c->src, c->key, VEIL_FILE_NONCE_FILE, 0, c->id, &size);
	return NULL;
}

static void test_concurrent_uploads(void)
{
	enum { N = 8 };
	static struct conc c[N];
	pthread_t th[N];
	char src[N][300], dst[300], dir_url[200];
	snprintf(dir_url, sizeof dir_url, "%s/directory/", base);
	struct veil_blob_client bc;
	client(&bc);
	CHECK_RC(veil_blob_cred(&bc, dir_url, owner, owner_sk), 0);
	for (int i = 0; i < N; i++) {
		snprintf(src[i], sizeof src[i], "%s/c%d", tmpdir, i);
		CHECK(write_file(src[i], 50000 + (size_t)i * 1000, (uint8_t)(10 + i)) == 0);
		c[i].src = src[i];
		veil_random(c[i].key, 32);
		c[i].bc = bc;
		CHECK(pthread_create(&th[i], NULL, conc_up, &c[i]) == 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < N; i++) {
		CHECK_RC(c[i].rc, 0);
		snprintf(dst, sizeof dst, "%s/cd%d", tmpdir, i);
		CHECK_RC(veil_blob_download(&bc, c[i].id, c[i].key, VEIL_FILE_NONCE_FILE,
		                            50000 + (uint64_t)i * 1000, dst),
		         0);
		CHECK(same_files(src[i], dst));
	}
}

static void test_expiry(void)
{
	struct veil_blob_client bc;
	char src[300], dst[300], dir_url[200], bf[400];
	uint8_t key[32], id[16];
	uint64_t size;
	client(&bc);
	snprintf(dir_url, sizeof dir_url, "%s/directory/", base);
	CHECK_RC(veil_blob_cred(&bc, dir_url, owner, owner_sk), 0);
	snprintf(src, sizeof src, "%s/src5", tmpdir);
	snprintf(dst, sizeof dst, "%s/dst5", tmpdir);
	CHECK(write_file(src, 1000, 5) == 0);
	veil_random(key, sizeof key);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size), 0);
	blob_file(id, bf, sizeof bf);
	struct timespec ts = {2, 100000000}; /* blob_ttl_s is 2 in this test */
	nanosleep(&ts, NULL);
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), VEIL_ENOTFOUND);
	CHECK(strstr(bc.errtext, "410") != NULL);
	/* The sweep reclaims the space (here through a second service on the same directory). */
	struct stat sb;
	CHECK(stat(bf, &sb) == 0);
	struct veil_http *h2 = NULL;
	struct veil_server s2 = srv;
	s2.cfg.http_port = 0;
	CHECK_RC(veil_http_start(&h2, &s2), 0); /* sweeps at start */
	veil_http_stop(h2);
	CHECK(stat(bf, &sb) != 0);
}

/* Sends one request (Connection: close) to 127.0.0.1:port; the status, or -1. */
static int raw_status(uint16_t port, const char *method, const char *path, const char *body)
{
	char req[1024], resp[256];
	int fd = connect_to(port);
	if (fd < 0)
		return -1;
	snprintf(req, sizeof req,
	         "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	         "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	         method, path, strlen(body), body);
	ssize_t n = -1;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req))
		n = recv(fd, resp, sizeof resp - 1, MSG_WAITALL);
	close(fd);
	if (n < 12)
		return -1;
	resp[n] = '\0';
	return (int)strtol(resp + 9, NULL, 10);
}

/*
 * identity/blob_cred answers whether an ID exists; it shares the
 * directory's per-address limit (dir-rate) instead of answering without
 * one, and the /blob/ routes have theirs (blob-rate).
 */
static void test_rate_limits(void)
{
	struct veil_http *h2 = NULL;
	static struct veil_server s2;
	s2 = srv;
	s2.cfg.http_port = 0;
	s2.cfg.dir_rate_per_min = 5;
	s2.cfg.blob_rate_per_min = 4;
	CHECK_RC(veil_http_start(&h2, &s2), 0);
	uint16_t port = veil_http_port(h2);
	int cred[6], blob[5];
	for (int i = 0; i < 6; i++)
		cred[i] = raw_status(port, "POST", "/directory/identity/blob_cred",
		                     "{\"identity\":\"ZZZZZZZZ\"}");
	for (int i = 0; i < 5; i++)
		blob[i] = raw_status(port, "GET", "/blob/00112233445566778899aabbccddeeff", "");
	/* The directory's own routes draw on the same bucket, now empty. */
	int dir = raw_status(port, "GET", "/directory/identity/ZZZZZZZZ", "");
	veil_http_stop(h2);
	for (int i = 0; i < 5; i++)
		CHECK(cred[i] == 200);
	CHECK(cred[5] == 429);
	for (int i = 0; i < 4; i++)
		CHECK(blob[i] == 404);
	CHECK(blob[4] == 429);
	CHECK(dir == 429);
}

/* An upload over a raw connection, so that its headers and its body go out apart. */
struct raw_up {
	int fd;
	size_t len;  /* blob bytes */
	size_t sent; /* body bytes sent so far */
};

static const char up_head[] = "--XyZ123\r\nContent-Disposition: form-data; name=\"blob\"\r\n\r\n";
static const char up_tail[] = "\r\n--XyZ123--\r\n";

/* Connects and sends the headers of an upload of len bytes for id; 0 or -1. */
static int raw_up_headers(struct raw_up *r, uint16_t port, const uint8_t id[static VEIL_ID_LEN],
                          size_t len)
{
	uint8_t tok[VEIL_BLOB_TOKEN_LEN];
	char b64[VEIL_B64_LEN(VEIL_BLOB_TOKEN_LEN)], req[512];
	r->len = len;
	r->sent = 0;
	r->fd = connect_to(port);
	struct timeval tv = {10, 0};
	if (r->fd < 0 || setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    veil_blob_token_issue(&srv.keys, id, veil_now_ms() + 60000, tok) != 0 ||
	    veil_b64_encode(b64, sizeof b64, tok, sizeof tok) != 0)
		return -1;
	snprintf(
	    req, sizeof req,
	    "POST /blob/upload HTTP/1.1\r\nHost: x\r\nAuthorization: ThreemaBlobToken %s\r\n"
	    "Content-Type: multipart/form-data; boundary=XyZ123\r\nContent-Length: %zu\r\n\r\n",
	    b64, strlen(up_head) + len + strlen(up_tail));
	return send(r->fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req) ? 0 : -1;
}

/* Sends the body up to byte n (all of it if n is SIZE_MAX); 0 or -1. */
static int raw_up_body(struct raw_up *r, size_t n)
{
	static uint8_t zeros[64 * 1024];
	size_t total = strlen(up_head) + r->len + strlen(up_tail), sent = r->sent;
	if (n > total)
		n = total;
	while (sent < n) {
		const uint8_t *p;
		size_t k;
		if (sent < strlen(up_head)) {
			p = (const uint8_t *)up_head + sent;
			k = strlen(up_head) - sent;
		} else if (sent < strlen(up_head) + r->len) {
			p = zeros;
			k = strlen(up_head) + r->len - sent;
			if (k > sizeof zeros)
				k = sizeof zeros;
		} else {
			p = (const uint8_t *)up_tail + (sent - strlen(up_head) - r->len);
			k = total - sent;
		}
		if (k > n - sent)
			k = n - sent;
		ssize_t w = send(r->fd, p, k, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		sent += (size_t)w;
		r->sent = sent;
	}
	return 0;
}

/* Reads the answer's status and closes; -1 if there was none. */
static int raw_up_status(struct raw_up *r)
{
	char resp[64];
	ssize_t n = recv(r->fd, resp, sizeof resp - 1, MSG_WAITALL);
	close(r->fd);
	r->fd = -1;
	if (n < 12)
		return -1;
	resp[n] = '\0';
	return (int)strtol(resp + 9, NULL, 10);
}

/*
 * The quota holds against uploads in parallel: six of 100 kB whose headers
 * all arrive before any body, with a quota of 300 kB, store three (the
 * others get 507 "blob quota exceeded"). An upload cut short gives its
 * reservation back.
 */
static void test_quota_parallel(void)
{
	enum { N = 6, LEN = 100000 };
	static const uint8_t id[VEIL_ID_LEN] = "QUOTA001";
	struct raw_up r[N];
	int st[N], stored = 0, refused = 0, headers = 0;
	uint64_t quota = srv.cfg.blob_quota;
	srv.cfg.blob_quota = 3 * LEN + 2000; /* three, with room to spare for less than a fourth */
	uint16_t port = veil_http_port(http);
	for (int i = 0; i < N; i++)
		headers += raw_up_headers(&r[i], port, id, LEN) == 0;
	struct timespec ts = {0, 300 * 1000 * 1000}; /* every begin has run */
	nanosleep(&ts, NULL);
	for (int i = 0; i < N; i++)
		raw_up_body(&r[i], SIZE_MAX);
	for (int i = 0; i < N; i++) {
		st[i] = raw_up_status(&r[i]);
		stored += st[i] == 200;
		refused += st[i] == 507;
	}
	/* Cut short after its headers and some body: the quota it held is free again. */
	static const uint8_t id2[VEIL_ID_LEN] = "QUOTA002";
	struct raw_up cut, next;
	srv.cfg.blob_quota = LEN + 2000;
	int cut_ok = raw_up_headers(&cut, port, id2, LEN) == 0 && raw_up_body(&cut, 5000) == 0;
	nanosleep(&ts, NULL);
	close(cut.fd);
	nanosleep(&ts, NULL);
	int next_st = -1;
	if (raw_up_headers(&next, port, id2, LEN) == 0 && raw_up_body(&next, SIZE_MAX) == 0)
		next_st = raw_up_status(&next);
	srv.cfg.blob_quota = quota;
	CHECK(headers == N);
	if (stored != 3)
		for (int i = 0; i < N; i++)
			fprintf(stderr, "upload %d: %d\n", i, st[i]);
	CHECK(stored == 3);
	CHECK(refused == 3);
	CHECK(cut_ok);
	CHECK(next_st == 200);
}

/* Points bc at a blob service on port (for a second node). */
static void client_at(struct veil_blob_client *bc, uint16_t port)
{
	memset(bc, 0, sizeof *bc);
	snprintf(bc->upload_url, sizeof bc->upload_url, "http://127.0.0.1:%u/blob/upload",
	         (unsigned)port);
	snprintf(bc->download_url, sizeof bc->download_url, "http://127.0.0.1:%u/blob/{blobId}",
	         (unsigned)port);
	snprintf(bc->done_url, sizeof bc->done_url, "http://127.0.0.1:%u/blob/{blobId}/done",
	         (unsigned)port);
}

/* Files (not directories) under dir, or -1. */
static int files_under(const char *dir)
{
	char cmd[600];
	int n = -1;
	snprintf(cmd, sizeof cmd, "find %s -mindepth 1 -not -type d 2>/dev/null | wc -l", dir);
	FILE *f = popen(cmd, "r");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%d", &n) != 1)
		n = -1;
	pclose(f);
	return n;
}

/*
 * A second node (its own data directory) on the first node's blob
 * directory (--blob-dir), as several veild on one shared directory: an
 * upload in progress on the first node survives the second node's start
 * (which empties only its own temporary directory), a blob stored through
 * one node is served and marked done through the other, and a node on
 * another blob directory does not serve it. With VEIL_TEST_STORE the
 * metadata is in PostgreSQL, else both nodes open the same blobs.db.
 */
static void test_two_nodes_one_dir(void)
{
	static const uint8_t up_id[VEIL_ID_LEN] = "NODES001";
	enum { LEN = 200000 };
	char src[300], dst[300], dir_url[200], tmpd[400], bf[400];
	struct veil_blob_client bc, bcb, bcc;
	uint8_t key[32], id[16];
	uint64_t size;
	struct raw_up r;
	/* An upload on node A, cut in the middle of its body. */
	snprintf(tmpd, sizeof tmpd, "%s/blobs/tmp", tmpdir);
	CHECK(raw_up_headers(&r, veil_http_port(http), up_id, LEN) == 0);
	CHECK(raw_up_body(&r, LEN / 2) == 0);
	for (int i = 0; i < 100 && files_under(tmpd) < 1; i++) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	CHECK(files_under(tmpd) == 1);
	/* Node B starts on the same blob directory. */
	struct veil_server sb = srv, sc = srv;
	snprintf(sb.cfg.data_dir, sizeof sb.cfg.data_dir, "%s/nodeb", tmpdir);
	snprintf(sb.cfg.blob_dir, sizeof sb.cfg.blob_dir, "%s/blobs", tmpdir);
	sb.cfg.http_port = 0;
	CHECK(mkdir(sb.cfg.data_dir, 0700) == 0);
	struct veil_http *hb = NULL, *hc = NULL;
	CHECK_RC(veil_http_start(&hb, &sb), 0);
	CHECK(files_under(tmpd) == 1); /* A's upload is still there */
	CHECK(raw_up_body(&r, SIZE_MAX) == 0);
	int st = raw_up_status(&r);
	if (st != 200)
		fprintf(stderr, "upload on node A: %d\n", st);
	CHECK(st == 200);
	/* Stored through A, read and marked done through B. */
	client(&bc);
	snprintf(dir_url, sizeof dir_url, "%s/directory/", base);
	CHECK_RC(veil_blob_cred(&bc, dir_url, owner, owner_sk), 0);
	snprintf(src, sizeof src, "%s/srcn", tmpdir);
	snprintf(dst, sizeof dst, "%s/dstn", tmpdir);
	CHECK(write_file(src, 70000, 7) == 0);
	veil_random(key, sizeof key);
	CHECK_RC(veil_blob_upload(&bc, src, key, VEIL_FILE_NONCE_FILE, 0, id, &size), 0);
	client_at(&bcb, veil_http_port(hb));
	CHECK_RC(veil_blob_download(&bcb, id, key, VEIL_FILE_NONCE_FILE, size, dst), 0);
	CHECK(same_files(src, dst));
	unlink(dst);
	/* Node C on a blob directory of its own does not know it. */
	snprintf(sc.cfg.data_dir, sizeof sc.cfg.data_dir, "%s/nodec", tmpdir);
	snprintf(sc.cfg.blob_dir, sizeof sc.cfg.blob_dir, "%s/blobsc", tmpdir);
	sc.cfg.http_port = 0;
	CHECK(mkdir(sc.cfg.data_dir, 0700) == 0);
	CHECK_RC(veil_http_start(&hc, &sc), 0);
	client_at(&bcc, veil_http_port(hc));
	CHECK_RC(veil_blob_download(&bcc, id, key, VEIL_FILE_NONCE_FILE, size, dst),
	         VEIL_ENOTFOUND);
	CHECK_RC(veil_blob_done(&bcc, id), VEIL_ENOTFOUND);
	veil_http_stop(hc);
	/* Done through B deletes the row and the file: A no longer has it. */
	blob_file(id, bf, sizeof bf);
	struct stat sbuf;
	CHECK(stat(bf, &sbuf) == 0);
	CHECK_RC(veil_blob_done(&bcb, id), 0);
	CHECK(stat(bf, &sbuf) != 0);
	CHECK_RC(veil_blob_download(&bc, id, key, VEIL_FILE_NONCE_FILE, size, dst), VEIL_ENOTFOUND);
	veil_http_stop(hb);
	CHECK(files_under(tmpd) == 0);
	/* On PostgreSQL the metadata is there only. */
	snprintf(bf, sizeof bf, "%s/blobs/blobs.db", tmpdir);
	CHECK(srv.cfg.store[0] == '\0' || access(bf, F_OK) != 0);
}

static void no_wake(void *arg)
{
	(void)arg;
}

T_MAIN_BEGIN
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/veil-test-blob.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 2;
	char path[1100];
	snprintf(path, sizeof path, "%s/store.db", tmpdir);
	/* VEIL_TEST_STORE=postgresql://...: the store and the blob metadata in that database. */
	const char *env = getenv("VEIL_TEST_STORE");
	if (env != NULL && veil_store_is_url(env))
		snprintf(path, sizeof path, "%s", env);
	struct veil_store_opts so = {.path = path, .wake = no_wake};
	memset(&srv, 0, sizeof srv);
	if (veil_store_is_url(path) &&
	    snprintf(srv.cfg.store, sizeof srv.cfg.store, "%s", env) >= (int)sizeof srv.cfg.store)
		return 2;
	snprintf(srv.cfg.data_dir, sizeof srv.cfg.data_dir, "%s", tmpdir);
	snprintf(srv.cfg.listen, sizeof srv.cfg.listen, "127.0.0.1");
	srv.cfg.http_max_body = 64 * 1024;
	srv.cfg.blob_max_size = 4000000;
	srv.cfg.blob_quota = 100000000;
	srv.cfg.blob_ttl_s = 2;
	srv.cfg.blob_persist_ttl_s = 3600;
	srv.keys.csp_sk = sodium_malloc(32);
	srv.keys.sign_sk = sodium_malloc(64);
	srv.keys.dir_sk = sodium_malloc(32);
	if (srv.keys.csp_sk == NULL || srv.keys.sign_sk == NULL || srv.keys.dir_sk == NULL)
		return 2;
	veil_keypair(srv.keys.csp_pk, srv.keys.csp_sk);
	crypto_sign_keypair(srv.keys.sign_pk, srv.keys.sign_sk);
	veil_keypair(srv.keys.dir_pk, srv.keys.dir_sk);
	if (veil_store_open(&srv.store, &so) != 0)
		return 2;
	struct veil_identity_rec rec;
	veil_keypair(owner_pk, owner_sk);
	if (veil_store_identity_create(srv.store, owner_pk, &rec) != 0)
		return 2;
	memcpy(owner, rec.id, VEIL_ID_LEN);
	if (veil_http_start(&http, &srv) != 0)
		return 2;
	snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)veil_http_port(http));

	RUN(test_multipart_splits);
	RUN(test_multipart_errors);
	RUN(test_token);
	RUN(test_cred_upload_download_done);
	RUN(test_tampered_and_truncated);
	RUN(test_resume_after_cut);
	RUN(test_limits);
	RUN(test_concurrent_uploads);
	RUN(test_quota_parallel);
	RUN(test_two_nodes_one_dir);
	RUN(test_expiry);
	RUN(test_rate_limits);

	veil_http_stop(http);
	veil_store_close(srv.store);
	sodium_free(srv.keys.csp_sk);
	sodium_free(srv.keys.sign_sk);
	sodium_free(srv.keys.dir_sk);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		return 1;
}
T_MAIN_END
