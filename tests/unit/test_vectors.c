/*
 * Known-answer vectors from public sources, read at run time from
 * tests/vectors/ (run from the repository root). Each file holds one vector:
 * a "# source:" line naming the repository and path it comes from, then
 * "key = value" lines; keys ending in _hex carry hex bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/crypto.h"
#include "veil/e2e.h"
#include "veil/md.h"
#include "veil/util.h"
#include "t.h"

#define VEC_DIR "tests/vectors"
#define VEC_MAX_FIELDS 16
#define VEC_MAX_VALUE 1024
#define VEC_MAX_FILES 64

struct vec {
	char file[256];
	int has_source;
	int n;
	char key[VEC_MAX_FIELDS][32];
	char val[VEC_MAX_FIELDS][VEC_MAX_VALUE];
};

static struct vec vecs[VEC_MAX_FILES];
static int nvecs = -1;

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

/* Parses one file; returns 0 or -1 (with a message) on a malformed file. */
static int parse_file(struct vec *v, const char *path)
{
	char line[VEC_MAX_VALUE + 64];
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char *s = trim(line);
		if (*s == 0)
			continue;
		if (*s == '#') {
			if (strncmp(s, "# source: ", 10) == 0 && strlen(s) > 10)
				v->has_source = 1;
			continue;
		}
		char *eq = strchr(s, '=');
		if (eq == NULL || v->n >= VEC_MAX_FIELDS) {
			fprintf(stderr, "%s: bad line: %s\n", path, s);
			fclose(f);
			return -1;
		}
		*eq = 0;
		char *k = trim(s), *val = trim(eq + 1);
		if (strlen(k) >= sizeof v->key[0] || strlen(val) >= sizeof v->val[0]) {
			fprintf(stderr, "%s: field too long\n", path);
			fclose(f);
			return -1;
		}
		memcpy(v->key[v->n], k, strlen(k) + 1);
		memcpy(v->val[v->n], val, strlen(val) + 1);
		v->n++;
	}
	fclose(f);
	return 0;
}

static int load_all(void)
{
	if (nvecs >= 0)
		return 0;
	DIR *d = opendir(VEC_DIR);
	if (d == NULL) {
		fprintf(stderr, "%s: %s (run from the repository root)\n", VEC_DIR,
		        strerror(errno));
		return -1;
	}
	nvecs = 0;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".txt") != 0)
			continue;
		if (nvecs >= VEC_MAX_FILES || n >= sizeof vecs[0].file) {
			rc = -1;
			break;
		}
		struct vec *v = &vecs[nvecs];
		memset(v, 0, sizeof *v);
		memcpy(v->file, e->d_name, n + 1);
		char path[512];
		snprintf(path, sizeof path, "%s/%s", VEC_DIR, e->d_name);
		if (parse_file(v, path) != 0) {
			rc = -1;
			break;
		}
		nvecs++;
	}
	closedir(d);
	return rc;
}

static const char *get(const struct vec *v, const char *key)
{
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->key[i], key) == 0)
			return v->val[i];
	return NULL;
}

/* Decodes a _hex field; returns its length or -1. */
static long get_hex(const struct vec *v, const char *key, uint8_t *out, size_t cap)
{
	const char *h = get(v, key);
	if (h == NULL || strlen(h) % 2 != 0 || strlen(h) / 2 > cap)
		return -1;
	size_t n = strlen(h) / 2;
	if (veil_hex_decode(out, n, h, strlen(h)) != 0)
		return -1;
	return (long)n;
}

static int kind_is(const struct vec *v, const char *kind)
{
	const char *k = get(v, "kind");
	return k != NULL && strcmp(k, kind) == 0;
}

static const char *const known_kinds[] = {"kdf",  "msgbox",      "hash_email", "hash_phone",
                                          "safe", "gateway_mac", "md_keys"};

static void test_files_well_formed(void)
{
	CHECK(load_all() == 0);
	CHECK(nvecs >= 10);
	for (int i = 0; i < nvecs; i++) {
		int known = 0;
		if (!vecs[i].has_source)
			fprintf(stderr, "%s: no '# source:' line\n", vecs[i].file);
		CHECK(vecs[i].has_source);
		for (size_t k = 0; k < VEIL_ARRAY_LEN(known_kinds); k++)
			known |= kind_is(&vecs[i], known_kinds[k]);
		if (!known)
			fprintf(stderr, "%s: unknown kind\n", vecs[i].file);
		CHECK(known);
	}
}

static void test_kdf(void)
{
	int seen = 0;
	CHECK(load_all() == 0);
	for (int i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		uint8_t key[64], salt[16], pers[16], want[64], got[64];
		long kl, sl, pl, ol;
		if (!kind_is(v, "kdf"))
			continue;
		kl = get_hex(v, "key_hex", key, sizeof key);
		sl = get_hex(v, "salt_hex", salt, sizeof salt);
		pl = get_hex(v, "personal_hex", pers, sizeof pers);
		ol = get_hex(v, "out_hex", want, sizeof want);
		CHECK(kl > 0 && sl > 0 && pl > 0 && ol == 32);
		CHECK_RC(veil_kdf(got, (size_t)ol, key, (size_t)kl, (const char *)salt, (size_t)sl,
		                  (const char *)pers, (size_t)pl),
		         0);
		if (memcmp(got, want, 32) != 0)
			fprintf(stderr, "%s: KDF mismatch\n", v->file);
		CHECK_MEM(got, want, 32);
		seen++;
	}
	CHECK(seen >= 3);
}

static void test_msgbox(void)
{
	int seen = 0;
	CHECK(load_all() == 0);
	for (int i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		uint8_t wire[VEIL_MSGBOX_MAX], meta[VEIL_MSGBOX_METADATA_MAX],
		    nonce[VEIL_NONCE_LEN], box[VEIL_MSGBOX_BOX_MAX], idb[8];
		uint8_t nick[VEIL_MSGBOX_NICKNAME_LEN] = {0};
		struct veil_msgbox m;
		struct veil_buf out;
		long wl, ml, nl, bl;
		const char *s;
		if (!kind_is(v, "msgbox"))
			continue;
		wl = get_hex(v, "wire_hex", wire, sizeof wire);
		ml = get_hex(v, "metadata_hex", meta, sizeof meta);
		nl = get_hex(v, "nonce_hex", nonce, sizeof nonce);
		bl = get_hex(v, "box_hex", box, sizeof box);
		CHECK(wl > 0 && ml >= 0 && nl == VEIL_NONCE_LEN && bl > 0);
		CHECK(get_hex(v, "msg_id_hex", idb, sizeof idb) == 8);
		CHECK_RC(veil_msgbox_parse(&m, wire, (size_t)wl), 0);
		CHECK((s = get(v, "sender")) != NULL && strlen(s) == 8);
		CHECK_MEM(m.sender, s, 8);
		CHECK((s = get(v, "receiver")) != NULL && strlen(s) == 8);
		CHECK_MEM(m.receiver, s, 8);
		CHECK(m.msg_id == veil_load_u64le(idb));
		CHECK((s = get(v, "created_at")) != NULL);
		CHECK(m.created_at == strtoul(s, NULL, 10));
		CHECK((s = get(v, "flags")) != NULL);
		CHECK(m.flags == strtoul(s, NULL, 0));
		CHECK((s = get(v, "nickname")) != NULL && strlen(s) <= sizeof nick);
		memcpy(nick, s, strlen(s));
		CHECK_MEM(m.nickname, nick, sizeof nick);
		CHECK(m.metadata_len == (size_t)ml);
		CHECK(ml == 0 || memcmp(m.metadata, meta, (size_t)ml) == 0);
		CHECK_MEM(m.nonce, nonce, sizeof nonce);
		CHECK(m.box_len == (size_t)bl);
		CHECK_MEM(m.box, box, (size_t)bl);
		/* Encoding the same fields gives the same bytes. */
		veil_buf_init(&out, VEIL_MSGBOX_MAX);
		CHECK_RC(veil_msgbox_encode(&m, &out), 0);
		int same = out.len == (size_t)wl && memcmp(out.p, wire, out.len) == 0;
		veil_buf_release(&out);
		CHECK(same);
		seen++;
	}
	CHECK(seen >= 1);
}

static void test_hashes(void)
{
	int email = 0, phone = 0;
	CHECK(load_all() == 0);
	for (int i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		uint8_t want[32], got[32];
		const char *in = get(v, "input");
		int is_email = kind_is(v, "hash_email");
		if (!is_email && !kind_is(v, "hash_phone"))
			continue;
		CHECK(in != NULL);
		CHECK(get_hex(v, "out_hex", want, sizeof want) == 32);
		if (is_email)
			CHECK_RC(veil_hash_email(got, in, strlen(in)), 0);
		else
			CHECK_RC(veil_hash_phone(got, in, strlen(in)), 0);
		if (memcmp(got, want, 32) != 0)
			fprintf(stderr, "%s: hash mismatch\n", v->file);
		CHECK_MEM(got, want, 32);
		email += is_email;
		phone += !is_email;
	}
	CHECK(email >= 2 && phone >= 2);
}

static void test_safe(void)
{
	int seen = 0;
	CHECK(load_all() == 0);
	for (int i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		uint8_t want_id[32], want_key[32], got_id[32], got_key[32], id[VEIL_ID_LEN];
		const char *pw = get(v, "password"), *ids = get(v, "id");
		if (!kind_is(v, "safe"))
			continue;
		CHECK(pw != NULL && ids != NULL && strlen(ids) == VEIL_ID_LEN);
		memcpy(id, ids, VEIL_ID_LEN);
		CHECK(get_hex(v, "backup_id_hex", want_id, 32) == 32);
		CHECK(get_hex(v, "key_hex", want_key, 32) == 32);
		CHECK_RC(veil_safe_derive(got_id, got_key, pw, strlen(pw), id), 0);
		CHECK_MEM(got_id, want_id, 32);
		CHECK_MEM(got_key, want_key, 32);
		seen++;
	}
	CHECK(seen >= 1);
}

static void test_gateway_mac(void)
{
	int seen = 0;
	CHECK(load_all() == 0);
	for (int i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		uint8_t want[32], got[32];
		struct veil_gw_callback f;
		const char *secret = get(v, "secret");
		if (!kind_is(v, "gateway_mac"))
			continue;
		f.from = get(v, "from");
		f.to = get(v, "to");
		f.message_id = get(v, "message_id");
		f.date = get(v, "date");
		f.nonce = get(v, "nonce");
		f.box = get(v, "box");
		CHECK(secret != NULL);
		CHECK(get_hex(v, "mac_hex", want, 32) == 32);
		CHECK_RC(veil_hash_gateway_callback(got, secret, strlen(secret), &f), 0);
		CHECK_MEM(got, want, 32);
		/* Any other secret gives another MAC. */
		CHECK_RC(veil_hash_gateway_callback(got, "nevergonnaletyoudown", 20, &f), 0);
		CHECK(memcmp(got, want, 32) != 0);
		seen++;
	}
	CHECK(seen >= 1);
}

/* Multi-device keys: each derived key, and DGPK's public key as the group ID. */
static void test_md_keys(void)
{
	int seen = 0;
	static const char *const names[] = {"dgpk_hex", "dgrk_hex", "dgdik_hex", "dgsddk_hex",
	                                    "dgtsk_hex"};
	CHECK(load_all() == 0);
	for (int i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		uint8_t dgk[32], want[5][32], gid[32];
		struct veil_md_keys k;
		if (!kind_is(v, "md_keys"))
			continue;
		CHECK(get_hex(v, "dgk_hex", dgk, sizeof dgk) == 32);
		for (int j = 0; j < 5; j++)
			CHECK(get_hex(v, names[j], want[j], 32) == 32);
		CHECK_RC(veil_md_keys_derive(&k, dgk), 0);
		if (memcmp(k.dgpk_sk, want[0], 32) != 0 || memcmp(k.dgrk, want[1], 32) != 0)
			fprintf(stderr, "%s: key mismatch\n", v->file);
		CHECK_MEM(k.dgpk_sk, want[0], 32);
		CHECK_MEM(k.dgrk, want[1], 32);
		CHECK_MEM(k.dgdik, want[2], 32);
		CHECK_MEM(k.dgsddk, want[3], 32);
		CHECK_MEM(k.dgtsk, want[4], 32);
		veil_pubkey(gid, want[0]);
		CHECK_MEM(k.group_id, gid, 32);
		veil_md_keys_wipe(&k);
		seen++;
	}
	CHECK(seen >= 3);
}

T_MAIN_BEGIN
RUN(test_files_well_formed);
RUN(test_kdf);
RUN(test_msgbox);
RUN(test_hashes);
RUN(test_safe);
RUN(test_gateway_mac);
RUN(test_md_keys);
T_MAIN_END
