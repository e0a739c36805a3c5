/*
 * The generic half of the store: the store thread, its job queue, group
 * commit and the completion list. Everything that touches a database goes
 * through struct veil_store_ops (store_backend.h).
 *
 * Group commit: the thread takes every job waiting at once, runs all the
 * writes among them in one transaction, commits (one fsync), then runs the
 * fetches, posts every completion together and calls the wake function once.
 * A backend with q_writes gets all of a batch's writes in one call (so that
 * PostgreSQL can send them in one round trip); the outcomes are the same.
 * If the batch fails as a whole (an I/O error in one job or in COMMIT), it is
 * rolled back and each write is run again in a transaction of its own, so one
 * bad job cannot fail its neighbours and every result a callback sees is
 * exactly what is on disk.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store_backend.h"
#include "metrics/metrics.h"
#include "veil/err.h"
#include "veil/util.h"

#define STORE_MAX_BATCH 4096 /* most jobs run in one transaction */

enum job_type { JOB_PUT, JOB_FETCH, JOB_ACK, JOB_EXPIRE, JOB_EVENT, JOB_LOGIN };

struct job {
	struct job *next;
	struct veil_store_lane *lane; /* where the completion runs; NULL: the store's own list */
	enum job_type type;
	int rc;
	void *arg;
	veil_store_put_cb put_cb;
	veil_store_fetch_cb fetch_cb;
	veil_store_done_cb done_cb;
	/* put: the message (data owned); fetch and ack: recipient, sender, msg_id */
	struct veil_msg_rec msg;
	uint64_t after_seq;       /* fetch */
	size_t limit;             /* fetch */
	uint64_t now_ms;          /* fetch, expire */
	uint64_t seq;             /* put result */
	struct veil_msg_rec *out; /* fetch result, one block */
	size_t n_out;
	uint64_t deleted; /* expire result */
	int ev_kind;      /* event: enum veil_store_event_kind; msg.recipient, seq = gen */
	bool done;        /* expire: set under mu when finished */
};

struct job_list {
	struct job *head;
	struct job **tail;
};

#define STORE_MAX_LANES 256

/* A completion list of its own, run by the thread that bound it (a chat loop). */
struct veil_store_lane {
	struct job_list completions; /* under the store's mu */
	void (*wake)(void *arg);
	void *wake_arg;
	bool woken; /* store thread only: completions were added in this batch */
};

/* The lane of the calling thread's queueing calls (NULL: the store's own list). */
static _Thread_local struct veil_store_lane *tl_lane;

struct veil_store {
	const struct veil_store_ops *ops;
	void *be;
	void (*wake)(void *arg);
	void *wake_arg;
	veil_store_event_cb event;
	void *event_arg;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* jobs queued or stopping */
	pthread_cond_t done_cv; /* a synchronous job finished */
	struct job_list queue;
	struct job_list completions;
	bool stopping;
	struct veil_store_stats stats;
	struct veil_store_lane *lanes[STORE_MAX_LANES];
	size_t n_lanes;
};

static void list_init(struct job_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

static void list_push(struct job_list *l, struct job *j)
{
	j->next = NULL;
	*l->tail = j;
	l->tail = &j->next;
}

static void list_take(struct job_list *dst, struct job_list *src)
{
	*dst = *src;
	if (dst->head == NULL)
		dst->tail = &dst->head;
	list_init(src);
}

/*
 * Moves up to max jobs from the front of src to dst. The cap bounds a
 * transaction's size and the wait of the first job in it.
 */
static void list_take_upto(struct job_list *dst, struct job_list *src, size_t max)
{
	list_init(dst);
	for (size_t i = 0; i < max && src->head; i++) {
		struct job *j = src->head;
		src->head = j->next;
		list_push(dst, j);
	}
	if (src->head == NULL)
		list_init(src);
}

static void job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->msg.data);
	free(j->out);
	free(j);
}

static bool job_is_write(const struct job *j)
{
	return j->type == JOB_PUT || j->type == JOB_ACK || j->type == JOB_EXPIRE ||
	       j->type == JOB_LOGIN;
}

static int run_write(struct veil_store *s, struct job *j)
{
	switch (j->type) {
	case JOB_PUT: return s->ops->q_put(s->be, &j->msg, &j->seq);
	case JOB_ACK: return s->ops->q_ack(s->be, j->msg.recipient, j->msg.sender, j->msg.msg_id);
	case JOB_EXPIRE: return s->ops->q_expire(s->be, j->now_ms, &j->deleted);
	case JOB_LOGIN: return s->ops->q_login(s->be, j->msg.recipient, j->now_ms);
	case JOB_FETCH:
	case JOB_EVENT: break;
	}
	return VEIL_EINVAL;
}

/* Per-job outcomes that leave the transaction usable; anything else fails the batch. */
static bool batch_fatal(int rc)
{
	return rc != 0 && rc != VEIL_EEXIST && rc != VEIL_ELIMIT && rc != VEIL_EQUOTA &&
	       rc != VEIL_ENOTFOUND;
}

/* Commits the open batch; its duration goes to /metrics' histogram, a failure to its errors. */
static int timed_commit(struct veil_store *s)
{
	uint64_t t0 = veil_metrics_now_us();
	int rc = s->ops->batch_commit(s->be);
	if (rc == 0)
		veil_metrics_commit(veil_metrics_now_us() - t0);
	else
		veil_metric_inc(VEIL_METRIC_ERR_STORE);
	return rc;
}

/* Runs one write alone in its own transaction (after a failed batch). */
static void run_write_alone(struct veil_store *s, struct job *j)
{
	int rc = s->ops->batch_begin(s->be);
	if (rc != 0) {
		j->rc = rc;
		return;
	}
	j->rc = run_write(s, j);
	if (batch_fatal(j->rc)) {
		s->ops->batch_rollback(s->be);
		return;
	}
	rc = timed_commit(s);
	if (rc != 0) {
		s->ops->batch_rollback(s->be);
		j->rc = rc;
		return;
	}
	s->stats.commits++;
}

/*
 * The batch's writes through the backend's q_writes (all at once, so it can
 * send them together): false if they failed as a batch, or true with each
 * job's outcome set. Without memory for the list they run one by one.
 */
static bool run_writes_together(struct veil_store *s, struct job *head, size_t writes)
{
	struct veil_store_write *w = calloc(writes, sizeof *w);
	if (w == NULL) {
		for (struct job *j = head; j; j = j->next) {
			if (job_is_write(j) && batch_fatal(j->rc = run_write(s, j)))
				return false;
		}
		return true;
	}
	size_t n = 0;
	for (struct job *j = head; j; j = j->next) {
		if (!job_is_write(j))
			continue;
		static const enum veil_store_write_type wt[] = {
		    [JOB_PUT] = VEIL_STORE_W_PUT,
		    [JOB_ACK] = VEIL_STORE_W_ACK,
		    [JOB_EXPIRE] = VEIL_STORE_W_EXPIRE,
		    [JOB_LOGIN] = VEIL_STORE_W_LOGIN,
		};
		w[n++] = (struct veil_store_write){
		    .type = wt[j->type], .msg = &j->msg, .now_ms = j->now_ms};
	}
	bool ok = s->ops->q_writes(s->be, w, n) == 0;
	n = 0;
	for (struct job *j = head; j && ok; j = j->next) {
		if (!job_is_write(j))
			continue;
		j->rc = w[n].rc;
		j->seq = w[n].seq;
		j->deleted = w[n].deleted;
		ok = !batch_fatal(j->rc);
		n++;
	}
	free(w);
	return ok;
}

static void run_batch(struct veil_store *s, struct job *head)
{
	size_t writes = 0;
	for (struct job *j = head; j; j = j->next)
		writes += job_is_write(j);

	if (writes > 0) {
		bool failed = false;
		int rc = s->ops->batch_begin(s->be);
		if (rc != 0) {
			failed = true;
		} else {
			if (s->ops->q_writes != NULL)
				failed = !run_writes_together(s, head, writes);
			for (struct job *j = head; j && !failed && s->ops->q_writes == NULL;
			     j = j->next) {
				if (!job_is_write(j))
					continue;
				j->rc = run_write(s, j);
				failed = batch_fatal(j->rc);
			}
			if (!failed && timed_commit(s) != 0)
				failed = true;
			if (failed)
				s->ops->batch_rollback(s->be);
			else
				s->stats.commits++;
		}
		if (failed) {
			for (struct job *j = head; j; j = j->next) {
				if (job_is_write(j))
					run_write_alone(s, j);
			}
		}
	}
	for (struct job *j = head; j; j = j->next) {
		if (j->type != JOB_FETCH)
			continue;
		/* Expiry is judged when the read runs, not when it was queued. */
		j->now_ms = veil_now_ms();
		j->rc = s->ops->q_fetch(s->be, j->msg.recipient, j->after_seq, j->limit, j->now_ms,
		                        &j->out, &j->n_out);
	}
}

static void *store_thread(void *arg)
{
	struct veil_store *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->queue.head == NULL && !s->stopping)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->queue.head == NULL)
			break;
		struct job_list batch;
		list_take_upto(&batch, &s->queue, STORE_MAX_BATCH);
		pthread_mutex_unlock(&s->mu);

		run_batch(s, batch.head);

		pthread_mutex_lock(&s->mu);
		uint64_t n = 0;
		bool async = false, sync = false;
		struct job *next;
		for (struct job *j = batch.head; j; j = next) {
			next = j->next;
			n++;
			if (j->type == JOB_EXPIRE) {
				/* The waiting caller owns and frees it. */
				j->done = true;
				sync = true;
			} else if (j->lane != NULL) {
				list_push(&j->lane->completions, j);
				j->lane->woken = true;
			} else {
				list_push(&s->completions, j);
				async = true;
			}
		}
		s->stats.jobs += n;
		if (n > s->stats.max_batch)
			s->stats.max_batch = n;
		if (sync)
			pthread_cond_broadcast(&s->done_cv);
		struct veil_store_lane *wake[STORE_MAX_LANES];
		size_t n_wake = 0;
		for (size_t i = 0; i < s->n_lanes; i++) {
			if (s->lanes[i]->woken) {
				s->lanes[i]->woken = false;
				wake[n_wake++] = s->lanes[i];
			}
		}
		pthread_mutex_unlock(&s->mu);
		if (async)
			s->wake(s->wake_arg);
		for (size_t i = 0; i < n_wake; i++)
			wake[i]->wake(wake[i]->wake_arg);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int enqueue(struct veil_store *s, struct job *j)
{
	j->lane = tl_lane;
	pthread_mutex_lock(&s->mu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->mu);
		return VEIL_ECLOSED;
	}
	list_push(&s->queue, j);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* The backend's sink: an event becomes a completion (any thread). */
static void store_emit(void *ctx, int kind, const uint8_t id[VEIL_ID_LEN], uint64_t gen)
{
	struct veil_store *s = ctx;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->type = JOB_EVENT;
	j->ev_kind = kind;
	j->seq = gen;
	if (id != NULL)
		memcpy(j->msg.recipient, id, VEIL_ID_LEN);
	pthread_mutex_lock(&s->mu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->mu);
		free(j);
		return;
	}
	list_push(&s->completions, j);
	pthread_mutex_unlock(&s->mu);
	s->wake(s->wake_arg);
}

bool veil_store_is_url(const char *path)
{
	return path != NULL &&
	       (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0);
}

/* Appends n bytes of src to out at *len, keeping room for the terminator. */
static void put_bytes(char *out, size_t cap, size_t *len, const char *src, size_t n)
{
	if (*len + 1 >= cap)
		return;
	if (n > cap - 1 - *len)
		n = cap - 1 - *len;
	memcpy(out + *len, src, n);
	*len += n;
	out[*len] = '\0';
}

void veil_store_describe(const char *path, char *out, size_t cap)
{
	size_t len = 0;
	if (cap == 0)
		return;
	out[0] = '\0';
	if (path == NULL)
		return;
	if (!veil_store_is_url(path)) {
		put_bytes(out, cap, &len, path, strlen(path));
		return;
	}
	const char *p = strstr(path, "://") + 3;
	put_bytes(out, cap, &len, path, (size_t)(p - path));
	/* user:password@host: the userinfo ends at the last '@' before the path. */
	size_t auth = strcspn(p, "/?#");
	const char *at = NULL;
	for (size_t i = 0; i < auth; i++)
		if (p[i] == '@')
			at = p + i;
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon != NULL) {
			put_bytes(out, cap, &len, p, (size_t)(colon - p));
			put_bytes(out, cap, &len, ":***", 4);
			p = at;
		}
	}
	/* ?password=...&: the value becomes ***. */
	while (*p != '\0') {
		const char *pw = strstr(p, "password=");
		if (pw == NULL || (pw > path && pw[-1] != '?' && pw[-1] != '&')) {
			size_t n = pw == NULL ? strlen(p) : (size_t)(pw - p) + 9;
			put_bytes(out, cap, &len, p, n);
			p += n;
			continue;
		}
		put_bytes(out, cap, &len, p, (size_t)(pw - p) + 9);
		put_bytes(out, cap, &len, "***", 3);
		p = pw + 9 + strcspn(pw + 9, "&#");
	}
}

int veil_store_open(struct veil_store **out, const struct veil_store_opts *opts)
{
	struct veil_store *s = NULL;
	int rc;
	bool mu = false, cv = false, done_cv = false;

	*out = NULL;
	if (opts == NULL || opts->path == NULL || opts->wake == NULL)
		return VEIL_EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return VEIL_ENOMEM;
	s->ops = veil_store_is_url(opts->path) ? &veil_store_pg_ops : &veil_store_sqlite_ops;
	s->wake = opts->wake;
	s->wake_arg = opts->wake_arg;
	s->event = opts->event;
	s->event_arg = opts->event_arg;
	list_init(&s->queue);
	list_init(&s->completions);
	rc = VEIL_ENOMEM;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto out;
	mu = true;
	if (pthread_cond_init(&s->cv, NULL) != 0)
		goto out;
	cv = true;
	if (pthread_cond_init(&s->done_cv, NULL) != 0)
		goto out;
	done_cv = true;

	uint32_t queue_limit = opts->queue_limit ? opts->queue_limit : VEIL_STORE_DEFAULT_QUEUE;
	uint32_t sender_limit = opts->queue_sender_limit;
	if (sender_limit == 0)
		sender_limit = queue_limit / VEIL_STORE_SENDER_SHARE_DIV;
	if (sender_limit == 0)
		sender_limit = 1;
	if (sender_limit > queue_limit)
		sender_limit = queue_limit;
	struct veil_store_sink sink = {.emit = store_emit, .ctx = s};
	rc = s->ops->open(&s->be, opts, queue_limit, sender_limit,
	                  opts->event != NULL ? &sink : NULL);
	if (rc != 0)
		goto out;
	if (pthread_create(&s->thread, NULL, store_thread, s) != 0) {
		rc = VEIL_EIO;
		goto out;
	}
	s->thread_started = true;
	*out = s;
	return 0;
out:
	if (s->be)
		s->ops->close(s->be);
	if (done_cv)
		pthread_cond_destroy(&s->done_cv);
	if (cv)
		pthread_cond_destroy(&s->cv);
	if (mu)
		pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

static void run_one_completion(struct veil_store *s, struct job *j)
{
	switch (j->type) {
	case JOB_PUT: j->put_cb(j->arg, j->rc, j->seq); break;
	case JOB_FETCH:
		j->fetch_cb(j->arg, j->rc, j->rc == 0 ? j->out : NULL, j->rc == 0 ? j->n_out : 0);
		break;
	case JOB_ACK:
		if (j->done_cb)
			j->done_cb(j->arg, j->rc);
		break;
	case JOB_EXPIRE:
	case JOB_LOGIN: break;
	case JOB_EVENT:
		if (j->ev_kind == VEIL_STORE_EV_RESYNC)
			s->event(s->event_arg, j->ev_kind, NULL, 0);
		else
			s->event(s->event_arg, j->ev_kind, j->msg.recipient, j->seq);
		break;
	}
}

void veil_store_run_completions(struct veil_store *s)
{
	struct job_list l;

	/* Callbacks may queue more work, which lands in a later round. */
	pthread_mutex_lock(&s->mu);
	list_take(&l, &s->completions);
	pthread_mutex_unlock(&s->mu);
	struct job *next;
	for (struct job *j = l.head; j; j = next) {
		next = j->next;
		run_one_completion(s, j);
		job_free(j);
	}
}

int veil_store_lane_new(struct veil_store *s, void (*wake)(void *arg), void *arg,
                        struct veil_store_lane **out)
{
	*out = NULL;
	if (wake == NULL || s->n_lanes == STORE_MAX_LANES)
		return VEIL_ELIMIT;
	struct veil_store_lane *l = calloc(1, sizeof *l);
	if (l == NULL)
		return VEIL_ENOMEM;
	list_init(&l->completions);
	l->wake = wake;
	l->wake_arg = arg;
	pthread_mutex_lock(&s->mu);
	s->lanes[s->n_lanes++] = l;
	pthread_mutex_unlock(&s->mu);
	*out = l;
	return 0;
}

void veil_store_lane_bind(struct veil_store_lane *l)
{
	tl_lane = l;
}

void veil_store_lane_run(struct veil_store *s, struct veil_store_lane *l)
{
	struct job_list q;
	pthread_mutex_lock(&s->mu);
	list_take(&q, &l->completions);
	pthread_mutex_unlock(&s->mu);
	struct job *next;
	for (struct job *j = q.head; j; j = next) {
		next = j->next;
		run_one_completion(s, j);
		job_free(j);
	}
}

/* True if no completion waits, in the store's own list or in a lane (under mu). */
static bool completions_empty(struct veil_store *s)
{
	if (s->completions.head != NULL)
		return false;
	for (size_t i = 0; i < s->n_lanes; i++)
		if (s->lanes[i]->completions.head != NULL)
			return false;
	return true;
}

void veil_store_close(struct veil_store *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->thread_started)
		pthread_join(s->thread, NULL);
	/* The thread drained the queue before it stopped; new jobs get ECLOSED. */
	for (;;) {
		pthread_mutex_lock(&s->mu);
		bool empty = completions_empty(s);
		pthread_mutex_unlock(&s->mu);
		if (empty)
			break;
		veil_store_run_completions(s);
		for (size_t i = 0; i < s->n_lanes; i++)
			veil_store_lane_run(s, s->lanes[i]);
	}
	for (size_t i = 0; i < s->n_lanes; i++)
		free(s->lanes[i]);
	s->ops->close(s->be);
	pthread_cond_destroy(&s->done_cv);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

bool veil_store_shared(struct veil_store *s)
{
	return s->ops->shared;
}

int veil_store_session_claim(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                             uint64_t *gen)
{
	*gen = 0;
	if (s->ops->s_session_claim == NULL)
		return 0;
	return s->ops->s_session_claim(s->be, id, gen);
}

void veil_store_stats(struct veil_store *s, struct veil_store_stats *st)
{
	pthread_mutex_lock(&s->mu);
	*st = s->stats;
	pthread_mutex_unlock(&s->mu);
}

int veil_store_login(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN], uint64_t now_ms)
{
	if (s->ops->q_login == NULL)
		return 0;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return VEIL_ENOMEM;
	j->type = JOB_LOGIN;
	j->now_ms = now_ms;
	memcpy(j->msg.recipient, id, VEIL_ID_LEN);
	int rc = enqueue(s, j);
	if (rc != 0)
		free(j);
	return rc;
}

int veil_store_identity_list(struct veil_store *s, const uint8_t *only, const uint8_t *after,
                             size_t max, struct veil_identity_info **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	/* One more than a page: the caller learns whether another page follows. */
	if (max == 0 || max > VEIL_STORE_MAX_LIST + 1)
		max = VEIL_STORE_MAX_LIST + 1;
	return s->ops->s_identity_list(s->be, only, after, max, out, n);
}

int veil_store_identity_delete(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                               uint64_t *dropped)
{
	*dropped = 0;
	return s->ops->s_identity_delete(s->be, id, dropped);
}

int veil_store_queue_stats(struct veil_store *s, struct veil_queue_stats *st)
{
	memset(st, 0, sizeof *st);
	return s->ops->s_queue_stats(s->be, veil_now_ms(), st);
}

const char *veil_store_backend(struct veil_store *s)
{
	return s->ops->name;
}

int veil_store_ping(struct veil_store *s)
{
	return s->ops->s_ping(s->be);
}

int veil_store_msg_put(struct veil_store *s, const struct veil_msg_rec *m, veil_store_put_cb cb,
                       void *arg)
{
	if (m == NULL || cb == NULL || (m->len > 0 && m->data == NULL))
		return VEIL_EINVAL;
	if (m->len > VEIL_STORE_MAX_BOX)
		return VEIL_ELIMIT;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return VEIL_ENOMEM;
	j->type = JOB_PUT;
	j->put_cb = cb;
	j->arg = arg;
	j->msg = *m;
	j->msg.seq = 0;
	j->msg.data = malloc(m->len ? m->len : 1);
	if (j->msg.data == NULL) {
		free(j);
		return VEIL_ENOMEM;
	}
	if (m->len)
		memcpy(j->msg.data, m->data, m->len);
	int rc = enqueue(s, j);
	if (rc != 0)
		job_free(j);
	return rc;
}

int veil_store_msg_fetch(struct veil_store *s, const uint8_t recipient[static VEIL_ID_LEN],
                         uint64_t after_seq, size_t limit, veil_store_fetch_cb cb, void *arg)
{
	if (cb == NULL)
		return VEIL_EINVAL;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return VEIL_ENOMEM;
	j->type = JOB_FETCH;
	j->fetch_cb = cb;
	j->arg = arg;
	memcpy(j->msg.recipient, recipient, VEIL_ID_LEN);
	j->after_seq = after_seq;
	j->limit = (limit == 0 || limit > VEIL_STORE_MAX_FETCH) ? VEIL_STORE_MAX_FETCH : limit;
	int rc = enqueue(s, j);
	if (rc != 0)
		job_free(j);
	return rc;
}

int veil_store_msg_ack(struct veil_store *s, const uint8_t recipient[static VEIL_ID_LEN],
                       const uint8_t sender[static VEIL_ID_LEN], uint64_t msg_id,
                       veil_store_done_cb cb, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return VEIL_ENOMEM;
	j->type = JOB_ACK;
	j->done_cb = cb;
	j->arg = arg;
	memcpy(j->msg.recipient, recipient, VEIL_ID_LEN);
	memcpy(j->msg.sender, sender, VEIL_ID_LEN);
	j->msg.msg_id = msg_id;
	int rc = enqueue(s, j);
	if (rc != 0)
		job_free(j);
	return rc;
}

int veil_store_msg_expire(struct veil_store *s, uint64_t now_ms)
{
	/*
	 * Runs on the store thread like every other queue write, so the
	 * backend's per-recipient counts stay exact without locking.
	 */
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return VEIL_ENOMEM;
	j->type = JOB_EXPIRE;
	j->now_ms = now_ms;
	int rc = enqueue(s, j);
	if (rc != 0) {
		job_free(j);
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	while (!j->done)
		pthread_cond_wait(&s->done_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	rc = j->rc;
	if (rc == 0)
		rc = j->deleted > (uint64_t)INT32_MAX ? INT32_MAX : (int)j->deleted;
	job_free(j);
	return rc;
}

int veil_store_msg_count(struct veil_store *s, const uint8_t recipient[static VEIL_ID_LEN],
                         uint64_t *count)
{
	*count = 0;
	return s->ops->s_msg_count(s->be, recipient, veil_now_ms(), count);
}

int veil_store_identity_create(struct veil_store *s, const uint8_t pk[static VEIL_KEY_LEN],
                               struct veil_identity_rec *rec)
{
	memset(rec, 0, sizeof(*rec));
	return s->ops->s_identity_create(s->be, NULL, pk, rec);
}

int veil_store_identity_create_id(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                                  const uint8_t pk[static VEIL_KEY_LEN],
                                  struct veil_identity_rec *rec)
{
	memset(rec, 0, sizeof(*rec));
	if (!veil_id_valid(id))
		return VEIL_EINVAL;
	return s->ops->s_identity_create(s->be, id, pk, rec);
}

int veil_store_identity_get(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                            struct veil_identity_rec *rec)
{
	memset(rec, 0, sizeof(*rec));
	return s->ops->s_identity_get(s->be, id, rec);
}

int veil_store_identity_set_state(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                                  int state)
{
	if (state != VEIL_IDENTITY_ACTIVE && state != VEIL_IDENTITY_INACTIVE &&
	    state != VEIL_IDENTITY_INVALID)
		return VEIL_EINVAL;
	return s->ops->s_identity_set_state(s->be, id, state);
}

int veil_store_identity_set_features(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                                     uint64_t mask)
{
	return s->ops->s_identity_set_features(s->be, id, mask);
}

int veil_store_push_token_set(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                              uint8_t type, const uint8_t *token, size_t len)
{
	if (len > VEIL_STORE_MAX_PUSH_TOKEN)
		return VEIL_ELIMIT;
	if (len > 0 && token == NULL)
		return VEIL_EINVAL;
	return s->ops->s_push_token_set(s->be, id, type, token, len);
}

int veil_store_push_token_get(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                              uint8_t *type, uint8_t token[static VEIL_STORE_MAX_PUSH_TOKEN],
                              size_t *len)
{
	*type = 0;
	*len = 0;
	return s->ops->s_push_token_get(s->be, id, type, token, len);
}

int veil_store_token_use(struct veil_store *s, const uint8_t *token, size_t len,
                         uint64_t expires_ms)
{
	uint8_t hash[32];

	if (token == NULL || len == 0)
		return VEIL_EINVAL;
	/* Only a hash is kept: the table never holds a usable token. */
	crypto_generichash(hash, sizeof(hash), token, len, NULL, 0);
	int rc = s->ops->s_token_use(s->be, hash, expires_ms, veil_now_ms());
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

/* --- linked contact data and revocation --- */

static int link_kind_ok(int kind)
{
	return kind == VEIL_LINK_EMAIL || kind == VEIL_LINK_PHONE;
}

int veil_store_link_pending_put(struct veil_store *s, const struct veil_link_pending *p)
{
	if (p == NULL || !link_kind_ok(p->kind) || !veil_id_valid(p->id))
		return VEIL_EINVAL;
	return s->ops->s_link_pending_put(s->be, p);
}

int veil_store_link_confirm(struct veil_store *s, const uint8_t vid[static VEIL_STORE_VID_LEN],
                            const uint8_t code_mac[static 32], uint32_t max_attempts,
                            uint64_t now_ms, struct veil_link_pending *out)
{
	memset(out, 0, sizeof(*out));
	return s->ops->s_link_confirm(s->be, vid, code_mac, max_attempts, now_ms, out);
}

int veil_store_link_get(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN], int kind,
                        uint8_t hash[static 32])
{
	if (!link_kind_ok(kind))
		return VEIL_EINVAL;
	return s->ops->s_link_get(s->be, id, kind, hash);
}

int veil_store_link_delete(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN], int kind)
{
	if (!link_kind_ok(kind))
		return VEIL_EINVAL;
	return s->ops->s_link_delete(s->be, id, kind);
}

int veil_store_link_find(struct veil_store *s, int kind, int by_prf, const uint8_t value[static 32],
                         uint8_t (*ids)[VEIL_ID_LEN], size_t max, size_t *n)
{
	*n = 0;
	if (!link_kind_ok(kind) || max == 0 || max > VEIL_STORE_MAX_MATCHES)
		return VEIL_EINVAL;
	return s->ops->s_link_find(s->be, kind, by_prf, value, ids, max, n);
}

int veil_store_revocation_set(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                              const uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t now_ms)
{
	return s->ops->s_revocation_set(s->be, id, key, now_ms);
}

int veil_store_revocation_get(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN],
                              uint8_t key[static VEIL_STORE_REVKEY_LEN], uint64_t *changed_ms)
{
	*changed_ms = 0;
	return s->ops->s_revocation_get(s->be, id, key, changed_ms);
}

int veil_store_identity_revoke(struct veil_store *s, const uint8_t id[static VEIL_ID_LEN])
{
	return s->ops->s_identity_revoke(s->be, id);
}

int veil_store_invite_put(struct veil_store *s, const struct veil_invite_rec *r)
{
	struct veil_invite_rec c = *r;
	if (c.uses == 0 || c.uses > VEIL_STORE_INVITE_MAX_USES)
		return VEIL_EINVAL;
	if (veil_hex_encode(c.handle, sizeof c.handle, c.hash, VEIL_STORE_INVITE_HANDLE_LEN / 2) !=
	    0)
		return VEIL_EINVAL;
	c.used = 0;
	c.revoked = false;
	return s->ops->s_invite_put(s->be, &c);
}

int veil_store_invite_use(struct veil_store *s, const uint8_t hash[static 32], uint64_t now_ms)
{
	return s->ops->s_invite_use(s->be, hash, now_ms);
}

int veil_store_invite_unuse(struct veil_store *s, const uint8_t hash[static 32])
{
	return s->ops->s_invite_unuse(s->be, hash);
}

int veil_store_invite_list(struct veil_store *s, struct veil_invite_rec **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	return s->ops->s_invite_list(s->be, out, n);
}

int veil_store_invite_revoke(struct veil_store *s, const char *handle)
{
	if (strlen(handle) != VEIL_STORE_INVITE_HANDLE_LEN)
		return VEIL_ENOTFOUND;
	return s->ops->s_invite_revoke(s->be, handle);
}
