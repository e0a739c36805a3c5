/*
 * Linking a new device end to end on loopback: both roles of
 * lib/md/rendezvous.c meet through veild's rendezvous relay (found in the
 * provisioning document), run the handshake, compare the RPH and carry the
 * device join messages (lib/md/join.c); and the relay's limits.
 */
#include <pthread.h>

#include "harness.h"
#include "ws_client.h"
#include "veil/join.h"
#include "veil/rendezvous.h"

static struct it_server srv, srv2; /* srv2: a fresh veild for the per-address limit */
static char relay_base[VEIL_DIR_MAX_URL];

/* The path part of a ws:// URL ("/rendezvous/<hex>"). */
static const char *url_path(const char *url)
{
	const char *p = strstr(url, "://");
	return p != NULL ? strchr(p + 3, '/') : NULL;
}

/* One side: its WebSocket, its protocol state, its buffers. */
struct side {
	int fd;
	struct veil_rdv r;
	struct veil_buf out, data;
	uint8_t msg[VEIL_RDV_WS_MESSAGE_MAX];
};

static void side_init(struct side *s)
{
	memset(s, 0, sizeof *s);
	s->fd = -1;
	veil_buf_init(&s->out, VEIL_RDV_FRAME_MAX + 64);
	veil_buf_init_secret(&s->data, VEIL_RDV_FRAME_MAX);
}

static void side_release(struct side *s)
{
	if (s->fd >= 0)
		close(s->fd);
	veil_rdv_release(&s->r);
	veil_buf_release(&s->out);
	veil_buf_release(&s->data);
}

/* Sends what out holds in WebSocket messages of at most 64 KiB. */
static int side_flush(struct side *s)
{
	for (size_t off = 0; off < s->out.len;) {
		size_t n = s->out.len - off;
		n = n > VEIL_RDV_WS_MESSAGE_MAX ? VEIL_RDV_WS_MESSAGE_MAX : n;
		if (it_ws_send(s->fd, s->out.p + off, n) != 0)
			return -1;
		off += n;
	}
	veil_buf_reset(&s->out);
	return 0;
}

/* Reads one WebSocket message into the protocol: 0, a close code or a veil_err. */
static int side_read(struct side *s)
{
	size_t len = 0;
	int rc = it_ws_recv(s->fd, s->msg, sizeof s->msg, &len, 10000);
	if (rc != 0)
		return rc;
	return veil_rdv_feed(&s->r, s->msg, len);
}

/* The next handshake event after reading one message (sending what it produced). */
static int side_step(struct side *s)
{
	int rc = side_read(s);
	if (rc != 0)
		return rc < 0 ? rc : -rc;
	int ev = veil_rdv_next(&s->r, &s->out, &s->data);
	if (ev >= 0 && side_flush(s) != 0)
		return -1;
	return ev;
}

/* Reads until one ULP message is in s->data. */
static int side_data(struct side *s)
{
	for (;;) {
		int ev = veil_rdv_next(&s->r, &s->out, &s->data);
		if (ev == VEIL_RDV_EV_DATA)
			return 0;
		if (ev != VEIL_RDV_EV_NONE)
			return ev < 0 ? ev : -100 - ev;
		int rc = side_read(s);
		if (rc != 0)
			return rc < 0 ? rc : -rc;
	}
}

/* Seals one ULP message and sends it. */
static int side_send(struct side *s, const struct veil_buf *m)
{
	if (veil_rdv_seal(&s->r, m->p, m->len, &s->out) != 0)
		return -1;
	return side_flush(s);
}

/* An EssentialData larger than one relay message: 300 contacts, 4000 nonces. */
static int make_essential(struct veil_join_essential *e)
{
	memset(e, 0, sizeof *e);
	memcpy(e->identity, "ECHOECHO", 9);
	veil_random(e->ck, 32);
	veil_random(e->device_cookie, 16);
	memcpy(e->server_group, "a", 2);
	veil_random(e->dgk, 32);
	memcpy(e->nickname, "Echo", 5);
	e->n_contacts = 300;
	e->n_groups = 1;
	e->n_csp_nonces = 4000;
	e->contacts = calloc(e->n_contacts, sizeof *e->contacts);
	e->groups = calloc(1, sizeof *e->groups);
	e->csp_nonces = calloc(e->n_csp_nonces, sizeof *e->csp_nonces);
	if (e->contacts == NULL || e->groups == NULL || e->csp_nonces == NULL)
		return -1;
	for (size_t i = 0; i < e->n_contacts; i++) {
		struct veil_join_contact *c = &e->contacts[i];
		char id[32];
		snprintf(id, sizeof id, "C%07zu", i);
		memcpy(c->identity, id, 9);
		veil_random(c->public_key, 32);
		snprintf(c->first_name, sizeof c->first_name, "Contact %zu", i);
		c->verification_level = (int)(i % 3);
	}
	struct veil_join_group *g = e->groups;
	memcpy(g->creator, "C0000001", 9);
	g->group_id = 77;
	memcpy(g->name, "Team", 5);
	g->members = calloc(2, sizeof *g->members);
	if (g->members == NULL)
		return -1;
	g->n_members = 2;
	memcpy(g->members[0], "ECHOECHO", 9);
	memcpy(g->members[1], "C0000002", 9);
	for (size_t i = 0; i < e->n_csp_nonces; i++) {
		uint8_t nonce[24];
		veil_random(nonce, sizeof nonce);
		veil_join_hash_nonce(e->csp_nonces[i], e->identity, nonce, sizeof nonce);
	}
	return 0;
}

static int t_join_end_to_end(void)
{
	struct veil_rdv_init init, nd_init;
	static struct side ed, nd;
	struct veil_join_essential e;
	struct veil_join_ed m;
	struct veil_buf b;
	char link[VEIL_RDV_LINK_MAX + 1], s1[VEIL_RDV_RPH_SHORT_LEN], s2[VEIL_RDV_RPH_SHORT_LEN];
	uint8_t rph_ed[32], rph_nd[32], blob_id[16], blob[3000];
	enum veil_rdv_variant variant;
	uint32_t d2d;
	int type;
	side_init(&ed);
	side_init(&nd);
	veil_buf_init_secret(&b, VEIL_JOIN_MAX_MESSAGE);

	/* ED offers: it is RID and, as device join has it, the nominator. */
	IT_CHECK(veil_rdv_init_new(&init, relay_base) == 0);
	IT_CHECK(veil_rdv_link_encode(link, sizeof link, &init, VEIL_RDV_OFFER_TO_JOIN, 3) == 0);
	ed.fd = it_ws_connect(srv.http_port, url_path(init.url));
	IT_CHECK(ed.fd >= 0);
	IT_CHECK(veil_rdv_start(&ed.r, VEIL_RDV_RID, 1, &init, &ed.out) == 0 && ed.out.len == 0);

	/* ND scans the link and connects to the same path. */
	IT_CHECK(veil_rdv_link_parse(&nd_init, &variant, &d2d, link, strlen(link)) == 0);
	IT_CHECK(variant == VEIL_RDV_OFFER_TO_JOIN && d2d == 3);
	nd.fd = it_ws_connect(srv.http_port, url_path(nd_init.url));
	IT_CHECK(nd.fd >= 0);
	IT_CHECK(veil_rdv_start(&nd.r, VEIL_RDV_RRD, 0, &nd_init, &nd.out) == 0);
	IT_CHECK(side_flush(&nd) == 0); /* Hello */

	/* The handshake through the relay; ED nominates. */
	IT_CHECK(side_step(&ed) == VEIL_RDV_EV_PROGRESS);      /* Hello in, AuthHello out */
	IT_CHECK(side_step(&nd) == VEIL_RDV_EV_AUTHENTICATED); /* AuthHello in, Auth out */
	IT_CHECK(side_step(&ed) == VEIL_RDV_EV_AUTHENTICATED); /* Auth in */
	IT_CHECK(veil_rdv_nominate(&ed.r, &ed.out) == 0 && side_flush(&ed) == 0);
	IT_CHECK(side_step(&nd) == VEIL_RDV_EV_NOMINATED);
	IT_CHECK(veil_rdv_rph(&ed.r, rph_ed) == 0 && veil_rdv_rph(&nd.r, rph_nd) == 0);
	IT_CHECK(sodium_memcmp(rph_ed, rph_nd, 32) == 0);
	veil_rdv_rph_short(s1, rph_ed);
	veil_rdv_rph_short(s2, rph_nd);
	IT_CHECK(strcmp(s1, s2) == 0);

	/* ED: Begin, one BlobData, EssentialData (over 64 KiB: several relay messages). */
	IT_CHECK(make_essential(&e) == 0);
	IT_CHECK(veil_join_begin_encode(&b) == 0 && side_send(&ed, &b) == 0);
	veil_buf_reset(&b);
	veil_random(blob_id, sizeof blob_id);
	veil_random(blob, sizeof blob);
	IT_CHECK(veil_join_blob_encode(&b, blob_id, blob, sizeof blob) == 0 &&
	         side_send(&ed, &b) == 0);
	veil_buf_reset(&b);
	IT_CHECK(veil_join_essential_encode(&b, &e) == 0);
	IT_CHECK(b.len > 2 * VEIL_RDV_WS_MESSAGE_MAX);
	IT_CHECK(side_send(&ed, &b) == 0);
	veil_buf_reset(&b);

	/* ND receives them in order. */
	IT_CHECK(side_data(&nd) == 0);
	IT_CHECK(veil_join_ed_parse(&m, nd.data.p, nd.data.len) == 0 && m.type == VEIL_JOIN_BEGIN);
	veil_join_ed_release(&m);
	IT_CHECK(side_data(&nd) == 0);
	IT_CHECK(veil_join_ed_parse(&m, nd.data.p, nd.data.len) == 0 && m.type == VEIL_JOIN_BLOB);
	IT_CHECK(m.blob_len == sizeof blob && memcmp(m.blob, blob, sizeof blob) == 0 &&
	         memcmp(m.blob_id, blob_id, 16) == 0);
	veil_join_ed_release(&m);
	IT_CHECK(side_data(&nd) == 0);
	IT_CHECK(veil_join_ed_parse(&m, nd.data.p, nd.data.len) == 0);
	IT_CHECK(m.type == VEIL_JOIN_ESSENTIAL);
	IT_CHECK(strcmp(m.essential.identity, "ECHOECHO") == 0);
	IT_CHECK(sodium_memcmp(m.essential.ck, e.ck, 32) == 0);
	IT_CHECK(sodium_memcmp(m.essential.dgk, e.dgk, 32) == 0);
	IT_CHECK(m.essential.n_contacts == 300 && m.essential.n_csp_nonces == 4000);
	IT_CHECK(strcmp(m.essential.contacts[299].identity, "C0000299") == 0);
	IT_CHECK(memcmp(m.essential.contacts[299].public_key, e.contacts[299].public_key, 32) == 0);
	IT_CHECK(memcmp(m.essential.csp_nonces[3999], e.csp_nonces[3999], 32) == 0);
	IT_CHECK(m.essential.n_groups == 1 && m.essential.groups[0].n_members == 2);
	veil_join_ed_release(&m);
	veil_join_essential_release(&e);

	/* ND: Registered; ED reads it. */
	IT_CHECK(veil_join_registered_encode(&b) == 0 && side_send(&nd, &b) == 0);
	IT_CHECK(side_data(&ed) == 0);
	IT_CHECK(veil_join_nd_parse(&type, ed.data.p, ed.data.len) == 0);
	IT_CHECK(type == VEIL_JOIN_REGISTERED);

	/* ED closes normally: the relay passes 1000 on to ND. */
	IT_CHECK(it_ws_close(ed.fd, VEIL_RDV_CLOSE_NORMAL) == 0);
	size_t len;
	IT_CHECK(it_ws_recv(nd.fd, nd.msg, sizeof nd.msg, &len, 10000) == VEIL_RDV_CLOSE_NORMAL);
	veil_rdv_init_wipe(&init);
	veil_rdv_init_wipe(&nd_init);
	veil_buf_release(&b);
	side_release(&ed);
	side_release(&nd);
	return 0;
}

/* A random rendezvous path: "/rendezvous/<64 hex digits>". */
static void random_path(char *out, size_t cap)
{
	uint8_t id[32];
	char hex[65];
	veil_random(id, sizeof id);
	if (veil_hex_encode(hex, sizeof hex, id, sizeof id) != 0)
		abort();
	snprintf(out, cap, "/rendezvous/%s", hex);
}

/* The close code the relay sends on fd (within 10 s). */
static int close_code(int fd)
{
	static uint8_t buf[1 << 17];
	size_t len;
	int rc;
	while ((rc = it_ws_recv(fd, buf, sizeof buf, &len, 10000)) == 0)
		;
	return rc;
}

static int t_path_limits(void)
{
	/*
	 * A veild of its own, so that no path of another test is still
	 * counted: --rendezvous-paths-per-addr 3, --rendezvous-max-paths 5.
	 * 127.0.0.1 opens three paths, its fourth is refused (per address);
	 * 127.0.0.2 opens two more, its third is refused (in total).
	 */
	char p[128];
	int fd[7];
	const char *from[7] = {NULL, NULL, NULL, NULL, "127.0.0.2", "127.0.0.2", "127.0.0.2"};
	srv2.extra[0] = "--rendezvous-paths-per-addr";
	srv2.extra[1] = "3";
	srv2.extra[2] = "--rendezvous-max-paths";
	srv2.extra[3] = "5";
	IT_CHECK(it_start(&srv2) == 0);
	for (int i = 0; i < 7; i++) {
		random_path(p, sizeof p);
		fd[i] = it_ws_connect_from(srv2.http_port, p, from[i]);
		IT_CHECK(fd[i] >= 0);
		if (i == 3) /* refused: it must not count */
			IT_CHECK(close_code(fd[3]) == VEIL_RDV_CLOSE_PROTOCOL);
	}
	IT_CHECK(close_code(fd[6]) == VEIL_RDV_CLOSE_PROTOCOL);
	/* A clean stop with five waiting paths open. */
	IT_CHECK(it_stop(&srv2, SIGTERM) == 0);
	for (int i = 0; i < 7; i++)
		close(fd[i]);
	return 0;
}

static int t_third_refused(void)
{
	char p[128];
	random_path(p, sizeof p);
	int a = it_ws_connect(srv.http_port, p), b = it_ws_connect(srv.http_port, p);
	int c = it_ws_connect(srv.http_port, p);
	IT_CHECK(a >= 0 && b >= 0 && c >= 0);
	IT_CHECK(close_code(c) == VEIL_RDV_CLOSE_PROTOCOL);
	/* The pair still works, both ways, each message whole. */
	uint8_t m[5000], got[5000];
	size_t len = 0;
	veil_random(m, sizeof m);
	IT_CHECK(it_ws_send(a, m, sizeof m) == 0);
	IT_CHECK(it_ws_recv(b, got, sizeof got, &len, 10000) == 0);
	IT_CHECK(len == sizeof m && memcmp(got, m, len) == 0);
	IT_CHECK(it_ws_send(b, m, 1) == 0);
	IT_CHECK(it_ws_recv(a, got, sizeof got, &len, 10000) == 0 && len == 1 && got[0] == m[0]);
	/* A's socket just ends: B hears 4004 (the other device disconnected). */
	close(a);
	IT_CHECK(close_code(b) == VEIL_RDV_CLOSE_OTHER_GONE);
	close(b);
	close(c);
	/* Bad paths. */
	int d = it_ws_connect(srv.http_port, "/rendezvous/abcd");
	IT_CHECK(d >= 0 && close_code(d) == VEIL_RDV_CLOSE_PROTOCOL);
	close(d);
	d = it_ws_connect(
	    srv.http_port,
	    "/rendezvous/zz00000000000000000000000000000000000000000000000000000000000000");
	IT_CHECK(d >= 0 && close_code(d) == VEIL_RDV_CLOSE_PROTOCOL);
	close(d);
	return 0;
}

static int t_early_message_kept(void)
{
	/* What the first side sends alone reaches the second when it comes. */
	char p[128];
	uint8_t m[100], got[200];
	size_t len = 0;
	random_path(p, sizeof p);
	int a = it_ws_connect(srv.http_port, p);
	IT_CHECK(a >= 0);
	veil_random(m, sizeof m);
	IT_CHECK(it_ws_send(a, m, sizeof m) == 0);
	int b = it_ws_connect(srv.http_port, p);
	IT_CHECK(b >= 0);
	IT_CHECK(it_ws_recv(b, got, sizeof got, &len, 10000) == 0);
	IT_CHECK(len == sizeof m && memcmp(got, m, len) == 0);
	close(a);
	close(b);
	/* More than a handshake frame's worth while alone closes with 4000. */
	static uint8_t big[VEIL_RDV_HS_FRAME_MAX + 100];
	random_path(p, sizeof p);
	a = it_ws_connect(srv.http_port, p);
	IT_CHECK(a >= 0);
	IT_CHECK(it_ws_send(a, big, sizeof big) == 0);
	IT_CHECK(close_code(a) == VEIL_RDV_CLOSE_PROTOCOL);
	close(a);
	return 0;
}

static int t_oversize_closes(void)
{
	char p[128];
	random_path(p, sizeof p);
	int a = it_ws_connect(srv.http_port, p), b = it_ws_connect(srv.http_port, p);
	IT_CHECK(a >= 0 && b >= 0);
	static uint8_t m[VEIL_RDV_WS_MESSAGE_MAX + 1];
	size_t len = 0;
	/* Exactly 64 KiB passes... */
	IT_CHECK(it_ws_send(a, m, VEIL_RDV_WS_MESSAGE_MAX) == 0);
	static uint8_t got[VEIL_RDV_WS_MESSAGE_MAX + 1];
	IT_CHECK(it_ws_recv(b, got, sizeof got, &len, 10000) == 0 &&
	         len == VEIL_RDV_WS_MESSAGE_MAX);
	/* ...one byte more closes the sender with 1009 and its peer with 4004. */
	IT_CHECK(it_ws_send(a, m, sizeof m) == 0);
	IT_CHECK(close_code(a) == 1009);
	IT_CHECK(close_code(b) == VEIL_RDV_CLOSE_OTHER_GONE);
	close(a);
	close(b);
	return 0;
}

/* 8 MiB in 64 KiB messages, each filled with its index, from another thread. */
#define SLOW_MSGS 128
static void *slow_sender(void *arg)
{
	static uint8_t m[VEIL_RDV_WS_MESSAGE_MAX];
	int fd = *(int *)arg;
	for (int i = 0; i < SLOW_MSGS; i++) {
		memset(m, i, sizeof m);
		if (it_ws_send(fd, m, sizeof m) != 0)
			return (void *)1;
	}
	return NULL;
}

static int t_slow_reader(void)
{
	/*
	 * B reads nothing for a while: the relay must stop reading A rather
	 * than queue megabytes for B (which would end with 4000 at the
	 * listener's 4 MiB queue limit). Then B gets everything, in order.
	 */
	char p[128];
	random_path(p, sizeof p);
	int a = it_ws_connect(srv.http_port, p), b = it_ws_connect(srv.http_port, p);
	IT_CHECK(a >= 0 && b >= 0);
	pthread_t th;
	IT_CHECK(pthread_create(&th, NULL, slow_sender, &a) == 0);
	usleep(1000 * 1000); /* not a measurement: time for the relay to read ahead */
	static uint8_t got[VEIL_RDV_WS_MESSAGE_MAX];
	int bad = 0;
	for (int i = 0; i < SLOW_MSGS && !bad; i++) {
		size_t len = 0;
		if (it_ws_recv(b, got, sizeof got, &len, 10000) != 0 || len != sizeof got ||
		    got[0] != (uint8_t)i || got[len - 1] != (uint8_t)i)
			bad = i + 1;
	}
	void *ret = NULL;
	pthread_join(th, &ret);
	close(a);
	close(b);
	IT_CHECK(bad == 0 && ret == NULL);
	return 0;
}

static int t_unpaired_times_out(void)
{
	/* veild runs with --rendezvous-wait 3. */
	char p[128];
	random_path(p, sizeof p);
	int a = it_ws_connect(srv.http_port, p);
	IT_CHECK(a >= 0);
	IT_CHECK(close_code(a) == VEIL_RDV_CLOSE_INIT_TIMEOUT);
	close(a);
	/* A path that timed out is gone: the same path pairs afresh. */
	a = it_ws_connect(srv.http_port, p);
	int b = it_ws_connect(srv.http_port, p);
	IT_CHECK(a >= 0 && b >= 0);
	uint8_t x = 42, got[8];
	size_t len = 0;
	IT_CHECK(it_ws_send(b, &x, 1) == 0);
	IT_CHECK(it_ws_recv(a, got, sizeof got, &len, 10000) == 0 && len == 1 && got[0] == 42);
	close(a);
	close(b);
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
	int failed = 0;
	struct veil_dir_provisioning prov;
	signal(SIGPIPE, SIG_IGN);
	srv.extra[0] = "--rendezvous-wait";
	srv.extra[1] = "3";
	if (veil_crypto_init() != 0 || it_start(&srv) != 0) {
		fprintf(stderr, "cannot start veild\n");
		printf("FAIL start_veild\n");
		return 1;
	}
	if (veil_dir_fetch_provisioning(srv.http_url, NULL, NULL, &prov) != 0 ||
	    prov.rendezvous_url[0] == '\0') {
		fprintf(stderr, "no rendezvous URL in the provisioning document\n");
		printf("FAIL provisioning\n");
		it_stop(&srv, SIGKILL);
		return 1;
	}
	snprintf(relay_base, sizeof relay_base, "%s", prov.rendezvous_url);
	RUN_IT(t_join_end_to_end);
	RUN_IT(t_third_refused);
	RUN_IT(t_early_message_kept);
	RUN_IT(t_oversize_closes);
	RUN_IT(t_slow_reader);
	RUN_IT(t_unpaired_times_out);
	RUN_IT(t_path_limits);
	it_stop(&srv, SIGKILL);
	return failed ? 1 : 0;
}
