/*
 * Multi-device sync on the client side, end to end on loopback through
 * veild's mediator: three devices of one identity (the first made a device
 * group, the others joined from its export) and a peer. Read states (with
 * read receipts on and off), the settings, the nickname and groups made
 * or changed on one device reach the others; a GroupSync from another
 * client's device (no group messages with it) is applied too.
 */
#include "harness.h"
#include "veil/client.h"

#include "../../lib/client/md_int.h"

static struct it_server srv;
static char tmp[256];

struct dev {
	struct veil_msgr m;
	char home[320];
};
static struct dev a1, a2, a3, peer;

struct seen {
	int texts;
	int read_receipts; /* receipt events of status read */
	uint64_t read_ids[8];
	size_t n_read_ids;
};

static int on_event(const struct veil_msgr_event *ev, void *ctx)
{
	struct seen *s = ctx;
	if (ev->kind != VEIL_MSGR_EV_MESSAGE)
		return 0;
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
	    veil_conn_md_send(c, out.p, out.len) != 0 || veil_conn_md_wait_ack(c, 1, 20000, NULL) != 0)
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
	}
	veil_msgr_close(&a1.m);
	veil_msgr_close(&a2.m);
	veil_msgr_close(&a3.m);
	veil_msgr_close(&peer.m);
	it_stop(&srv, SIGKILL);
	snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tmp, srv.data);
	if (system(cmd) != 0)
		failed++;
	return failed ? 1 : 0;
}
