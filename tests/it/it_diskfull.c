/*
 * A full disk, on a 20 MiB tmpfs (needs root to mount; skipped otherwise).
 * Alice fills Bob's queue until the disk is full. Wanted: her session stays
 * up and each further message is refused with an alert that says the server
 * is out of disk space; the log says "disk full" in words; Bob can still
 * read and ack everything (the acks are durable: a second login finds the
 * queue empty); and once Bob's acks have made room, Alice's messages are
 * accepted again without anyone restarting anything.
 */
#include <sys/mount.h>
#include <sys/stat.h>

#include "harness.h"

#define BODY_LEN 5000
#define IN_FLIGHT 16
#define MAX_SENDS 20000

static struct it_server srv;
static struct it_user alice, bob;
static char mnt[128];

static int log_has(const char *needle)
{
	char path[300], line[1024];
	snprintf(path, sizeof path, "%s/veild.log", srv.data);
	FILE *f = fopen(path, "r");
	int seen = 0;
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		seen |= strstr(line, needle) != NULL;
	if (f != NULL)
		fclose(f);
	return seen;
}

static int send_one(struct it_conn *c, const char *body)
{
	struct veil_buf m;
	veil_buf_init(&m, 8192);
	int rc = it_text(&m, &alice, &bob, veil_random_u64(), body, 0);
	if (rc == 0)
		rc = it_send(c, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len);
	veil_buf_release(&m);
	return rc;
}

/* Reads one answer to a send: 1 acked, 0 refused for disk space, -1 anything else. */
static int answer(struct it_conn *c)
{
	for (;;) {
		if (it_recv(c, 10000) != 0)
			return -1;
		uint8_t t = c->buf[0];
		if (t == VEIL_CSP_OUTGOING_ACK)
			return 1;
		if (t == VEIL_CSP_ALERT) {
			char text[300];
			size_t n = c->len - 4 < sizeof text - 1 ? c->len - 4 : sizeof text - 1;
			memcpy(text, c->buf + 4, n);
			text[n] = 0;
			if (strstr(text, "out of disk space") != NULL)
				return 0;
			fprintf(stderr, "alert: %s\n", text);
			return -1;
		}
		if (t == VEIL_CSP_CLOSE_ERROR) {
			fprintf(stderr, "close-error: %.*s\n", (int)(c->len - 5), c->buf + 5);
			return -1;
		}
		/* echo requests, queue-send-complete: not answers */
	}
}

/* Bob reads and acks his whole queue; returns how many messages. */
static long drain_bob(void)
{
	struct it_conn b;
	long n = 0;
	if (it_login(&b, &srv, bob.id, bob.sk) != 0)
		return -1;
	for (;;) {
		if (it_recv(&b, 10000) != 0) {
			n = -1;
			break;
		}
		if (b.buf[0] == VEIL_CSP_QUEUE_SEND_COMPLETE)
			break;
		if (b.buf[0] != VEIL_CSP_INCOMING_MESSAGE)
			continue;
		struct veil_msgbox m;
		if (veil_msgbox_parse(&m, b.buf + 4, b.len - 4) != 0 ||
		    it_ack(&b, m.sender, m.msg_id) != 0) {
			n = -1;
			break;
		}
		n++;
	}
	/* Acks go out before the close; give the store a moment to commit them. */
	usleep(500000);
	it_close(&b);
	return n;
}

static int run(void)
{
	static char body[BODY_LEN + 1];
	struct it_conn a;
	memset(body, 'x', BODY_LEN);
	if (it_register(&srv, &alice) != 0 || it_register(&srv, &bob) != 0 ||
	    it_login(&a, &srv, alice.id, alice.sk) != 0 ||
	    it_expect(&a, VEIL_CSP_QUEUE_SEND_COMPLETE, 5000) != 0) {
		printf("FAIL setup\n");
		return 1;
	}
	long acked = 0, refused = 0, sent = 0, answered = 0;
	int bad = 0;
	/* Send with a few in flight until the disk is full and a few more are refused. */
	while (sent < MAX_SENDS && refused < 20 && !bad) {
		while (sent - answered < IN_FLIGHT && sent < MAX_SENDS)
			bad |= send_one(&a, body) != 0, sent++;
		int r = answer(&a);
		answered++;
		if (r == 1)
			acked++;
		else if (r == 0)
			refused++;
		else
			bad = 1;
	}
	while (!bad && answered < sent) {
		int r = answer(&a);
		answered++;
		acked += r == 1;
		refused += r == 0;
		bad |= r < 0;
	}
	printf("  figures: %ld messages acked before the disk filled, %ld refused after\n", acked,
	       refused);
	int failed = 0;
#define CHECK(name, cond)                                                                          \
	do {                                                                                       \
		int ok_ = (cond);                                                                  \
		printf("%s %s\n", ok_ ? "PASS" : "FAIL", name);                                    \
		failed |= !ok_;                                                                    \
	} while (0)
	CHECK("full_disk_refused_with_alert_session_up", !bad && refused >= 20 && acked > 0);
	CHECK("log_says_disk_full", log_has("disk full") && !log_has("input/output error"));
	long got = drain_bob();
	printf("  figures: bob read and acked %ld\n", got);
	CHECK("recipient_reads_everything_acked", got == acked);
	long again = drain_bob();
	CHECK("acks_durable_at_full_disk", again == 0);
	/* Room again: Alice's next messages (same session) are accepted within seconds. */
	int back = 0;
	for (int i = 0; i < 40 && !back && !bad; i++) {
		if (send_one(&a, body) != 0)
			break;
		int r = answer(&a);
		back = r == 1;
		bad |= r < 0;
		if (!back)
			usleep(250000);
	}
	CHECK("recovers_by_itself", back);
	it_close(&a);
	return failed;
}

int main(void)
{
	char cmd[300];
	signal(SIGPIPE, SIG_IGN);
	if (geteuid() != 0) {
		printf("  skipped: mounting a tmpfs needs root\n");
		return 0;
	}
	if (it_on_pg()) {
		/* The disk that fills here is the SQLite store's; PostgreSQL's is elsewhere. */
		printf("  skipped: SQLite only (fills the disk under the SQLite store)\n");
		return 0;
	}
	snprintf(mnt, sizeof mnt, "/tmp/veil-full-XXXXXX");
	if (mkdtemp(mnt) == NULL || mount("tmpfs", mnt, "tmpfs", 0, "size=20m,mode=0700") != 0) {
		printf("FAIL mount_tmpfs (%s)\n", strerror(errno));
		return 1;
	}
	snprintf(srv.data, sizeof srv.data, "%s/srv", mnt);
	srv.chat_port = it_free_port();
	srv.http_port = it_free_port();
	srv.extra[0] = "--queue-limit";
	srv.extra[1] = "1000000";
	srv.extra[2] = "--store-reserve-mb";
	srv.extra[3] = "4";
	int failed = 1;
	if (veil_crypto_init() != 0 || mkdir(srv.data, 0700) != 0 || it_start(&srv) != 0)
		printf("FAIL start_veild\n");
	else
		failed = run();
	it_stop(&srv, SIGTERM);
	if (failed) {
		snprintf(cmd, sizeof cmd, "tail -20 %s/veild.log >&2", srv.data);
		if (system(cmd) != 0)
			fprintf(stderr, "(no log)\n");
	}
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	return failed ? 1 : 0;
}
