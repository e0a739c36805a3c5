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
#include "vault_int.h"

/*
 * A group is one sealed record (vault_int.h), keyed by creator and group ID:
 * creator (8), gid (u64le), left (u8), created (u64le), the name's length
 * (u16le) and name, the member count (u16le) and the members in the order
 * of the creator's setup. The resync marks are records of their own (the
 * specification's "recently resynced": on a member's side for the creator,
 * on the creator's side for each member), holding the time (u64le).
 */
static int exec(struct veil_profile *p, const char *sql)
{
	return sqlite3_exec(p->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

static void group_key(uint8_t k[VEIL_ID_LEN + 8], const uint8_t creator[static VEIL_ID_LEN],
                      uint64_t gid)
{
	memcpy(k, creator, VEIL_ID_LEN);
	veil_store_u64le(k + VEIL_ID_LEN, gid);
}

static int group_decode(const uint8_t *v, size_t n, struct veil_group *g)
{
	struct veil_reader r;
	uint8_t left;
	uint16_t nl, nm;
	const uint8_t *name;
	memset(g, 0, sizeof *g);
	veil_reader_init(&r, v, n);
	if (veil_read_bytes(&r, g->creator, VEIL_ID_LEN) != 0 ||
	    veil_read_u64le(&r, &g->gid) != 0 || veil_read_u8(&r, &left) != 0 ||
	    veil_read_u64le(&r, &g->created_ms) != 0 || veil_read_u16le(&r, &nl) != 0 ||
	    nl > VEIL_GROUP_NAME_MAX || veil_read_view(&r, &name, nl) != 0 ||
	    veil_read_u16le(&r, &nm) != 0 || nm > VEIL_ARRAY_LEN(g->members) ||
	    veil_reader_left(&r) != (size_t)nm * VEIL_ID_LEN)
		return VEIL_ECORRUPT;
	g->left = left != 0;
	memcpy(g->name, name, nl);
	g->name[nl] = 0;
	for (size_t i = 0; i < nm; i++)
		if (veil_read_bytes(&r, g->members[i], VEIL_ID_LEN) != 0)
			return VEIL_ECORRUPT;
	g->n_members = nm;
	return veil_id_valid(g->creator) ? 0 : VEIL_ECORRUPT;
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

int veil_profile_group_get(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, struct veil_group *out)
{
	uint8_t k[VEIL_ID_LEN + 8];
	struct veil_buf v;
	group_key(k, creator, gid);
	veil_buf_init_secret(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	int rc = veil_rec_get(p, VEIL_REC_GROUP, k, sizeof k, &v);
	if (rc == 0 && (rc = group_decode(v.p, v.len, out)) == 0 &&
	    (memcmp(out->creator, creator, VEIL_ID_LEN) != 0 || out->gid != gid))
		rc = VEIL_ECORRUPT;
	veil_buf_release(&v);
	return rc;
}

int veil_profile_group_put(struct veil_profile *p, const struct veil_group *g)
{
	struct veil_group old;
	uint8_t k[VEIL_ID_LEN + 8];
	struct veil_buf v;
	size_t nl = strlen(g->name), nm = 0;
	int rc;
	if (!veil_id_valid(g->creator) || g->n_members > VEIL_ARRAY_LEN(g->members) ||
	    nl > VEIL_GROUP_NAME_MAX)
		return VEIL_EINVAL;
	group_key(k, g->creator, g->gid);
	/* The creation time stays the first one stored. */
	uint64_t created = g->created_ms ? g->created_ms : veil_now_ms();
	if ((rc = veil_profile_group_get(p, g->creator, g->gid, &old)) == 0)
		created = old.created_ms;
	else if (rc != VEIL_ENOTFOUND)
		return rc;
	veil_buf_init_secret(&v, VEIL_REC_MAX);
	if ((rc = veil_buf_append(&v, g->creator, VEIL_ID_LEN)) != 0 ||
	    (rc = veil_buf_append_u64le(&v, g->gid)) != 0 ||
	    (rc = veil_buf_append_u8(&v, g->left ? 1 : 0)) != 0 ||
	    (rc = veil_buf_append_u64le(&v, created)) != 0 ||
	    (rc = veil_buf_append_u16le(&v, (uint16_t)nl)) != 0 ||
	    (rc = veil_buf_append(&v, g->name, nl)) != 0)
		goto out;
	/* Members once each (a setup that lists one twice keeps the first). */
	size_t at = v.len;
	if ((rc = veil_buf_append_u16le(&v, 0)) != 0)
		goto out;
	for (size_t i = 0; i < g->n_members; i++) {
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = memcmp(g->members[i], g->members[j], VEIL_ID_LEN) == 0;
		if (dup)
			continue;
		if ((rc = veil_buf_append(&v, g->members[i], VEIL_ID_LEN)) != 0)
			goto out;
		nm++;
	}
	veil_store_u16le(v.p + at, (uint16_t)nm);
	rc = veil_rec_put(p, VEIL_REC_GROUP, k, sizeof k, v.p, v.len);
out:
	veil_buf_release(&v);
	return rc;
}

struct resync_del {
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	uint8_t (*peers)[VEIL_ID_LEN];
	size_t n, cap;
};

static int resync_collect(const uint8_t *v, size_t n, void *ctx)
{
	struct resync_del *d = ctx;
	if (n != 2 * VEIL_ID_LEN + 16)
		return VEIL_ECORRUPT;
	if (memcmp(v, d->creator, VEIL_ID_LEN) != 0 || veil_load_u64le(v + VEIL_ID_LEN) != d->gid)
		return 0;
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 16;
		uint8_t(*np)[VEIL_ID_LEN] = realloc(d->peers, cap * VEIL_ID_LEN);
		if (np == NULL)
			return VEIL_ENOMEM;
		d->peers = np;
		d->cap = cap;
	}
	memcpy(d->peers[d->n++], v + VEIL_ID_LEN + 8, VEIL_ID_LEN);
	return 0;
}

int veil_profile_group_delete(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid)
{
	uint8_t k[VEIL_ID_LEN + 8 + VEIL_ID_LEN];
	struct resync_del d;
	int rc;
	if (p->db == NULL)
		return VEIL_EINVAL;
	memset(&d, 0, sizeof d);
	memcpy(d.creator, creator, VEIL_ID_LEN);
	d.gid = gid;
	group_key(k, creator, gid);
	if ((rc = exec(p, "BEGIN IMMEDIATE")) != 0)
		return rc;
	if ((rc = veil_rec_del(p, VEIL_REC_GROUP, k, VEIL_ID_LEN + 8)) != 0 ||
	    (rc = veil_rec_scan(p, VEIL_REC_RESYNC, resync_collect, &d)) != 0)
		goto fail;
	for (size_t i = 0; i < d.n; i++) {
		memcpy(k + VEIL_ID_LEN + 8, d.peers[i], VEIL_ID_LEN);
		if ((rc = veil_rec_del(p, VEIL_REC_RESYNC, k, sizeof k)) != 0 &&
		    rc != VEIL_ENOTFOUND)
			goto fail;
	}
	free(d.peers);
	return exec(p, "COMMIT");
fail:
	free(d.peers);
	(void)exec(p, "ROLLBACK");
	return rc;
}

struct group_ref {
	uint64_t gid;
	uint8_t creator[VEIL_ID_LEN];
};

struct group_refs {
	struct group_ref *v;
	size_t n, cap;
	struct veil_group *tmp;
};

static int group_collect(const uint8_t *v, size_t n, void *ctx)
{
	struct group_refs *r = ctx;
	int rc = group_decode(v, n, r->tmp);
	if (rc != 0)
		return rc;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct group_ref *nv = realloc(r->v, cap * sizeof *nv);
		if (nv == NULL)
			return VEIL_ENOMEM;
		r->v = nv;
		r->cap = cap;
	}
	r->v[r->n].gid = r->tmp->gid;
	memcpy(r->v[r->n].creator, r->tmp->creator, VEIL_ID_LEN);
	r->n++;
	return 0;
}

static int group_ref_cmp(const void *a, const void *b)
{
	const struct group_ref *x = a, *y = b;
	/* The order of the former SQL: gid as a signed 64-bit integer, then creator. */
	int64_t gx = (int64_t)x->gid, gy = (int64_t)y->gid;
	if (gx != gy)
		return gx < gy ? -1 : 1;
	return memcmp(x->creator, y->creator, VEIL_ID_LEN);
}

int veil_profile_group_list(struct veil_profile *p,
                            int (*fn)(const struct veil_group *g, void *ctx), void *ctx)
{
	struct group_refs r;
	struct veil_group *g = malloc(sizeof *g);
	int rc;
	if (g == NULL)
		return VEIL_ENOMEM;
	memset(&r, 0, sizeof r);
	r.tmp = g;
	if ((rc = veil_rec_scan(p, VEIL_REC_GROUP, group_collect, &r)) != 0)
		goto out;
	if (r.n > 1)
		qsort(r.v, r.n, sizeof *r.v, group_ref_cmp);
	for (size_t i = 0; i < r.n; i++) {
		rc = veil_profile_group_get(p, r.v[i].creator, r.v[i].gid, g);
		if (rc == VEIL_ENOTFOUND)
			continue;
		if (rc != 0 || (rc = fn(g, ctx)) != 0)
			goto out;
	}
out:
	free(r.v);
	free(g);
	return rc;
}

/* --- recently resynced marks --- */

int veil_group_resync_recent(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                             uint64_t gid, const uint8_t peer[static VEIL_ID_LEN])
{
	uint8_t k[2 * VEIL_ID_LEN + 8];
	struct veil_buf v;
	int recent = 0;
	group_key(k, creator, gid);
	memcpy(k + VEIL_ID_LEN + 8, peer, VEIL_ID_LEN);
	veil_buf_init(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	if (veil_rec_get(p, VEIL_REC_RESYNC, k, sizeof k, &v) == 0 && v.len == sizeof k + 8) {
		uint64_t at = veil_load_u64le(v.p + sizeof k), now = veil_now_ms();
		recent = at <= now && now - at < VEIL_GROUP_RESYNC_MS;
	}
	veil_buf_release(&v);
	return recent;
}

int veil_group_resync_mark(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, const uint8_t peer[static VEIL_ID_LEN])
{
	/* The record repeats its key, so that a group's marks can be found to delete them. */
	uint8_t rec[2 * VEIL_ID_LEN + 16];
	group_key(rec, creator, gid);
	memcpy(rec + VEIL_ID_LEN + 8, peer, VEIL_ID_LEN);
	veil_store_u64le(rec + 2 * VEIL_ID_LEN + 8, veil_now_ms());
	return veil_rec_put(p, VEIL_REC_RESYNC, rec, 2 * VEIL_ID_LEN + 8, rec, sizeof rec);
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
