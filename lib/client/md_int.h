/*
 * Internal interface of the messenger's multi-device part: the D2D
 * messages a device reflects (lib/client/md_d2d.c). Not installed.
 */
#ifndef VEIL_CLIENT_MD_INT_H
#define VEIL_CLIENT_MD_INT_H

#include "veil/client.h"

enum veil_d2d_kind {
	VEIL_D2D_OTHER = 0,    /* a content this client does not handle (ack it) */
	VEIL_D2D_INCOMING = 1, /* d2d.IncomingMessage: the leader received it */
	VEIL_D2D_OUTGOING = 2, /* d2d.OutgoingMessage: another device sent it */
	VEIL_D2D_SENT = 3,     /* d2d.OutgoingMessageUpdate.sent: the server acked it */
	VEIL_D2D_READ = 4,     /* d2d.IncomingMessageUpdate.read: read on another device */
	VEIL_D2D_CONTACT = 5,  /* d2d.ContactSync create/update: a contact changed */
	VEIL_D2D_SETTINGS = 6, /* d2d.SettingsSync.update: the user's settings changed */
	VEIL_D2D_PROFILE = 7,  /* d2d.UserProfileSync.update: the user's profile changed */
	VEIL_D2D_GROUP = 8,    /* d2d.GroupSync create/update/delete */
};

enum veil_d2d_group_action {
	VEIL_D2D_GROUP_CREATE = 1,
	VEIL_D2D_GROUP_UPDATE = 2,
	VEIL_D2D_GROUP_DELETE = 3,
};

#define VEIL_D2D_MAX_NONCES 256
/* The most message IDs one reflected read update names (encoding). */
#define VEIL_D2D_MAX_READS 256

/*
 * One reflected message, flattened. Pointers point into the caller's
 * buffers when encoding and into the unpacked envelope when decoding.
 * peer is the sender of an incoming message and the conversation's
 * contact otherwise; group is set (with creator and id) for a group
 * conversation.
 */
struct veil_d2d_msg {
	int kind;
	uint64_t device_id; /* the device that reflected it (decoding only) */
	uint8_t peer[VEIL_ID_LEN];
	int group;
	uint8_t group_creator[VEIL_ID_LEN];
	uint64_t group_id;
	uint64_t msg_id;
	uint64_t created_ms;
	uint8_t type;
	const uint8_t *body;
	size_t body_len;
	const uint8_t *nonce;                       /* incoming: the sender's CSP nonce, or NULL */
	const uint8_t *nonces[VEIL_D2D_MAX_NONCES]; /* outgoing: one CSP nonce per receiver */
	size_t n_nonces;
	uint64_t at_ms; /* read: when */
	/* read, encoding: the messages read in this conversation (NULL: msg_id alone) */
	const uint64_t *read_ids;
	size_t n_read_ids;
	/* read, decoding: how many updates (each read with veil_d2d_read_get) */
	size_t n_reads;
	const void *reads;
	/* contact: peer is the contact's ID */
	int contact_create;
	const uint8_t *contact_pk; /* NULL: unchanged */
	int contact_level; /* 0 unverified, 1 server verified, 2 fully verified; -1 unchanged */
	const char *contact_name; /* the user's name for it (first_name); NULL unchanged */
	/* settings: -1 unchanged, else 1 send read receipts, 0 do not */
	int read_receipts;
	/* profile: the user's nickname; NULL unchanged */
	const char *nickname;
	/*
	 * group (group, group_creator and group_id name it; created_ms is
	 * created_at): the action, its name (NULL unchanged), our state in it
	 * (-1 unchanged, 0 member, 1 kicked, 2 left) and, if has_members, its
	 * members besides us and the creator... as IDs of 8 characters.
	 */
	int group_action;
	const char *group_name;
	int group_user_state;
	int has_members;
	const char *const *members;
	size_t n_members;
};

/* Serialises m as a d2d.Envelope from device_id (without padding: sealing adds it). */
int veil_d2d_encode(struct veil_buf *out, const struct veil_d2d_msg *m, uint64_t device_id);
/*
 * Parses a d2d.Envelope. *env receives the unpacked envelope, which m
 * points into: release it with veil_d2d_free. VEIL_EPROTO if it does not
 * parse or a field is malformed (an ID that is not 8 characters, a nonce
 * that is not 24 bytes); an unknown content is kind VEIL_D2D_OTHER.
 */
int veil_d2d_decode(void **env, struct veil_d2d_msg *m, const uint8_t *plain, size_t len);
void veil_d2d_free(void *env);

/* One update of a decoded read (kind VEIL_D2D_READ). */
struct veil_d2d_read {
	int group; /* a group conversation: creator and gid set, peer not */
	uint8_t peer[VEIL_ID_LEN];
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	uint64_t msg_id;
	uint64_t at_ms;
};
/*
 * Update i (< m->n_reads) of a decoded read: 0, or 1 for an update this
 * client has no use for (another kind, a distribution list), to skip.
 * The decoder checked every update, so nothing else can fail.
 */
int veil_d2d_read_get(const struct veil_d2d_msg *m, size_t i, struct veil_d2d_read *r);

#endif
