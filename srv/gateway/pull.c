/*
 * Receiving without a callback (our extension; see gateway.h): GET or POST
 * /gateway/receive answers with what waits in the API identity's queue, at
 * most VEIL_GW_PULL_BATCH messages, one per line in the callback's form
 * fields plus "cursor"; a later request with after=CURSOR removes what was
 * answered up to there. With wait=S the answer waits up to S seconds for a
 * message (a long poll). For an identity whose key veild keeps (basic mode)
 * each line also carries the message's type and, for a text message, the
 * text: what makes a bot of curl and a shell loop possible.
 *
 * One thread serves the waiting requests; the listener only parks them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "gw_int.h"

static const char *text_plain = "text/plain; charset=utf-8";

static void finish(struct veil_gateway *gw, struct veil_gw_poll *p, int status, const void *body,
                   size_t len)
{
	pthread_mutex_lock(&gw->hlock);
	if (gw->http != NULL)
		(void)veil_http_resume(gw->http, p->ticket, status, text_plain, body, len);
	pthread_mutex_unlock(&gw->hlock);
	free(p);
}

/* Parses a decimal u64 param (digits only, no overflow): 0 or -1. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int veil_gw_pull_request(struct veil_gateway *gw, const struct veil_gw_account *a,
                         const char *after, size_t after_len, const char *wait, size_t wait_len,
                         struct veil_http_resp *resp)
{
	uint64_t aft = 0, w = 0;
	if (a->callback[0] != '\0')
		return 409;
	if ((after != NULL && parse_u64(after, after_len, &aft) != 0) ||
	    (wait != NULL && (parse_u64(wait, wait_len, &w) != 0 || w > VEIL_GW_PULL_WAIT_MAX_S)))
		return 400;
	struct veil_gw_poll *p = calloc(1, sizeof *p);
	if (p == NULL)
		return 500;
	memcpy(p->id, a->id, VEIL_ID_LEN);
	p->after = aft;
	p->deadline_ms = veil_mono_ms() + w * 1000u;
	p->dirty = 1;
	pthread_mutex_lock(&gw->plock);
	size_t n = 0;
	struct veil_gw_poll **pp = &gw->polls, *old = NULL;
	while (*pp != NULL) {
		/* A new request of the same identity replaces a waiting one. */
		if (memcmp((*pp)->id, a->id, VEIL_ID_LEN) == 0 && old == NULL) {
			old = *pp;
			*pp = old->next;
			continue;
		}
		n++;
		pp = &(*pp)->next;
	}
	if (n >= VEIL_GW_PULL_MAX && old == NULL) {
		pthread_mutex_unlock(&gw->plock);
		free(p);
		return 503;
	}
	p->ticket = veil_http_defer(resp);
	*pp = p;
	pthread_cond_signal(&gw->pcond);
	pthread_mutex_unlock(&gw->plock);
	if (old != NULL)
		finish(gw, old, 200, "", 0);
	return 0;
}

/* Appends the type and, for a text, the text of m if veild holds a's key: 0 or -1. */
static int add_plain(struct veil_gateway *gw, const struct veil_gw_account *a,
                     const struct veil_msgbox *m, struct veil_buf *out)
{
	struct veil_identity_rec rec;
	if (!a->has_sk || !gw->srv->cfg.gw_basic ||
	    veil_store_identity_get(gw->srv->store, m->sender, &rec) != 0)
		return 0;
	struct veil_buf body;
	struct veil_e2e_meta meta;
	uint8_t type = 0;
	veil_buf_init_secret(&body, VEIL_MSGBOX_MAX);
	int rc = 0;
	if (veil_e2e_open(m, a->sk, rec.pk, &type, &body, &meta) == 0) {
		char t[8];
		int tl = snprintf(t, sizeof t, "%u", (unsigned)type);
		rc = veil_gw_form_text(out, "type", t, (size_t)tl);
		if (rc == 0 && type == VEIL_E2E_TEXT && veil_utf8_valid(body.p, body.len))
			rc = veil_gw_form_text(out, "text", (const char *)body.p, body.len);
	}
	veil_buf_release(&body);
	return rc;
}

/*
 * Serves one request: removes what it acknowledged, then answers if the
 * queue has something or its time is up. 1 if answered, 0 if it waits on.
 */
static int serve(struct veil_gateway *gw, struct veil_gw_poll *p)
{
	struct veil_gw_account a;
	struct veil_msg_rec *msgs = NULL;
	size_t n = 0;
	if (veil_gwdb_get(gw->db, p->id, 1, &a) != 0) {
		finish(gw, p, 500, "", 0);
		return 1;
	}
	int rc = 0;
	/* The acknowledged messages are the oldest ones: remove from the front. */
	while (p->after != 0 && rc == 0) {
		rc = veil_gw_fetch(gw, p->id, 0, VEIL_GW_CB_BATCH, &msgs, &n);
		size_t i = 0;
		for (; rc == 0 && i < n && msgs[i].seq <= p->after; i++)
			rc = veil_gw_ack(gw, &msgs[i]);
		if (rc == 0 && (i < n || n < VEIL_GW_CB_BATCH))
			p->after = 0;
		veil_gw_msgs_free(msgs, n);
		msgs = NULL;
		n = 0;
	}
	if (rc == 0)
		rc = veil_gw_fetch(gw, p->id, 0, VEIL_GW_PULL_BATCH, &msgs, &n);
	int answered = 1;
	if (rc != 0) {
		finish(gw, p, rc == VEIL_ECLOSED ? 503 : 500, "", 0);
	} else if (n == 0 && veil_mono_ms() < p->deadline_ms) {
		answered = 0;
	} else {
		struct veil_buf out;
		veil_buf_init(&out, (size_t)VEIL_GW_PULL_BATCH * 4 * VEIL_MSGBOX_MAX);
		int ok = 1;
		for (size_t i = 0; ok && i < n; i++) {
			struct veil_msgbox m;
			char c[24];
			int cl = snprintf(c, sizeof c, "%" PRIu64, msgs[i].seq);
			/* A record that does not parse still gets a line, so that it can be removed. */
			if (veil_msgbox_parse(&m, msgs[i].data, msgs[i].len) != 0)
				ok = veil_buf_append(&out, "cursor=", 7) == 0 &&
				     veil_buf_append(&out, c, (size_t)cl) == 0;
			else
				ok = veil_gw_form_message(&a, &m, &out) == 0 &&
				     veil_gw_form_text(&out, "cursor", c, (size_t)cl) == 0 &&
				     add_plain(gw, &a, &m, &out) == 0;
			ok = ok && veil_buf_append(&out, "\n", 1) == 0;
		}
		if (ok)
			finish(gw, p, 200, out.p, out.len);
		else
			finish(gw, p, 500, "", 0);
		veil_buf_release(&out);
	}
	veil_gw_msgs_free(msgs, n);
	sodium_memzero(&a, sizeof a);
	return answered;
}

void *veil_gw_pull_thread(void *arg)
{
	struct veil_gateway *gw = arg;
	pthread_mutex_lock(&gw->plock);
	while (!gw->pstop) {
		/* Take one request that wants a look, serve it unlocked, put it back if it waits on. */
		uint64_t now = veil_mono_ms(), next = now + VEIL_GW_CB_POLL_MS;
		struct veil_gw_poll **pp = &gw->polls, *p = NULL;
		for (; *pp != NULL; pp = &(*pp)->next) {
			if ((*pp)->dirty || (*pp)->deadline_ms <= now) {
				p = *pp;
				*pp = p->next;
				break;
			}
			if ((*pp)->deadline_ms < next)
				next = (*pp)->deadline_ms;
		}
		if (p != NULL) {
			pthread_mutex_unlock(&gw->plock);
			int done = serve(gw, p);
			pthread_mutex_lock(&gw->plock);
			if (!done) {
				p->dirty = 0;
				p->next = gw->polls;
				gw->polls = p;
			}
			continue;
		}
		if (gw->pwoken) {
			gw->pwoken = 0;
			for (p = gw->polls; p != NULL; p = p->next)
				p->dirty = 1;
			continue;
		}
		/* Nothing to do: wait for a wake-up, a deadline, or the poll interval. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ms = next > now ? next - now : 1;
		ts.tv_sec += (time_t)(ms / 1000);
		ts.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&gw->pcond, &gw->plock, &ts) != 0)
			for (p = gw->polls; p != NULL; p = p->next)
				p->dirty =
				    1; /* the poll interval: a message from another node, say */
	}
	/* Stopping: whoever still waits gets an empty answer while the listener is there. */
	while (gw->polls != NULL) {
		struct veil_gw_poll *p = gw->polls;
		gw->polls = p->next;
		pthread_mutex_unlock(&gw->plock);
		finish(gw, p, 503, "", 0);
		pthread_mutex_lock(&gw->plock);
	}
	pthread_mutex_unlock(&gw->plock);
	return NULL;
}
