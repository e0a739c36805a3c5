/*
 * Groups in the client: their state in the profile database and the
 * receive steps of the specification's group messages. Sending lives in
 * group_send.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "group_int.h"

/*
 * Our own tables beside the profile's. The member list keeps the order of
 * the creator's setup (pos). The resync table holds the specification's
 * "recently resynced" marks: on a member's side for the creator (we asked
 * it for the group's state), on the creator's side for each member (we sent
 * it the state).
 */
static const char GROUP_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS groups("
    " creator TEXT NOT NULL, gid INTEGER NOT NULL, name TEXT NOT NULL DEFAULT '',"
    " is_left INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
    " PRIMARY KEY(creator, gid));"
    "CREATE TABLE IF NOT EXISTS group_members("
    " creator TEXT NOT NULL, gid INTEGER NOT NULL, pos INTEGER NOT NULL, member TEXT NOT NULL,"
    " PRIMARY KEY(creator, gid, member)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS group_resync("
    " creator TEXT NOT NULL, gid INTEGER NOT NULL, peer TEXT NOT NULL, at INTEGER NOT NULL,"
    " PRIMARY KEY(creator, gid, peer)) WITHOUT ROWID;";

static int schema(struct veil_profile *p)
{
	if (p->db == NULL)
		return VEIL_EINVAL;
	return sqlite3_exec(p->db, GROUP_SCHEMA, NULL, NULL, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

static int prepare(struct veil_profile *p, sqlite3_stmt **st, const char *sql)
{
	int rc = schema(p);
	if (rc != 0)
		return rc;
	return sqlite3_prepare_v2(p->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

static int exec(struct veil_profile *p, const char *sql)
{
	return sqlite3_exec(p->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

int veil_group_has(const struct veil_group *g, const uint8_t id[static VEIL_ID_LEN])
{
	if (memcmp(g->creator, id, VEIL_ID_LEN) == 0)
		return 1;
	for (size_t i = 0; i < g->n_members; i++)
		if (memcmp(g->members[i], id, VEIL_ID_LEN) == 0)
			return 1;
	return 0;
}

static int load_members(struct veil_profile *p, struct veil_group *g)
{
	sqlite3_stmt *st = NULL;
	char cs[VEIL_ID_LEN + 1];
	int rc = prepare(p, &st,
	                 "SELECT member FROM group_members WHERE creator = ?1 AND gid = ?2 "
	                 "ORDER BY pos");
	if (rc != 0)
		return rc;
	veil_id_str(cs, g->creator);
	sqlite3_bind_text(st, 1, cs, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)g->gid);
	g->n_members = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		if (g->n_members >= VEIL_ARRAY_LEN(g->members) || t == NULL ||
		    veil_id_parse(g->members[g->n_members], (const char *)t) != 0) {
			rc = VEIL_EPROTO;
			goto out;
		}
		g->n_members++;
	}
	rc = rc == SQLITE_DONE ? 0 : VEIL_EIO;
out:
	sqlite3_finalize(st);
	return rc;
}

static int group_row(sqlite3_stmt *st, struct veil_group *g)
{
	const unsigned char *c = sqlite3_column_text(st, 0);
	const unsigned char *name = sqlite3_column_text(st, 2);
	memset(g, 0, sizeof *g);
	if (c == NULL || veil_id_parse(g->creator, (const char *)c) != 0)
		return VEIL_EPROTO;
	g->gid = (uint64_t)sqlite3_column_int64(st, 1);
	if (name != NULL)
		snprintf(g->name, sizeof g->name, "%s", (const char *)name);
	g->left = sqlite3_column_int(st, 3) != 0;
	g->created_ms = (uint64_t)sqlite3_column_int64(st, 4);
	return 0;
}

int veil_profile_group_get(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, struct veil_group *out)
{
	sqlite3_stmt *st = NULL;
	char cs[VEIL_ID_LEN + 1];
	int rc = prepare(p, &st,
	                 "SELECT creator, gid, name, is_left, created FROM groups "
	                 "WHERE creator = ?1 AND gid = ?2");
	if (rc != 0)
		return rc;
	veil_id_str(cs, creator);
	sqlite3_bind_text(st, 1, cs, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)gid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = group_row(st, out);
	else
		rc = rc == SQLITE_DONE ? VEIL_ENOTFOUND : VEIL_EIO;
	sqlite3_finalize(st);
	if (rc == 0)
		rc = load_members(p, out);
	return rc;
}

int veil_profile_group_put(struct veil_profile *p, const struct veil_group *g)
{
	sqlite3_stmt *st = NULL;
	char cs[VEIL_ID_LEN + 1];
	int rc;
	if (!veil_id_valid(g->creator) || g->n_members > VEIL_ARRAY_LEN(g->members) ||
	    strlen(g->name) > VEIL_GROUP_NAME_MAX)
		return VEIL_EINVAL;
	if ((rc = schema(p)) != 0)
		return rc;
	veil_id_str(cs, g->creator);
	if ((rc = exec(p, "BEGIN IMMEDIATE")) != 0)
		return rc;
	if ((rc = prepare(p, &st,
	                  "INSERT INTO groups(creator, gid, name, is_left, created) "
	                  "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(creator, gid) DO UPDATE SET "
	                  "name = excluded.name, is_left = excluded.is_left")) != 0)
		goto fail;
	sqlite3_bind_text(st, 1, cs, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)g->gid);
	sqlite3_bind_text(st, 3, g->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 4, g->left ? 1 : 0);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)(g->created_ms ? g->created_ms : veil_now_ms()));
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail_io;
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = prepare(p, &st, "DELETE FROM group_members WHERE creator = ?1 AND gid = ?2")) !=
	    0)
		goto fail;
	sqlite3_bind_text(st, 1, cs, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)g->gid);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail_io;
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = prepare(p, &st,
	                  "INSERT OR IGNORE INTO group_members(creator, gid, pos, member) "
	                  "VALUES(?1, ?2, ?3, ?4)")) != 0)
		goto fail;
	for (size_t i = 0; i < g->n_members; i++) {
		char ms[VEIL_ID_LEN + 1];
		veil_id_str(ms, g->members[i]);
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, cs, VEIL_ID_LEN, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)g->gid);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)i);
		sqlite3_bind_text(st, 4, ms, VEIL_ID_LEN, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail_io;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = exec(p, "COMMIT")) != 0)
		goto fail;
	return 0;
fail_io:
	rc = VEIL_EIO;
fail:
	sqlite3_finalize(st);
	(void)exec(p, "ROLLBACK");
	return rc;
}

int veil_profile_group_delete(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid)
{
	static const char *const sql[] = {
	    "DELETE FROM group_members WHERE creator = ?1 AND gid = ?2",
	    "DELETE FROM group_resync WHERE creator = ?1 AND gid = ?2",
	    "DELETE FROM groups WHERE creator = ?1 AND gid = ?2",
	};
	char cs[VEIL_ID_LEN + 1];
	int rc, changed = 0;
	if ((rc = schema(p)) != 0)
		return rc;
	veil_id_str(cs, creator);
	if ((rc = exec(p, "BEGIN IMMEDIATE")) != 0)
		return rc;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(sql); i++) {
		sqlite3_stmt *st = NULL;
		if ((rc = prepare(p, &st, sql[i])) != 0)
			goto fail;
		sqlite3_bind_text(st, 1, cs, VEIL_ID_LEN, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)gid);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : VEIL_EIO;
		sqlite3_finalize(st);
		if (rc != 0)
			goto fail;
		changed = sqlite3_changes(p->db);
	}
	if (changed == 0) {
		rc = VEIL_ENOTFOUND;
		goto fail;
	}
	return exec(p, "COMMIT");
fail:
	(void)exec(p, "ROLLBACK");
	return rc;
}

int veil_profile_group_list(struct veil_profile *p,
                            int (*fn)(const struct veil_group *g, void *ctx), void *ctx)
{
	sqlite3_stmt *st = NULL;
	struct veil_group *g = malloc(sizeof *g);
	int rc;
	if (g == NULL)
		return VEIL_ENOMEM;
	if ((rc = prepare(p, &st,
	                  "SELECT creator, gid, name, is_left, created FROM groups "
	                  "ORDER BY gid, creator")) != 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = group_row(st, g)) != 0 || (rc = load_members(p, g)) != 0)
			goto out;
		if ((rc = fn(g, ctx)) != 0)
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : VEIL_EIO;
out:
	sqlite3_finalize(st);
	free(g);
	return rc;
}

/* --- recently resynced marks --- */

int veil_group_resync_recent(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                             uint64_t gid, const uint8_t peer[static VEIL_ID_LEN])
{
	sqlite3_stmt *st = NULL;
	char cs[VEIL_ID_LEN + 1], ps[VEIL_ID_LEN + 1];
	int recent = 0;
	if (prepare(p, &st,
	            "SELECT at FROM group_resync WHERE creator = ?1 AND gid = ?2 AND peer = ?3") !=
	    0)
		return 0;
	veil_id_str(cs, creator);
	veil_id_str(ps, peer);
	sqlite3_bind_text(st, 1, cs, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)gid);
	sqlite3_bind_text(st, 3, ps, VEIL_ID_LEN, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW) {
		uint64_t at = (uint64_t)sqlite3_column_int64(st, 0), now = veil_now_ms();
		recent = at <= now && now - at < VEIL_GROUP_RESYNC_MS;
	}
	sqlite3_finalize(st);
	return recent;
}

int veil_group_resync_mark(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, const uint8_t peer[static VEIL_ID_LEN])
{
	sqlite3_stmt *st = NULL;
	char cs[VEIL_ID_LEN + 1], ps[VEIL_ID_LEN + 1];
	int rc = prepare(p, &st,
	                 "INSERT OR REPLACE INTO group_resync(creator, gid, peer, at) "
	                 "VALUES(?1, ?2, ?3, ?4)");
	if (rc != 0)
		return rc;
	veil_id_str(cs, creator);
	veil_id_str(ps, peer);
	sqlite3_bind_text(st, 1, cs, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)gid);
	sqlite3_bind_text(st, 3, ps, VEIL_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)veil_now_ms());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

/* --- receive --- */

static int is_me(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN])
{
	return memcmp(m->prof.id, id, VEIL_ID_LEN) == 0;
}

static int drop(struct veil_group_rx *rx, const char *fmt, ...) VEIL_PRINTF(2, 3);
static int drop(struct veil_group_rx *rx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rx->why, sizeof rx->why, fmt, ap);
	va_end(ap);
	return VEIL_GROUP_RX_DROP;
}

/* A message that cannot be decoded: the messenger stores it raw before it acks it. */
static int malformed(struct veil_group_rx *rx, const char *fmt, ...) VEIL_PRINTF(2, 3);
static int malformed(struct veil_group_rx *rx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rx->why, sizeof rx->why, fmt, ap);
	va_end(ap);
	return VEIL_GROUP_RX_MALFORMED;
}

static void gid_hex(char out[static 17], uint64_t gid)
{
	uint8_t b[8];
	veil_store_u64le(b, gid);
	if (veil_hex_encode(out, 17, b, 8) != 0)
		out[0] = 0;
}

/* Sends one group control message with an inner body to `to`. */
static int reply(struct veil_msgr *m, const struct veil_group_io *io,
                 const uint8_t to[static VEIL_ID_LEN], uint8_t type,
                 const uint8_t creator[static VEIL_ID_LEN], uint64_t gid, const uint8_t *inner,
                 size_t len)
{
	struct veil_buf b;
	int rc;
	veil_buf_init(&b, VEIL_E2E_BODY_MAX);
	if (veil_e2e_group_container(type) == VEIL_GROUP_CONTAINER_CREATOR)
		rc = veil_e2e_group_creator_wrap(&b, gid, inner, len);
	else
		rc = veil_e2e_group_member_wrap(&b, creator, gid, inner, len);
	if (rc == 0)
		rc = io->send(io->ctx, to, type, 0, b.p, b.len);
	veil_buf_release(&b);
	if (rc != 0 && m->errtext[0] == 0)
		veil_msgr_fail(m, rc, "cannot answer a group message: %s", veil_strerror(rc));
	return rc;
}

/* The specification's Group Sync Request Steps (we are a member). */
static int request_sync(struct veil_msgr *m, const struct veil_group_io *io,
                        const uint8_t creator[static VEIL_ID_LEN], uint64_t gid)
{
	if (is_me(m, creator) || veil_group_resync_recent(&m->prof, creator, gid, creator))
		return 0;
	int rc = reply(m, io, creator, VEIL_E2E_GROUP_SYNC_REQUEST, creator, gid, NULL, 0);
	if (rc == 0 && veil_group_resync_mark(&m->prof, creator, gid, creator) != 0)
		veil_log_debug("client: group resync mark not stored");
	return rc;
}

/* Sends the group's setup and name to one member (Active Group State Resync Steps). */
static int resync(struct veil_msgr *m, const struct veil_group_io *io, const struct veil_group *g,
                  const uint8_t to[static VEIL_ID_LEN])
{
	struct veil_buf b;
	int rc;
	veil_buf_init(&b, VEIL_E2E_BODY_MAX);
	rc = veil_e2e_group_setup_encode(&b, (const uint8_t(*)[VEIL_ID_LEN])g->members,
	                                 g->n_members);
	if (rc == 0)
		rc = reply(m, io, to, VEIL_E2E_GROUP_SETUP, g->creator, g->gid, b.p, b.len);
	if (rc == 0)
		rc = reply(m, io, to, VEIL_E2E_GROUP_NAME, g->creator, g->gid,
		           (const uint8_t *)g->name, strlen(g->name));
	veil_buf_release(&b);
	if (rc == 0 && veil_group_resync_mark(&m->prof, g->creator, g->gid, to) != 0)
		veil_log_debug("client: group resync mark not stored");
	return rc;
}

/*
 * The specification's Common Group Receive Steps. Returns 0 if the message
 * passes (rx->g holds the group), a verdict if it is dropped, or an error.
 */
static int common_steps(struct veil_msgr *m, const struct veil_group_io *io,
                        const uint8_t sender[static VEIL_ID_LEN],
                        const uint8_t creator[static VEIL_ID_LEN], uint64_t gid,
                        struct veil_group_rx *rx)
{
	char from[VEIL_ID_LEN + 1], gh[17];
	int rc = veil_profile_group_get(&m->prof, creator, gid, &rx->g);
	veil_id_str(from, sender);
	gid_hex(gh, gid);
	if (rc == VEIL_ENOTFOUND) {
		if (is_me(m, creator))
			return drop(rx, "message from %s for unknown group %s dropped", from, gh);
		if ((rc = request_sync(m, io, creator, gid)) != 0)
			return rc;
		return drop(rx,
		            "message from %s for unknown group %s dropped; asked its creator for "
		            "the group's state",
		            from, gh);
	}
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot read the groups: %s", veil_strerror(rc));
	if (rx->g.left) {
		uint8_t type = is_me(m, creator) ? VEIL_E2E_GROUP_SETUP : VEIL_E2E_GROUP_LEAVE;
		if ((rc = reply(m, io, sender, type, creator, gid, NULL, 0)) != 0)
			return rc;
		return drop(rx, "message from %s for group %s, which we left, dropped", from, gh);
	}
	if (!veil_group_has(&rx->g, sender)) {
		if (is_me(m, creator))
			rc = reply(m, io, sender, VEIL_E2E_GROUP_SETUP, creator, gid, NULL, 0);
		else
			rc = request_sync(m, io, creator, gid);
		if (rc != 0)
			return rc;
		return drop(rx, "message from %s, not a member of group %s, dropped", from, gh);
	}
	return 0;
}

static int contains(const uint8_t (*list)[VEIL_ID_LEN], size_t n,
                    const uint8_t id[static VEIL_ID_LEN])
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(list[i], id, VEIL_ID_LEN) == 0)
			return 1;
	return 0;
}

static int rx_setup(struct veil_msgr *m, const uint8_t sender[static VEIL_ID_LEN], uint64_t gid,
                    const uint8_t *inner, size_t len, struct veil_group_rx *rx)
{
	uint8_t(*raw)[VEIL_ID_LEN] = malloc(VEIL_GROUP_MAX_MEMBERS * VEIL_ID_LEN);
	uint8_t(*mem)[VEIL_ID_LEN] = malloc(VEIL_GROUP_MAX_MEMBERS * VEIL_ID_LEN);
	size_t n = 0, k = 0;
	char from[VEIL_ID_LEN + 1];
	int rc, found;
	veil_id_str(from, sender);
	if (raw == NULL || mem == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	if (veil_e2e_group_setup_decode(inner, len, raw, VEIL_GROUP_MAX_MEMBERS, &n) != 0) {
		rc = malformed(rx, "malformed group setup from %s", from);
		goto out;
	}
	/* Duplicates and the creator go; the order of first appearance stays. */
	for (size_t i = 0; i < n; i++)
		if (memcmp(raw[i], sender, VEIL_ID_LEN) != 0 &&
		    !contains((const uint8_t(*)[VEIL_ID_LEN])mem, k, raw[i]))
			memcpy(mem[k++], raw[i], VEIL_ID_LEN);
	if (k > VEIL_GROUP_MAX_MEMBERS - 1) {
		rc = malformed(rx, "group setup from %s with more than %d members", from,
		               VEIL_GROUP_MAX_MEMBERS);
		goto out;
	}
	int includes_me = contains((const uint8_t(*)[VEIL_ID_LEN])mem, k, m->prof.id);
	rc = veil_profile_group_get(&m->prof, sender, gid, &rx->g);
	if (rc != 0 && rc != VEIL_ENOTFOUND) {
		rc = veil_msgr_fail(m, rc, "cannot read the groups: %s", veil_strerror(rc));
		goto out;
	}
	found = rc == 0;
	if (found && rx->g.left && k == 0) {
		rc = VEIL_GROUP_RX_IGNORE;
		goto out;
	}
	if (found && !rx->g.left && includes_me && rx->g.n_members == k) {
		int same = 1;
		for (size_t i = 0; i < k && same; i++)
			same = contains((const uint8_t(*)[VEIL_ID_LEN])rx->g.members,
			                rx->g.n_members, mem[i]);
		if (same) {
			rc = VEIL_GROUP_RX_IGNORE;
			goto out;
		}
	}
	if (!includes_me) {
		if (!found) {
			rc = VEIL_GROUP_RX_IGNORE;
			goto out;
		}
		/* Removed (or disbanded): keep the last member list, mark the group left. */
		rx->g.left = 1;
	} else {
		if (!found) {
			memset(&rx->g, 0, sizeof rx->g);
			memcpy(rx->g.creator, sender, VEIL_ID_LEN);
			rx->g.gid = gid;
			rx->g.created_ms = veil_now_ms();
		}
		rx->g.left = 0;
		memcpy(rx->g.members, mem, k * VEIL_ID_LEN);
		rx->g.n_members = k;
	}
	if ((rc = veil_profile_group_put(&m->prof, &rx->g)) != 0) {
		rc = veil_msgr_fail(m, rc, "cannot store a group: %s", veil_strerror(rc));
		goto out;
	}
	rc = VEIL_GROUP_RX_ACCEPT;
out:
	free(raw);
	free(mem);
	return rc;
}

int veil_group_receive(struct veil_msgr *m, const struct veil_group_io *io,
                       const uint8_t sender[static VEIL_ID_LEN], uint8_t type, const uint8_t *body,
                       size_t len, struct veil_msgr_event *ev, struct veil_group_rx *rx)
{
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	const uint8_t *inner;
	size_t inner_len;
	char from[VEIL_ID_LEN + 1], gh[17];
	int rc, kind = veil_e2e_group_container(type);

	memset(rx, 0, sizeof *rx);
	m->errtext[0] = 0;
	veil_id_str(from, sender);
	if (kind == VEIL_GROUP_CONTAINER_CREATOR) {
		/* Sent by the creator: the group is the sender's. */
		memcpy(creator, sender, VEIL_ID_LEN);
		if (veil_e2e_group_creator_unwrap(body, len, &gid, &inner, &inner_len) != 0)
			return malformed(rx, "malformed group message from %s", from);
	} else if (kind == VEIL_GROUP_CONTAINER_MEMBER) {
		if (veil_e2e_group_member_unwrap(body, len, creator, &gid, &inner, &inner_len) != 0)
			return malformed(rx, "malformed group message from %s", from);
	} else {
		return drop(rx, "message from %s is not a group message", from);
	}
	gid_hex(gh, gid);

	switch (type) {
	case VEIL_E2E_GROUP_SETUP:
		rc = rx_setup(m, sender, gid, inner, inner_len, rx);
		if (rc == VEIL_GROUP_RX_ACCEPT) {
			ev->group_members = (const uint8_t(*)[VEIL_ID_LEN])rx->g.members;
			ev->group_n_members = rx->g.n_members;
			ev->group_removed = rx->g.left;
		}
		break;
	case VEIL_E2E_GROUP_NAME: {
		const char *name;
		size_t nlen;
		if (veil_e2e_group_name_decode(inner, inner_len, &name, &nlen) != 0)
			return malformed(rx, "malformed group name from %s", from);
		if ((rc = common_steps(m, io, sender, creator, gid, rx)) != 0)
			return rc;
		if (strlen(rx->g.name) == nlen && memcmp(rx->g.name, name, nlen) == 0)
			return VEIL_GROUP_RX_IGNORE;
		memcpy(rx->g.name, name, nlen);
		rx->g.name[nlen] = 0;
		if ((rc = veil_profile_group_put(&m->prof, &rx->g)) != 0)
			return veil_msgr_fail(m, rc, "cannot store a group: %s", veil_strerror(rc));
		rc = VEIL_GROUP_RX_ACCEPT;
		break;
	}
	case VEIL_E2E_GROUP_LEAVE:
		if (memcmp(sender, creator, VEIL_ID_LEN) == 0)
			return drop(rx, "group leave from the creator %s dropped", from);
		rc = veil_profile_group_get(&m->prof, creator, gid, &rx->g);
		if (rc != 0 && rc != VEIL_ENOTFOUND)
			return veil_msgr_fail(m, rc, "cannot read the groups: %s",
			                      veil_strerror(rc));
		if (rc == VEIL_ENOTFOUND || rx->g.left) {
			if (!is_me(m, creator) && (rc = request_sync(m, io, creator, gid)) != 0)
				return rc;
			return VEIL_GROUP_RX_IGNORE;
		}
		if (!veil_group_has(&rx->g, sender))
			return VEIL_GROUP_RX_IGNORE;
		for (size_t i = 0; i < rx->g.n_members; i++) {
			if (memcmp(rx->g.members[i], sender, VEIL_ID_LEN) == 0) {
				memmove(rx->g.members[i], rx->g.members[i + 1],
				        (rx->g.n_members - i - 1) * VEIL_ID_LEN);
				rx->g.n_members--;
				break;
			}
		}
		if ((rc = veil_profile_group_put(&m->prof, &rx->g)) != 0)
			return veil_msgr_fail(m, rc, "cannot store a group: %s", veil_strerror(rc));
		rc = VEIL_GROUP_RX_ACCEPT;
		break;
	case VEIL_E2E_GROUP_SYNC_REQUEST:
		rc = veil_profile_group_get(&m->prof, creator, gid, &rx->g);
		if (rc == VEIL_ENOTFOUND || (rc == 0 && !is_me(m, creator)))
			return VEIL_GROUP_RX_IGNORE;
		if (rc != 0)
			return veil_msgr_fail(m, rc, "cannot read the groups: %s",
			                      veil_strerror(rc));
		if (veil_group_resync_recent(&m->prof, creator, gid, sender))
			return drop(rx, "group sync request from %s for %s within the hour ignored",
			            from, gh);
		if (rx->g.left || !veil_group_has(&rx->g, sender))
			rc = reply(m, io, sender, VEIL_E2E_GROUP_SETUP, creator, gid, NULL, 0);
		else
			rc = resync(m, io, &rx->g, sender);
		if (rc != 0)
			return rc;
		rc = VEIL_GROUP_RX_ACCEPT;
		break;
	case VEIL_E2E_GROUP_DELIVERY_RECEIPT: {
		uint64_t ids[VEIL_E2E_RECEIPT_MAX_IDS_IN];
		size_t n = 0;
		uint8_t status;
		if (veil_e2e_receipt_decode(inner, inner_len, &status, ids, VEIL_ARRAY_LEN(ids),
		                            &n) != 0)
			return malformed(rx, "malformed group receipt from %s", from);
		if ((rc = common_steps(m, io, sender, creator, gid, rx)) != 0)
			return rc;
		/* In groups only reactions count; received/read receipts are not sent there. */
		if (status != VEIL_RECEIPT_ACK && status != VEIL_RECEIPT_DECLINE)
			return drop(rx, "group receipt from %s with status %u ignored", from,
			            (unsigned)status);
		ev->status = status;
		ev->n_ids = n;
		memcpy(ev->ids, ids, (n < VEIL_MSGR_EV_MAX_IDS ? n : VEIL_MSGR_EV_MAX_IDS) * 8);
		/* Our own group messages are logged with our ID as the peer. */
		for (size_t i = 0; i < n; i++)
			if (veil_profile_log_set_status(&m->prof, m->prof.id, ids[i], status) != 0)
				continue;
		rc = VEIL_GROUP_RX_ACCEPT;
		break;
	}
	case VEIL_E2E_GROUP_TEXT:
		if (veil_e2e_text_decode(inner, inner_len, &ev->text, &ev->text_len) != 0)
			return malformed(rx, "malformed group text from %s", from);
		if ((rc = common_steps(m, io, sender, creator, gid, rx)) != 0)
			return rc;
		rc = VEIL_GROUP_RX_ACCEPT;
		break;
	default:
		if ((rc = common_steps(m, io, sender, creator, gid, rx)) != 0)
			return rc;
		if (kind == VEIL_GROUP_CONTAINER_CREATOR)
			return drop(rx,
			            "group message of type 0x%02x from %s not supported, dropped",
			            type, from);
		rc = VEIL_GROUP_RX_ACCEPT;
		break;
	}
	if (rc == VEIL_GROUP_RX_ACCEPT) {
		ev->group = 1;
		memcpy(ev->group_creator, creator, VEIL_ID_LEN);
		ev->group_id = gid;
		ev->group_name = rx->g.name;
		ev->body = inner;
		ev->body_len = inner_len;
	}
	return rc;
}
