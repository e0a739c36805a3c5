/*
 * The Threema Safe backup JSON of a profile (include/veil/safe.h): built
 * from the profile's accessors (identity, contacts, levels, names, groups),
 * parsed with bounds on everything, and applied to a fresh profile.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "veil/contacts.h"
#include "veil/dir.h"
#include "veil/safe.h"
#include "group_int.h"

/* ---------------------------------------------------------------------- */
/* Export                                                                 */
/* ---------------------------------------------------------------------- */

static json_t *id_json(const uint8_t id[static VEIL_ID_LEN])
{
	char s[VEIL_ID_LEN + 1];
	veil_id_str(s, id);
	return json_stringn(s, VEIL_ID_LEN);
}

static json_t *b64_json(const uint8_t *p, size_t n)
{
	char s[VEIL_B64_LEN(VEIL_KEY_LEN)];
	if (n > VEIL_KEY_LEN || veil_b64_encode(s, sizeof s, p, n) != 0)
		return NULL;
	json_t *j = json_string(s);
	sodium_memzero(s, sizeof s);
	return j;
}

/* json_object_set_new that turns a NULL value into an error. */
static int put(json_t *o, const char *k, json_t *v)
{
	return v != NULL && json_object_set_new(o, k, v) == 0 ? 0 : VEIL_ENOMEM;
}

struct ex_ctx {
	struct veil_profile *p;
	json_t *arr;
	int rc;
};

static int ex_contact(const struct veil_contact *c, void *arg)
{
	struct ex_ctx *x = arg;
	int level = VEIL_LEVEL_RED, rc;
	char src[VEIL_LEVEL_SOURCE_MAX + 1], name[VEIL_PROFILE_NICK_MAX + 1];
	if ((rc = veil_contacts_level_get(x->p, c->id, &level, src)) != 0)
		return rc;
	rc = veil_profile_contact_name(x->p, c->id, name, sizeof name);
	if (rc == VEIL_ENOTFOUND)
		name[0] = 0;
	else if (rc != 0)
		return rc;
	json_t *o = json_object();
	if (o == NULL || json_array_append_new(x->arr, o) != 0)
		return VEIL_ENOMEM;
	/* The specification's levels are 0 (unverified) .. 2 (fully verified). */
	if ((rc = put(o, "identity", id_json(c->id))) != 0 ||
	    (rc = put(o, "publickey", b64_json(c->pk, VEIL_KEY_LEN))) != 0 ||
	    (rc = put(o, "createdAt", json_integer((json_int_t)c->first_seen_ms))) != 0 ||
	    (rc = put(o, "verification", json_integer(level - VEIL_LEVEL_RED))) != 0 ||
	    (rc = put(o, "nickname", json_string(c->nickname))) != 0 ||
	    (rc = put(o, "firstname", json_string(name))) != 0 ||
	    (rc = put(o, "lastname", json_string(""))) != 0 ||
	    (rc = put(o, "hidden", json_false())) != 0)
		return rc;
	return 0;
}

static int ex_group(const struct veil_group *g, void *arg)
{
	struct ex_ctx *x = arg;
	const uint8_t *self = x->p->id;
	int creator = memcmp(g->creator, self, VEIL_ID_LEN) == 0, rc;
	uint8_t gid[8];
	char hex[VEIL_HEX_LEN(8)];
	veil_store_u64le(gid, g->gid);
	if (veil_hex_encode(hex, sizeof hex, gid, sizeof gid) != 0)
		return VEIL_EINVAL;
	json_t *o = json_object(), *mem = json_array();
	if (o == NULL || json_array_append_new(x->arr, o) != 0) {
		json_decref(mem);
		return VEIL_ENOMEM;
	}
	if ((rc = put(o, "members", mem)) != 0)
		return rc;
	/* Every member, the creator included; without us if we left. */
	int deleted = g->left && creator;
	if (!deleted) {
		if (json_array_append_new(mem, id_json(g->creator)) != 0)
			return VEIL_ENOMEM;
		for (size_t i = 0; i < g->n_members; i++) {
			if (g->left && memcmp(g->members[i], self, VEIL_ID_LEN) == 0)
				continue;
			if (json_array_append_new(mem, id_json(g->members[i])) != 0)
				return VEIL_ENOMEM;
		}
	}
	if ((rc = put(o, "id", json_string(hex))) != 0 ||
	    (rc = put(o, "creator", id_json(g->creator))) != 0 ||
	    (rc = put(o, "groupname", json_string(g->name))) != 0 ||
	    (rc = put(o, "createdAt", json_integer((json_int_t)g->created_ms))) != 0 ||
	    (rc = put(o, "deleted", json_boolean(deleted))) != 0)
		return rc;
	return 0;
}

int veil_backup_export(struct veil_profile *p, struct veil_buf *json)
{
	int rc;
	char *text = NULL;
	json_t *root = json_object(), *info = json_object(), *user = json_object();
	json_t *contacts = json_array(), *groups = json_array(), *settings = json_object();

	veil_buf_reset(json);
	if (root == NULL || (rc = put(root, "info", info)) != 0 ||
	    (rc = put(root, "user", user)) != 0 || (rc = put(root, "contacts", contacts)) != 0 ||
	    (rc = put(root, "groups", groups)) != 0 ||
	    (rc = put(root, "settings", settings)) != 0) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if ((rc = put(info, "version", json_integer(1))) != 0 ||
	    (rc = put(info, "device", json_string(VEIL_BACKUP_DEVICE))) != 0 ||
	    (rc = put(user, "privatekey", b64_json(p->sk, VEIL_KEY_LEN))) != 0 ||
	    (rc = put(user, "nickname", json_string(p->nickname))) != 0 ||
	    (rc = put(user, "links", json_array())) != 0 ||
	    (rc = put(settings, "syncContacts", json_false())) != 0 ||
	    (rc = put(settings, "blockedContacts", json_array())) != 0)
		goto out;
	struct ex_ctx x = {.p = p, .arr = contacts};
	if ((rc = veil_profile_contact_list(p, ex_contact, &x)) != 0)
		goto out;
	x.arr = groups;
	if ((rc = veil_profile_group_list(p, ex_group, &x)) != 0)
		goto out;
	text = json_dumps(root, JSON_COMPACT);
	if (text == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	rc = veil_buf_append(json, text, strlen(text));
out:
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	/* jansson's copy of the key string cannot be wiped in place: overwrite it first. */
	json_t *pk = json_object_get(user, "privatekey");
	if (json_is_string(pk))
		(void)json_string_set(pk, "");
	json_decref(root);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Parse                                                                  */
/* ---------------------------------------------------------------------- */

void veil_backup_free(struct veil_backup *b)
{
	if (b == NULL)
		return;
	sodium_free(b->sk);
	free(b->contacts);
	free(b->groups);
	free(b);
}

/* An optional string field of at most max bytes of UTF-8 into out ("" if absent). */
static int opt_str(json_t *o, const char *k, char *out, size_t max)
{
	json_t *v = json_object_get(o, k);
	out[0] = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return VEIL_EPROTO;
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	if (n > max)
		return VEIL_ELIMIT;
	if (!veil_utf8_valid((const uint8_t *)s, n))
		return VEIL_EPROTO;
	memcpy(out, s, n);
	out[n] = 0;
	return 0;
}

static int get_id(json_t *v, uint8_t id[static VEIL_ID_LEN])
{
	if (!json_is_string(v) || json_string_length(v) != VEIL_ID_LEN)
		return VEIL_EPROTO;
	return veil_id_parse(id, json_string_value(v)) == 0 ? 0 : VEIL_EPROTO;
}

static int get_ms(json_t *o, const char *k, uint64_t *out)
{
	json_t *v = json_object_get(o, k);
	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return VEIL_EPROTO;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int parse_contact(json_t *o, struct veil_backup_contact *c)
{
	int rc;
	if (!json_is_object(o) || (rc = get_id(json_object_get(o, "identity"), c->id)) != 0)
		return VEIL_EPROTO;
	json_t *pk = json_object_get(o, "publickey");
	if (pk != NULL && !json_is_null(pk)) {
		if (!json_is_string(pk) ||
		    veil_b64_decode(c->pk, VEIL_KEY_LEN, json_string_value(pk),
		                    json_string_length(pk)) != 0)
			return VEIL_EPROTO;
		c->has_pk = 1;
	}
	json_t *lv = json_object_get(o, "verification");
	if (!json_is_integer(lv))
		return VEIL_EPROTO;
	json_int_t l = json_integer_value(lv);
	/* Unknown levels (the schema allows others) count as unverified. */
	c->level = l >= 0 && l <= 2 ? (int)l + VEIL_LEVEL_RED : VEIL_LEVEL_RED;
	if ((rc = get_ms(o, "createdAt", &c->created_ms)) != 0 ||
	    (rc = opt_str(o, "nickname", c->nickname, VEIL_PROFILE_NICK_MAX)) != 0)
		return rc;
	char first[VEIL_PROFILE_NICK_MAX + 1], last[VEIL_PROFILE_NICK_MAX + 1];
	if ((rc = opt_str(o, "firstname", first, VEIL_PROFILE_NICK_MAX)) != 0 ||
	    (rc = opt_str(o, "lastname", last, VEIL_PROFILE_NICK_MAX)) != 0)
		return rc;
	/* The local name is "first last", or the first name alone if both do not fit. */
	size_t fl = strlen(first), ll = strlen(last);
	if (fl > 0 && ll > 0 && fl + 1 + ll <= VEIL_PROFILE_NICK_MAX) {
		memcpy(c->name, first, fl);
		c->name[fl] = ' ';
		memcpy(c->name + fl + 1, last, ll + 1);
	} else {
		memcpy(c->name, fl > 0 ? first : last, (fl > 0 ? fl : ll) + 1);
	}
	return 0;
}

static int parse_group(json_t *o, struct veil_backup_group *bg)
{
	struct veil_group *g = &bg->g;
	int rc;
	uint8_t gid[8];
	memset(bg, 0, sizeof *bg);
	if (!json_is_object(o) || (rc = get_id(json_object_get(o, "creator"), g->creator)) != 0)
		return VEIL_EPROTO;
	json_t *id = json_object_get(o, "id"), *mem = json_object_get(o, "members");
	json_t *del = json_object_get(o, "deleted");
	if (!json_is_string(id) ||
	    veil_hex_decode(gid, sizeof gid, json_string_value(id), json_string_length(id)) != 0 ||
	    !json_is_array(mem) || !json_is_boolean(del))
		return VEIL_EPROTO;
	g->gid = veil_load_u64le(gid);
	bg->deleted = json_is_true(del);
	if ((rc = opt_str(o, "groupname", g->name, VEIL_GROUP_NAME_MAX)) != 0 ||
	    (rc = get_ms(o, "createdAt", &g->created_ms)) != 0)
		return rc;
	if (json_array_size(mem) > VEIL_GROUP_MAX_MEMBERS)
		return VEIL_ELIMIT;
	size_t i;
	json_t *v;
	json_array_foreach(mem, i, v)
	{
		uint8_t m[VEIL_ID_LEN];
		if ((rc = get_id(v, m)) != 0)
			return rc;
		if (memcmp(m, g->creator, VEIL_ID_LEN) == 0) {
			bg->creator_listed = 1;
			continue;
		}
		int dup = 0;
		for (size_t k = 0; k < g->n_members && !dup; k++)
			dup = memcmp(g->members[k], m, VEIL_ID_LEN) == 0;
		if (!dup && g->n_members < VEIL_GROUP_MAX_MEMBERS - 1)
			memcpy(g->members[g->n_members++], m, VEIL_ID_LEN);
	}
	return 0;
}

int veil_backup_parse(const uint8_t *json, size_t len, struct veil_backup **out)
{
	json_t *root = NULL, *user = NULL, *sk = NULL;
	struct veil_backup *b = NULL;
	int rc = VEIL_EPROTO;
	size_t i;
	json_t *v;

	*out = NULL;
	if (len > VEIL_SAFE_JSON_MAX)
		return VEIL_ELIMIT;
	if (veil_json_depth_ok(json, len, VEIL_BACKUP_JSON_DEPTH) != 0)
		return VEIL_ELIMIT;
	root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root))
		goto out;
	json_t *info = json_object_get(root, "info");
	json_t *ver = json_object_get(info, "version");
	user = json_object_get(root, "user");
	if (!json_is_object(info) || !json_is_integer(ver) || json_integer_value(ver) != 1 ||
	    !json_is_object(user))
		goto out;
	b = calloc(1, sizeof *b);
	if (b == NULL || (b->sk = sodium_malloc(VEIL_KEY_LEN)) == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	sk = json_object_get(user, "privatekey");
	if (!json_is_string(sk) || veil_b64_decode(b->sk, VEIL_KEY_LEN, json_string_value(sk),
	                                           json_string_length(sk)) != 0)
		goto out;
	if ((rc = opt_str(user, "nickname", b->nickname, VEIL_PROFILE_NICK_MAX)) != 0)
		goto out;
	json_t *cs = json_object_get(root, "contacts"), *gs = json_object_get(root, "groups");
	rc = VEIL_EPROTO;
	if ((cs != NULL && !json_is_array(cs)) || (gs != NULL && !json_is_array(gs)))
		goto out;
	if (json_array_size(cs) > VEIL_BACKUP_MAX_CONTACTS ||
	    json_array_size(gs) > VEIL_BACKUP_MAX_GROUPS) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	if (json_array_size(cs) > 0 &&
	    (b->contacts = calloc(json_array_size(cs), sizeof *b->contacts)) == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	json_array_foreach(cs, i, v)
	{
		if ((rc = parse_contact(v, &b->contacts[b->n_contacts])) != 0)
			goto out;
		b->n_contacts++;
	}
	if (json_array_size(gs) > 0 &&
	    (b->groups = calloc(json_array_size(gs), sizeof *b->groups)) == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	json_array_foreach(gs, i, v)
	{
		if ((rc = parse_group(v, &b->groups[b->n_groups])) != 0)
			goto out;
		b->n_groups++;
	}
	rc = 0;
out:
	/* jansson's copy of the key cannot be wiped in place: overwrite it first. */
	if (json_is_string(sk))
		(void)json_string_set(sk, "");
	json_decref(root);
	if (rc != 0)
		veil_backup_free(b);
	else
		*out = b;
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Apply and restore                                                      */
/* ---------------------------------------------------------------------- */

/* The group as this profile keeps it (include/veil/client.h), for self. */
static void settle_group(const struct veil_backup_group *bg, const uint8_t self[static VEIL_ID_LEN],
                         struct veil_group *g)
{
	*g = bg->g;
	int creator = memcmp(g->creator, self, VEIL_ID_LEN) == 0, in = 0;
	for (size_t k = 0; k < g->n_members && !in; k++)
		in = memcmp(g->members[k], self, VEIL_ID_LEN) == 0;
	if (creator)
		in = bg->creator_listed;
	g->left = bg->deleted || !in;
	if (bg->deleted)
		g->n_members = 0;
	else if (g->left && !creator && g->n_members < VEIL_GROUP_MAX_MEMBERS - 1)
		memcpy(g->members[g->n_members++], self, VEIL_ID_LEN); /* the last list named us */
}

int veil_backup_apply(struct veil_profile *p, const struct veil_backup *b)
{
	int rc;
	for (size_t i = 0; i < b->n_contacts; i++) {
		const struct veil_backup_contact *bc = &b->contacts[i];
		if (!bc->has_pk || memcmp(bc->id, p->id, VEIL_ID_LEN) == 0)
			continue;
		struct veil_contact c;
		memset(&c, 0, sizeof c);
		memcpy(c.id, bc->id, VEIL_ID_LEN);
		memcpy(c.pk, bc->pk, VEIL_KEY_LEN);
		c.first_seen_ms = bc->created_ms;
		snprintf(c.nickname, sizeof c.nickname, "%s", bc->nickname);
		rc = veil_profile_contact_add(p, &c);
		if (rc != 0 && rc != VEIL_EEXIST)
			return rc;
		if (bc->nickname[0] != 0 &&
		    (rc = veil_profile_contact_set_nickname(p, bc->id, bc->nickname)) != 0)
			return rc;
		if (bc->name[0] != 0 &&
		    (rc = veil_profile_contact_set_name(p, bc->id, bc->name)) != 0)
			return rc;
		if (bc->level > VEIL_LEVEL_RED &&
		    (rc = veil_contacts_level_raise(p, bc->id, bc->level, "backup")) != 0)
			return rc;
	}
	struct veil_group *g = malloc(sizeof *g);
	if (g == NULL)
		return VEIL_ENOMEM;
	rc = 0;
	for (size_t i = 0; i < b->n_groups && rc == 0; i++) {
		settle_group(&b->groups[i], p->id, g);
		rc = veil_profile_group_put(p, g);
	}
	free(g);
	return rc;
}

int veil_msgr_restore(struct veil_msgr *m, const char *home, const struct veil_msgr_init_opts *o,
                      const uint8_t id[static VEIL_ID_LEN], const struct veil_backup *b)
{
	struct veil_profile *p = &m->prof;
	struct veil_dir_identity di;
	uint8_t *ca_pem = NULL;
	size_t ca_len = 0;
	char ids[VEIL_ID_LEN + 1];
	int rc;

	veil_id_str(ids, id);
	if ((rc = veil_msgr_init_server_int(m, home, o, &ca_pem, &ca_len)) != 0)
		return rc;
	memcpy(p->id, id, VEIL_ID_LEN);
	memcpy(p->sk, b->sk, VEIL_KEY_LEN);
	veil_pubkey(p->pk, p->sk);
	snprintf(p->nickname, sizeof p->nickname, "%s", b->nickname);
	/* The server must know this identity with this key, or nothing could be sent. */
	rc = veil_dir_get_identity(p->dir_url, p->id, &di);
	if (rc == 0 && memcmp(di.pk, p->pk, VEIL_KEY_LEN) != 0)
		rc = VEIL_EKEY;
	if (rc != 0) {
		veil_msgr_fail(m, rc,
		               rc == VEIL_ENOTFOUND ? "the server %s does not know the ID %s"
		               : rc == VEIL_EKEY ? "the server %s holds another key for the ID %s"
		                                 : "cannot check the ID with the server %s (%s)",
		               p->server_url, rc == VEIL_EIO ? veil_dir_errmsg() : ids);
		goto out;
	}
	if ((rc = veil_msgr_profile_write_int(m, p, home, ca_pem, ca_len)) != 0)
		goto out;
	if ((rc = veil_dir_set_ca_file(p->ca_file)) != 0) {
		veil_msgr_fail(m, VEIL_ELIMIT, "the profile's path is too long");
		goto out;
	}
	if ((rc = veil_backup_apply(p, b)) != 0) {
		veil_msgr_fail(m, rc, "cannot store the backup's contacts and groups: %s",
		               veil_strerror(rc));
		goto out;
	}
	/* Contacts the backup lists without a key (allowed for unverified ones). */
	for (size_t i = 0; i < b->n_contacts; i++) {
		if (b->contacts[i].has_pk || memcmp(b->contacts[i].id, p->id, VEIL_ID_LEN) == 0)
			continue;
		rc = veil_msgr_contact_add(m, b->contacts[i].id, NULL, NULL);
		if (rc != 0 && rc != VEIL_EEXIST && rc != VEIL_ENOTFOUND)
			goto out;
	}
	rc = 0;
out:
	free(ca_pem);
	if (rc != 0)
		veil_profile_release(p);
	return rc;
}
