/*
 * The chat service on two event loops (--chat-threads 2): identities whose
 * home loops differ exchange messages through the loops' inboxes; each
 * recipient gets every message exactly once and in each sender's order,
 * each sender gets every ack, and the one-connection rules hold whichever
 * loop accepted each connection (new connections take turns over the loops).
 */
#define _GNU_SOURCE /* memmem */
#include "harness.h"

#define NU 12  /* identities: both loops are home to some (a 1 in 2^11 chance otherwise) */
#define PER 25 /* messages from each identity to each other one, per round */

static struct it_server srv;
static struct it_user users[NU];

/* Message ids carry the sender's index and a counter: sender << 32 | n. */
static uint64_t next_n[NU][NU]; /* [from][to]: the next counter to send */
static uint64_t want_n[NU][NU]; /* [to][from]: the counter expected next */

static int send_one(struct it_conn *c, int from, int to)
{
	struct veil_buf m;
	uint64_t id = ((uint64_t)from << 32) | next_n[from][to]++;
	veil_buf_init(&m, 8192);
	int rc = it_text(&m, &users[from], &users[to], id, "x", 0);
	if (rc == 0)
		rc = it_send(c, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len);
	veil_buf_release(&m);
	return rc;
}

static int user_index(const uint8_t id[8])
{
	for (int i = 0; i < NU; i++)
		if (memcmp(users[i].id, id, 8) == 0)
			return i;
	return -1;
}

/*
 * Reads c (user me) until it holds no more for 300 ms after *need messages
 * and *acks acks have come: every incoming message must be the next one of
 * its sender (exactly once, in order); it is acked at once.
 */
static int drain(struct it_conn *c, int me, int *need, int *acks)
{
	for (;;) {
		int rc = it_recv(c, *need > 0 || *acks > 0 ? 10000 : 300);
		if (rc == VEIL_ETIMEOUT && *need == 0 && *acks == 0)
			return 0;
		if (rc != 0) {
			fprintf(stderr,
			        "user %d: read failed (%d) with %d messages, %d acks missing\n", me,
			        rc, *need, *acks);
			return 1;
		}
		if (c->buf[0] == VEIL_CSP_OUTGOING_ACK) {
			(*acks)--;
			continue;
		}
		if (c->buf[0] == VEIL_CSP_CLOSE_ERROR)
			return 1;
		if (c->buf[0] != VEIL_CSP_INCOMING_MESSAGE)
			continue;
		struct veil_msgbox m;
		IT_CHECK(veil_msgbox_parse(&m, c->buf + 4, c->len - 4) == 0);
		int from = user_index(m.sender);
		IT_CHECK(from >= 0 && from != me && memcmp(m.receiver, users[me].id, 8) == 0);
		IT_CHECK((int)(m.msg_id >> 32) == from);
		uint64_t n = m.msg_id & 0xffffffffu;
		if (n != want_n[me][from]) {
			fprintf(stderr, "user %d: from %d got #%llu, wanted #%llu\n", me, from,
			        (unsigned long long)n, (unsigned long long)want_n[me][from]);
			return 1;
		}
		want_n[me][from]++;
		(*need)--;
		IT_CHECK(it_ack(c, m.sender, m.msg_id) == 0);
	}
}

/*
 * Everyone online sends PER messages to everyone else, interleaved, without
 * waiting; then each reads its own and its acks.
 */
static int round_online(struct it_conn *c)
{
	int need[NU], acks[NU];
	for (int i = 0; i < NU; i++) {
		need[i] = (NU - 1) * PER;
		acks[i] = (NU - 1) * PER;
	}
	for (int k = 0; k < PER; k++)
		for (int from = 0; from < NU; from++)
			for (int to = 0; to < NU; to++)
				if (to != from)
					IT_CHECK(send_one(&c[from], from, to) == 0);
	for (int i = 0; i < NU; i++)
		IT_CHECK(drain(&c[i], i, &need[i], &acks[i]) == 0);
	for (int i = 0; i < NU; i++)
		IT_CHECK(need[i] == 0 && acks[i] == 0);
	return 0;
}

static int login_all(struct it_conn *c, int from, int to)
{
	for (int i = from; i < to; i++) {
		IT_CHECK(it_login(&c[i], &srv, users[i].id, users[i].sk) == 0);
		IT_CHECK(it_expect(&c[i], VEIL_CSP_QUEUE_SEND_COMPLETE, 10000) == 0);
	}
	return 0;
}

static int t_cross_loop_exchange(void)
{
	struct it_conn c[NU];
	IT_CHECK(login_all(c, 0, NU) == 0);
	IT_CHECK(round_online(c) == 0);
	/*
	 * Half go offline; the others send to everyone: the messages for the
	 * absent are stored (by their home loop) and come, in order, when they
	 * are back (on whichever loop accepts them).
	 */
	for (int i = 0; i < NU / 2; i++)
		it_close(&c[i]);
	int need[NU] = {0}, acks[NU] = {0};
	for (int k = 0; k < PER; k++)
		for (int from = NU / 2; from < NU; from++)
			for (int to = 0; to < NU; to++)
				if (to != from) {
					IT_CHECK(send_one(&c[from], from, to) == 0);
					need[to]++;
					acks[from]++;
				}
	for (int i = NU / 2; i < NU; i++)
		IT_CHECK(drain(&c[i], i, &need[i], &acks[i]) == 0);
	/* Queued messages come before queue-send-complete (which drain skips). */
	for (int i = 0; i < NU / 2; i++)
		IT_CHECK(it_login(&c[i], &srv, users[i].id, users[i].sk) == 0);
	for (int i = 0; i < NU / 2; i++)
		IT_CHECK(drain(&c[i], i, &need[i], &acks[i]) == 0);
	IT_CHECK(round_online(c) == 0);
	for (int i = 0; i < NU; i++)
		it_close(&c[i]);
	return 0;
}

/* A close-error "another connection" on c. */
static int replaced(struct it_conn *c)
{
	if (it_expect(c, VEIL_CSP_ECHO_RESPONSE, 5000) != VEIL_ECLOSED)
		return 1;
	return c->buf[0] == VEIL_CSP_CLOSE_ERROR && c->buf[4] == 0 &&
	               memmem(c->buf + 5, c->len - 5, "Another connection", 18) != NULL
	           ? 0
	           : 1;
}

/*
 * A second login of an identity closes the first, and the second gets the
 * messages, once each. Consecutive connections are accepted by different
 * loops, so over the identities both loops accept a first and a second
 * login that must meet on the identity's home loop.
 */
static int t_second_login_across_loops(void)
{
	struct it_conn s;
	IT_CHECK(it_login(&s, &srv, users[0].id, users[0].sk) == 0);
	IT_CHECK(it_expect(&s, VEIL_CSP_QUEUE_SEND_COMPLETE, 10000) == 0);
	for (int i = 1; i < NU; i++) {
		struct it_conn a1, a2;
		IT_CHECK(it_login(&a1, &srv, users[i].id, users[i].sk) == 0);
		IT_CHECK(it_expect(&a1, VEIL_CSP_QUEUE_SEND_COMPLETE, 10000) == 0);
		IT_CHECK(it_login(&a2, &srv, users[i].id, users[i].sk) == 0);
		IT_CHECK(replaced(&a1) == 0);
		it_close(&a1);
		IT_CHECK(it_expect(&a2, VEIL_CSP_QUEUE_SEND_COMPLETE, 10000) == 0);
		int need = 3, acks = 3, none = 0;
		for (int k = 0; k < 3; k++)
			IT_CHECK(send_one(&s, 0, i) == 0);
		IT_CHECK(drain(&s, 0, &none, &acks) == 0);
		IT_CHECK(drain(&a2, i, &need, &none) == 0);
		it_close(&a2);
	}
	it_close(&s);
	return 0;
}

/*
 * A device's newer session closes its older one across loops; another
 * device's session of the identity stays.
 */
static int t_device_session_across_loops(void)
{
	for (int i = 0; i < 4; i++) {
		struct it_conn d1, d2, o;
		IT_CHECK(it_login_device(&d1, &srv, users[i].id, users[i].sk, 7) == 0);
		IT_CHECK(it_login_device(&o, &srv, users[i].id, users[i].sk, 8) == 0);
		IT_CHECK(it_login_device(&d2, &srv, users[i].id, users[i].sk, 7) == 0);
		IT_CHECK(replaced(&d1) == 0);
		it_close(&d1);
		IT_CHECK(it_send(&o, VEIL_CSP_ECHO_REQUEST, (const uint8_t *)"live", 4) == 0);
		IT_CHECK(it_expect(&o, VEIL_CSP_ECHO_RESPONSE, 5000) == 0);
		IT_CHECK(it_send(&d2, VEIL_CSP_ECHO_REQUEST, (const uint8_t *)"live", 4) == 0);
		IT_CHECK(it_expect(&d2, VEIL_CSP_ECHO_RESPONSE, 5000) == 0);
		it_close(&d2);
		it_close(&o);
	}
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
	srv.extra[0] = "--chat-threads";
	srv.extra[1] = "2";
	if (veil_crypto_init() != 0 || it_start(&srv) != 0) {
		fprintf(stderr, "cannot start veild\n");
		printf("FAIL start_veild\n");
		return 1;
	}
	for (int i = 0; i < NU; i++) {
		if (it_register(&srv, &users[i]) != 0) {
			fprintf(stderr, "cannot register: %s\n", veil_dir_errmsg());
			printf("FAIL register\n");
			it_stop(&srv, SIGKILL);
			return 1;
		}
	}
	RUN_IT(t_cross_loop_exchange);
	RUN_IT(t_second_login_across_loops);
	RUN_IT(t_device_session_across_loops);
	/* A clean stop with both loops: every acked message was durable, exit 0. */
	int st = it_stop(&srv, SIGTERM);
	printf("%s clean_stop\n", st == 0 ? "PASS" : "FAIL");
	return failed || st != 0 ? 1 : 0;
}
