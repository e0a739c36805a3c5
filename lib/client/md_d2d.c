/*
 * The D2D messages a device reflects to the others of its group: incoming
 * and outgoing messages and their updates (md-d2d.proto's Envelope), to
 * and from the flat struct veil_d2d_msg of md_int.h.
 */
#include <stdlib.h>
#include <string.h>

#include "md_int.h"
#include "proto/md-d2d-sync.pb-c.h"
#include "proto/md-d2d.pb-c.h"

static void id_str(char out[VEIL_ID_LEN + 1], const uint8_t id[static VEIL_ID_LEN])
{
	memcpy(out, id, VEIL_ID_LEN);
	out[VEIL_ID_LEN] = 0;
}

int veil_d2d_encode(struct veil_buf *out, const struct veil_d2d_msg *m, uint64_t device_id)
{
	D2d__Envelope env = D2D__ENVELOPE__INIT;
	D2d__ConversationId conv = D2D__CONVERSATION_ID__INIT;
	Common__GroupIdentity gid = COMMON__GROUP_IDENTITY__INIT;
	D2d__IncomingMessage in = D2D__INCOMING_MESSAGE__INIT;
	D2d__OutgoingMessage og = D2D__OUTGOING_MESSAGE__INIT;
	D2d__OutgoingMessageUpdate ou = D2D__OUTGOING_MESSAGE_UPDATE__INIT;
	D2d__OutgoingMessageUpdate__Update ouu = D2D__OUTGOING_MESSAGE_UPDATE__UPDATE__INIT;
	D2d__OutgoingMessageUpdate__Sent sent = D2D__OUTGOING_MESSAGE_UPDATE__SENT__INIT;
	D2d__OutgoingMessageUpdate__Update *oup = &ouu;
	D2d__IncomingMessageUpdate iu = D2D__INCOMING_MESSAGE_UPDATE__INIT;
	D2d__IncomingMessageUpdate__Update iuu = D2D__INCOMING_MESSAGE_UPDATE__UPDATE__INIT;
	D2d__IncomingMessageUpdate__Read rd = D2D__INCOMING_MESSAGE_UPDATE__READ__INIT;
	D2d__IncomingMessageUpdate__Update *iup = &iuu;
	D2d__IncomingMessageUpdate__Update *many = NULL, **manyp = NULL;
	D2d__ContactSync cs = D2D__CONTACT_SYNC__INIT;
	D2d__ContactSync__Create csc = D2D__CONTACT_SYNC__CREATE__INIT;
	D2d__ContactSync__Update csu = D2D__CONTACT_SYNC__UPDATE__INIT;
	D2dSync__Contact ct;
	D2d__SettingsSync ss = D2D__SETTINGS_SYNC__INIT;
	D2d__SettingsSync__Update ssu = D2D__SETTINGS_SYNC__UPDATE__INIT;
	D2dSync__Settings st;
	D2d__UserProfileSync ps = D2D__USER_PROFILE_SYNC__INIT;
	D2d__UserProfileSync__Update psu = D2D__USER_PROFILE_SYNC__UPDATE__INIT;
	D2dSync__UserProfile up;
	D2d__GroupSync gs = D2D__GROUP_SYNC__INIT;
	D2d__GroupSync__Create gsc = D2D__GROUP_SYNC__CREATE__INIT;
	D2d__GroupSync__Update gsu = D2D__GROUP_SYNC__UPDATE__INIT;
	D2d__GroupSync__Delete gsd = D2D__GROUP_SYNC__DELETE__INIT;
	D2dSync__Group gr;
	Common__Identities mem = COMMON__IDENTITIES__INIT;
	ProtobufCBinaryData nonces[VEIL_D2D_MAX_NONCES];
	char peer[VEIL_ID_LEN + 1], creator[VEIL_ID_LEN + 1];

	if (m->n_nonces > VEIL_D2D_MAX_NONCES)
		return VEIL_ELIMIT;
	id_str(peer, m->peer);
	id_str(creator, m->group_creator);
	if (m->group) {
		gid.has_group_id = 1;
		gid.group_id = m->group_id;
		gid.creator_identity = creator;
		conv.id_case = D2D__CONVERSATION_ID__ID_GROUP;
		conv.group = &gid;
	} else {
		conv.id_case = D2D__CONVERSATION_ID__ID_CONTACT;
		conv.contact = peer;
	}
	env.has_device_id = 1;
	env.device_id = device_id;
	env.has_protocol_version = 1;
	env.protocol_version = VEIL_MD_D2D_VERSION;
	switch (m->kind) {
	case VEIL_D2D_INCOMING:
		in.sender_identity = peer;
		in.has_message_id = in.has_created_at = in.has_type = in.has_body = 1;
		in.message_id = m->msg_id;
		in.created_at = m->created_ms;
		in.type = (Common__CspE2eMessageType)m->type;
		in.body.data = (uint8_t *)m->body;
		in.body.len = m->body_len;
		if (m->nonce != NULL) {
			in.has_nonce = 1;
			in.nonce.data = (uint8_t *)m->nonce;
			in.nonce.len = VEIL_NONCE_LEN;
		}
		env.content_case = D2D__ENVELOPE__CONTENT_INCOMING_MESSAGE;
		env.incoming_message = &in;
		break;
	case VEIL_D2D_OUTGOING:
		og.conversation = &conv;
		og.has_message_id = og.has_created_at = og.has_type = og.has_body = 1;
		og.message_id = m->msg_id;
		og.created_at = m->created_ms;
		og.type = (Common__CspE2eMessageType)m->type;
		og.body.data = (uint8_t *)m->body;
		og.body.len = m->body_len;
		for (size_t i = 0; i < m->n_nonces; i++) {
			nonces[i].data = (uint8_t *)m->nonces[i];
			nonces[i].len = VEIL_NONCE_LEN;
		}
		og.n_nonces = m->n_nonces;
		og.nonces = nonces;
		env.content_case = D2D__ENVELOPE__CONTENT_OUTGOING_MESSAGE;
		env.outgoing_message = &og;
		break;
	case VEIL_D2D_SENT:
		ouu.conversation = &conv;
		ouu.has_message_id = 1;
		ouu.message_id = m->msg_id;
		ouu.update_case = D2D__OUTGOING_MESSAGE_UPDATE__UPDATE__UPDATE_SENT;
		ouu.sent = &sent;
		ou.n_updates = 1;
		ou.updates = &oup;
		env.content_case = D2D__ENVELOPE__CONTENT_OUTGOING_MESSAGE_UPDATE;
		env.outgoing_message_update = &ou;
		break;
	case VEIL_D2D_READ:
		rd.has_at = 1;
		rd.at = m->at_ms;
		iuu.conversation = &conv;
		iuu.has_message_id = 1;
		iuu.message_id = m->msg_id;
		iuu.update_case = D2D__INCOMING_MESSAGE_UPDATE__UPDATE__UPDATE_READ;
		iuu.read = &rd;
		iu.n_updates = 1;
		iu.updates = &iup;
		if (m->read_ids != NULL) {
			/* One update per message, all of this conversation, with the same time. */
			if (m->n_read_ids == 0 || m->n_read_ids > VEIL_D2D_MAX_READS)
				return VEIL_ELIMIT;
			many = calloc(m->n_read_ids, sizeof *many);
			manyp = calloc(m->n_read_ids, sizeof *manyp);
			if (many == NULL || manyp == NULL) {
				free(many);
				free(manyp);
				return VEIL_ENOMEM;
			}
			for (size_t i = 0; i < m->n_read_ids; i++) {
				many[i] = iuu;
				many[i].message_id = m->read_ids[i];
				manyp[i] = &many[i];
			}
			iu.n_updates = m->n_read_ids;
			iu.updates = manyp;
		}
		env.content_case = D2D__ENVELOPE__CONTENT_INCOMING_MESSAGE_UPDATE;
		env.incoming_message_update = &iu;
		break;
	case VEIL_D2D_CONTACT:
		/* The function, not the macro: the macro names a deprecated field (clang warns). */
		d2d_sync__contact__init(&ct);
		ct.identity = peer;
		if (m->contact_pk != NULL) {
			ct.has_public_key = 1;
			ct.public_key.data = (uint8_t *)m->contact_pk;
			ct.public_key.len = VEIL_KEY_LEN;
		}
		if (m->contact_level >= 0) {
			ct.has_verification_level = 1;
			ct.verification_level =
			    (D2dSync__Contact__VerificationLevel)m->contact_level;
		}
		ct.first_name = (char *)m->contact_name;
		if (m->contact_create) {
			csc.contact = &ct;
			cs.action_case = D2D__CONTACT_SYNC__ACTION_CREATE;
			cs.create = &csc;
		} else {
			csu.contact = &ct;
			cs.action_case = D2D__CONTACT_SYNC__ACTION_UPDATE;
			cs.update = &csu;
		}
		env.content_case = D2D__ENVELOPE__CONTENT_CONTACT_SYNC;
		env.contact_sync = &cs;
		break;
	case VEIL_D2D_SETTINGS:
		d2d_sync__settings__init(&st);
		if (m->read_receipts >= 0) {
			st.has_read_receipt_policy = 1;
			st.read_receipt_policy =
			    m->read_receipts
			        ? D2D_SYNC__READ_RECEIPT_POLICY__SEND_READ_RECEIPT
			        : D2D_SYNC__READ_RECEIPT_POLICY__DONT_SEND_READ_RECEIPT;
		}
		ssu.settings = &st;
		ss.action_case = D2D__SETTINGS_SYNC__ACTION_UPDATE;
		ss.update = &ssu;
		env.content_case = D2D__ENVELOPE__CONTENT_SETTINGS_SYNC;
		env.settings_sync = &ss;
		break;
	case VEIL_D2D_PROFILE:
		d2d_sync__user_profile__init(&up);
		up.nickname = (char *)m->nickname;
		psu.user_profile = &up;
		ps.action_case = D2D__USER_PROFILE_SYNC__ACTION_UPDATE;
		ps.update = &psu;
		env.content_case = D2D__ENVELOPE__CONTENT_USER_PROFILE_SYNC;
		env.user_profile_sync = &ps;
		break;
	case VEIL_D2D_GROUP:
		if (!m->group || m->n_members > 256)
			return VEIL_EINVAL;
		gid.has_group_id = 1;
		gid.group_id = m->group_id;
		gid.creator_identity = creator;
		d2d_sync__group__init(&gr);
		gr.group_identity = &gid;
		gr.name = (char *)m->group_name;
		if (m->created_ms != 0) {
			gr.has_created_at = 1;
			gr.created_at = m->created_ms;
		}
		if (m->group_user_state >= 0) {
			gr.has_user_state = 1;
			gr.user_state = (D2dSync__Group__UserState)m->group_user_state;
		}
		if (m->has_members) {
			mem.n_identities = m->n_members;
			mem.identities = (char **)m->members;
			gr.member_identities = &mem;
		}
		if (m->group_action == VEIL_D2D_GROUP_CREATE) {
			gsc.group = &gr;
			gs.action_case = D2D__GROUP_SYNC__ACTION_CREATE;
			gs.create = &gsc;
		} else if (m->group_action == VEIL_D2D_GROUP_UPDATE) {
			gsu.group = &gr;
			gs.action_case = D2D__GROUP_SYNC__ACTION_UPDATE;
			gs.update = &gsu;
		} else if (m->group_action == VEIL_D2D_GROUP_DELETE) {
			gsd.group_identity = &gid;
			gs.action_case = D2D__GROUP_SYNC__ACTION_DELETE;
			gs.delete_ = &gsd;
		} else {
			return VEIL_EINVAL;
		}
		env.content_case = D2D__ENVELOPE__CONTENT_GROUP_SYNC;
		env.group_sync = &gs;
		break;
	default: return VEIL_EINVAL;
	}
	size_t n = d2d__envelope__get_packed_size(&env);
	int rc = n > VEIL_MD_ENVELOPE_PLAIN_MAX - VEIL_MD_PAD_MAX - 3 ? VEIL_ELIMIT
	                                                              : veil_buf_reserve(out, n);
	if (rc == 0) {
		d2d__envelope__pack(&env, out->p + out->len);
		out->len += n;
	}
	free(many);
	free(manyp);
	return rc;
}

static int parse_id(uint8_t out[static VEIL_ID_LEN], const char *s)
{
	return s != NULL && strlen(s) == VEIL_ID_LEN && veil_id_parse(out, s) == 0 ? 0
	                                                                           : VEIL_EPROTO;
}

static int parse_conv(struct veil_d2d_msg *m, const D2d__ConversationId *c)
{
	if (c == NULL)
		return VEIL_EPROTO;
	if (c->id_case == D2D__CONVERSATION_ID__ID_CONTACT)
		return parse_id(m->peer, c->contact);
	if (c->id_case == D2D__CONVERSATION_ID__ID_GROUP && c->group != NULL &&
	    c->group->has_group_id) {
		m->group = 1;
		m->group_id = c->group->group_id;
		return parse_id(m->group_creator, c->group->creator_identity);
	}
	/* Distribution lists: this client has none. */
	m->kind = VEIL_D2D_OTHER;
	return 0;
}

int veil_d2d_decode(void **envp, struct veil_d2d_msg *m, const uint8_t *plain, size_t len)
{
	memset(m, 0, sizeof *m);
	*envp = NULL;
	D2d__Envelope *env = d2d__envelope__unpack(NULL, len, plain);
	if (env == NULL)
		return VEIL_EPROTO;
	*envp = env;
	m->device_id = env->has_device_id ? env->device_id : 0;
	switch (env->content_case) {
	case D2D__ENVELOPE__CONTENT_INCOMING_MESSAGE: {
		const D2d__IncomingMessage *in = env->incoming_message;
		m->kind = VEIL_D2D_INCOMING;
		if (parse_id(m->peer, in->sender_identity) != 0 || !in->has_message_id ||
		    !in->has_type || (unsigned)in->type > 0xff ||
		    (in->has_nonce && in->nonce.len != VEIL_NONCE_LEN))
			return VEIL_EPROTO;
		m->msg_id = in->message_id;
		m->created_ms = in->created_at;
		m->type = (uint8_t)in->type;
		m->body = in->body.data;
		m->body_len = in->has_body ? in->body.len : 0;
		m->nonce = in->has_nonce ? in->nonce.data : NULL;
		return 0;
	}
	case D2D__ENVELOPE__CONTENT_OUTGOING_MESSAGE: {
		const D2d__OutgoingMessage *og = env->outgoing_message;
		m->kind = VEIL_D2D_OUTGOING;
		if (!og->has_message_id || !og->has_type || (unsigned)og->type > 0xff ||
		    og->n_nonces > VEIL_D2D_MAX_NONCES)
			return VEIL_EPROTO;
		m->msg_id = og->message_id;
		m->created_ms = og->created_at;
		m->type = (uint8_t)og->type;
		m->body = og->body.data;
		m->body_len = og->has_body ? og->body.len : 0;
		for (size_t i = 0; i < og->n_nonces; i++) {
			if (og->nonces[i].len != VEIL_NONCE_LEN)
				return VEIL_EPROTO;
			m->nonces[i] = og->nonces[i].data;
		}
		m->n_nonces = og->n_nonces;
		return parse_conv(m, og->conversation);
	}
	case D2D__ENVELOPE__CONTENT_OUTGOING_MESSAGE_UPDATE: {
		const D2d__OutgoingMessageUpdate *ou = env->outgoing_message_update;
		/* Only the first update is used: this client reflects one at a time. */
		if (ou->n_updates == 0 || !ou->updates[0]->has_message_id)
			return VEIL_EPROTO;
		m->kind =
		    ou->updates[0]->update_case == D2D__OUTGOING_MESSAGE_UPDATE__UPDATE__UPDATE_SENT
		        ? VEIL_D2D_SENT
		        : VEIL_D2D_OTHER;
		m->msg_id = ou->updates[0]->message_id;
		return parse_conv(m, ou->updates[0]->conversation);
	}
	case D2D__ENVELOPE__CONTENT_INCOMING_MESSAGE_UPDATE: {
		const D2d__IncomingMessageUpdate *iu = env->incoming_message_update;
		if (iu->n_updates == 0)
			return VEIL_EPROTO;
		/* Every update is checked here, so that applying them cannot fail half way. */
		for (size_t i = 0; i < iu->n_updates; i++) {
			struct veil_d2d_msg t;
			memset(&t, 0, sizeof t);
			if (!iu->updates[i]->has_message_id ||
			    parse_conv(&t, iu->updates[i]->conversation) != 0)
				return VEIL_EPROTO;
		}
		m->kind = VEIL_D2D_READ;
		m->n_reads = iu->n_updates;
		m->reads = iu->updates;
		return 0;
	}
	case D2D__ENVELOPE__CONTENT_CONTACT_SYNC: {
		const D2d__ContactSync *cs = env->contact_sync;
		const D2dSync__Contact *ct = NULL;
		if (cs->action_case == D2D__CONTACT_SYNC__ACTION_CREATE && cs->create != NULL)
			ct = cs->create->contact;
		else if (cs->action_case == D2D__CONTACT_SYNC__ACTION_UPDATE && cs->update != NULL)
			ct = cs->update->contact;
		if (ct == NULL || parse_id(m->peer, ct->identity) != 0 ||
		    (ct->has_public_key && ct->public_key.len != VEIL_KEY_LEN) ||
		    (ct->has_verification_level && (unsigned)ct->verification_level > 2))
			return VEIL_EPROTO;
		m->kind = VEIL_D2D_CONTACT;
		m->contact_create = cs->action_case == D2D__CONTACT_SYNC__ACTION_CREATE;
		m->contact_pk = ct->has_public_key ? ct->public_key.data : NULL;
		m->contact_level = ct->has_verification_level ? (int)ct->verification_level : -1;
		m->contact_name = ct->first_name;
		return 0;
	}
	case D2D__ENVELOPE__CONTENT_SETTINGS_SYNC: {
		const D2d__SettingsSync *ss = env->settings_sync;
		if (ss->action_case != D2D__SETTINGS_SYNC__ACTION_UPDATE || ss->update == NULL ||
		    ss->update->settings == NULL)
			return VEIL_EPROTO;
		const D2dSync__Settings *st = ss->update->settings;
		m->kind = VEIL_D2D_SETTINGS;
		m->read_receipts = -1;
		if (st->has_read_receipt_policy) {
			if ((unsigned)st->read_receipt_policy > 1)
				return VEIL_EPROTO;
			m->read_receipts = st->read_receipt_policy ==
			                   D2D_SYNC__READ_RECEIPT_POLICY__SEND_READ_RECEIPT;
		}
		return 0;
	}
	case D2D__ENVELOPE__CONTENT_USER_PROFILE_SYNC: {
		const D2d__UserProfileSync *ps = env->user_profile_sync;
		if (ps->action_case != D2D__USER_PROFILE_SYNC__ACTION_UPDATE ||
		    ps->update == NULL || ps->update->user_profile == NULL)
			return VEIL_EPROTO;
		m->kind = VEIL_D2D_PROFILE;
		m->nickname = ps->update->user_profile->nickname;
		if (m->nickname != NULL && strlen(m->nickname) > VEIL_PROFILE_NICK_MAX)
			return VEIL_EPROTO;
		return 0;
	}
	case D2D__ENVELOPE__CONTENT_GROUP_SYNC: {
		const D2d__GroupSync *gs = env->group_sync;
		const D2dSync__Group *gr = NULL;
		const Common__GroupIdentity *gi = NULL;
		m->group_user_state = -1;
		if (gs->action_case == D2D__GROUP_SYNC__ACTION_CREATE && gs->create != NULL)
			gr = gs->create->group;
		else if (gs->action_case == D2D__GROUP_SYNC__ACTION_UPDATE && gs->update != NULL)
			gr = gs->update->group;
		else if (gs->action_case == D2D__GROUP_SYNC__ACTION_DELETE && gs->delete_ != NULL)
			gi = gs->delete_->group_identity;
		if (gr != NULL)
			gi = gr->group_identity;
		if (gi == NULL || !gi->has_group_id ||
		    parse_id(m->group_creator, gi->creator_identity))
			return VEIL_EPROTO;
		m->kind = VEIL_D2D_GROUP;
		m->group_action =
		    gs->action_case == D2D__GROUP_SYNC__ACTION_CREATE   ? VEIL_D2D_GROUP_CREATE
		    : gs->action_case == D2D__GROUP_SYNC__ACTION_UPDATE ? VEIL_D2D_GROUP_UPDATE
		                                                        : VEIL_D2D_GROUP_DELETE;
		m->group = 1;
		m->group_id = gi->group_id;
		if (gr == NULL)
			return 0;
		if (gr->name != NULL && strlen(gr->name) > VEIL_GROUP_NAME_MAX)
			return VEIL_EPROTO;
		m->group_name = gr->name;
		m->created_ms = gr->has_created_at ? gr->created_at : 0;
		if (gr->has_user_state) {
			if ((unsigned)gr->user_state > 2)
				return VEIL_EPROTO;
			m->group_user_state = (int)gr->user_state;
		}
		if (gr->member_identities != NULL) {
			uint8_t id[VEIL_ID_LEN];
			if (gr->member_identities->n_identities > VEIL_GROUP_MAX_MEMBERS)
				return VEIL_EPROTO;
			for (size_t i = 0; i < gr->member_identities->n_identities; i++)
				if (parse_id(id, gr->member_identities->identities[i]) != 0)
					return VEIL_EPROTO;
			m->has_members = 1;
			m->members = (const char *const *)gr->member_identities->identities;
			m->n_members = gr->member_identities->n_identities;
		}
		return 0;
	}
	default: m->kind = VEIL_D2D_OTHER; return 0;
	}
}

int veil_d2d_read_get(const struct veil_d2d_msg *m, size_t i, struct veil_d2d_read *r)
{
	const D2d__IncomingMessageUpdate__Update *const *ups = m->reads;
	struct veil_d2d_msg t;
	memset(r, 0, sizeof *r);
	memset(&t, 0, sizeof t);
	if (m->kind != VEIL_D2D_READ || i >= m->n_reads)
		return 1;
	const D2d__IncomingMessageUpdate__Update *u = ups[i];
	t.kind = VEIL_D2D_READ;
	if (u->update_case != D2D__INCOMING_MESSAGE_UPDATE__UPDATE__UPDATE_READ ||
	    u->read == NULL || parse_conv(&t, u->conversation) != 0 || t.kind != VEIL_D2D_READ)
		return 1;
	r->group = t.group;
	memcpy(r->peer, t.peer, VEIL_ID_LEN);
	memcpy(r->creator, t.group_creator, VEIL_ID_LEN);
	r->gid = t.group_id;
	r->msg_id = u->message_id;
	r->at_ms = u->read->has_at ? u->read->at : 0;
	return 0;
}

void veil_d2d_free(void *env)
{
	if (env != NULL)
		d2d__envelope__free_unpacked(env, NULL);
}
