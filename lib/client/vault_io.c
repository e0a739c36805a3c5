/*
 * Moving a profile's data in and out of the encrypted store: the conversion
 * of a first-format (plaintext) profile, and the export and import of the
 * message history.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "veil/contacts.h"
#include "vault_int.h"

#define DB_FILE "veil.db"
#define NEW_DB_FILE "veil.db.new"
#define KEY_FILE "key"
#define MD_FILE "md.json"
#define MD_MAX 65536

static int path_of(char *out, size_t cap, const char *home, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", home, name);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

static int exists(const char *home, const char *name)
{
	char path[VEIL_PROFILE_PATH_MAX + 32];
	struct stat st;
	return path_of(path, sizeof path, home, name) == 0 && lstat(path, &st) == 0;
}

static void remove_file(const char *home, const char *name)
{
	char path[VEIL_PROFILE_PATH_MAX + 32];
	if (path_of(path, sizeof path, home, name) == 0)
		(void)unlink(path);
}

static void sync_dir(const char *home)
{
	int dfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
}

/* Reads a whole small private file; VEIL_ENOTFOUND if absent. */
static int read_private(const char *home, const char *name, uint8_t *buf, size_t cap, size_t *len)
{
	char path[VEIL_PROFILE_PATH_MAX + 32];
	struct stat st;
	size_t n = 0;
	int rc = path_of(path, sizeof path, home, name);
	if (rc != 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? VEIL_ENOTFOUND : VEIL_EIO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 ||
	    (size_t)st.st_size >= cap) {
		close(fd);
		return VEIL_EIO;
	}
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return 0;
}

int veil_profile_is_plaintext(const char *home)
{
	char path[VEIL_PROFILE_PATH_MAX + 32];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int plain = 0;
	if (!exists(home, KEY_FILE) || !exists(home, "profile.json") ||
	    path_of(path, sizeof path, home, DB_FILE) != 0)
		return 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db,
	                       "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
	                       " name = 'vault_meta'",
	                       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		plain = sqlite3_column_int(st, 0) == 0;
	sqlite3_finalize(st);
	sqlite3_close_v2(db);
	return plain;
}

static int has_table(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	int yes = 0;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
	                       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

static int id_col(sqlite3_stmt *st, int col, uint8_t id[static VEIL_ID_LEN])
{
	const unsigned char *t = sqlite3_column_text(st, col);
	if (t == NULL || sqlite3_column_bytes(st, col) != VEIL_ID_LEN)
		return VEIL_ECORRUPT;
	memcpy(id, t, VEIL_ID_LEN);
	return veil_id_valid(id) ? 0 : VEIL_ECORRUPT;
}

struct migrate {
	sqlite3 *old;
	struct veil_profile *np;
	void (*progress)(int step, uint64_t n, void *ctx);
	void *ctx;
	uint64_t n;
};

static int copy_contacts(struct migrate *mg)
{
	sqlite3_stmt *st = NULL;
	struct veil_contact c;
	int rc = 0, s;
	if (sqlite3_prepare_v2(mg->old, "SELECT id, pk, nickname, first_seen FROM contacts", -1,
	                       &st, NULL) != SQLITE_OK)
		return VEIL_ECORRUPT;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *nick = sqlite3_column_text(st, 2);
		memset(&c, 0, sizeof c);
		if ((rc = id_col(st, 0, c.id)) != 0 ||
		    sqlite3_column_bytes(st, 1) != VEIL_KEY_LEN) {
			rc = VEIL_ECORRUPT;
			break;
		}
		memcpy(c.pk, sqlite3_column_blob(st, 1), VEIL_KEY_LEN);
		snprintf(c.nickname, sizeof c.nickname, "%s", nick ? (const char *)nick : "");
		c.first_seen_ms = (uint64_t)sqlite3_column_int64(st, 3);
		if ((rc = veil_profile_contact_add(mg->np, &c)) != 0 && rc != VEIL_EEXIST)
			break;
		rc = 0;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = VEIL_EIO;
	sqlite3_finalize(st);
	sodium_memzero(&c, sizeof c);
	return rc;
}

/* The optional tables (made on first use): names, levels, pending links. */
static int copy_contact_extras(struct migrate *mg)
{
	sqlite3_stmt *st = NULL;
	uint8_t id[VEIL_ID_LEN];
	int rc = 0, s = SQLITE_DONE;
	if (has_table(mg->old, "contact_names")) {
		if (sqlite3_prepare_v2(mg->old, "SELECT id, name FROM contact_names", -1, &st,
		                       NULL) != SQLITE_OK)
			return VEIL_ECORRUPT;
		while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
			const unsigned char *name = sqlite3_column_text(st, 1);
			if ((rc = id_col(st, 0, id)) == 0 && name != NULL &&
			    (rc = veil_profile_contact_set_name(mg->np, id, (const char *)name)) ==
			        VEIL_ENOTFOUND)
				rc = 0; /* a name of a contact that is gone */
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc != 0 || s != SQLITE_DONE)
			return rc != 0 ? rc : VEIL_EIO;
	}
	if (has_table(mg->old, "contact_levels")) {
		if (sqlite3_prepare_v2(mg->old, "SELECT id, level, source FROM contact_levels", -1,
		                       &st, NULL) != SQLITE_OK)
			return VEIL_ECORRUPT;
		while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
			const unsigned char *src = sqlite3_column_text(st, 2);
			if ((rc = id_col(st, 0, id)) == 0 &&
			    (rc = veil_contacts_level_raise(mg->np, id, sqlite3_column_int(st, 1),
			                                    src ? (const char *)src : "")) ==
			        VEIL_ENOTFOUND)
				rc = 0;
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc != 0 || s != SQLITE_DONE)
			return rc != 0 ? rc : VEIL_EIO;
	}
	if (has_table(mg->old, "link_pending")) {
		if (sqlite3_prepare_v2(mg->old,
		                       "SELECT kind, vid FROM link_pending ORDER BY started", -1,
		                       &st, NULL) != SQLITE_OK)
			return VEIL_ECORRUPT;
		while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
			const unsigned char *vid = sqlite3_column_text(st, 1);
			if (vid != NULL && sqlite3_column_bytes(st, 1) == 32)
				rc = veil_contacts_pending_set(mg->np, sqlite3_column_int(st, 0),
				                               (const char *)vid);
		}
		sqlite3_finalize(st);
		if (rc != 0 || s != SQLITE_DONE)
			return rc != 0 ? rc : VEIL_EIO;
	}
	return 0;
}

static int copy_groups(struct migrate *mg)
{
	sqlite3_stmt *st = NULL, *mem = NULL;
	struct veil_group *g;
	int rc = 0, s = SQLITE_DONE;
	if (!has_table(mg->old, "groups") || !has_table(mg->old, "group_members"))
		return 0;
	if ((g = malloc(sizeof *g)) == NULL)
		return VEIL_ENOMEM;
	if (sqlite3_prepare_v2(mg->old, "SELECT creator, gid, name, is_left, created FROM groups",
	                       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(mg->old,
	                       "SELECT member FROM group_members WHERE creator = ?1 AND gid = ?2 "
	                       "ORDER BY pos",
	                       -1, &mem, NULL) != SQLITE_OK) {
		rc = VEIL_ECORRUPT;
		goto out;
	}
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 2);
		memset(g, 0, sizeof *g);
		if ((rc = id_col(st, 0, g->creator)) != 0)
			break;
		g->gid = (uint64_t)sqlite3_column_int64(st, 1);
		snprintf(g->name, sizeof g->name, "%s", name ? (const char *)name : "");
		g->left = sqlite3_column_int(st, 3) != 0;
		g->created_ms = (uint64_t)sqlite3_column_int64(st, 4);
		sqlite3_reset(mem);
		sqlite3_bind_value(mem, 1, sqlite3_column_value(st, 0));
		sqlite3_bind_int64(mem, 2, (sqlite3_int64)g->gid);
		int ms;
		while ((ms = sqlite3_step(mem)) == SQLITE_ROW) {
			if (g->n_members >= VEIL_ARRAY_LEN(g->members) ||
			    id_col(mem, 0, g->members[g->n_members]) != 0) {
				rc = VEIL_ECORRUPT;
				break;
			}
			g->n_members++;
		}
		if (rc == 0 && ms != SQLITE_DONE)
			rc = VEIL_EIO;
		if (rc == 0)
			rc = veil_profile_group_put(mg->np, g);
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = VEIL_EIO;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(mem);
	free(g);
	return rc;
}

static int copy_nonces(struct migrate *mg)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, s;
	if (sqlite3_prepare_v2(mg->old, "SELECT nonce FROM nonces", -1, &st, NULL) != SQLITE_OK)
		return VEIL_ECORRUPT;
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != VEIL_NONCE_LEN)
			continue;
		rc = veil_profile_nonce_add(mg->np, sqlite3_column_blob(st, 0));
		if (rc == VEIL_EREPLAY)
			rc = 0;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

static int copy_messages(struct migrate *mg)
{
	sqlite3_stmt *st = NULL;
	struct veil_log_entry e;
	int rc = 0, s;
	if (sqlite3_prepare_v2(mg->old,
	                       "SELECT dir, peer, msg_id, date, type, body, status FROM messages "
	                       "ORDER BY seq",
	                       -1, &st, NULL) != SQLITE_OK)
		return VEIL_ECORRUPT;
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&e, 0, sizeof e);
		e.dir = sqlite3_column_int(st, 0);
		if ((rc = id_col(st, 1, e.peer)) != 0)
			break;
		e.msg_id = (uint64_t)sqlite3_column_int64(st, 2);
		e.date_ms = (uint64_t)sqlite3_column_int64(st, 3);
		e.type = (uint8_t)sqlite3_column_int(st, 4);
		e.body = sqlite3_column_blob(st, 5);
		e.body_len = (size_t)sqlite3_column_bytes(st, 5);
		e.status = sqlite3_column_int(st, 6);
		if ((rc = veil_log_put_locked(mg->np, &e, 0)) == VEIL_EEXIST)
			rc = 0;
		mg->n++;
		if (mg->progress != NULL)
			mg->progress(VEIL_MIGRATE_COPY, mg->n, mg->ctx);
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

/* md.json's JSON, as it is, becomes the device group's record. */
static int copy_md(const char *home, struct veil_profile *np)
{
	uint8_t *buf = malloc(MD_MAX);
	size_t len = 0;
	if (buf == NULL)
		return VEIL_ENOMEM;
	int rc = read_private(home, MD_FILE, buf, MD_MAX, &len);
	if (rc == VEIL_ENOTFOUND)
		rc = 0;
	else if (rc == 0)
		rc = veil_rec_put(np, VEIL_REC_MD, NULL, 0, buf, len);
	sodium_memzero(buf, MD_MAX);
	free(buf);
	return rc;
}

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

int veil_profile_migrate(const char *home, const uint8_t *pass, size_t len, int level,
                         void (*progress)(int step, uint64_t n, void *ctx), void *ctx)
{
	char oldp[VEIL_PROFILE_PATH_MAX + 32], newp[VEIL_PROFILE_PATH_MAX + 32];
	uint8_t keyhex[2 * VEIL_KEY_LEN + 8], pk[VEIL_KEY_LEN];
	struct veil_profile np;
	struct migrate mg;
	size_t klen = 0;
	int rc;
	memset(&np, 0, sizeof np);
	memset(&mg, 0, sizeof mg);
	if (!veil_profile_is_plaintext(home))
		return VEIL_EINVAL;
	if ((rc = path_of(oldp, sizeof oldp, home, DB_FILE)) != 0 ||
	    (rc = path_of(newp, sizeof newp, home, NEW_DB_FILE)) != 0)
		return rc;
	/* The identity: the old key file, checked against profile.json's public key. */
	if ((rc = veil_profile_init(&np, home)) != 0)
		return rc;
	if ((rc = read_private(home, KEY_FILE, keyhex, sizeof keyhex, &klen)) != 0)
		goto out;
	while (klen > 0 && (keyhex[klen - 1] == '\n' || keyhex[klen - 1] == '\r'))
		klen--;
	if (veil_hex_decode(np.sk, VEIL_KEY_LEN, (const char *)keyhex, klen) != 0) {
		rc = VEIL_ECORRUPT;
		goto out;
	}
	veil_pubkey(pk, np.sk);
	/* What an earlier, interrupted conversion left. */
	remove_file(home, NEW_DB_FILE);
	remove_file(home, NEW_DB_FILE "-journal");
	remove_file(home, NEW_DB_FILE "-wal");
	remove_file(home, NEW_DB_FILE "-shm");
	if (sqlite3_open_v2(oldp, &mg.old, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		rc = VEIL_EIO;
		goto out;
	}
	sqlite3_busy_timeout(mg.old, 10000);
	if ((rc = veil_vault_create(&np, newp, level, pass, len)) != 0)
		goto out;
	mg.np = &np;
	mg.progress = progress;
	mg.ctx = ctx;
	/* One transaction: the new database is whole or is thrown away. */
	if ((rc = exec(np.db, "BEGIN IMMEDIATE")) != 0)
		goto out;
	if ((rc = exec(mg.old, "BEGIN")) != 0 || (rc = copy_contacts(&mg)) != 0 ||
	    (rc = copy_contact_extras(&mg)) != 0 || (rc = copy_groups(&mg)) != 0 ||
	    (rc = copy_nonces(&mg)) != 0 || (rc = copy_messages(&mg)) != 0 ||
	    (rc = copy_md(home, &np)) != 0 || (rc = exec(np.db, "COMMIT")) != 0) {
		(void)exec(np.db, "ROLLBACK");
		(void)exec(mg.old, "ROLLBACK");
		goto out;
	}
	(void)exec(mg.old, "COMMIT");
	/*
	 * Neither database may keep a write-ahead log beside it: a log named
	 * veil.db-wal would be played into the new database after the rename.
	 * Leaving WAL mode checkpoints and removes it (and fails while another
	 * process has the old database open).
	 */
	veil_vault_finalize(&np);
	if ((rc = exec(np.db, "PRAGMA journal_mode=DELETE")) != 0)
		goto out;
	sqlite3_close_v2(np.db);
	np.db = NULL;
	char *mode = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(mg.old, "PRAGMA journal_mode=DELETE", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		mode = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	int deleted = mode != NULL && strcmp(mode, "delete") == 0;
	free(mode);
	sqlite3_close_v2(mg.old);
	mg.old = NULL;
	if (!deleted || exists(home, DB_FILE "-wal")) {
		rc = VEIL_EAGAIN;
		goto out;
	}
	/* The new file is durable (synchronous=FULL committed it); now the switch. */
	int fd = open(newp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		if (fd >= 0)
			close(fd);
		rc = VEIL_EIO;
		goto out;
	}
	close(fd);
	remove_file(home, DB_FILE "-shm");
	if (rename(newp, oldp) != 0) {
		rc = VEIL_EIO;
		goto out;
	}
	sync_dir(home);
	if (progress != NULL)
		progress(VEIL_MIGRATE_RENAMED, mg.n, ctx);
	remove_file(home, KEY_FILE);
	remove_file(home, MD_FILE);
	sync_dir(home);
out:
	sodium_memzero(keyhex, sizeof keyhex);
	if (mg.old != NULL)
		sqlite3_close_v2(mg.old);
	if (rc != 0)
		remove_file(home, NEW_DB_FILE);
	veil_profile_release(&np);
	return rc;
}

/* --- export and import --- */

#define EXP_MAGIC_LEN 8
#define EXP_HDR_LEN (EXP_MAGIC_LEN + 1 + 8 + 8 + crypto_pwhash_SALTBYTES)
#define EXP_CHUNK_MAX (VEIL_REC_MAX + crypto_secretstream_xchacha20poly1305_ABYTES)

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return errno == ENOSPC ? VEIL_ENOSPC : VEIL_EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes: VEIL_ETRUNC if the file ends first (*got: how many came). */
static int read_all(int fd, uint8_t *p, size_t n, size_t *got)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, p + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return VEIL_EIO;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	if (got != NULL)
		*got = done;
	return done == n ? 0 : VEIL_ETRUNC;
}

static int export_key(const uint8_t hdr[EXP_HDR_LEN], const uint8_t *pass, size_t len,
                      uint8_t key[static crypto_secretstream_xchacha20poly1305_KEYBYTES])
{
	uint64_t ops = veil_load_u64le(hdr + EXP_MAGIC_LEN + 1);
	uint64_t mem = veil_load_u64le(hdr + EXP_MAGIC_LEN + 9);
	if (ops < 1 || ops > 64 || mem < crypto_pwhash_MEMLIMIT_MIN || mem > (4ull << 30))
		return VEIL_EPROTO;
	if (pass == NULL || len == 0 || len > VEIL_PASSPHRASE_MAX)
		return VEIL_EINVAL;
	if (crypto_pwhash(key, crypto_secretstream_xchacha20poly1305_KEYBYTES, (const char *)pass,
	                  len, hdr + EXP_MAGIC_LEN + 17, ops, (size_t)mem,
	                  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return VEIL_ENOMEM;
	return 0;
}

struct exporter {
	int fd;
	crypto_secretstream_xchacha20poly1305_state st;
	const uint8_t *hdr;
	struct veil_buf pt;
	uint8_t *chunk; /* 4 + EXP_CHUNK_MAX */
	uint64_t n;
};

static int push(struct exporter *x, const uint8_t *m, size_t n, uint8_t tag)
{
	unsigned long long clen = 0;
	/* The header is authenticated with every chunk: parameters cannot be changed. */
	crypto_secretstream_xchacha20poly1305_push(&x->st, x->chunk + 4, &clen, m, n, x->hdr,
	                                           EXP_HDR_LEN, tag);
	veil_store_u32le(x->chunk, (uint32_t)clen);
	return write_all(x->fd, x->chunk, 4 + (size_t)clen);
}

static int export_one(const struct veil_log_entry *e, void *ctx)
{
	struct exporter *x = ctx;
	int rc = veil_log_encode(e, &x->pt);
	if (rc == 0)
		rc = push(x, x->pt.p, x->pt.len, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
	if (rc == 0)
		x->n++;
	return rc;
}

int veil_profile_export(struct veil_profile *p, int fd, const uint8_t *pass, size_t len, int level,
                        uint64_t *count)
{
	uint8_t hdr[EXP_HDR_LEN], sshdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
	uint8_t *key = sodium_malloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
	struct exporter x;
	uint8_t fin[8];
	int rc;
	*count = 0;
	memset(&x, 0, sizeof x);
	if (key == NULL)
		return VEIL_ENOMEM;
	veil_buf_init_secret(&x.pt, VEIL_REC_MAX);
	uint64_t ops = 0, mem = 0;
	if ((rc = veil_kdf_params(level, &ops, &mem)) != 0)
		goto out;
	x.chunk = malloc(4 + EXP_CHUNK_MAX);
	if (x.chunk == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	memcpy(hdr, VEIL_EXPORT_MAGIC, EXP_MAGIC_LEN);
	hdr[EXP_MAGIC_LEN] = 1; /* Argon2id, libsodium's crypto_pwhash_ALG_ARGON2ID13 */
	veil_store_u64le(hdr + EXP_MAGIC_LEN + 1, ops);
	veil_store_u64le(hdr + EXP_MAGIC_LEN + 9, mem);
	veil_random(hdr + EXP_MAGIC_LEN + 17, crypto_pwhash_SALTBYTES);
	if ((rc = export_key(hdr, pass, len, key)) != 0)
		goto out;
	crypto_secretstream_xchacha20poly1305_init_push(&x.st, sshdr, key);
	x.fd = fd;
	x.hdr = hdr;
	if ((rc = write_all(fd, hdr, sizeof hdr)) != 0 ||
	    (rc = write_all(fd, sshdr, sizeof sshdr)) != 0)
		goto out;
	if ((rc = veil_profile_log_list(p, NULL, export_one, &x)) != 0)
		goto out;
	/* The last chunk carries the count: a file cut at a chunk boundary is caught too. */
	veil_store_u64le(fin, x.n);
	if ((rc = push(&x, fin, sizeof fin, crypto_secretstream_xchacha20poly1305_TAG_FINAL)) != 0)
		goto out;
	if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
		rc = VEIL_EIO;
	*count = x.n;
out:
	sodium_memzero(&x.st, sizeof x.st);
	sodium_free(key);
	veil_buf_release(&x.pt);
	if (x.chunk != NULL)
		sodium_memzero(x.chunk, 4 + EXP_CHUNK_MAX);
	free(x.chunk);
	return rc;
}

static int import_stream(struct veil_profile *p, int fd,
                         crypto_secretstream_xchacha20poly1305_state *st,
                         const uint8_t hdr[EXP_HDR_LEN], uint8_t *chunk, uint8_t *plain,
                         uint64_t *added, uint64_t *skipped)
{
	struct veil_log_entry e;
	uint64_t n = 0;
	for (;;) {
		uint8_t lb[4], tag = 0;
		unsigned long long plen = 0;
		int rc = read_all(fd, lb, 4, NULL);
		if (rc != 0)
			return rc; /* no final chunk: truncated */
		uint32_t clen = veil_load_u32le(lb);
		if (clen < crypto_secretstream_xchacha20poly1305_ABYTES || clen > EXP_CHUNK_MAX)
			return VEIL_EPROTO;
		if ((rc = read_all(fd, chunk, clen, NULL)) != 0)
			return rc;
		if (crypto_secretstream_xchacha20poly1305_pull(st, plain, &plen, &tag, chunk, clen,
		                                               hdr, EXP_HDR_LEN) != 0)
			/* The first chunk is where a wrong passphrase shows. */
			return n == 0 ? VEIL_EPASS : VEIL_ECRYPTO;
		if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
			uint8_t extra;
			size_t got = 0;
			if (plen != 8 || veil_load_u64le(plain) != n)
				return VEIL_EPROTO;
			if ((rc = read_all(fd, &extra, 1, &got)) != VEIL_ETRUNC || got != 0)
				return rc == VEIL_EIO ? rc : VEIL_EPROTO; /* bytes after the end */
			return 0;
		}
		if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE ||
		    veil_log_decode(plain, (size_t)plen, &e) != 0)
			return VEIL_EPROTO;
		rc = veil_log_put_locked(p, &e, 0);
		if (rc == VEIL_EEXIST)
			(*skipped)++;
		else if (rc == 0)
			(*added)++;
		else
			return rc;
		n++;
	}
}

int veil_profile_import(struct veil_profile *p, int fd, const uint8_t *pass, size_t len,
                        uint64_t *added, uint64_t *skipped)
{
	uint8_t hdr[EXP_HDR_LEN], sshdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
	uint8_t *key = sodium_malloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
	uint8_t *chunk = malloc(EXP_CHUNK_MAX), *plain = malloc(EXP_CHUNK_MAX);
	crypto_secretstream_xchacha20poly1305_state st;
	int rc;
	*added = *skipped = 0;
	if (key == NULL || chunk == NULL || plain == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (p->db == NULL || p->vault == NULL) {
		rc = VEIL_EINVAL;
		goto out;
	}
	if ((rc = read_all(fd, hdr, sizeof hdr, NULL)) != 0)
		goto out;
	if (memcmp(hdr, VEIL_EXPORT_MAGIC, EXP_MAGIC_LEN) != 0 || hdr[EXP_MAGIC_LEN] != 1) {
		rc = VEIL_EPROTO;
		goto out;
	}
	if ((rc = read_all(fd, sshdr, sizeof sshdr, NULL)) != 0 ||
	    (rc = export_key(hdr, pass, len, key)) != 0)
		goto out;
	if (crypto_secretstream_xchacha20poly1305_init_pull(&st, sshdr, key) != 0) {
		rc = VEIL_EPROTO;
		goto out;
	}
	/* All or nothing: the messages go in only once the whole file checked out. */
	if ((rc = exec(p->db, "BEGIN IMMEDIATE")) != 0)
		goto out;
	rc = import_stream(p, fd, &st, hdr, chunk, plain, added, skipped);
	if (rc == 0)
		rc = exec(p->db, "COMMIT");
	if (rc != 0) {
		(void)exec(p->db, "ROLLBACK");
		*added = *skipped = 0;
	}
out:
	sodium_memzero(&st, sizeof st);
	if (key != NULL)
		sodium_free(key);
	if (plain != NULL)
		sodium_memzero(plain, EXP_CHUNK_MAX);
	free(chunk);
	free(plain);
	return rc;
}
