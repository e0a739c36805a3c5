/*
 * What the mediator delivers to a receiving device (recv, daemon): the
 * envelopes other devices of the group reflected, opened and applied to
 * this device's profile (messages logged and shown, groups and contacts
 * updated), the queue-dry notice, and the promotion to leader, after which
 * the device asks the chat service for incoming messages.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/client.h"
#include "veil/e2e.h"

#include "group_int.h"
#include "md_int.h"
#include "recv_int.h"

/*
 * Logs a reflected message with dir and peer: 0 when stored now, 1 when it
 * was there already (a leader that reflected it twice: shown once), or the
 * storage error (errtext set).
 */
static int log_d2d(struct veil_msgr *m, int dir, const uint8_t peer[static VEIL_ID_LEN],
                   const struct veil_d2d_msg *d, int status, const uint8_t *nonce)
{
	struct veil_log_entry e = {.dir = dir,
	                           .msg_id = d->msg_id,
	                           .date_ms = d->created_ms,
	                           .type = d->type,
	                           .body = d->body,
	                           .body_len = d->body_len,
	                           .status = status};
	memcpy(e.peer, peer, VEIL_ID_LEN);
	int rc = veil_profile_log_add(&m->prof, &e, nonce);
	if (rc == VEIL_EEXIST || rc == VEIL_EREPLAY)
		return 1;
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot store a message: %s", veil_strerror(rc));
	return 0;
}

/* Group replies are the leader's: a device that learns of a message by reflection sends none. */
static int no_reply(void *ctx, const uint8_t to[static VEIL_ID_LEN], uint8_t type, uint8_t flags,
                    const uint8_t *body, size_t len)
{
	(void)ctx;
	(void)to;
	(void)type;
	(void)flags;
	(void)body;
	(void)len;
	return 0;
}

/*
 * A group message another device of ours sent: the group's new state
 * (setup, name, our leave) is applied; what was said is logged (with our
 * own ID as the peer, as the sending device logs it) and shown.
 */
static int md_apply_group_out(struct recv_state *s, const struct veil_d2d_msg *d)
{
	struct veil_msgr *m = s->m;
	struct veil_group *g = calloc(1, sizeof *g);
	const uint8_t *inner = NULL;
	size_t inner_len = 0;
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	int rc = 0, known;
	if (g == NULL)
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	int kind = veil_e2e_group_container(d->type);
	if (kind == VEIL_GROUP_CONTAINER_CREATOR) {
		memcpy(creator, m->prof.id, VEIL_ID_LEN);
		if (veil_e2e_group_creator_unwrap(d->body, d->body_len, &gid, &inner, &inner_len) !=
		    0)
			goto out;
	} else if (kind != VEIL_GROUP_CONTAINER_MEMBER ||
	           veil_e2e_group_member_unwrap(d->body, d->body_len, creator, &gid, &inner,
	                                        &inner_len) != 0) {
		goto out;
	}
	known = veil_profile_group_get(&m->prof, creator, gid, g) == 0;
	if (!known) {
		memset(g, 0, sizeof *g);
		memcpy(g->creator, creator, VEIL_ID_LEN);
		g->gid = gid;
		g->created_ms = d->created_ms;
	}
	switch (d->type) {
	case VEIL_E2E_GROUP_SETUP: {
		size_t n = 0;
		uint8_t(*mem)[VEIL_ID_LEN] = malloc(VEIL_GROUP_MAX_MEMBERS * VEIL_ID_LEN);
		if (mem == NULL) {
			rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
			goto out;
		}
		if (veil_e2e_group_setup_decode(inner, inner_len, mem, VEIL_GROUP_MAX_MEMBERS,
		                                &n) != 0) {
			free(mem);
			goto out;
		}
		/* The creator's list without the creator (us). */
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (memcmp(mem[i], m->prof.id, VEIL_ID_LEN) != 0)
				memmove(mem[k++], mem[i], VEIL_ID_LEN);
		/*
		 * An empty setup: we disbanded it (the sending device keeps the
		 * last members, as the specification's left state does); one that
		 * went to removed members only (the others get the full one) is
		 * not reflected.
		 */
		g->left = k == 0;
		if (k > 0 || !known) {
			memcpy(g->members, mem, k * VEIL_ID_LEN);
			g->n_members = k;
		}
		free(mem);
		break;
	}
	case VEIL_E2E_GROUP_NAME: {
		const char *name;
		size_t nl;
		if (veil_e2e_group_name_decode(inner, inner_len, &name, &nl) != 0)
			goto out;
		snprintf(g->name, sizeof g->name, "%.*s", (int)nl, name);
		break;
	}
	case VEIL_E2E_GROUP_LEAVE: g->left = 1; break;
	default: {
		if (d->type == VEIL_E2E_GROUP_DELIVERY_RECEIPT ||
		    d->type == VEIL_E2E_GROUP_SYNC_REQUEST)
			goto out;
		struct veil_msgr_event ev;
		if ((rc = log_d2d(m, VEIL_LOG_OUT, m->prof.id, d, 0, NULL)) != 0) {
			rc = rc > 0 ? 0 : rc;
			goto out;
		}
		memset(&ev, 0, sizeof ev);
		ev.kind = VEIL_MSGR_EV_MESSAGE;
		ev.other_device = 1;
		ev.outgoing = 1;
		ev.group = 1;
		memcpy(ev.from, m->prof.id, VEIL_ID_LEN);
		memcpy(ev.to, m->prof.id, VEIL_ID_LEN);
		memcpy(ev.group_creator, creator, VEIL_ID_LEN);
		ev.group_id = gid;
		ev.group_name = g->name;
		ev.msg_id = d->msg_id;
		ev.date_ms = d->created_ms;
		ev.type = d->type;
		ev.body = inner;
		ev.body_len = inner_len;
		if (d->type == VEIL_E2E_GROUP_TEXT &&
		    veil_e2e_text_decode(inner, inner_len, &ev.text, &ev.text_len) != 0)
			ev.text = NULL;
		veil_rx_emit(s, &ev);
		goto out;
	}
	}
	if ((rc = veil_profile_group_put(&m->prof, g)) != 0)
		rc = veil_msgr_fail(m, rc, "cannot store the group: %s", veil_strerror(rc));
out:
	free(g);
	return rc;
}

/* Applies one reflected envelope from another device; 0 or a storage error. */
static int md_apply(struct recv_state *s, const struct veil_d2d_msg *d)
{
	struct veil_msgr *m = s->m;
	struct veil_msgr_event ev;
	uint64_t ids[VEIL_E2E_RECEIPT_MAX_IDS_IN];
	size_t nids = 0;
	int rc;

	memset(&ev, 0, sizeof ev);
	ev.kind = VEIL_MSGR_EV_MESSAGE;
	ev.other_device = 1;
	ev.msg_id = d->msg_id;
	ev.date_ms = d->created_ms;
	ev.type = d->type;
	ev.body = d->body;
	ev.body_len = d->body_len;
	if (d->kind == VEIL_D2D_INCOMING && veil_e2e_group_container(d->type) != 0) {
		/*
		 * A group message the leader received: the group rules and state
		 * here too (the leader already answered what needed an answer).
		 */
		struct veil_group_io gio = {.send = no_reply, .ctx = s};
		struct veil_group_rx *grx = malloc(sizeof *grx);
		if (grx == NULL)
			return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		memcpy(ev.from, d->peer, VEIL_ID_LEN);
		rc = veil_group_receive(m, &gio, d->peer, d->type, d->body, d->body_len, &ev, grx);
		if (rc == VEIL_GROUP_RX_ACCEPT) {
			rc = log_d2d(m, VEIL_LOG_IN, d->peer, d, 0, d->nonce);
			if (rc == 0)
				veil_rx_emit(s, &ev);
			rc = rc > 0 ? 0 : rc;
		} else if (rc > 0) {
			rc = 0; /* dropped or ignored by the group rules, as on the leader */
		}
		free(grx);
		return rc;
	}
	if (d->kind == VEIL_D2D_OUTGOING && d->group)
		return md_apply_group_out(s, d);
	if (d->kind == VEIL_D2D_CONTACT)
		return veil_msgr_md_apply_contact_int(m, d);
	if (d->kind == VEIL_D2D_SETTINGS || d->kind == VEIL_D2D_PROFILE ||
	    d->kind == VEIL_D2D_GROUP || d->kind == VEIL_D2D_READ)
		return veil_msgr_md_apply_sync_int(m, d);
	if (d->kind == VEIL_D2D_INCOMING && !d->group) {
		int status = 0;
		memcpy(ev.from, d->peer, VEIL_ID_LEN);
		if (d->type == VEIL_E2E_TEXT &&
		    veil_e2e_text_decode(d->body, d->body_len, &ev.text, &ev.text_len) != 0)
			status = VEIL_LOG_RAW;
		if (d->type == VEIL_E2E_DELIVERY_RECEIPT) {
			if (veil_e2e_receipt_decode(d->body, d->body_len, &ev.status, ids,
			                            VEIL_ARRAY_LEN(ids), &nids) != 0)
				status = VEIL_LOG_RAW;
			ev.n_ids = nids;
			memcpy(ev.ids, ids,
			       (nids < VEIL_MSGR_EV_MAX_IDS ? nids : VEIL_MSGR_EV_MAX_IDS) * 8);
		}
		if ((rc = log_d2d(m, VEIL_LOG_IN, d->peer, d, status, d->nonce)) != 0)
			return rc > 0 ? 0 : rc;
		for (size_t i = 0; i < nids && status == 0; i++)
			if (veil_profile_log_set_status(&m->prof, d->peer, ids[i], ev.status) != 0)
				continue;
		struct veil_contact peer;
		if (veil_profile_contact_get(&m->prof, d->peer, &peer) == 0 && peer.nickname[0])
			ev.nickname = peer.nickname;
		veil_rx_emit(s, &ev);
		return 0;
	}
	if (d->kind == VEIL_D2D_OUTGOING && !d->group) {
		/* Our own nonces: a copy replayed to us later is refused. */
		for (size_t i = 0; i < d->n_nonces; i++) {
			rc = veil_profile_nonce_add(&m->prof, d->nonces[i]);
			if (rc != 0 && rc != VEIL_EREPLAY)
				return veil_msgr_fail(m, rc, "cannot store a nonce: %s",
				                      veil_strerror(rc));
		}
		if ((rc = log_d2d(m, VEIL_LOG_OUT, d->peer, d, 0, NULL)) != 0)
			return rc > 0 ? 0 : rc;
		uint8_t st;
		if (d->type == VEIL_E2E_DELIVERY_RECEIPT &&
		    veil_e2e_receipt_decode(d->body, d->body_len, &st, ids, VEIL_ARRAY_LEN(ids),
		                            &nids) == 0 &&
		    st == VEIL_RECEIPT_READ) {
			/* Read on the device that sent the receipt: read here too. */
			for (size_t i = 0; i < nids; i++) {
				rc = veil_profile_log_set_read(&m->prof, d->peer, ids[i]);
				if (rc != 0 && rc != VEIL_ENOTFOUND)
					return veil_msgr_fail(m, rc,
					                      "cannot store the read state: %s",
					                      veil_strerror(rc));
			}
		}
		ev.outgoing = 1;
		memcpy(ev.from, m->prof.id, VEIL_ID_LEN);
		memcpy(ev.to, d->peer, VEIL_ID_LEN);
		if (d->type == VEIL_E2E_TEXT &&
		    veil_e2e_text_decode(d->body, d->body_len, &ev.text, &ev.text_len) != 0)
			ev.text = NULL;
		veil_rx_emit(s, &ev);
		return 0;
	}
	/*
	 * Sent ticks change nothing here (the log has no "acknowledged by the
	 * server" state apart from "sent"): acked, not shown.
	 */
	return 0;
}

/* One reflected container: open, apply, then ack it (unless ephemeral). */
static int md_reflected(struct recv_state *s, const uint8_t *p, size_t n)
{
	struct veil_msgr *m = s->m;
	struct veil_md_reflect r;
	struct veil_d2d_msg d;
	struct veil_buf ack;
	void *env = NULL;
	uint8_t *plain = NULL;
	size_t plen = 0;
	int rc = 0;

	if (veil_md_reflected_parse(&r, p, n) != 0) {
		veil_rx_error(s, NULL, 0, VEIL_EPROTO,
		              "malformed reflected message from the mediator");
		return 0; /* no ID to ack it with: the mediator sends it again next time */
	}
	const struct veil_md_keys *k = veil_conn_md_keys(s->c);
	struct veil_md_envelope_info info;
	if ((plain = malloc(r.envelope_len + 1)) == NULL)
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	if (veil_md_envelope_open(plain, &plen, &info, k, r.envelope, r.envelope_len) != 0 ||
	    veil_d2d_decode(&env, &d, plain, plen) != 0) {
		veil_rx_error(s, NULL, 0, VEIL_ECRYPTO,
		              "a reflected message from another device cannot be read; dropped");
	} else if ((rc = veil_profile_nonce_seen(&m->prof, r.envelope)) == VEIL_EREPLAY) {
		/*
		 * The D2D nonce store: an envelope whose nonce this device has
		 * seen is a replay (a mediator that sends an old one again).
		 * Nonces are random, so they share the replay store with CSP's.
		 */
		rc = 0;
		veil_rx_error(
		    s, NULL, 0, VEIL_EREPLAY,
		    "a reflected message was replayed (its nonce was seen before); dropped");
	} else if (rc != 0) {
		rc = veil_msgr_fail(m, rc, "cannot read the replay store: %s", veil_strerror(rc));
	} else {
		if (d.device_id != m->prof.md_device_id)
			rc = md_apply(s, &d);
		int nr = rc == 0
		             ? veil_profile_nonce_add_scope(&m->prof, r.envelope, VEIL_NONCE_D2D)
		             : 0;
		if (nr != 0 && nr != VEIL_EREPLAY)
			rc = veil_msgr_fail(m, nr, "cannot store a nonce: %s", veil_strerror(nr));
	}
	veil_d2d_free(env);
	sodium_memzero(plain, plen);
	free(plain);
	if (rc != 0)
		return rc; /* not stored, so not acked: the mediator keeps it */
	if (r.flags & VEIL_MD_FLAG_EPHEMERAL)
		return 0;
	veil_buf_init(&ack, VEIL_MD_HDR_LEN + VEIL_MD_REFLECTED_ACK_LEN);
	if ((rc = veil_md_reflected_ack_encode(&ack, r.id)) == 0)
		rc = veil_conn_md_send(s->c, ack.p, ack.len);
	veil_buf_release(&ack);
	return rc;
}

/* Handles every D2M message waiting in the connection's inbox. */
int veil_rx_md_inbox(struct recv_state *s)
{
	uint8_t type, *p;
	size_t n;
	int rc = 0, leader = 0;
	while (rc == 0 && veil_conn_md_take(s->c, &type, &p, &n) == 0) {
		switch (type) {
		case VEIL_MD_REFLECTED: rc = md_reflected(s, p, n); break;
		case VEIL_MD_REFLECTION_QUEUE_DRY:
			s->md_dry = 1;
			s->md_dry_at = veil_mono_ms();
			break;
		default: break; /* answers nobody waits for any more, transaction notices */
		}
		free(p);
	}
	if (rc != 0)
		return rc;
	(void)veil_conn_md_state(s->c, NULL, &leader, NULL);
	if (leader && !s->md_unblocked) {
		/* Promoted: from now on the chat service delivers to this device. */
		if ((rc = veil_conn_send_payload(s->c, VEIL_CSP_UNBLOCK_INCOMING, NULL, 0)) != 0)
			return rc;
		s->md_unblocked = 1;
	}
	return 0;
}
