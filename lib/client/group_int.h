/*
 * Internal interface between the messenger (lib/client/messenger.c) and the
 * group code (lib/client/group*.c). Not installed, not public.
 */
#ifndef VEIL_CLIENT_GROUP_INT_H
#define VEIL_CLIENT_GROUP_INT_H

#include "veil/client.h"

/* How long a group stays "recently resynced" for one peer (the specification's 1 h). */
#define VEIL_GROUP_RESYNC_MS (3600u * 1000u)

/*
 * The receive loop's way to send a reply during veil_group_receive: seals
 * body (group container included) of type for `to` with flags and sends it
 * on the open connection. Returns 0 or the error that ended the session.
 */
struct veil_group_io {
	int (*send)(void *ctx, const uint8_t to[static VEIL_ID_LEN], uint8_t type, uint8_t flags,
	            const uint8_t *body, size_t len);
	void *ctx;
};

enum veil_group_verdict {
	VEIL_GROUP_RX_ACCEPT = 1, /* log it, ack it, show it */
	/* ack it and report why (rx->why): the specification's rules discard it */
	VEIL_GROUP_RX_DROP = 2,
	VEIL_GROUP_RX_IGNORE = 3, /* ack it silently (no change, say) */
	/* cannot be decoded: store it raw (VEIL_LOG_RAW), then ack it and report why */
	VEIL_GROUP_RX_MALFORMED = 4,
};

/* What veil_group_receive leaves for the event; ev's group pointers point in here. */
struct veil_group_rx {
	char why[256];
	struct veil_group g;
	uint64_t ids[VEIL_MSGR_EV_MAX_IDS];
};

/*
 * Applies the received group message of type with body (container
 * included) from sender, following the specification's receive steps
 * (membership checks, sync requests, empty setups for non-members) and
 * sending any reply through io. On VEIL_GROUP_RX_ACCEPT fills ev's group
 * fields and, for group text and receipts, text/status/ids, and points
 * ev->body at the inner body. Returns a verdict, or a negative veil_err
 * (m->errtext set) for a storage or connection failure: the message must
 * then not be acked.
 */
int veil_group_receive(struct veil_msgr *m, const struct veil_group_io *io,
                       const uint8_t sender[static VEIL_ID_LEN], uint8_t type, const uint8_t *body,
                       size_t len, struct veil_msgr_event *ev, struct veil_group_rx *rx);

/* Sets m->errtext from a format and returns rc; shared by the messenger and groups. */
int veil_msgr_fail(struct veil_msgr *m, int rc, const char *fmt, ...) VEIL_PRINTF(3, 4);

/* Recently-resynced marks (creator, gid, peer), kept in the profile. */
int veil_group_resync_recent(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                             uint64_t gid, const uint8_t peer[static VEIL_ID_LEN]);
int veil_group_resync_mark(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, const uint8_t peer[static VEIL_ID_LEN]) VEIL_WUR;

/*
 * The first half of veil_msgr_init: checks home, reads o->ca_file (if set)
 * into *ca_pem for the caller to store, fetches and checks the
 * provisioning document and fills the profile's server fields, without an
 * identity. On failure the profile is released and *ca_pem is NULL.
 */
int veil_msgr_init_server_int(struct veil_msgr *m, const char *home,
                              const struct veil_msgr_init_opts *o, uint8_t **ca_pem,
                              size_t *ca_len);

/*
 * The base URL of the server's WebSocket service which ("mediator" or
 * "rendezvous"), from the provisioning document or after the server URL
 * (lib/client/device.c); errtext set on failure.
 */
int veil_msgr_ws_service_url_int(struct veil_msgr *m, const char *which, char *out, size_t cap);

/* Opens a CSP connection for m as the messenger does (errtext set on failure). */
int veil_msgr_conn_open_int(struct veil_msgr *m, struct veil_conn *c);

/*
 * With a session (veil_msgr_session_start), the connection that sends must
 * use instead of opening its own (NULL without a session), and the handler
 * of every payload other than the sender's acks and alerts that arrives
 * meanwhile: incoming messages are then stored, acked and reported as by
 * the session. Without a session, what the mediator delivered on c (the
 * send's own connection) is dropped unacked, so the mediator sends it
 * again. Returns 0, or the error that ended the session (a closed
 * connection: reconnect).
 */
struct veil_conn *veil_msgr_session_conn_int(struct veil_msgr *m);
int veil_msgr_session_payload_int(struct veil_msgr *m, struct veil_conn *c, uint8_t type,
                                  const uint8_t *data, size_t n);
/*
 * Reflects a D2D message (struct veil_d2d_msg of md_int.h) on a connection
 * through the mediator and, if wait, waits for the mediator's ack.
 */
struct veil_d2d_msg;
int veil_msgr_md_reflect_int(struct veil_msgr *m, struct veil_conn *c, const struct veil_d2d_msg *d,
                             int wait);
/* Applies a reflected d2d.ContactSync (lib/client/device.c); 0 or a storage error. */
int veil_msgr_md_apply_contact_int(struct veil_msgr *m, const struct veil_d2d_msg *d);
/*
 * Reflects d to the other devices, inside a transaction of scope (one of
 * VEIL_MD_SCOPE_*) or, for scope -1, alone; through the session's
 * connection if one is open, else a connection of its own. 0 once the
 * mediator acked it (and the commit).
 */
enum {
	VEIL_MD_SCOPE_USER_PROFILE_SYNC = 0,
	VEIL_MD_SCOPE_CONTACT_SYNC = 1,
	VEIL_MD_SCOPE_GROUP_SYNC = 2,
	VEIL_MD_SCOPE_SETTINGS_SYNC = 4,
};
int veil_msgr_md_send_int(struct veil_msgr *m, int scope, const struct veil_d2d_msg *d);
/*
 * Tells the other devices of a group's new state (d2d.GroupSync create or
 * update in a GROUP_SYNC transaction; lib/client/sync.c); 0 at once for a
 * single device.
 */
int veil_msgr_md_sync_group_int(struct veil_msgr *m, const struct veil_group *g, int create);
/* Applies a reflected settings, profile, group sync or read update (sync.c). */
int veil_msgr_md_apply_sync_int(struct veil_msgr *m, const struct veil_d2d_msg *d);

/* Milliseconds left until a veil_mono_ms() deadline (0 once passed). */
uint64_t veil_msgr_left_ms(uint64_t deadline);
/* Sleeps ms milliseconds, resuming after signals. */
void veil_msgr_sleep_ms(uint64_t ms);
/*
 * Writes a new profile p in home: the CA (if ca_pem) and then the profile
 * itself, which marks it finished (joining a device and restoring a backup
 * end the same way). 0, or the error with m's errtext set.
 */
int veil_msgr_profile_write_int(struct veil_msgr *m, struct veil_profile *p, const char *home,
                                const uint8_t *ca_pem, size_t ca_len);

#endif
