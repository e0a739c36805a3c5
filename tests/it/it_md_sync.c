/*
 * Multi-device sync on the client side, end to end on loopback through
 * veild's mediator: three devices of one identity (the first made a device
 * group, the others joined from its export) and a peer. Read states (with
 * read receipts on and off), the settings, the nickname and groups made
 * or changed on one device reach the others; a GroupSync from another
 * client's device (no group messages with it) is applied too.
 */
#include <pthread.h>

#include "harness.h"
#include "veil/client.h"

#include "../../lib/client/md_int.h"

static struct it_server srv;
static char tmp[256];

struct dev {
	struct veil_msgr m;
	char home[320];
};
static struct dev a1, a2, a3, a4, peer;

struct seen {
	int texts;
	int replays; /* error events for replayed reflections */
	char last[64];
	int read_receipts; /* receipt events of status read */
	uint64_t read_ids[8];
	size_t n_read_ids;
};

static int on_event(const struct veil_msgr_event *ev, void *ctx)
{
	struct seen *s = ctx;
	if (ev->kind == VEIL_MSGR_EV_ERROR && ev->err == VEIL_EREPLAY)
		s->replays++;
	if (ev->kind != VEIL_MSGR_EV_MESSAGE)
		return 0;
	if (ev->text != NULL)
		snprintf(s->last, sizeof s->last, "%.*s", (int)ev->text_len, ev->text);
	if (ev->text != NULL && !ev->outgoing)
		s->texts++; /* received ones: another device's sends are shown too */
	if (ev->type == VEIL_E2E_DELIVERY_RECEIPT && ev->status == VEIL_RECEIPT_READ) {
		s->read_receipts++;
		for (size_t i = 0; i < ev->n_ids && s->n_read_ids < 8; i++)
			s->read_ids[s->n_read_ids++] = ev->ids[i];
	}
	return 0;
}

static int recv_all(struct dev *d, struct seen *s)
{
	memset(s, 0, sizeof *s);
	int rc = veil_msgr_receive(&d->m, 0, on_event, s);
	if (rc != 0)
		fprintf(stderr, "receive on %s: %s\n", d->home, d->m.errtext);
	return rc;
}

static int send_text(struct dev *d, struct dev *to, const char *text, uint64_t *id)
{
	int rc = veil_msgr_send_text(&d->m, to->m.prof.id, text, strlen(text), id);
	if (rc != 0)
		fprintf(stderr, "send from %s: %s\n", d->home, d->m.errtext);
	return rc;
}

static int join(struct dev *d, const char *label)
{
	struct veil_md_join j;
	snprintf(d->home, sizeof d->home, "%s/%s", tmp, label);
	int rc = veil_msgr_md_export(&a1.m, &j);
	if (rc == 0) {
		struct veil_msgr_init_opts o = {.server_url = srv.http_url};
		rc = veil_msgr_join(&d->m, d->home, &o, &j, label);
	}
	veil_md_join_release(&j);
	if (rc != 0)
		fprintf(stderr, "join %s: %s\n", label, d->m.errtext);
	return rc;
}

/* The status of a logged message (dir, peer, ID), or -100 if it is not logged. */
struct find_st {
	int dir;
	uint64_t id;
	int status;
};
static int find_cb(const struct veil_log_entry *e, void *ctx)
{
	struct find_st *f = ctx;
	if (e->dir == f->dir && e->msg_id == f->id)
		f->status = e->status;
	return 0;
}
static int status_of(struct dev *d, int dir, const uint8_t peer_id[VEIL_ID_LEN], uint64_t id)
{
	struct find_st f = {.dir = dir, .id = id, .status = -100};
	if (veil_profile_log_list(&d->m.prof, peer_id, find_cb, &f) != 0)
		return -200;
	return f.status;
}

static int t_setup(void)
{
	struct seen s;
	struct veil_msgr_init_opts o = {.server_url = srv.http_url, .nickname = "Alice"};
	struct veil_msgr_init_opts op = {.server_url = srv.http_url, .nickname = "Peter"};
	snprintf(a1.home, sizeof a1.home, "%s/a1", tmp);
	snprintf(peer.home, sizeof peer.home, "%s/peer", tmp);
	IT_CHECK(veil_msgr_init(&a1.m, a1.home, &o) == 0);
	IT_CHECK(veil_msgr_init(&peer.m, peer.home, &op) == 0);
	IT_CHECK(veil_msgr_md_enable(&a1.m, "desktop") == 0);
	IT_CHECK(join(&a2, "phone") == 0);
	IT_CHECK(join(&a3, "laptop") == 0);
	IT_CHECK(recv_all(&a2, &s) == 0 && a2.m.prof.md_registered);
	IT_CHECK(recv_all(&a3, &s) == 0 && a3.m.prof.md_registered);
	/* The peer knows Alice (a contact), so that its receipts can be sent to it. */
	uint64_t id;
	IT_CHECK(send_text(&a1, &peer, "hello peter", &id) == 0);
	IT_CHECK(recv_all(&peer, &s) == 0 && s.texts == 1);
	return 0;
}

/*
 * Read on device 2 with read receipts on: the peer gets one read receipt
 * naming both messages; devices 1 and 3 mark them read (from the reflected
 * receipt) and send none of their own.
 */
static int t_read_with_receipts(void)
{
	struct seen s;
	uint64_t m1, m2;
	size_t n = 0;
	IT_CHECK(send_text(&peer, &a1, "read me 1", &m1) == 0);
	IT_CHECK(send_text(&peer, &a1, "read me 2", &m2) == 0);
	IT_CHECK(recv_all(&a1, &s) == 0 && s.texts == 2); /* leader */
	IT_CHECK(recv_all(&a2, &s) == 0 && s.texts == 2);
	IT_CHECK(recv_all(&a3, &s) == 0 && s.texts == 2);
	IT_CHECK(status_of(&a2, VEIL_LOG_IN, peer.m.prof.id, m1) == 0);
	IT_CHECK(veil_msgr_read_conversation(&a2.m, peer.m.prof.id, &n) == 0 && n == 2);
	IT_CHECK(status_of(&a2, VEIL_LOG_IN, peer.m.prof.id, m1) == VEIL_LOG_READ);
	IT_CHECK(status_of(&a2, VEIL_LOG_IN, peer.m.prof.id, m2) == VEIL_LOG_READ);
	/* Nothing left to read. */
	IT_CHECK(veil_msgr_read_conversation(&a2.m, peer.m.prof.id, &n) == 0 && n == 0);
	IT_CHECK(status_of(&a1, VEIL_LOG_IN, peer.m.prof.id, m1) == 0);
	IT_CHECK(recv_all(&a1, &s) == 0 && s.read_receipts == 0);
	IT_CHECK(recv_all(&a3, &s) == 0 && s.read_receipts == 0);
	IT_CHECK(status_of(&a1, VEIL_LOG_IN, peer.m.prof.id, m1) == VEIL_LOG_READ);
	IT_CHECK(status_of(&a1, VEIL_LOG_IN, peer.m.prof.id, m2) == VEIL_LOG_READ);
	IT_CHECK(status_of(&a3, VEIL_LOG_IN, peer.m.prof.id, m2) == VEIL_LOG_READ);
	/* Device 1 (which has them read now) has nothing to read either. */
	IT_CHECK(veil_msgr_read_conversation(&a1.m, peer.m.prof.id, &n) == 0 && n == 0);
	IT_CHECK(recv_all(&peer, &s) == 0);
	IT_CHECK(s.read_receipts == 1 && s.n_read_ids == 2);
	IT_CHECK((s.read_ids[0] == m1 && s.read_ids[1] == m2) ||
	         (s.read_ids[0] == m2 && s.read_ids[1] == m1));
	IT_CHECK(status_of(&peer, VEIL_LOG_OUT, a1.m.prof.id, m1) == VEIL_RECEIPT_READ);
	return 0;
}

/* A message sent on device 3: its delivered and read states reach every device. */
static int t_outgoing_states_everywhere(void)
{
	struct seen s;
	uint64_t id;
	size_t n = 0;
	IT_CHECK(send_text(&a3, &peer, "did you get it", &id) == 0);
	IT_CHECK(recv_all(&peer, &s) == 0 && s.texts == 1); /* sends "received" */
	IT_CHECK(recv_all(&a1, &s) == 0);
	IT_CHECK(status_of(&a1, VEIL_LOG_OUT, peer.m.prof.id, id) == VEIL_RECEIPT_RECEIVED);
	IT_CHECK(recv_all(&a2, &s) == 0);
	IT_CHECK(recv_all(&a3, &s) == 0);
	IT_CHECK(status_of(&a2, VEIL_LOG_OUT, peer.m.prof.id, id) == VEIL_RECEIPT_RECEIVED);
	IT_CHECK(status_of(&a3, VEIL_LOG_OUT, peer.m.prof.id, id) == VEIL_RECEIPT_RECEIVED);
	IT_CHECK(veil_msgr_read_conversation(&peer.m, a1.m.prof.id, &n) == 0 && n >= 1);
	IT_CHECK(recv_all(&a1, &s) == 0 && recv_all(&a2, &s) == 0 && recv_all(&a3, &s) == 0);
	IT_CHECK(status_of(&a1, VEIL_LOG_OUT, peer.m.prof.id, id) == VEIL_RECEIPT_READ);
	IT_CHECK(status_of(&a2, VEIL_LOG_OUT, peer.m.prof.id, id) == VEIL_RECEIPT_READ);
	IT_CHECK(status_of(&a3, VEIL_LOG_OUT, peer.m.prof.id, id) == VEIL_RECEIPT_READ);
	return 0;
}

/*
 * Read receipts turned off on device 1 (a SettingsSync): every device has
 * them off; a read on device 3 sends the peer nothing, and the others
 * learn it from an IncomingMessageUpdate.read.
 */
static int t_read_without_receipts(void)
{
	struct veil_settings set;
	struct seen s;
	uint64_t m1;
	size_t n = 0;
	IT_CHECK(veil_profile_settings_get(&a2.m.prof, &set) == 0 && set.read_receipts == 1);
	set.read_receipts = 0;
	IT_CHECK(veil_msgr_settings_set(&a1.m, &set) == 0);
	IT_CHECK(recv_all(&a2, &s) == 0 && recv_all(&a3, &s) == 0);
	IT_CHECK(veil_profile_settings_get(&a2.m.prof, &set) == 0 && set.read_receipts == 0);
	IT_CHECK(veil_profile_settings_get(&a3.m.prof, &set) == 0 && set.read_receipts == 0);
	IT_CHECK(send_text(&peer, &a1, "quietly read", &m1) == 0);
	IT_CHECK(recv_all(&a1, &s) == 0 && s.texts == 1);
	IT_CHECK(recv_all(&a3, &s) == 0 && s.texts == 1);
	IT_CHECK(veil_msgr_read_conversation(&a3.m, peer.m.prof.id, &n) == 0 && n == 1);
	IT_CHECK(recv_all(&a1, &s) == 0 && recv_all(&a2, &s) == 0);
	IT_CHECK(status_of(&a1, VEIL_LOG_IN, peer.m.prof.id, m1) == VEIL_LOG_READ);
	IT_CHECK(status_of(&a2, VEIL_LOG_IN, peer.m.prof.id, m1) == VEIL_LOG_READ);
	IT_CHECK(recv_all(&peer, &s) == 0 && s.read_receipts == 0);
	IT_CHECK(status_of(&peer, VEIL_LOG_OUT, a1.m.prof.id, m1) < VEIL_RECEIPT_READ);
	/* Back on from device 3 for the others. */
	set.read_receipts = 1;
	IT_CHECK(veil_msgr_settings_set(&a3.m, &set) == 0);
	IT_CHECK(recv_all(&a1, &s) == 0);
	IT_CHECK(veil_profile_settings_get(&a1.m.prof, &set) == 0 && set.read_receipts == 1);
	return 0;
}

/* The nickname set on device 2 is the nickname on devices 1 and 3 (UserProfileSync). */
static int t_nickname_synced(void)
{
	struct seen s;
	IT_CHECK(veil_msgr_set_nickname(&a2.m, "Alicia") == 0);
	IT_CHECK(strcmp(a1.m.prof.nickname, "Alice") == 0);
	IT_CHECK(recv_all(&a1, &s) == 0 && recv_all(&a3, &s) == 0);
	IT_CHECK(strcmp(a1.m.prof.nickname, "Alicia") == 0);
	IT_CHECK(strcmp(a3.m.prof.nickname, "Alicia") == 0);
	/* Stored, not only in memory: a reopened profile has it. */
	struct veil_msgr again;
	IT_CHECK(veil_msgr_open(&again, a3.home) == 0);
	int same = strcmp(again.prof.nickname, "Alicia") == 0;
	veil_msgr_close(&again);
	IT_CHECK(same);
	return 0;
}

static int same_group(struct dev *d, const struct veil_group *want)
{
	struct veil_group g;
	if (veil_profile_group_get(&d->m.prof, want->creator, want->gid, &g) != 0) {
		fprintf(stderr, "%s: group not found\n", d->home);
		return 0;
	}
	if (strcmp(g.name, want->name) != 0 || g.left != want->left ||
	    g.n_members != want->n_members) {
		fprintf(stderr, "%s: '%s' left %d n %zu; want '%s' %d %zu\n", d->home, g.name,
		        g.left, g.n_members, want->name, want->left, want->n_members);
		return 0;
	}
	for (size_t i = 0; i < g.n_members; i++) {
		int found = 0;
		for (size_t j = 0; j < want->n_members && !found; j++)
			found = memcmp(g.members[i], want->members[j], VEIL_ID_LEN) == 0;
		if (!found)
			return 0;
	}
	return 1;
}

/*
 * Groups made and changed on one device are the same on all (GroupSync in
 * GROUP_SYNC transactions): a group with nobody else in it yet (no group
 * message goes out, so only the GroupSync tells), a member added, a
 * rename, then disbanded.
 */
static int t_groups_synced(void)
{
	struct veil_group g;
	struct seen s;
	IT_CHECK(veil_msgr_group_create(&a2.m, "Just me", NULL, 0, &g) == 0);
	IT_CHECK(recv_all(&a1, &s) == 0 && recv_all(&a3, &s) == 0);
	IT_CHECK(same_group(&a1, &g) && same_group(&a3, &g));
	IT_CHECK(veil_msgr_group_update(&a1.m, g.creator, g.gid,
	                                (const uint8_t(*)[VEIL_ID_LEN])peer.m.prof.id, 1, NULL,
	                                0) == 0);
	IT_CHECK(veil_profile_group_get(&a1.m.prof, g.creator, g.gid, &g) == 0 && g.n_members == 1);
	IT_CHECK(recv_all(&a2, &s) == 0 && recv_all(&a3, &s) == 0);
	IT_CHECK(same_group(&a2, &g) && same_group(&a3, &g));
	IT_CHECK(veil_msgr_group_rename(&a3.m, g.creator, g.gid, "Two of us") == 0);
	IT_CHECK(veil_profile_group_get(&a3.m.prof, g.creator, g.gid, &g) == 0);
	IT_CHECK(recv_all(&a1, &s) == 0 && recv_all(&a2, &s) == 0);
	IT_CHECK(same_group(&a1, &g) && same_group(&a2, &g) && strcmp(g.name, "Two of us") == 0);
	IT_CHECK(veil_msgr_group_leave(&a2.m, g.creator, g.gid) == 0);
	IT_CHECK(veil_profile_group_get(&a2.m.prof, g.creator, g.gid, &g) == 0 && g.left);
	IT_CHECK(recv_all(&a1, &s) == 0 && recv_all(&a3, &s) == 0);
	IT_CHECK(same_group(&a1, &g) && same_group(&a3, &g));
	return 0;
}

/*
 * A group the peer made with us in it, left on device 1: device 2 has it
 * left too, with the other members kept.
 */
static int t_member_leave_synced(void)
{
	struct veil_group g, g2;
	struct seen s;
	IT_CHECK(veil_msgr_group_create(&peer.m, "Peter's",
	                                (const uint8_t(*)[VEIL_ID_LEN])a1.m.prof.id, 1, &g) == 0);
	IT_CHECK(recv_all(&a1, &s) == 0 && recv_all(&a2, &s) == 0);
	IT_CHECK(veil_profile_group_get(&a2.m.prof, g.creator, g.gid, &g2) == 0 && !g2.left);
	IT_CHECK(veil_msgr_group_leave(&a1.m, g.creator, g.gid) == 0);
	IT_CHECK(recv_all(&a2, &s) == 0);
	IT_CHECK(veil_profile_group_get(&a2.m.prof, g.creator, g.gid, &g2) == 0 && g2.left);
	return 0;
}

/* A raw device of the group (another client) reflects one GroupSync.Create: applied. */
static int t_group_sync_from_another_client(void)
{
	struct veil_conn *c = calloc(1, sizeof *c);
	struct veil_md_keys k;
	struct veil_md_params mp;
	struct veil_d2d_msg d;
	struct veil_buf env, box, out;
	struct veil_group g;
	struct seen s;
	char pid[VEIL_ID_LEN + 1];
	const char *members[1] = {pid};
	uint64_t dev = veil_random_u64(), gid = veil_random_u64();
	int rc = -1;
	veil_buf_init(&env, 65536);
	veil_buf_init(&box, 65536);
	veil_buf_init(&out, 65536);
	veil_id_str(pid, peer.m.prof.id);
	memset(&d, 0, sizeof d);
	d.kind = VEIL_D2D_GROUP;
	d.group_action = VEIL_D2D_GROUP_CREATE;
	d.group = 1;
	memcpy(d.group_creator, a1.m.prof.id, VEIL_ID_LEN);
	d.group_id = gid;
	d.group_name = "From elsewhere";
	d.created_ms = veil_now_ms();
	d.group_user_state = 0;
	d.has_members = 1;
	d.members = members;
	d.n_members = 1;
	memset(&mp, 0, sizeof mp);
	if (c == NULL || veil_md_keys_derive(&k, a1.m.prof.md_dgk) != 0)
		goto out;
	c->fd = -1;
	mp.url = a1.m.prof.md_url;
	mp.keys = &k;
	mp.device_id = dev;
	mp.csp_device_id = veil_random_u64();
	mp.expect_new = 1;
	mp.label = "other client";
	if (veil_conn_open_md(c, &mp, a1.m.prof.server_pk, a1.m.prof.id, a1.m.prof.sk, NULL,
	                      10000) != 0 ||
	    veil_d2d_encode(&env, &d, dev) != 0 ||
	    veil_md_envelope_seal(&box, &k, env.p, env.len, 0) != 0 ||
	    veil_md_reflect_encode(&out, 0, 1, box.p, box.len) != 0 ||
	    veil_conn_md_send(c, out.p, out.len) != 0 ||
	    veil_conn_md_wait_ack(c, 1, 20000, NULL) != 0)
		goto out;
	veil_conn_close(c);
	if (recv_all(&a2, &s) != 0 ||
	    veil_profile_group_get(&a2.m.prof, a1.m.prof.id, gid, &g) != 0 ||
	    strcmp(g.name, "From elsewhere") != 0 || g.n_members != 1 || g.left ||
	    memcmp(g.members[0], peer.m.prof.id, VEIL_ID_LEN) != 0)
		goto out;
	rc = veil_msgr_device_drop(&a1.m, dev) == 0 ? 0 : -1;
out:
	if (c != NULL)
		veil_conn_close(c);
	free(c);
	veil_md_keys_wipe(&k);
	veil_buf_release(&env);
	veil_buf_release(&box);
	veil_buf_release(&out);
	return rc == 0 ? 0 : 1;
}

/* A raw device of the group (as another client, or a mediator replaying) on libveil's connection. */
struct fake_dev {
	struct veil_conn *c;
	struct veil_md_keys k;
	uint64_t device_id;
	uint32_t next_id;
};

static int fake_open(struct fake_dev *f, const char *label)
{
	struct veil_md_params mp;
	memset(f, 0, sizeof *f);
	if ((f->c = calloc(1, sizeof *f->c)) == NULL ||
	    veil_md_keys_derive(&f->k, a1.m.prof.md_dgk) != 0)
		return -1;
	f->c->fd = -1;
	memset(&mp, 0, sizeof mp);
	mp.url = a1.m.prof.md_url;
	mp.keys = &f->k;
	mp.device_id = f->device_id = veil_random_u64();
	mp.csp_device_id = veil_random_u64();
	mp.expect_new = 1;
	mp.label = label;
	return veil_conn_open_md(f->c, &mp, a1.m.prof.server_pk, a1.m.prof.id, a1.m.prof.sk, NULL,
	                         10000);
}

/* Seals d as this device into box (replaced). */
static int fake_seal(struct fake_dev *f, const struct veil_d2d_msg *d, struct veil_buf *box)
{
	struct veil_buf env;
	veil_buf_init(&env, 65536);
	veil_buf_reset(box);
	int rc = veil_d2d_encode(&env, d, f->device_id);
	if (rc == 0)
		rc = veil_md_envelope_seal(box, &f->k, env.p, env.len, 0);
	veil_buf_release(&env);
	return rc;
}

/* Reflects box and waits for the mediator's ack. */
static int fake_reflect(struct fake_dev *f, const struct veil_buf *box)
{
	struct veil_buf out;
	uint32_t id = ++f->next_id;
	veil_buf_init(&out, 65536);
	int rc = veil_md_reflect_encode(&out, 0, id, box->p, box->len);
	if (rc == 0)
		rc = veil_conn_md_send(f->c, out.p, out.len);
	if (rc == 0)
		rc = veil_conn_md_wait_ack(f->c, id, 20000, NULL);
	veil_buf_release(&out);
	return rc;
}

static void fake_close(struct fake_dev *f)
{
	if (f->c != NULL)
		veil_conn_close(f->c);
	free(f->c);
	f->c = NULL;
	veil_md_keys_wipe(&f->k);
}

/* An IncomingMessage from the peer with text, the given CSP nonce and a new message ID. */
static void incoming_with_nonce(struct veil_d2d_msg *d, struct veil_buf *body, const char *text,
                                const uint8_t nonce[VEIL_NONCE_LEN])
{
	memset(d, 0, sizeof *d);
	veil_buf_reset(body);
	if (veil_e2e_text_encode(body, text, strlen(text)) != 0)
		abort();
	d->kind = VEIL_D2D_INCOMING;
	memcpy(d->peer, peer.m.prof.id, VEIL_ID_LEN);
	d->msg_id = veil_random_u64();
	d->created_ms = veil_now_ms();
	d->type = VEIL_E2E_TEXT;
	d->body = body->p;
	d->body_len = body->len;
	d->nonce = nonce;
}

static int say_yes(const char *rph, void *ctx)
{
	(void)rph;
	(void)ctx;
	return 1;
}

struct ed_run {
	struct veil_link l;
	int rc;
};
static void *ed_thread(void *arg)
{
	struct ed_run *r = arg;
	r->rc = veil_msgr_link_run(&a1.m, &r->l, say_yes, NULL, 60000);
	return NULL;
}

/*
 * Linking carries the used nonces (EssentialData's hashed CSP and D2D
 * nonces): a reflection device 1 applied before the link, replayed to the
 * new device, is dropped there; so is a reflected incoming message that
 * carries a CSP nonce used before the link.
 */
static int t_link_refuses_replays(void)
{
	struct fake_dev f;
	struct veil_buf box, body, box2;
	struct veil_d2d_msg d;
	struct ed_run ed;
	struct seen s;
	uint8_t nonce[VEIL_NONCE_LEN];
	pthread_t th;
	int rc = -1;
	veil_buf_init(&box, 65536);
	veil_buf_init(&box2, 65536);
	veil_buf_init(&body, 8192);
	memset(&ed, 0, sizeof ed);
	randombytes_buf(nonce, sizeof nonce);
	/* Room in the group (the mediator's slots): device 3 is done. */
	IT_CHECK(veil_msgr_device_drop(&a1.m, a3.m.prof.md_device_id) == 0);
	IT_CHECK(fake_open(&f, "replayer") == 0);
	/* Before the link: a reflection and an incoming message with a CSP nonce. */
	incoming_with_nonce(&d, &body, "before the link", nonce);
	if (fake_seal(&f, &d, &box) != 0 || fake_reflect(&f, &box) != 0 || recv_all(&a1, &s) != 0 ||
	    strcmp(s.last, "before the link") != 0)
		goto out;
	/* Device 4, linked through the rendezvous relay as 'veil device link' does. */
	snprintf(a4.home, sizeof a4.home, "%s/tablet", tmp);
	if (veil_msgr_link_offer(&a1.m, &ed.l, NULL) != 0 ||
	    pthread_create(&th, NULL, ed_thread, &ed) != 0)
		goto out;
	int jr = veil_msgr_join_link(&a4.m, a4.home, ed.l.link, NULL, NULL, "tablet", say_yes, NULL,
	                             60000);
	pthread_join(th, NULL);
	veil_link_release(&ed.l);
	if (jr != 0 || ed.rc != 0) {
		fprintf(stderr, "link: %s / %s\n", a4.m.errtext, a1.m.errtext);
		goto out;
	}
	/* The same envelope again, and a new one with the old CSP nonce. */
	incoming_with_nonce(&d, &body, "old nonce, new message", nonce);
	if (fake_reflect(&f, &box) != 0 || fake_seal(&f, &d, &box2) != 0 ||
	    fake_reflect(&f, &box2) != 0 || recv_all(&a4, &s) != 0)
		goto out;
	if (s.replays != 1 || s.texts != 0) {
		fprintf(stderr, "replays on the new device: %d reported, %d shown\n", s.replays,
		        s.texts);
		goto out;
	}
	/* A fresh nonce goes through (the test can tell). */
	randombytes_buf(nonce, sizeof nonce);
	incoming_with_nonce(&d, &body, "after the link", nonce);
	if (fake_seal(&f, &d, &box2) != 0 || fake_reflect(&f, &box2) != 0 ||
	    recv_all(&a4, &s) != 0 || s.texts != 1)
		goto out;
	rc = veil_msgr_device_drop(&a1.m, f.device_id) == 0 ? 0 : -1;
out:
	fake_close(&f);
	veil_buf_release(&box);
	veil_buf_release(&box2);
	veil_buf_release(&body);
	return rc == 0 ? 0 : 1;
}

#define RUN_IT(fn)                                                                                 \
	do {                                                                                       \
		int r_ = fn();                                                                     \
		printf("%s %s\n", r_ ? "FAIL" : "PASS", #fn);                                      \
		fflush(stdout);                                                                    \
		failed += r_;                                                                      \
	} while (0)

int main(void)
{
	char cmd[600];
	int failed = 0;
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmp, sizeof tmp, "/tmp/veil-it-mds-XXXXXX");
	if (veil_crypto_init() != 0 || mkdtemp(tmp) == NULL || it_start(&srv) != 0) {
		printf("FAIL start_veild\n");
		return 1;
	}
	RUN_IT(t_setup);
	if (failed == 0) {
		RUN_IT(t_read_with_receipts);
		RUN_IT(t_outgoing_states_everywhere);
		RUN_IT(t_read_without_receipts);
		RUN_IT(t_nickname_synced);
		RUN_IT(t_groups_synced);
		RUN_IT(t_member_leave_synced);
		RUN_IT(t_group_sync_from_another_client);
		RUN_IT(t_link_refuses_replays);
	}
	veil_msgr_close(&a1.m);
	veil_msgr_close(&a2.m);
	veil_msgr_close(&a3.m);
	veil_msgr_close(&a4.m);
	veil_msgr_close(&peer.m);
	it_stop(&srv, SIGKILL);
	snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tmp, srv.data);
	if (system(cmd) != 0)
		failed++;
	return failed ? 1 : 0;
}
