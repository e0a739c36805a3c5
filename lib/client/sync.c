/*
 * The sync messages of a device group for what the user changes on one
 * device: the settings (d2d.SettingsSync), the profile
 * (d2d.UserProfileSync) and groups (d2d.GroupSync), each reflected inside
 * a transaction of its scope, and their application on the other devices.
 * Contacts are in device.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/client.h"

#include "group_int.h"
#include "md_int.h"
#include "vault_int.h"

/* --- settings --- */

#define SETTINGS_VERSION 1
#define SETTINGS_LEN 2

int veil_profile_settings_get(struct veil_profile *p, struct veil_settings *s)
{
	struct veil_buf v;
	s->read_receipts = 1;
	veil_buf_init(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	int rc = veil_rec_get(p, VEIL_REC_PREFS, NULL, 0, &v);
	if (rc == VEIL_ENOTFOUND)
		rc = 0;
	else if (rc == 0 && (v.len < SETTINGS_LEN || v.p[0] != SETTINGS_VERSION || v.p[1] > 1))
		rc = VEIL_ECORRUPT;
	else if (rc == 0)
		s->read_receipts = v.p[1];
	veil_buf_release(&v);
	return rc;
}

int veil_profile_settings_put(struct veil_profile *p, const struct veil_settings *s)
{
	uint8_t v[SETTINGS_LEN] = {SETTINGS_VERSION, s->read_receipts ? 1 : 0};
	return veil_rec_put(p, VEIL_REC_PREFS, NULL, 0, v, sizeof v);
}

int veil_msgr_settings_set(struct veil_msgr *m, const struct veil_settings *s)
{
	struct veil_d2d_msg d;
	int rc = veil_profile_settings_put(&m->prof, s);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot store the settings: %s", veil_strerror(rc));
	if (!m->prof.md)
		return 0;
	memset(&d, 0, sizeof d);
	d.kind = VEIL_D2D_SETTINGS;
	d.read_receipts = s->read_receipts ? 1 : 0;
	return veil_msgr_md_send_int(m, VEIL_MD_SCOPE_SETTINGS_SYNC, &d);
}

/* --- the user's profile --- */

int veil_msgr_set_nickname(struct veil_msgr *m, const char *nickname)
{
	struct veil_d2d_msg d;
	size_t n = strlen(nickname);
	if (n > VEIL_PROFILE_NICK_MAX || !veil_utf8_valid((const uint8_t *)nickname, n))
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "the nickname must be UTF-8 of at most %d bytes",
		                      VEIL_PROFILE_NICK_MAX);
	snprintf(m->prof.nickname, sizeof m->prof.nickname, "%s", nickname);
	int rc = veil_profile_save(&m->prof);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot store the profile: %s", veil_strerror(rc));
	if (!m->prof.md)
		return 0;
	memset(&d, 0, sizeof d);
	d.kind = VEIL_D2D_PROFILE;
	d.nickname = m->prof.nickname;
	return veil_msgr_md_send_int(m, VEIL_MD_SCOPE_USER_PROFILE_SYNC, &d);
}

/* --- groups --- */

int veil_msgr_md_sync_group_int(struct veil_msgr *m, const struct veil_group *g, int create)
{
	struct veil_d2d_msg d;
	char(*ids)[VEIL_ID_LEN + 1] = NULL;
	const char **ptrs = NULL;
	size_t n = 0;
	int rc;
	if (!m->prof.md)
		return 0;
	ids = calloc(VEIL_GROUP_MAX_MEMBERS, sizeof *ids);
	ptrs = calloc(VEIL_GROUP_MAX_MEMBERS, sizeof *ptrs);
	if (ids == NULL || ptrs == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	/* The specification's list holds neither the creator nor the user. */
	for (size_t i = 0; i < g->n_members && i < VEIL_GROUP_MAX_MEMBERS; i++) {
		if (memcmp(g->members[i], m->prof.id, VEIL_ID_LEN) == 0 ||
		    memcmp(g->members[i], g->creator, VEIL_ID_LEN) == 0)
			continue;
		veil_id_str(ids[n], g->members[i]);
		ptrs[n] = ids[n];
		n++;
	}
	memset(&d, 0, sizeof d);
	d.kind = VEIL_D2D_GROUP;
	d.group_action = create ? VEIL_D2D_GROUP_CREATE : VEIL_D2D_GROUP_UPDATE;
	d.group = 1;
	memcpy(d.group_creator, g->creator, VEIL_ID_LEN);
	d.group_id = g->gid;
	d.group_name = g->name;
	d.created_ms = g->created_ms;
	d.group_user_state = g->left ? 2 : 0;
	d.has_members = 1;
	d.members = ptrs;
	d.n_members = n;
	rc = veil_msgr_md_send_int(m, VEIL_MD_SCOPE_GROUP_SYNC, &d);
out:
	free(ids);
	free(ptrs);
	return rc;
}

/* A group another device created, changed or removed: the same here. */
static int apply_group(struct veil_msgr *m, const struct veil_d2d_msg *d)
{
	struct veil_group *g;
	int rc;
	if (d->group_action == VEIL_D2D_GROUP_DELETE) {
		rc = veil_profile_group_delete(&m->prof, d->group_creator, d->group_id);
		if (rc != 0 && rc != VEIL_ENOTFOUND)
			return veil_msgr_fail(m, rc, "cannot remove a group: %s",
			                      veil_strerror(rc));
		return 0;
	}
	if ((g = calloc(1, sizeof *g)) == NULL)
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	rc = veil_profile_group_get(&m->prof, d->group_creator, d->group_id, g);
	if (rc == VEIL_ENOTFOUND) {
		memset(g, 0, sizeof *g);
		memcpy(g->creator, d->group_creator, VEIL_ID_LEN);
		g->gid = d->group_id;
		g->created_ms = d->created_ms ? d->created_ms : veil_now_ms();
		rc = 0;
	}
	if (rc != 0) {
		rc = veil_msgr_fail(m, rc, "cannot read the groups: %s", veil_strerror(rc));
		goto out;
	}
	if (d->group_name != NULL)
		snprintf(g->name, sizeof g->name, "%s", d->group_name);
	if (d->group_user_state >= 0)
		g->left = d->group_user_state != 0;
	if (d->has_members) {
		int creator = memcmp(d->group_creator, m->prof.id, VEIL_ID_LEN) == 0;
		size_t k = 0;
		/* Ours hold every member but the creator: the user too, in another's group. */
		if (!creator && !g->left)
			memcpy(g->members[k++], m->prof.id, VEIL_ID_LEN);
		for (size_t i = 0; i < d->n_members && k < VEIL_GROUP_MAX_MEMBERS; i++) {
			uint8_t id[VEIL_ID_LEN];
			int dup = 0;
			if (veil_id_parse(id, d->members[i]) != 0 ||
			    memcmp(id, d->group_creator, VEIL_ID_LEN) == 0)
				continue;
			for (size_t j = 0; j < k && !dup; j++)
				dup = memcmp(g->members[j], id, VEIL_ID_LEN) == 0;
			if (!dup)
				memcpy(g->members[k++], id, VEIL_ID_LEN);
		}
		g->n_members = k;
	}
	if ((rc = veil_profile_group_put(&m->prof, g)) != 0)
		rc = veil_msgr_fail(m, rc, "cannot store the group: %s", veil_strerror(rc));
out:
	free(g);
	return rc;
}

int veil_msgr_md_apply_sync_int(struct veil_msgr *m, const struct veil_d2d_msg *d)
{
	int rc = 0;
	switch (d->kind) {
	case VEIL_D2D_SETTINGS: {
		struct veil_settings s;
		if (d->read_receipts < 0)
			return 0;
		if ((rc = veil_profile_settings_get(&m->prof, &s)) == 0) {
			s.read_receipts = d->read_receipts;
			rc = veil_profile_settings_put(&m->prof, &s);
		}
		if (rc != 0)
			return veil_msgr_fail(m, rc, "cannot store the settings: %s",
			                      veil_strerror(rc));
		return 0;
	}
	case VEIL_D2D_PROFILE:
		if (d->nickname == NULL ||
		    !veil_utf8_valid((const uint8_t *)d->nickname, strlen(d->nickname)))
			return 0;
		snprintf(m->prof.nickname, sizeof m->prof.nickname, "%s", d->nickname);
		if ((rc = veil_profile_save(&m->prof)) != 0)
			return veil_msgr_fail(m, rc, "cannot store the profile: %s",
			                      veil_strerror(rc));
		return 0;
	case VEIL_D2D_GROUP: return apply_group(m, d);
	case VEIL_D2D_READ:
		for (size_t i = 0; i < d->n_reads; i++) {
			struct veil_d2d_read r;
			/* Group messages have no read state in this client's log. */
			if (veil_d2d_read_get(d, i, &r) != 0 || r.group)
				continue;
			rc = veil_profile_log_set_read(&m->prof, r.peer, r.msg_id);
			if (rc != 0 && rc != VEIL_ENOTFOUND)
				return veil_msgr_fail(m, rc, "cannot store the read state: %s",
				                      veil_strerror(rc));
		}
		return 0;
	default: return 0;
	}
}
