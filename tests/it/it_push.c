/*
 * Push wake-ups (srv/push) against a UnifiedPush endpoint played by
 * tests/it/push_receiver.py: what a wake-up carries (a fixed body, no
 * sender, recipient, message ID or content, in body or headers), one per
 * identity per push-interval, none while the identity is connected or for
 * a message without the push flag, a retry after a 503, a token deleted
 * after a 410, a wake-up within the interval sent once it has passed, and
 * the global limit.
 *
 * Ordering instead of timing: the worker sends wake-ups in the order they
 * are due, so once a "marker" identity's wake-up (asked for later) has
 * arrived, a wake-up that should not go out would have arrived before it.
 */
#define _GNU_SOURCE /* strcasestr */
#include <sqlite3.h>

#include <jansson.h>

#include "harness.h"

static struct it_server srv;
static struct it_user alice;
static struct it_conn ca; /* alice stays connected throughout */
static char tmp[256], got[320];
static pid_t rcv_pid;
static uint16_t rcv_port;

static int start_receiver(void)
{
	char port[8], ready[340];
	rcv_port = it_free_port();
	snprintf(port, sizeof port, "%u", rcv_port);
	snprintf(got, sizeof got, "%s/got.jsonl", tmp);
	snprintf(ready, sizeof ready, "%s.ready", got);
	rcv_pid = fork();
	if (rcv_pid < 0)
		return -1;
	if (rcv_pid == 0) {
		execlp("python3", "python3", "tests/it/push_receiver.py", port, got, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		if (access(ready, F_OK) == 0)
			return 0;
		usleep(50000);
	}
	return -1;
}

/* The records for path, in arrival order (a JSON array the caller frees). */
static json_t *records(const char *path)
{
	json_t *arr = json_array();
	FILE *f = fopen(got, "r");
	char line[8192];
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		json_t *r = json_loads(line, 0, NULL);
		if (r == NULL)
			continue;
		const char *p = json_string_value(json_object_get(r, "path"));
		if (p != NULL && strcmp(p, path) == 0)
			json_array_append(arr, r);
		json_decref(r);
	}
	if (f != NULL)
		fclose(f);
	return arr;
}

/* Waits up to 20 s for n records of path; returns how many there are. */
static size_t wait_records(const char *path, size_t n)
{
	size_t have = 0;
	for (int i = 0; i < 400; i++) {
		json_t *a = records(path);
		have = json_array_size(a);
		json_decref(a);
		if (have >= n)
			break;
		usleep(50000);
	}
	return have;
}

static size_t count(const char *path)
{
	json_t *a = records(path);
	size_t n = json_array_size(a);
	json_decref(a);
	return n;
}

/* Round trip through the server: everything sent before has been handled. */
static int sync_conn(struct it_conn *c)
{
	uint8_t e[8];
	randombytes_buf(e, sizeof e);
	int rc = it_send(c, VEIL_CSP_ECHO_REQUEST, e, sizeof e);
	if (rc == 0)
		rc = it_expect(c, VEIL_CSP_ECHO_RESPONSE, 5000);
	return rc;
}

/* Closes c and waits until the server has closed its side too. */
static int go_offline(struct it_conn *c)
{
	shutdown(c->fd, SHUT_WR);
	int rc;
	while ((rc = it_recv(c, 5000)) == 0)
		;
	it_close(c);
	return rc == VEIL_ECLOSED ? 0 : rc;
}

/* Registers u, sets its push token (type, then the URL of path), stays logged in as c. */
static int user_online(struct it_user *u, struct it_conn *c, uint8_t type, const char *path)
{
	uint8_t tok[300];
	int n = snprintf((char *)tok + 1, sizeof tok - 1, "http://127.0.0.1:%u%s", rcv_port, path);
	tok[0] = type;
	int rc = it_register(&srv, u);
	if (rc == 0)
		rc = it_login(c, &srv, u->id, u->sk);
	if (rc == 0)
		rc = it_send(c, VEIL_CSP_PUSH_TOKEN, tok, (size_t)n + 1);
	if (rc == 0)
		rc = sync_conn(c);
	return rc;
}

/* The same, offline again. */
static int user_offline(struct it_user *u, const char *path)
{
	struct it_conn c;
	int rc = user_online(u, &c, 0x40, path);
	if (rc == 0)
		rc = go_offline(&c);
	return rc;
}

/* alice sends to u (flags) and waits for the server's ack: the message is stored. */
static int send_to(const struct it_user *u, uint8_t flags, uint64_t *msg_id)
{
	struct veil_buf m;
	uint64_t id = veil_random_u64();
	veil_buf_init(&m, 8192);
	int rc = it_text(&m, &alice, u, id, "a secret only the two of us know", flags);
	if (rc == 0)
		rc = it_send(&ca, VEIL_CSP_OUTGOING_MESSAGE, m.p, m.len);
	veil_buf_release(&m);
	if (rc == 0)
		rc = it_expect(&ca, VEIL_CSP_OUTGOING_ACK, 5000);
	if (msg_id != NULL)
		*msg_id = id;
	return rc;
}

/* A fresh identity's wake-up, asked for now, has arrived. */
static int marker(void)
{
	static int k;
	struct it_user m;
	char path[32];
	snprintf(path, sizeof path, "/marker-%d", ++k);
	if (user_offline(&m, path) != 0 || send_to(&m, VEIL_MSG_FLAG_PUSH, NULL) != 0)
		return -1;
	return wait_records(path, 1) == 1 ? 0 : -1;
}

static struct it_user bob;

static int t_wake_carries_nothing(void)
{
	uint64_t mid;
	char ida[9], idb[9], hex[17], hexle[17];
	IT_CHECK(user_offline(&bob, "/bob") == 0);
	IT_CHECK(send_to(&bob, VEIL_MSG_FLAG_PUSH, &mid) == 0);
	IT_CHECK(wait_records("/bob", 1) == 1);
	json_t *a = records("/bob");
	json_t *r = json_array_get(a, 0), *h = json_object_get(r, "headers");
	int ok = strcmp(json_string_value(json_object_get(r, "method")), "POST") == 0 &&
	         strcmp(json_string_value(json_object_get(r, "body")), "wake") == 0 &&
	         strcmp(json_string_value(json_object_get(h, "content-type")), "text/plain") == 0 &&
	         strcmp(json_string_value(json_object_get(h, "ttl")), "86400") == 0 &&
	         strcmp(json_string_value(json_object_get(h, "urgency")), "high") == 0;
	/* Only these headers: none of them can carry who or what. */
	const char *key;
	json_t *v;
	json_object_foreach(h, key, v)
	{
		static const char *const allowed[] = {"host",          "user-agent", "accept",
		                                      "content-type",  "ttl",        "urgency",
		                                      "content-length"};
		int known = 0;
		for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
			known |= strcmp(key, allowed[i]) == 0;
		if (!known) {
			fprintf(stderr, "unexpected header %s\n", key);
			ok = 0;
		}
	}
	char *dump = json_dumps(r, 0);
	memcpy(ida, alice.id, 8), ida[8] = 0;
	memcpy(idb, bob.id, 8), idb[8] = 0;
	snprintf(hex, sizeof hex, "%016llx", (unsigned long long)mid);
	snprintf(hexle, sizeof hexle, "%016llx", (unsigned long long)__builtin_bswap64(mid));
	ok = ok && dump != NULL && strstr(dump, ida) == NULL && strstr(dump, idb) == NULL &&
	     strcasestr(dump, hex) == NULL && strcasestr(dump, hexle) == NULL &&
	     strstr(dump, "secret") == NULL;
	free(dump);
	json_decref(a);
	IT_CHECK(ok);
	return 0;
}

static int t_one_per_interval(void)
{
	for (int i = 0; i < 3; i++)
		IT_CHECK(send_to(&bob, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(marker() == 0);
	IT_CHECK(count("/bob") == 1);
	return 0;
}

static int t_none_while_connected(void)
{
	struct it_user dave;
	struct it_conn cd;
	IT_CHECK(user_online(&dave, &cd, 0x40, "/dave") == 0);
	IT_CHECK(send_to(&dave, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(it_expect(&cd, VEIL_CSP_INCOMING_MESSAGE, 5000) == 0);
	IT_CHECK(marker() == 0);
	IT_CHECK(count("/dave") == 0);
	/* Offline, the same token does get a wake-up. */
	IT_CHECK(go_offline(&cd) == 0);
	IT_CHECK(send_to(&dave, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(wait_records("/dave", 1) == 1);
	return 0;
}

static int t_none_without_push_flag(void)
{
	struct it_user gina;
	IT_CHECK(user_offline(&gina, "/gina") == 0);
	IT_CHECK(send_to(&gina, 0, NULL) == 0);
	IT_CHECK(marker() == 0);
	IT_CHECK(count("/gina") == 0);
	return 0;
}

static int t_none_for_other_token_types(void)
{
	struct it_user hal;
	struct it_conn c;
	IT_CHECK(user_online(&hal, &c, 0x11, "/hal") == 0); /* FCM: stored, not served */
	IT_CHECK(go_offline(&c) == 0);
	IT_CHECK(send_to(&hal, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(marker() == 0);
	IT_CHECK(count("/hal") == 0);
	return 0;
}

static int t_retry_after_503(void)
{
	struct it_user erin;
	IT_CHECK(user_offline(&erin, "/fail-once-erin") == 0);
	IT_CHECK(send_to(&erin, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(wait_records("/fail-once-erin", 2) == 2);
	json_t *a = records("/fail-once-erin");
	double gap = json_real_value(json_object_get(json_array_get(a, 1), "t")) -
	             json_real_value(json_object_get(json_array_get(a, 0), "t"));
	json_decref(a);
	IT_CHECK(gap >= 0.9); /* the first back-off is a second */
	return 0;
}

/* fred's row in push_tokens (SQLite store only; -1 if it cannot be read). */
static int token_rows(const struct it_user *u)
{
	char path[300], id[9];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;
	snprintf(path, sizeof path, "%s/veil.db", srv.data);
	memcpy(id, u->id, 8), id[8] = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM push_tokens WHERE id = ?1", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_bind_text(st, 1, id, 8, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static int t_gone_deletes_token(void)
{
	struct it_user fred;
	int pg = it_on_pg();
	IT_CHECK(user_offline(&fred, "/gone-fred") == 0);
	if (!pg)
		IT_CHECK(token_rows(&fred) == 1);
	IT_CHECK(send_to(&fred, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(wait_records("/gone-fred", 1) == 1);
	IT_CHECK(marker() == 0); /* fred's wake-up is over, token deleted */
	IT_CHECK(count("/gone-fred") == 1);
	if (!pg)
		IT_CHECK(token_rows(&fred) == 0);
	return 0;
}

/* Run with --push-interval 2: a wake-up within the interval goes out once it ends. */
static int t_later_wake_after_interval(void)
{
	size_t n = count("/bob");
	IT_CHECK(send_to(&bob, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(wait_records("/bob", n + 1) == n + 1);
	IT_CHECK(send_to(&bob, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(send_to(&bob, VEIL_MSG_FLAG_PUSH, NULL) == 0);
	IT_CHECK(wait_records("/bob", n + 2) == n + 2);
	json_t *a = records("/bob");
	double gap = json_real_value(json_object_get(json_array_get(a, n + 1), "t")) -
	             json_real_value(json_object_get(json_array_get(a, n), "t"));
	json_decref(a);
	IT_CHECK(gap >= 1.9);
	IT_CHECK(marker() == 0);
	IT_CHECK(count("/bob") == n + 2); /* the two later messages: one wake-up */
	return 0;
}

/*
 * Run with --push-rate 60: the bucket holds 60 wake-ups and refills one a
 * second, so 62 wake-ups cannot all go out within 2 s (a lower bound that
 * a slow machine only makes longer).
 */
static int t_global_limit(void)
{
	enum { N = 62 };
	static struct it_user u[N];
	char path[32];
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof path, "/rate-%d", i);
		IT_CHECK(user_offline(&u[i], path) == 0);
	}
	for (int i = 0; i < N; i++)
		IT_CHECK(send_to(&u[i], VEIL_MSG_FLAG_PUSH, NULL) == 0);
	double first = 1e18, last = 0;
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof path, "/rate-%d", i);
		IT_CHECK(wait_records(path, 1) == 1);
		json_t *a = records(path);
		double t = json_real_value(json_object_get(json_array_get(a, 0), "t"));
		json_decref(a);
		first = t < first ? t : first;
		last = t > last ? t : last;
	}
	IT_CHECK(last - first >= 1.5);
	return 0;
}

/* veild stops cleanly (exit 0) with the push worker, also under the sanitizers. */
static int clean_stop(void)
{
	IT_CHECK(it_stop(&srv, SIGTERM) == 0);
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
	char cmd[700];
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmp, sizeof tmp, "/tmp/veil-it-push-XXXXXX");
	srv.extra[0] = "--push-allow-loopback-http";
	srv.extra[1] = "1";
	srv.extra[2] = "--push-interval";
	srv.extra[3] = "3600";
	/* Every message is stored first, also for a connected recipient. */
	srv.extra[4] = "--handoff-ms";
	srv.extra[5] = "0";
	if (veil_crypto_init() != 0 || mkdtemp(tmp) == NULL || start_receiver() != 0 ||
	    it_start(&srv) != 0 || it_register(&srv, &alice) != 0 ||
	    it_login(&ca, &srv, alice.id, alice.sk) != 0) {
		printf("FAIL setup\n");
		failed = 1;
		goto out;
	}
	RUN_IT(t_wake_carries_nothing);
	RUN_IT(t_one_per_interval);
	RUN_IT(t_none_while_connected);
	RUN_IT(t_none_without_push_flag);
	RUN_IT(t_none_for_other_token_types);
	RUN_IT(t_retry_after_503);
	RUN_IT(t_gone_deletes_token);
	it_close(&ca);
	RUN_IT(clean_stop);
	srv.extra[3] = "2";
	if (it_start(&srv) != 0 || it_login(&ca, &srv, alice.id, alice.sk) != 0) {
		printf("FAIL restart\n");
		failed++;
		goto out;
	}
	RUN_IT(t_later_wake_after_interval);
	it_close(&ca);
	RUN_IT(clean_stop);
	srv.extra[3] = "3600";
	srv.extra[6] = "--push-rate";
	srv.extra[7] = "60";
	if (it_start(&srv) != 0 || it_login(&ca, &srv, alice.id, alice.sk) != 0) {
		printf("FAIL restart\n");
		failed++;
		goto out;
	}
	RUN_IT(t_global_limit);
	it_close(&ca);
out:
	if (srv.pid > 0)
		RUN_IT(clean_stop);
	if (rcv_pid > 0) {
		kill(rcv_pid, SIGTERM);
		waitpid(rcv_pid, NULL, 0);
	}
	if (!failed) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tmp, srv.data);
		if (system(cmd) != 0)
			failed++;
	}
	return failed ? 1 : 0;
}
