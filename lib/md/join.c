/*
 * The device join messages (EdToNd: Begin, BlobData, EssentialData; NdToEd:
 * Registered) between a C struct and protobuf. See include/veil/join.h.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/err.h"
#include "veil/join.h"
#include "proto/md-d2d-join.pb-c.h"

static int id_ok(const char *s)
{
	if (s == NULL || strlen(s) != VEIL_JOIN_ID_LEN)
		return 0;
	for (size_t i = 0; i < VEIL_JOIN_ID_LEN; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || c == '*'))
			return 0;
	}
	return 1;
}

/* NULL or "" is fine; otherwise valid UTF-8 of at most VEIL_JOIN_NAME_MAX bytes. */
static int name_check(const char *s)
{
	if (s == NULL)
		return 0;
	size_t n = strlen(s);
	if (n > VEIL_JOIN_NAME_MAX)
		return VEIL_ELIMIT;
	return veil_utf8_valid((const uint8_t *)s, n) ? 0 : VEIL_EPROTO;
}

static void name_copy(char dst[static VEIL_JOIN_NAME_MAX + 1], const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;
	if (n > 0)
		memcpy(dst, s, n);
	dst[n] = '\0';
}

/* "" is sent as absent, as proto3 would. */
static char *opt_str(const char *s)
{
	return s[0] != '\0' ? (char *)s : NULL;
}

void veil_join_hash_nonce(uint8_t out[static VEIL_JOIN_NONCE_HASH_LEN],
                          const char identity[static VEIL_JOIN_ID_LEN], const uint8_t *nonce,
                          size_t n)
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, (const uint8_t *)identity, VEIL_JOIN_ID_LEN);
	crypto_auth_hmacsha256_update(&st, nonce, n);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

void veil_join_essential_release(struct veil_join_essential *e)
{
	if (e->groups != NULL)
		for (size_t i = 0; i < e->n_groups; i++)
			free(e->groups[i].members);
	free(e->contacts);
	free(e->groups);
	free(e->csp_nonces);
	free(e->d2d_nonces);
	sodium_memzero(e, sizeof *e);
}

static int pack_ed(struct veil_buf *out, const D2dJoin__EdToNd *m)
{
	size_t n = d2d_join__ed_to_nd__get_packed_size(m);
	if (n > VEIL_JOIN_MAX_MESSAGE)
		return VEIL_ELIMIT;
	int rc = veil_buf_reserve(out, n);
	if (rc != 0)
		return rc;
	out->len += d2d_join__ed_to_nd__pack(m, out->p + out->len);
	return 0;
}

int veil_join_begin_encode(struct veil_buf *out)
{
	D2dJoin__EdToNd m;
	D2dJoin__Begin b;
	d2d_join__ed_to_nd__init(&m);
	d2d_join__begin__init(&b);
	m.content_case = D2D_JOIN__ED_TO_ND__CONTENT_BEGIN;
	m.begin = &b;
	return pack_ed(out, &m);
}

int veil_join_blob_encode(struct veil_buf *out, const uint8_t id[static VEIL_JOIN_BLOB_ID_LEN],
                          const uint8_t *data, size_t n)
{
	D2dJoin__EdToNd m;
	Common__BlobData b;
	if (n > VEIL_JOIN_BLOB_MAX)
		return VEIL_ELIMIT;
	d2d_join__ed_to_nd__init(&m);
	common__blob_data__init(&b);
	b.has_id = b.has_data = 1;
	b.id.data = (uint8_t *)id;
	b.id.len = VEIL_JOIN_BLOB_ID_LEN;
	b.data.data = (uint8_t *)(n > 0 ? data : (const uint8_t *)"");
	b.data.len = n;
	m.content_case = D2D_JOIN__ED_TO_ND__CONTENT_BLOB_DATA;
	m.blob_data = &b;
	return pack_ed(out, &m);
}

int veil_join_registered_encode(struct veil_buf *out)
{
	D2dJoin__NdToEd m;
	D2dJoin__Registered r;
	d2d_join__nd_to_ed__init(&m);
	d2d_join__registered__init(&r);
	m.content_case = D2D_JOIN__ND_TO_ED__CONTENT_REGISTERED;
	m.registered = &r;
	size_t n = d2d_join__nd_to_ed__get_packed_size(&m);
	int rc = veil_buf_reserve(out, n);
	if (rc != 0)
		return rc;
	out->len += d2d_join__nd_to_ed__pack(&m, out->p + out->len);
	return 0;
}

static int essential_check(const struct veil_join_essential *e)
{
	int rc;
	if (!id_ok(e->identity) || strlen(e->server_group) == 0 ||
	    strlen(e->server_group) > VEIL_JOIN_SERVER_GROUP_MAX)
		return VEIL_EINVAL;
	if (e->n_contacts > VEIL_JOIN_MAX_CONTACTS || e->n_groups > VEIL_JOIN_MAX_GROUPS ||
	    e->n_csp_nonces > VEIL_JOIN_MAX_NONCES || e->n_d2d_nonces > VEIL_JOIN_MAX_NONCES)
		return VEIL_ELIMIT;
	if ((rc = name_check(e->nickname)) != 0)
		return rc;
	for (size_t i = 0; i < e->n_contacts; i++) {
		const struct veil_join_contact *c = &e->contacts[i];
		if (!id_ok(c->identity))
			return VEIL_EINVAL;
		if ((rc = name_check(c->first_name)) != 0 || (rc = name_check(c->last_name)) != 0 ||
		    (rc = name_check(c->nickname)) != 0)
			return rc;
	}
	for (size_t i = 0; i < e->n_groups; i++) {
		const struct veil_join_group *g = &e->groups[i];
		if (!id_ok(g->creator))
			return VEIL_EINVAL;
		if ((rc = name_check(g->name)) != 0)
			return rc;
		if (g->n_members > VEIL_JOIN_MAX_MEMBERS)
			return VEIL_ELIMIT;
		for (size_t j = 0; j < g->n_members; j++)
			if (!id_ok(g->members[j]))
				return VEIL_EINVAL;
	}
	return 0;
}

/* The protobuf side of one contact; the strings point into c. */
static void contact_to_pb(D2dSync__Contact *pc, const struct veil_join_contact *c)
{
	d2d_sync__contact__init(pc);
	pc->identity = (char *)c->identity;
	pc->has_public_key = 1;
	pc->public_key.data = (uint8_t *)c->public_key;
	pc->public_key.len = 32;
	pc->has_created_at = 1;
	pc->created_at = c->created_at;
	pc->first_name = opt_str(c->first_name);
	pc->last_name = opt_str(c->last_name);
	pc->nickname = opt_str(c->nickname);
	pc->has_verification_level = pc->has_identity_type = pc->has_acquaintance_level = 1;
	pc->verification_level = (D2dSync__Contact__VerificationLevel)c->verification_level;
	pc->identity_type = (D2dSync__Contact__IdentityType)c->identity_type;
	pc->acquaintance_level = (D2dSync__Contact__AcquaintanceLevel)c->acquaintance_level;
	pc->has_activity_state = pc->has_sync_state = pc->has_feature_mask = 1;
	pc->activity_state = (D2dSync__Contact__ActivityState)c->activity_state;
	pc->sync_state = (D2dSync__Contact__SyncState)c->sync_state;
	pc->feature_mask = c->feature_mask;
}

/* Heap storage for the protobuf tree of one EssentialData. */
struct ess_pb {
	D2dJoin__EssentialData__AugmentedContact *ac, **acp;
	D2dSync__Contact *pc;
	D2dJoin__EssentialData__AugmentedGroup *ag, **agp;
	D2dSync__Group *pg;
	Common__GroupIdentity *gi;
	Common__Identities *mi;
	char **members; /* all groups' member pointers, one after the other */
	ProtobufCBinaryData *csp, *d2d;
};

static void ess_pb_free(struct ess_pb *t)
{
	free(t->ac);
	free(t->acp);
	free(t->pc);
	free(t->ag);
	free(t->agp);
	free(t->pg);
	free(t->gi);
	free(t->mi);
	free(t->members);
	free(t->csp);
	free(t->d2d);
}

static void *alloc_n(size_t n, size_t size)
{
	return calloc(n > 0 ? n : 1, size);
}

int veil_join_essential_encode(struct veil_buf *out, const struct veil_join_essential *e)
{
	D2dJoin__EdToNd m;
	D2dJoin__EssentialData ed;
	D2dJoin__EssentialData__IdentityData id;
	D2dJoin__EssentialData__DeviceGroupData dg;
	D2dSync__UserProfile up;
	D2dSync__Settings st;
	struct ess_pb t = {0};
	size_t nmem = 0;
	int rc = essential_check(e);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < e->n_groups; i++)
		nmem += e->groups[i].n_members;
	size_t nc = e->n_contacts, ng = e->n_groups;
	t.ac = alloc_n(nc, sizeof *t.ac);
	t.acp = alloc_n(nc, sizeof *t.acp);
	t.pc = alloc_n(nc, sizeof *t.pc);
	t.ag = alloc_n(ng, sizeof *t.ag);
	t.agp = alloc_n(ng, sizeof *t.agp);
	t.pg = alloc_n(ng, sizeof *t.pg);
	t.gi = alloc_n(ng, sizeof *t.gi);
	t.mi = alloc_n(ng, sizeof *t.mi);
	t.members = alloc_n(nmem, sizeof *t.members);
	t.csp = alloc_n(e->n_csp_nonces, sizeof *t.csp);
	t.d2d = alloc_n(e->n_d2d_nonces, sizeof *t.d2d);
	if (t.ac == NULL || t.acp == NULL || t.pc == NULL || t.ag == NULL || t.agp == NULL ||
	    t.pg == NULL || t.gi == NULL || t.mi == NULL || t.members == NULL || t.csp == NULL ||
	    t.d2d == NULL) {
		ess_pb_free(&t);
		return VEIL_ENOMEM;
	}

	d2d_join__ed_to_nd__init(&m);
	d2d_join__essential_data__init(&ed);
	d2d_join__essential_data__identity_data__init(&id);
	d2d_join__essential_data__device_group_data__init(&dg);
	d2d_sync__user_profile__init(&up);
	d2d_sync__settings__init(&st);
	id.identity = (char *)e->identity;
	id.has_ck = id.has_csp_device_cookie = 1;
	id.ck.data = (uint8_t *)e->ck;
	id.ck.len = 32;
	id.csp_device_cookie.data = (uint8_t *)e->device_cookie;
	id.csp_device_cookie.len = VEIL_JOIN_COOKIE_LEN;
	id.csp_server_group = (char *)e->server_group;
	dg.has_dgk = 1;
	dg.dgk.data = (uint8_t *)e->dgk;
	dg.dgk.len = 32;
	up.nickname = opt_str(e->nickname);
	ed.identity_data = &id;
	ed.device_group_data = &dg;
	ed.user_profile = &up;
	ed.settings = &st;

	for (size_t i = 0; i < nc; i++) {
		const struct veil_join_contact *c = &e->contacts[i];
		d2d_join__essential_data__augmented_contact__init(&t.ac[i]);
		contact_to_pb(&t.pc[i], c);
		t.ac[i].contact = &t.pc[i];
		t.ac[i].has_last_update_at = c->has_last_update != 0;
		t.ac[i].last_update_at = c->last_update_at;
		t.acp[i] = &t.ac[i];
	}
	ed.n_contacts = nc;
	ed.contacts = t.acp;

	size_t mo = 0;
	for (size_t i = 0; i < ng; i++) {
		const struct veil_join_group *g = &e->groups[i];
		d2d_join__essential_data__augmented_group__init(&t.ag[i]);
		d2d_sync__group__init(&t.pg[i]);
		common__group_identity__init(&t.gi[i]);
		common__identities__init(&t.mi[i]);
		t.gi[i].has_group_id = 1;
		t.gi[i].group_id = g->group_id;
		t.gi[i].creator_identity = (char *)g->creator;
		for (size_t j = 0; j < g->n_members; j++)
			t.members[mo + j] = (char *)g->members[j];
		t.mi[i].n_identities = g->n_members;
		t.mi[i].identities = t.members + mo;
		mo += g->n_members;
		t.pg[i].group_identity = &t.gi[i];
		t.pg[i].name = opt_str(g->name);
		t.pg[i].has_created_at = t.pg[i].has_user_state = 1;
		t.pg[i].created_at = g->created_at;
		t.pg[i].user_state = (D2dSync__Group__UserState)g->user_state;
		t.pg[i].member_identities = &t.mi[i];
		t.ag[i].group = &t.pg[i];
		t.ag[i].has_last_update_at = 1;
		t.ag[i].last_update_at = g->last_update_at;
		t.agp[i] = &t.ag[i];
	}
	ed.n_groups = ng;
	ed.groups = t.agp;

	for (size_t i = 0; i < e->n_csp_nonces; i++) {
		t.csp[i].data = (uint8_t *)e->csp_nonces[i];
		t.csp[i].len = VEIL_JOIN_NONCE_HASH_LEN;
	}
	for (size_t i = 0; i < e->n_d2d_nonces; i++) {
		t.d2d[i].data = (uint8_t *)e->d2d_nonces[i];
		t.d2d[i].len = VEIL_JOIN_NONCE_HASH_LEN;
	}
	ed.n_csp_hashed_nonces = e->n_csp_nonces;
	ed.csp_hashed_nonces = t.csp;
	ed.n_d2d_hashed_nonces = e->n_d2d_nonces;
	ed.d2d_hashed_nonces = t.d2d;

	m.content_case = D2D_JOIN__ED_TO_ND__CONTENT_ESSENTIAL_DATA;
	m.essential_data = &ed;
	rc = pack_ed(out, &m);
	ess_pb_free(&t);
	return rc;
}

/* --- parsing --- */

static int bytes_exact(ProtobufCBinaryData b, int has, size_t want)
{
	return has && b.len == want;
}

static int contact_from_pb(struct veil_join_contact *c,
                           const D2dJoin__EssentialData__AugmentedContact *ac)
{
	const D2dSync__Contact *pc = ac->contact;
	int rc;
	if (pc == NULL || !id_ok(pc->identity) ||
	    !bytes_exact(pc->public_key, pc->has_public_key, 32))
		return VEIL_EPROTO;
	if ((rc = name_check(pc->first_name)) != 0 || (rc = name_check(pc->last_name)) != 0 ||
	    (rc = name_check(pc->nickname)) != 0)
		return rc;
	memcpy(c->identity, pc->identity, VEIL_JOIN_ID_LEN + 1);
	memcpy(c->public_key, pc->public_key.data, 32);
	c->created_at = pc->created_at;
	name_copy(c->first_name, pc->first_name);
	name_copy(c->last_name, pc->last_name);
	name_copy(c->nickname, pc->nickname);
	c->verification_level = (int)pc->verification_level;
	c->identity_type = (int)pc->identity_type;
	c->acquaintance_level = (int)pc->acquaintance_level;
	c->activity_state = (int)pc->activity_state;
	c->sync_state = (int)pc->sync_state;
	c->feature_mask = pc->feature_mask;
	c->has_last_update = ac->has_last_update_at != 0;
	c->last_update_at = ac->last_update_at;
	return 0;
}

static int group_from_pb(struct veil_join_group *g,
                         const D2dJoin__EssentialData__AugmentedGroup *ag)
{
	const D2dSync__Group *pg = ag->group;
	int rc;
	if (pg == NULL || pg->group_identity == NULL || !pg->group_identity->has_group_id ||
	    !id_ok(pg->group_identity->creator_identity))
		return VEIL_EPROTO;
	if ((rc = name_check(pg->name)) != 0)
		return rc;
	size_t nm = pg->member_identities != NULL ? pg->member_identities->n_identities : 0;
	if (nm > VEIL_JOIN_MAX_MEMBERS)
		return VEIL_ELIMIT;
	for (size_t j = 0; j < nm; j++)
		if (!id_ok(pg->member_identities->identities[j]))
			return VEIL_EPROTO;
	memcpy(g->creator, pg->group_identity->creator_identity, VEIL_JOIN_ID_LEN + 1);
	g->group_id = pg->group_identity->group_id;
	name_copy(g->name, pg->name);
	g->created_at = pg->created_at;
	g->user_state = (int)pg->user_state;
	g->last_update_at = ag->last_update_at;
	if (nm > 0) {
		g->members = calloc(nm, sizeof *g->members);
		if (g->members == NULL)
			return VEIL_ENOMEM;
		for (size_t j = 0; j < nm; j++)
			memcpy(g->members[j], pg->member_identities->identities[j],
			       VEIL_JOIN_ID_LEN + 1);
	}
	g->n_members = nm;
	return 0;
}

static int nonces_from_pb(uint8_t (**out)[VEIL_JOIN_NONCE_HASH_LEN], size_t *n_out,
                          const ProtobufCBinaryData *in, size_t n)
{
	if (n > VEIL_JOIN_MAX_NONCES)
		return VEIL_ELIMIT;
	for (size_t i = 0; i < n; i++)
		if (in[i].len != VEIL_JOIN_NONCE_HASH_LEN)
			return VEIL_EPROTO;
	if (n == 0)
		return 0;
	*out = calloc(n, sizeof **out);
	if (*out == NULL)
		return VEIL_ENOMEM;
	for (size_t i = 0; i < n; i++)
		memcpy((*out)[i], in[i].data, VEIL_JOIN_NONCE_HASH_LEN);
	*n_out = n;
	return 0;
}

static int essential_from_pb(struct veil_join_essential *e, const D2dJoin__EssentialData *ed)
{
	const D2dJoin__EssentialData__IdentityData *id = ed->identity_data;
	const D2dJoin__EssentialData__DeviceGroupData *dg = ed->device_group_data;
	int rc;
	if (id == NULL || dg == NULL || !id_ok(id->identity) ||
	    !bytes_exact(id->ck, id->has_ck, 32) ||
	    !bytes_exact(id->csp_device_cookie, id->has_csp_device_cookie, VEIL_JOIN_COOKIE_LEN) ||
	    id->csp_server_group == NULL || id->csp_server_group[0] == '\0' ||
	    !bytes_exact(dg->dgk, dg->has_dgk, 32))
		return VEIL_EPROTO;
	if (strlen(id->csp_server_group) > VEIL_JOIN_SERVER_GROUP_MAX)
		return VEIL_ELIMIT;
	if (ed->n_contacts > VEIL_JOIN_MAX_CONTACTS || ed->n_groups > VEIL_JOIN_MAX_GROUPS)
		return VEIL_ELIMIT;
	if (ed->user_profile != NULL && (rc = name_check(ed->user_profile->nickname)) != 0)
		return rc;
	memcpy(e->identity, id->identity, VEIL_JOIN_ID_LEN + 1);
	memcpy(e->ck, id->ck.data, 32);
	memcpy(e->device_cookie, id->csp_device_cookie.data, VEIL_JOIN_COOKIE_LEN);
	memcpy(e->server_group, id->csp_server_group, strlen(id->csp_server_group) + 1);
	memcpy(e->dgk, dg->dgk.data, 32);
	name_copy(e->nickname, ed->user_profile != NULL ? ed->user_profile->nickname : NULL);
	if (ed->n_contacts > 0) {
		e->contacts = calloc(ed->n_contacts, sizeof *e->contacts);
		if (e->contacts == NULL)
			return VEIL_ENOMEM;
		for (size_t i = 0; i < ed->n_contacts; i++) {
			if ((rc = contact_from_pb(&e->contacts[i], ed->contacts[i])) != 0)
				return rc;
			e->n_contacts = i + 1;
		}
	}
	if (ed->n_groups > 0) {
		e->groups = calloc(ed->n_groups, sizeof *e->groups);
		if (e->groups == NULL)
			return VEIL_ENOMEM;
		for (size_t i = 0; i < ed->n_groups; i++) {
			/* Counted first, so that release frees a half-filled group's members. */
			e->n_groups = i + 1;
			if ((rc = group_from_pb(&e->groups[i], ed->groups[i])) != 0)
				return rc;
		}
	}
	if ((rc = nonces_from_pb(&e->csp_nonces, &e->n_csp_nonces, ed->csp_hashed_nonces,
	                         ed->n_csp_hashed_nonces)) != 0)
		return rc;
	return nonces_from_pb(&e->d2d_nonces, &e->n_d2d_nonces, ed->d2d_hashed_nonces,
	                      ed->n_d2d_hashed_nonces);
}

/* Wipes the secrets an unpacked EssentialData holds in protobuf-c's memory. */
static void essential_pb_wipe(D2dJoin__EssentialData *ed)
{
	if (ed->identity_data != NULL && ed->identity_data->ck.data != NULL)
		sodium_memzero(ed->identity_data->ck.data, ed->identity_data->ck.len);
	if (ed->device_group_data != NULL && ed->device_group_data->dgk.data != NULL)
		sodium_memzero(ed->device_group_data->dgk.data, ed->device_group_data->dgk.len);
}

void veil_join_ed_release(struct veil_join_ed *m)
{
	if (m->blob != NULL)
		sodium_memzero(m->blob, m->blob_len);
	free(m->blob);
	veil_join_essential_release(&m->essential);
	memset(m, 0, sizeof *m);
}

int veil_join_ed_parse(struct veil_join_ed *m, const uint8_t *p, size_t n)
{
	int rc = VEIL_EPROTO;
	memset(m, 0, sizeof *m);
	if (n > VEIL_JOIN_MAX_MESSAGE)
		return VEIL_ELIMIT;
	D2dJoin__EdToNd *e = d2d_join__ed_to_nd__unpack(NULL, n, p);
	if (e == NULL)
		return VEIL_EPROTO;
	switch (e->content_case) {
	case D2D_JOIN__ED_TO_ND__CONTENT_BEGIN:
		m->type = VEIL_JOIN_BEGIN;
		rc = 0;
		break;
	case D2D_JOIN__ED_TO_ND__CONTENT_BLOB_DATA: {
		const Common__BlobData *b = e->blob_data;
		if (!bytes_exact(b->id, b->has_id, VEIL_JOIN_BLOB_ID_LEN))
			break;
		size_t bl = b->has_data ? b->data.len : 0;
		if (bl > VEIL_JOIN_BLOB_MAX) {
			rc = VEIL_ELIMIT;
			break;
		}
		m->type = VEIL_JOIN_BLOB;
		memcpy(m->blob_id, b->id.data, VEIL_JOIN_BLOB_ID_LEN);
		m->blob = malloc(bl > 0 ? bl : 1);
		if (m->blob == NULL) {
			rc = VEIL_ENOMEM;
			break;
		}
		if (bl > 0)
			memcpy(m->blob, b->data.data, bl);
		m->blob_len = bl;
		rc = 0;
		break;
	}
	case D2D_JOIN__ED_TO_ND__CONTENT_ESSENTIAL_DATA:
		m->type = VEIL_JOIN_ESSENTIAL;
		rc = essential_from_pb(&m->essential, e->essential_data);
		essential_pb_wipe(e->essential_data);
		break;
	default: break;
	}
	d2d_join__ed_to_nd__free_unpacked(e, NULL);
	if (rc != 0)
		veil_join_ed_release(m);
	return rc;
}

int veil_join_nd_parse(int *type, const uint8_t *p, size_t n)
{
	*type = 0;
	if (n > 1024)
		return VEIL_ELIMIT;
	D2dJoin__NdToEd *m = d2d_join__nd_to_ed__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	int rc = VEIL_EPROTO;
	if (m->content_case == D2D_JOIN__ND_TO_ED__CONTENT_REGISTERED) {
		*type = VEIL_JOIN_REGISTERED;
		rc = 0;
	}
	d2d_join__nd_to_ed__free_unpacked(m, NULL);
	return rc;
}
