/*
 * `veil recv` against messages a conformant client may send that our own
 * sender never produces: a text longer than the sender's 6000-byte split
 * size, and bodies the receiver cannot decode. The sender is built on
 * lib/e2e and lib/csp directly; the receiver is the real `veil` CLI.
 * The rule under test: a message is acked only once it is stored.
 */
#define _GNU_SOURCE /* memmem */
#include "harness.h"

static struct it_server srv;
static struct it_user alice, bob;
static char tmp[256], bob_home[300];

/* Runs a command line with VEIL_HOME=bob_home; its stdout goes to out (NUL-terminated). */
static int run_bob(const char *args, char *out, size_t cap)
{
	char cmd[1024];
	size_t n = 0;
	snprintf(cmd, sizeof cmd, "VEIL_HOME='%s' '%s/veil' %s 2>>'%s/bob.err'", bob_home, it_bin(),
	         args, tmp);
	FILE *f = popen(cmd, "r");
	if (f == NULL)
		return -1;
	while (n + 1 < cap) {
		size_t k = fread(out + n, 1, cap - 1 - n, f);
		if (k == 0)
			break;
		n += k;
	}
	out[n] = 0;
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Seals one message of any type and body from alice to bob and waits for the server ack. */
static int send_raw(struct it_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	struct veil_e2e_out o = {.msg_id = veil_random_u64(),
	                         .created_at_ms = veil_now_ms(),
	                         .nickname = "Alice",
	                         .type = type};
	struct veil_buf m;
	memcpy(o.sender, alice.id, 8);
	memcpy(o.receiver, bob.id, 8);
	veil_buf_init(&m, 8192);
	int rc = veil_e2e_seal(&m, &o, alice.sk, bob.pk, body, len);
	if (rc == 0)
		rc = it_send(c, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len);
	veil_buf_release(&m);
	if (rc == 0)
		rc = it_expect(c, VEIL_CSP_OUTGOING_ACK, 5000);
	return rc;
}

static char out[65536];

/* A 7000-byte text (the sender's split size is 6000) is shown, logged and acked. */
static int t_long_text_received(void)
{
	static char text[7001];
	struct it_conn c;
	for (size_t i = 0; i < 7000; i += 2)
		memcpy(text + i, "\xc3\xa4", 2); /* 'a' with diaeresis, 2 bytes */
	text[7000] = 0;
	IT_CHECK(it_login(&c, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(send_raw(&c, VEIL_E2E_TEXT, (const uint8_t *)text, 7000) == 0);
	it_close(&c);
	IT_CHECK(run_bob("recv --json", out, sizeof out) == 0);
	IT_CHECK(strstr(out, "\"type\":\"text\"") != NULL);
	IT_CHECK(strstr(out, text) != NULL);
	/* Acked: a second run finds nothing; stored: the log has it. */
	IT_CHECK(run_bob("recv --json", out, sizeof out) == 0);
	IT_CHECK(out[0] == 0);
	IT_CHECK(run_bob("log --json", out, sizeof out) == 0);
	IT_CHECK(strstr(out, text) != NULL);
	return 0;
}

/* A text that is not UTF-8 cannot be shown: it is stored raw, reported, and only then acked. */
static int t_undecodable_stored_raw(void)
{
	uint8_t bad[100];
	struct it_conn c;
	memset(bad, 0xff, sizeof bad);
	IT_CHECK(it_login(&c, &srv, alice.id, alice.sk) == 0);
	IT_CHECK(send_raw(&c, VEIL_E2E_TEXT, bad, sizeof bad) == 0);
	/* A receipt of a length no receipt can have. */
	IT_CHECK(send_raw(&c, VEIL_E2E_DELIVERY_RECEIPT, bad, 4) == 0);
	it_close(&c);
	IT_CHECK(run_bob("recv --json", out, sizeof out) == 0);
	IT_CHECK(strstr(out, "\"raw\":true") != NULL);
	IT_CHECK(strstr(out, "\"type_code\":1,") != NULL || strstr(out, "\"type_code\":1}"));
	IT_CHECK(strstr(out, "\"size\":100") != NULL);
	IT_CHECK(strstr(out, "\"size\":4") != NULL);
	IT_CHECK(run_bob("recv", out, sizeof out) == 0);
	IT_CHECK(out[0] == 0);
	IT_CHECK(run_bob("log", out, sizeof out) == 0);
	IT_CHECK(strstr(out, "stored raw: type 0x01, 100 bytes") != NULL);
	IT_CHECK(strstr(out, "stored raw: type 0x80, 4 bytes") != NULL);
	IT_CHECK(run_bob("log --json", out, sizeof out) == 0);
	IT_CHECK(strstr(out, "\"raw\":true") != NULL);
	return 0;
}

/*
 * Reads alice's queue: every delivery receipt (bob's automatic ones) must
 * come without a nickname; a text with bob's. Returns 0 if so and at least
 * one receipt and one text came.
 */
static int t_nickname_only_where_required(void)
{
	struct it_conn c;
	int receipts = 0, texts = 0;
	char cmd[64], id[VEIL_ID_LEN + 1];
	veil_id_str(id, alice.id);
	snprintf(cmd, sizeof cmd, "send %s 'hello from Bob'", id);
	IT_CHECK(run_bob(cmd, out, sizeof out) == 0);
	IT_CHECK(it_login(&c, &srv, alice.id, alice.sk) == 0);
	for (;;) {
		struct veil_msgbox mb;
		struct veil_buf body;
		struct veil_e2e_meta meta;
		uint8_t type;
		if (it_recv(&c, 5000) != 0)
			break;
		if (c.buf[0] == VEIL_CSP_QUEUE_SEND_COMPLETE)
			break;
		if (c.buf[0] != VEIL_CSP_INCOMING_MESSAGE)
			continue;
		IT_CHECK(veil_msgbox_parse(&mb, c.buf + 4, c.len - 4) == 0);
		veil_buf_init(&body, 8192);
		IT_CHECK(veil_e2e_open(&mb, alice.sk, bob.pk, &type, &body, &meta) == 0);
		veil_buf_release(&body);
		IT_CHECK(meta.present);
		if (type == VEIL_E2E_DELIVERY_RECEIPT) {
			IT_CHECK(!meta.has_nickname);
			receipts++;
		} else if (type == VEIL_E2E_TEXT) {
			IT_CHECK(meta.has_nickname && strcmp(meta.nickname, "Bob") == 0);
			texts++;
		}
		IT_CHECK(it_ack(&c, mb.sender, mb.msg_id) == 0);
	}
	it_close(&c);
	IT_CHECK(receipts > 0 && texts == 1);
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
	struct veil_dir_identity di;
	char cmd[1024];
	int failed = 0;
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmp, sizeof tmp, "/tmp/veil-it-recv-XXXXXX");
	if (veil_crypto_init() != 0 || mkdtemp(tmp) == NULL || it_start(&srv) != 0) {
		printf("FAIL start_veild\n");
		return 1;
	}
	snprintf(bob_home, sizeof bob_home, "%s/bob", tmp);
	/* Not a test of the encrypted store: no passphrase to give each command. */
	snprintf(cmd, sizeof cmd, "init --server %s --nickname Bob --no-passphrase", srv.http_url);
	if (it_register(&srv, &alice) != 0 || run_bob(cmd, out, sizeof out) != 0 ||
	    (out[VEIL_ID_LEN] = 0, veil_id_parse(bob.id, out)) != 0 ||
	    veil_dir_get_identity(srv.dir_url, bob.id, &di) != 0) {
		printf("FAIL setup\n");
		it_stop(&srv, SIGKILL);
		return 1;
	}
	memcpy(bob.pk, di.pk, 32);
	RUN_IT(t_long_text_received);
	RUN_IT(t_undecodable_stored_raw);
	RUN_IT(t_nickname_only_where_required);
	it_stop(&srv, SIGKILL);
	snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tmp, srv.data);
	if (system(cmd) != 0)
		failed++;
	return failed ? 1 : 0;
}
