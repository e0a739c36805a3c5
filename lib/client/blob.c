/*
 * The blob client: encrypted upload and download of files in constant
 * memory, with libcurl.
 *
 * Upload reads the file twice: the first pass computes the secretbox tag,
 * which comes first on the wire (tag || ciphertext); the second encrypts
 * again as curl sends. If the file changed in between, the second pass
 * ends with another tag and the upload is aborted before its last byte, so
 * the server never completes a blob whose tag is wrong.
 *
 * Download decrypts into "<dest>.part" as bytes arrive and keeps the MAC
 * state, so a cut connection resumes with an HTTP Range request from the
 * byte where it stopped; the tag is checked at the end and only then is the
 * file renamed into place. A tampered or truncated blob leaves nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "veil/client.h"
#include "veil/dir.h"
#include "veil/e2e.h"

#define CHUNK (256u * 1024u)
#define RESP_MAX 4096

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_init(void)
{
	curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static int bfail(struct veil_blob_client *bc, int rc, const char *fmt, ...) VEIL_PRINTF(3, 4);
static int bfail(struct veil_blob_client *bc, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(bc->errtext, sizeof bc->errtext, fmt, ap);
	va_end(ap);
	return rc;
}

/* Replaces {blobId} in tmpl with the hex ID. */
static int expand(char *out, size_t cap, const char *tmpl,
                  const uint8_t id[static VEIL_BLOB_ID_LEN])
{
	char hex[VEIL_HEX_LEN(VEIL_BLOB_ID_LEN)];
	if (veil_hex_encode(hex, sizeof hex, id, VEIL_BLOB_ID_LEN) != 0)
		return VEIL_EINVAL;
	const char *ph = strstr(tmpl, "{blobId}");
	int n;
	if (ph == NULL)
		n = snprintf(out, cap, "%s%s%s", tmpl,
		             tmpl[0] != '\0' && tmpl[strlen(tmpl) - 1] == '/' ? "" : "/", hex);
	else
		n = snprintf(out, cap, "%.*s%s%s", (int)(ph - tmpl), tmpl, hex, ph + 8);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

static size_t to_buf(char *p, size_t size, size_t nmemb, void *arg)
{
	return veil_buf_append(arg, p, size * nmemb) == 0 ? size * nmemb : 0;
}

struct xfer_progress {
	struct veil_blob_client *bc;
	uint64_t base, total; /* bytes done before this request, and in all */
	int upload;
};

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	(void)dltotal;
	(void)ultotal;
	struct xfer_progress *x = arg;
	if (x->bc->progress != NULL) {
		uint64_t now = x->base + (uint64_t)(x->upload ? ulnow : dlnow);
		x->bc->progress(now > x->total ? x->total : now, x->total, x->bc->progress_ctx);
	}
	return 0;
}

/* The server's error text from a JSON error body, or "". */
static void server_msg(const struct veil_buf *b, char *out, size_t cap)
{
	out[0] = '\0';
	json_t *o = b->len > 0 ? json_loadb((const char *)b->p, b->len, 0, NULL) : NULL;
	json_t *e = json_object_get(o, "error");
	if (json_is_string(e))
		snprintf(out, cap, ": %s", json_string_value(e));
	json_decref(o);
}

static int status_rc(long st)
{
	switch (st) {
	case 401:
	case 403: return VEIL_EAUTH;
	case 404:
	case 410: return VEIL_ENOTFOUND;
	case 413:
	case 507: return VEIL_ELIMIT;
	case 429: return VEIL_EAGAIN;
	default: return st >= 400 && st < 500 ? VEIL_EPROTO : VEIL_EIO;
	}
}

static CURL *easy(struct veil_blob_client *bc, const char *url, char *errbuf)
{
	CURL *c = curl_easy_init();
	if (c == NULL)
		return NULL;
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
		curl_easy_cleanup(c);
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	/* Certificates as for the directory (veil_dir_set_ca_file). */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (veil_dir_ca_file() != NULL &&
	    curl_easy_setopt(c, CURLOPT_CAINFO, veil_dir_ca_file()) != CURLE_OK) {
		curl_easy_cleanup(c);
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)VEIL_BLOB_CONNECT_TIMEOUT_MS);
	/* No overall deadline (files are large); a stalled transfer ends instead. */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(
	    c, CURLOPT_LOW_SPEED_TIME,
	    (long)(bc->stall_timeout_s > 0 ? bc->stall_timeout_s : VEIL_BLOB_STALL_TIMEOUT_S));
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "veil");
	return c;
}

/* ---------------------------------------------------------------------- */
/* Credential                                                             */
/* ---------------------------------------------------------------------- */

int veil_blob_cred(struct veil_blob_client *bc, const char *dir_url,
                   const uint8_t id[static VEIL_ID_LEN], const uint8_t sk[static VEIL_KEY_LEN])
{
	int rc = veil_dir_blob_cred(dir_url, id, sk, bc->token, sizeof bc->token);
	if (rc != 0)
		return bfail(bc, rc, "%s", veil_dir_errmsg());
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Upload                                                                 */
/* ---------------------------------------------------------------------- */

struct up_src {
	int fd;
	uint64_t size, sent; /* plaintext bytes */
	uint8_t tag[VEIL_MAC_LEN];
	size_t tag_sent;
	struct veil_sbstream st;
	int changed; /* the second pass gave another tag: the file changed */
	uint8_t *buf;
};

static size_t up_read(char *out, size_t size, size_t nitems, void *arg)
{
	struct up_src *s = arg;
	size_t cap = size * nitems, o = 0;
	if (s->tag_sent < VEIL_MAC_LEN) {
		size_t n = VEIL_MAC_LEN - s->tag_sent;
		if (n > cap)
			n = cap;
		memcpy(out, s->tag + s->tag_sent, n);
		s->tag_sent += n;
		o += n;
	}
	if (o == cap || s->sent == s->size)
		return o;
	size_t n = cap - o;
	if (n > CHUNK)
		n = CHUNK;
	if (n > s->size - s->sent)
		n = (size_t)(s->size - s->sent);
	ssize_t r = pread(s->fd, s->buf, n, (off_t)s->sent);
	if (r != (ssize_t)n)
		return CURL_READFUNC_ABORT; /* the file shrank */
	veil_sbstream_encrypt(&s->st, (uint8_t *)out + o, s->buf, n);
	s->sent += n;
	if (s->sent == s->size) {
		/* Before the last bytes go out: is it still the blob whose tag we sent? */
		uint8_t again[VEIL_MAC_LEN];
		veil_sbstream_final(&s->st, again);
		if (veil_memcmp(again, s->tag, VEIL_MAC_LEN) != 0) {
			s->changed = 1;
			return CURL_READFUNC_ABORT;
		}
	}
	return o + n;
}

int veil_blob_upload(struct veil_blob_client *bc, const char *path,
                     const uint8_t key[static VEIL_FILE_KEY_LEN], int nonce_which, int persist,
                     uint8_t id[static VEIL_BLOB_ID_LEN], uint64_t *plain_size)
{
	struct up_src s;
	struct veil_buf ans;
	struct curl_slist *h = NULL;
	curl_mime *mime = NULL;
	CURL *c = NULL;
	char errbuf[CURL_ERROR_SIZE] = "", url[VEIL_BLOB_URL_MAX + 16];
	uint8_t nonce[VEIL_NONCE_LEN];
	int rc = 0;

	memset(&s, 0, sizeof s);
	s.fd = -1;
	*plain_size = 0;
	memset(id, 0, VEIL_BLOB_ID_LEN);
	veil_buf_init(&ans, RESP_MAX);
	pthread_once(&curl_once, curl_init);
	if (!curl_ok)
		return bfail(bc, VEIL_EIO, "cannot initialise libcurl");
	if (bc->upload_url[0] == '\0' || bc->token[0] == '\0')
		return bfail(bc, VEIL_EINVAL, "no blob server or credential");
	s.fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (s.fd < 0 || fstat(s.fd, &sb) != 0) {
		rc = bfail(bc, VEIL_EIO, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = bfail(bc, VEIL_EINVAL, "%s is not a regular file", path);
		goto out;
	}
	s.size = (uint64_t)sb.st_size;
	if (s.size == 0) {
		rc = bfail(bc, VEIL_EINVAL, "%s is empty", path);
		goto out;
	}
	if (s.size > VEIL_FILE_SIZE_MAX) {
		rc = bfail(bc, VEIL_ELIMIT, "%s is too large", path);
		goto out;
	}
	if ((s.buf = malloc(CHUNK)) == NULL) {
		rc = bfail(bc, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	/* Pass 1: the tag. */
	veil_file_nonce(nonce, nonce_which);
	if ((rc = veil_sbstream_init(&s.st, key, nonce)) != 0)
		goto out;
	for (uint64_t o = 0; o < s.size;) {
		size_t n = s.size - o > CHUNK ? CHUNK : (size_t)(s.size - o);
		if (pread(s.fd, s.buf, n, (off_t)o) != (ssize_t)n) {
			rc = bfail(bc, VEIL_EIO, "cannot read %s", path);
			goto out;
		}
		veil_sbstream_encrypt(&s.st, s.buf, s.buf, n);
		o += n;
	}
	veil_sbstream_final(&s.st, s.tag);
	/* Pass 2 runs inside curl's read callback. */
	if ((rc = veil_sbstream_init(&s.st, key, nonce)) != 0)
		goto out;

	snprintf(url, sizeof url, "%s%s", bc->upload_url, persist ? "?persist=1" : "");
	c = easy(bc, url, errbuf);
	if (c == NULL) {
		rc = bfail(bc, VEIL_EINVAL, "unusable blob URL %s", bc->upload_url);
		goto out;
	}
	char auth[VEIL_BLOB_TOKEN_MAX + 64];
	snprintf(auth, sizeof auth, "Authorization: ThreemaBlobToken %s", bc->token);
	h = curl_slist_append(NULL, auth);
	sodium_memzero(auth, sizeof auth);
	if (h != NULL)
		h = curl_slist_append(h, "Expect:");
	mime = curl_mime_init(c);
	curl_mimepart *part = mime != NULL ? curl_mime_addpart(mime) : NULL;
	if (h == NULL || part == NULL) {
		rc = bfail(bc, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	curl_mime_name(part, "blob");
	curl_mime_filename(part, "blob");
	curl_mime_type(part, "application/octet-stream");
	curl_mime_data_cb(part, (curl_off_t)(s.size + VEIL_MAC_LEN), up_read, NULL, NULL, &s);
	struct xfer_progress xp = {
	    .bc = bc, .base = 0, .total = s.size + VEIL_MAC_LEN, .upload = 1};
	curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &ans);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &xp);
	CURLcode cc = curl_easy_perform(c);
	long st = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	if (s.changed) {
		rc = bfail(bc, VEIL_EIO, "%s changed while it was being sent", path);
		goto out;
	}
	if (cc != CURLE_OK && st == 0) {
		rc = bfail(bc, cc == CURLE_OPERATION_TIMEDOUT ? VEIL_ETIMEOUT : VEIL_EIO, "%s: %s",
		           bc->upload_url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	if (st != 200) {
		char msg[200];
		server_msg(&ans, msg, sizeof msg);
		rc = bfail(bc, st == 0 ? VEIL_EIO : status_rc(st), "upload refused (HTTP %ld%s)",
		           st, msg);
		goto out;
	}
	/* The answer is the blob ID in hex (possibly with white space around it). */
	size_t a = 0, z = ans.len;
	while (a < z && (ans.p[a] == ' ' || ans.p[a] == '\n' || ans.p[a] == '\r'))
		a++;
	while (z > a && (ans.p[z - 1] == ' ' || ans.p[z - 1] == '\n' || ans.p[z - 1] == '\r'))
		z--;
	if (z - a != 2 * VEIL_BLOB_ID_LEN ||
	    veil_hex_decode(id, VEIL_BLOB_ID_LEN, (const char *)ans.p + a, z - a) != 0) {
		rc = bfail(bc, VEIL_EPROTO, "the blob server answered without a blob ID");
		goto out;
	}
	*plain_size = s.size;
out:
	veil_sbstream_wipe(&s.st);
	sodium_memzero(s.tag, sizeof s.tag);
	if (s.fd >= 0)
		close(s.fd);
	free(s.buf);
	curl_mime_free(mime);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	veil_buf_release(&ans);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Download                                                               */
/* ---------------------------------------------------------------------- */

struct down;
static int down_reset(struct down *d);

struct down {
	int fd;
	uint64_t want; /* blob bytes expected: plaintext + tag */
	uint64_t got;  /* blob bytes taken so far (over all attempts) */
	uint8_t tag[VEIL_MAC_LEN];
	struct veil_sbstream st;
	int too_long;
	int write_err;
	long status; /* of the current attempt */
	int reset_err;
	const uint8_t *key, *nonce;
	CURL *c;
	uint8_t *buf;
};

static size_t down_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct down *d = arg;
	size_t n = size * nmemb, o = 0;
	if (d->status == 0) {
		curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &d->status);
		/* A server that ignored our Range sends the blob from byte 0: start over. */
		if (d->status == 200 && d->got > 0 && down_reset(d) != 0) {
			d->reset_err = 1;
			return 0;
		}
	}
	if (d->status != 200 && d->status != 206)
		return n; /* an error body: read and ignored */
	if (n > d->want - d->got) {
		d->too_long = 1;
		return 0;
	}
	while (o < n && d->got < VEIL_MAC_LEN)
		d->tag[d->got++] = (uint8_t)p[o++];
	while (o < n) {
		size_t k = n - o > CHUNK ? CHUNK : n - o;
		veil_sbstream_decrypt(&d->st, d->buf, (const uint8_t *)p + o, k);
		for (size_t w = 0; w < k;) {
			ssize_t r = write(d->fd, d->buf + w, k - w);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				d->write_err = errno ? errno : EIO;
				return 0;
			}
			w += (size_t)r;
		}
		o += k;
		d->got += k;
	}
	return n;
}

/* Restarts from byte 0. */
static int down_reset(struct down *d)
{
	d->got = 0;
	if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0)
		return VEIL_EIO;
	veil_sbstream_wipe(&d->st);
	return veil_sbstream_init(&d->st, d->key, d->nonce);
}

int veil_blob_download(struct veil_blob_client *bc, const uint8_t id[static VEIL_BLOB_ID_LEN],
                       const uint8_t key[static VEIL_FILE_KEY_LEN], int nonce_which,
                       uint64_t plain_size, const char *dest)
{
	struct down d;
	char url[VEIL_BLOB_URL_MAX + 64], tmp[VEIL_PROFILE_PATH_MAX + 16];
	char errbuf[CURL_ERROR_SIZE];
	uint8_t nonce[VEIL_NONCE_LEN];
	int rc = 0, attempts = 0;

	memset(&d, 0, sizeof d);
	d.fd = -1;
	pthread_once(&curl_once, curl_init);
	if (!curl_ok)
		return bfail(bc, VEIL_EIO, "cannot initialise libcurl");
	if (plain_size > VEIL_FILE_SIZE_MAX)
		return bfail(bc, VEIL_ELIMIT, "file too large");
	if ((rc = expand(url, sizeof url, bc->download_url, id)) != 0)
		return bfail(bc, rc, "blob download URL too long");
	if (snprintf(tmp, sizeof tmp, "%s.part", dest) >= (int)sizeof tmp)
		return bfail(bc, VEIL_ELIMIT, "file name too long");
	d.want = plain_size + VEIL_MAC_LEN;
	d.buf = malloc(CHUNK);
	if (d.buf == NULL)
		return bfail(bc, VEIL_ENOMEM, "out of memory");
	d.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (d.fd < 0) {
		rc = bfail(bc, VEIL_EIO, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	veil_file_nonce(nonce, nonce_which);
	d.key = key;
	d.nonce = nonce;
	if ((rc = veil_sbstream_init(&d.st, key, nonce)) != 0)
		goto out;
	int max_attempts = bc->max_attempts > 0 ? bc->max_attempts : VEIL_BLOB_ATTEMPTS;
	for (;;) {
		errbuf[0] = '\0';
		d.c = easy(bc, url, errbuf);
		if (d.c == NULL) {
			rc = bfail(bc, VEIL_EINVAL, "unusable blob URL %s", url);
			goto out;
		}
		char range[48];
		uint64_t base = d.got;
		if (base > 0) {
			snprintf(range, sizeof range, "%" PRIu64 "-", base);
			curl_easy_setopt(d.c, CURLOPT_RANGE, range);
		}
		struct xfer_progress xp = {.bc = bc, .base = base, .total = d.want};
		d.status = 0;
		curl_easy_setopt(d.c, CURLOPT_WRITEFUNCTION, down_write);
		curl_easy_setopt(d.c, CURLOPT_WRITEDATA, &d);
		curl_easy_setopt(d.c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(d.c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(d.c, CURLOPT_XFERINFODATA, &xp);
		CURLcode cc = curl_easy_perform(d.c);
		long st = d.status;
		if (st == 0)
			curl_easy_getinfo(d.c, CURLINFO_RESPONSE_CODE, &st);
		curl_easy_cleanup(d.c);
		d.c = NULL;
		attempts++;
		if (d.too_long) {
			rc =
			    bfail(bc, VEIL_EPROTO, "the blob is longer than the file message says");
			goto out;
		}
		if (d.reset_err) {
			rc = bfail(bc, VEIL_EIO, "cannot restart the download into %s", tmp);
			goto out;
		}
		if (d.write_err) {
			rc = bfail(bc, VEIL_EIO, "cannot write %s: %s", tmp, strerror(d.write_err));
			goto out;
		}
		if (st != 0 && st != 200 && st != 206) {
			rc =
			    bfail(bc, status_rc(st), "download of the blob failed (HTTP %ld%s)", st,
			          st == 404   ? ": no such blob"
			          : st == 410 ? ": the blob has expired"
			                      : "");
			goto out;
		}
		/* A blob of unknown size (a thumbnail) ends where the server's body ends. */
		if (cc == CURLE_OK &&
		    (d.got == d.want || (bc->size_is_bound && d.got >= VEIL_MAC_LEN)))
			break;
		if (cc == CURLE_OK) {
			/* The server ended the body early: a truncated blob. */
			rc = bfail(bc, VEIL_ETRUNC,
			           "the blob is truncated (%" PRIu64 " of %" PRIu64 " bytes)",
			           d.got, d.want);
			goto out;
		}
		if (attempts >= max_attempts) {
			rc = bfail(bc, VEIL_EIO, "download failed after %d attempts: %s", attempts,
			           errbuf[0] ? errbuf : curl_easy_strerror(cc));
			goto out;
		}
		bc->resumed++;
		struct timespec ts = {0, 300L * 1000 * 1000 * (attempts < 5 ? attempts : 5)};
		nanosleep(&ts, NULL);
	}
	if (veil_sbstream_verify(&d.st, d.tag) != 0) {
		rc = bfail(bc, VEIL_ECRYPTO,
		           "the blob does not authenticate (tampered or wrong key)");
		goto out;
	}
	if (fsync(d.fd) != 0 || close(d.fd) != 0) {
		d.fd = -1;
		rc = bfail(bc, VEIL_EIO, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	d.fd = -1;
	/* Never overwrite: link fails if dest exists. */
	if (link(tmp, dest) != 0) {
		rc = bfail(bc, errno == EEXIST ? VEIL_EEXIST : VEIL_EIO, "cannot create %s: %s",
		           dest, strerror(errno));
		goto out;
	}
	unlink(tmp);
	tmp[0] = '\0';
out:
	veil_sbstream_wipe(&d.st);
	if (d.fd >= 0)
		close(d.fd);
	if (tmp[0] != '\0')
		unlink(tmp); /* nothing half-decrypted or unauthenticated stays */
	if (d.buf != NULL) {
		sodium_memzero(d.buf, CHUNK);
		free(d.buf);
	}
	return rc;
}

int veil_blob_done(struct veil_blob_client *bc, const uint8_t id[static VEIL_BLOB_ID_LEN])
{
	char url[VEIL_BLOB_URL_MAX + 64], errbuf[CURL_ERROR_SIZE] = "";
	struct veil_buf ans;
	int rc = 0;
	pthread_once(&curl_once, curl_init);
	if (!curl_ok)
		return bfail(bc, VEIL_EIO, "cannot initialise libcurl");
	if ((rc = expand(url, sizeof url, bc->done_url, id)) != 0)
		return bfail(bc, rc, "blob done URL too long");
	CURL *c = easy(bc, url, errbuf);
	if (c == NULL)
		return bfail(bc, VEIL_EINVAL, "unusable blob URL %s", url);
	veil_buf_init(&ans, RESP_MAX);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &ans);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)VEIL_DIR_TIMEOUT_MS);
	CURLcode cc = curl_easy_perform(c);
	long st = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	if (cc != CURLE_OK)
		rc =
		    bfail(bc, VEIL_EIO, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
	else if (st != 200 && st != 204)
		rc = bfail(bc, status_rc(st), "marking the blob done failed (HTTP %ld)", st);
	curl_easy_cleanup(c);
	veil_buf_release(&ans);
	return rc;
}
