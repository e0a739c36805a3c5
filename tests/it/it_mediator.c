/*
 * The mediator service end to end on loopback: veild runs as a separate
 * process; devices speak D2M over a minimal hand-written RFC 6455 client
 * (below) with lib/md; the leader's CSP session runs through the proxy with
 * lib/csp, against a second identity connected to the chat port directly.
 */
#define _GNU_SOURCE /* memmem */
#include <sqlite3.h>

#include "harness.h"
#include "ws_client.h"
#include "veil/md.h"

static struct it_server srv;
static struct it_user alice, bob;
static struct it_server *wsrv = &srv;                 /* where devices connect */
static int slot_expiration = VEIL_MD_SLOT_PERSISTENT; /* what devices ask for */

static int ws_connect(const char *path)
{
	return it_ws_connect(wsrv->http_port, path);
}

/* --- a device --- */

struct dev {
	int fd;
	uint64_t did;
	const struct veil_md_keys *k;
	struct veil_md_server_info si;
	uint8_t msg[VEIL_MD_MAX_MESSAGE];
	size_t len;
	uint8_t type;
	const uint8_t *pl;
	size_t pn;
};

struct group {
	struct veil_md_keys k;
	char path[256];
};

static void group_new(struct group *g)
{
	uint8_t dgk[VEIL_MD_DGK_LEN];
	char hex[VEIL_MD_URL_INFO_HEX_MAX];
	randombytes_buf(dgk, sizeof dgk);
	if (veil_md_keys_derive(&g->k, dgk) != 0 ||
	    veil_md_url_info_encode(hex, sizeof hex, g->k.group_id, "a1") != 0)
		abort();
	snprintf(g->path, sizeof g->path, "/mediator/%s", hex);
}

/* Next message: 0, a close code (> 0) or a negative veil_err. */
static int dev_next(struct dev *d, int timeout_ms)
{
	int rc = it_ws_recv(d->fd, d->msg, sizeof d->msg, &d->len, timeout_ms);
	if (rc != 0)
		return rc;
	if (veil_md_container_parse(d->msg, d->len, &d->type, &d->pl, &d->pn) != 0)
		return VEIL_EPROTO;
	return 0;
}

/* Skips messages until one of type arrives. */
static int dev_expect(struct dev *d, uint8_t type, int timeout_ms)
{
	for (;;) {
		int rc = dev_next(d, timeout_ms);
		if (rc != 0 || d->type == type)
			return rc;
	}
}

/* Nothing arrives for ms: 0, else 1 (or the error). */
static int dev_quiet(struct dev *d, int ms)
{
	int rc = dev_next(d, ms);
	return rc == VEIL_ETIMEOUT ? 0 : 1;
}

static int dev_send(struct dev *d, uint8_t type, const uint8_t *p, size_t n)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	int rc = veil_md_container_encode(&b, type, p, n);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&b);
	return rc;
}

static void dev_close(struct dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/*
 * Connects as device did of the group (answering with key k, which may
 * belong to another group on purpose). early, if not NULL, is sent as a
 * proxy container before the ClientHello. Returns 0 once ServerInfo is in,
 * a close code, or a negative veil_err.
 */
static int dev_connect_as(struct dev *d, const struct group *g, const struct veil_md_keys *k,
                          uint64_t did, int expect, int policy, const uint8_t *early,
                          size_t early_len)
{
	memset(d, 0, sizeof *d);
	d->did = did;
	d->k = k;
	d->fd = ws_connect(g->path);
	if (d->fd < 0)
		return VEIL_EIO;
	int rc = dev_next(d, 5000);
	if (rc != 0)
		return rc;
	struct veil_md_server_hello sh;
	if (d->type != VEIL_MD_SERVER_HELLO || veil_md_server_hello_parse(&sh, d->pl, d->pn) != 0)
		return VEIL_EPROTO;
	if (early != NULL && (rc = dev_send(d, VEIL_MD_PROXY, early, early_len)) != 0)
		return rc;
	struct veil_md_client_hello ch = {.device_id = did,
	                                  .slots_exhausted_policy = policy,
	                                  .slot_expiration_policy = slot_expiration,
	                                  .expected_slot_state = expect};
	struct veil_md_device_info info = {.platform = VEIL_MD_PLATFORM_DESKTOP};
	snprintf(info.label, sizeof info.label, "it device %llu", (unsigned long long)did);
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	rc = veil_md_client_hello_make(&b, &ch, k, &sh, &info);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&b);
	if (rc != 0)
		return rc;
	if ((rc = dev_next(d, 5000)) != 0)
		return rc;
	if (d->type != VEIL_MD_SERVER_INFO || veil_md_server_info_parse(&d->si, d->pl, d->pn) != 0)
		return VEIL_EPROTO;
	return 0;
}

static int dev_connect(struct dev *d, const struct group *g, uint64_t did, int expect)
{
	return dev_connect_as(d, g, &g->k, did, expect, VEIL_MD_SLOTS_REJECT, NULL, 0);
}

/* Connects and reads up to the dry; *leader = 1 if the promotion follows at once. */
static int dev_online(struct dev *d, const struct group *g, uint64_t did, int expect, int *leader)
{
	int rc = dev_connect(d, g, did, expect);
	if (rc != 0)
		return rc;
	if ((rc = dev_expect(d, VEIL_MD_REFLECTION_QUEUE_DRY, 5000)) != 0)
		return rc;
	if (leader != NULL) {
		rc = dev_next(d, 300);
		*leader = rc == 0 && d->type == VEIL_MD_ROLE_PROMOTED_TO_LEADER;
	}
	return 0;
}

static int reflect(struct dev *d, uint32_t id, uint16_t flags, const uint8_t *env, size_t n)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	int rc = veil_md_reflect_encode(&b, flags, id, env, n);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&b);
	return rc;
}

static int reflected_ack(struct dev *d, uint32_t id)
{
	struct veil_buf b;
	veil_buf_init(&b, 64);
	int rc = veil_md_reflected_ack_encode(&b, id);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&b);
	return rc;
}

/* Expects a reflected carrying env; acks it; *rid gets its ID. */
static int expect_reflected(struct dev *d, const uint8_t *env, size_t n, uint32_t *rid, int ack)
{
	struct veil_md_reflect r;
	if (dev_expect(d, VEIL_MD_REFLECTED, 5000) != 0 ||
	    veil_md_reflected_parse(&r, d->pl, d->pn) != 0)
		return -1;
	if (r.envelope_len != n || memcmp(r.envelope, env, n) != 0)
		return -1;
	if (rid != NULL)
		*rid = r.id;
	return ack ? reflected_ack(d, r.id) : 0;
}

/* --- tests --- */

static int t_wrong_dgk_refused(void)
{
	struct group g, other;
	struct dev d;
	group_new(&g);
	group_new(&other);
	/* The URL names g, the response is made with another group's DGPK. */
	IT_CHECK(dev_connect_as(&d, &g, &other.k, 1, VEIL_MD_SLOT_NEW, 0, NULL, 0) ==
	         VEIL_MD_CLOSE_PROTOCOL);
	dev_close(&d);
	/* A URL that is not a ClientUrlInfo. */
	memcpy(g.path, "/mediator/00zz", 15);
	IT_CHECK(dev_connect(&d, &g, 1, VEIL_MD_SLOT_NEW) == VEIL_MD_CLOSE_PROTOCOL);
	dev_close(&d);
	return 0;
}

static struct group g3;
static struct dev d1, d2, d3;

static int t_reflect_to_two_others(void)
{
	int l1, l2, l3;
	uint8_t env[300];
	uint32_t r2, r3;
	struct veil_md_reflect r;
	group_new(&g3);
	IT_CHECK(dev_online(&d1, &g3, 101, VEIL_MD_SLOT_NEW, &l1) == 0);
	IT_CHECK(d1.si.slot_state == VEIL_MD_SLOT_NEW && d1.si.reflection_queue_length == 0);
	IT_CHECK(d1.si.max_device_slots == 3);
	IT_CHECK(dev_online(&d2, &g3, 102, VEIL_MD_SLOT_NEW, &l2) == 0);
	IT_CHECK(dev_online(&d3, &g3, 103, VEIL_MD_SLOT_NEW, &l3) == 0);
	/* Exactly one leader: the first device that was dry. */
	IT_CHECK(l1 == 1 && l2 == 0 && l3 == 0);
	randombytes_buf(env, sizeof env);
	IT_CHECK(reflect(&d1, 0xabcd0001, 0, env, sizeof env) == 0);
	IT_CHECK(dev_expect(&d1, VEIL_MD_REFLECT_ACK, 5000) == 0);
	IT_CHECK(veil_md_reflect_ack_parse(&r, d1.pl, d1.pn) == 0);
	IT_CHECK(r.id == 0xabcd0001);
	uint64_t now = veil_now_ms();
	IT_CHECK(r.timestamp <= now && r.timestamp + 10000 > now);
	IT_CHECK(expect_reflected(&d2, env, sizeof env, &r2, 1) == 0);
	IT_CHECK(expect_reflected(&d3, env, sizeof env, &r3, 1) == 0);
	IT_CHECK(r2 == r3);
	/* The sender gets no copy; nothing more for anyone. */
	IT_CHECK(dev_quiet(&d1, 200) == 0);
	IT_CHECK(dev_quiet(&d2, 100) == 0 && dev_quiet(&d3, 100) == 0);
	return 0;
}

static int t_offline_device_catches_up(void)
{
	uint8_t env[64], eph[40];
	uint32_t rid;
	randombytes_buf(env, sizeof env);
	randombytes_buf(eph, sizeof eph);
	dev_close(&d3);
	usleep(100000);
	IT_CHECK(reflect(&d2, 7, 0, env, sizeof env) == 0);
	IT_CHECK(dev_expect(&d2, VEIL_MD_REFLECT_ACK, 5000) == 0);
	IT_CHECK(expect_reflected(&d1, env, sizeof env, NULL, 1) == 0);
	/* An ephemeral reflect: no ack, not kept for the offline device. */
	IT_CHECK(reflect(&d2, 8, VEIL_MD_FLAG_EPHEMERAL, eph, sizeof eph) == 0);
	IT_CHECK(expect_reflected(&d1, eph, sizeof eph, NULL, 1) == 0);
	IT_CHECK(dev_quiet(&d2, 200) == 0);
	/* Back online: the queued message, then dry, then nothing after its ack. */
	IT_CHECK(dev_connect(&d3, &g3, 103, VEIL_MD_SLOT_EXISTING) == 0);
	IT_CHECK(d3.si.slot_state == VEIL_MD_SLOT_EXISTING && d3.si.reflection_queue_length == 1);
	IT_CHECK(dev_next(&d3, 5000) == 0 && d3.type == VEIL_MD_REFLECTED);
	struct veil_md_reflect r;
	IT_CHECK(veil_md_reflected_parse(&r, d3.pl, d3.pn) == 0);
	IT_CHECK(r.envelope_len == sizeof env && memcmp(r.envelope, env, sizeof env) == 0);
	rid = r.id;
	IT_CHECK(dev_next(&d3, 5000) == 0 && d3.type == VEIL_MD_REFLECTION_QUEUE_DRY);
	IT_CHECK(reflected_ack(&d3, rid) == 0);
	IT_CHECK(dev_quiet(&d3, 300) == 0);
	/* Acked means gone: the next login finds an empty queue. */
	dev_close(&d3);
	IT_CHECK(dev_connect(&d3, &g3, 103, VEIL_MD_SLOT_EXISTING) == 0);
	IT_CHECK(d3.si.reflection_queue_length == 0);
	IT_CHECK(dev_next(&d3, 5000) == 0 && d3.type == VEIL_MD_REFLECTION_QUEUE_DRY);
	IT_CHECK(dev_quiet(&d3, 200) == 0);
	return 0;
}

static int t_unknown_ack_closes_4012(void)
{
	IT_CHECK(reflected_ack(&d3, 0x7fffff01) == 0);
	IT_CHECK(dev_expect(&d3, 0xff, 5000) == VEIL_MD_CLOSE_UNKNOWN_ACK);
	dev_close(&d3);
	/* The others are untouched. */
	IT_CHECK(dev_quiet(&d1, 100) == 0 && dev_quiet(&d2, 100) == 0);
	return 0;
}

static int t_leader_reelected(void)
{
	/* d1 leads; when it goes, d2 (dry long ago) is promoted. */
	dev_close(&d1);
	IT_CHECK(dev_expect(&d2, VEIL_MD_ROLE_PROMOTED_TO_LEADER, 5000) == 0);
	/* A device coming back gets its dry but no promotion. */
	int l1;
	IT_CHECK(dev_online(&d1, &g3, 101, VEIL_MD_SLOT_EXISTING, &l1) == 0);
	IT_CHECK(l1 == 0);
	IT_CHECK(dev_online(&d3, &g3, 103, VEIL_MD_SLOT_EXISTING, NULL) == 0);
	IT_CHECK(dev_quiet(&d3, 200) == 0);
	return 0;
}

static int t_slots_and_duplicates(void)
{
	struct dev x, y;
	/* The group has 3 of 3 slots: a fourth device is refused under REJECT. */
	IT_CHECK(dev_connect(&x, &g3, 104, VEIL_MD_SLOT_NEW) == VEIL_MD_CLOSE_DEVICE_LIMIT);
	dev_close(&x);
	/* A known device that says it is new, and an unknown one that says it is known. */
	IT_CHECK(dev_connect(&x, &g3, 101, VEIL_MD_SLOT_NEW) == VEIL_MD_CLOSE_SLOT_MISMATCH);
	dev_close(&x);
	IT_CHECK(dev_connect(&x, &g3, 105, VEIL_MD_SLOT_EXISTING) == VEIL_MD_CLOSE_SLOT_MISMATCH);
	dev_close(&x);
	/* A second connection of device 103 replaces the first (4112). */
	IT_CHECK(dev_online(&x, &g3, 103, VEIL_MD_SLOT_EXISTING, NULL) == 0);
	IT_CHECK(dev_expect(&d3, 0xff, 5000) == VEIL_MD_CLOSE_DUPLICATE);
	dev_close(&d3);
	dev_close(&x);
	usleep(100000);
	/* DROP_LEAST_RECENT: 103 (offline, seen last) makes room for 104. */
	IT_CHECK(dev_connect_as(&y, &g3, &g3.k, 104, VEIL_MD_SLOT_NEW,
	                        VEIL_MD_SLOTS_DROP_LEAST_RECENT, NULL, 0) == 0);
	dev_close(&y);
	IT_CHECK(dev_connect(&x, &g3, 103, VEIL_MD_SLOT_EXISTING) == VEIL_MD_CLOSE_SLOT_MISMATCH);
	dev_close(&x);
	dev_close(&d1);
	dev_close(&d2);
	return 0;
}

/* --- CSP through the proxy --- */

struct pcsp {
	struct dev d;
	struct veil_csp_client hs;
	int promoted; /* RolePromotedToLeader seen */
	uint8_t buf[2 + VEIL_CSP_MAX_FRAME];
	size_t len;
};

/* The next proxy payload (one whole CSP message); notes a promotion on the way. */
static int pcsp_next(struct pcsp *c, int timeout_ms)
{
	for (;;) {
		int rc = dev_next(&c->d, timeout_ms);
		if (rc != 0)
			return rc;
		if (c->d.type == VEIL_MD_ROLE_PROMOTED_TO_LEADER)
			c->promoted = 1;
		if (c->d.type == VEIL_MD_PROXY)
			return 0;
	}
}

static int pcsp_send(struct pcsp *c, uint8_t type, const uint8_t *d, size_t n)
{
	uint8_t plain[VEIL_CSP_MAX_PAYLOAD], frame[2 + VEIL_CSP_MAX_FRAME];
	veil_csp_payload_header(plain, type);
	if (n > 0)
		memcpy(plain + 4, d, n);
	int rc = veil_csp_frame_seal(&c->hs.sess, frame, plain, n + 4);
	if (rc != 0)
		return rc;
	return dev_send(&c->d, VEIL_MD_PROXY, frame, 2 + VEIL_MAC_LEN + n + 4);
}

/* Receives frames until one of type; each proxy payload must be exactly one frame. */
static int pcsp_expect(struct pcsp *c, uint8_t type)
{
	for (;;) {
		if (pcsp_next(c, 5000) != 0)
			return -1;
		if (c->d.pn < 2 || veil_load_u16le(c->d.pl) + 2u != c->d.pn)
			return -2;
		if (veil_csp_frame_open(&c->hs.sess, c->buf, c->d.pl + 2, c->d.pn - 2) != 0)
			return -3;
		c->len = c->d.pn - 2 - VEIL_MAC_LEN;
		if (c->buf[0] == type)
			return 0;
	}
}

/* Waits for the promotion; no CSP message may come first. */
static int pcsp_promoted(struct pcsp *c)
{
	while (!c->promoted) {
		if (dev_next(&c->d, 5000) != 0 || c->d.type == VEIL_MD_PROXY)
			return -1;
		c->promoted = c->d.type == VEIL_MD_ROLE_PROMOTED_TO_LEADER;
	}
	return 0;
}

/*
 * Device did of g connects, sending its CSP client-hello before the D2M
 * handshake is over, and logs in as u with csp-device-id csp_did (0: none)
 * through the proxy. Returns 0 once the login-ack is in.
 */
static int pcsp_login(struct pcsp *c, const struct group *g, uint64_t did, const struct it_user *u,
                      uint64_t csp_did)
{
	uint8_t hello[VEIL_CSP_CLIENT_HELLO_LEN];
	memset(c, 0, sizeof *c);
	veil_csp_client_hello(&c->hs, srv.csp_pk, hello);
	if (dev_connect_as(&c->d, g, &g->k, did, VEIL_MD_SLOT_NEW, 0, hello, sizeof hello) != 0)
		return -1;
	if (pcsp_next(c, 5000) != 0 || c->d.pn != VEIL_CSP_SERVER_HELLO_LEN ||
	    veil_csp_client_server_hello(&c->hs, c->d.pl) != 0)
		return -2;
	struct veil_buf login;
	veil_buf_init(&login, 8192);
	int rc =
	    veil_csp_client_login(&c->hs, &login, u->id, u->sk, "0.1;B;en/CH;it;md", csp_did, NULL);
	if (rc == 0)
		rc = dev_send(&c->d, VEIL_MD_PROXY, login.p, login.len);
	veil_buf_release(&login);
	if (rc != 0)
		return -3;
	if (pcsp_next(c, 5000) != 0 || c->d.pn != VEIL_CSP_LOGIN_ACK_LEN ||
	    veil_csp_client_login_ack(&c->hs, c->d.pl) != 0)
		return -4;
	return 0;
}

/* The incoming text in c->buf is from bob and reads want; acks it. */
static int pcsp_got_text(struct pcsp *c, const char *want)
{
	char text[256];
	uint64_t got;
	struct it_conn view = {.fd = -1};
	if (pcsp_expect(c, VEIL_CSP_INCOMING_MESSAGE) != 0)
		return -1;
	memcpy(view.buf, c->buf, c->len);
	view.len = c->len;
	if (it_open_text(&view, &alice, &bob, text, sizeof text, &got) != 0 ||
	    strcmp(text, want) != 0)
		return -2;
	uint8_t ack[16];
	veil_csp_ack_encode(ack, bob.id, got);
	return pcsp_send(c, VEIL_CSP_INCOMING_ACK, ack, sizeof ack);
}

/* Bob sends text to alice and gets the server's ack. */
static int bob_sends(struct it_conn *b, const char *text)
{
	struct veil_buf m;
	veil_buf_init(&m, 8192);
	int rc = it_text(&m, &bob, &alice, veil_random_u64(), text, 0);
	if (rc == 0)
		rc = it_send(b, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len);
	veil_buf_release(&m);
	if (rc == 0)
		rc = it_expect(b, VEIL_CSP_OUTGOING_ACK, 5000);
	return rc;
}

/*
 * Every device of alice has its own CSP session through the proxy (with
 * its csp-device-id) and may send; only the leader, once it unblocked
 * incoming messages, receives. When it goes, the next leader takes over.
 */
static int t_devices_chat_through_proxy(void)
{
	struct group g;
	static struct pcsp a, o;
	struct it_conn b;
	char text[256];
	uint64_t id, got;
	group_new(&g);
	IT_CHECK(pcsp_login(&a, &g, 201, &alice, 0xa11ce01) == 0);
	IT_CHECK(pcsp_promoted(&a) == 0);
	IT_CHECK(pcsp_send(&a, VEIL_CSP_UNBLOCK_INCOMING, NULL, 0) == 0);
	IT_CHECK(pcsp_expect(&a, VEIL_CSP_QUEUE_SEND_COMPLETE) == 0);
	/* A second device logs in too; it does not lead and gets no queue. */
	IT_CHECK(pcsp_login(&o, &g, 202, &alice, 0xa11ce02) == 0);
	IT_CHECK(o.promoted == 0);

	/* Bob, directly on the chat port, writes to alice: only the leader gets it. */
	IT_CHECK(it_login(&b, &srv, bob.id, bob.sk) == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	IT_CHECK(bob_sends(&b, "to alice's leader") == 0);
	IT_CHECK(pcsp_got_text(&a, "to alice's leader") == 0);
	IT_CHECK(dev_quiet(&o.d, 300) == 0);

	/* The device that does not lead sends; bob gets it, it gets the server's ack. */
	struct veil_buf m;
	veil_buf_init(&m, 8192);
	id = veil_random_u64();
	IT_CHECK(it_text(&m, &alice, &bob, id, "from a device that does not lead", 0) == 0);
	IT_CHECK(pcsp_send(&o, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len) == 0);
	veil_buf_release(&m);
	IT_CHECK(pcsp_expect(&o, VEIL_CSP_OUTGOING_ACK) == 0);
	IT_CHECK(memcmp(o.buf + 4, bob.id, 8) == 0 && veil_load_u64le(o.buf + 12) == id);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(it_open_text(&b, &bob, &alice, text, sizeof text, &got) == 0);
	IT_CHECK(strcmp(text, "from a device that does not lead") == 0 && got == id);
	IT_CHECK(it_ack(&b, alice.id, got) == 0);
	/* The leader still has its session and nothing new. */
	IT_CHECK(dev_quiet(&a.d, 200) == 0);

	/* The leader goes: a message waits; the other device, promoted, unblocks and gets it. */
	dev_close(&a.d);
	IT_CHECK(pcsp_promoted(&o) == 0);
	IT_CHECK(bob_sends(&b, "to the next leader") == 0);
	IT_CHECK(dev_quiet(&o.d, 300) == 0);
	IT_CHECK(pcsp_send(&o, VEIL_CSP_UNBLOCK_INCOMING, NULL, 0) == 0);
	IT_CHECK(pcsp_got_text(&o, "to the next leader") == 0);
	IT_CHECK(pcsp_expect(&o, VEIL_CSP_QUEUE_SEND_COMPLETE) == 0);
	dev_close(&o.d);
	it_close(&b);
	return 0;
}

/*
 * A leader's backlog larger than the chat service lets a session's output
 * wait (VEIL_CHAT_MAX_PENDING_WRITE, 512 KiB): the in-process session
 * waits until the mediator took it and then goes on; every message comes
 * once, in order.
 */
static int t_leader_drains_a_large_backlog(void)
{
	enum { N = 120, LEN = 6000 };
	static char text[LEN + 1], got_text[LEN + 1];
	static struct pcsp a;
	struct group g;
	struct it_conn b;
	IT_CHECK(it_login(&b, &srv, bob.id, bob.sk) == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	for (int i = 0; i < N; i++) {
		memset(text, 'a' + i % 26, LEN);
		text[LEN] = 0;
		snprintf(text, 12, "backlog %03d", i);
		text[11] = ' ';
		IT_CHECK(bob_sends(&b, text) == 0);
	}
	it_close(&b);
	group_new(&g);
	IT_CHECK(pcsp_login(&a, &g, 211, &alice, 0xa11ce11) == 0);
	IT_CHECK(pcsp_promoted(&a) == 0);
	IT_CHECK(pcsp_send(&a, VEIL_CSP_UNBLOCK_INCOMING, NULL, 0) == 0);
	for (int i = 0; i < N; i++) {
		struct it_conn view = {.fd = -1};
		uint64_t id;
		char want[16];
		int erc = pcsp_expect(&a, VEIL_CSP_INCOMING_MESSAGE);
		if (erc != 0)
			fprintf(stderr, "message %d: %d\n", i, erc);
		IT_CHECK(erc == 0);
		memcpy(view.buf, a.buf, a.len);
		view.len = a.len;
		IT_CHECK(it_open_text(&view, &alice, &bob, got_text, sizeof got_text, &id) == 0);
		snprintf(want, sizeof want, "backlog %03d ", i);
		IT_CHECK(strlen(got_text) == LEN && memcmp(got_text, want, 12) == 0);
		uint8_t ack[16];
		veil_csp_ack_encode(ack, bob.id, id);
		IT_CHECK(pcsp_send(&a, VEIL_CSP_INCOMING_ACK, ack, sizeof ack) == 0);
	}
	IT_CHECK(pcsp_expect(&a, VEIL_CSP_QUEUE_SEND_COMPLETE) == 0);
	dev_close(&a.d);
	return 0;
}

/*
 * A direct CSP client-hello to s on the chat port: 0 if the server-hello
 * comes back (the connection is admitted; it stays open in *fd), else the
 * error. A refused connection is closed at once: VEIL_ECLOSED, or VEIL_EIO
 * if the close came before the write.
 */
static int direct_hello(const struct it_server *s, int *fd)
{
	struct veil_csp_client hs;
	uint8_t ch[VEIL_CSP_CLIENT_HELLO_LEN], sh[VEIL_CSP_SERVER_HELLO_LEN];
	*fd = it_tcp_connect(s->chat_port);
	if (*fd < 0)
		return VEIL_EIO;
	veil_csp_client_hello(&hs, s->csp_pk, ch);
	int rc = it_write_all(*fd, ch, sizeof ch);
	if (rc == 0)
		rc = it_read_exact(*fd, sh, sizeof sh, 5000);
	if (rc == 0)
		rc = veil_csp_client_server_hello(&hs, sh);
	if (rc != 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

/*
 * --chat-conn-per-addr counts every client address, loopback too; the
 * devices' CSP sessions (in-process, with no address) count against none:
 * with a cap of one connection per address and that one taken by a direct
 * client, devices still get their CSP sessions, and a second direct client
 * is still refused.
 */
static int limits_spare_mediator(struct it_server *s2, int *x1)
{
	enum { N = 3 };
	static struct pcsp dv[N];
	struct group g;
	int x2 = -1, rc = -1;
	/* it_start's probe of the chat port may still be counted for a moment. */
	for (int i = 0; i < 50 && (rc = direct_hello(s2, x1)) != 0; i++)
		usleep(100000);
	IT_CHECK(rc == 0);
	rc = direct_hello(s2, &x2);
	IT_CHECK(rc == VEIL_ECLOSED || rc == VEIL_EIO);
	group_new(&g);
	for (int i = 0; i < N; i++) {
		uint8_t hello[VEIL_CSP_CLIENT_HELLO_LEN];
		struct pcsp *c = &dv[i];
		memset(c, 0, sizeof *c);
		veil_csp_client_hello(&c->hs, s2->csp_pk, hello);
		wsrv = s2;
		rc = dev_connect_as(&c->d, &g, &g.k, 601 + (uint64_t)i, VEIL_MD_SLOT_NEW, 0, hello,
		                    sizeof hello);
		wsrv = &srv;
		IT_CHECK(rc == 0);
		IT_CHECK(pcsp_next(c, 5000) == 0 && c->d.pn == VEIL_CSP_SERVER_HELLO_LEN);
		IT_CHECK(veil_csp_client_server_hello(&c->hs, c->d.pl) == 0);
	}
	/* The devices' sessions took no address's place: loopback is still limited. */
	rc = direct_hello(s2, &x2);
	IT_CHECK(rc == VEIL_ECLOSED || rc == VEIL_EIO);
	for (int i = 0; i < N; i++)
		dev_close(&dv[i].d);
	return 0;
}

static int t_chat_limits_spare_mediator(void)
{
	static struct it_server s2;
	int x1 = -1;
	s2.extra[0] = "--chat-conn-per-addr";
	s2.extra[1] = "1";
	IT_CHECK(it_start(&s2) == 0);
	int rc = limits_spare_mediator(&s2, &x1);
	if (x1 >= 0)
		close(x1);
	IT_CHECK(it_stop(&s2, SIGTERM) == 0);
	return rc;
}

/* Scans every value of every table of the mediator's store for needle. */
static int db_contains(sqlite3 *db, const uint8_t *needle, size_t n)
{
	sqlite3_stmt *t, *st;
	int found = 0;
	if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &t,
	                       NULL) != SQLITE_OK)
		return -1;
	while (!found && sqlite3_step(t) == SQLITE_ROW) {
		char q[256];
		snprintf(q, sizeof q, "SELECT * FROM \"%s\"",
		         (const char *)sqlite3_column_text(t, 0));
		if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
			found = -1;
			break;
		}
		while (!found && sqlite3_step(st) == SQLITE_ROW)
			for (int i = 0; i < sqlite3_column_count(st); i++) {
				const void *v = sqlite3_column_blob(st, i);
				int len = sqlite3_column_bytes(st, i);
				if (v != NULL && memmem(v, (size_t)len, needle, n) != NULL)
					found = 1;
			}
		sqlite3_finalize(st);
	}
	sqlite3_finalize(t);
	return found;
}

/* Reads the data of the md_* tables of the server's PostgreSQL store as pg_dump writes it. */
static char *pg_md_dump(size_t *len)
{
	const char *url = srv.store[0] != '\0' ? srv.store : getenv("VEIL_IT_STORE");
	char out[] = "/tmp/veil-md-dump.XXXXXX";
	int fd = mkstemp(out);
	if (fd < 0)
		return NULL;
	pid_t p = fork();
	if (p == 0) {
		if (dup2(fd, 1) < 0)
			_exit(127);
		execlp("pg_dump", "pg_dump", "-a", "-t", "md_*", "-d", url, (char *)NULL);
		_exit(127);
	}
	int st = -1;
	char *buf = NULL;
	if (p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		off_t n = lseek(fd, 0, SEEK_END);
		buf = n > 0 ? malloc((size_t)n + 1) : NULL;
		if (buf != NULL && pread(fd, buf, (size_t)n, 0) == n) {
			buf[n] = 0;
			*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	close(fd);
	unlink(out);
	return buf;
}

/* The text dump holds bytea as lowercase hex and text as is. */
static int dump_has(const char *d, size_t n, const uint8_t *v, size_t vn, int text)
{
	char hex[2 * 64 + 1];
	if (text && memmem(d, n, v, vn) != NULL)
		return 1;
	if (veil_hex_encode(hex, sizeof hex, v, vn) != 0)
		return -1;
	return memmem(d, n, hex, 2 * vn) != NULL;
}

static int pg_no_identity(void)
{
	size_t n = 0;
	char *d = pg_md_dump(&n);
	IT_CHECK(d != NULL);
	/* The dump is read right: the groups of the tests above are in it. */
	IT_CHECK(dump_has(d, n, g3.k.group_id, 32, 0) == 1);
	const struct it_user *users[] = {&alice, &bob};
	for (size_t i = 0; i < 2; i++) {
		char hex[65];
		IT_CHECK(dump_has(d, n, users[i]->id, 8, 1) == 0);
		IT_CHECK(dump_has(d, n, users[i]->pk, 32, 0) == 0);
		IT_CHECK(veil_hex_encode(hex, sizeof hex, users[i]->pk, 32) == 0);
		IT_CHECK(dump_has(d, n, (const uint8_t *)hex, 64, 1) == 0);
	}
	free(d);
	return 0;
}

static int t_no_identity_in_mediator_tables(void)
{
	char path[512];
	sqlite3 *db;
	snprintf(path, sizeof path, "%s/mediator.db", srv.data);
	if (it_on_pg()) {
		IT_CHECK(access(path, F_OK) != 0);
		return pg_no_identity();
	}
	IT_CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
	/* The store is not empty: the groups of the tests above are in it. */
	IT_CHECK(db_contains(db, g3.k.group_id, 32) == 1);
	const struct it_user *users[] = {&alice, &bob};
	for (size_t i = 0; i < 2; i++) {
		char hex[65];
		IT_CHECK(db_contains(db, users[i]->id, 8) == 0);
		IT_CHECK(db_contains(db, users[i]->pk, 32) == 0);
		IT_CHECK(veil_hex_encode(hex, sizeof hex, users[i]->pk, 32) == 0);
		IT_CHECK(db_contains(db, (const uint8_t *)hex, 64) == 0);
	}
	sqlite3_close(db);
	return 0;
}

/*
 * Two devices reflect bursts into one group without waiting for their
 * acks; the third, online and caught up (so fed from the committed batch
 * in memory), gets every reflect exactly once and each sender's in order,
 * and, having acked them all, finds its queue empty when it reconnects.
 */
static int t_burst_from_two_senders(void)
{
	enum { N = 60 };
	struct group g;
	struct dev a, b, c;
	uint32_t next[2] = {0, 0};
	group_new(&g);
	IT_CHECK(dev_online(&a, &g, 401, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&b, &g, 402, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&c, &g, 403, VEIL_MD_SLOT_NEW, NULL) == 0);
	for (uint32_t i = 0; i < N; i++) {
		uint8_t env[8] = {'a'};
		veil_store_u32le(env + 4, i);
		IT_CHECK(reflect(&a, i + 1, 0, env, sizeof env) == 0);
		env[0] = 'b';
		IT_CHECK(reflect(&b, i + 1, 0, env, sizeof env) == 0);
	}
	for (int k = 0; k < 2 * N; k++) {
		struct veil_md_reflect r;
		IT_CHECK(dev_expect(&c, VEIL_MD_REFLECTED, 5000) == 0);
		IT_CHECK(veil_md_reflected_parse(&r, c.pl, c.pn) == 0 && r.envelope_len == 8);
		int from_b = r.envelope[0] == 'b';
		IT_CHECK(r.envelope[0] == 'a' || from_b);
		IT_CHECK(veil_load_u32le(r.envelope + 4) == next[from_b]);
		next[from_b]++;
		IT_CHECK(reflected_ack(&c, r.id) == 0);
	}
	IT_CHECK(dev_quiet(&c, 300) == 0);
	dev_close(&c);
	dev_close(&a);
	dev_close(&b);
	IT_CHECK(dev_connect(&c, &g, 403, VEIL_MD_SLOT_EXISTING) == 0);
	IT_CHECK(c.si.reflection_queue_length == 0);
	dev_close(&c);
	return 0;
}

static int t_kill9_loses_no_acked_reflect(void)
{
	enum { N = 20 };
	struct group g;
	struct dev a, b;
	uint8_t env[N][48];
	group_new(&g);
	IT_CHECK(dev_online(&a, &g, 301, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&b, &g, 302, VEIL_MD_SLOT_NEW, NULL) == 0);
	dev_close(&b);
	usleep(100000);
	for (uint32_t i = 0; i < N; i++) {
		randombytes_buf(env[i], sizeof env[i]);
		IT_CHECK(reflect(&a, i + 1, 0, env[i], sizeof env[i]) == 0);
	}
	for (uint32_t i = 0; i < N; i++) {
		struct veil_md_reflect r;
		IT_CHECK(dev_expect(&a, VEIL_MD_REFLECT_ACK, 5000) == 0);
		IT_CHECK(veil_md_reflect_ack_parse(&r, a.pl, a.pn) == 0 && r.id == i + 1);
	}
	IT_CHECK(it_stop(&srv, SIGKILL) == 0);
	dev_close(&a);
	IT_CHECK(it_start(&srv) == 0);
	IT_CHECK(dev_connect(&b, &g, 302, VEIL_MD_SLOT_EXISTING) == 0);
	IT_CHECK(b.si.reflection_queue_length == N);
	for (uint32_t i = 0; i < N; i++)
		IT_CHECK(expect_reflected(&b, env[i], sizeof env[i], NULL, 1) == 0);
	IT_CHECK(dev_next(&b, 5000) == 0 && b.type == VEIL_MD_REFLECTION_QUEUE_DRY);
	dev_close(&b);
	return 0;
}

/* SIGTERM with a leader and a follower online: both are closed, veild exits 0. */
static int t_clean_shutdown_with_devices(void)
{
	struct group g;
	struct dev a, b;
	int la, lb;
	group_new(&g);
	IT_CHECK(dev_online(&a, &g, 401, VEIL_MD_SLOT_NEW, &la) == 0 && la == 1);
	IT_CHECK(dev_online(&b, &g, 402, VEIL_MD_SLOT_NEW, &lb) == 0 && lb == 0);
	IT_CHECK(it_stop(&srv, SIGTERM) == 0);
	IT_CHECK(dev_expect(&a, 0xff, 5000) > 0 && dev_expect(&b, 0xff, 5000) > 0);
	dev_close(&a);
	dev_close(&b);
	return 0;
}

/* --- transactions --- */

static struct group gt;
static struct dev ta, tb;

static int begin_tx(struct dev *d, int scope, uint32_t ttl)
{
	struct veil_buf sc, b;
	veil_buf_init(&sc, VEIL_MD_SCOPE_MAX);
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	int rc = veil_md_scope_seal(&sc, d->k, scope);
	if (rc == 0)
		rc = veil_md_begin_tx_encode(&b, sc.p, sc.len, ttl);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&sc);
	veil_buf_release(&b);
	return rc;
}

/* Expects TransactionRejected / TransactionEnded naming device did and scope. */
static int expect_tx_info(struct dev *d, uint8_t type, uint64_t did, int scope)
{
	static struct veil_md_tx t;
	int sc;
	if (dev_expect(d, type, 5000) != 0 || veil_md_tx_info_parse(&t, d->pl, d->pn) != 0)
		return -1;
	if (t.device_id != did || veil_md_scope_open(&sc, d->k, t.scope, t.scope_len) != 0)
		return -1;
	return sc == scope ? 0 : -1;
}

static int t_tx_contend_and_commit(void)
{
	uint8_t env[200];
	uint32_t rid;
	int la, lb;
	struct veil_md_reflect r;
	group_new(&gt);
	IT_CHECK(dev_online(&ta, &gt, 201, VEIL_MD_SLOT_NEW, &la) == 0);
	IT_CHECK(dev_online(&tb, &gt, 202, VEIL_MD_SLOT_NEW, &lb) == 0);
	/* a takes the lock; b is told who holds it and for what. */
	IT_CHECK(begin_tx(&ta, 1, 0) == 0);
	IT_CHECK(dev_next(&ta, 5000) == 0 && ta.type == VEIL_MD_BEGIN_TRANSACTION_ACK);
	IT_CHECK(begin_tx(&tb, 4, 0) == 0);
	IT_CHECK(expect_tx_info(&tb, VEIL_MD_TRANSACTION_REJECTED, 201, 1) == 0);
	/* a's reflect is acked at once and reaches b only at the commit. */
	randombytes_buf(env, sizeof env);
	IT_CHECK(reflect(&ta, 0x5101, 0, env, sizeof env) == 0);
	IT_CHECK(dev_next(&ta, 5000) == 0 && ta.type == VEIL_MD_REFLECT_ACK);
	IT_CHECK(veil_md_reflect_ack_parse(&r, ta.pl, ta.pn) == 0 && r.id == 0x5101);
	IT_CHECK(dev_quiet(&tb, 300) == 0);
	IT_CHECK(dev_send(&ta, VEIL_MD_COMMIT_TRANSACTION, NULL, 0) == 0);
	IT_CHECK(dev_next(&ta, 5000) == 0 && ta.type == VEIL_MD_COMMIT_TRANSACTION_ACK);
	IT_CHECK(expect_reflected(&tb, env, sizeof env, &rid, 1) == 0);
	IT_CHECK(expect_tx_info(&tb, VEIL_MD_TRANSACTION_ENDED, 201, 1) == 0);
	/* The committer gets no TransactionEnded; the lock is free for b now. */
	IT_CHECK(dev_quiet(&ta, 200) == 0);
	IT_CHECK(begin_tx(&tb, 4, 30) == 0);
	IT_CHECK(dev_next(&tb, 5000) == 0 && tb.type == VEIL_MD_BEGIN_TRANSACTION_ACK);
	IT_CHECK(dev_send(&tb, VEIL_MD_COMMIT_TRANSACTION, NULL, 0) == 0);
	IT_CHECK(dev_next(&tb, 5000) == 0 && tb.type == VEIL_MD_COMMIT_TRANSACTION_ACK);
	IT_CHECK(expect_tx_info(&ta, VEIL_MD_TRANSACTION_ENDED, 202, 4) == 0);
	/* The reflect committed is a durable one: b's queue is empty after its ack. */
	IT_CHECK(dev_quiet(&tb, 100) == 0);
	return 0;
}

static int t_tx_ttl_closes_4011(void)
{
	uint8_t env[80];
	randombytes_buf(env, sizeof env);
	/* TTL 0 is the server's maximum (--mediator-tx-ttl 2 here). */
	uint64_t t0 = veil_now_ms();
	IT_CHECK(begin_tx(&tb, 2, 0) == 0);
	IT_CHECK(dev_next(&tb, 5000) == 0 && tb.type == VEIL_MD_BEGIN_TRANSACTION_ACK);
	IT_CHECK(reflect(&tb, 0x5201, 0, env, sizeof env) == 0);
	IT_CHECK(dev_next(&tb, 5000) == 0 && tb.type == VEIL_MD_REFLECT_ACK);
	IT_CHECK(dev_expect(&tb, 0xff, 6000) == VEIL_MD_CLOSE_TRANSACTION_TTL);
	uint64_t dt = veil_now_ms() - t0;
	IT_CHECK(dt >= 1900 && dt < 5000);
	dev_close(&tb);
	/* Aborted: the others hear it ended and never get the held reflect. */
	IT_CHECK(expect_tx_info(&ta, VEIL_MD_TRANSACTION_ENDED, 202, 2) == 0);
	IT_CHECK(dev_quiet(&ta, 300) == 0);
	/* A TTL over the maximum is cut to it; a disconnected holder frees the lock too. */
	IT_CHECK(dev_online(&tb, &gt, 202, VEIL_MD_SLOT_EXISTING, NULL) == 0);
	IT_CHECK(tb.si.reflection_queue_length == 0);
	IT_CHECK(begin_tx(&ta, 3, 1000) == 0);
	IT_CHECK(dev_next(&ta, 5000) == 0 && ta.type == VEIL_MD_BEGIN_TRANSACTION_ACK);
	dev_close(&ta);
	IT_CHECK(expect_tx_info(&tb, VEIL_MD_TRANSACTION_ENDED, 201, 3) == 0);
	IT_CHECK(begin_tx(&tb, 0, 1) == 0);
	/* b leads now: its promotion may come first. */
	IT_CHECK(dev_expect(&tb, VEIL_MD_BEGIN_TRANSACTION_ACK, 5000) == 0);
	IT_CHECK(dev_expect(&tb, 0xff, 4000) == VEIL_MD_CLOSE_TRANSACTION_TTL);
	dev_close(&tb);
	return 0;
}

static int t_tx_commit_without_begin_4010(void)
{
	int l;
	IT_CHECK(dev_online(&ta, &gt, 201, VEIL_MD_SLOT_EXISTING, &l) == 0);
	IT_CHECK(dev_send(&ta, VEIL_MD_COMMIT_TRANSACTION, NULL, 0) == 0);
	IT_CHECK(dev_expect(&ta, 0xff, 5000) == VEIL_MD_CLOSE_PROTOCOL);
	dev_close(&ta);
	/* So is a second BeginTransaction of the holder. */
	IT_CHECK(dev_online(&ta, &gt, 201, VEIL_MD_SLOT_EXISTING, &l) == 0);
	IT_CHECK(begin_tx(&ta, 1, 0) == 0);
	IT_CHECK(dev_next(&ta, 5000) == 0 && ta.type == VEIL_MD_BEGIN_TRANSACTION_ACK);
	IT_CHECK(begin_tx(&ta, 1, 0) == 0);
	IT_CHECK(dev_expect(&ta, 0xff, 5000) == VEIL_MD_CLOSE_PROTOCOL);
	dev_close(&ta);
	return 0;
}

/* --- device management --- */

static struct group gm;
static struct dev m1, m2, m3;

struct seen_devs {
	const struct veil_md_keys *k;
	int n, bad;
	uint64_t ids[8];
	int connected[8];
	int policy[8];
	uint64_t since[8];
	char label[8][VEIL_MD_INFO_STR_MAX + 1];
};

static int seen_dev(void *arg, const struct veil_md_device_entry *e)
{
	struct seen_devs *sd = arg;
	static struct veil_md_device_info info;
	if (sd->n == 8 ||
	    (e->expiration_policy != VEIL_MD_SLOT_PERSISTENT &&
	     e->expiration_policy != VEIL_MD_SLOT_VOLATILE) ||
	    veil_md_device_info_open(&info, sd->k, e->enc_info, e->enc_info_len) != 0) {
		sd->bad = 1;
		return 0;
	}
	sd->ids[sd->n] = e->device_id;
	sd->connected[sd->n] = e->connected;
	sd->policy[sd->n] = e->expiration_policy;
	sd->since[sd->n] = e->since;
	snprintf(sd->label[sd->n], sizeof sd->label[0], "%s", info.label);
	sd->n++;
	return 0;
}

/* GetDevicesInfo; the answer into sd (devices in ID order). */
static int devices_info(struct dev *d, struct seen_devs *sd)
{
	memset(sd, 0, sizeof *sd);
	sd->k = d->k;
	if (dev_send(d, VEIL_MD_GET_DEVICES_INFO, NULL, 0) != 0 ||
	    dev_expect(d, VEIL_MD_DEVICES_INFO, 5000) != 0)
		return -1;
	if (veil_md_devices_info_parse(d->pl, d->pn, seen_dev, sd) != 0 || sd->bad)
		return -1;
	/* A map has no order on the wire: sort by ID. */
	for (int i = 1; i < sd->n; i++)
		for (int j = i; j > 0 && sd->ids[j - 1] > sd->ids[j]; j--) {
			uint64_t t = sd->ids[j];
			sd->ids[j] = sd->ids[j - 1];
			sd->ids[j - 1] = t;
			int c = sd->connected[j];
			sd->connected[j] = sd->connected[j - 1];
			sd->connected[j - 1] = c;
			c = sd->policy[j];
			sd->policy[j] = sd->policy[j - 1];
			sd->policy[j - 1] = c;
			t = sd->since[j];
			sd->since[j] = sd->since[j - 1];
			sd->since[j - 1] = t;
			char l[VEIL_MD_INFO_STR_MAX + 1];
			memcpy(l, sd->label[j], sizeof l);
			memcpy(sd->label[j], sd->label[j - 1], sizeof l);
			memcpy(sd->label[j - 1], l, sizeof l);
		}
	return 0;
}

static int t_devices_info(void)
{
	static struct seen_devs sd;
	group_new(&gm);
	uint64_t t0 = veil_now_ms();
	IT_CHECK(dev_online(&m1, &gm, 301, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&m2, &gm, 302, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&m3, &gm, 303, VEIL_MD_SLOT_NEW, NULL) == 0);
	dev_close(&m3);
	usleep(200000);
	uint64_t t1 = veil_now_ms();
	IT_CHECK(devices_info(&m1, &sd) == 0);
	IT_CHECK(sd.n == 3 && sd.ids[0] == 301 && sd.ids[1] == 302 && sd.ids[2] == 303);
	IT_CHECK(sd.connected[0] && sd.connected[1] && !sd.connected[2]);
	IT_CHECK(sd.policy[0] == VEIL_MD_SLOT_PERSISTENT &&
	         sd.policy[2] == VEIL_MD_SLOT_PERSISTENT);
	IT_CHECK(sd.since[0] >= t0 && sd.since[0] <= t1 && sd.since[2] >= sd.since[1] &&
	         sd.since[2] <= t1);
	IT_CHECK(strcmp(sd.label[1], "it device 302") == 0);
	/* Any device may ask; m2 sees the same. */
	IT_CHECK(devices_info(&m2, &sd) == 0 && sd.n == 3);
	return 0;
}

static int t_drop_device(void)
{
	static struct seen_devs sd;
	struct veil_buf b;
	uint64_t did;
	uint8_t env[32];
	randombytes_buf(env, sizeof env);
	/* 303 is offline with a message queued; m1 drops it and the connected 302. */
	IT_CHECK(reflect(&m1, 0x6301, 0, env, sizeof env) == 0);
	IT_CHECK(dev_expect(&m1, VEIL_MD_REFLECT_ACK, 5000) == 0);
	IT_CHECK(expect_reflected(&m2, env, sizeof env, NULL, 1) == 0);
	veil_buf_init(&b, 64);
	IT_CHECK(veil_md_drop_device_encode(&b, VEIL_MD_DROP_DEVICE, 302) == 0);
	IT_CHECK(it_ws_send(m1.fd, b.p, b.len) == 0);
	IT_CHECK(dev_expect(&m2, 0xff, 5000) == VEIL_MD_CLOSE_DROPPED);
	dev_close(&m2);
	IT_CHECK(dev_expect(&m1, VEIL_MD_DROP_DEVICE_ACK, 5000) == 0);
	IT_CHECK(veil_md_drop_device_parse(&did, m1.pl, m1.pn) == 0 && did == 302);
	veil_buf_reset(&b);
	IT_CHECK(veil_md_drop_device_encode(&b, VEIL_MD_DROP_DEVICE, 303) == 0);
	IT_CHECK(it_ws_send(m1.fd, b.p, b.len) == 0);
	IT_CHECK(dev_expect(&m1, VEIL_MD_DROP_DEVICE_ACK, 5000) == 0);
	IT_CHECK(veil_md_drop_device_parse(&did, m1.pl, m1.pn) == 0 && did == 303);
	veil_buf_release(&b);
	IT_CHECK(devices_info(&m1, &sd) == 0 && sd.n == 1 && sd.ids[0] == 301);
	/* Their slots are gone (4115 for EXISTING) and so is 303's queue. */
	IT_CHECK(dev_connect(&m2, &gm, 302, VEIL_MD_SLOT_EXISTING) == VEIL_MD_CLOSE_SLOT_MISMATCH);
	dev_close(&m2);
	IT_CHECK(dev_connect(&m3, &gm, 303, VEIL_MD_SLOT_NEW) == 0);
	IT_CHECK(m3.si.reflection_queue_length == 0);
	dev_close(&m3);
	return 0;
}

static int t_shared_device_data(void)
{
	struct veil_buf box, b;
	uint32_t version;
	veil_buf_init(&box, VEIL_MD_ENC_BLOB_MAX);
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	IT_CHECK(m1.si.enc_shared_data_len == 0);
	IT_CHECK(veil_md_shared_data_seal(&box, &gm.k, 7) == 0);
	IT_CHECK(veil_md_set_shared_data_encode(&b, box.p, box.len) == 0);
	IT_CHECK(it_ws_send(m1.fd, b.p, b.len) == 0);
	/* No answer is defined; the next login of any device carries it. */
	IT_CHECK(dev_quiet(&m1, 200) == 0);
	IT_CHECK(dev_connect(&m2, &gm, 302, VEIL_MD_SLOT_NEW) == 0);
	IT_CHECK(m2.si.enc_shared_data_len == box.len &&
	         memcmp(m2.si.enc_shared_data, box.p, box.len) == 0);
	IT_CHECK(veil_md_shared_data_open(&version, &gm.k, m2.si.enc_shared_data,
	                                  m2.si.enc_shared_data_len) == 0 &&
	         version == 7);
	/* A device may drop itself: ack, then 4113. */
	veil_buf_reset(&b);
	IT_CHECK(veil_md_drop_device_encode(&b, VEIL_MD_DROP_DEVICE, 302) == 0);
	IT_CHECK(it_ws_send(m2.fd, b.p, b.len) == 0);
	IT_CHECK(dev_expect(&m2, VEIL_MD_DROP_DEVICE_ACK, 5000) == 0);
	IT_CHECK(dev_expect(&m2, 0xff, 5000) == VEIL_MD_CLOSE_DROPPED);
	dev_close(&m2);
	dev_close(&m1);
	veil_buf_release(&box);
	veil_buf_release(&b);
	return 0;
}

/*
 * A connection that does not complete the D2M handshake is closed (4013)
 * after --mediator-handshake-timeout (3 s here); one that did is not.
 */
static int t_handshake_timeout_4013(void)
{
	struct group g;
	struct dev x, lazy;
	static struct seen_devs sd;
	group_new(&g);
	IT_CHECK(dev_online(&x, &g, 701, VEIL_MD_SLOT_NEW, NULL) == 0);
	memset(&lazy, 0, sizeof lazy);
	lazy.fd = ws_connect(g.path);
	IT_CHECK(lazy.fd >= 0);
	IT_CHECK(dev_next(&lazy, 5000) == 0 && lazy.type == VEIL_MD_SERVER_HELLO);
	/* No ClientHello. */
	IT_CHECK(dev_expect(&lazy, 0xff, 15000) == VEIL_MD_CLOSE_IDLE);
	dev_close(&lazy);
	/* x connected earlier and is still served. */
	IT_CHECK(devices_info(&x, &sd) == 0 && sd.n == 1 && sd.ids[0] == 701);
	dev_close(&x);
	return 0;
}

/*
 * A VOLATILE slot is forgotten once its device has been offline for
 * --mediator-volatile-ttl (1 s here), with its queue; a PERSISTENT one
 * offline as long is kept.
 */
static int t_volatile_slot_expires(void)
{
	struct group g;
	struct dev p, q, v;
	static struct seen_devs sd;
	uint8_t env[24];
	group_new(&g);
	IT_CHECK(dev_online(&p, &g, 801, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&q, &g, 803, VEIL_MD_SLOT_NEW, NULL) == 0);
	dev_close(&q);
	slot_expiration = VEIL_MD_SLOT_VOLATILE;
	int rc = dev_online(&v, &g, 802, VEIL_MD_SLOT_NEW, NULL);
	slot_expiration = VEIL_MD_SLOT_PERSISTENT;
	IT_CHECK(rc == 0);
	IT_CHECK(devices_info(&p, &sd) == 0 && sd.n == 3 && sd.ids[1] == 802);
	IT_CHECK(sd.policy[1] == VEIL_MD_SLOT_VOLATILE && sd.connected[1]);
	dev_close(&v);
	/* Something for v's queue while it is away. */
	randombytes_buf(env, sizeof env);
	IT_CHECK(reflect(&p, 0x8001, 0, env, sizeof env) == 0);
	IT_CHECK(dev_expect(&p, VEIL_MD_REFLECT_ACK, 5000) == 0);
	/* Gone once the mediator saw it leave and the time passed. */
	for (int i = 0; i < 100; i++) {
		IT_CHECK(devices_info(&p, &sd) == 0);
		if (sd.n == 2)
			break;
		usleep(100000);
	}
	IT_CHECK(sd.n == 2 && sd.ids[0] == 801 && sd.ids[1] == 803 && !sd.connected[1]);
	/* Its slot is new again, with an empty queue; q's queue is kept. */
	IT_CHECK(dev_connect(&v, &g, 802, VEIL_MD_SLOT_EXISTING) == VEIL_MD_CLOSE_SLOT_MISMATCH);
	dev_close(&v);
	IT_CHECK(dev_connect(&v, &g, 802, VEIL_MD_SLOT_NEW) == 0);
	IT_CHECK(v.si.slot_state == VEIL_MD_SLOT_NEW && v.si.reflection_queue_length == 0);
	dev_close(&v);
	IT_CHECK(dev_connect(&q, &g, 803, VEIL_MD_SLOT_EXISTING) == 0);
	IT_CHECK(q.si.reflection_queue_length == 1);
	dev_close(&q);
	dev_close(&p);
	return 0;
}

/*
 * --mediator-queue-limit (3 on this server): a device whose reflection
 * queue a reflect finds full has missed it and is dropped (4114): at once
 * if connected, at its next connection if not. Its slot is gone then.
 */
static int queue_limit(void)
{
	struct group g;
	struct dev a, off, slow;
	uint8_t env[32];
	group_new(&g);
	IT_CHECK(dev_online(&a, &g, 901, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&off, &g, 902, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&slow, &g, 903, VEIL_MD_SLOT_NEW, NULL) == 0);
	dev_close(&off);
	usleep(100000);
	/* Three fit: nobody is dropped; slow reads but never acks. */
	for (uint32_t i = 1; i <= 3; i++) {
		randombytes_buf(env, sizeof env);
		IT_CHECK(reflect(&a, i, 0, env, sizeof env) == 0);
		IT_CHECK(dev_expect(&a, VEIL_MD_REFLECT_ACK, 5000) == 0);
		IT_CHECK(expect_reflected(&slow, env, sizeof env, NULL, 0) == 0);
	}
	IT_CHECK(dev_quiet(&slow, 200) == 0);
	/* The fourth: slow is closed with 4114; the sender goes on. */
	IT_CHECK(reflect(&a, 4, 0, env, sizeof env) == 0);
	IT_CHECK(dev_expect(&a, VEIL_MD_REFLECT_ACK, 5000) == 0);
	IT_CHECK(dev_expect(&slow, 0xff, 5000) == VEIL_MD_CLOSE_QUEUE_LIMIT);
	dev_close(&slow);
	/* off, offline, gets 4114 when it comes back; then its slot is gone (4115). */
	IT_CHECK(dev_connect(&off, &g, 902, VEIL_MD_SLOT_EXISTING) == VEIL_MD_CLOSE_QUEUE_LIMIT);
	dev_close(&off);
	IT_CHECK(dev_connect(&off, &g, 902, VEIL_MD_SLOT_EXISTING) == VEIL_MD_CLOSE_SLOT_MISMATCH);
	dev_close(&off);
	IT_CHECK(dev_connect(&slow, &g, 903, VEIL_MD_SLOT_EXISTING) == VEIL_MD_CLOSE_SLOT_MISMATCH);
	dev_close(&slow);
	/* A device that acks keeps a short queue however much goes through. */
	IT_CHECK(dev_online(&off, &g, 904, VEIL_MD_SLOT_NEW, NULL) == 0);
	for (uint32_t i = 10; i < 20; i++) {
		randombytes_buf(env, sizeof env);
		IT_CHECK(reflect(&a, i, 0, env, sizeof env) == 0);
		IT_CHECK(dev_expect(&a, VEIL_MD_REFLECT_ACK, 5000) == 0);
		IT_CHECK(expect_reflected(&off, env, sizeof env, NULL, 1) == 0);
	}
	IT_CHECK(dev_quiet(&off, 200) == 0);
	dev_close(&off);
	dev_close(&a);
	return 0;
}

static int t_queue_limit_4114(void)
{
	static struct it_server s3;
	s3.extra[0] = "--mediator-queue-limit";
	s3.extra[1] = "3";
	IT_CHECK(it_start(&s3) == 0);
	wsrv = &s3;
	int rc = queue_limit();
	wsrv = &srv;
	IT_CHECK(it_stop(&s3, SIGTERM) == 0);
	return rc;
}

/*
 * A reflect is acked, and reflected to the other devices, only once its
 * batch is durable: with the store's sync thread held before its fsync
 * (VEIL_TEST_MD_SYNC_GATE, a file), two reflects get nothing for a while
 * (before the sync left the HTTP thread, the ack came at once); once the
 * gate opens, both acks and both reflected come, each in order.
 * PostgreSQL commits synchronously and has no sync thread: not run there.
 */
static int gated_acks(const char *gate)
{
	struct group g;
	struct dev a, b;
	uint8_t env[2][40];
	group_new(&g);
	IT_CHECK(dev_online(&a, &g, 1001, VEIL_MD_SLOT_NEW, NULL) == 0);
	IT_CHECK(dev_online(&b, &g, 1002, VEIL_MD_SLOT_NEW, NULL) == 0);
	for (uint32_t i = 0; i < 2; i++) {
		randombytes_buf(env[i], sizeof env[i]);
		IT_CHECK(reflect(&a, i + 1, 0, env[i], sizeof env[i]) == 0);
	}
	IT_CHECK(dev_expect(&a, VEIL_MD_REFLECT_ACK, 700) == VEIL_ETIMEOUT);
	IT_CHECK(dev_expect(&b, VEIL_MD_REFLECTED, 200) == VEIL_ETIMEOUT);
	IT_CHECK(unlink(gate) == 0);
	for (uint32_t i = 0; i < 2; i++) {
		struct veil_md_reflect r;
		IT_CHECK(dev_expect(&a, VEIL_MD_REFLECT_ACK, 5000) == 0);
		IT_CHECK(veil_md_reflect_ack_parse(&r, a.pl, a.pn) == 0 && r.id == i + 1);
	}
	for (uint32_t i = 0; i < 2; i++)
		IT_CHECK(expect_reflected(&b, env[i], sizeof env[i], NULL, 1) == 0);
	dev_close(&a);
	dev_close(&b);
	return 0;
}

static int t_acks_wait_for_the_sync(void)
{
	static struct it_server s4;
	char gate[] = "/tmp/veil-it-gate-XXXXXX";
	if (it_on_pg())
		return 0;
	int fd = mkstemp(gate);
	IT_CHECK(fd >= 0);
	close(fd);
	setenv("VEIL_TEST_MD_SYNC_GATE", gate, 1);
	int started = it_start(&s4);
	unsetenv("VEIL_TEST_MD_SYNC_GATE");
	if (started != 0) {
		unlink(gate);
		IT_CHECK(started == 0);
	}
	wsrv = &s4;
	int rc = gated_acks(gate);
	wsrv = &srv;
	unlink(gate);
	IT_CHECK(it_stop(&s4, SIGTERM) == 0);
	return rc;
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
	int failed = 0;
	signal(SIGPIPE, SIG_IGN);
	srv.extra[0] = "--mediator-max-slots";
	srv.extra[1] = "3";
	srv.extra[2] = "--mediator-tx-ttl";
	srv.extra[3] = "2";
	srv.extra[4] = "--mediator-handshake-timeout";
	srv.extra[5] = "3";
	srv.extra[6] = "--mediator-volatile-ttl";
	srv.extra[7] = "1";
	if (veil_crypto_init() != 0 || it_start(&srv) != 0) {
		fprintf(stderr, "cannot start veild\n");
		printf("FAIL start_veild\n");
		return 1;
	}
	if (it_register(&srv, &alice) != 0 || it_register(&srv, &bob) != 0) {
		fprintf(stderr, "cannot register: %s\n", veil_dir_errmsg());
		printf("FAIL register\n");
		it_stop(&srv, SIGKILL);
		return 1;
	}
	RUN_IT(t_wrong_dgk_refused);
	RUN_IT(t_reflect_to_two_others);
	RUN_IT(t_burst_from_two_senders);
	RUN_IT(t_offline_device_catches_up);
	RUN_IT(t_unknown_ack_closes_4012);
	RUN_IT(t_leader_reelected);
	RUN_IT(t_slots_and_duplicates);
	RUN_IT(t_tx_contend_and_commit);
	RUN_IT(t_tx_ttl_closes_4011);
	RUN_IT(t_tx_commit_without_begin_4010);
	RUN_IT(t_devices_info);
	RUN_IT(t_drop_device);
	RUN_IT(t_shared_device_data);
	RUN_IT(t_handshake_timeout_4013);
	RUN_IT(t_volatile_slot_expires);
	RUN_IT(t_queue_limit_4114);
	RUN_IT(t_devices_chat_through_proxy);
	RUN_IT(t_leader_drains_a_large_backlog);
	RUN_IT(t_chat_limits_spare_mediator);
	RUN_IT(t_no_identity_in_mediator_tables);
	RUN_IT(t_acks_wait_for_the_sync);
	RUN_IT(t_kill9_loses_no_acked_reflect);
	RUN_IT(t_clean_shutdown_with_devices);
	it_stop(&srv, SIGKILL);
	return failed ? 1 : 0;
}
