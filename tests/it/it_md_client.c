/*
 * Multi-device on the client side, end to end on loopback through veild's
 * mediator, with libveil's messenger as the devices: one identity with
 * three devices (the first made a device group, the others joined from
 * its export), and a peer with a single device. Each device is its own
 * profile directory, as on separate machines; they run one after another
 * (connect, do the job, disconnect), so the leader is whichever device is
 * connected.
 */
#include "harness.h"
#include "veil/client.h"
#include "veil/contacts.h"

#include "../../lib/client/md_int.h"

static struct it_server srv;
static char tmp[256];

struct dev {
	struct veil_msgr m;
	char home[320];
};
static struct dev a1, a2, a3, peer;

#define MAX_SEEN 32
struct seen {
	size_t n;
	int replays; /* error events for replayed reflections */
	struct {
		char text[128];
		int outgoing, other_device;
		uint8_t from[VEIL_ID_LEN], to[VEIL_ID_LEN];
	} e[MAX_SEEN];
};

static int on_event(const struct veil_msgr_event *ev, void *ctx)
{
	struct seen *s = ctx;
	if (ev->kind == VEIL_MSGR_EV_ERROR && ev->err == VEIL_EREPLAY)
		s->replays++;
	if (ev->kind != VEIL_MSGR_EV_MESSAGE || ev->text == NULL || s->n == MAX_SEEN)
		return 0;
	snprintf(s->e[s->n].text, sizeof s->e[s->n].text, "%.*s", (int)ev->text_len, ev->text);
	s->e[s->n].outgoing = ev->outgoing;
	s->e[s->n].other_device = ev->other_device;
	memcpy(s->e[s->n].from, ev->from, VEIL_ID_LEN);
	memcpy(s->e[s->n].to, ev->to, VEIL_ID_LEN);
	s->n++;
	return 0;
}

static int find(const struct seen *s, const char *text)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->e[i].text, text) == 0)
			return (int)i;
	return -1;
}

static int init_user(struct dev *d, const char *nick)
{
	struct veil_msgr_init_opts o = {.server_url = srv.http_url, .nickname = nick};
	return veil_msgr_init(&d->m, d->home, &o);
}

static int recv_all(struct dev *d, struct seen *s)
{
	memset(s, 0, sizeof *s);
	int rc = veil_msgr_receive(&d->m, 0, on_event, s);
	if (rc != 0)
		fprintf(stderr, "receive on %s: %s\n", d->home, d->m.errtext);
	return rc;
}

static int send_text(struct dev *d, struct dev *to, const char *text)
{
	uint64_t id;
	int rc = veil_msgr_send_text(&d->m, to->m.prof.id, text, strlen(text), &id);
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

static int t_setup(void)
{
	snprintf(a1.home, sizeof a1.home, "%s/a1", tmp);
	snprintf(peer.home, sizeof peer.home, "%s/peer", tmp);
	IT_CHECK(init_user(&a1, "Alice") == 0);
	IT_CHECK(init_user(&peer, "Peter") == 0);
	IT_CHECK(veil_msgr_md_enable(&a1.m, "desktop") == 0);
	IT_CHECK(a1.m.prof.md && a1.m.prof.md_registered);
	IT_CHECK(join(&a2, "phone") == 0);
	IT_CHECK(join(&a3, "laptop") == 0);
	IT_CHECK(memcmp(a2.m.prof.id, a1.m.prof.id, VEIL_ID_LEN) == 0);
	IT_CHECK(a2.m.prof.md_device_id != a1.m.prof.md_device_id);
	/* Register the two new devices' slots. */
	struct seen s;
	IT_CHECK(recv_all(&a2, &s) == 0 && a2.m.prof.md_registered);
	IT_CHECK(recv_all(&a3, &s) == 0 && a3.m.prof.md_registered);
	return 0;
}

/* A message from the peer: the leader receives and reflects it; the others get it reflected. */
static int t_incoming_reaches_every_device(void)
{
	struct seen s1, s2, s3;
	IT_CHECK(send_text(&peer, &a1, "hello all") == 0);
	IT_CHECK(recv_all(&a1, &s1) == 0);
	int i = find(&s1, "hello all");
	IT_CHECK(i >= 0 && !s1.e[i].other_device && !s1.e[i].outgoing);
	IT_CHECK(recv_all(&a2, &s2) == 0);
	i = find(&s2, "hello all");
	IT_CHECK(i >= 0 && s2.e[i].other_device);
	IT_CHECK(memcmp(s2.e[i].from, peer.m.prof.id, VEIL_ID_LEN) == 0);
	IT_CHECK(recv_all(&a3, &s3) == 0 && find(&s3, "hello all") >= 0);
	/* Nothing twice: a second receive on device 2 shows nothing new. */
	IT_CHECK(recv_all(&a2, &s2) == 0 && find(&s2, "hello all") < 0);
	return 0;
}

/* A message sent on device 2 reaches the peer and shows as outgoing on devices 1 and 3. */
static int t_outgoing_shows_on_other_devices(void)
{
	struct seen sp, s1, s3;
	IT_CHECK(send_text(&a2, &peer, "from the phone") == 0);
	IT_CHECK(recv_all(&peer, &sp) == 0);
	int i = find(&sp, "from the phone");
	IT_CHECK(i >= 0 && memcmp(sp.e[i].from, a1.m.prof.id, VEIL_ID_LEN) == 0);
	IT_CHECK(recv_all(&a1, &s1) == 0);
	i = find(&s1, "from the phone");
	IT_CHECK(i >= 0 && s1.e[i].outgoing && s1.e[i].other_device);
	IT_CHECK(memcmp(s1.e[i].to, peer.m.prof.id, VEIL_ID_LEN) == 0);
	IT_CHECK(recv_all(&a3, &s3) == 0 && find(&s3, "from the phone") >= 0);
	return 0;
}

/* The message log of a device that was offline holds what the others did meanwhile. */
static int log_has(struct dev *d, int dir, const char *text);
struct log_find {
	int dir;
	const char *text;
	int found;
};
static int log_cb(const struct veil_log_entry *e, void *ctx)
{
	struct log_find *f = ctx;
	const char *t;
	size_t n;
	if (e->dir == f->dir && e->type == VEIL_E2E_TEXT &&
	    veil_e2e_text_decode(e->body, e->body_len, &t, &n) == 0 && n == strlen(f->text) &&
	    memcmp(t, f->text, n) == 0)
		f->found++;
	return 0;
}
static int log_has(struct dev *d, int dir, const char *text)
{
	struct log_find f = {.dir = dir, .text = text};
	if (veil_profile_log_list(&d->m.prof, NULL, log_cb, &f) != 0)
		return -1;
	return f.found;
}

static int t_logs_agree(void)
{
	IT_CHECK(log_has(&a1, VEIL_LOG_IN, "hello all") == 1);
	IT_CHECK(log_has(&a2, VEIL_LOG_IN, "hello all") == 1);
	IT_CHECK(log_has(&a3, VEIL_LOG_IN, "hello all") == 1);
	IT_CHECK(log_has(&a1, VEIL_LOG_OUT, "from the phone") == 1);
	IT_CHECK(log_has(&a2, VEIL_LOG_OUT, "from the phone") == 1);
	IT_CHECK(log_has(&a3, VEIL_LOG_OUT, "from the phone") == 1);
	return 0;
}

/* A group made on device 2: its state reaches device 1; messages in it go both ways. */
static int t_groups_across_devices(void)
{
	struct veil_group g, g1;
	struct seen s;
	uint64_t id;
	IT_CHECK(veil_msgr_group_create(&a2.m, "Hikers",
	                                (const uint8_t(*)[VEIL_ID_LEN])peer.m.prof.id, 1, &g) == 0);
	IT_CHECK(veil_msgr_group_send_text(&a2.m, g.creator, g.gid, "group from phone", 16, &id) ==
	         0);
	/* Device 1 learns the group and the message from device 2. */
	IT_CHECK(recv_all(&a1, &s) == 0);
	IT_CHECK(veil_profile_group_get(&a1.m.prof, g.creator, g.gid, &g1) == 0);
	IT_CHECK(strcmp(g1.name, "Hikers") == 0 && g1.n_members == 1 && !g1.left);
	int i = find(&s, "group from phone");
	IT_CHECK(i >= 0 && s.e[i].outgoing && s.e[i].other_device);
	/* The peer answers in the group; device 1 (leader) and then device 2 see it. */
	IT_CHECK(recv_all(&peer, &s) == 0 && find(&s, "group from phone") >= 0);
	IT_CHECK(veil_msgr_group_send_text(&peer.m, g.creator, g.gid, "group reply", 11, &id) == 0);
	IT_CHECK(recv_all(&a1, &s) == 0 && find(&s, "group reply") >= 0);
	IT_CHECK(recv_all(&a2, &s) == 0);
	i = find(&s, "group reply");
	IT_CHECK(i >= 0 && s.e[i].other_device && !s.e[i].outgoing);
	/* A rename on device 1 reaches device 2's copy of the group. */
	IT_CHECK(veil_msgr_group_rename(&a1.m, g.creator, g.gid, "Climbers") == 0);
	IT_CHECK(recv_all(&a2, &s) == 0);
	IT_CHECK(veil_profile_group_get(&a2.m.prof, g.creator, g.gid, &g1) == 0);
	IT_CHECK(strcmp(g1.name, "Climbers") == 0);
	return 0;
}

/* A contact verified on one device is verified on all (a ContactSync in a transaction). */
static int t_contact_verified_everywhere(void)
{
	int level = 0;
	char src[VEIL_LEVEL_SOURCE_MAX + 1];
	struct seen s;
	IT_CHECK(veil_contacts_level_raise(&a1.m.prof, peer.m.prof.id, VEIL_LEVEL_GREEN, "qr") ==
	         0);
	IT_CHECK(veil_msgr_md_sync_contact(&a1.m, peer.m.prof.id, 0) == 0);
	IT_CHECK(veil_contacts_level_get(&a2.m.prof, peer.m.prof.id, &level, src) == 0 &&
	         level < VEIL_LEVEL_GREEN);
	IT_CHECK(recv_all(&a2, &s) == 0);
	IT_CHECK(veil_contacts_level_get(&a2.m.prof, peer.m.prof.id, &level, src) == 0 &&
	         level == VEIL_LEVEL_GREEN);
	/* A contact added on device 2 appears on device 1 with its key. */
	struct veil_contact c;
	struct dev extra;
	snprintf(extra.home, sizeof extra.home, "%s/extra", tmp);
	IT_CHECK(init_user(&extra, "Extra") == 0);
	IT_CHECK(veil_msgr_contact_add(&a2.m, extra.m.prof.id, NULL, NULL) == 0);
	IT_CHECK(veil_msgr_md_sync_contact(&a2.m, extra.m.prof.id, 1) == 0);
	IT_CHECK(veil_profile_contact_get(&a1.m.prof, extra.m.prof.id, &c) == VEIL_ENOTFOUND);
	IT_CHECK(recv_all(&a1, &s) == 0);
	IT_CHECK(veil_profile_contact_get(&a1.m.prof, extra.m.prof.id, &c) == 0);
	IT_CHECK(memcmp(c.pk, extra.m.prof.pk, VEIL_KEY_LEN) == 0);
	veil_msgr_close(&extra.m);
	return 0;
}

/* A raw device of the group on libveil's connection through the mediator. */
struct fake_dev {
	struct veil_conn *c;
	struct veil_md_keys k;
	uint64_t device_id;
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

/* Seals an OutgoingMessage of text to the peer into box (replaced). */
static int fake_seal_text(struct fake_dev *f, const char *text, size_t len, struct veil_buf *box)
{
	struct veil_d2d_msg d;
	struct veil_buf env, body;
	veil_buf_init(&env, 65536);
	veil_buf_init(&body, 8192);
	memset(&d, 0, sizeof d);
	d.kind = VEIL_D2D_OUTGOING;
	memcpy(d.peer, peer.m.prof.id, VEIL_ID_LEN);
	d.msg_id = veil_random_u64();
	d.created_ms = veil_now_ms();
	d.type = VEIL_E2E_TEXT;
	veil_buf_reset(box);
	int rc = veil_e2e_text_encode(&body, text, len);
	d.body = body.p;
	d.body_len = body.len;
	if (rc == 0)
		rc = veil_d2d_encode(&env, &d, f->device_id);
	if (rc == 0)
		rc = veil_md_envelope_seal(box, &f->k, env.p, env.len, 0);
	veil_buf_release(&env);
	veil_buf_release(&body);
	return rc;
}

/* Reflects box with reflect-ID id (waiting for its ack if wait). */
static int fake_reflect(struct fake_dev *f, uint32_t id, const struct veil_buf *box, int wait)
{
	struct veil_buf out;
	veil_buf_init(&out, 65536);
	int rc = veil_md_reflect_encode(&out, 0, id, box->p, box->len);
	if (rc == 0)
		rc = veil_conn_md_send(f->c, out.p, out.len);
	if (rc == 0 && wait)
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

/*
 * The D2D nonce store: the same sealed envelope reflected twice (as a
 * mediator replaying it would) is applied once, the second copy reported
 * and dropped. The sender is a raw device of the group on libveil's
 * connection through the mediator.
 */
static int t_d2d_replay_dropped(void)
{
	struct fake_dev f;
	struct veil_buf box;
	struct seen s;
	const char *text = "replayed envelope";
	int rc = -1;
	veil_buf_init(&box, 65536);
	if (fake_open(&f, "replayer") != 0 || fake_seal_text(&f, text, strlen(text), &box) != 0)
		goto out;
	for (uint32_t id = 1; id <= 2; id++)
		if (fake_reflect(&f, id, &box, 1) != 0)
			goto out;
	veil_conn_close(f.c);
	if (recv_all(&a2, &s) != 0)
		goto out;
	int shown = 0;
	for (size_t i = 0; i < s.n; i++)
		shown += strcmp(s.e[i].text, text) == 0;
	/* The replayer leaves the group again (the device list below counts three). */
	rc =
	    shown == 1 && s.replays == 1 && veil_msgr_device_drop(&a1.m, f.device_id) == 0 ? 0 : -1;
	if (rc != 0)
		fprintf(stderr, "replay: shown %d, replays reported %d\n", shown, s.replays);
out:
	fake_close(&f);
	veil_buf_release(&box);
	return rc == 0 ? 0 : 1;
}

/*
 * A queue of large messages for the leader: the chat service sends them
 * one after the other while the leader waits for each reflect-ack, more
 * than the CSP read buffer holds; nothing may be lost or fail.
 */
static int t_leader_reads_a_large_queue(void)
{
	enum { N = 12 };
	char text[6001], want[32];
	struct seen s;
	for (int i = 0; i < N; i++) {
		memset(text, 'a' + i, 6000);
		snprintf(text, sizeof want, "big %02d ", i);
		text[7] = 'x';
		text[6000] = 0;
		IT_CHECK(send_text(&peer, &a1, text) == 0);
	}
	IT_CHECK(recv_all(&a1, &s) == 0);
	IT_CHECK(s.n >= N);
	IT_CHECK(recv_all(&a2, &s) == 0);
	int got = 0;
	for (size_t i = 0; i < s.n; i++)
		got += strncmp(s.e[i].text, "big ", 4) == 0;
	IT_CHECK(got == N);
	return 0;
}

static int count_flood(const struct veil_msgr_event *ev, void *ctx)
{
	int *n = ctx;
	if (ev->kind == VEIL_MSGR_EV_MESSAGE && ev->text != NULL && ev->text_len > 6 &&
	    memcmp(ev->text, "flood ", 6) == 0)
		(*n)++;
	return 0;
}

/*
 * More reflected to a connected device than its client keeps unread (8 MiB)
 * while it waits for something else (here the ack of its own reflect): what
 * did not fit is not acked, so the mediator keeps it, and the session must
 * come back for it by itself, not at some later start.
 */
static int t_inbox_overflow_refetched(void)
{
	enum { N = 1500 }; /* about 9.3 MB of envelopes */
	struct fake_dev f;
	struct veil_buf box;
	char text[6001];
	int rc = -1, got = 0;
	veil_buf_init(&box, 65536);
	IT_CHECK(fake_open(&f, "flooder") == 0);
	/* a2 is connected and idle (not reading) while the flood comes. */
	IT_CHECK(veil_msgr_session_start(&a2.m, count_flood, &got) == 0);
	IT_CHECK(veil_msgr_session_connect(&a2.m) == 0);
	for (int i = 0; i < 50 && !veil_msgr_session_drained(&a2.m); i++)
		IT_CHECK(veil_msgr_session_pump(&a2.m, 100) == 0);
	for (uint32_t i = 1; i <= N; i++) {
		memset(text, 'a' + (int)(i % 26), 6000);
		int l = snprintf(text, 16, "flood %04u", i);
		text[l] = ' ';
		text[6000] = 0;
		/* Now and then wait for the acks, so that the socket never holds too much. */
		if (fake_seal_text(&f, text, 6000, &box) != 0 ||
		    fake_reflect(&f, i, &box, i % 100 == 0 || i == N) != 0)
			goto out;
	}
	veil_conn_close(f.c);
	/* Its own send makes a2 read the whole flood while it waits for the reflect-ack. */
	if (send_text(&a2, &peer, "after the flood") != 0)
		goto out;
	uint64_t until = veil_mono_ms() + 60000;
	while (got < N && veil_mono_ms() < until) {
		if (veil_msgr_session_pump(&a2.m, 500) != 0 &&
		    veil_msgr_session_connect(&a2.m) != 0)
			usleep(200000);
	}
	veil_msgr_session_stop(&a2.m);
	rc = got == N && veil_msgr_device_drop(&a1.m, f.device_id) == 0 ? 0 : -1;
	if (rc != 0)
		fprintf(stderr, "overflow: %d of %d reflected messages shown\n", got, N);
out:
	fake_close(&f);
	veil_buf_release(&box);
	return rc == 0 ? 0 : 1;
}

struct devlist {
	int n, self;
	char labels[8][VEIL_MD_INFO_STR_MAX + 1];
	uint64_t ids[8];
};
static int dev_cb(const struct veil_device *d, void *ctx)
{
	struct devlist *l = ctx;
	if (l->n < 8) {
		snprintf(l->labels[l->n], sizeof l->labels[l->n], "%s", d->label);
		l->ids[l->n] = d->device_id;
		l->self += d->self;
		l->n++;
	}
	return 0;
}
static int has_label(const struct devlist *l, const char *label)
{
	for (int i = 0; i < l->n; i++)
		if (strcmp(l->labels[i], label) == 0)
			return 1;
	return 0;
}

static int t_devices_list_rename_drop(void)
{
	struct devlist l;
	memset(&l, 0, sizeof l);
	IT_CHECK(veil_msgr_devices(&a1.m, dev_cb, &l) == 0);
	IT_CHECK(l.n == 3 && l.self == 1);
	IT_CHECK(has_label(&l, "desktop") && has_label(&l, "phone") && has_label(&l, "laptop"));
	IT_CHECK(veil_msgr_device_rename(&a2.m, "old phone") == 0);
	memset(&l, 0, sizeof l);
	IT_CHECK(veil_msgr_devices(&a1.m, dev_cb, &l) == 0);
	IT_CHECK(has_label(&l, "old phone") && !has_label(&l, "phone"));
	/* Dropping yourself is refused; dropping device 3 from device 1 works. */
	IT_CHECK(veil_msgr_device_drop(&a1.m, a1.m.prof.md_device_id) == VEIL_EINVAL);
	IT_CHECK(veil_msgr_device_drop(&a1.m, a3.m.prof.md_device_id) == 0);
	memset(&l, 0, sizeof l);
	IT_CHECK(veil_msgr_devices(&a1.m, dev_cb, &l) == 0);
	IT_CHECK(l.n == 2 && !has_label(&l, "laptop"));
	/* The dropped device can no longer connect (its slot is gone). */
	struct seen s;
	IT_CHECK(recv_all(&a3, &s) != 0);
	return 0;
}

/* A device with another group key is refused by the mediator (wrong DGK). */
static int t_wrong_dgk_refused(void)
{
	struct seen s;
	uint8_t saved[VEIL_MD_DGK_LEN];
	memcpy(saved, a2.m.prof.md_dgk, sizeof saved);
	a2.m.prof.md_dgk[0] ^= 1;
	int rc = recv_all(&a2, &s);
	memcpy(a2.m.prof.md_dgk, saved, sizeof saved);
	IT_CHECK(rc != 0);
	IT_CHECK(recv_all(&a2, &s) == 0);
	return 0;
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
	snprintf(tmp, sizeof tmp, "/tmp/veil-it-mdc-XXXXXX");
	if (veil_crypto_init() != 0 || mkdtemp(tmp) == NULL || it_start(&srv) != 0) {
		printf("FAIL start_veild\n");
		return 1;
	}
	RUN_IT(t_setup);
	if (failed == 0) {
		RUN_IT(t_incoming_reaches_every_device);
		RUN_IT(t_outgoing_shows_on_other_devices);
		RUN_IT(t_logs_agree);
		RUN_IT(t_groups_across_devices);
		RUN_IT(t_contact_verified_everywhere);
		RUN_IT(t_d2d_replay_dropped);
		RUN_IT(t_leader_reads_a_large_queue);
		RUN_IT(t_devices_list_rename_drop);
		RUN_IT(t_wrong_dgk_refused);
		RUN_IT(t_inbox_overflow_refetched);
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
