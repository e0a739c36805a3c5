/*
 * The client profile: profile.json (public) and veil.db, the encrypted
 * store (vault.c): contacts, the E2E nonce replay store, the device group
 * and the message log, each record sealed under the store key.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "veil/join.h"

#include "vault_int.h"

#define MD_FILE "md.json" /* the plaintext format's; removed once converted */
#define KEY_FILE "key"    /* the same */
#define PROFILE_FILE "profile.json"
#define DB_FILE "veil.db"
#define CA_FILE "ca.pem"
#define PROFILE_JSON_MAX 65536
#define PROFILE_VERSION 1

int veil_profile_home(char *out, size_t cap)
{
	const char *v = getenv("VEIL_HOME");
	int n;
	if (v != NULL && v[0] != 0) {
		n = snprintf(out, cap, "%s", v);
	} else {
		const char *h = getenv("HOME");
		if (h == NULL || h[0] == 0)
			return VEIL_EINVAL;
		n = snprintf(out, cap, "%s/.veil", h);
	}
	if (n < 0 || (size_t)n >= cap)
		return VEIL_ELIMIT;
	return 0;
}

static int path_of(char *out, size_t cap, const char *home, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", home, name);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

/* Writes data to home/name through a temporary file, fsync and rename. */
int veil_profile_write_atomic(const char *home, const char *name, const void *data, size_t len,
                              unsigned mode)
{
	char path[VEIL_PROFILE_PATH_MAX + 64], tmp[VEIL_PROFILE_PATH_MAX + 64];
	int rc, fd = -1;
	if ((rc = path_of(path, sizeof path, home, name)) != 0)
		return rc;
	int n = snprintf(tmp, sizeof tmp, "%s/.%s.tmp", home, name);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return VEIL_ELIMIT;
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
	if (fd < 0)
		return VEIL_EIO;
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	/* Make the rename itself durable. */
	int dfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	return VEIL_EIO;
}

/*
 * Reads a whole small file into buf (NUL-terminated). If private_only, the
 * file must not be accessible to group or others.
 */
static int read_small(const char *home, const char *name, char *buf, size_t cap, size_t *len,
                      int private_only)
{
	char path[VEIL_PROFILE_PATH_MAX + 64];
	struct stat st;
	int rc = path_of(path, sizeof path, home, name);
	if (rc != 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? VEIL_ENOTFOUND : VEIL_EIO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = VEIL_EIO;
		goto out;
	}
	if (private_only && (st.st_mode & 077) != 0) {
		rc = VEIL_EIO;
		goto out;
	}
	if ((size_t)st.st_size >= cap) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	size_t n = 0;
	while (n < cap - 1) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = VEIL_EIO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	*len = n;
out:
	close(fd);
	return rc;
}

static int file_exists(const char *home, const char *name)
{
	char path[VEIL_PROFILE_PATH_MAX + 64];
	struct stat st;
	if (path_of(path, sizeof path, home, name) != 0)
		return 0;
	return lstat(path, &st) == 0;
}

/* strerror's text with a lower-case first letter, to sit inside our sentences. */
static void errno_text(char *out, size_t cap, int err)
{
	snprintf(out, cap, "%s", strerror(err));
	if (out[0] >= 'A' && out[0] <= 'Z' && !(out[1] >= 'A' && out[1] <= 'Z'))
		out[0] = (char)(out[0] - 'A' + 'a');
}

int veil_profile_check_home(const char *home, char *why, size_t cap)
{
	char probe[VEIL_PROFILE_PATH_MAX + 64], et[128];
	struct stat st;
	int fd, err;
	if (mkdir(home, 0700) != 0 && errno != EEXIST) {
		errno_text(et, sizeof et, errno);
		snprintf(why, cap, "cannot create VEIL_HOME %s: %s", home, et);
		return VEIL_EIO;
	}
	if (stat(home, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(why, cap, "VEIL_HOME %s is not a directory", home);
		return VEIL_EIO;
	}
	int n = snprintf(probe, sizeof probe, "%s/.veil-write-test.XXXXXX", home);
	if (n < 0 || (size_t)n >= sizeof probe) {
		snprintf(why, cap, "VEIL_HOME %s is too long a path", home);
		return VEIL_EIO;
	}
	if ((fd = mkstemp(probe)) < 0) {
		errno_text(et, sizeof et, errno);
		snprintf(why, cap, "cannot write VEIL_HOME %s: %s", home, et);
		return VEIL_EIO;
	}
	err = write(fd, "x", 1) == 1 && fsync(fd) == 0 ? 0 : errno;
	if (close(fd) != 0 && err == 0)
		err = errno;
	(void)unlink(probe);
	if (err != 0) {
		errno_text(et, sizeof et, err);
		snprintf(why, cap, "cannot write VEIL_HOME %s: %s", home, et);
		return VEIL_EIO;
	}
	return 0;
}

int veil_profile_init(struct veil_profile *p, const char *home)
{
	memset(p, 0, sizeof *p);
	int n = snprintf(p->home, sizeof p->home, "%s", home);
	if (n < 0 || (size_t)n >= sizeof p->home)
		return VEIL_ELIMIT;
	p->sk = sodium_malloc(VEIL_KEY_LEN);
	if (p->sk == NULL)
		return VEIL_ENOMEM;
	sodium_memzero(p->sk, VEIL_KEY_LEN);
	return 0;
}

void veil_profile_release(struct veil_profile *p)
{
	sodium_memzero(p->md_dgk, sizeof p->md_dgk);
	veil_vault_release(p); /* its statements first */
	if (p->db != NULL)
		sqlite3_close_v2(p->db);
	p->db = NULL;
	if (p->sk != NULL)
		sodium_free(p->sk); /* wipes */
	p->sk = NULL;
}

static int profile_json(struct veil_profile *p, char **out)
{
	char pk[VEIL_HEX_LEN(VEIL_KEY_LEN)], spk[VEIL_HEX_LEN(VEIL_KEY_LEN)];
	char sgk[VEIL_HEX_LEN(VEIL_KEY_LEN)];
	char id[VEIL_ID_LEN + 1];
	memcpy(id, p->id, VEIL_ID_LEN);
	id[VEIL_ID_LEN] = 0;
	if (veil_hex_encode(pk, sizeof pk, p->pk, VEIL_KEY_LEN) != 0 ||
	    veil_hex_encode(spk, sizeof spk, p->server_pk, VEIL_KEY_LEN) != 0 ||
	    veil_hex_encode(sgk, sizeof sgk, p->sign_pk, VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	/* With the store open, the nickname is sealed in it and profile.json holds "". */
	const char *nick = p->db != NULL && p->vault != NULL ? "" : p->nickname;
	json_t *o =
	    json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "version",
	              PROFILE_VERSION, "id", id, "public_key", pk, "server_url", p->server_url,
	              "directory_url", p->dir_url, "chat_host", p->chat_host, "chat_port",
	              (int)p->chat_port, "server_key", spk, "signature_key", sgk, "nickname", nick);
	if (o == NULL)
		return VEIL_EINVAL;
	if (p->n_chat_addrs > 0) {
		json_t *list = json_array();
		for (size_t i = 0; list != NULL && i < p->n_chat_addrs; i++)
			if (json_array_append_new(
			        list, json_pack("{s:s, s:i}", "host", p->chat_addrs[i].host, "port",
			                        (int)p->chat_addrs[i].port)) != 0) {
				json_decref(list);
				list = NULL;
			}
		if (json_object_set_new(o, "chat_addresses", list) != 0) {
			json_decref(o);
			return VEIL_ENOMEM;
		}
	}
	*out = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	return *out == NULL ? VEIL_ENOMEM : 0;
}

int veil_profile_save(struct veil_profile *p)
{
	char *js = NULL;
	int rc;
	if (p->db != NULL && p->vault != NULL &&
	    (rc = veil_rec_put(p, VEIL_REC_SELF, NULL, 0, (const uint8_t *)p->nickname,
	                       strnlen(p->nickname, sizeof p->nickname))) != 0)
		return rc;
	rc = profile_json(p, &js);
	if (rc != 0)
		return rc;
	size_t n = strlen(js);
	char *buf = malloc(n + 2);
	if (buf == NULL) {
		free(js);
		return VEIL_ENOMEM;
	}
	memcpy(buf, js, n);
	buf[n] = '\n';
	rc = veil_profile_write_atomic(p->home, PROFILE_FILE, buf, n + 1, 0600);
	free(buf);
	free(js);
	return rc;
}

/* Removes home/name (a plaintext file of the first format, an unfinished database). */
static void remove_file(const char *home, const char *name)
{
	char path[VEIL_PROFILE_PATH_MAX + 64];
	if (path_of(path, sizeof path, home, name) == 0)
		(void)unlink(path);
}

static int md_json(struct veil_profile *p, char **out)
{
	char dgk[VEIL_HEX_LEN(VEIL_MD_DGK_LEN)], did[17], cdid[17];
	*out = NULL;
	if (veil_hex_encode(dgk, sizeof dgk, p->md_dgk, VEIL_MD_DGK_LEN) != 0)
		return VEIL_EINVAL;
	/* IDs as hex strings: JSON numbers lose bits above 2^53 in many readers. */
	snprintf(did, sizeof did, "%016llx", (unsigned long long)p->md_device_id);
	snprintf(cdid, sizeof cdid, "%016llx", (unsigned long long)p->md_csp_device_id);
	json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:b, s:s, s:s}", "version", 1, "dgk", dgk,
	                      "device_id", did, "csp_device_id", cdid, "registered",
	                      p->md_registered, "mediator_url", p->md_url, "label", p->md_label);
	sodium_memzero(dgk, sizeof dgk);
	if (o == NULL)
		return VEIL_ENOMEM;
	*out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return *out == NULL ? VEIL_ENOMEM : 0;
}

int veil_profile_md_save(struct veil_profile *p)
{
	char *js = NULL;
	/* A joining device has its device group before its database: create saves it. */
	if (p->db == NULL) {
		p->md = 1;
		return 0;
	}
	int rc = md_json(p, &js);
	if (rc == 0) {
		rc = veil_rec_put(p, VEIL_REC_MD, NULL, 0, (const uint8_t *)js, strlen(js));
		sodium_memzero(js, strlen(js));
	}
	free(js);
	if (rc == 0)
		p->md = 1;
	return rc;
}

int veil_profile_create(struct veil_profile *p)
{
	char path[VEIL_PROFILE_PATH_MAX + 64];
	uint8_t pk[VEIL_KEY_LEN], *pass = NULL;
	size_t plen = 0;
	int rc, level = veil_vault_new_level();
	if (!veil_id_valid(p->id) || p->chat_port == 0 || p->chat_host[0] == 0)
		return VEIL_EINVAL;
	veil_pubkey(pk, p->sk);
	if (memcmp(pk, p->pk, VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	if (mkdir(p->home, 0700) != 0 && errno != EEXIST)
		return VEIL_EIO;
	if (file_exists(p->home, PROFILE_FILE))
		return VEIL_EEXIST;
	if ((rc = path_of(path, sizeof path, p->home, DB_FILE)) != 0)
		return rc;
	/* Without profile.json a database here is what an interrupted init left. */
	remove_file(p->home, DB_FILE);
	remove_file(p->home, DB_FILE "-wal");
	remove_file(p->home, DB_FILE "-shm");
	if (level != VEIL_KDF_NONE) {
		pass = sodium_malloc(VEIL_PASSPHRASE_MAX);
		if (pass == NULL)
			return VEIL_ENOMEM;
		if ((rc = veil_vault_get_pass(pass, VEIL_PASSPHRASE_MAX, &plen, VEIL_PASS_NEW)) !=
		    0)
			goto out;
	}
	/* The database with the wrapped keys first, profile.json last: it marks a finished profile. */
	if (p->db != NULL) {
		sqlite3_close_v2(p->db);
		p->db = NULL;
	}
	if ((rc = veil_vault_create(p, path, level, pass, plen)) != 0)
		goto out;
	if (p->md && (rc = veil_profile_md_save(p)) != 0)
		goto out;
	rc = veil_profile_save(p);
out:
	if (pass != NULL)
		sodium_free(pass);
	return rc;
}

static int json_hex(json_t *o, const char *key, uint8_t *out, size_t n)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (s == NULL)
		return VEIL_EPROTO;
	return veil_hex_decode(out, n, s, strlen(s)) == 0 ? 0 : VEIL_EPROTO;
}

static int json_str(json_t *o, const char *key, char *out, size_t cap)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (s == NULL)
		return VEIL_EPROTO;
	int n = snprintf(out, cap, "%s", s);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

static int json_u64hex(json_t *o, const char *key, uint64_t *out)
{
	uint8_t b[8];
	const char *s = json_string_value(json_object_get(o, key));
	if (s == NULL || strlen(s) != 16 || veil_hex_decode(b, 8, s, 16) != 0)
		return VEIL_EPROTO;
	*out = 0;
	for (int i = 0; i < 8; i++)
		*out = *out << 8 | b[i];
	return 0;
}

/* Loads the device group if there is one (a single-device profile has none). */
static int md_load(struct veil_profile *p)
{
	struct veil_buf v;
	veil_buf_init_secret(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	int rc = veil_rec_get(p, VEIL_REC_MD, NULL, 0, &v);
	json_t *o = NULL;
	if (rc == VEIL_ENOTFOUND) {
		rc = 0;
		goto out;
	}
	if (rc != 0)
		goto out;
	o = json_loadb((const char *)v.p, v.len, JSON_REJECT_DUPLICATES, NULL);
	if (o == NULL || !json_is_object(o) ||
	    (rc = json_hex(o, "dgk", p->md_dgk, VEIL_MD_DGK_LEN)) != 0 ||
	    (rc = json_u64hex(o, "device_id", &p->md_device_id)) != 0 ||
	    (rc = json_u64hex(o, "csp_device_id", &p->md_csp_device_id)) != 0 ||
	    (rc = json_str(o, "mediator_url", p->md_url, sizeof p->md_url)) != 0 ||
	    (rc = json_str(o, "label", p->md_label, sizeof p->md_label)) != 0) {
		rc = rc != 0 ? rc : VEIL_EPROTO;
		goto out;
	}
	p->md_registered = json_is_true(json_object_get(o, "registered"));
	p->md = 1;
out:
	json_decref(o);
	veil_buf_release(&v);
	return rc;
}

/*
 * Our nickname from the store. A profile.json that still holds one (a
 * converted profile) has it moved into the store and blanked.
 */
static int self_load(struct veil_profile *p)
{
	struct veil_buf v;
	veil_buf_init_secret(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	int rc = veil_rec_get(p, VEIL_REC_SELF, NULL, 0, &v);
	if (rc == 0) {
		if (v.len > VEIL_PROFILE_NICK_MAX)
			rc = VEIL_ECORRUPT;
		else
			snprintf(p->nickname, sizeof p->nickname, "%.*s", (int)v.len,
			         (const char *)v.p);
	} else if (rc == VEIL_ENOTFOUND) {
		rc = p->nickname[0] != 0 ? veil_profile_save(p) : 0;
	}
	veil_buf_release(&v);
	return rc;
}

/* "chat_addresses" of profile.json, optional: [{host, port}], at most VEIL_PROFILE_CHAT_ADDRS_MAX. */
static int chat_addrs_load(struct veil_profile *p, json_t *list)
{
	p->n_chat_addrs = 0;
	p->chat_cur = 0;
	if (list == NULL)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > VEIL_PROFILE_CHAT_ADDRS_MAX)
		return VEIL_EPROTO;
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i);
		json_int_t port = json_integer_value(json_object_get(e, "port"));
		int rc = json_str(e, "host", p->chat_addrs[i].host, sizeof p->chat_addrs[i].host);
		if (rc != 0)
			return rc;
		if (port <= 0 || port > 65535 || p->chat_addrs[i].host[0] == 0)
			return VEIL_EPROTO;
		p->chat_addrs[i].port = (uint16_t)port;
	}
	p->n_chat_addrs = json_array_size(list);
	return 0;
}

int veil_profile_open(struct veil_profile *p, const char *home)
{
	char buf[PROFILE_JSON_MAX];
	size_t len = 0;
	json_t *o = NULL;
	uint8_t pk[VEIL_KEY_LEN];
	int rc = veil_profile_init(p, home);
	if (rc != 0)
		goto out;
	if ((rc = read_small(home, PROFILE_FILE, buf, sizeof buf, &len, 0)) != 0)
		goto out;
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (o == NULL || !json_is_object(o)) {
		rc = VEIL_EPROTO;
		goto out;
	}
	char id[VEIL_ID_LEN + 8];
	json_int_t port = json_integer_value(json_object_get(o, "chat_port"));
	if ((rc = json_str(o, "id", id, sizeof id)) != 0 ||
	    (rc = json_hex(o, "public_key", p->pk, VEIL_KEY_LEN)) != 0 ||
	    (rc = json_hex(o, "server_key", p->server_pk, VEIL_KEY_LEN)) != 0 ||
	    (rc = json_hex(o, "signature_key", p->sign_pk, VEIL_KEY_LEN)) != 0 ||
	    (rc = json_str(o, "directory_url", p->dir_url, sizeof p->dir_url)) != 0 ||
	    (rc = json_str(o, "server_url", p->server_url, sizeof p->server_url)) != 0 ||
	    (rc = json_str(o, "chat_host", p->chat_host, sizeof p->chat_host)) != 0 ||
	    (rc = json_str(o, "nickname", p->nickname, sizeof p->nickname)) != 0)
		goto out;
	if (veil_id_parse(p->id, id) != 0 || port <= 0 || port > 65535) {
		rc = VEIL_EPROTO;
		goto out;
	}
	p->chat_port = (uint16_t)port;
	if ((rc = chat_addrs_load(p, json_object_get(o, "chat_addresses"))) != 0)
		goto out;
	if (file_exists(home, CA_FILE) &&
	    (rc = path_of(p->ca_file, sizeof p->ca_file, home, CA_FILE)) != 0)
		goto out;

	if ((rc = veil_vault_unlock(p)) != 0)
		goto out;
	veil_pubkey(pk, p->sk);
	if (memcmp(pk, p->pk, VEIL_KEY_LEN) != 0) {
		rc = VEIL_EPROTO;
		goto out;
	}
	if ((rc = md_load(p)) != 0 || (rc = self_load(p)) != 0)
		goto out;
	/* What a conversion that stopped after its rename left of the plaintext format. */
	remove_file(home, KEY_FILE);
	remove_file(home, MD_FILE);
out:
	json_decref(o);
	if (rc != 0)
		veil_profile_release(p);
	return rc;
}

int veil_profile_ca_read(const char *path, uint8_t **pem, size_t *len)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	struct stat st;
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc = 0;
	*pem = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? VEIL_ENOTFOUND : VEIL_EIO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = VEIL_EIO;
		goto out;
	}
	if (st.st_size > VEIL_PROFILE_CA_MAX) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	if (n != (size_t)st.st_size)
		rc = VEIL_EIO;
	else if (strstr((const char *)buf, begin) == NULL)
		rc = VEIL_EPROTO;
out:
	close(fd);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*pem = buf;
	*len = n;
	return 0;
}

int veil_profile_ca_write(struct veil_profile *p, const uint8_t *pem, size_t len)
{
	int rc = veil_profile_write_atomic(p->home, CA_FILE, pem, len, 0600);
	if (rc == 0)
		rc = path_of(p->ca_file, sizeof p->ca_file, p->home, CA_FILE);
	return rc;
}

static int prepare(struct veil_profile *p, sqlite3_stmt **st, const char *sql)
{
	*st = NULL;
	if (p->db == NULL || p->vault == NULL)
		return VEIL_EINVAL;
	return sqlite3_prepare_v2(p->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

/* --- contacts --- */

/* A contact record: pk (32), first_seen (u64le), nickname. */
static int contact_encode(const struct veil_contact *c, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strnlen(c->nickname, sizeof c->nickname);
	if (cap < VEIL_KEY_LEN + 8 + n)
		return VEIL_ELIMIT;
	memcpy(out, c->pk, VEIL_KEY_LEN);
	veil_store_u64le(out + VEIL_KEY_LEN, c->first_seen_ms);
	memcpy(out + VEIL_KEY_LEN + 8, c->nickname, n);
	*len = VEIL_KEY_LEN + 8 + n;
	return 0;
}

static int contact_decode(const uint8_t *v, size_t n, struct veil_contact *c)
{
	size_t nick = n - VEIL_KEY_LEN - 8 - VEIL_ID_LEN;
	memset(c, 0, sizeof *c);
	if (n < VEIL_ID_LEN + VEIL_KEY_LEN + 8 || nick > VEIL_PROFILE_NICK_MAX)
		return VEIL_ECORRUPT;
	/* The stored record starts with the ID (the row's key is only its hash). */
	memcpy(c->id, v, VEIL_ID_LEN);
	memcpy(c->pk, v + VEIL_ID_LEN, VEIL_KEY_LEN);
	c->first_seen_ms = veil_load_u64le(v + VEIL_ID_LEN + VEIL_KEY_LEN);
	memcpy(c->nickname, v + VEIL_ID_LEN + VEIL_KEY_LEN + 8, nick);
	return veil_id_valid(c->id) ? 0 : VEIL_ECORRUPT;
}

static int contact_put(struct veil_profile *p, const struct veil_contact *c)
{
	uint8_t rec[VEIL_ID_LEN + VEIL_KEY_LEN + 8 + VEIL_PROFILE_NICK_MAX + 1];
	size_t n = 0;
	memcpy(rec, c->id, VEIL_ID_LEN);
	int rc = contact_encode(c, rec + VEIL_ID_LEN, sizeof rec - VEIL_ID_LEN, &n);
	if (rc == 0)
		rc = veil_rec_put(p, VEIL_REC_CONTACT, c->id, VEIL_ID_LEN, rec, VEIL_ID_LEN + n);
	sodium_memzero(rec, sizeof rec);
	return rc;
}

int veil_profile_contact_get(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                             struct veil_contact *out)
{
	struct veil_buf v;
	veil_buf_init_secret(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	int rc = veil_rec_get(p, VEIL_REC_CONTACT, id, VEIL_ID_LEN, &v);
	if (rc == 0 && (rc = contact_decode(v.p, v.len, out)) == 0 &&
	    memcmp(out->id, id, VEIL_ID_LEN) != 0)
		rc = VEIL_ECORRUPT;
	veil_buf_release(&v);
	return rc;
}

int veil_profile_contact_add(struct veil_profile *p, const struct veil_contact *c)
{
	struct veil_contact old, nc;
	if (!veil_id_valid(c->id) || !veil_utf8_valid((const uint8_t *)c->nickname,
	                                              strnlen(c->nickname, sizeof c->nickname)))
		return VEIL_EINVAL;
	int rc = veil_profile_contact_get(p, c->id, &old);
	if (rc == 0)
		return memcmp(old.pk, c->pk, VEIL_KEY_LEN) == 0 ? VEIL_EEXIST : VEIL_EKEY;
	if (rc != VEIL_ENOTFOUND)
		return rc;
	nc = *c;
	nc.nickname[VEIL_PROFILE_NICK_MAX] = 0;
	if (nc.first_seen_ms == 0)
		nc.first_seen_ms = veil_now_ms();
	return contact_put(p, &nc);
}

int veil_profile_contact_set_nickname(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                                      const char *nickname)
{
	struct veil_contact c;
	size_t n = strlen(nickname);
	if (n > VEIL_PROFILE_NICK_MAX || !veil_utf8_valid((const uint8_t *)nickname, n))
		return VEIL_EINVAL;
	int rc = veil_profile_contact_get(p, id, &c);
	if (rc != 0)
		return rc;
	memcpy(c.nickname, nickname, n + 1);
	return contact_put(p, &c);
}

int veil_profile_contact_set_name(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                                  const char *name)
{
	struct veil_contact c;
	size_t n = strlen(name);
	if (n > VEIL_PROFILE_NICK_MAX || !veil_utf8_valid((const uint8_t *)name, n))
		return VEIL_EINVAL;
	int rc = veil_profile_contact_get(p, id, &c);
	if (rc != 0)
		return rc;
	if (n == 0) {
		rc = veil_rec_del(p, VEIL_REC_NAME, id, VEIL_ID_LEN);
		return rc == VEIL_ENOTFOUND ? 0 : rc;
	}
	return veil_rec_put(p, VEIL_REC_NAME, id, VEIL_ID_LEN, (const uint8_t *)name, n);
}

int veil_profile_contact_name(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                              char *out, size_t cap)
{
	struct veil_buf v;
	if (cap > 0)
		out[0] = 0;
	veil_buf_init_secret(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	int rc = veil_rec_get(p, VEIL_REC_NAME, id, VEIL_ID_LEN, &v);
	if (rc == 0 && v.len > VEIL_PROFILE_NICK_MAX)
		rc = VEIL_ECORRUPT;
	if (rc == 0 && cap > 0)
		snprintf(out, cap, "%.*s", (int)v.len, (const char *)v.p);
	veil_buf_release(&v);
	return rc;
}

struct contact_vec {
	struct veil_contact *v;
	size_t n, cap;
};

static int contact_collect(const uint8_t *v, size_t n, void *ctx)
{
	struct contact_vec *cv = ctx;
	if (cv->n == cv->cap) {
		size_t cap = cv->cap ? 2 * cv->cap : 64;
		struct veil_contact *nv = realloc(cv->v, cap * sizeof *nv);
		if (nv == NULL)
			return VEIL_ENOMEM;
		cv->v = nv;
		cv->cap = cap;
	}
	int rc = contact_decode(v, n, &cv->v[cv->n]);
	if (rc == 0)
		cv->n++;
	return rc;
}

static int contact_cmp(const void *a, const void *b)
{
	return memcmp(((const struct veil_contact *)a)->id, ((const struct veil_contact *)b)->id,
	              VEIL_ID_LEN);
}

int veil_profile_contact_list(struct veil_profile *p,
                              int (*fn)(const struct veil_contact *c, void *ctx), void *ctx)
{
	struct contact_vec cv = {0};
	/* Rows are in hash order: the ID order is made here. */
	int rc = veil_rec_scan(p, VEIL_REC_CONTACT, contact_collect, &cv);
	if (rc == 0 && cv.n > 1)
		qsort(cv.v, cv.n, sizeof *cv.v, contact_cmp);
	for (size_t i = 0; rc == 0 && i < cv.n; i++)
		rc = fn(&cv.v[i], ctx);
	if (cv.v != NULL)
		sodium_memzero(cv.v, cv.cap * sizeof *cv.v);
	free(cv.v);
	return rc;
}

/* --- nonces --- */

static int exec(struct veil_profile *p, const char *sql);

/*
 * A used nonce is kept in the form the specification's EssentialData
 * carries to a new device (HMAC-SHA256 under our ID, veil_join_hash_nonce),
 * with its scope, so that it can be handed on; nonces stored before that
 * (raw, kind VEIL_REC_NONCE) are still found but not handed on.
 */
static void nonce_hash(const struct veil_profile *p, const uint8_t nonce[static VEIL_NONCE_LEN],
                       uint8_t h[static VEIL_JOIN_NONCE_HASH_LEN])
{
	char id[VEIL_ID_LEN + 1];
	veil_id_str(id, p->id);
	veil_join_hash_nonce(h, id, nonce, VEIL_NONCE_LEN);
}

static int hash_seen(struct veil_profile *p, const uint8_t h[static VEIL_JOIN_NONCE_HASH_LEN])
{
	int rc = veil_rec_marked(p, VEIL_REC_NHASH, h, VEIL_JOIN_NONCE_HASH_LEN);
	return rc == VEIL_EEXIST ? VEIL_EREPLAY : rc;
}

int veil_profile_nonce_seen(struct veil_profile *p, const uint8_t nonce[static VEIL_NONCE_LEN])
{
	uint8_t h[VEIL_JOIN_NONCE_HASH_LEN];
	int rc = veil_rec_marked(p, VEIL_REC_NONCE, nonce, VEIL_NONCE_LEN);
	if (rc == VEIL_EEXIST)
		return VEIL_EREPLAY;
	if (rc != 0 || !veil_id_valid(p->id))
		return rc;
	nonce_hash(p, nonce, h);
	return hash_seen(p, h);
}

int veil_profile_nonce_import(struct veil_profile *p,
                              const uint8_t h[static VEIL_JOIN_NONCE_HASH_LEN], int scope)
{
	uint8_t v[1 + VEIL_JOIN_NONCE_HASH_LEN];
	int rc = hash_seen(p, h);
	if (rc != 0)
		return rc;
	v[0] = (uint8_t)scope;
	memcpy(v + 1, h, VEIL_JOIN_NONCE_HASH_LEN);
	return veil_rec_put(p, VEIL_REC_NHASH, h, VEIL_JOIN_NONCE_HASH_LEN, v, sizeof v);
}

int veil_profile_nonce_add_scope(struct veil_profile *p, const uint8_t nonce[static VEIL_NONCE_LEN],
                                 int scope)
{
	uint8_t h[VEIL_JOIN_NONCE_HASH_LEN];
	/* Without an ID yet (converting an old profile) only the raw form can be kept. */
	if (!veil_id_valid(p->id)) {
		int rc = veil_rec_mark(p, VEIL_REC_NONCE, nonce, VEIL_NONCE_LEN);
		return rc == VEIL_EEXIST ? VEIL_EREPLAY : rc;
	}
	int rc = veil_rec_marked(p, VEIL_REC_NONCE, nonce, VEIL_NONCE_LEN);
	if (rc != 0)
		return rc == VEIL_EEXIST ? VEIL_EREPLAY : rc;
	nonce_hash(p, nonce, h);
	return veil_profile_nonce_import(p, h, scope);
}

int veil_profile_nonce_add(struct veil_profile *p, const uint8_t nonce[static VEIL_NONCE_LEN])
{
	return veil_profile_nonce_add_scope(p, nonce, VEIL_NONCE_CSP);
}

int veil_profile_nonce_import_many(struct veil_profile *p, const uint8_t (*h)[32], size_t n,
                                   int scope)
{
	/* One transaction: a new device takes up to hundreds of thousands at once. */
	int rc = exec(p, "BEGIN IMMEDIATE");
	for (size_t i = 0; rc == 0 && i < n; i++)
		if ((rc = veil_profile_nonce_import(p, h[i], scope)) == VEIL_EREPLAY)
			rc = 0;
	if (rc == 0)
		rc = exec(p, "COMMIT");
	if (rc != 0)
		(void)exec(p, "ROLLBACK");
	return rc;
}

struct nonce_scan {
	int (*fn)(const uint8_t h[VEIL_JOIN_NONCE_HASH_LEN], int scope, void *ctx);
	void *ctx;
};

static int nonce_scan_fn(const uint8_t *v, size_t n, void *ctx)
{
	struct nonce_scan *s = ctx;
	if (n != 1 + VEIL_JOIN_NONCE_HASH_LEN)
		return VEIL_ECORRUPT;
	return s->fn(v + 1, v[0], s->ctx);
}

int veil_profile_nonce_list(struct veil_profile *p,
                            int (*fn)(const uint8_t h[VEIL_JOIN_NONCE_HASH_LEN], int scope,
                                      void *ctx),
                            void *ctx)
{
	struct nonce_scan s = {.fn = fn, .ctx = ctx};
	return veil_rec_scan(p, VEIL_REC_NHASH, nonce_scan_fn, &s);
}

/* --- message log --- */

#define LOG_REC_VERSION 1
#define LOG_HDR_LEN (1 + 1 + VEIL_ID_LEN + 8 + 8 + 1 + 4)

static int exec(struct veil_profile *p, const char *sql)
{
	return sqlite3_exec(p->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

int veil_log_encode(const struct veil_log_entry *e, struct veil_buf *out)
{
	uint8_t h[LOG_HDR_LEN];
	if (e->body_len > VEIL_LOG_BODY_MAX || (e->body == NULL && e->body_len != 0) ||
	    (e->dir != VEIL_LOG_IN && e->dir != VEIL_LOG_OUT))
		return VEIL_EINVAL;
	h[0] = LOG_REC_VERSION;
	h[1] = (uint8_t)e->dir;
	memcpy(h + 2, e->peer, VEIL_ID_LEN);
	veil_store_u64le(h + 2 + VEIL_ID_LEN, e->msg_id);
	veil_store_u64le(h + 10 + VEIL_ID_LEN, e->date_ms);
	h[18 + VEIL_ID_LEN] = e->type;
	veil_store_u32le(h + 19 + VEIL_ID_LEN, (uint32_t)(int32_t)e->status);
	veil_buf_reset(out);
	int rc = veil_buf_append(out, h, sizeof h);
	if (rc == 0 && e->body_len > 0)
		rc = veil_buf_append(out, e->body, e->body_len);
	return rc;
}

int veil_log_decode(const uint8_t *v, size_t n, struct veil_log_entry *e)
{
	memset(e, 0, sizeof *e);
	if (n < LOG_HDR_LEN || n - LOG_HDR_LEN > VEIL_LOG_BODY_MAX || v[0] != LOG_REC_VERSION ||
	    v[1] > VEIL_LOG_OUT)
		return VEIL_ECORRUPT;
	e->dir = v[1];
	memcpy(e->peer, v + 2, VEIL_ID_LEN);
	e->msg_id = veil_load_u64le(v + 2 + VEIL_ID_LEN);
	e->date_ms = veil_load_u64le(v + 10 + VEIL_ID_LEN);
	e->type = v[18 + VEIL_ID_LEN];
	e->status = (int)(int32_t)veil_load_u32le(v + 19 + VEIL_ID_LEN);
	e->body = v + LOG_HDR_LEN;
	e->body_len = n - LOG_HDR_LEN;
	return veil_id_valid(e->peer) ? 0 : VEIL_ECORRUPT;
}

/* The row key of a message: its direction, peer and ID. */
static void msg_key(struct veil_profile *p, int dir, const uint8_t peer[static VEIL_ID_LEN],
                    uint64_t msg_id, uint8_t k[static VEIL_REC_HASH_LEN])
{
	uint8_t nat[1 + VEIL_ID_LEN + 8];
	nat[0] = (uint8_t)dir;
	memcpy(nat + 1, peer, VEIL_ID_LEN);
	veil_store_u64le(nat + 1 + VEIL_ID_LEN, msg_id);
	veil_vault_hash(p, VEIL_REC_MSG, nat, sizeof nat, k);
}

/* Finds a message row: its seq and its decrypted record in pt; VEIL_ENOTFOUND. */
static int msg_find(struct veil_profile *p, const uint8_t k[static VEIL_REC_HASH_LEN], int64_t *seq,
                    struct veil_buf *pt)
{
	sqlite3_stmt *st = NULL;
	int rc = veil_vault_prep(p, VEIL_ST_MSG_FIND, "SELECT seq, v FROM msg WHERE k = ?1", &st);
	if (rc != 0)
		return rc;
	sqlite3_bind_blob(st, 1, k, VEIL_REC_HASH_LEN, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		rc = veil_vault_unseal(p, VEIL_REC_MSG, k, sqlite3_column_blob(st, 1),
		                       (size_t)sqlite3_column_bytes(st, 1), pt);
	} else {
		rc = s == SQLITE_DONE ? VEIL_ENOTFOUND : VEIL_EIO;
	}
	veil_vault_done(st);
	return rc;
}

int veil_log_put_locked(struct veil_profile *p, const struct veil_log_entry *e, int replace_raw)
{
	uint8_t k[VEIL_REC_HASH_LEN], ph[VEIL_REC_HASH_LEN];
	struct veil_buf pt, ct;
	struct veil_log_entry old;
	sqlite3_stmt *st = NULL;
	int64_t seq = 0;
	int rc;
	if (!veil_id_valid(e->peer))
		return VEIL_EINVAL;
	veil_buf_init_secret(&pt, VEIL_REC_MAX + VEIL_REC_PAD);
	veil_buf_init(&ct, VEIL_REC_MAX + 256);
	msg_key(p, e->dir, e->peer, e->msg_id, k);
	rc = msg_find(p, k, &seq, &pt);
	if (rc == 0) {
		/*
		 * A payload stored raw because it could not be decrypted (type 0)
		 * may have been a forgery under a genuine message's ID: the
		 * genuine message, once it comes, takes its place rather than
		 * being taken for a resend.
		 */
		if (!replace_raw || veil_log_decode(pt.p, pt.len, &old) != 0 || old.type != 0 ||
		    e->type == 0) {
			rc = VEIL_EEXIST;
			goto out;
		}
	} else if (rc != VEIL_ENOTFOUND) {
		goto out;
	}
	int found = rc == 0;
	if ((rc = veil_log_encode(e, &pt)) != 0 ||
	    (rc = veil_vault_seal(p, VEIL_REC_MSG, k, pt.p, pt.len, &ct)) != 0)
		goto out;
	if (found) {
		if ((rc = veil_vault_prep(p, VEIL_ST_MSG_UPDATE,
		                          "UPDATE msg SET v = ?2 WHERE seq = ?1", &st)) != 0)
			goto out;
		sqlite3_bind_int64(st, 1, seq);
		sqlite3_bind_blob(st, 2, ct.p, (int)ct.len, SQLITE_STATIC);
	} else {
		veil_vault_hash(p, VEIL_REC_PEER, e->peer, VEIL_ID_LEN, ph);
		if ((rc = veil_vault_prep(p, VEIL_ST_MSG_INSERT,
		                          "INSERT INTO msg(k, ph, v) VALUES(?1, ?2, ?3)", &st)) !=
		    0)
			goto out;
		sqlite3_bind_blob(st, 1, k, sizeof k, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, ph, sizeof ph, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, ct.p, (int)ct.len, SQLITE_STATIC);
	}
	int s = sqlite3_step(st);
	rc = s == SQLITE_DONE ? 0 : s == SQLITE_CONSTRAINT ? VEIL_EEXIST : VEIL_EIO;
out:
	veil_vault_done(st);
	veil_buf_release(&pt);
	veil_buf_release(&ct);
	return rc;
}

int veil_profile_log_add(struct veil_profile *p, const struct veil_log_entry *e,
                         const uint8_t *nonce)
{
	int rc;
	if (p->db == NULL || !veil_id_valid(e->peer) || e->body_len > VEIL_LOG_BODY_MAX ||
	    (e->body == NULL && e->body_len != 0))
		return VEIL_EINVAL;
	/* IMMEDIATE: take the write lock now, so a concurrent writer waits here. */
	if ((rc = exec(p, "BEGIN IMMEDIATE")) != 0)
		return rc;
	if (nonce != NULL && (rc = veil_profile_nonce_add(p, nonce)) != 0)
		goto out;
	rc = veil_log_put_locked(p, e, 1);
out:
	if (rc == 0)
		rc = exec(p, "COMMIT");
	if (rc != 0)
		(void)exec(p, "ROLLBACK");
	return rc;
}

/*
 * Raises the status of a logged message of direction dir. An incoming
 * message's status only goes from 0 (unread) to read: one stored raw keeps
 * VEIL_LOG_RAW.
 */
static int log_raise(struct veil_profile *p, int dir, const uint8_t peer[static VEIL_ID_LEN],
                     uint64_t msg_id, int status)
{
	uint8_t k[VEIL_REC_HASH_LEN];
	struct veil_buf pt, ct, nb;
	struct veil_log_entry e;
	sqlite3_stmt *st = NULL;
	int64_t seq = 0;
	int rc;
	if (p->db == NULL || p->vault == NULL)
		return VEIL_EINVAL;
	veil_buf_init_secret(&pt, VEIL_REC_MAX + VEIL_REC_PAD);
	veil_buf_init_secret(&nb, VEIL_REC_MAX + VEIL_REC_PAD);
	veil_buf_init(&ct, VEIL_REC_MAX + 256);
	msg_key(p, dir, peer, msg_id, k);
	if ((rc = exec(p, "BEGIN IMMEDIATE")) != 0)
		goto done;
	if ((rc = msg_find(p, k, &seq, &pt)) != 0 || (rc = veil_log_decode(pt.p, pt.len, &e)) != 0)
		goto out;
	if (status <= e.status || (dir == VEIL_LOG_IN && e.status != 0))
		goto out; /* found; the status only rises */
	e.status = status;
	if ((rc = veil_log_encode(&e, &nb)) != 0 ||
	    (rc = veil_vault_seal(p, VEIL_REC_MSG, k, nb.p, nb.len, &ct)) != 0 ||
	    (rc = veil_vault_prep(p, VEIL_ST_MSG_UPDATE, "UPDATE msg SET v = ?2 WHERE seq = ?1",
	                          &st)) != 0)
		goto out;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_blob(st, 2, ct.p, (int)ct.len, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : VEIL_EIO;
out:
	veil_vault_done(st);
	if (rc == 0)
		rc = exec(p, "COMMIT");
	if (rc != 0)
		(void)exec(p, "ROLLBACK");
done:
	veil_buf_release(&pt);
	veil_buf_release(&nb);
	veil_buf_release(&ct);
	return rc;
}

int veil_profile_log_set_status(struct veil_profile *p, const uint8_t peer[static VEIL_ID_LEN],
                                uint64_t msg_id, int status)
{
	return log_raise(p, VEIL_LOG_OUT, peer, msg_id, status);
}

int veil_profile_log_set_read(struct veil_profile *p, const uint8_t peer[static VEIL_ID_LEN],
                              uint64_t msg_id)
{
	return log_raise(p, VEIL_LOG_IN, peer, msg_id, VEIL_LOG_READ);
}

/* Decrypts and decodes the current row of st (columns k, v) into e, body in pt. */
static int msg_row(struct veil_profile *p, sqlite3_stmt *st, struct veil_buf *pt,
                   struct veil_log_entry *e)
{
	if (sqlite3_column_bytes(st, 0) != VEIL_REC_HASH_LEN)
		return VEIL_ECORRUPT;
	int rc =
	    veil_vault_unseal(p, VEIL_REC_MSG, sqlite3_column_blob(st, 0),
	                      sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), pt);
	return rc != 0 ? rc : veil_log_decode(pt->p, pt->len, e);
}

static void bind_peer(struct veil_profile *p, sqlite3_stmt *st, int col, const uint8_t *peer)
{
	uint8_t ph[VEIL_REC_HASH_LEN];
	if (peer == NULL)
		return;
	veil_vault_hash(p, VEIL_REC_PEER, peer, VEIL_ID_LEN, ph);
	sqlite3_bind_blob(st, col, ph, sizeof ph, SQLITE_TRANSIENT);
}

int veil_profile_log_list(struct veil_profile *p, const uint8_t *peer,
                          int (*fn)(const struct veil_log_entry *e, void *ctx), void *ctx)
{
	sqlite3_stmt *st = NULL;
	struct veil_buf pt;
	struct veil_log_entry e;
	int rc = prepare(p, &st, "SELECT k, v FROM msg WHERE ?1 IS NULL OR ph = ?1 ORDER BY seq");
	if (rc != 0)
		return rc;
	veil_buf_init_secret(&pt, VEIL_REC_MAX + VEIL_REC_PAD);
	bind_peer(p, st, 1, peer);
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = msg_row(p, st, &pt, &e)) != 0)
			goto out;
		/* A hash collision of peers would show another's message: compare the real ID. */
		if (peer != NULL && memcmp(e.peer, peer, VEIL_ID_LEN) != 0)
			continue;
		if ((rc = fn(&e, ctx)) != 0)
			goto out;
	}
	if (s != SQLITE_DONE)
		rc = VEIL_EIO;
out:
	sqlite3_finalize(st);
	veil_buf_release(&pt);
	return rc;
}

struct date_seq {
	uint64_t date;
	int64_t seq;
};

static int date_seq_cmp(const void *a, const void *b)
{
	const struct date_seq *x = a, *y = b;
	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int veil_profile_log_query(struct veil_profile *p, const struct veil_log_query *q,
                           int (*fn)(const struct veil_log_entry *e, void *ctx), void *ctx)
{
	sqlite3_stmt *st = NULL, *one = NULL;
	struct veil_buf pt;
	struct veil_log_entry e;
	struct date_seq *v = NULL;
	size_t n = 0, cap = 0;
	int s, rc;
	if (q->since_ms > (uint64_t)INT64_MAX)
		return VEIL_EINVAL;
	/*
	 * Dates are inside the sealed records: a first pass keeps the date and
	 * row of each selected message (16 bytes each), the second decrypts them
	 * again in date order, so bodies are never all in memory at once.
	 */
	if ((rc = prepare(p, &st,
	                  "SELECT k, v, seq FROM msg WHERE ?1 IS NULL OR ph = ?1 ORDER BY seq")) !=
	    0)
		return rc;
	veil_buf_init_secret(&pt, VEIL_REC_MAX + VEIL_REC_PAD);
	bind_peer(p, st, 1, q->peer);
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = msg_row(p, st, &pt, &e)) != 0)
			goto out;
		if ((q->peer != NULL && memcmp(e.peer, q->peer, VEIL_ID_LEN) != 0) ||
		    e.date_ms < q->since_ms)
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 256;
			struct date_seq *nv = realloc(v, nc * sizeof *nv);
			if (nv == NULL) {
				rc = VEIL_ENOMEM;
				goto out;
			}
			v = nv;
			cap = nc;
		}
		v[n].date = e.date_ms;
		v[n].seq = sqlite3_column_int64(st, 2);
		n++;
	}
	if (s != SQLITE_DONE) {
		rc = VEIL_EIO;
		goto out;
	}
	qsort(v, n, sizeof *v, date_seq_cmp);
	if ((rc = prepare(p, &one, "SELECT k, v FROM msg WHERE seq = ?1")) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(one);
		sqlite3_bind_int64(one, 1, v[i].seq);
		s = sqlite3_step(one);
		if (s == SQLITE_DONE)
			continue; /* deleted meanwhile */
		if (s != SQLITE_ROW) {
			rc = VEIL_EIO;
			goto out;
		}
		if ((rc = msg_row(p, one, &pt, &e)) != 0 || (rc = fn(&e, ctx)) != 0)
			goto out;
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(one);
	veil_buf_release(&pt);
	free(v);
	return rc;
}
