/*
 * Sending group messages: one end-to-end encrypted copy per receiver, all
 * with the same message ID and creation time, pipelined over one CSP
 * connection; then the group operations of the messenger built on that.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "group_int.h"
#include "md_int.h"

/* Most copies one operation sends: an update's setup and name to every member, plus removals. */
#define JOBS_MAX (3 * VEIL_GROUP_MAX_MEMBERS)

/* JOB_FAILED: never sent, its receiver's key could not be had. */
enum job_state { JOB_NEW = 0, JOB_SENT, JOB_ACKED, JOB_REFUSED, JOB_FAILED };

/* One kind of message of an operation (setup, name, text...). */
struct out_msg {
	uint8_t type;
	uint8_t flags;
	int private_copy; /* not the group's state (an empty setup for the removed): not reflected */
	uint64_t id;
	const uint8_t *body; /* container included */
	size_t len;
};

struct job {
	size_t peer; /* index into the peers */
	size_t msg;  /* index into the messages */
	int state;
};

/* A receiver that does not get the operation's messages, and why. */
struct peer_fail {
	int failed;
	int unreachable; /* unknown or revoked ID */
	char why[VEIL_MSGR_ERRTEXT_MAX];
};

struct batch {
	struct veil_contact *peers;
	struct peer_fail *pf; /* parallel to peers */
	size_t npeers;
	/* 1 while IDs being added are looked up: an unknown one fails the operation. */
	int strict;
	struct out_msg msgs[3];
	size_t nmsgs;
	struct job *jobs;
	size_t njobs;
	uint64_t created_ms;
};

static void batch_free(struct batch *b)
{
	free(b->peers);
	free(b->pf);
	free(b->jobs);
	b->peers = NULL;
	b->pf = NULL;
	b->jobs = NULL;
}

static int batch_init(struct veil_msgr *m, struct batch *b)
{
	memset(b, 0, sizeof *b);
	b->peers = calloc(VEIL_GROUP_MAX_MEMBERS + 1, sizeof *b->peers);
	b->pf = calloc(VEIL_GROUP_MAX_MEMBERS + 1, sizeof *b->pf);
	b->jobs = calloc(JOBS_MAX, sizeof *b->jobs);
	b->created_ms = veil_now_ms();
	if (b->peers == NULL || b->pf == NULL || b->jobs == NULL) {
		batch_free(b);
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	}
	return 0;
}

/*
 * Adds a receiver (once) and returns its index, looking up its key if it is
 * not a contact. Unless b->strict, a receiver whose key cannot be had from
 * the directory is added as failed (it gets nothing; the others still do).
 */
static int add_peer(struct veil_msgr *m, struct batch *b, const uint8_t id[static VEIL_ID_LEN],
                    size_t *idx)
{
	for (size_t i = 0; i < b->npeers; i++) {
		if (memcmp(b->peers[i].id, id, VEIL_ID_LEN) == 0) {
			*idx = i;
			return 0;
		}
	}
	if (b->npeers > VEIL_GROUP_MAX_MEMBERS)
		return veil_msgr_fail(m, VEIL_ELIMIT, "too many receivers");
	struct veil_contact *c = &b->peers[b->npeers];
	int rc = veil_profile_contact_get(&m->prof, id, c);
	if (rc == VEIL_ENOTFOUND) {
		rc = veil_msgr_contact_add(m, id, NULL, c); /* sets errtext */
		if (rc != 0 && rc != VEIL_ENOMEM && !b->strict) {
			struct peer_fail *f = &b->pf[b->npeers];
			memset(c, 0, sizeof *c);
			memcpy(c->id, id, VEIL_ID_LEN);
			f->failed = 1;
			f->unreachable = rc == VEIL_ENOTFOUND;
			snprintf(f->why, sizeof f->why, "%s", m->errtext);
			m->errtext[0] = 0;
			rc = 0;
		}
	} else if (rc != 0) {
		rc = veil_msgr_fail(m, rc, "cannot read the contacts: %s", veil_strerror(rc));
	}
	if (rc != 0)
		return rc;
	*idx = b->npeers++;
	return 0;
}

/* Queues message msg for every ID in ids. */
static int add_jobs(struct veil_msgr *m, struct batch *b, size_t msg,
                    const uint8_t (*ids)[VEIL_ID_LEN], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t p = 0;
		int rc;
		if (memcmp(ids[i], m->prof.id, VEIL_ID_LEN) == 0)
			continue;
		if ((rc = add_peer(m, b, ids[i], &p)) != 0)
			return rc;
		if (b->njobs >= JOBS_MAX)
			return veil_msgr_fail(m, VEIL_ELIMIT, "too many messages");
		b->jobs[b->njobs++] = (struct job){
		    .peer = p, .msg = msg, .state = b->pf[p].failed ? JOB_FAILED : JOB_NEW};
	}
	return 0;
}

static size_t add_msg(struct batch *b, uint8_t type, uint8_t flags, const struct veil_buf *body)
{
	b->msgs[b->nmsgs] = (struct out_msg){.type = type,
	                                     .flags = flags,
	                                     .id = veil_random_u64(),
	                                     .body = body->p,
	                                     .len = body->len};
	return b->nmsgs++;
}

/* Handles one payload that arrived while we send: acks and refusals. */
static void on_payload(struct veil_msgr *m, struct veil_conn *c, struct batch *b, uint8_t type,
                       const uint8_t *data, size_t n, size_t *outstanding)
{
	if (type == VEIL_CSP_OUTGOING_ACK) {
		uint8_t to[VEIL_ID_LEN];
		uint64_t id;
		if (veil_csp_ack_parse(data, n, to, &id) != 0)
			return;
		for (size_t i = 0; i < b->njobs; i++) {
			struct job *j = &b->jobs[i];
			if (j->state == JOB_SENT && b->msgs[j->msg].id == id &&
			    memcmp(b->peers[j->peer].id, to, VEIL_ID_LEN) == 0) {
				j->state = JOB_ACKED;
				(*outstanding)--;
				return;
			}
		}
	} else if (type == VEIL_CSP_ALERT) {
		char t[VEIL_CONN_ERRTEXT_MAX];
		size_t k = n < sizeof t - 1 ? n : sizeof t - 1;
		if (!veil_utf8_valid(data, k))
			return;
		memcpy(t, data, k);
		t[k] = 0;
		/*
		 * As in a 1:1 send, the server names the receiver of a message it
		 * will not deliver in an alert: those copies count as refused.
		 */
		for (size_t i = 0; i < b->njobs; i++) {
			struct job *j = &b->jobs[i];
			char ids[VEIL_ID_LEN + 1];
			veil_id_str(ids, b->peers[j->peer].id);
			if (j->state == JOB_SENT && strstr(t, ids) != NULL) {
				struct peer_fail *f = &b->pf[j->peer];
				j->state = JOB_REFUSED;
				(*outstanding)--;
				f->failed = 1;
				/* veild's words for an ID it does not know (or no longer: revoked). */
				f->unreachable = strstr(t, "unknown identity") != NULL;
				snprintf(f->why, sizeof f->why,
				         "the server refused the message: %s", t);
			}
		}
		return;
	}
	/*
	 * Without a session incoming messages stay queued for `veil recv`: we do
	 * not ack them. With one they are received here (a failure that closes
	 * the connection shows at the next read).
	 */
	(void)veil_msgr_session_payload_int(m, c, type, data, n);
}

/*
 * Through the mediator, the other devices of this identity get each message
 * of the batch first (a d2d.OutgoingMessage in the group's conversation):
 * the group's new state (setup, name, a leave) and what is said in it.
 */
static int reflect_batch(struct veil_msgr *m, struct veil_conn *c, const struct batch *b)
{
	for (size_t i = 0; i < b->nmsgs; i++) {
		const struct out_msg *o = &b->msgs[i];
		struct veil_d2d_msg d;
		const uint8_t *inner;
		size_t inner_len;
		if (o->private_copy)
			continue;
		memset(&d, 0, sizeof d);
		d.kind = VEIL_D2D_OUTGOING;
		d.group = 1;
		int kind = veil_e2e_group_container(o->type);
		if (kind == VEIL_GROUP_CONTAINER_CREATOR) {
			memcpy(d.group_creator, m->prof.id, VEIL_ID_LEN);
			if (veil_e2e_group_creator_unwrap(o->body, o->len, &d.group_id, &inner,
			                                  &inner_len) != 0)
				continue;
		} else if (kind != VEIL_GROUP_CONTAINER_MEMBER ||
		           veil_e2e_group_member_unwrap(o->body, o->len, d.group_creator,
		                                        &d.group_id, &inner, &inner_len) != 0) {
			continue;
		}
		memcpy(d.peer, m->prof.id, VEIL_ID_LEN);
		d.msg_id = o->id;
		d.created_ms = b->created_ms;
		d.type = o->type;
		d.body = o->body;
		d.body_len = o->len;
		int rc = veil_msgr_md_reflect_int(m, c, &d, 1);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/*
 * Sends every job and waits for the server's acks, reconnecting after a
 * drop (unacked copies are sealed again: new nonce, same message ID).
 */
static int deliver(struct veil_msgr *m, struct batch *b)
{
	struct veil_conn *c = NULL;
	struct veil_buf box;
	struct veil_backoff bo;
	uint8_t *rx = NULL;
	size_t outstanding = 0;
	int rc;

	if (b->njobs == 0)
		return 0;
	veil_buf_init(&box, VEIL_MSGBOX_MAX);
	/* A session's connection is borrowed (and left open), never a second login. */
	struct veil_conn *shared = veil_msgr_session_conn_int(m);
	c = shared != NULL ? shared : malloc(sizeof *c);
	rx = malloc(VEIL_CONN_MAX_DATA);
	if (c == NULL || rx == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	if (shared == NULL)
		c->fd = -1;
	veil_backoff_init(&bo, VEIL_BACKOFF_BASE_MS, VEIL_BACKOFF_MAX_MS);
	uint64_t deadline = veil_mono_ms() + (uint64_t)m->send_timeout_ms;
	if (!veil_conn_is_open(c) && (rc = veil_msgr_conn_open_int(m, c)) != 0)
		goto out;
	int reflected = 0;
	for (;;) {
		uint8_t type;
		size_t n;
		rc = 0;
		if (c->md != NULL && !reflected && (rc = reflect_batch(m, c, b)) == 0)
			reflected = 1;
		for (size_t i = 0; i < b->njobs && rc == 0; i++) {
			struct job *j = &b->jobs[i];
			const struct out_msg *o = &b->msgs[j->msg];
			struct veil_e2e_out eo;
			if (j->state != JOB_NEW)
				continue;
			memset(&eo, 0, sizeof eo);
			memcpy(eo.sender, m->prof.id, VEIL_ID_LEN);
			memcpy(eo.receiver, b->peers[j->peer].id, VEIL_ID_LEN);
			eo.msg_id = o->id;
			eo.created_at_ms = b->created_ms;
			eo.flags = o->flags;
			eo.nickname = m->prof.nickname[0] &&
			                      veil_e2e_distributes_profile(o->type, o->body, o->len)
			                  ? m->prof.nickname
			                  : NULL;
			eo.type = o->type;
			veil_buf_reset(&box);
			if ((rc = veil_e2e_seal(&box, &eo, m->prof.sk, b->peers[j->peer].pk,
			                        o->body, o->len)) != 0) {
				rc = veil_msgr_fail(m, rc, "cannot encrypt the message: %s",
				                    veil_strerror(rc));
				goto out;
			}
			rc = veil_conn_send_payload(c, VEIL_CSP_OUTGOING_MESSAGE, box.p, box.len);
			if (rc != 0)
				break;
			j->state = JOB_SENT;
			outstanding++;
			/* Read what already came back, so that neither side's buffers fill up. */
			while (rc == 0 && (rc = veil_conn_recv_payload(c, 0, &type, rx, &n)) == 0)
				on_payload(m, c, b, type, rx, n, &outstanding);
			if (rc == VEIL_ETIMEOUT)
				rc = 0;
		}
		while (rc == 0 && outstanding > 0) {
			uint64_t l = veil_msgr_left_ms(deadline);
			if (l == 0) {
				rc = VEIL_ETIMEOUT;
				break;
			}
			if ((rc = veil_conn_recv_payload(c, (int)l, &type, rx, &n)) == 0)
				on_payload(m, c, b, type, rx, n, &outstanding);
		}
		if (rc == 0)
			break;
		if (rc == VEIL_ETIMEOUT) {
			rc = veil_msgr_fail(m, rc,
			                    "the server did not acknowledge %zu of %zu messages in "
			                    "time",
			                    outstanding, b->njobs);
			goto out;
		}
		if (rc == VEIL_ECLOSED && c->close_error && !c->can_reconnect) {
			rc = veil_msgr_fail(m, rc, "server closed the connection: %s", c->errtext);
			goto out;
		}
		veil_conn_close(c);
		for (size_t i = 0; i < b->njobs; i++)
			if (b->jobs[i].state == JOB_SENT)
				b->jobs[i].state = JOB_NEW;
		outstanding = 0;
		for (;;) {
			uint64_t d = veil_backoff_next(&bo);
			if (veil_msgr_left_ms(deadline) <= d) {
				rc = veil_msgr_fail(m, VEIL_ETIMEOUT,
				                    "lost the connection to %s:%u and could not "
				                    "reconnect in time",
				                    veil_profile_chat_host(&m->prof),
				                    veil_profile_chat_port(&m->prof));
				goto out;
			}
			veil_msgr_sleep_ms(d);
			rc = veil_msgr_conn_open_int(m, c);
			if (rc == 0)
				break;
			if (rc == VEIL_ECRYPTO || rc == VEIL_EAUTH)
				goto out;
		}
	}
	rc = 0;
out:
	if (c != NULL && shared == NULL) {
		veil_conn_close(c);
		free(c);
	}
	free(rx);
	veil_buf_release(&box);
	return rc;
}

/*
 * Delivers the batch, then reports every receiver that got nothing (or not
 * everything) through receiver_fail_fn. Returns deliver's error, else
 * VEIL_EPARTIAL if a receiver that may be reachable missed out, else 0.
 */
static int deliver_report(struct veil_msgr *m, struct batch *b)
{
	int rc = deliver(m, b);
	size_t missed = 0, unreachable = 0;
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < b->npeers; i++) {
		const struct peer_fail *f = &b->pf[i];
		if (!f->failed)
			continue;
		if (f->unreachable)
			unreachable++;
		else
			missed++;
		if (m->receiver_fail_fn != NULL)
			m->receiver_fail_fn(b->peers[i].id, f->unreachable, f->why,
			                    m->receiver_fail_ctx);
	}
	if (missed > 0)
		return veil_msgr_fail(m, VEIL_EPARTIAL,
		                      "%zu of %zu receivers did not get the message (the others "
		                      "did: do not send it again)",
		                      missed + unreachable, b->npeers);
	return 0;
}

/* Looks up the IDs being added: each must be found, or the operation fails. */
static int lookup_new(struct veil_msgr *m, struct batch *b, const uint8_t (*ids)[VEIL_ID_LEN],
                      size_t n)
{
	int rc = 0;
	b->strict = 1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t p;
		if (memcmp(ids[i], m->prof.id, VEIL_ID_LEN) != 0)
			rc = add_peer(m, b, ids[i], &p);
	}
	b->strict = 0;
	return rc;
}

/* --- operations --- */

static int is_me(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN])
{
	return memcmp(m->prof.id, id, VEIL_ID_LEN) == 0;
}

static void gid_hex(char out[static 17], uint64_t gid)
{
	uint8_t b[8];
	veil_store_u64le(b, gid);
	if (veil_hex_encode(out, 17, b, 8) != 0)
		out[0] = 0;
}

/* Loads a group for an operation; VEIL_ENOTFOUND and "left" become errtext. */
static int load(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN], uint64_t gid,
                struct veil_group *g, int need_creator)
{
	char gh[17];
	gid_hex(gh, gid);
	int rc = veil_profile_group_get(&m->prof, creator, gid, g);
	if (rc == VEIL_ENOTFOUND)
		return veil_msgr_fail(m, rc, "unknown group %s", gh);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot read the groups: %s", veil_strerror(rc));
	if (g->left)
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      is_me(m, creator) ? "group %s was disbanded"
		                                        : "you are no longer a member of group %s",
		                      gh);
	if (need_creator && !is_me(m, creator))
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "only the group's creator can change group %s", gh);
	return 0;
}

static int check_name(struct veil_msgr *m, const char *name)
{
	size_t n = strlen(name);
	if (n > VEIL_GROUP_NAME_MAX || !veil_utf8_valid((const uint8_t *)name, n))
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "the group name must be UTF-8 of at most %d bytes",
		                      VEIL_GROUP_NAME_MAX);
	return 0;
}

/* Checks a list of IDs to add: valid, not us, no duplicates, not in g. */
static int check_new(struct veil_msgr *m, const struct veil_group *g,
                     const uint8_t (*ids)[VEIL_ID_LEN], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char s[VEIL_ID_LEN + 1];
		veil_id_str(s, ids[i]);
		if (!veil_id_valid(ids[i]))
			return veil_msgr_fail(m, VEIL_EINVAL, "invalid ID");
		if (is_me(m, ids[i]))
			return veil_msgr_fail(
			    m, VEIL_EINVAL, "%s is your own ID: the creator is always a member", s);
		for (size_t k = 0; k < i; k++)
			if (memcmp(ids[k], ids[i], VEIL_ID_LEN) == 0)
				return veil_msgr_fail(m, VEIL_EINVAL, "%s is listed twice", s);
		if (g != NULL && veil_group_has(g, ids[i]))
			return veil_msgr_fail(m, VEIL_EEXIST, "%s is already a member", s);
	}
	return 0;
}

/* Queues setup (the members) and name for every member of g. */
static int queue_state(struct veil_msgr *m, struct batch *b, const struct veil_group *g,
                       struct veil_buf *setup, struct veil_buf *name)
{
	struct veil_buf inner;
	int rc;
	veil_buf_init(&inner, VEIL_E2E_BODY_MAX);
	if ((rc = veil_e2e_group_setup_encode(&inner, (const uint8_t(*)[VEIL_ID_LEN])g->members,
	                                      g->n_members)) != 0 ||
	    (rc = veil_e2e_group_creator_wrap(setup, g->gid, inner.p, inner.len)) != 0)
		goto out;
	veil_buf_reset(&inner);
	if ((rc = veil_e2e_group_name_encode(&inner, g->name, strlen(g->name))) != 0 ||
	    (rc = veil_e2e_group_creator_wrap(name, g->gid, inner.p, inner.len)) != 0)
		goto out;
	size_t ms = add_msg(b, VEIL_E2E_GROUP_SETUP, 0, setup);
	size_t mn = add_msg(b, VEIL_E2E_GROUP_NAME, 0, name);
	if ((rc = add_jobs(m, b, ms, (const uint8_t(*)[VEIL_ID_LEN])g->members, g->n_members)) !=
	        0 ||
	    (rc = add_jobs(m, b, mn, (const uint8_t(*)[VEIL_ID_LEN])g->members, g->n_members)) != 0)
		goto out_quiet;
out:
	if (rc != 0)
		veil_msgr_fail(m, rc, "cannot encode the group's state: %s", veil_strerror(rc));
out_quiet:
	veil_buf_release(&inner);
	return rc;
}

int veil_msgr_group_create(struct veil_msgr *m, const char *name,
                           const uint8_t (*members)[VEIL_ID_LEN], size_t n, struct veil_group *out)
{
	struct veil_buf setup, nm;
	struct batch b;
	int rc;
	memset(out, 0, sizeof *out);
	if (n > VEIL_GROUP_MAX_MEMBERS - 1)
		return veil_msgr_fail(m, VEIL_ELIMIT,
		                      "too many members: a group has at most %d, its creator "
		                      "included",
		                      VEIL_GROUP_MAX_MEMBERS);
	if ((rc = check_name(m, name)) != 0 || (rc = check_new(m, NULL, members, n)) != 0)
		return rc;
	if ((rc = batch_init(m, &b)) != 0)
		return rc;
	veil_buf_init(&setup, VEIL_E2E_BODY_MAX);
	veil_buf_init(&nm, VEIL_E2E_BODY_MAX);
	memcpy(out->creator, m->prof.id, VEIL_ID_LEN);
	out->gid = veil_random_u64();
	snprintf(out->name, sizeof out->name, "%s", name);
	out->created_ms = b.created_ms;
	if (n > 0) /* members may be NULL for a group with nobody else yet */
		memcpy(out->members, members, n * VEIL_ID_LEN);
	out->n_members = n;
	/* Look every member up before anything is stored or sent. */
	if ((rc = lookup_new(m, &b, members, n)) != 0 ||
	    (rc = queue_state(m, &b, out, &setup, &nm)) != 0 ||
	    (rc = veil_msgr_md_sync_group_int(m, out, 1)) != 0)
		goto out;
	if ((rc = veil_profile_group_put(&m->prof, out)) != 0) {
		veil_msgr_fail(m, rc, "cannot store the group: %s", veil_strerror(rc));
		goto out;
	}
	rc = deliver_report(m, &b);
out:
	veil_buf_release(&setup);
	veil_buf_release(&nm);
	batch_free(&b);
	return rc;
}

int veil_msgr_group_update(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, const uint8_t (*add)[VEIL_ID_LEN], size_t n_add,
                           const uint8_t (*remove)[VEIL_ID_LEN], size_t n_remove)
{
	struct veil_group *g = malloc(sizeof *g);
	uint8_t(*gone)[VEIL_ID_LEN] = malloc(VEIL_GROUP_MAX_MEMBERS * VEIL_ID_LEN);
	struct veil_buf setup, nm, empty;
	struct batch b;
	size_t n_gone = 0;
	int rc;

	veil_buf_init(&setup, VEIL_E2E_BODY_MAX);
	veil_buf_init(&nm, VEIL_E2E_BODY_MAX);
	veil_buf_init(&empty, VEIL_E2E_BODY_MAX);
	memset(&b, 0, sizeof b);
	if (g == NULL || gone == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = load(m, creator, gid, g, 1)) != 0 || (rc = check_new(m, g, add, n_add)) != 0)
		goto out;
	for (size_t i = 0; i < n_remove; i++) {
		char s[VEIL_ID_LEN + 1];
		size_t k;
		veil_id_str(s, remove[i]);
		for (k = 0; k < g->n_members; k++)
			if (memcmp(g->members[k], remove[i], VEIL_ID_LEN) == 0)
				break;
		if (k == g->n_members) {
			rc = veil_msgr_fail(m, VEIL_ENOTFOUND, "%s is not a member", s);
			goto out;
		}
		memcpy(gone[n_gone++], remove[i], VEIL_ID_LEN);
		memmove(g->members[k], g->members[k + 1], (g->n_members - k - 1) * VEIL_ID_LEN);
		g->n_members--;
	}
	if (g->n_members + n_add > VEIL_GROUP_MAX_MEMBERS - 1) {
		rc =
		    veil_msgr_fail(m, VEIL_ELIMIT,
		                   "too many members: a group has at most %d, its creator included",
		                   VEIL_GROUP_MAX_MEMBERS);
		goto out;
	}
	if (n_add > 0)
		memcpy(g->members[g->n_members], add, n_add * VEIL_ID_LEN);
	g->n_members += n_add;
	if ((rc = batch_init(m, &b)) != 0 || (rc = lookup_new(m, &b, add, n_add)) != 0)
		goto out;
	/* The removed learn it from an empty setup; the rest get the new state. */
	if (n_gone > 0) {
		if ((rc = veil_e2e_group_creator_wrap(&empty, gid, NULL, 0)) != 0) {
			veil_msgr_fail(m, rc, "cannot encode the group setup");
			goto out;
		}
		size_t me = add_msg(&b, VEIL_E2E_GROUP_SETUP, 0, &empty);
		b.msgs[me].private_copy = 1;
		if ((rc = add_jobs(m, &b, me, (const uint8_t(*)[VEIL_ID_LEN])gone, n_gone)) != 0)
			goto out;
	}
	if ((rc = queue_state(m, &b, g, &setup, &nm)) != 0 ||
	    (rc = veil_msgr_md_sync_group_int(m, g, 0)) != 0)
		goto out;
	if ((rc = veil_profile_group_put(&m->prof, g)) != 0) {
		veil_msgr_fail(m, rc, "cannot store the group: %s", veil_strerror(rc));
		goto out;
	}
	rc = deliver_report(m, &b);
out:
	veil_buf_release(&setup);
	veil_buf_release(&nm);
	veil_buf_release(&empty);
	batch_free(&b);
	free(gone);
	free(g);
	return rc;
}

int veil_msgr_group_rename(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, const char *name)
{
	struct veil_group *g = malloc(sizeof *g);
	struct veil_buf inner, body;
	struct batch b;
	int rc;
	veil_buf_init(&inner, VEIL_E2E_BODY_MAX);
	veil_buf_init(&body, VEIL_E2E_BODY_MAX);
	memset(&b, 0, sizeof b);
	if (g == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = check_name(m, name)) != 0 || (rc = load(m, creator, gid, g, 1)) != 0 ||
	    (rc = batch_init(m, &b)) != 0)
		goto out;
	snprintf(g->name, sizeof g->name, "%s", name);
	if ((rc = veil_e2e_group_name_encode(&inner, name, strlen(name))) != 0 ||
	    (rc = veil_e2e_group_creator_wrap(&body, gid, inner.p, inner.len)) != 0) {
		veil_msgr_fail(m, rc, "cannot encode the group name: %s", veil_strerror(rc));
		goto out;
	}
	size_t k = add_msg(&b, VEIL_E2E_GROUP_NAME, 0, &body);
	if ((rc = add_jobs(m, &b, k, (const uint8_t(*)[VEIL_ID_LEN])g->members, g->n_members)) !=
	        0 ||
	    (rc = veil_msgr_md_sync_group_int(m, g, 0)) != 0)
		goto out;
	if ((rc = veil_profile_group_put(&m->prof, g)) != 0) {
		veil_msgr_fail(m, rc, "cannot store the group: %s", veil_strerror(rc));
		goto out;
	}
	rc = deliver_report(m, &b);
out:
	veil_buf_release(&inner);
	veil_buf_release(&body);
	batch_free(&b);
	free(g);
	return rc;
}

int veil_msgr_group_leave(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                          uint64_t gid)
{
	struct veil_group *g = malloc(sizeof *g);
	struct veil_buf body;
	struct batch b;
	int rc;
	veil_buf_init(&body, VEIL_E2E_BODY_MAX);
	memset(&b, 0, sizeof b);
	if (g == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = load(m, creator, gid, g, 0)) != 0 || (rc = batch_init(m, &b)) != 0)
		goto out;
	size_t k;
	if (is_me(m, creator)) {
		/* The creator cannot leave: it disbands the group with an empty setup. */
		rc = veil_e2e_group_creator_wrap(&body, gid, NULL, 0);
		k = add_msg(&b, VEIL_E2E_GROUP_SETUP, 0, &body);
	} else {
		rc = veil_e2e_group_member_wrap(&body, creator, gid, NULL, 0);
		k = add_msg(&b, VEIL_E2E_GROUP_LEAVE, 0, &body);
	}
	if (rc != 0) {
		veil_msgr_fail(m, rc, "cannot encode the message: %s", veil_strerror(rc));
		goto out;
	}
	if ((rc = add_jobs(m, &b, k, (const uint8_t(*)[VEIL_ID_LEN])g->members, g->n_members)) !=
	        0 ||
	    (!is_me(m, creator) &&
	     (rc = add_jobs(m, &b, k, (const uint8_t(*)[VEIL_ID_LEN])g->creator, 1)) != 0))
		goto out;
	g->left = 1;
	if ((rc = veil_msgr_md_sync_group_int(m, g, 0)) != 0)
		goto out;
	if ((rc = veil_profile_group_put(&m->prof, g)) != 0) {
		veil_msgr_fail(m, rc, "cannot store the group: %s", veil_strerror(rc));
		goto out;
	}
	rc = deliver_report(m, &b);
out:
	veil_buf_release(&body);
	batch_free(&b);
	free(g);
	return rc;
}

int veil_msgr_group_send_body(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid, uint8_t type, uint8_t flags, const uint8_t *inner,
                              size_t len, uint64_t *msg_id)
{
	struct veil_group *g = malloc(sizeof *g);
	struct veil_buf body;
	struct batch b;
	int rc;
	*msg_id = 0;
	veil_buf_init(&body, VEIL_E2E_BODY_MAX);
	memset(&b, 0, sizeof b);
	if (g == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	if (veil_e2e_group_container(type) != VEIL_GROUP_CONTAINER_MEMBER) {
		rc = veil_msgr_fail(m, VEIL_EINVAL, "type 0x%02x is not a group member message",
		                    type);
		goto out;
	}
	if ((rc = load(m, creator, gid, g, 0)) != 0 || (rc = batch_init(m, &b)) != 0)
		goto out;
	if ((rc = veil_e2e_group_member_wrap(&body, creator, gid, inner, len)) != 0) {
		veil_msgr_fail(
		    m, rc, rc == VEIL_ELIMIT ? "message too long" : "cannot encode the message");
		goto out;
	}
	size_t k = add_msg(&b, type, flags, &body);
	/* Every member and the creator, except ourselves (add_jobs skips us). */
	if ((rc = add_jobs(m, &b, k, (const uint8_t(*)[VEIL_ID_LEN])g->members, g->n_members)) !=
	        0 ||
	    (rc = add_jobs(m, &b, k, (const uint8_t(*)[VEIL_ID_LEN])g->creator, 1)) != 0)
		goto out;
	rc = deliver_report(m, &b);
	if (rc != 0 && rc != VEIL_EPARTIAL)
		goto out;
	*msg_id = b.msgs[k].id;
	if (type != VEIL_E2E_GROUP_DELIVERY_RECEIPT) {
		/* Our own group messages are logged once, with our own ID as the peer. */
		struct veil_log_entry e = {.dir = VEIL_LOG_OUT,
		                           .msg_id = *msg_id,
		                           .date_ms = b.created_ms,
		                           .type = type,
		                           .body = body.p,
		                           .body_len = body.len};
		memcpy(e.peer, m->prof.id, VEIL_ID_LEN);
		if (veil_profile_log_add(&m->prof, &e, NULL) != 0)
			veil_log_debug("client: sent group message not logged");
	}
out:
	veil_buf_release(&body);
	batch_free(&b);
	free(g);
	return rc;
}

int veil_msgr_group_send_text(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid, const char *text, size_t len, uint64_t *msg_id)
{
	struct veil_buf t;
	int rc;
	*msg_id = 0;
	if (len == 0)
		return veil_msgr_fail(m, VEIL_EINVAL, "empty message");
	if (len > VEIL_E2E_TEXT_MAX)
		return veil_msgr_fail(m, VEIL_ELIMIT, "message too long (%zu bytes, at most %d)",
		                      len, VEIL_E2E_TEXT_MAX);
	veil_buf_init_secret(&t, VEIL_E2E_TEXT_MAX);
	if ((rc = veil_e2e_text_encode(&t, text, len)) != 0)
		rc = veil_msgr_fail(m, rc, "the message is not valid UTF-8 text");
	else
		rc = veil_msgr_group_send_body(m, creator, gid, VEIL_E2E_GROUP_TEXT,
		                               VEIL_MSG_FLAG_PUSH, t.p, t.len, msg_id);
	veil_buf_release(&t);
	return rc;
}

int veil_msgr_group_send_receipt(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                                 uint64_t gid, uint8_t status, const uint64_t *ids, size_t n)
{
	struct veil_buf r;
	uint64_t id;
	int rc;
	if (status != VEIL_RECEIPT_ACK && status != VEIL_RECEIPT_DECLINE)
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "group receipts are acknowledge or decline only");
	veil_buf_init(&r, 1 + 8 * VEIL_E2E_RECEIPT_MAX_IDS);
	if ((rc = veil_e2e_receipt_encode(&r, status, ids, n)) != 0)
		rc = veil_msgr_fail(m, rc, "cannot encode the receipt: %s", veil_strerror(rc));
	else
		rc = veil_msgr_group_send_body(m, creator, gid, VEIL_E2E_GROUP_DELIVERY_RECEIPT, 0,
		                               r.p, r.len, &id);
	veil_buf_release(&r);
	return rc;
}

int veil_msgr_group_send_file(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid, const char *path, const struct veil_file_opts *o,
                              uint64_t *msg_id)
{
	struct veil_group *g = malloc(sizeof *g);
	struct veil_file_opts opts;
	struct veil_buf json;
	int rc;
	*msg_id = 0;
	/* The file message carries the blob key: secret memory, wiped on release. */
	veil_buf_init_secret(&json, VEIL_E2E_BODY_MAX);
	if (g == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	/* No upload for a group we cannot send to. */
	if ((rc = load(m, creator, gid, g, 0)) != 0)
		goto out;
	memset(&opts, 0, sizeof opts);
	if (o != NULL)
		opts = *o;
	/* Every member downloads the same blob: it must outlive the first download. */
	opts.persist = 1;
	if ((rc = veil_msgr_file_upload(m, path, &opts, &json)) != 0)
		goto out;
	rc = veil_msgr_group_send_body(m, creator, gid, VEIL_E2E_GROUP_FILE, VEIL_MSG_FLAG_PUSH,
	                               json.p, json.len, msg_id);
out:
	veil_buf_release(&json);
	free(g);
	return rc;
}
