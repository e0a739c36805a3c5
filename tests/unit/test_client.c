/*
 * Client library tests: profile storage, contacts, replay store, message
 * log, backoff schedule, and the CSP connection against an in-process
 * server thread built from the library's server-side handshake.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "veil/client.h"
#include "veil/dir.h"
#include "veil/e2e.h"
#include "veil/join.h"

#include "t.h"

static char home_base[64];
static int home_n;

/* A fresh, not yet existing profile directory below a temporary folder. */
static void new_home(char *out, size_t cap)
{
	if (home_base[0] == 0) {
		snprintf(home_base, sizeof home_base, "/tmp/veil-test-client.XXXXXX");
		if (mkdtemp(home_base) == NULL)
			abort();
	}
	snprintf(out, cap, "%s/h%d", home_base, home_n++);
}

static void fill_profile(struct veil_profile *p)
{
	veil_keypair(p->pk, p->sk);
	memcpy(p->id, "ABCD1234", VEIL_ID_LEN);
	snprintf(p->server_url, sizeof p->server_url, "http://127.0.0.1:8080");
	snprintf(p->dir_url, sizeof p->dir_url, "http://127.0.0.1:8080/directory/");
	snprintf(p->chat_host, sizeof p->chat_host, "127.0.0.1");
	p->chat_port = 5222;
	veil_random(p->server_pk, VEIL_KEY_LEN);
	veil_random(p->sign_pk, VEIL_KEY_LEN);
	snprintf(p->nickname, sizeof p->nickname, "Zoë");
}

static void test_profile_home(void)
{
	char out[64];
	setenv("VEIL_HOME", "/x/y", 1);
	CHECK_RC(veil_profile_home(out, sizeof out), 0);
	CHECK(strcmp(out, "/x/y") == 0);
	CHECK_RC(veil_profile_home(out, 3), VEIL_ELIMIT);
	unsetenv("VEIL_HOME");
	setenv("HOME", "/home/u", 1);
	CHECK_RC(veil_profile_home(out, sizeof out), 0);
	CHECK(strcmp(out, "/home/u/.veil") == 0);
}

static void test_profile_roundtrip(void)
{
	struct veil_profile a, b;
	char home[128], path[192];
	struct stat st;
	memset(&b, 0, sizeof b);
	new_home(home, sizeof home);
	CHECK_RC(veil_profile_open(&b, home), VEIL_ENOTFOUND);
	CHECK_RC(veil_profile_init(&a, home), 0);
	fill_profile(&a);
	CHECK_RC(veil_profile_create(&a), 0);
	/* A second create must not overwrite the identity. */
	CHECK_RC(veil_profile_create(&a), VEIL_EEXIST);

	CHECK(stat(home, &st) == 0 && (st.st_mode & 0777) == 0700);
	/* No passphrase (the library's default): the store key's KEK lies in store.key. */
	snprintf(path, sizeof path, "%s/key", home);
	CHECK(stat(path, &st) != 0);
	snprintf(path, sizeof path, "%s/store.key", home);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	snprintf(path, sizeof path, "%s/veil.db", home);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 077) == 0);

	CHECK_RC(veil_profile_open(&b, home), 0);
	CHECK_MEM(a.id, b.id, VEIL_ID_LEN);
	CHECK_MEM(a.pk, b.pk, VEIL_KEY_LEN);
	CHECK_MEM(a.sk, b.sk, VEIL_KEY_LEN);
	CHECK_MEM(a.server_pk, b.server_pk, VEIL_KEY_LEN);
	CHECK_MEM(a.sign_pk, b.sign_pk, VEIL_KEY_LEN);
	CHECK(strcmp(a.server_url, b.server_url) == 0);
	CHECK(strcmp(a.dir_url, b.dir_url) == 0);
	CHECK(strcmp(a.chat_host, b.chat_host) == 0);
	CHECK(b.chat_port == 5222);
	CHECK(strcmp(b.nickname, "Zoë") == 0);

	/* save rewrites profile.json atomically. */
	snprintf(b.nickname, sizeof b.nickname, "Zed");
	CHECK_RC(veil_profile_save(&b), 0);
	veil_profile_release(&b);
	CHECK_RC(veil_profile_open(&b, home), 0);
	CHECK(strcmp(b.nickname, "Zed") == 0);
	veil_profile_release(&b);

	/* A store.key others can read is refused. */
	snprintf(path, sizeof path, "%s/store.key", home);
	CHECK(chmod(path, 0644) == 0);
	CHECK_RC(veil_profile_open(&b, home), VEIL_EIO);
	CHECK(chmod(path, 0600) == 0);
	CHECK_RC(veil_profile_open(&b, home), 0);
	veil_profile_release(&b);

	/* A store.key that does not open the wrapped keys is damage, and changes nothing. */
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fprintf(f, "%032d", 7);
	fclose(f);
	CHECK_RC(veil_profile_open(&b, home), VEIL_ECORRUPT);
	veil_profile_release(&a);
	veil_profile_release(&b);
}

/* A CA bundle kept in the profile is what veil_msgr_open hands to libcurl. */
static void test_profile_ca(void)
{
	struct veil_profile a, b;
	struct veil_msgr m;
	char home[128], path[192];
	uint8_t *pem = NULL;
	size_t len = 0;
	static const char cert[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
	memset(&b, 0, sizeof b);
	new_home(home, sizeof home);
	snprintf(path, sizeof path, "%s.ca", home);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("no certificate here\n", f);
	fclose(f);
	CHECK_RC(veil_profile_ca_read(path, &pem, &len), VEIL_EPROTO);
	CHECK(pem == NULL);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs(cert, f);
	fclose(f);
	CHECK_RC(veil_profile_ca_read(path, &pem, &len), 0);
	int same_pem = len == strlen(cert) && memcmp(pem, cert, len) == 0;
	free(pem);
	pem = NULL;
	CHECK(same_pem);
	CHECK_RC(veil_profile_ca_read("/nonexistent/ca.pem", &pem, &len), VEIL_ENOTFOUND);

	CHECK_RC(veil_profile_init(&a, home), 0);
	fill_profile(&a);
	CHECK(a.ca_file[0] == '\0');
	CHECK_RC(veil_profile_create(&a), 0);
	CHECK_RC(veil_profile_open(&b, home), 0);
	CHECK(b.ca_file[0] == '\0');
	veil_profile_release(&b);
	CHECK(veil_profile_ca_read(path, &pem, &len) == 0);
	int wrc = veil_profile_ca_write(&a, pem, len);
	free(pem);
	CHECK_RC(wrc, 0);
	unlink(path);
	snprintf(path, sizeof path, "%s/ca.pem", home);
	CHECK(strcmp(a.ca_file, path) == 0);
	CHECK_RC(veil_profile_open(&b, home), 0);
	CHECK(strcmp(b.ca_file, path) == 0);
	veil_profile_release(&b);
	veil_profile_release(&a);

	CHECK_RC(veil_dir_set_ca_file(NULL), 0);
	CHECK(veil_dir_ca_file() == NULL);
	CHECK_RC(veil_msgr_open(&m, home), 0);
	int same = veil_dir_ca_file() != NULL && strcmp(veil_dir_ca_file(), path) == 0;
	veil_msgr_close(&m);
	CHECK_RC(veil_dir_set_ca_file(""), 0);
	CHECK(same);
	CHECK(veil_dir_ca_file() == NULL);
}

static struct veil_profile *open_fresh(struct veil_profile *p)
{
	char home[128];
	new_home(home, sizeof home);
	if (veil_profile_init(p, home) != 0)
		return NULL;
	fill_profile(p);
	if (veil_profile_create(p) != 0)
		return NULL;
	return p;
}

struct list_ctx {
	int n;
	struct veil_contact c[4];
};

static int collect(const struct veil_contact *c, void *ctx)
{
	struct list_ctx *l = ctx;
	if (l->n < 4)
		l->c[l->n] = *c;
	l->n++;
	return 0;
}

static void test_contacts(void)
{
	struct veil_profile p;
	struct veil_contact c, got;
	struct list_ctx l;
	CHECK(open_fresh(&p) != NULL);
	memset(&c, 0, sizeof c);
	memcpy(c.id, "ZZZZ0001", VEIL_ID_LEN);
	veil_random(c.pk, VEIL_KEY_LEN);
	CHECK_RC(veil_profile_contact_get(&p, c.id, &got), VEIL_ENOTFOUND);
	CHECK_RC(veil_profile_contact_add(&p, &c), 0);
	CHECK_RC(veil_profile_contact_add(&p, &c), VEIL_EEXIST);
	/* The same ID with another key never replaces the stored key. */
	struct veil_contact other = c;
	other.pk[0] ^= 1;
	CHECK_RC(veil_profile_contact_add(&p, &other), VEIL_EKEY);
	CHECK_RC(veil_profile_contact_get(&p, c.id, &got), 0);
	CHECK_MEM(got.pk, c.pk, VEIL_KEY_LEN);
	CHECK(got.first_seen_ms > 0);

	struct veil_contact d;
	memset(&d, 0, sizeof d);
	memcpy(d.id, "AAAA0002", VEIL_ID_LEN);
	veil_random(d.pk, VEIL_KEY_LEN);
	snprintf(d.nickname, sizeof d.nickname, "Dee");
	d.first_seen_ms = 1234;
	CHECK_RC(veil_profile_contact_add(&p, &d), 0);
	memcpy(other.id, "bad id!!", VEIL_ID_LEN);
	CHECK_RC(veil_profile_contact_add(&p, &other), VEIL_EINVAL);

	CHECK_RC(veil_profile_contact_set_nickname(&p, c.id, "Zee"), 0);
	CHECK_RC(veil_profile_contact_set_nickname(&p, (const uint8_t *)"NONE0000", "x"),
	         VEIL_ENOTFOUND);

	memset(&l, 0, sizeof l);
	CHECK_RC(veil_profile_contact_list(&p, collect, &l), 0);
	CHECK(l.n == 2);
	CHECK_MEM(l.c[0].id, "AAAA0002", VEIL_ID_LEN); /* ID order */
	CHECK(strcmp(l.c[0].nickname, "Dee") == 0);
	CHECK(l.c[0].first_seen_ms == 1234);
	CHECK_MEM(l.c[1].id, "ZZZZ0001", VEIL_ID_LEN);
	CHECK(strcmp(l.c[1].nickname, "Zee") == 0);
	CHECK_MEM(l.c[1].pk, c.pk, VEIL_KEY_LEN);
	veil_profile_release(&p);
}

static void test_replay_store(void)
{
	struct veil_profile p;
	uint8_t n1[VEIL_NONCE_LEN], n2[VEIL_NONCE_LEN];
	CHECK(open_fresh(&p) != NULL);
	veil_random(n1, sizeof n1);
	memcpy(n2, n1, sizeof n2);
	n2[23] ^= 0x80;
	CHECK_RC(veil_profile_nonce_seen(&p, n1), 0);
	CHECK_RC(veil_profile_nonce_add(&p, n1), 0);
	CHECK_RC(veil_profile_nonce_seen(&p, n1), VEIL_EREPLAY);
	CHECK_RC(veil_profile_nonce_add(&p, n1), VEIL_EREPLAY);
	CHECK_RC(veil_profile_nonce_seen(&p, n2), 0);
	CHECK_RC(veil_profile_nonce_add(&p, n2), 0);

	/* The store survives a reopen. */
	char home[VEIL_PROFILE_PATH_MAX];
	memcpy(home, p.home, sizeof home);
	veil_profile_release(&p);
	CHECK_RC(veil_profile_open(&p, home), 0);
	CHECK_RC(veil_profile_nonce_add(&p, n1), VEIL_EREPLAY);
	veil_profile_release(&p);
}

struct hash_ctx {
	int csp, d2d;
	uint8_t want[32];
	int found;
};
static int hash_fn(const uint8_t h[32], int scope, void *ctx)
{
	struct hash_ctx *x = ctx;
	x->csp += scope == VEIL_NONCE_CSP;
	x->d2d += scope == VEIL_NONCE_D2D;
	x->found += memcmp(h, x->want, 32) == 0;
	return 0;
}

/*
 * The hashed form EssentialData carries: a nonce recorded here is listed as
 * HMAC-SHA256(ID, nonce) with its scope; a hash imported from another
 * device makes that nonce a replay here.
 */
static void test_replay_store_hashed(void)
{
	struct veil_profile p;
	struct hash_ctx x;
	uint8_t n1[VEIL_NONCE_LEN], n2[VEIL_NONCE_LEN], n3[VEIL_NONCE_LEN], h3[1][32];
	CHECK(open_fresh(&p) != NULL);
	veil_random(n1, sizeof n1);
	veil_random(n2, sizeof n2);
	veil_random(n3, sizeof n3);
	CHECK_RC(veil_profile_nonce_add(&p, n1), 0);
	CHECK_RC(veil_profile_nonce_add_scope(&p, n2, VEIL_NONCE_D2D), 0);
	CHECK_RC(veil_profile_nonce_add_scope(&p, n2, VEIL_NONCE_CSP), VEIL_EREPLAY);
	memset(&x, 0, sizeof x);
	veil_join_hash_nonce(x.want, "ABCD1234", n1, sizeof n1);
	CHECK_RC(veil_profile_nonce_list(&p, hash_fn, &x), 0);
	CHECK(x.csp == 1 && x.d2d == 1 && x.found == 1);
	veil_join_hash_nonce(h3[0], "ABCD1234", n3, sizeof n3);
	CHECK_RC(veil_profile_nonce_seen(&p, n3), 0);
	CHECK_RC(veil_profile_nonce_import_many(&p, (const uint8_t(*)[32])h3, 1, VEIL_NONCE_CSP),
	         0);
	CHECK_RC(veil_profile_nonce_import_many(&p, (const uint8_t(*)[32])h3, 1, VEIL_NONCE_CSP),
	         0); /* known ones are skipped */
	CHECK_RC(veil_profile_nonce_seen(&p, n3), VEIL_EREPLAY);
	CHECK_RC(veil_profile_nonce_add(&p, n3), VEIL_EREPLAY);
	veil_profile_release(&p);
}

struct log_ctx {
	int n;
	int status;
	char text[32];
};

static int log_collect(const struct veil_log_entry *e, void *ctx)
{
	struct log_ctx *l = ctx;
	l->n++;
	l->status = e->status;
	snprintf(l->text, sizeof l->text, "%.*s", (int)e->body_len, (const char *)e->body);
	return 0;
}

static void test_message_log(void)
{
	struct veil_profile p;
	struct log_ctx l;
	uint8_t nonce[VEIL_NONCE_LEN], nonce2[VEIL_NONCE_LEN];
	CHECK(open_fresh(&p) != NULL);
	veil_random(nonce, sizeof nonce);
	veil_random(nonce2, sizeof nonce2);
	struct veil_log_entry e = {.dir = VEIL_LOG_IN,
	                           .msg_id = 42,
	                           .date_ms = 1000,
	                           .type = VEIL_E2E_TEXT,
	                           .body = (const uint8_t *)"hi",
	                           .body_len = 2};
	memcpy(e.peer, "PEER0001", VEIL_ID_LEN);
	CHECK_RC(veil_profile_log_add(&p, &e, nonce), 0);
	/* Same nonce: a replay, nothing written. */
	e.msg_id = 43;
	CHECK_RC(veil_profile_log_add(&p, &e, nonce), VEIL_EREPLAY);
	/* Same ID from the same peer with a new nonce: a duplicate, and the
	 * nonce of the refused message is not recorded either. */
	e.msg_id = 42;
	CHECK_RC(veil_profile_log_add(&p, &e, nonce2), VEIL_EEXIST);
	CHECK_RC(veil_profile_nonce_seen(&p, nonce2), 0);

	struct veil_log_entry o = e;
	o.dir = VEIL_LOG_OUT;
	o.body = (const uint8_t *)"yo";
	CHECK_RC(veil_profile_log_add(&p, &o, NULL), 0);
	CHECK_RC(veil_profile_log_set_status(&p, o.peer, 42, 1), 0);
	CHECK_RC(veil_profile_log_set_status(&p, o.peer, 42, 0), 0); /* never lowers */
	CHECK_RC(veil_profile_log_set_status(&p, o.peer, 99, 1), VEIL_ENOTFOUND);

	memset(&l, 0, sizeof l);
	CHECK_RC(veil_profile_log_list(&p, NULL, log_collect, &l), 0);
	CHECK(l.n == 2);
	CHECK(l.status == 1);
	CHECK(strcmp(l.text, "yo") == 0);
	memset(&l, 0, sizeof l);
	CHECK_RC(veil_profile_log_list(&p, (const uint8_t *)"OTHER001", log_collect, &l), 0);
	CHECK(l.n == 0);
	veil_profile_release(&p);
}

/*
 * A payload stored raw because it could not be decrypted (type 0) may be a
 * forgery under a genuine message's ID: the genuine one replaces it; a raw
 * entry never replaces a decoded one, nor another raw one.
 */
static void test_message_log_raw(void)
{
	struct veil_profile p;
	struct log_ctx l;
	uint8_t nonce[VEIL_NONCE_LEN];
	CHECK(open_fresh(&p) != NULL);
	veil_random(nonce, sizeof nonce);
	struct veil_log_entry raw = {.dir = VEIL_LOG_IN,
	                             .msg_id = 7,
	                             .date_ms = 1000,
	                             .type = 0,
	                             .body = (const uint8_t *)"garbage",
	                             .body_len = 7,
	                             .status = VEIL_LOG_RAW};
	memcpy(raw.peer, "PEER0001", VEIL_ID_LEN);
	CHECK_RC(veil_profile_log_add(&p, &raw, NULL), 0);
	CHECK_RC(veil_profile_log_add(&p, &raw, NULL), VEIL_EEXIST);
	struct veil_log_entry e = raw;
	e.type = VEIL_E2E_TEXT;
	e.body = (const uint8_t *)"real";
	e.body_len = 4;
	e.status = 0;
	CHECK_RC(veil_profile_log_add(&p, &e, nonce), 0);
	CHECK_RC(veil_profile_nonce_seen(&p, nonce), VEIL_EREPLAY);
	CHECK_RC(veil_profile_log_add(&p, &raw, NULL), VEIL_EEXIST);
	memset(&l, 0, sizeof l);
	CHECK_RC(veil_profile_log_list(&p, NULL, log_collect, &l), 0);
	CHECK(l.n == 1 && l.status == 0 && strcmp(l.text, "real") == 0);
	veil_profile_release(&p);
}

/* Dates, not arrival, order the history; since and peer select. */
struct date_ctx {
	int n;
	uint64_t dates[8];
};

static int log_dates(const struct veil_log_entry *e, void *ctx)
{
	struct date_ctx *d = ctx;
	if (d->n < 8)
		d->dates[d->n] = e->date_ms;
	d->n++;
	return 0;
}

static void test_message_log_query(void)
{
	struct veil_profile p;
	struct date_ctx d;
	CHECK(open_fresh(&p) != NULL);
	const uint64_t dates[] = {3000, 1000, 2000};
	for (size_t i = 0; i < 3; i++) {
		struct veil_log_entry e = {.dir = VEIL_LOG_IN,
		                           .msg_id = 10 + i,
		                           .date_ms = dates[i],
		                           .type = VEIL_E2E_TEXT,
		                           .body = (const uint8_t *)"x",
		                           .body_len = 1};
		memcpy(e.peer, i == 2 ? "PEER0002" : "PEER0001", VEIL_ID_LEN);
		CHECK_RC(veil_profile_log_add(&p, &e, NULL), 0);
	}
	struct veil_log_query q = {0};
	memset(&d, 0, sizeof d);
	CHECK_RC(veil_profile_log_query(&p, &q, log_dates, &d), 0);
	CHECK(d.n == 3 && d.dates[0] == 1000 && d.dates[1] == 2000 && d.dates[2] == 3000);
	q.since_ms = 2000;
	memset(&d, 0, sizeof d);
	CHECK_RC(veil_profile_log_query(&p, &q, log_dates, &d), 0);
	CHECK(d.n == 2 && d.dates[0] == 2000);
	q.peer = (const uint8_t *)"PEER0001";
	memset(&d, 0, sizeof d);
	CHECK_RC(veil_profile_log_query(&p, &q, log_dates, &d), 0);
	CHECK(d.n == 1 && d.dates[0] == 3000);
	veil_profile_release(&p);
}

static void test_contact_local_name(void)
{
	struct veil_profile p;
	char name[VEIL_PROFILE_NICK_MAX + 1];
	struct veil_contact c = {.first_seen_ms = 1};
	CHECK(open_fresh(&p) != NULL);
	memcpy(c.id, "PEER0001", VEIL_ID_LEN);
	CHECK_RC(veil_profile_contact_set_name(&p, c.id, "Bob"), VEIL_ENOTFOUND);
	CHECK_RC(veil_profile_contact_add(&p, &c), 0);
	CHECK_RC(veil_profile_contact_name(&p, c.id, name, sizeof name), VEIL_ENOTFOUND);
	CHECK(name[0] == 0);
	CHECK_RC(veil_profile_contact_set_name(&p, c.id, "Bob"), 0);
	CHECK_RC(veil_profile_contact_set_name(&p, c.id, "Bob Müller"), 0);
	CHECK_RC(veil_profile_contact_name(&p, c.id, name, sizeof name), 0);
	CHECK(strcmp(name, "Bob Müller") == 0);
	CHECK_RC(veil_profile_contact_set_name(&p, c.id, "\xff"), VEIL_EINVAL);
	CHECK_RC(veil_profile_contact_set_name(&p, c.id, ""), 0);
	CHECK_RC(veil_profile_contact_name(&p, c.id, name, sizeof name), VEIL_ENOTFOUND);
	veil_profile_release(&p);
}

static void test_backoff(void)
{
	struct veil_backoff b;
	veil_backoff_init(&b, VEIL_BACKOFF_BASE_MS, VEIL_BACKOFF_MAX_MS);
	uint32_t nominal = VEIL_BACKOFF_BASE_MS;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 20; i++) {
			uint32_t d = veil_backoff_next(&b);
			CHECK(d >= nominal / 2);
			CHECK(d <= nominal);
			CHECK(d <= VEIL_BACKOFF_MAX_MS);
			nominal =
			    nominal * 2 > VEIL_BACKOFF_MAX_MS ? VEIL_BACKOFF_MAX_MS : nominal * 2;
		}
		CHECK(nominal == VEIL_BACKOFF_MAX_MS);
		veil_backoff_reset(&b);
		nominal = VEIL_BACKOFF_BASE_MS;
	}
	/* Jitter: 50 delays at the cap are not all the same. */
	veil_backoff_init(&b, 1000, 1000);
	uint32_t first = veil_backoff_next(&b);
	int differ = 0;
	for (int i = 0; i < 50; i++)
		differ |= veil_backoff_next(&b) != first;
	CHECK(differ);
	/* A cap below the base is raised to the base. */
	veil_backoff_init(&b, 500, 10);
	CHECK(veil_backoff_next(&b) <= 500);
	CHECK(veil_backoff_next(&b) <= 500);
}

/* --- connection against an in-process server --- */

enum srv_mode { SRV_SCRIPT, SRV_DROP_AFTER_LOGIN };

struct srv {
	int lfd;
	uint16_t port;
	enum srv_mode mode;
	uint8_t sk[VEIL_KEY_LEN], pk[VEIL_KEY_LEN];
	uint8_t ck_pk[VEIL_KEY_LEN];
	int ok; /* the script ran to the end */
	char client_info[VEIL_CSP_CLIENT_INFO_MAX + 1];
	uint8_t features;
};

static int read_n(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_n(int fd, const uint8_t *p, size_t n)
{
	return write(fd, p, n) == (ssize_t)n ? 0 : -1;
}

static int srv_send(int fd, struct veil_csp_server *s, uint8_t type, const void *d, size_t n)
{
	uint8_t plain[256], frame[2 + 256 + VEIL_MAC_LEN];
	veil_csp_payload_header(plain, type);
	memcpy(plain + 4, d, n);
	if (veil_csp_frame_seal(&s->sess, frame, plain, n + 4) != 0)
		return -1;
	return write_n(fd, frame, 2 + VEIL_MAC_LEN + n + 4);
}

static void *srv_main(void *arg)
{
	struct srv *sv = arg;
	struct veil_csp_server s;
	struct veil_csp_login_info info;
	uint8_t hello[VEIL_CSP_CLIENT_HELLO_LEN], sh[VEIL_CSP_SERVER_HELLO_LEN];
	uint8_t login[VEIL_CSP_LOGIN_LEN], ext[VEIL_CSP_MAX_EXT], ack[VEIL_CSP_LOGIN_ACK_LEN];
	uint8_t hdr[2], box[512], plain[512];
	int fd = accept(sv->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	if (read_n(fd, hello, sizeof hello) != 0 ||
	    veil_csp_server_hello(&s, sv->sk, hello, sh) != 0 || write_n(fd, sh, sizeof sh) != 0 ||
	    read_n(fd, login, sizeof login) != 0 || veil_csp_server_login(&s, login, &info) != 0 ||
	    read_n(fd, ext, info.ext_len) != 0 ||
	    veil_csp_server_login_ext(&s, ext, info.ext_len, &info) != 0 ||
	    veil_csp_server_vouch_check(&s, sv->sk, sv->ck_pk, &info) != 0)
		goto out;
	snprintf(sv->client_info, sizeof sv->client_info, "%s", info.client_info);
	sv->features = info.features;
	if (sv->mode == SRV_DROP_AFTER_LOGIN) {
		sv->ok = 1;
		goto out;
	}
	if (veil_csp_server_login_ack(&s, ack) != 0 || write_n(fd, ack, sizeof ack) != 0)
		goto out;
	/* An echo request the client must answer by itself, then an alert. */
	if (srv_send(fd, &s, VEIL_CSP_ECHO_REQUEST, "ping", 4) != 0 ||
	    srv_send(fd, &s, VEIL_CSP_ALERT, "hello there", 11) != 0)
		goto out;
	if (read_n(fd, hdr, 2) != 0)
		goto out;
	size_t n = veil_load_u16le(hdr);
	if (n > sizeof box || read_n(fd, box, n) != 0 ||
	    veil_csp_frame_open(&s.sess, plain, box, n) != 0)
		goto out;
	if (n - VEIL_MAC_LEN != 8 || plain[0] != VEIL_CSP_ECHO_RESPONSE ||
	    memcmp(plain + 4, "ping", 4) != 0)
		goto out;
	if (srv_send(fd, &s, VEIL_CSP_CLOSE_ERROR, "\0Go away", 8) != 0)
		goto out;
	sv->ok = 1;
out:
	close(fd);
	return NULL;
}

static int srv_start(struct srv *sv, pthread_t *th)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (sv->lfd < 0 || bind(sv->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(sv->lfd, 4) != 0 || getsockname(sv->lfd, (struct sockaddr *)&a, &alen) != 0)
		return -1;
	sv->port = ntohs(a.sin_port);
	veil_keypair(sv->pk, sv->sk);
	return pthread_create(th, NULL, srv_main, sv) == 0 ? 0 : -1;
}

static void test_conn_session(void)
{
	static struct veil_conn c;
	static struct srv sv;
	uint8_t id[VEIL_ID_LEN], ck_sk[VEIL_KEY_LEN], buf[VEIL_CONN_MAX_DATA], type;
	size_t len;
	pthread_t th;
	memset(&sv, 0, sizeof sv);
	memcpy(id, "ABCD1234", VEIL_ID_LEN);
	veil_keypair(sv.ck_pk, ck_sk);
	CHECK(srv_start(&sv, &th) == 0);
	int rc = veil_conn_open(&c, "127.0.0.1", sv.port, sv.pk, id, ck_sk, "t;Q;en/US", 5000);
	CHECK_RC(rc, 0);
	CHECK(veil_conn_is_open(&c));
	/* The echo request is answered inside; the alert comes out. */
	CHECK_RC(veil_conn_recv_payload(&c, 5000, &type, buf, &len), 0);
	CHECK(type == VEIL_CSP_ALERT && len == 11 && memcmp(buf, "hello there", 11) == 0);
	CHECK_RC(veil_conn_recv_payload(&c, 5000, &type, buf, &len), VEIL_ECLOSED);
	CHECK(c.close_error == 1 && c.can_reconnect == 0);
	CHECK(strcmp(c.errtext, "Go away") == 0);
	CHECK(!veil_conn_is_open(&c));
	pthread_join(th, NULL);
	close(sv.lfd);
	CHECK(sv.ok);
	CHECK(strcmp(sv.client_info, "t;Q;en/US") == 0);
	CHECK(sv.features == (VEIL_CSP_FEATURE_METADATA | VEIL_CSP_FEATURE_ECHO));
	veil_conn_close(&c);
}

static void test_conn_wrong_key(void)
{
	static struct veil_conn c;
	static struct srv sv;
	uint8_t id[VEIL_ID_LEN], ck_sk[VEIL_KEY_LEN], other[VEIL_KEY_LEN], osk[VEIL_KEY_LEN];
	pthread_t th;
	memset(&sv, 0, sizeof sv);
	memcpy(id, "ABCD1234", VEIL_ID_LEN);
	veil_keypair(sv.ck_pk, ck_sk);
	veil_keypair(other, osk);
	CHECK(srv_start(&sv, &th) == 0);
	CHECK_RC(veil_conn_open(&c, "127.0.0.1", sv.port, other, id, ck_sk, NULL, 5000),
	         VEIL_ECRYPTO);
	CHECK(!veil_conn_is_open(&c));
	pthread_join(th, NULL);
	close(sv.lfd);
	CHECK(!sv.ok);
}

static void test_conn_refused_login(void)
{
	static struct veil_conn c;
	static struct srv sv;
	uint8_t id[VEIL_ID_LEN], ck_sk[VEIL_KEY_LEN];
	pthread_t th;
	memset(&sv, 0, sizeof sv);
	sv.mode = SRV_DROP_AFTER_LOGIN;
	memcpy(id, "ABCD1234", VEIL_ID_LEN);
	veil_keypair(sv.ck_pk, ck_sk);
	CHECK(srv_start(&sv, &th) == 0);
	CHECK_RC(veil_conn_open(&c, "127.0.0.1", sv.port, sv.pk, id, ck_sk, NULL, 5000),
	         VEIL_EAUTH);
	pthread_join(th, NULL);
	close(sv.lfd);
	CHECK(sv.ok);
}

static void test_conn_unreachable(void)
{
	static struct veil_conn c;
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	uint8_t id[VEIL_ID_LEN], pk[VEIL_KEY_LEN], sk[VEIL_KEY_LEN];
	memcpy(id, "ABCD1234", VEIL_ID_LEN);
	veil_keypair(pk, sk);
	/* A port that was just free: nothing listens there. */
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	close(fd);
	CHECK_RC(veil_conn_open(&c, "127.0.0.1", ntohs(a.sin_port), pk, id, sk, NULL, 2000),
	         VEIL_EIO);
	CHECK(strcmp(c.errtext, strerror(ECONNREFUSED)) == 0);
	veil_conn_close(&c);
}

T_MAIN_BEGIN
RUN(test_profile_home);
RUN(test_profile_roundtrip);
RUN(test_profile_ca);
RUN(test_contacts);
RUN(test_replay_store);
RUN(test_replay_store_hashed);
RUN(test_message_log);
RUN(test_message_log_raw);
RUN(test_message_log_query);
RUN(test_contact_local_name);
RUN(test_backoff);
RUN(test_conn_session);
RUN(test_conn_wrong_key);
RUN(test_conn_refused_login);
RUN(test_conn_unreachable);
if (home_base[0] != 0) {
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", home_base);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", home_base);
}
T_MAIN_END
