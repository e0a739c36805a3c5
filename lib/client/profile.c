/*
 * The client profile: files in one directory, written atomically, and a
 * SQLite database for contacts, the E2E nonce replay store and the log.
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

#include "veil/client.h"

#define MD_FILE "md.json"
#define KEY_FILE "key"
#define PROFILE_FILE "profile.json"
#define DB_FILE "veil.db"
#define CA_FILE "ca.pem"
#define PROFILE_JSON_MAX 65536
#define PROFILE_VERSION 1

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS contacts("
    " id TEXT PRIMARY KEY, pk BLOB NOT NULL, nickname TEXT NOT NULL DEFAULT '',"
    " first_seen INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS nonces(nonce BLOB PRIMARY KEY, seen INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS messages("
    " seq INTEGER PRIMARY KEY, dir INTEGER NOT NULL, peer TEXT NOT NULL,"
    " msg_id INTEGER NOT NULL, date INTEGER NOT NULL, type INTEGER NOT NULL,"
    " body BLOB NOT NULL, status INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(dir, peer, msg_id));"
    /* A table of its own, so that profiles made before it need no migration. */
    "CREATE TABLE IF NOT EXISTS contact_names(id TEXT PRIMARY KEY, name TEXT NOT NULL);";

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
static int write_atomic(const char *home, const char *name, const void *data, size_t len,
                        mode_t mode)
{
	char path[VEIL_PROFILE_PATH_MAX + 64], tmp[VEIL_PROFILE_PATH_MAX + 64];
	int rc, fd = -1;
	if ((rc = path_of(path, sizeof path, home, name)) != 0)
		return rc;
	int n = snprintf(tmp, sizeof tmp, "%s/.%s.tmp", home, name);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return VEIL_ELIMIT;
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
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
	if (p->db != NULL)
		sqlite3_close_v2(p->db);
	p->db = NULL;
	if (p->sk != NULL)
		sodium_free(p->sk); /* wipes */
	p->sk = NULL;
}

static int db_open(struct veil_profile *p)
{
	char path[VEIL_PROFILE_PATH_MAX + 64];
	sqlite3 *db = NULL;
	int rc = path_of(path, sizeof path, p->home, DB_FILE);
	if (rc != 0)
		return rc;
	/* Create the file ourselves so that it is private from the start. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return VEIL_EIO;
	close(fd);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK)
		goto fail;
	/* `veil send` and `veil recv` may run at the same time. */
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	p->db = db;
	return 0;
fail:
	sqlite3_close_v2(db);
	return VEIL_EIO;
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
	json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "version",
	                      PROFILE_VERSION, "id", id, "public_key", pk, "server_url",
	                      p->server_url, "directory_url", p->dir_url, "chat_host", p->chat_host,
	                      "chat_port", (int)p->chat_port, "server_key", spk, "signature_key",
	                      sgk, "nickname", p->nickname);
	if (o == NULL)
		return VEIL_EINVAL;
	*out = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	return *out == NULL ? VEIL_ENOMEM : 0;
}

int veil_profile_save(struct veil_profile *p)
{
	char *js = NULL;
	int rc = profile_json(p, &js);
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
	rc = write_atomic(p->home, PROFILE_FILE, buf, n + 1, 0600);
	free(buf);
	free(js);
	return rc;
}

int veil_profile_create(struct veil_profile *p)
{
	char hex[VEIL_HEX_LEN(VEIL_KEY_LEN) + 1];
	uint8_t pk[VEIL_KEY_LEN];
	int rc;
	if (!veil_id_valid(p->id) || p->chat_port == 0 || p->chat_host[0] == 0)
		return VEIL_EINVAL;
	veil_pubkey(pk, p->sk);
	if (memcmp(pk, p->pk, VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	if (mkdir(p->home, 0700) != 0 && errno != EEXIST)
		return VEIL_EIO;
	if (file_exists(p->home, PROFILE_FILE))
		return VEIL_EEXIST;
	/* The key first and profile.json last: profile.json marks a finished profile. */
	if ((rc = veil_hex_encode(hex, sizeof hex - 1, p->sk, VEIL_KEY_LEN)) != 0)
		goto out;
	hex[2 * VEIL_KEY_LEN] = '\n';
	hex[2 * VEIL_KEY_LEN + 1] = 0;
	if ((rc = write_atomic(p->home, KEY_FILE, hex, 2 * VEIL_KEY_LEN + 1, 0600)) != 0)
		goto out;
	if (p->db == NULL && (rc = db_open(p)) != 0)
		goto out;
	rc = veil_profile_save(p);
out:
	sodium_memzero(hex, sizeof hex);
	return rc;
}

int veil_profile_md_save(struct veil_profile *p)
{
	char dgk[VEIL_HEX_LEN(VEIL_MD_DGK_LEN)], did[17], cdid[17];
	int rc = VEIL_ENOMEM;
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
	char *js = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (js != NULL) {
		rc = write_atomic(p->home, MD_FILE, js, strlen(js), 0600);
		sodium_memzero(js, strlen(js));
		free(js);
	}
	if (rc == 0)
		p->md = 1;
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

/* Loads md.json if there is one (a single-device profile has none). */
static int md_load(struct veil_profile *p)
{
	char buf[PROFILE_JSON_MAX];
	size_t len = 0;
	int rc = read_small(p->home, MD_FILE, buf, sizeof buf, &len, 1);
	if (rc == VEIL_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	sodium_memzero(buf, sizeof buf);
	if (o == NULL || !json_is_object(o) ||
	    (rc = json_hex(o, "dgk", p->md_dgk, VEIL_MD_DGK_LEN)) != 0 ||
	    (rc = json_u64hex(o, "device_id", &p->md_device_id)) != 0 ||
	    (rc = json_u64hex(o, "csp_device_id", &p->md_csp_device_id)) != 0 ||
	    (rc = json_str(o, "mediator_url", p->md_url, sizeof p->md_url)) != 0 ||
	    (rc = json_str(o, "label", p->md_label, sizeof p->md_label)) != 0) {
		json_decref(o);
		return rc != 0 ? rc : VEIL_EPROTO;
	}
	p->md_registered = json_is_true(json_object_get(o, "registered"));
	p->md = 1;
	json_decref(o);
	return 0;
}

int veil_profile_open(struct veil_profile *p, const char *home)
{
	char buf[PROFILE_JSON_MAX], keyhex[2 * VEIL_KEY_LEN + 8];
	size_t len = 0, klen = 0;
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
	if (file_exists(home, CA_FILE) &&
	    (rc = path_of(p->ca_file, sizeof p->ca_file, home, CA_FILE)) != 0)
		goto out;

	if ((rc = read_small(home, KEY_FILE, keyhex, sizeof keyhex, &klen, 1)) != 0) {
		if (rc == VEIL_ENOTFOUND)
			rc = VEIL_EPROTO; /* a profile without its key is damaged */
		goto out;
	}
	while (klen > 0 && (keyhex[klen - 1] == '\n' || keyhex[klen - 1] == '\r'))
		klen--;
	if (veil_hex_decode(p->sk, VEIL_KEY_LEN, keyhex, klen) != 0) {
		rc = VEIL_EPROTO;
		goto out;
	}
	veil_pubkey(pk, p->sk);
	if (memcmp(pk, p->pk, VEIL_KEY_LEN) != 0) {
		rc = VEIL_EPROTO;
		goto out;
	}
	if ((rc = db_open(p)) == 0)
		rc = md_load(p);
out:
	sodium_memzero(keyhex, sizeof keyhex);
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
	int rc = write_atomic(p->home, CA_FILE, pem, len, 0600);
	if (rc == 0)
		rc = path_of(p->ca_file, sizeof p->ca_file, p->home, CA_FILE);
	return rc;
}

/* --- contacts --- */

static int prepare(struct veil_profile *p, sqlite3_stmt **st, const char *sql)
{
	if (p->db == NULL)
		return VEIL_EINVAL;
	return sqlite3_prepare_v2(p->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

static int contact_row(sqlite3_stmt *st, struct veil_contact *c)
{
	const unsigned char *id = sqlite3_column_text(st, 0);
	const void *pk = sqlite3_column_blob(st, 1);
	const unsigned char *nick = sqlite3_column_text(st, 2);
	memset(c, 0, sizeof *c);
	if (id == NULL || veil_id_parse(c->id, (const char *)id) != 0 || pk == NULL ||
	    sqlite3_column_bytes(st, 1) != VEIL_KEY_LEN)
		return VEIL_EPROTO;
	memcpy(c->pk, pk, VEIL_KEY_LEN);
	if (nick != NULL)
		snprintf(c->nickname, sizeof c->nickname, "%s", (const char *)nick);
	c->first_seen_ms = (uint64_t)sqlite3_column_int64(st, 3);
	return 0;
}

int veil_profile_contact_get(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                             struct veil_contact *out)
{
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	int rc = prepare(p, &st, "SELECT id, pk, nickname, first_seen FROM contacts WHERE id = ?1");
	if (rc != 0)
		return rc;
	veil_id_str(ids, id);
	sqlite3_bind_text(st, 1, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		rc = contact_row(st, out);
	else
		rc = s == SQLITE_DONE ? VEIL_ENOTFOUND : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

int veil_profile_contact_add(struct veil_profile *p, const struct veil_contact *c)
{
	struct veil_contact old;
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	if (!veil_id_valid(c->id) || !veil_utf8_valid((const uint8_t *)c->nickname,
	                                              strnlen(c->nickname, sizeof c->nickname)))
		return VEIL_EINVAL;
	int rc = veil_profile_contact_get(p, c->id, &old);
	if (rc == 0)
		return memcmp(old.pk, c->pk, VEIL_KEY_LEN) == 0 ? VEIL_EEXIST : VEIL_EKEY;
	if (rc != VEIL_ENOTFOUND)
		return rc;
	if ((rc = prepare(p, &st,
	                  "INSERT INTO contacts(id, pk, nickname, first_seen) "
	                  "VALUES(?1, ?2, ?3, ?4)")) != 0)
		return rc;
	veil_id_str(ids, c->id);
	sqlite3_bind_text(st, 1, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 2, c->pk, VEIL_KEY_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, c->nickname, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4,
	                   (sqlite3_int64)(c->first_seen_ms ? c->first_seen_ms : veil_now_ms()));
	int s = sqlite3_step(st);
	if (s == SQLITE_DONE)
		rc = 0;
	else
		rc = s == SQLITE_CONSTRAINT ? VEIL_EEXIST : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

int veil_profile_contact_set_nickname(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                                      const char *nickname)
{
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	size_t n = strlen(nickname);
	if (n > VEIL_PROFILE_NICK_MAX || !veil_utf8_valid((const uint8_t *)nickname, n))
		return VEIL_EINVAL;
	int rc = prepare(p, &st, "UPDATE contacts SET nickname = ?2 WHERE id = ?1");
	if (rc != 0)
		return rc;
	veil_id_str(ids, id);
	sqlite3_bind_text(st, 1, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, nickname, (int)n, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = VEIL_EIO;
	else if (sqlite3_changes(p->db) == 0)
		rc = VEIL_ENOTFOUND;
	sqlite3_finalize(st);
	return rc;
}

int veil_profile_contact_set_name(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                                  const char *name)
{
	struct veil_contact c;
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	size_t n = strlen(name);
	if (n > VEIL_PROFILE_NICK_MAX || !veil_utf8_valid((const uint8_t *)name, n))
		return VEIL_EINVAL;
	int rc = veil_profile_contact_get(p, id, &c);
	if (rc != 0)
		return rc;
	if ((rc = prepare(p, &st,
	                  n == 0 ? "DELETE FROM contact_names WHERE id = ?1"
	                         : "INSERT INTO contact_names(id, name) VALUES(?1, ?2) "
	                           "ON CONFLICT(id) DO UPDATE SET name = excluded.name")) != 0)
		return rc;
	veil_id_str(ids, id);
	sqlite3_bind_text(st, 1, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	if (n > 0)
		sqlite3_bind_text(st, 2, name, (int)n, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

int veil_profile_contact_name(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                              char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	if (cap > 0)
		out[0] = 0;
	int rc = prepare(p, &st, "SELECT name FROM contact_names WHERE id = ?1");
	if (rc != 0)
		return rc;
	veil_id_str(ids, id);
	sqlite3_bind_text(st, 1, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);
		if (v != NULL && cap > 0)
			snprintf(out, cap, "%s", (const char *)v);
		rc = 0;
	} else {
		rc = s == SQLITE_DONE ? VEIL_ENOTFOUND : VEIL_EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

int veil_profile_contact_list(struct veil_profile *p,
                              int (*fn)(const struct veil_contact *c, void *ctx), void *ctx)
{
	sqlite3_stmt *st = NULL;
	struct veil_contact c;
	int rc = prepare(p, &st, "SELECT id, pk, nickname, first_seen FROM contacts ORDER BY id");
	if (rc != 0)
		return rc;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = contact_row(st, &c)) != 0 || (rc = fn(&c, ctx)) != 0)
			goto out;
	}
	if (s != SQLITE_DONE)
		rc = VEIL_EIO;
out:
	sqlite3_finalize(st);
	return rc;
}

/* --- nonces --- */

int veil_profile_nonce_seen(struct veil_profile *p, const uint8_t nonce[static VEIL_NONCE_LEN])
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(p, &st, "SELECT 1 FROM nonces WHERE nonce = ?1");
	if (rc != 0)
		return rc;
	sqlite3_bind_blob(st, 1, nonce, VEIL_NONCE_LEN, SQLITE_TRANSIENT);
	int s = sqlite3_step(st);
	rc = s == SQLITE_ROW ? VEIL_EREPLAY : s == SQLITE_DONE ? 0 : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

int veil_profile_nonce_add(struct veil_profile *p, const uint8_t nonce[static VEIL_NONCE_LEN])
{
	sqlite3_stmt *st = NULL;
	int rc = prepare(p, &st, "INSERT INTO nonces(nonce, seen) VALUES(?1, ?2)");
	if (rc != 0)
		return rc;
	sqlite3_bind_blob(st, 1, nonce, VEIL_NONCE_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)veil_now_ms());
	int s = sqlite3_step(st);
	rc = s == SQLITE_DONE ? 0 : s == SQLITE_CONSTRAINT ? VEIL_EREPLAY : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

/* --- message log --- */

static int exec(struct veil_profile *p, const char *sql)
{
	return sqlite3_exec(p->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

int veil_profile_log_add(struct veil_profile *p, const struct veil_log_entry *e,
                         const uint8_t *nonce)
{
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	int rc;
	if (p->db == NULL || !veil_id_valid(e->peer) || e->body_len > VEIL_LOG_BODY_MAX ||
	    (e->body == NULL && e->body_len != 0))
		return VEIL_EINVAL;
	/* IMMEDIATE: take the write lock now, so a concurrent writer waits here. */
	if ((rc = exec(p, "BEGIN IMMEDIATE")) != 0)
		return rc;
	if (nonce != NULL && (rc = veil_profile_nonce_add(p, nonce)) != 0)
		goto out;
	if ((rc = prepare(p, &st,
	                  /*
	                   * A payload stored raw because it could not be decrypted
	                   * (type 0) may have been a forgery under a genuine
	                   * message's ID: the genuine message, once it comes,
	                   * takes its place rather than being taken for a resend.
	                   */
	                  "INSERT INTO messages(dir, peer, msg_id, date, type, body, status) "
	                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
	                  "ON CONFLICT(dir, peer, msg_id) DO UPDATE SET date = excluded.date,"
	                  " type = excluded.type, body = excluded.body, status = excluded.status"
	                  " WHERE messages.type = 0 AND excluded.type != 0")) != 0)
		goto out;
	veil_id_str(ids, e->peer);
	sqlite3_bind_int(st, 1, e->dir);
	sqlite3_bind_text(st, 2, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)e->msg_id);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)e->date_ms);
	sqlite3_bind_int(st, 5, e->type);
	sqlite3_bind_blob(st, 6, e->body_len ? (const void *)e->body : (const void *)"",
	                  (int)e->body_len, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 7, e->status);
	int s = sqlite3_step(st);
	rc = s == SQLITE_DONE ? 0 : s == SQLITE_CONSTRAINT ? VEIL_EEXIST : VEIL_EIO;
	if (rc == 0 && sqlite3_changes(p->db) == 0)
		rc = VEIL_EEXIST; /* the conflict clause declined to replace the row */
out:
	sqlite3_finalize(st);
	if (rc == 0)
		rc = exec(p, "COMMIT");
	if (rc != 0)
		(void)exec(p, "ROLLBACK");
	return rc;
}

int veil_profile_log_set_status(struct veil_profile *p, const uint8_t peer[static VEIL_ID_LEN],
                                uint64_t msg_id, int status)
{
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	int rc = prepare(p, &st,
	                 "UPDATE messages SET status = max(status, ?3) "
	                 "WHERE dir = 1 AND peer = ?1 AND msg_id = ?2");
	if (rc != 0)
		return rc;
	veil_id_str(ids, peer);
	sqlite3_bind_text(st, 1, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)msg_id);
	sqlite3_bind_int(st, 3, status);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = VEIL_EIO;
	else if (sqlite3_changes(p->db) == 0)
		rc = VEIL_ENOTFOUND;
	sqlite3_finalize(st);
	return rc;
}

/* Runs a prepared log query and calls fn for each row. Finalizes st. */
static int log_rows(sqlite3_stmt *st, int (*fn)(const struct veil_log_entry *e, void *ctx),
                    void *ctx)
{
	int rc = 0, s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		struct veil_log_entry e;
		memset(&e, 0, sizeof e);
		const unsigned char *pid = sqlite3_column_text(st, 1);
		e.dir = sqlite3_column_int(st, 0);
		if (pid == NULL || veil_id_parse(e.peer, (const char *)pid) != 0) {
			rc = VEIL_EPROTO;
			goto out;
		}
		e.msg_id = (uint64_t)sqlite3_column_int64(st, 2);
		e.date_ms = (uint64_t)sqlite3_column_int64(st, 3);
		e.type = (uint8_t)sqlite3_column_int(st, 4);
		e.body = sqlite3_column_blob(st, 5);
		e.body_len = (size_t)sqlite3_column_bytes(st, 5);
		e.status = sqlite3_column_int(st, 6);
		if ((rc = fn(&e, ctx)) != 0)
			goto out;
	}
	if (s != SQLITE_DONE)
		rc = VEIL_EIO;
out:
	sqlite3_finalize(st);
	return rc;
}

int veil_profile_log_list(struct veil_profile *p, const uint8_t *peer,
                          int (*fn)(const struct veil_log_entry *e, void *ctx), void *ctx)
{
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	int rc = prepare(p, &st,
	                 "SELECT dir, peer, msg_id, date, type, body, status FROM messages "
	                 "WHERE ?1 IS NULL OR peer = ?1 ORDER BY seq");
	if (rc != 0)
		return rc;
	if (peer != NULL) {
		veil_id_str(ids, peer);
		sqlite3_bind_text(st, 1, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	}
	return log_rows(st, fn, ctx);
}

int veil_profile_log_query(struct veil_profile *p, const struct veil_log_query *q,
                           int (*fn)(const struct veil_log_entry *e, void *ctx), void *ctx)
{
	sqlite3_stmt *st = NULL;
	char ids[VEIL_ID_LEN + 1];
	if (q->since_ms > (uint64_t)INT64_MAX)
		return VEIL_EINVAL;
	int rc = prepare(p, &st,
	                 "SELECT dir, peer, msg_id, date, type, body, status FROM messages "
	                 "WHERE (?1 IS NULL OR peer = ?1) AND date >= ?2 ORDER BY date, seq");
	if (rc != 0)
		return rc;
	if (q->peer != NULL) {
		veil_id_str(ids, q->peer);
		sqlite3_bind_text(st, 1, ids, VEIL_ID_LEN, SQLITE_TRANSIENT);
	}
	sqlite3_bind_int64(st, 2, (sqlite3_int64)q->since_ms);
	return log_rows(st, fn, ctx);
}
