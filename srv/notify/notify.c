/*
 * Delivery of verification codes: SMTP (libcurl) and an SMS webhook (HTTP
 * POST, libcurl) on one worker thread fed by a bounded queue.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "notify.h"

struct notify_msg {
	int kind;
	char to[VEIL_NOTIFY_MAX_TO + 1];
	char subject[128];
	char text[VEIL_NOTIFY_MAX_TEXT + 1];
};

struct veil_notify {
	char smtp_url[256];
	char smtp_from[256];
	char sms_webhook[512];
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t idle_cv;
	int stop;
	int busy; /* a message is being sent */
	size_t head, count;
	struct notify_msg q[VEIL_NOTIFY_QUEUE];
	unsigned long sent, failed;
};

/* The SMTP payload as curl reads it. */
struct payload {
	const char *p;
	size_t left;
};

static size_t read_payload(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct payload *pl = arg;
	size_t n = size * nmemb;
	if (n > pl->left)
		n = pl->left;
	memcpy(buf, pl->p, n);
	pl->p += n;
	pl->left -= n;
	return n;
}

static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

static int send_email(struct veil_notify *n, const struct notify_msg *m)
{
	char msg[VEIL_NOTIFY_MAX_TEXT + 1024], date[64], from[300], to[300];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	int len = snprintf(msg, sizeof msg,
	                   "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
	                   "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                   "\r\n%s\r\n",
	                   date, n->smtp_from, m->to, m->subject, m->text);
	if (len < 0 || (size_t)len >= sizeof msg)
		return VEIL_ELIMIT;
	snprintf(from, sizeof from, "<%s>", n->smtp_from);
	snprintf(to, sizeof to, "<%s>", m->to);
	struct payload pl = {msg, (size_t)len};
	CURL *c = curl_easy_init();
	if (c == NULL)
		return VEIL_ENOMEM;
	struct curl_slist *rcpt = curl_slist_append(NULL, to);
	int rc = VEIL_EIO;
	if (rcpt == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, n->smtp_url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)VEIL_NOTIFY_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_payload);
	curl_easy_setopt(c, CURLOPT_READDATA, &pl);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	/* STARTTLS whenever the relay offers it; smtps:// URLs are TLS from the start. */
	curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	if (curl_easy_perform(c) == CURLE_OK)
		rc = 0;
out:
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(c);
	sodium_memzero(msg, sizeof msg);
	sodium_memzero(to, sizeof to);
	return rc;
}

static int send_sms(struct veil_notify *n, const struct notify_msg *m)
{
	char to[VEIL_NOTIFY_MAX_TO + 2];
	snprintf(to, sizeof to, "+%s", m->to);
	json_t *o = json_pack("{s:s, s:s}", "to", to, "text", m->text);
	char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	sodium_memzero(to, sizeof to);
	if (body == NULL)
		return VEIL_ENOMEM;
	int rc = VEIL_EIO;
	CURL *c = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (c == NULL || hdr == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, n->sms_webhook);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)VEIL_NOTIFY_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK &&
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status >= 200 &&
	    status < 300)
		rc = 0;
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	sodium_memzero(body, strlen(body));
	free(body);
	return rc;
}

static void *worker(void *arg)
{
	struct veil_notify *n = arg;
	struct notify_msg m;
	pthread_mutex_lock(&n->mu);
	for (;;) {
		while (!n->stop && n->count == 0)
			pthread_cond_wait(&n->cv, &n->mu);
		if (n->stop)
			break;
		m = n->q[n->head];
		sodium_memzero(&n->q[n->head], sizeof m);
		n->head = (n->head + 1) % VEIL_NOTIFY_QUEUE;
		n->count--;
		n->busy = 1;
		pthread_mutex_unlock(&n->mu);
		int kind = m.kind;
		int rc = kind == VEIL_NOTIFY_EMAIL ? send_email(n, &m) : send_sms(n, &m);
		sodium_memzero(&m, sizeof m);
		if (rc != 0)
			veil_log(VEIL_LOG_WARN, "notify: could not deliver a %s code: %s",
			         kind == VEIL_NOTIFY_EMAIL ? "e-mail" : "SMS", veil_strerror(rc));
		pthread_mutex_lock(&n->mu);
		n->busy = 0;
		if (rc == 0)
			n->sent++;
		else
			n->failed++;
		pthread_cond_broadcast(&n->idle_cv);
	}
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

int veil_notify_new(struct veil_notify **out, const struct veil_config *cfg)
{
	*out = NULL;
	struct veil_notify *n = calloc(1, sizeof *n);
	if (n == NULL)
		return VEIL_ENOMEM;
	snprintf(n->smtp_url, sizeof n->smtp_url, "%s", cfg->smtp_url);
	snprintf(n->smtp_from, sizeof n->smtp_from, "%s", cfg->smtp_from);
	snprintf(n->sms_webhook, sizeof n->sms_webhook, "%s", cfg->sms_webhook);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(n);
		return VEIL_EIO;
	}
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->cv, NULL);
	pthread_cond_init(&n->idle_cv, NULL);
	if (pthread_create(&n->thread, NULL, worker, n) != 0) {
		veil_notify_free(n);
		return VEIL_EIO;
	}
	n->started = 1;
	*out = n;
	return 0;
}

void veil_notify_free(struct veil_notify *n)
{
	if (n == NULL)
		return;
	if (n->started) {
		pthread_mutex_lock(&n->mu);
		n->stop = 1;
		pthread_cond_signal(&n->cv);
		pthread_mutex_unlock(&n->mu);
		pthread_join(n->thread, NULL);
	}
	pthread_cond_destroy(&n->cv);
	pthread_cond_destroy(&n->idle_cv);
	pthread_mutex_destroy(&n->mu);
	sodium_memzero(n, sizeof *n);
	free(n);
}

int veil_notify_available(const struct veil_notify *n, int kind)
{
	if (n == NULL)
		return 0;
	if (kind == VEIL_NOTIFY_EMAIL)
		return n->smtp_url[0] != 0 && n->smtp_from[0] != 0;
	if (kind == VEIL_NOTIFY_SMS)
		return n->sms_webhook[0] != 0;
	return 0;
}

/* One line of printable UTF-8 without the characters that frame addresses. */
static int line_ok(const char *s, int address)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			return 0;
		if (address && (c == '<' || c == '>' || c == ',' || c == ' '))
			return 0;
	}
	return 1;
}

int veil_notify_send(struct veil_notify *n, int kind, const char *to, const char *subject,
                     const char *text)
{
	if (!veil_notify_available(n, kind) || !line_ok(to, 1) || !line_ok(subject, 0) ||
	    !line_ok(text, 0))
		return VEIL_EINVAL;
	if (strlen(to) > VEIL_NOTIFY_MAX_TO || strlen(text) > VEIL_NOTIFY_MAX_TEXT ||
	    strlen(subject) >= sizeof(((struct notify_msg *)0)->subject))
		return VEIL_ELIMIT;
	int rc = 0;
	pthread_mutex_lock(&n->mu);
	if (n->count >= VEIL_NOTIFY_QUEUE) {
		rc = VEIL_ELIMIT;
	} else {
		struct notify_msg *m = &n->q[(n->head + n->count) % VEIL_NOTIFY_QUEUE];
		m->kind = kind;
		snprintf(m->to, sizeof m->to, "%s", to);
		snprintf(m->subject, sizeof m->subject, "%s", subject);
		snprintf(m->text, sizeof m->text, "%s", text);
		n->count++;
		pthread_cond_signal(&n->cv);
	}
	pthread_mutex_unlock(&n->mu);
	return rc;
}

void veil_notify_stats(struct veil_notify *n, unsigned long *sent, unsigned long *failed)
{
	pthread_mutex_lock(&n->mu);
	*sent = n->sent;
	*failed = n->failed;
	pthread_mutex_unlock(&n->mu);
}

int veil_notify_flush(struct veil_notify *n, int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	int rc = 0;
	pthread_mutex_lock(&n->mu);
	while ((n->count > 0 || n->busy) && rc == 0)
		if (pthread_cond_timedwait(&n->idle_cv, &n->mu, &ts) != 0)
			rc = VEIL_ETIMEOUT;
	pthread_mutex_unlock(&n->mu);
	return rc;
}
