/*
 * The encrypted store of a profile (lib/client/vault.c, vault_io.c): the
 * passphrase path (wrong, missing, changed, removed), records that do not
 * open when changed or moved to another row, the message record codec, and
 * export/import (round trip, duplicates, truncation, wrong passphrase).
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veil/client.h"
#include "veil/vault.h"
#include "../../lib/client/vault_int.h"

#include "t.h"

static char base[64];
static int nhome;
static const char *pass_now = "first passphrase";

static void new_home(char *out, size_t cap)
{
	if (base[0] == 0) {
		snprintf(base, sizeof base, "/tmp/veil-test-vault.XXXXXX");
		if (mkdtemp(base) == NULL)
			abort();
	}
	snprintf(out, cap, "%s/h%d", base, nhome++);
}

static int pass_fn(uint8_t *buf, size_t cap, size_t *len, int why, void *ctx)
{
	(void)why;
	(void)ctx;
	if (pass_now == NULL)
		return VEIL_ELOCKED;
	size_t n = strlen(pass_now);
	if (n > cap)
		return VEIL_ELIMIT;
	memcpy(buf, pass_now, n);
	*len = n;
	return 0;
}

static int make(struct veil_profile *p, const char *home, int level)
{
	veil_vault_set_new_level(level);
	int rc = veil_profile_init(p, home);
	if (rc != 0)
		return rc;
	veil_keypair(p->pk, p->sk);
	memcpy(p->id, "ABCD1234", VEIL_ID_LEN);
	snprintf(p->chat_host, sizeof p->chat_host, "127.0.0.1");
	p->chat_port = 5222;
	rc = veil_profile_create(p);
	veil_vault_set_new_level(VEIL_KDF_NONE);
	return rc;
}

static void test_passphrase(void)
{
	struct veil_profile a, b;
	char home[128];
	memset(&b, 0, sizeof b);
	new_home(home, sizeof home);
	pass_now = "first passphrase";
	CHECK_RC(make(&a, home, VEIL_KDF_MIN), 0);
	CHECK(veil_profile_kdf_level(&a) == VEIL_KDF_MIN);
	pass_now = "not it";
	CHECK_RC(veil_profile_open(&b, home), VEIL_EPASS);
	pass_now = NULL;
	CHECK_RC(veil_profile_open(&b, home), VEIL_ELOCKED);
	pass_now = "first passphrase";
	CHECK_RC(veil_profile_open(&b, home), 0);
	CHECK_MEM(a.sk, b.sk, VEIL_KEY_LEN);
	veil_profile_release(&b);
	/* A new passphrase: the old one no longer opens it. */
	CHECK_RC(veil_profile_passphrase_set(&a, (const uint8_t *)"second", 6, VEIL_KDF_MIN), 0);
	CHECK_RC(veil_profile_open(&b, home), VEIL_EPASS);
	pass_now = "second";
	CHECK_RC(veil_profile_open(&b, home), 0);
	veil_profile_release(&b);
	/* Removed: opens without asking. */
	CHECK_RC(veil_profile_passphrase_set(&a, NULL, 0, VEIL_KDF_NONE), 0);
	pass_now = NULL;
	CHECK_RC(veil_profile_open(&b, home), 0);
	CHECK(veil_profile_kdf_level(&b) == VEIL_KDF_NONE);
	veil_profile_release(&b);
	veil_profile_release(&a);
}

/* Sets the sealed value of one row to that of another, or flips a byte of it. */
static int poke(const char *home, int kind, int flip)
{
	char path[192];
	sqlite3 *db = NULL;
	int rc = -1;
	snprintf(path, sizeof path, "%s/veil.db", home);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		goto out;
	char sql[256];
	if (flip)
		snprintf(sql, sizeof sql,
		         "UPDATE rec SET v = substr(v, 1, 30) || x'ff' || substr(v, 32) "
		         "WHERE kind = %d",
		         kind);
	else
		snprintf(
		    sql, sizeof sql,
		    "UPDATE rec SET v = (SELECT max(v) FROM rec WHERE kind = %d) WHERE kind = %d",
		    kind, kind);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
out:
	sqlite3_close(db);
	return rc;
}

static void test_records_bound(void)
{
	struct veil_profile a;
	struct veil_contact c1, c2, got;
	char home[128];
	new_home(home, sizeof home);
	CHECK_RC(make(&a, home, VEIL_KDF_NONE), 0);
	memset(&c1, 0, sizeof c1);
	memset(&c2, 0, sizeof c2);
	memcpy(c1.id, "AAAAAAAA", VEIL_ID_LEN);
	memcpy(c2.id, "BBBBBBBB", VEIL_ID_LEN);
	veil_random(c1.pk, VEIL_KEY_LEN);
	veil_random(c2.pk, VEIL_KEY_LEN);
	CHECK_RC(veil_profile_contact_add(&a, &c1), 0);
	CHECK_RC(veil_profile_contact_add(&a, &c2), 0);
	CHECK_RC(veil_profile_contact_get(&a, c1.id, &got), 0);
	CHECK_MEM(got.pk, c1.pk, VEIL_KEY_LEN);
	/* One record copied over the other's row: it is bound to its row and does not open. */
	CHECK(poke(home, VEIL_REC_CONTACT, 0) == 0);
	int r1 = veil_profile_contact_get(&a, c1.id, &got);
	int r2 = veil_profile_contact_get(&a, c2.id, &got);
	CHECK(r1 == VEIL_ECORRUPT || r2 == VEIL_ECORRUPT);
	CHECK(r1 == 0 || r2 == 0);
	/* A flipped byte. */
	CHECK(poke(home, VEIL_REC_CONTACT, 1) == 0);
	CHECK_RC(veil_profile_contact_get(&a, c1.id, &got), VEIL_ECORRUPT);
	veil_profile_release(&a);
}

static void test_log_codec(void)
{
	struct veil_log_entry e = {.dir = VEIL_LOG_OUT,
	                           .msg_id = 0x1122334455667788ull,
	                           .date_ms = 1700000000123ull,
	                           .type = 1,
	                           .body = (const uint8_t *)"hi",
	                           .body_len = 2,
	                           .status = VEIL_LOG_RAW},
	                      d;
	struct veil_buf b;
	memcpy(e.peer, "PEER0001", VEIL_ID_LEN);
	veil_buf_init(&b, VEIL_REC_MAX);
	int rc = veil_log_encode(&e, &b);
	int drc = rc == 0 ? veil_log_decode(b.p, b.len, &d) : rc;
	int same = drc == 0 && d.dir == e.dir && d.msg_id == e.msg_id && d.date_ms == e.date_ms &&
	           d.type == e.type && d.status == e.status && d.body_len == 2 &&
	           memcmp(d.body, "hi", 2) == 0 && memcmp(d.peer, e.peer, VEIL_ID_LEN) == 0;
	int short_rc = veil_log_decode(b.p, 10, &d);
	b.p[0] = 9;
	int ver_rc = veil_log_decode(b.p, b.len, &d);
	veil_buf_release(&b);
	CHECK_RC(rc, 0);
	CHECK(same);
	CHECK_RC(short_rc, VEIL_ECORRUPT);
	CHECK_RC(ver_rc, VEIL_ECORRUPT);
}

static int count_fn(const struct veil_log_entry *e, void *ctx)
{
	(void)e;
	(*(int *)ctx)++;
	return 0;
}

static void test_export_import(void)
{
	struct veil_profile a, b;
	char home[128], file[192];
	uint64_t n = 0, added = 0, skipped = 0;
	int count = 0;
	new_home(home, sizeof home);
	CHECK_RC(make(&a, home, VEIL_KDF_NONE), 0);
	for (int i = 0; i < 5; i++) {
		struct veil_log_entry e = {.dir = i & 1,
		                           .msg_id = (uint64_t)i + 1,
		                           .date_ms = 1700000000000ull + (uint64_t)i,
		                           .type = 1,
		                           .body = (const uint8_t *)"body",
		                           .body_len = 4};
		memcpy(e.peer, "PEER0001", VEIL_ID_LEN);
		CHECK_RC(veil_profile_log_add(&a, &e, NULL), 0);
	}
	snprintf(file, sizeof file, "%s.export", home);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_RC(veil_profile_export(&a, fd, (const uint8_t *)"xp", 2, VEIL_KDF_MIN, &n), 0);
	CHECK(n == 5);
	off_t size = lseek(fd, 0, SEEK_END);
	new_home(home, sizeof home);
	CHECK_RC(make(&b, home, VEIL_KDF_NONE), 0);
	/* Wrong passphrase, then cut by one byte: nothing goes in. */
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK_RC(veil_profile_import(&b, fd, (const uint8_t *)"no", 2, &added, &skipped),
	         VEIL_EPASS);
	CHECK(ftruncate(fd, size - 1) == 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK_RC(veil_profile_import(&b, fd, (const uint8_t *)"xp", 2, &added, &skipped),
	         VEIL_ETRUNC);
	CHECK_RC(veil_profile_log_list(&b, NULL, count_fn, &count), 0);
	CHECK(count == 0);
	/* Whole again (re-export), imported twice: the second adds nothing. */
	CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	CHECK_RC(veil_profile_export(&a, fd, (const uint8_t *)"xp", 2, VEIL_KDF_MIN, &n), 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK_RC(veil_profile_import(&b, fd, (const uint8_t *)"xp", 2, &added, &skipped), 0);
	CHECK(added == 5 && skipped == 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK_RC(veil_profile_import(&b, fd, (const uint8_t *)"xp", 2, &added, &skipped), 0);
	CHECK(added == 0 && skipped == 5);
	count = 0;
	CHECK_RC(veil_profile_log_list(&b, NULL, count_fn, &count), 0);
	CHECK(count == 5);
	close(fd);
	veil_profile_release(&a);
	veil_profile_release(&b);
}

T_MAIN_BEGIN
veil_vault_set_passphrase_fn(pass_fn, NULL);
RUN(test_passphrase);
RUN(test_records_bound);
RUN(test_log_codec);
RUN(test_export_import);
T_MAIN_END
