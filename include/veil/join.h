/*
 * The device join protocol's messages (md-d2d-join.proto), carried as ULP
 * data over a nominated rendezvous path (veil/rendezvous.h):
 *
 *   ED -- EdToNd.begin        --> ND   once, after the user compared the RPH
 *   ED -- EdToNd.blob_data    --> ND   0..N, blobs EssentialData refers to
 *   ED -- EdToNd.essential_data --> ND once
 *   ED <-- NdToEd.registered  --  ND   once ND registered with the mediator
 *
 * ED is the existing device, ND the new one; in device join ED nominates
 * the rendezvous path. Each message here is one ULP message: one
 * veil_rdv_seal on the sender, one VEIL_RDV_EV_DATA on the receiver.
 *
 * EssentialData is reduced to what a Veil client keeps: identity data,
 * device group key, the user's nickname, contacts, groups and the hashed
 * used nonces. Fields we do not model (profile pictures, settings' values,
 * work credentials, MDM parameters, distribution lists, per-conversation
 * policies) are not sent and are ignored when received; an empty Settings
 * message is sent since the specification lists it as shared settings.
 */
#ifndef VEIL_JOIN_H
#define VEIL_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "veil/util.h"

/* Largest join message we make or parse (fits one rendezvous frame). */
#define VEIL_JOIN_MAX_MESSAGE (16u * 1024u * 1024u - 16u)
#define VEIL_JOIN_MAX_CONTACTS 8192
#define VEIL_JOIN_MAX_GROUPS 4096
#define VEIL_JOIN_MAX_MEMBERS 256   /* per group, the creator included or not */
#define VEIL_JOIN_MAX_NONCES 200000 /* per list (CSP, D2D) */
#define VEIL_JOIN_NAME_MAX 256      /* bytes of UTF-8 in a name or nickname */
#define VEIL_JOIN_SERVER_GROUP_MAX 32
#define VEIL_JOIN_COOKIE_LEN 16
#define VEIL_JOIN_BLOB_ID_LEN 16
#define VEIL_JOIN_BLOB_MAX (8u * 1024u * 1024u)
#define VEIL_JOIN_NONCE_HASH_LEN 32
#define VEIL_JOIN_ID_LEN 8

struct veil_join_contact {
	char identity[VEIL_JOIN_ID_LEN + 1];
	uint8_t public_key[32];
	uint64_t created_at; /* ms */
	char first_name[VEIL_JOIN_NAME_MAX + 1];
	char last_name[VEIL_JOIN_NAME_MAX + 1];
	char nickname[VEIL_JOIN_NAME_MAX + 1];
	/* The d2d_sync.Contact enum values, passed through as received. */
	int verification_level; /* 0 unverified, 1 server verified, 2 fully verified */
	int identity_type;      /* 0 regular, 1 work */
	int acquaintance_level; /* 0 direct, 1 group or deleted */
	int activity_state;     /* 0 active, 1 inactive, 2 invalid */
	int sync_state;         /* 0 initial, 1 imported, 2 custom */
	uint64_t feature_mask;
	int has_last_update;
	uint64_t last_update_at; /* ms, the conversation's last update */
};

struct veil_join_group {
	char creator[VEIL_JOIN_ID_LEN + 1];
	uint64_t group_id; /* the 8-byte group ID as little-endian fixed64 */
	char name[VEIL_JOIN_NAME_MAX + 1];
	uint64_t created_at;
	int user_state; /* 0 member, 1 kicked, 2 left */
	size_t n_members;
	char (*members)[VEIL_JOIN_ID_LEN + 1]; /* heap, n_members entries */
	uint64_t last_update_at;
};

/*
 * EssentialData. ck and dgk are secrets: release with
 * veil_join_essential_release, which wipes them and frees the arrays.
 */
struct veil_join_essential {
	char identity[VEIL_JOIN_ID_LEN + 1];
	uint8_t ck[32]; /* the identity's secret (client) key */
	uint8_t device_cookie[VEIL_JOIN_COOKIE_LEN];
	char server_group[VEIL_JOIN_SERVER_GROUP_MAX + 1];
	uint8_t dgk[32];
	char nickname[VEIL_JOIN_NAME_MAX + 1]; /* the user's profile nickname, "" if none */
	size_t n_contacts, n_groups, n_csp_nonces, n_d2d_nonces;
	struct veil_join_contact *contacts;
	struct veil_join_group *groups;
	uint8_t (*csp_nonces)[VEIL_JOIN_NONCE_HASH_LEN]; /* HMAC-SHA256(key=identity, nonce) */
	uint8_t (*d2d_nonces)[VEIL_JOIN_NONCE_HASH_LEN];
};

void veil_join_essential_release(struct veil_join_essential *e);

/*
 * The hashed form of a used nonce that EssentialData carries:
 * HMAC-SHA256(key = the identity's 8 ASCII bytes, message = nonce).
 */
void veil_join_hash_nonce(uint8_t out[static VEIL_JOIN_NONCE_HASH_LEN],
                          const char identity[static VEIL_JOIN_ID_LEN], const uint8_t *nonce,
                          size_t n);

/* Encoders: each appends one whole message (EdToNd or NdToEd) to out. */
int veil_join_begin_encode(struct veil_buf *out) VEIL_WUR;
int veil_join_blob_encode(struct veil_buf *out, const uint8_t id[static VEIL_JOIN_BLOB_ID_LEN],
                          const uint8_t *data, size_t n) VEIL_WUR;
/*
 * Checks e against the limits above (identity of 8 characters, names of
 * valid UTF-8, counts) first: VEIL_EINVAL or VEIL_ELIMIT, nothing appended.
 * The packed message may hold ck and dgk: give out a secret veil_buf.
 */
int veil_join_essential_encode(struct veil_buf *out, const struct veil_join_essential *e) VEIL_WUR;
int veil_join_registered_encode(struct veil_buf *out) VEIL_WUR;

enum veil_join_type {
	VEIL_JOIN_BEGIN = 1,
	VEIL_JOIN_BLOB = 2,
	VEIL_JOIN_ESSENTIAL = 3,
	VEIL_JOIN_REGISTERED = 4,
};

/* One parsed EdToNd message. Release with veil_join_ed_release. */
struct veil_join_ed {
	int type; /* VEIL_JOIN_BEGIN, VEIL_JOIN_BLOB or VEIL_JOIN_ESSENTIAL */
	uint8_t blob_id[VEIL_JOIN_BLOB_ID_LEN];
	uint8_t *blob; /* heap, blob_len bytes (VEIL_JOIN_BLOB) */
	size_t blob_len;
	struct veil_join_essential essential; /* VEIL_JOIN_ESSENTIAL */
};

/*
 * Parses an EdToNd message (what ND receives). Every field is checked:
 * identity 8 characters of [0-9A-Z*], ck, dgk and each public key 32 bytes,
 * cookie 16 bytes, hashed nonces 32 bytes, names valid UTF-8 of at most
 * VEIL_JOIN_NAME_MAX bytes, counts within the limits. Returns 0,
 * VEIL_ELIMIT (over a limit), VEIL_EPROTO (anything else); m is empty
 * (released) on failure.
 */
int veil_join_ed_parse(struct veil_join_ed *m, const uint8_t *p, size_t n) VEIL_WUR;
void veil_join_ed_release(struct veil_join_ed *m);

/* Parses an NdToEd message (what ED receives): *type = VEIL_JOIN_REGISTERED. */
int veil_join_nd_parse(int *type, const uint8_t *p, size_t n) VEIL_WUR;

#endif
