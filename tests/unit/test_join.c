/* The device join messages (lib/md/join.c). */
#include <sodium.h>

#include "t.h"
#include "veil/crypto.h"
#include "veil/err.h"
#include "veil/join.h"
#include "proto/md-d2d-join.pb-c.h"

/* A small EssentialData: two contacts, one group of three, a few nonces. */
static int make_essential(struct veil_join_essential *e)
{
	memset(e, 0, sizeof *e);
	memcpy(e->identity, "ECHOECHO", 9);
	veil_random(e->ck, 32);
	veil_random(e->device_cookie, 16);
	memcpy(e->server_group, "a", 2);
	veil_random(e->dgk, 32);
	memcpy(e->nickname, "Ech\xc3\xb6", 6);
	e->contacts = calloc(2, sizeof *e->contacts);
	e->groups = calloc(1, sizeof *e->groups);
	e->csp_nonces = calloc(3, sizeof *e->csp_nonces);
	e->d2d_nonces = calloc(1, sizeof *e->d2d_nonces);
	if (e->contacts == NULL || e->groups == NULL || e->csp_nonces == NULL ||
	    e->d2d_nonces == NULL)
		return -1;
	e->n_contacts = 2;
	e->n_groups = 1;
	e->n_csp_nonces = 3;
	e->n_d2d_nonces = 1;
	struct veil_join_contact *c = &e->contacts[0];
	memcpy(c->identity, "ABCD1234", 9);
	veil_random(c->public_key, 32);
	c->created_at = 1700000000000ull;
	memcpy(c->first_name, "Ann", 4);
	memcpy(c->nickname, "annie", 6);
	c->verification_level = 2;
	c->feature_mask = 0x7f;
	c->has_last_update = 1;
	c->last_update_at = 1700000001000ull;
	c = &e->contacts[1];
	memcpy(c->identity, "*GATEWAY", 9);
	veil_random(c->public_key, 32);
	c->verification_level = 1;
	c->identity_type = 1;
	c->acquaintance_level = 1;
	struct veil_join_group *g = &e->groups[0];
	memcpy(g->creator, "ECHOECHO", 9);
	g->group_id = 0x0102030405060708ull;
	memcpy(g->name, "Team", 5);
	g->created_at = 5;
	g->last_update_at = 6;
	g->members = calloc(3, sizeof *g->members);
	if (g->members == NULL)
		return -1;
	g->n_members = 3;
	memcpy(g->members[0], "ABCD1234", 9);
	memcpy(g->members[1], "*GATEWAY", 9);
	memcpy(g->members[2], "ZZZZZZZZ", 9);
	for (size_t i = 0; i < 3; i++)
		veil_random(e->csp_nonces[i], 32);
	veil_random(e->d2d_nonces[0], 32);
	return 0;
}

static void test_join_essential_roundtrip(void)
{
	struct veil_join_essential e;
	struct veil_join_ed m;
	struct veil_buf b;
	CHECK(make_essential(&e) == 0);
	veil_buf_init_secret(&b, VEIL_JOIN_MAX_MESSAGE);
	CHECK_RC(veil_join_essential_encode(&b, &e), 0);
	CHECK_RC(veil_join_ed_parse(&m, b.p, b.len), 0);
	CHECK(m.type == VEIL_JOIN_ESSENTIAL);
	const struct veil_join_essential *g = &m.essential;
	CHECK(strcmp(g->identity, "ECHOECHO") == 0 && strcmp(g->server_group, "a") == 0);
	CHECK(strcmp(g->nickname, e.nickname) == 0);
	CHECK(sodium_memcmp(g->ck, e.ck, 32) == 0 && sodium_memcmp(g->dgk, e.dgk, 32) == 0);
	CHECK_MEM(g->device_cookie, e.device_cookie, 16);
	CHECK(g->n_contacts == 2 && g->n_groups == 1 && g->n_csp_nonces == 3 &&
	      g->n_d2d_nonces == 1);
	for (size_t i = 0; i < 2; i++) {
		const struct veil_join_contact *x = &g->contacts[i], *y = &e.contacts[i];
		CHECK(strcmp(x->identity, y->identity) == 0);
		CHECK_MEM(x->public_key, y->public_key, 32);
		CHECK(x->created_at == y->created_at &&
		      x->verification_level == y->verification_level);
		CHECK(x->identity_type == y->identity_type &&
		      x->acquaintance_level == y->acquaintance_level);
		CHECK(x->feature_mask == y->feature_mask &&
		      x->has_last_update == y->has_last_update &&
		      x->last_update_at == y->last_update_at);
		CHECK(strcmp(x->first_name, y->first_name) == 0 &&
		      strcmp(x->last_name, y->last_name) == 0 &&
		      strcmp(x->nickname, y->nickname) == 0);
	}
	const struct veil_join_group *gg = &g->groups[0];
	CHECK(strcmp(gg->creator, "ECHOECHO") == 0 && gg->group_id == 0x0102030405060708ull);
	CHECK(strcmp(gg->name, "Team") == 0 && gg->created_at == 5 && gg->last_update_at == 6);
	CHECK(gg->n_members == 3 && strcmp(gg->members[2], "ZZZZZZZZ") == 0);
	CHECK_MEM(g->csp_nonces[2], e.csp_nonces[2], 32);
	CHECK_MEM(g->d2d_nonces[0], e.d2d_nonces[0], 32);
	veil_join_ed_release(&m);
	CHECK(m.essential.contacts == NULL);

	/* Every strict prefix is refused (protobuf truncation or a missing field). */
	for (size_t n = 0; n < b.len; n += 7)
		CHECK(veil_join_ed_parse(&m, b.p, n) < 0);
	veil_buf_release(&b);
	veil_join_essential_release(&e);
}

static void test_join_small_messages(void)
{
	struct veil_buf b;
	struct veil_join_ed m;
	uint8_t id[16], data[1000];
	int type;
	veil_buf_init(&b, 1 << 20);
	CHECK_RC(veil_join_begin_encode(&b), 0);
	CHECK_RC(veil_join_ed_parse(&m, b.p, b.len), 0);
	CHECK(m.type == VEIL_JOIN_BEGIN);
	veil_join_ed_release(&m);

	veil_buf_reset(&b);
	veil_random(id, sizeof id);
	veil_random(data, sizeof data);
	CHECK_RC(veil_join_blob_encode(&b, id, data, sizeof data), 0);
	CHECK_RC(veil_join_ed_parse(&m, b.p, b.len), 0);
	CHECK(m.type == VEIL_JOIN_BLOB && m.blob_len == sizeof data);
	CHECK_MEM(m.blob_id, id, 16);
	CHECK_MEM(m.blob, data, sizeof data);
	veil_join_ed_release(&m);

	veil_buf_reset(&b);
	CHECK_RC(veil_join_registered_encode(&b), 0);
	CHECK_RC(veil_join_nd_parse(&type, b.p, b.len), 0);
	CHECK(type == VEIL_JOIN_REGISTERED);
	CHECK(b.len == 2 && b.p[0] == 0x0a && b.p[1] == 0x00); /* field 1, empty */
	CHECK_RC(veil_join_nd_parse(&type, (const uint8_t *)"", 0), VEIL_EPROTO);
	CHECK_RC(veil_join_ed_parse(&m, (const uint8_t *)"", 0), VEIL_EPROTO);
	veil_buf_release(&b);
}

static void test_join_limits(void)
{
	struct veil_join_essential e;
	struct veil_buf b;
	veil_buf_init_secret(&b, VEIL_JOIN_MAX_MESSAGE);
	CHECK(make_essential(&e) == 0);
	memcpy(e.contacts[1].identity, "abcd1234", 9);
	CHECK_RC(veil_join_essential_encode(&b, &e), VEIL_EINVAL);
	memcpy(e.contacts[1].identity, "ABCD123", 8);
	CHECK_RC(veil_join_essential_encode(&b, &e), VEIL_EINVAL);
	memcpy(e.contacts[1].identity, "ABCD1235", 9);
	memcpy(e.contacts[1].first_name, "\xc3", 2); /* not UTF-8 */
	CHECK_RC(veil_join_essential_encode(&b, &e), VEIL_EPROTO);
	e.contacts[1].first_name[0] = '\0';
	size_t n = e.n_contacts;
	e.n_contacts = VEIL_JOIN_MAX_CONTACTS + 1;
	CHECK_RC(veil_join_essential_encode(&b, &e), VEIL_ELIMIT);
	e.n_contacts = n;
	e.groups[0].n_members = VEIL_JOIN_MAX_MEMBERS + 1;
	CHECK_RC(veil_join_essential_encode(&b, &e), VEIL_ELIMIT);
	e.groups[0].n_members = 3;
	CHECK(b.len == 0);
	CHECK_RC(veil_join_essential_encode(&b, &e), 0);
	veil_buf_release(&b);
	veil_join_essential_release(&e);

	/* Parsing: a 31-byte ck, a 2-byte hashed nonce, an oversize name. */
	uint8_t ck[31] = {0}, dgk[32] = {0}, cookie[16] = {0}, nonce[2] = {0};
	D2dJoin__EdToNd m;
	D2dJoin__EssentialData ed;
	D2dJoin__EssentialData__IdentityData id;
	D2dJoin__EssentialData__DeviceGroupData dg;
	ProtobufCBinaryData nb = {sizeof nonce, nonce};
	d2d_join__ed_to_nd__init(&m);
	d2d_join__essential_data__init(&ed);
	d2d_join__essential_data__identity_data__init(&id);
	d2d_join__essential_data__device_group_data__init(&dg);
	id.identity = "ECHOECHO";
	id.has_ck = id.has_csp_device_cookie = dg.has_dgk = 1;
	id.ck.data = ck;
	id.ck.len = sizeof ck;
	id.csp_device_cookie.data = cookie;
	id.csp_device_cookie.len = sizeof cookie;
	id.csp_server_group = "a";
	dg.dgk.data = dgk;
	dg.dgk.len = sizeof dgk;
	ed.identity_data = &id;
	ed.device_group_data = &dg;
	m.content_case = D2D_JOIN__ED_TO_ND__CONTENT_ESSENTIAL_DATA;
	m.essential_data = &ed;
	uint8_t buf[2048];
	struct veil_join_ed out;
	size_t len = d2d_join__ed_to_nd__pack(&m, buf);
	CHECK_RC(veil_join_ed_parse(&out, buf, len), VEIL_EPROTO);
	uint8_t ck32[32] = {0};
	id.ck.data = ck32;
	id.ck.len = 32;
	len = d2d_join__ed_to_nd__pack(&m, buf);
	CHECK_RC(veil_join_ed_parse(&out, buf, len), 0);
	veil_join_ed_release(&out);
	ed.n_csp_hashed_nonces = 1;
	ed.csp_hashed_nonces = &nb;
	len = d2d_join__ed_to_nd__pack(&m, buf);
	CHECK_RC(veil_join_ed_parse(&out, buf, len), VEIL_EPROTO);
	ed.n_csp_hashed_nonces = 0;
	D2dSync__UserProfile up;
	char longname[VEIL_JOIN_NAME_MAX + 2];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	d2d_sync__user_profile__init(&up);
	up.nickname = longname;
	ed.user_profile = &up;
	len = d2d_join__ed_to_nd__pack(&m, buf);
	CHECK_RC(veil_join_ed_parse(&out, buf, len), VEIL_ELIMIT);
	CHECK(out.type == 0 && out.essential.contacts == NULL);
}

static void test_join_hash_nonce(void)
{
	/* HMAC-SHA256(key "ECHOECHO", 24 zero bytes), computed with Python's hmac. */
	uint8_t n[24] = {0}, h[32], want[32];
	veil_join_hash_nonce(h, "ECHOECHO", n, sizeof n);
	t_hex(want, 32, "ace492bbb90e6e2cf975d25c1d10359315b141decba6663bde332f02ef9cf242");
	CHECK_MEM(h, want, 32);
	for (int i = 0; i < 24; i++)
		n[i] = (uint8_t)i;
	veil_join_hash_nonce(h, "ECHOECHO", n, sizeof n);
	t_hex(want, 32, "b6e30b6b79d591a6d1e0df00010dd9abc43591c8d701fc125b51f8648f0c98f0");
	CHECK_MEM(h, want, 32);
}

T_MAIN_BEGIN
RUN(test_join_essential_roundtrip);
RUN(test_join_small_messages);
RUN(test_join_limits);
RUN(test_join_hash_nonce);
T_MAIN_END
