/*
 * The Gateway's callback worker: one thread that reads the queues of the
 * API identities with a callback URL and POSTs each message there, in queue
 * order, removing it only after a 2xx answer. Store calls complete on the
 * chat service's loop; the worker waits for them (giving up when asked to
 * stop, so that shutdown never hangs on a loop that has ended).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "gw_int.h"
#include "veil/e2e.h"

#define BACKOFF_FIRST_MS 1000u

/* A store call the worker waits for; freed by whoever lets go of it last. */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs, done, rc;
	struct veil_msg_rec *msgs;
	size_t n;
};

static struct waiter *waiter_new(void)
{
	struct waiter *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->refs = 2; /* the worker and the store's callback */
	return w;
}

static void waiter_unref(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	int last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (!last)
		return;
	for (size_t i = 0; i < w->n; i++) {
		sodium_memzero(w->msgs[i].data, w->msgs[i].len);
		free(w->msgs[i].data);
	}
	free(w->msgs);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

static void waiter_finish(struct waiter *w, int rc)
{
	pthread_mutex_lock(&w->mu);
	w->rc = rc;
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	waiter_unref(w);
}

static void on_fetched(void *arg, int rc, struct veil_msg_rec *msgs, size_t n)
{
	struct waiter *w = arg;
	if (rc == 0 && n > 0) {
		w->msgs = calloc(n, sizeof *w->msgs);
		if (w->msgs == NULL)
			rc = VEIL_ENOMEM;
		for (size_t i = 0; rc == 0 && i < n; i++) {
			w->msgs[i] = msgs[i];
			w->msgs[i].data = malloc(msgs[i].len ? msgs[i].len : 1);
			if (w->msgs[i].data == NULL) {
				rc = VEIL_ENOMEM;
				break;
			}
			memcpy(w->msgs[i].data, msgs[i].data, msgs[i].len);
			w->n = i + 1;
		}
	}
	waiter_finish(w, rc);
}

static void on_acked(void *arg, int rc)
{
	waiter_finish(arg, rc == VEIL_ENOTFOUND ? 0 : rc);
}

int veil_gw_stopping(struct veil_gateway *gw)
{
	pthread_mutex_lock(&gw->wlock);
	int s = gw->stop;
	pthread_mutex_unlock(&gw->wlock);
	return s;
}

/* Waits for w; 0 and w->rc, or VEIL_ECLOSED if the worker is told to stop first. */
static int waiter_wait(struct veil_gateway *gw, struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	while (!w->done) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		if (!w->done && veil_gw_stopping(gw)) {
			pthread_mutex_unlock(&w->mu);
			return VEIL_ECLOSED;
		}
	}
	int rc = w->rc;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* Per API identity: where its queue has been read to and when to try again. */
struct cb_state {
	uint8_t id[VEIL_ID_LEN];
	uint64_t cursor;
	uint64_t next_ms; /* monotonic */
	uint32_t backoff_ms;
	int noted_ok;   /* a success was recorded since the worker started */
	uint64_t claim; /* veil_gwdb_claim_callback's epoch */
};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static int progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return veil_gw_stopping(arg); /* non-zero aborts the transfer */
}

/* Appends s[0..n) to b, percent-encoded as a form value: 0 or -1. */
static int append_escaped(struct veil_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[3] = {(char)c, 0, 0};
		size_t el = 1;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_' || c == '~')) {
			e[0] = '%';
			e[1] = hex[c >> 4];
			e[2] = hex[c & 15];
			el = 3;
		}
		if (veil_buf_append(b, e, el) != 0)
			return -1;
	}
	return 0;
}

int veil_gw_form_message(const struct veil_gw_account *a, const struct veil_msgbox *m,
                         struct veil_buf *form)
{
	char from[VEIL_ID_LEN + 1], to[VEIL_ID_LEN + 1], mid[VEIL_HEX_LEN(8)], date[16];
	char nonce[VEIL_HEX_LEN(VEIL_NONCE_LEN)], machex[VEIL_HEX_LEN(32)];
	uint8_t idb[8], mac[32];
	int rc = -1;
	veil_id_str(from, m->sender);
	veil_id_str(to, m->receiver);
	veil_store_u64le(idb, m->msg_id);
	snprintf(date, sizeof date, "%" PRIu32, m->created_at);
	size_t boxcap = 2 * m->box_len + 1;
	char *box = malloc(boxcap);
	/* The legacy nickname, as a sender fills it towards Gateway IDs. */
	char nick[VEIL_MSGBOX_NICKNAME_LEN + 1];
	memcpy(nick, m->nickname, VEIL_MSGBOX_NICKNAME_LEN);
	nick[VEIL_MSGBOX_NICKNAME_LEN] = '\0';
	if (box == NULL || veil_hex_encode(mid, sizeof mid, idb, sizeof idb) != 0 ||
	    veil_hex_encode(nonce, sizeof nonce, m->nonce, VEIL_NONCE_LEN) != 0 ||
	    veil_hex_encode(box, boxcap, m->box, m->box_len) != 0)
		goto out;
	struct veil_gw_callback f = {
	    .from = from, .to = to, .message_id = mid, .date = date, .nonce = nonce, .box = box};
	if (veil_hash_gateway_callback(mac, a->secret, strlen(a->secret), &f) != 0 ||
	    veil_hex_encode(machex, sizeof machex, mac, sizeof mac) != 0)
		goto out;
	const char *parts[][2] = {{"from=", from},  {"&to=", to},       {"&messageId=", mid},
	                          {"&date=", date}, {"&nonce=", nonce}, {"&box=", box},
	                          {"&mac=", machex}};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (veil_buf_append(form, parts[i][0], strlen(parts[i][0])) != 0 ||
		    veil_buf_append(form, parts[i][1], strlen(parts[i][1])) != 0)
			goto out;
	if (nick[0] != '\0' && veil_utf8_valid((const uint8_t *)nick, strlen(nick)) &&
	    (veil_buf_append(form, "&nickname=", 10) != 0 ||
	     append_escaped(form, nick, strlen(nick)) != 0))
		goto out;
	rc = 0;
out:
	free(box);
	sodium_memzero(mac, sizeof mac);
	return rc;
}

int veil_gw_form_text(struct veil_buf *form, const char *name, const char *v, size_t n)
{
	if (veil_buf_append(form, "&", 1) != 0 || veil_buf_append(form, name, strlen(name)) != 0 ||
	    veil_buf_append(form, "=", 1) != 0)
		return -1;
	return append_escaped(form, v, n);
}

/*
 * POSTs one message to the account's callback URL: 0 on a 2xx answer, else -1.
 */
static int post_one(struct veil_gateway *gw, CURL *curl, const struct veil_gw_account *a,
                    const struct veil_msgbox *m)
{
	char to[VEIL_ID_LEN + 1];
	int rc = -1;
	veil_id_str(to, m->receiver);
	struct veil_buf form;
	veil_buf_init(&form, 4 * VEIL_MSGBOX_MAX);
	if (veil_gw_form_message(a, m, &form) != 0)
		goto out;
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, a->callback);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)form.p);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)form.len);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)VEIL_GW_CB_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, gw);
	CURLcode cc = curl_easy_perform(curl);
	long status = 0;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_OK && status >= 200 && status < 300) {
		rc = 0;
	} else {
		char why[128];
		if (cc != CURLE_OK)
			snprintf(why, sizeof why, "%s", curl_easy_strerror(cc));
		else
			snprintf(why, sizeof why, "answered %ld", status);
		veil_log_info("gateway: callback for %s failed (%s); will retry", to, why);
		(void)veil_gwdb_note_callback(gw->db, m->receiver, why);
	}
out:
	veil_buf_release(&form);
	return rc;
}

static void backoff(struct veil_gateway *gw, struct cb_state *s)
{
	uint32_t max = gw->srv->cfg.gw_retry_max_s * 1000u;
	s->backoff_ms = s->backoff_ms == 0 ? BACKOFF_FIRST_MS : s->backoff_ms * 2;
	if (s->backoff_ms > max)
		s->backoff_ms = max;
	s->next_ms = veil_mono_ms() + s->backoff_ms;
}

int veil_gw_ack(struct veil_gateway *gw, const struct veil_msg_rec *r)
{
	struct waiter *w = waiter_new();
	if (w == NULL)
		return VEIL_ENOMEM;
	if (veil_store_msg_ack(gw->srv->store, r->recipient, r->sender, r->msg_id, on_acked, w) !=
	    0) {
		waiter_unref(w);
		waiter_unref(w);
		return VEIL_EIO;
	}
	int rc = waiter_wait(gw, w);
	waiter_unref(w);
	return rc;
}

int veil_gw_fetch(struct veil_gateway *gw, const uint8_t id[static VEIL_ID_LEN], uint64_t cursor,
                  size_t max, struct veil_msg_rec **msgs, size_t *n)
{
	*msgs = NULL;
	*n = 0;
	struct waiter *w = waiter_new();
	if (w == NULL)
		return VEIL_ENOMEM;
	if (veil_store_msg_fetch(gw->srv->store, id, cursor, max, on_fetched, w) != 0) {
		waiter_unref(w);
		waiter_unref(w);
		return VEIL_EIO;
	}
	int rc = waiter_wait(gw, w);
	if (rc == 0) {
		/* Only a finished call has its records to hand over. */
		pthread_mutex_lock(&w->mu);
		*msgs = w->msgs;
		*n = w->n;
		w->msgs = NULL;
		w->n = 0;
		pthread_mutex_unlock(&w->mu);
	}
	waiter_unref(w);
	return rc;
}

void veil_gw_msgs_free(struct veil_msg_rec *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sodium_memzero(msgs[i].data, msgs[i].len);
		free(msgs[i].data);
	}
	free(msgs);
}

/* Delivers what waits for one API identity, until its queue is empty or a try fails. */
static void deliver(struct veil_gateway *gw, CURL *curl, struct cb_state *s)
{
	struct veil_gw_account a;
	/* Asked after the read too: a connection made anew by it holds no lock. */
	if (veil_gwdb_claim_callback(gw->db, s->id, &s->claim) != 1 ||
	    veil_gwdb_get(gw->db, s->id, 1, &a) != 0 || a.callback[0] == '\0' ||
	    veil_gwdb_claim_callback(gw->db, s->id, &s->claim) != 1) {
		sodium_memzero(&a, sizeof a);
		return;
	}
	for (;;) {
		struct veil_msg_rec *msgs;
		size_t n = 0;
		int failed = veil_gw_fetch(gw, s->id, s->cursor, VEIL_GW_CB_BATCH, &msgs, &n) != 0;
		for (size_t i = 0; i < n && !failed && !veil_gw_stopping(gw); i++) {
			const struct veil_msg_rec *r = &msgs[i];
			struct veil_msgbox m;
			if (veil_msgbox_parse(&m, r->data, r->len) != 0 ||
			    memcmp(m.receiver, s->id, VEIL_ID_LEN) != 0) {
				veil_log_warn("gateway: dropping a malformed queued message");
			} else if (post_one(gw, curl, &a, &m) != 0) {
				backoff(gw, s);
				failed = 1;
				break;
			}
			if (veil_gw_ack(gw, r) != 0) {
				failed = 1;
				break;
			}
			s->cursor = r->seq;
			if (s->backoff_ms != 0 || !s->noted_ok)
				(void)veil_gwdb_note_callback(gw->db, s->id, NULL);
			s->noted_ok = 1;
			s->backoff_ms = 0;
		}
		veil_gw_msgs_free(msgs, n);
		if (failed || n < VEIL_GW_CB_BATCH || veil_gw_stopping(gw))
			break;
	}
	sodium_memzero(&a, sizeof a);
}

void *veil_gw_callback_thread(void *arg)
{
	struct veil_gateway *gw = arg;
	static struct cb_state st[VEIL_GW_MAX_CALLBACK_IDS];
	size_t nst = 0;
	CURL *curl = curl_easy_init();
	if (curl == NULL) {
		veil_log_error("gateway: cannot start libcurl; callbacks are off");
		return NULL;
	}
	static uint8_t ids[VEIL_GW_MAX_CALLBACK_IDS][VEIL_ID_LEN];
	size_t n = 0;
	uint64_t listed_ms = 0;
	while (!veil_gw_stopping(gw)) {
		/*
		 * The accounts with a callback, read again once a poll interval
		 * (a wake-up for every message stored for an API identity only
		 * looks at the queues).
		 */
		if (listed_ms == 0 || veil_mono_ms() - listed_ms >= VEIL_GW_CB_POLL_MS) {
			if (veil_gwdb_with_callback(gw->db, ids, VEIL_GW_MAX_CALLBACK_IDS, &n) != 0)
				n = 0;
			listed_ms = veil_mono_ms();
		}
		for (size_t i = 0; i < n && !veil_gw_stopping(gw); i++) {
			size_t k = 0;
			while (k < nst && memcmp(st[k].id, ids[i], VEIL_ID_LEN) != 0)
				k++;
			if (k == nst) {
				if (nst == VEIL_GW_MAX_CALLBACK_IDS)
					continue;
				memset(&st[k], 0, sizeof st[k]);
				memcpy(st[k].id, ids[i], VEIL_ID_LEN);
				nst++;
			}
			if (veil_mono_ms() >= st[k].next_ms)
				deliver(gw, curl, &st[k]);
		}
		pthread_mutex_lock(&gw->wlock);
		if (!gw->woken && !gw->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)VEIL_GW_CB_POLL_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&gw->wcond, &gw->wlock, &ts);
		}
		gw->woken = 0;
		pthread_mutex_unlock(&gw->wlock);
	}
	curl_easy_cleanup(curl);
	return NULL;
}
