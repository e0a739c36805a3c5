/*
 * Groups: the container and body codecs, group state in the profile, and
 * the receive steps (membership rules, sync requests, empty setups for
 * non-members) driven without a network through a recording reply hook.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/client.h"
#include "veil/e2e.h"

#include "../../lib/client/group_int.h"
#include "t.h"

static const uint8_t CR[VEIL_ID_LEN] = "CRTR0001";
static const uint8_t ME[VEIL_ID_LEN] = "MEMB0001";
static const uint8_t M2[VEIL_ID_LEN] = "MEMB0002";
static const uint8_t M3[VEIL_ID_LEN] = "MEMB0003";
static const uint8_t OUT[VEIL_ID_LEN] = "OUTS1DER";

static void test_containers(void)
{
	struct veil_buf b;
	uint8_t c[VEIL_ID_LEN];
	uint64_t gid;
	const uint8_t *in;
	size_t n;
	veil_buf_init(&b, 4096);
	CHECK_RC(veil_e2e_group_member_wrap(&b, CR, 0x0102030405060708u, (const uint8_t *)"hi", 2),
	         0);
	CHECK(b.len == 18);
	CHECK_MEM(b.p, "CRTR0001\x08\x07\x06\x05\x04\x03\x02\x01hi", 18);
	CHECK_RC(veil_e2e_group_member_unwrap(b.p, b.len, c, &gid, &in, &n), 0);
	CHECK_MEM(c, CR, VEIL_ID_LEN);
	CHECK(gid == 0x0102030405060708u && n == 2 && memcmp(in, "hi", 2) == 0);
	CHECK_RC(veil_e2e_group_member_unwrap(b.p, 15, c, &gid, &in, &n), VEIL_ETRUNC);
	b.p[0] = 'a'; /* lower case: not an ID */
	CHECK_RC(veil_e2e_group_member_unwrap(b.p, b.len, c, &gid, &in, &n), VEIL_EPROTO);
	CHECK_RC(veil_e2e_group_member_wrap(&b, (const uint8_t *)"bad!0000", 1, NULL, 0),
	         VEIL_EINVAL);
	veil_buf_reset(&b);
	CHECK_RC(veil_e2e_group_creator_wrap(&b, 7, NULL, 0), 0);
	CHECK(b.len == 8);
	CHECK_RC(veil_e2e_group_creator_unwrap(b.p, b.len, &gid, &in, &n), 0);
	CHECK(gid == 7 && n == 0);
	CHECK_RC(veil_e2e_group_creator_unwrap(b.p, 7, &gid, &in, &n), VEIL_ETRUNC);
	uint8_t big[VEIL_E2E_BODY_MAX];
	memset(big, 'x', sizeof big);
	CHECK_RC(veil_e2e_group_creator_wrap(&b, 7, big, sizeof big), VEIL_ELIMIT);
	CHECK(veil_e2e_group_container(VEIL_E2E_GROUP_SETUP) == VEIL_GROUP_CONTAINER_CREATOR);
	CHECK(veil_e2e_group_container(VEIL_E2E_GROUP_NAME) == VEIL_GROUP_CONTAINER_CREATOR);
	CHECK(veil_e2e_group_container(VEIL_E2E_GROUP_TEXT) == VEIL_GROUP_CONTAINER_MEMBER);
	CHECK(veil_e2e_group_container(VEIL_E2E_GROUP_FILE) == VEIL_GROUP_CONTAINER_MEMBER);
	CHECK(veil_e2e_group_container(VEIL_E2E_GROUP_DELIVERY_RECEIPT) ==
	      VEIL_GROUP_CONTAINER_MEMBER);
	CHECK(veil_e2e_group_container(VEIL_E2E_TEXT) == 0);
	veil_buf_release(&b);
}

static void test_setup_and_name(void)
{
	static uint8_t ids[VEIL_GROUP_MAX_MEMBERS + 1][VEIL_ID_LEN];
	static uint8_t out[VEIL_GROUP_MAX_MEMBERS][VEIL_ID_LEN];
	struct veil_buf b;
	size_t n;
	veil_buf_init(&b, 8192);
	for (size_t i = 0; i < VEIL_ARRAY_LEN(ids); i++) {
		char s[VEIL_ID_LEN + 1];
		snprintf(s, sizeof s, "M%07zu", i);
		memcpy(ids[i], s, VEIL_ID_LEN);
	}
	CHECK_RC(veil_e2e_group_setup_encode(&b, (const uint8_t(*)[VEIL_ID_LEN])ids, 255), 0);
	CHECK(b.len == 255 * 8);
	CHECK_RC(veil_e2e_group_setup_decode(b.p, b.len, out, VEIL_ARRAY_LEN(out), &n), 0);
	CHECK(n == 255 && memcmp(out[254], ids[254], 8) == 0);
	CHECK_RC(veil_e2e_group_setup_decode(b.p, b.len - 3, out, VEIL_ARRAY_LEN(out), &n),
	         VEIL_ETRUNC);
	CHECK_RC(veil_e2e_group_setup_decode(b.p, b.len, out, 10, &n), VEIL_ELIMIT);
	veil_buf_reset(&b);
	/* 256 IDs are too many to send (the creator counts) ... */
	CHECK_RC(veil_e2e_group_setup_encode(&b, (const uint8_t(*)[VEIL_ID_LEN])ids, 256),
	         VEIL_ELIMIT);
	/* ... but accepted on receipt (a sender may list the creator); 257 are not. */
	uint8_t raw[257 * 8];
	memcpy(raw, ids, sizeof raw);
	CHECK_RC(veil_e2e_group_setup_decode(raw, 256 * 8, out, VEIL_ARRAY_LEN(out), &n), 0);
	CHECK_RC(veil_e2e_group_setup_decode(raw, 257 * 8, out, VEIL_ARRAY_LEN(out), &n),
	         VEIL_ELIMIT);
	raw[8] = '#';
	CHECK_RC(veil_e2e_group_setup_decode(raw, 16, out, VEIL_ARRAY_LEN(out), &n), VEIL_EPROTO);
	CHECK_RC(veil_e2e_group_setup_decode(raw, 0, out, VEIL_ARRAY_LEN(out), &n), 0);
	CHECK(n == 0);

	const char *name;
	size_t nl;
	veil_buf_reset(&b);
	CHECK_RC(veil_e2e_group_name_encode(&b, "Grüezi", strlen("Grüezi")), 0);
	CHECK_RC(veil_e2e_group_name_decode(b.p, b.len, &name, &nl), 0);
	CHECK(nl == strlen("Grüezi") && memcmp(name, "Grüezi", nl) == 0);
	CHECK_RC(veil_e2e_group_name_decode(b.p, 0, &name, &nl), 0);
	CHECK(nl == 0);
	CHECK_RC(veil_e2e_group_name_decode((const uint8_t *)"\xff", 1, &name, &nl), VEIL_EPROTO);
	char longname[VEIL_GROUP_NAME_MAX + 2];
	memset(longname, 'a', sizeof longname);
	CHECK_RC(veil_e2e_group_name_encode(&b, longname, VEIL_GROUP_NAME_MAX + 1), VEIL_ELIMIT);
	CHECK_RC(veil_e2e_group_name_decode((const uint8_t *)longname, VEIL_GROUP_NAME_MAX + 1,
	                                    &name, &nl),
	         VEIL_ELIMIT);
	veil_buf_release(&b);
}

/* --- a profile to work on --- */

static char home_base[64];
static int home_n;

static int open_msgr(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN])
{
	char home[128];
	if (home_base[0] == 0) {
		snprintf(home_base, sizeof home_base, "/tmp/veil-test-group.XXXXXX");
		if (mkdtemp(home_base) == NULL)
			return -1;
	}
	snprintf(home, sizeof home, "%s/h%d", home_base, home_n++);
	memset(m, 0, sizeof *m);
	struct veil_profile *p = &m->prof;
	if (veil_profile_init(p, home) != 0)
		return -1;
	veil_keypair(p->pk, p->sk);
	memcpy(p->id, id, VEIL_ID_LEN);
	snprintf(p->chat_host, sizeof p->chat_host, "127.0.0.1");
	p->chat_port = 5222;
	return veil_profile_create(p);
}

static struct veil_group grp; /* large: keep it off the stack */

static void test_profile_groups(void)
{
	struct veil_msgr m;
	CHECK_RC(open_msgr(&m, ME), 0);
	memset(&grp, 0, sizeof grp);
	memcpy(grp.creator, CR, VEIL_ID_LEN);
	grp.gid = 0xfedcba9876543210u; /* above INT64_MAX: stored as a negative integer */
	snprintf(grp.name, sizeof grp.name, "Team");
	memcpy(grp.members[0], M3, 8);
	memcpy(grp.members[1], ME, 8);
	grp.n_members = 2;
	CHECK_RC(veil_profile_group_put(&m.prof, &grp), 0);
	static struct veil_group g2;
	CHECK_RC(veil_profile_group_get(&m.prof, CR, grp.gid, &g2), 0);
	CHECK(g2.gid == grp.gid && strcmp(g2.name, "Team") == 0 && g2.n_members == 2 && !g2.left);
	CHECK_MEM(g2.members[0], M3, 8); /* the setup's order is kept */
	CHECK(veil_group_has(&g2, CR) && veil_group_has(&g2, ME) && !veil_group_has(&g2, M2));
	CHECK_RC(veil_profile_group_get(&m.prof, M2, grp.gid, &g2), VEIL_ENOTFOUND);
	grp.n_members = 1;
	grp.left = 1;
	CHECK_RC(veil_profile_group_put(&m.prof, &grp), 0);
	CHECK_RC(veil_profile_group_get(&m.prof, CR, grp.gid, &g2), 0);
	CHECK(g2.n_members == 1 && g2.left);
	CHECK_RC(veil_profile_group_delete(&m.prof, CR, grp.gid), 0);
	CHECK_RC(veil_profile_group_delete(&m.prof, CR, grp.gid), VEIL_ENOTFOUND);
	CHECK_RC(veil_profile_group_get(&m.prof, CR, grp.gid, &g2), VEIL_ENOTFOUND);
	veil_msgr_close(&m);
}

/* --- receive steps --- */

struct sent {
	uint8_t to[VEIL_ID_LEN];
	uint8_t type;
	uint8_t body[2048];
	size_t len;
};

struct rec {
	struct sent s[8];
	size_t n;
};

static int rec_send(void *ctx, const uint8_t to[static VEIL_ID_LEN], uint8_t type, uint8_t flags,
                    const uint8_t *body, size_t len)
{
	struct rec *r = ctx;
	(void)flags;
	if (r->n >= VEIL_ARRAY_LEN(r->s) || len > sizeof r->s[0].body)
		return VEIL_ELIMIT;
	memcpy(r->s[r->n].to, to, VEIL_ID_LEN);
	r->s[r->n].type = type;
	memcpy(r->s[r->n].body, body, len);
	r->s[r->n].len = len;
	r->n++;
	return 0;
}

static struct veil_group_rx rx;

/* Receives type with inner wrapped in the right container for (creator, gid). */
static int deliver(struct veil_msgr *m, struct rec *r, const uint8_t from[static VEIL_ID_LEN],
                   const uint8_t creator[static VEIL_ID_LEN], uint64_t gid, uint8_t type,
                   const void *inner, size_t len, struct veil_msgr_event *ev)
{
	struct veil_group_io io = {.send = rec_send, .ctx = r};
	/* The event points into the body, so it stays until the next delivery. */
	static struct veil_buf b;
	int rc;
	veil_buf_release(&b);
	veil_buf_init(&b, 8192);
	if (veil_e2e_group_container(type) == VEIL_GROUP_CONTAINER_CREATOR)
		rc = veil_e2e_group_creator_wrap(&b, gid, inner, len);
	else
		rc = veil_e2e_group_member_wrap(&b, creator, gid, inner, len);
	memset(ev, 0, sizeof *ev);
	if (rc == 0)
		rc = veil_group_receive(m, &io, from, type, b.p, b.len, ev, &rx);
	return rc;
}

static void test_receive_as_member(void)
{
	struct veil_msgr m;
	struct veil_msgr_event ev;
	struct rec r = {0};
	const uint64_t G = 42;
	uint8_t setup[3 * 8];
	CHECK_RC(open_msgr(&m, ME), 0);

	/* A message for a group we do not know: dropped, and the creator is asked (once an hour). */
	CHECK_RC(deliver(&m, &r, M2, CR, G, VEIL_E2E_GROUP_TEXT, "hi", 2, &ev), VEIL_GROUP_RX_DROP);
	CHECK(r.n == 1 && r.s[0].type == VEIL_E2E_GROUP_SYNC_REQUEST);
	CHECK_MEM(r.s[0].to, CR, 8);
	CHECK(r.s[0].len == 16 && memcmp(r.s[0].body, CR, 8) == 0 &&
	      veil_load_u64le(r.s[0].body + 8) == G);
	CHECK_RC(deliver(&m, &r, M2, CR, G, VEIL_E2E_GROUP_TEXT, "hi", 2, &ev), VEIL_GROUP_RX_DROP);
	CHECK(r.n == 1);

	/* The creator's setup makes us a member (the creator in the list is dropped). */
	memcpy(setup, ME, 8);
	memcpy(setup + 8, M2, 8);
	memcpy(setup + 16, CR, 8);
	CHECK_RC(deliver(&m, &r, CR, CR, G, VEIL_E2E_GROUP_SETUP, setup, 24, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK(ev.group && ev.group_n_members == 2 && !ev.group_removed && ev.group_id == G);
	CHECK_RC(veil_profile_group_get(&m.prof, CR, G, &grp), 0);
	CHECK(grp.n_members == 2 && veil_group_has(&grp, ME) && veil_group_has(&grp, M2));
	/* The same setup again changes nothing. */
	CHECK_RC(deliver(&m, &r, CR, CR, G, VEIL_E2E_GROUP_SETUP, setup, 16, &ev),
	         VEIL_GROUP_RX_IGNORE);
	/* A setup "from" someone else concerns that one's own group, not this one. */
	CHECK_RC(deliver(&m, &r, M2, M2, G, VEIL_E2E_GROUP_SETUP, setup, 8, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK_RC(veil_profile_group_get(&m.prof, CR, G, &grp), 0);
	CHECK(grp.n_members == 2);

	CHECK_RC(deliver(&m, &r, CR, CR, G, VEIL_E2E_GROUP_NAME, "Team", 4, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK(strcmp(ev.group_name, "Team") == 0);
	CHECK_RC(deliver(&m, &r, CR, CR, G, VEIL_E2E_GROUP_NAME, "Team", 4, &ev),
	         VEIL_GROUP_RX_IGNORE);

	/* Members talk; a non-member is dropped (the creator was asked just now: no request). */
	CHECK_RC(deliver(&m, &r, M2, CR, G, VEIL_E2E_GROUP_TEXT, "hello", 5, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK(ev.text_len == 5 && memcmp(ev.text, "hello", 5) == 0 && ev.body_len == 5);
	CHECK_RC(deliver(&m, &r, OUT, CR, G, VEIL_E2E_GROUP_TEXT, "evil", 4, &ev),
	         VEIL_GROUP_RX_DROP);
	CHECK(strstr(rx.why, "not a member") != NULL && r.n == 1);

	/* Receipts: reactions only. */
	uint8_t rc1[9] = {VEIL_RECEIPT_RECEIVED, 1, 0, 0, 0, 0, 0, 0, 0};
	CHECK_RC(deliver(&m, &r, M2, CR, G, VEIL_E2E_GROUP_DELIVERY_RECEIPT, rc1, 9, &ev),
	         VEIL_GROUP_RX_DROP);
	rc1[0] = VEIL_RECEIPT_ACK;
	CHECK_RC(deliver(&m, &r, M2, CR, G, VEIL_E2E_GROUP_DELIVERY_RECEIPT, rc1, 9, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK(ev.status == VEIL_RECEIPT_ACK && ev.n_ids == 1 && ev.ids[0] == 1);

	/* A leave from the creator is invalid; from a member it removes the member. */
	CHECK_RC(deliver(&m, &r, CR, CR, G, VEIL_E2E_GROUP_LEAVE, NULL, 0, &ev),
	         VEIL_GROUP_RX_DROP);
	CHECK_RC(deliver(&m, &r, M2, CR, G, VEIL_E2E_GROUP_LEAVE, NULL, 0, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK_RC(veil_profile_group_get(&m.prof, CR, G, &grp), 0);
	CHECK(grp.n_members == 1 && !veil_group_has(&grp, M2));

	/* A setup without us removes us; a message then gets a group-leave in reply. */
	memcpy(setup, M3, 8);
	CHECK_RC(deliver(&m, &r, CR, CR, G, VEIL_E2E_GROUP_SETUP, setup, 8, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK(ev.group_removed);
	CHECK_RC(veil_profile_group_get(&m.prof, CR, G, &grp), 0);
	CHECK(grp.left);
	CHECK_RC(deliver(&m, &r, M3, CR, G, VEIL_E2E_GROUP_TEXT, "hi", 2, &ev), VEIL_GROUP_RX_DROP);
	CHECK(r.n == 2 && r.s[1].type == VEIL_E2E_GROUP_LEAVE);
	CHECK_MEM(r.s[1].to, M3, 8);
	/* A sync request is for the creator only. */
	CHECK_RC(deliver(&m, &r, M3, CR, G, VEIL_E2E_GROUP_SYNC_REQUEST, NULL, 0, &ev),
	         VEIL_GROUP_RX_IGNORE);
	CHECK(r.n == 2);
	veil_msgr_close(&m);
}

static void test_receive_as_creator(void)
{
	struct veil_msgr m;
	struct veil_msgr_event ev;
	struct rec r = {0};
	const uint64_t G = 7;
	CHECK_RC(open_msgr(&m, CR), 0);
	memset(&grp, 0, sizeof grp);
	memcpy(grp.creator, CR, 8);
	grp.gid = G;
	snprintf(grp.name, sizeof grp.name, "Club");
	memcpy(grp.members[0], M2, 8);
	memcpy(grp.members[1], M3, 8);
	grp.n_members = 2;
	CHECK_RC(veil_profile_group_put(&m.prof, &grp), 0);

	/* A member that lost its state asks: it gets setup and name, once an hour. */
	CHECK_RC(deliver(&m, &r, M2, CR, G, VEIL_E2E_GROUP_SYNC_REQUEST, NULL, 0, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK(r.n == 2 && r.s[0].type == VEIL_E2E_GROUP_SETUP &&
	      r.s[1].type == VEIL_E2E_GROUP_NAME);
	CHECK(r.s[0].len == 8 + 16 && veil_load_u64le(r.s[0].body) == G);
	CHECK_MEM(r.s[0].body + 8, M2, 8);
	CHECK_MEM(r.s[0].body + 16, M3, 8);
	CHECK(r.s[1].len == 8 + 4 && memcmp(r.s[1].body + 8, "Club", 4) == 0);
	CHECK_RC(deliver(&m, &r, M2, CR, G, VEIL_E2E_GROUP_SYNC_REQUEST, NULL, 0, &ev),
	         VEIL_GROUP_RX_DROP);
	CHECK(r.n == 2);
	/* A non-member's sync request or message gets an empty setup. */
	CHECK_RC(deliver(&m, &r, OUT, CR, G, VEIL_E2E_GROUP_SYNC_REQUEST, NULL, 0, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	CHECK(r.n == 3 && r.s[2].type == VEIL_E2E_GROUP_SETUP && r.s[2].len == 8);
	CHECK_MEM(r.s[2].to, OUT, 8);
	CHECK_RC(deliver(&m, &r, OUT, CR, G, VEIL_E2E_GROUP_TEXT, "x", 1, &ev), VEIL_GROUP_RX_DROP);
	CHECK(r.n == 4 && r.s[3].type == VEIL_E2E_GROUP_SETUP && r.s[3].len == 8);
	/* Messages for groups of ours that do not exist are dropped without reply. */
	CHECK_RC(deliver(&m, &r, M2, CR, G + 1, VEIL_E2E_GROUP_TEXT, "x", 1, &ev),
	         VEIL_GROUP_RX_DROP);
	CHECK(r.n == 4);
	/* Members' messages pass. */
	CHECK_RC(deliver(&m, &r, M3, CR, G, VEIL_E2E_GROUP_TEXT, "ok", 2, &ev),
	         VEIL_GROUP_RX_ACCEPT);
	veil_msgr_close(&m);
}

T_MAIN_BEGIN
RUN(test_containers);
RUN(test_setup_and_name);
RUN(test_profile_groups);
RUN(test_receive_as_member);
RUN(test_receive_as_creator);
T_MAIN_END
