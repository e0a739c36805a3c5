/*
 * The chat service end to end on loopback: veild runs as a separate
 * process; identities are created through the directory; clients speak
 * raw CSP through lib/csp.
 */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "harness.h"

static struct it_server srv;
static struct it_user alice, bob, carol;

/* Sends one text without waiting for the server ack; returns its message id or 0. */
static uint64_t send_nowait(struct it_conn *c, const struct it_user *from, const struct it_user *to,
                            const char *text, uint8_t flags)
{
	struct veil_buf m;
	uint64_t id = veil_random_u64();
	veil_buf_init(&m, 8192);
	int rc = it_text(&m, from, to, id, text, flags);
	if (rc == 0)
		rc = it_send(c, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len);
	veil_buf_release(&m);
	return rc == 0 ? id : 0;
}

/* Sends one text and waits for the server ack; returns its message id or 0. */
static uint64_t send_text(struct it_conn *c, const struct it_user *from, const struct it_user *to,
                          const char *text)
{
	uint64_t id = send_nowait(c, from, to, text, 0);
	if (id == 0 || it_expect(c, VEIL_CSP_OUTGOING_ACK, 5000) != 0)
		return 0;
	if (memcmp(c->buf + 4, to->id, 8) != 0 || veil_load_u64le(c->buf + 12) != id)
		return 0;
	return id;
}

static int t_online_both_ways(void)
{
	struct it_conn a, b;
	char text[256];
	uint64_t id, got;
	IT_CHECK(it_login(&a, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(it_login(&b, &srv, bob.id, bob.sk) == 0);
	IT_CHECK(it_expect(&a, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	IT_CHECK((id = send_text(&a, &alice, &bob, "hello bob")) != 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(it_open_text(&b, &bob, &alice, text, sizeof text, &got) == 0);
	IT_CHECK(strcmp(text, "hello bob") == 0 && got == id);
	IT_CHECK(it_ack(&b, alice.id, got) == 0);
	IT_CHECK((id = send_text(&b, &bob, &alice, "hi alice \xf0\x9f\x91\x8b")) != 0);
	IT_CHECK(it_expect(&a, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(it_open_text(&a, &alice, &bob, text, sizeof text, &got) == 0);
	IT_CHECK(strcmp(text, "hi alice \xf0\x9f\x91\x8b") == 0 && got == id);
	IT_CHECK(it_ack(&a, bob.id, got) == 0);
	/* Echo. */
	IT_CHECK(it_send(&a, VEIL_CSP_ECHO_REQUEST, (const uint8_t *)"ping", 4) == 0);
	IT_CHECK(it_expect(&a, VEIL_CSP_ECHO_RESPONSE, 5000) == 0);
	IT_CHECK(a.len == 8 && memcmp(a.buf + 4, "ping", 4) == 0);
	it_close(&a);
	it_close(&b);
	return 0;
}

static int t_offline_queue_in_order(void)
{
	struct it_conn a, b;
	char text[256], want[64];
	uint64_t ids[20], got;
	IT_CHECK(it_login(&a, &srv, alice.id, alice.sk) == 0);
	for (int i = 0; i < 20; i++) {
		snprintf(want, sizeof want, "queued %d", i);
		IT_CHECK((ids[i] = send_text(&a, &alice, &carol, want)) != 0);
	}
	it_close(&a);
	IT_CHECK(it_login(&b, &srv, carol.id, carol.sk) == 0);
	for (int i = 0; i < 20; i++) {
		IT_CHECK(it_recv(&b, 5000) == 0);
		IT_CHECK(b.buf[0] == VEIL_CSP_INCOMING_MESSAGE);
		IT_CHECK(it_open_text(&b, &carol, &alice, text, sizeof text, &got) == 0);
		snprintf(want, sizeof want, "queued %d", i);
		IT_CHECK(strcmp(text, want) == 0 && got == ids[i]);
		IT_CHECK(it_ack(&b, alice.id, got) == 0);
	}
	IT_CHECK(it_recv(&b, 5000) == 0 && b.buf[0] == VEIL_CSP_QUEUE_SEND_COMPLETE);
	it_close(&b);
	/* Everything was acked: a new login finds an empty queue. */
	IT_CHECK(it_login(&b, &srv, carol.id, carol.sk) == 0);
	IT_CHECK(it_recv(&b, 5000) == 0 && b.buf[0] == VEIL_CSP_QUEUE_SEND_COMPLETE);
	it_close(&b);
	return 0;
}

static int t_unacked_redelivered(void)
{
	struct it_conn a, b;
	char text[256];
	uint64_t id, got;
	IT_CHECK(it_login(&a, &srv, alice.id, alice.sk) == 0);
	IT_CHECK((id = send_text(&a, &alice, &carol, "ack me later")) != 0);
	it_close(&a);
	IT_CHECK(it_login(&b, &srv, carol.id, carol.sk) == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	it_close(&b); /* no ack */
	IT_CHECK(it_login(&b, &srv, carol.id, carol.sk) == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(it_open_text(&b, &carol, &alice, text, sizeof text, &got) == 0);
	IT_CHECK(got == id && strcmp(text, "ack me later") == 0);
	IT_CHECK(it_ack(&b, alice.id, got) == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	it_close(&b);
	return 0;
}

static int t_wrong_key_refused(void)
{
	struct it_conn c, ok;
	uint8_t pk[32], sk[32];
	veil_keypair(pk, sk);
	IT_CHECK(it_login(&c, &srv, alice.id, sk) == VEIL_ECLOSED);
	it_close(&c);
	/* An identity the directory never issued. */
	IT_CHECK(it_login(&c, &srv, (const uint8_t *)"ZZZZZZZZ", sk) == VEIL_ECLOSED);
	it_close(&c);
	IT_CHECK(it_login(&ok, &srv, alice.id, alice.sk) == 0);
	it_close(&ok);
	return 0;
}

static int t_spoofed_sender_closes(void)
{
	struct it_conn a, b;
	struct veil_buf m;
	IT_CHECK(it_login(&a, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(it_login(&b, &srv, bob.id, bob.sk) == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	veil_buf_init(&m, 8192);
	/* Alice's connection sends a message that claims to come from Carol. */
	IT_CHECK(it_text(&m, &carol, &bob, 7, "forged", 0) == 0);
	IT_CHECK(it_send(&a, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len) == 0);
	veil_buf_release(&m);
	IT_CHECK(it_expect(&a, VEIL_CSP_OUTGOING_ACK, 5000) == VEIL_ECLOSED);
	IT_CHECK(a.buf[0] == VEIL_CSP_CLOSE_ERROR);
	IT_CHECK(it_recv(&a, 5000) == VEIL_ECLOSED);
	it_close(&a);
	/* Bob got nothing and his connection still works. */
	IT_CHECK(it_send(&b, VEIL_CSP_ECHO_REQUEST, (const uint8_t *)"x", 1) == 0);
	IT_CHECK(it_recv(&b, 5000) == 0 && b.buf[0] == VEIL_CSP_ECHO_RESPONSE);
	it_close(&b);
	return 0;
}

static int t_malformed_input_closes_one(void)
{
	struct it_conn ok, c;
	IT_CHECK(it_login(&ok, &srv, bob.id, bob.sk) == 0);
	IT_CHECK(it_expect(&ok, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	/* A login box of garbage. */
	int fd = it_tcp_connect(srv.chat_port);
	uint8_t junk[48 + 144], sh[80];
	veil_random(junk, sizeof junk);
	IT_CHECK(it_write_all(fd, junk, 48) == 0);
	IT_CHECK(it_read_exact(fd, sh, 80, 5000) == 0);
	IT_CHECK(it_write_all(fd, junk + 48, 144) == 0);
	IT_CHECK(it_read_exact(fd, sh, 1, 5000) == VEIL_ECLOSED);
	close(fd);
	/* A frame whose box does not authenticate. */
	IT_CHECK(it_login(&c, &srv, alice.id, alice.sk) == 0);
	uint8_t bad[2 + 40];
	veil_store_u16le(bad, 40);
	veil_random(bad + 2, 40);
	IT_CHECK(it_write_all(c.fd, bad, sizeof bad) == 0);
	IT_CHECK(it_expect(&c, VEIL_CSP_ECHO_RESPONSE, 5000) == VEIL_ECLOSED);
	it_close(&c);
	/* A frame longer than the protocol allows. */
	IT_CHECK(it_login(&c, &srv, alice.id, alice.sk) == 0);
	veil_store_u16le(bad, 60000);
	IT_CHECK(it_write_all(c.fd, bad, sizeof bad) == 0);
	IT_CHECK(it_expect(&c, VEIL_CSP_ECHO_RESPONSE, 5000) == VEIL_ECLOSED);
	it_close(&c);
	/* An outgoing message too short to hold its header. */
	IT_CHECK(it_login(&c, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(it_send(&c, VEIL_CSP_OUTGOING_MESSAGE, (const uint8_t *)"short", 5) == 0);
	IT_CHECK(it_expect(&c, VEIL_CSP_ECHO_RESPONSE, 5000) == VEIL_ECLOSED);
	it_close(&c);
	/* The bystander is unaffected. */
	IT_CHECK(it_send(&ok, VEIL_CSP_ECHO_REQUEST, (const uint8_t *)"y", 1) == 0);
	IT_CHECK(it_recv(&ok, 5000) == 0 && ok.buf[0] == VEIL_CSP_ECHO_RESPONSE);
	it_close(&ok);
	return 0;
}

static int t_second_login_replaces_first(void)
{
	struct it_conn a1, a2;
	IT_CHECK(it_login(&a1, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(it_expect(&a1, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	IT_CHECK(it_login(&a2, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(it_expect(&a1, VEIL_CSP_ECHO_RESPONSE, 5000) == VEIL_ECLOSED);
	IT_CHECK(a1.buf[0] == VEIL_CSP_CLOSE_ERROR && a1.buf[4] == 0);
	it_close(&a1);
	IT_CHECK(it_expect(&a2, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	it_close(&a2);
	return 0;
}

/* Nothing arrives on c for ms: 0, else 1. */
static int quiet(struct it_conn *c, int ms)
{
	return it_recv(c, ms) == VEIL_ETIMEOUT ? 0 : 1;
}

/* Expects a close-error "another connection" on c. */
static int replaced(struct it_conn *c)
{
	if (it_expect(c, VEIL_CSP_ECHO_RESPONSE, 5000) != VEIL_ECLOSED)
		return 1;
	return c->buf[0] == VEIL_CSP_CLOSE_ERROR && c->buf[4] == 0 &&
	               memmem(c->buf + 5, c->len - 5, "Another connection", 18) != NULL
	           ? 0
	           : 1;
}

/* Echo round trip: the session is alive. */
static int alive(struct it_conn *c)
{
	if (it_send(c, VEIL_CSP_ECHO_REQUEST, (const uint8_t *)"live", 4) != 0)
		return 1;
	return it_expect(c, VEIL_CSP_ECHO_RESPONSE, 5000) == 0 ? 0 : 1;
}

/* Receives the next incoming text from bob on c and acks it; 0 if it is want. */
static int got_text(struct it_conn *c, const char *want)
{
	char text[256];
	uint64_t got;
	if (it_expect(c, VEIL_CSP_INCOMING_MESSAGE, 5000) != 0 ||
	    it_open_text(c, &alice, &bob, text, sizeof text, &got) != 0 ||
	    it_ack(c, bob.id, got) != 0)
		return 1;
	return strcmp(text, want) == 0 ? 0 : 1;
}

/*
 * Multi-device sessions (csp-device-id): several of one identity coexist
 * and may send; none receives until it sends unblock-incoming-messages,
 * which makes it the identity's receiving connection.
 */
static int t_device_sessions(void)
{
	struct it_conn d1, d2, d3, a4, b;
	char text[256];
	uint64_t id, got;
	IT_CHECK(it_login(&b, &srv, bob.id, bob.sk) == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	IT_CHECK(it_login_device(&d1, &srv, alice.id, alice.sk, 0x1111) == 0);
	IT_CHECK(it_login_device(&d2, &srv, alice.id, alice.sk, 0x2222) == 0);
	/* Both are up; neither gets the queue (no 0xd0) nor a new message. */
	IT_CHECK((id = send_text(&b, &bob, &alice, "before unblock")) != 0);
	IT_CHECK(quiet(&d1, 300) == 0 && quiet(&d2, 300) == 0);
	/* A session that receives nothing cannot ack the receiver's messages away. */
	IT_CHECK(it_ack(&d1, bob.id, id) == 0);
	IT_CHECK(alive(&d1) == 0 && alive(&d2) == 0);
	/* d2 is nominated: it gets what waited, then what comes. */
	IT_CHECK(it_send(&d2, VEIL_CSP_UNBLOCK_INCOMING, NULL, 0) == 0);
	IT_CHECK(got_text(&d2, "before unblock") == 0);
	IT_CHECK(it_expect(&d2, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	IT_CHECK(send_text(&b, &bob, &alice, "after unblock") != 0);
	IT_CHECK(got_text(&d2, "after unblock") == 0);
	/* d1 still receives nothing, but sends and gets its acks. */
	IT_CHECK((id = send_text(&d1, &alice, &bob, "from d1")) != 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(it_open_text(&b, &bob, &alice, text, sizeof text, &got) == 0);
	IT_CHECK(strcmp(text, "from d1") == 0 && got == id);
	IT_CHECK(it_ack(&b, alice.id, got) == 0);
	IT_CHECK(quiet(&d1, 200) == 0);
	/* A new session of d2's device replaces it; d1 stays. */
	IT_CHECK(it_login_device(&d3, &srv, alice.id, alice.sk, 0x2222) == 0);
	IT_CHECK(replaced(&d2) == 0);
	it_close(&d2);
	IT_CHECK(alive(&d1) == 0);
	/* d3 does not receive until it unblocks, like any device session. */
	IT_CHECK(send_text(&b, &bob, &alice, "for d3") != 0);
	IT_CHECK(quiet(&d3, 300) == 0);
	IT_CHECK(it_send(&d3, VEIL_CSP_UNBLOCK_INCOMING, NULL, 0) == 0);
	IT_CHECK(got_text(&d3, "for d3") == 0);
	IT_CHECK(it_expect(&d3, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	/* A legacy login closes the receiver (d3) and leaves d1 alone. */
	IT_CHECK(it_login(&a4, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(replaced(&d3) == 0);
	it_close(&d3);
	IT_CHECK(it_expect(&a4, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	IT_CHECK(alive(&d1) == 0);
	/* d1 unblocking takes over from the legacy session in turn. */
	IT_CHECK(it_send(&d1, VEIL_CSP_UNBLOCK_INCOMING, NULL, 0) == 0);
	IT_CHECK(replaced(&a4) == 0);
	it_close(&a4);
	IT_CHECK(send_text(&b, &bob, &alice, "for d1") != 0);
	IT_CHECK(got_text(&d1, "for d1") == 0);
	it_close(&d1);
	it_close(&b);
	return 0;
}

static int t_unknown_receiver_alert(void)
{
	struct it_conn a;
	struct it_user ghost;
	struct veil_buf m;
	veil_keypair(ghost.pk, ghost.sk);
	memcpy(ghost.id, "GHOST123", 8);
	IT_CHECK(it_login(&a, &srv, alice.id, alice.sk) == 0);
	veil_buf_init(&m, 8192);
	IT_CHECK(it_text(&m, &alice, &ghost, 9, "anyone?", 0) == 0);
	IT_CHECK(it_send(&a, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len) == 0);
	veil_buf_release(&m);
	IT_CHECK(it_expect(&a, VEIL_CSP_ALERT, 5000) == 0);
	IT_CHECK(memmem(a.buf + 4, a.len - 4, "GHOST123", 8) != NULL);
	it_close(&a);
	return 0;
}

/* Greps every file under dir for needle; returns 1 if found. */
static int tree_contains(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	if (d == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		char p[1024];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		if (stat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			found = tree_contains(p, needle);
			continue;
		}
		FILE *f = fopen(p, "rb");
		if (f == NULL)
			continue;
		char *buf = malloc((size_t)st.st_size + 1);
		size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
		if (buf && memmem(buf, n, needle, strlen(needle)) != NULL)
			found = 1;
		free(buf);
		fclose(f);
	}
	closedir(d);
	return found;
}

/* Waits for the server ack of id (other frames are skipped). */
static int expect_ack_of(struct it_conn *c, uint64_t id)
{
	while (it_expect(c, VEIL_CSP_OUTGOING_ACK, 5000) == 0)
		if (veil_load_u64le(c->buf + 12) == id)
			return 0;
	return -1;
}

/* Logs alice and bob in and waits until both queues are drained. */
static int login_pair(struct it_conn *a, struct it_conn *b)
{
	if (it_login(a, &srv, alice.id, alice.sk) != 0)
		return -1;
	if (it_login(b, &srv, bob.id, bob.sk) != 0) {
		it_close(a);
		return -1;
	}
	if (it_expect(a, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) != 0 ||
	    it_expect(b, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) != 0) {
		it_close(a);
		it_close(b);
		return -1;
	}
	return 0;
}

/* Logs bob in and checks that the next frames are id (acked) and the end of the queue. */
static int bob_gets_from_queue(uint64_t id, const char *want)
{
	struct it_conn b;
	char text[256];
	uint64_t got;
	IT_CHECK(it_login(&b, &srv, bob.id, bob.sk) == 0);
	if (id != 0) {
		IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
		IT_CHECK(it_open_text(&b, &bob, &alice, text, sizeof text, &got) == 0);
		IT_CHECK(got == id && strcmp(text, want) == 0);
		IT_CHECK(it_ack(&b, alice.id, got) == 0);
	}
	IT_CHECK(it_recv(&b, 5000) == 0 && b.buf[0] == VEIL_CSP_QUEUE_SEND_COMPLETE);
	it_close(&b);
	return 0;
}

/* Hand-off: a recipient online gets the message at once; its ack acks the sender. */
static int t_handoff_acked_by_recipient(void)
{
	struct it_conn a, b;
	char text[256];
	uint64_t id, got;
	IT_CHECK(login_pair(&a, &b) == 0);
	IT_CHECK((id = send_nowait(&a, &alice, &bob, "handed off", 0)) != 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(it_open_text(&b, &bob, &alice, text, sizeof text, &got) == 0);
	IT_CHECK(got == id && strcmp(text, "handed off") == 0);
	IT_CHECK(it_ack(&b, alice.id, got) == 0);
	IT_CHECK(expect_ack_of(&a, id) == 0);
	it_close(&a);
	it_close(&b);
	/* Nothing is left queued for bob. */
	return bob_gets_from_queue(0, NULL);
}

/*
 * A recipient that does not ack within the hand-off window: the message is
 * stored and only then acked to the sender, so it survives kill -9.
 */
static int t_handoff_unacked_is_stored(void)
{
	struct it_conn a, b;
	uint64_t id;
	IT_CHECK(login_pair(&a, &b) == 0);
	IT_CHECK((id = send_nowait(&a, &alice, &bob, "ack me after the crash", 0)) != 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(expect_ack_of(&a, id) == 0);
	IT_CHECK(it_stop(&srv, SIGKILL) == 0);
	it_close(&a);
	it_close(&b);
	IT_CHECK(it_start(&srv) == 0);
	return bob_gets_from_queue(id, "ack me after the crash");
}

/* A recipient that leaves before acking gets the message again on its next login. */
static int t_handoff_recipient_leaves(void)
{
	struct it_conn a, b;
	uint64_t id;
	IT_CHECK(login_pair(&a, &b) == 0);
	IT_CHECK((id = send_nowait(&a, &alice, &bob, "come back", 0)) != 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	it_close(&b);
	IT_CHECK(expect_ack_of(&a, id) == 0);
	it_close(&a);
	return bob_gets_from_queue(id, "come back");
}

/* A message that must not be queued (typing indicator) does not hold up later ones. */
static int t_no_queue_then_normal(void)
{
	struct it_conn a, b;
	char text[256];
	uint64_t id1, id2, got;
	IT_CHECK(login_pair(&a, &b) == 0);
	IT_CHECK((id1 = send_nowait(&a, &alice, &bob, "typing",
	                            VEIL_MSG_FLAG_NO_QUEUE | VEIL_MSG_FLAG_NO_SERVER_ACK)) != 0);
	IT_CHECK((id2 = send_nowait(&a, &alice, &bob, "after typing", 0)) != 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(it_open_text(&b, &bob, &alice, text, sizeof text, &got) == 0);
	IT_CHECK(got == id1 && strcmp(text, "typing") == 0);
	IT_CHECK(it_expect(&b, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(it_open_text(&b, &bob, &alice, text, sizeof text, &got) == 0);
	IT_CHECK(got == id2 && strcmp(text, "after typing") == 0);
	IT_CHECK(it_ack(&b, alice.id, got) == 0);
	IT_CHECK(expect_ack_of(&a, id2) == 0);
	it_close(&a);
	it_close(&b);
	return bob_gets_from_queue(0, NULL);
}

/*
 * kill -9 during a stream of sends: every message the server acked is
 * delivered after the restart, and the store holds no plaintext.
 */
static int t_crash_loses_no_acked_message(void)
{
	struct it_conn a, b;
	enum { N = 400 };
	static uint64_t sent[N];
	int acked = 0;
	char text[64];
	uint64_t *acks = calloc(N, sizeof *acks);
	IT_CHECK(acks != NULL);
	IT_CHECK(it_login(&a, &srv, alice.id, alice.sk) == 0);
	/*
	 * Pipeline sends without waiting for acks. Once the first acks are back
	 * (so the server is demonstrably committing), keep sending and kill it
	 * in the middle of the stream.
	 */
	for (int i = 0; i < N; i++) {
		struct veil_buf m;
		snprintf(text, sizeof text, "PLAINTEXT-MARKER-%04d", i);
		sent[i] = veil_random_u64();
		veil_buf_init(&m, 8192);
		IT_CHECK(it_text(&m, &alice, &bob, sent[i], text, 0) == 0);
		int rc = it_send(&a, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len);
		veil_buf_release(&m);
		if (rc != 0)
			break;
		if (i == N / 2 - 1) {
			while (acked == 0 && it_recv(&a, 5000) == 0)
				if (a.buf[0] == VEIL_CSP_OUTGOING_ACK)
					acks[acked++] = veil_load_u64le(a.buf + 12);
		}
		if (i == N / 2 + N / 8)
			it_stop(&srv, SIGKILL);
	}
	while (it_recv(&a, 2000) == 0)
		if (a.buf[0] == VEIL_CSP_OUTGOING_ACK && acked < N)
			acks[acked++] = veil_load_u64le(a.buf + 12);
	it_close(&a);
	IT_CHECK(srv.pid == 0);
	fprintf(stderr, "crash test: %d of %d sends acked before kill -9\n", acked, N);
	IT_CHECK(acked > 0);
	IT_CHECK(it_start(&srv) == 0);
	IT_CHECK(!tree_contains(srv.data, "PLAINTEXT-MARKER"));
	IT_CHECK(it_login(&b, &srv, bob.id, bob.sk) == 0);
	int found = 0, delivered = 0;
	for (;;) {
		IT_CHECK(it_recv(&b, 5000) == 0);
		if (b.buf[0] == VEIL_CSP_QUEUE_SEND_COMPLETE)
			break;
		if (b.buf[0] != VEIL_CSP_INCOMING_MESSAGE)
			continue;
		uint64_t got;
		IT_CHECK(it_open_text(&b, &bob, &alice, text, sizeof text, &got) == 0);
		delivered++;
		for (int i = 0; i < acked; i++)
			if (acks[i] == got)
				found++;
		IT_CHECK(it_ack(&b, alice.id, got) == 0);
	}
	fprintf(stderr, "crash test: %d delivered after restart, %d of the acked ones\n", delivered,
	        found);
	free(acks);
	IT_CHECK(found == acked);
	it_close(&b);
	return 0;
}

static int t_clean_shutdown(void)
{
	struct it_conn a;
	IT_CHECK(it_login(&a, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(it_expect(&a, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	IT_CHECK(it_stop(&srv, SIGTERM) == 0);
	/* The client was told it may reconnect. */
	IT_CHECK(it_expect(&a, VEIL_CSP_ECHO_RESPONSE, 5000) == VEIL_ECLOSED);
	IT_CHECK(a.buf[0] == VEIL_CSP_CLOSE_ERROR && a.buf[4] == 1);
	it_close(&a);
	return 0;
}

/*
 * Waits for the server's answer to each of n sends: an ack, or an alert
 * naming the receiver (a refused message is never acked). Counts both;
 * *alert gets the last alert's text.
 */
static int answers(struct it_conn *c, const struct it_user *to, int n, int *acks, int *alerts,
                   char *alert, size_t cap)
{
	*acks = *alerts = 0;
	while (*acks + *alerts < n) {
		IT_CHECK(it_recv(c, 5000) == 0);
		if (c->buf[0] == VEIL_CSP_OUTGOING_ACK) {
			IT_CHECK(memcmp(c->buf + 4, to->id, 8) == 0);
			(*acks)++;
		} else if (c->buf[0] == VEIL_CSP_ALERT) {
			size_t len = c->len - 4 < cap - 1 ? c->len - 4 : cap - 1;
			memcpy(alert, c->buf + 4, len);
			alert[len] = 0;
			IT_CHECK(memmem(alert, len, to->id, 8) != NULL);
			(*alerts)++;
		} else {
			IT_CHECK(c->buf[0] != VEIL_CSP_CLOSE_ERROR);
		}
	}
	return 0;
}

/* Logs r in and acks everything queued for it; *n gets how many there were. */
static int drain_all(struct it_server *s, const struct it_user *r, int *n)
{
	struct it_conn c;
	*n = 0;
	IT_CHECK(it_login(&c, s, r->id, r->sk) == 0);
	for (;;) {
		IT_CHECK(it_recv(&c, 5000) == 0);
		if (c.buf[0] == VEIL_CSP_QUEUE_SEND_COMPLETE)
			break;
		if (c.buf[0] != VEIL_CSP_INCOMING_MESSAGE)
			continue;
		struct veil_msgbox m;
		IT_CHECK(veil_msgbox_parse(&m, c.buf + 4, c.len - 4) == 0);
		IT_CHECK(it_ack(&c, m.sender, m.msg_id) == 0);
		(*n)++;
	}
	it_close(&c);
	return 0;
}

/*
 * One sender cannot fill another's queue. On a veild with a queue of 20
 * and a share of 5: alice floods offline carol until refused with the
 * alert that names her share; bob still delivers to carol; carol logs in
 * and gets everything, and her acks free alice's share. Then the same
 * through the hand-off: carol online but not acking, so the messages are
 * stored only when the hand-off window ends, and the share is checked there.
 */
static int t_sender_share(void)
{
	static struct it_server s2;
	struct it_user a, b, r;
	struct it_conn ca, cb, cr;
	char alert[256], text[32];
	int acks, alerts, n;
	s2.extra[0] = "--queue-limit";
	s2.extra[1] = "20";
	s2.extra[2] = "--queue-sender-limit";
	s2.extra[3] = "5";
	s2.extra[4] = NULL;
	IT_CHECK(it_start(&s2) == 0);
	IT_CHECK(it_register(&s2, &a) == 0 && it_register(&s2, &b) == 0 &&
	         it_register(&s2, &r) == 0);

	IT_CHECK(it_login(&ca, &s2, a.id, a.sk) == 0);
	for (int i = 0; i < 5; i++) {
		snprintf(text, sizeof text, "flood %d", i);
		IT_CHECK(send_text(&ca, &a, &r, text) != 0);
	}
	IT_CHECK(send_nowait(&ca, &a, &r, "one too many", 0) != 0);
	IT_CHECK(answers(&ca, &r, 1, &acks, &alerts, alert, sizeof alert) == 0);
	IT_CHECK(acks == 0 && alerts == 1);
	IT_CHECK(strstr(alert, "too many messages from you") != NULL);

	/* Bob is not held up by alice's flood. */
	IT_CHECK(it_login(&cb, &s2, b.id, b.sk) == 0);
	for (int i = 0; i < 5; i++) {
		snprintf(text, sizeof text, "bob %d", i);
		IT_CHECK(send_text(&cb, &b, &r, text) != 0);
	}
	it_close(&cb);

	/* Carol gets the ten accepted ones; her acks free alice's share. */
	IT_CHECK(drain_all(&s2, &r, &n) == 0);
	IT_CHECK(n == 10);
	IT_CHECK(send_text(&ca, &a, &r, "room again") != 0);
	IT_CHECK(drain_all(&s2, &r, &n) == 0);
	IT_CHECK(n == 1);

	/* Hand-off: six delivered live and not acked; five fit the share when stored. */
	IT_CHECK(it_login(&cr, &s2, r.id, r.sk) == 0);
	IT_CHECK(it_expect(&cr, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) == 0);
	uint64_t ids[6];
	for (int i = 0; i < 6; i++)
		IT_CHECK((ids[i] = send_nowait(&ca, &a, &r, "live", 0)) != 0);
	IT_CHECK(answers(&ca, &r, 6, &acks, &alerts, alert, sizeof alert) == 0);
	IT_CHECK(acks == 5 && alerts == 1);
	IT_CHECK(strstr(alert, "too many messages from you") != NULL);
	for (int i = 0; i < 6; i++) {
		IT_CHECK(it_expect(&cr, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
		IT_CHECK(it_ack(&cr, a.id, ids[i]) == 0);
	}
	it_close(&cr);
	it_close(&ca);
	/* Carol's acks deleted every stored one: nothing is left or lost. */
	IT_CHECK(drain_all(&s2, &r, &n) == 0);
	IT_CHECK(n == 0);
	IT_CHECK(it_stop(&s2, SIGTERM) == 0);
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
	signal(SIGPIPE, SIG_IGN);
	if (veil_crypto_init() != 0 || it_start(&srv) != 0) {
		fprintf(stderr, "cannot start veild\n");
		printf("FAIL start_veild\n");
		return 1;
	}
	if (it_register(&srv, &alice) != 0 || it_register(&srv, &bob) != 0 ||
	    it_register(&srv, &carol) != 0) {
		fprintf(stderr, "cannot register: %s\n", veil_dir_errmsg());
		printf("FAIL register\n");
		it_stop(&srv, SIGKILL);
		return 1;
	}
	RUN_IT(t_online_both_ways);
	RUN_IT(t_offline_queue_in_order);
	RUN_IT(t_unacked_redelivered);
	RUN_IT(t_wrong_key_refused);
	RUN_IT(t_spoofed_sender_closes);
	RUN_IT(t_malformed_input_closes_one);
	RUN_IT(t_second_login_replaces_first);
	RUN_IT(t_device_sessions);
	RUN_IT(t_unknown_receiver_alert);
	RUN_IT(t_handoff_acked_by_recipient);
	RUN_IT(t_handoff_unacked_is_stored);
	RUN_IT(t_handoff_recipient_leaves);
	RUN_IT(t_no_queue_then_normal);
	RUN_IT(t_sender_share);
	RUN_IT(t_crash_loses_no_acked_message);
	RUN_IT(t_clean_shutdown);
	it_stop(&srv, SIGKILL);
	return failed ? 1 : 0;
}
