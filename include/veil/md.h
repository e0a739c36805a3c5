/*
 * Multi-device: the device-to-mediator (D2M) wire format and the
 * device-to-device (D2D) encryption, for both the client and the mediator.
 *
 * Every D2M message is one WebSocket message: a container
 *
 *   type u8 || reserved(3, zero, ignored) || payload
 *
 * of at most VEIL_MD_MAX_MESSAGE bytes. Most payloads are protobuf (package
 * d2m, proto/md-d2m.proto); proxy (0x00) and the four reflection messages
 * (0x80..0x83) are little-endian structs. Encoders in this module write a
 * whole container into a veil_buf; parsers take the payload that
 * veil_md_container_parse points at.
 *
 * Every key of the group is derived from the 32-byte device group key DGK:
 * BLAKE2b-256 keyed with DGK, no input, salt 'p'/'r'/'di'/'sdd'/'ts' and
 * personal '3ma-mdev', both zero-padded to 16 bytes. DGPK is an X25519
 * secret key; its public key is the device group ID. Every encrypted D2D
 * value is nonce(24) || XSalsa20-Poly1305 secretbox, with a random nonce.
 */
#ifndef VEIL_MD_H
#define VEIL_MD_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"
#include "veil/util.h"

#define VEIL_MD_DGK_LEN 32
#define VEIL_MD_MAX_MESSAGE 65536 /* a whole container */
#define VEIL_MD_HDR_LEN 4         /* type and 3 reserved bytes */
#define VEIL_MD_MAX_PAYLOAD (VEIL_MD_MAX_MESSAGE - VEIL_MD_HDR_LEN)
#define VEIL_MD_BOX_OVERHEAD (VEIL_NONCE_LEN + VEIL_MAC_LEN) /* nonce || tag */
#define VEIL_MD_CHALLENGE_LEN 32
#define VEIL_MD_RESPONSE_LEN (VEIL_MD_BOX_OVERHEAD + VEIL_MD_CHALLENGE_LEN) /* 72 */

/* The reflection structs: header lengths as sent today, and the minimums. */
#define VEIL_MD_REFLECT_HDR_LEN 8
#define VEIL_MD_REFLECTED_HDR_LEN 16
#define VEIL_MD_REFLECT_ACK_LEN 16
#define VEIL_MD_REFLECTED_ACK_LEN 8
#define VEIL_MD_FLAG_EPHEMERAL 0x0001 /* forward to connected devices only, no ack */

/*
 * A sealed envelope must fit a reflected struct with today's 16-byte header:
 * 65532 - 16 = 65516 bytes, so at most 65476 bytes of plain d2d.Envelope
 * (the specification's 65492 leaves out the 16-byte tag).
 */
#define VEIL_MD_ENVELOPE_MAX (VEIL_MD_MAX_PAYLOAD - VEIL_MD_REFLECTED_HDR_LEN)
#define VEIL_MD_ENVELOPE_PLAIN_MAX (VEIL_MD_ENVELOPE_MAX - VEIL_MD_BOX_OVERHEAD)
/* Random protobuf padding: 0..VEIL_MD_PAD_MAX bytes, as the Android app does. */
#define VEIL_MD_PAD_MAX 255

/* Largest encrypted device info / shared device data we send or accept. */
#define VEIL_MD_ENC_BLOB_MAX 4096
/* Longest device info string (platform details, app version, label), bytes. */
#define VEIL_MD_INFO_STR_MAX 256
/* Longest server group in a ClientUrlInfo ([0-9a-zA-Z]+). */
#define VEIL_MD_SERVER_GROUP_MAX 32
/* The hex form of a ClientUrlInfo: at most this many characters plus NUL. */
#define VEIL_MD_URL_INFO_HEX_MAX (2 * (2 + 32 + 2 + VEIL_MD_SERVER_GROUP_MAX) + 1)

/* The D2M protocol version this library speaks (d2m.ProtocolVersion V0). */
#define VEIL_MD_D2M_VERSION 0
/* The D2D protocol version we send in envelopes and shared device data (V0.3). */
#define VEIL_MD_D2D_VERSION 0x0003

/* Container types. */
enum veil_md_type {
	VEIL_MD_PROXY = 0x00,
	VEIL_MD_SERVER_HELLO = 0x10,
	VEIL_MD_CLIENT_HELLO = 0x11,
	VEIL_MD_SERVER_INFO = 0x12,
	VEIL_MD_REFLECTION_QUEUE_DRY = 0x20,
	VEIL_MD_ROLE_PROMOTED_TO_LEADER = 0x21,
	VEIL_MD_GET_DEVICES_INFO = 0x30,
	VEIL_MD_DEVICES_INFO = 0x31,
	VEIL_MD_DROP_DEVICE = 0x32,
	VEIL_MD_DROP_DEVICE_ACK = 0x33,
	VEIL_MD_SET_SHARED_DEVICE_DATA = 0x34,
	VEIL_MD_BEGIN_TRANSACTION = 0x40,
	VEIL_MD_BEGIN_TRANSACTION_ACK = 0x41,
	VEIL_MD_COMMIT_TRANSACTION = 0x42,
	VEIL_MD_COMMIT_TRANSACTION_ACK = 0x43,
	VEIL_MD_TRANSACTION_REJECTED = 0x44,
	VEIL_MD_TRANSACTION_ENDED = 0x45,
	VEIL_MD_REFLECT = 0x80,
	VEIL_MD_REFLECT_ACK = 0x81,
	VEIL_MD_REFLECTED = 0x82,
	VEIL_MD_REFLECTED_ACK = 0x83,
};

/* Returns 1 for a type listed above, else 0. */
int veil_md_type_known(uint8_t type);

/* WebSocket close codes. */
enum veil_md_close {
	VEIL_MD_CLOSE_NORMAL = 1000,
	VEIL_MD_CLOSE_GOING_AWAY = 1001,
	VEIL_MD_CLOSE_INTERNAL = 1011,
	VEIL_MD_CLOSE_CSP_CLOSED = 4000,
	VEIL_MD_CLOSE_CSP_UNREACHABLE = 4001,
	VEIL_MD_CLOSE_CSP_INTERNAL = 4009,
	VEIL_MD_CLOSE_PROTOCOL = 4010,
	VEIL_MD_CLOSE_TRANSACTION_TTL = 4011,
	VEIL_MD_CLOSE_UNKNOWN_ACK = 4012,
	VEIL_MD_CLOSE_IDLE = 4013,
	VEIL_MD_CLOSE_VERSION = 4110,
	VEIL_MD_CLOSE_DEVICE_LIMIT = 4111,
	VEIL_MD_CLOSE_DUPLICATE = 4112,
	VEIL_MD_CLOSE_DROPPED = 4113,
	VEIL_MD_CLOSE_QUEUE_LIMIT = 4114,
	VEIL_MD_CLOSE_SLOT_MISMATCH = 4115,
};

/*
 * The reconnect policy of a close code: 1 if a client may reconnect by itself
 * (1xxx, 40xx and codes the specification does not name), 0 if the user must
 * act first (41xx).
 */
int veil_md_close_may_reconnect(int code);

/* --- keys --- */

struct veil_md_keys {
	uint8_t dgpk_sk[VEIL_KEY_LEN];
	uint8_t group_id[VEIL_KEY_LEN]; /* DGPK.public, the device group ID */
	uint8_t dgrk[VEIL_KEY_LEN];     /* reflected envelopes */
	uint8_t dgdik[VEIL_KEY_LEN];    /* device info */
	uint8_t dgsddk[VEIL_KEY_LEN];   /* shared device data */
	uint8_t dgtsk[VEIL_KEY_LEN];    /* transaction scopes */
};

/* Derives every key of the group from DGK. Returns 0 or VEIL_ECRYPTO. */
int veil_md_keys_derive(struct veil_md_keys *k, const uint8_t dgk[static VEIL_MD_DGK_LEN]) VEIL_WUR;
void veil_md_keys_wipe(struct veil_md_keys *k);

/*
 * Appends nonce || secretbox(plain) under key, with a random nonce.
 * VEIL_ELIMIT if out cannot take it (out is then unchanged).
 */
int veil_md_seal(struct veil_buf *out, const uint8_t key[static VEIL_KEY_LEN], const uint8_t *plain,
                 size_t n) VEIL_WUR;
/*
 * Opens nonce || secretbox into plain, which must hold len - 40 bytes;
 * *plain_len receives that length. VEIL_ETRUNC if len < 40, VEIL_ECRYPTO if
 * the box does not open under key.
 */
int veil_md_open(uint8_t *plain, size_t *plain_len, const uint8_t key[static VEIL_KEY_LEN],
                 const uint8_t *in, size_t len) VEIL_WUR;

/* --- container --- */

/*
 * Points *payload into in after the 4-byte header. VEIL_ETRUNC under 4
 * bytes, VEIL_ELIMIT over VEIL_MD_MAX_MESSAGE. Reserved bytes are ignored
 * and unknown types are returned (the caller decides; the mediator closes
 * with 4010).
 */
int veil_md_container_parse(const uint8_t *in, size_t len, uint8_t *type, const uint8_t **payload,
                            size_t *payload_len) VEIL_WUR;
/* Appends type || 0 0 0 || payload. VEIL_ELIMIT over VEIL_MD_MAX_PAYLOAD. */
int veil_md_container_encode(struct veil_buf *out, uint8_t type, const uint8_t *payload,
                             size_t len) VEIL_WUR;

/* --- reflection structs (payloads of 0x80..0x83) --- */

struct veil_md_reflect {
	uint16_t flags;
	uint32_t id;        /* reflect-id (0x80/0x81) or reflected-id (0x82/0x83) */
	uint64_t timestamp; /* ms; reflect-ack and reflected only */
	const uint8_t *envelope;
	size_t envelope_len;
};

/*
 * The parsers honour the header-length byte: a header longer than today's
 * (8 / 16) is skipped, a shorter one is VEIL_EPROTO, one that runs past the
 * input VEIL_ETRUNC. envelope points into p. An empty envelope is accepted
 * here (the mediator does not look inside); opening it fails.
 */
int veil_md_reflect_parse(struct veil_md_reflect *r, const uint8_t *p, size_t n) VEIL_WUR;
int veil_md_reflected_parse(struct veil_md_reflect *r, const uint8_t *p, size_t n) VEIL_WUR;
/* Exactly 16 / 8 bytes: VEIL_ETRUNC if shorter, VEIL_EPROTO if longer. */
int veil_md_reflect_ack_parse(struct veil_md_reflect *r, const uint8_t *p, size_t n) VEIL_WUR;
int veil_md_reflected_ack_parse(struct veil_md_reflect *r, const uint8_t *p, size_t n) VEIL_WUR;

/* Encoders append a whole container. VEIL_ELIMIT if the envelope is too long. */
int veil_md_reflect_encode(struct veil_buf *out, uint16_t flags, uint32_t id,
                           const uint8_t *envelope, size_t len) VEIL_WUR;
int veil_md_reflected_encode(struct veil_buf *out, uint16_t flags, uint32_t id, uint64_t timestamp,
                             const uint8_t *envelope, size_t len) VEIL_WUR;
int veil_md_reflect_ack_encode(struct veil_buf *out, uint32_t id, uint64_t timestamp) VEIL_WUR;
int veil_md_reflected_ack_encode(struct veil_buf *out, uint32_t id) VEIL_WUR;

/* --- handshake --- */

/* d2d.DeviceInfo.Platform */
enum veil_md_platform {
	VEIL_MD_PLATFORM_UNSPECIFIED = 0,
	VEIL_MD_PLATFORM_ANDROID = 1,
	VEIL_MD_PLATFORM_IOS = 2,
	VEIL_MD_PLATFORM_DESKTOP = 3,
	VEIL_MD_PLATFORM_WEB = 4,
};

/* d2d.DeviceInfo without its padding. Strings are NUL-terminated UTF-8. */
struct veil_md_device_info {
	int platform; /* enum veil_md_platform; other values are kept as sent */
	char platform_details[VEIL_MD_INFO_STR_MAX + 1];
	char app_version[VEIL_MD_INFO_STR_MAX + 1];
	char label[VEIL_MD_INFO_STR_MAX + 1];
};

/*
 * Appends the DGDIK box of info with random padding. VEIL_ELIMIT if a string
 * is longer than VEIL_MD_INFO_STR_MAX, VEIL_EINVAL if one is not UTF-8.
 */
int veil_md_device_info_seal(struct veil_buf *out, const struct veil_md_keys *k,
                             const struct veil_md_device_info *info) VEIL_WUR;
/*
 * Opens and parses a DGDIK box. VEIL_ECRYPTO if it does not open,
 * VEIL_EPROTO if the plaintext is not a DeviceInfo or a string is not UTF-8,
 * VEIL_ELIMIT if the box or a string is too long. *info is cleared first.
 */
int veil_md_device_info_open(struct veil_md_device_info *info, const struct veil_md_keys *k,
                             const uint8_t *in, size_t len) VEIL_WUR;

/* The same for d2d.SharedDeviceData under DGSDDK (its only field: a version). */
int veil_md_shared_data_seal(struct veil_buf *out, const struct veil_md_keys *k,
                             uint32_t version) VEIL_WUR;
int veil_md_shared_data_open(uint32_t *version, const struct veil_md_keys *k, const uint8_t *in,
                             size_t len) VEIL_WUR;

/* The same for d2d.TransactionScope under DGTSK. */
int veil_md_scope_seal(struct veil_buf *out, const struct veil_md_keys *k, int scope) VEIL_WUR;
int veil_md_scope_open(int *scope, const struct veil_md_keys *k, const uint8_t *in,
                       size_t len) VEIL_WUR;

struct veil_md_server_hello {
	uint32_t version;
	uint8_t esk[VEIL_KEY_LEN];
	uint8_t challenge[VEIL_MD_CHALLENGE_LEN];
};

/* The mediator's handshake state for one connection. */
struct veil_md_server_hs {
	uint8_t esk_sk[VEIL_KEY_LEN];
	struct veil_md_server_hello hello;
};

/* d2m.ClientHello enums. */
enum veil_md_slots_exhausted { VEIL_MD_SLOTS_REJECT = 0, VEIL_MD_SLOTS_DROP_LEAST_RECENT = 1 };
enum veil_md_slot_expiration { VEIL_MD_SLOT_VOLATILE = 0, VEIL_MD_SLOT_PERSISTENT = 1 };
enum veil_md_slot_state { VEIL_MD_SLOT_NEW = 0, VEIL_MD_SLOT_EXISTING = 1 };

struct veil_md_client_hello {
	uint32_t version;
	uint8_t response[VEIL_MD_RESPONSE_LEN];
	uint64_t device_id;
	int slots_exhausted_policy;                    /* enum veil_md_slots_exhausted */
	int slot_expiration_policy;                    /* enum veil_md_slot_expiration */
	int expected_slot_state;                       /* enum veil_md_slot_state */
	uint8_t enc_device_info[VEIL_MD_ENC_BLOB_MAX]; /* DGDIK box, opaque to the mediator */
	size_t enc_device_info_len;
};

struct veil_md_server_info {
	uint64_t current_time; /* ms */
	uint32_t max_device_slots;
	int slot_state;                                /* enum veil_md_slot_state */
	uint8_t enc_shared_data[VEIL_MD_ENC_BLOB_MAX]; /* DGSDDK box; may be empty */
	size_t enc_shared_data_len;
	uint32_t reflection_queue_length;
};

/*
 * Mediator: makes an ephemeral key and a challenge and appends the
 * ServerHello container (0x10). hs must be wiped with veil_md_server_hs_wipe.
 */
int veil_md_server_hello_make(struct veil_md_server_hs *hs, struct veil_buf *out) VEIL_WUR;
void veil_md_server_hs_wipe(struct veil_md_server_hs *hs);
/*
 * Client: parses a ServerHello payload. VEIL_EPROTO unless esk and challenge
 * are 32 bytes each.
 */
int veil_md_server_hello_parse(struct veil_md_server_hello *sh, const uint8_t *p,
                               size_t n) VEIL_WUR;

/*
 * Client: appends the ClientHello container (0x11) answering sh. Fills
 * ch->response from k and sh and ch->enc_device_info from info (either may
 * be NULL to send no device info); the other fields are taken from ch as the
 * caller set them (version is set to the D2M version chosen, 0). VEIL_EPROTO
 * if the server's ephemeral key is unusable.
 */
int veil_md_client_hello_make(struct veil_buf *out, struct veil_md_client_hello *ch,
                              const struct veil_md_keys *k, const struct veil_md_server_hello *sh,
                              const struct veil_md_device_info *info) VEIL_WUR;
/*
 * Mediator: parses a ClientHello payload. VEIL_EPROTO if it is not a
 * ClientHello or the response is not 72 bytes, VEIL_ELIMIT if the device
 * info is longer than VEIL_MD_ENC_BLOB_MAX. The version is not checked here
 * (the caller closes with 4110).
 */
int veil_md_client_hello_parse(struct veil_md_client_hello *ch, const uint8_t *p,
                               size_t n) VEIL_WUR;
/*
 * Mediator: checks that the response was made with the secret key of
 * group_id (from the URL) for this connection's challenge. Returns 0 or
 * VEIL_ECRYPTO; the comparison is constant-time.
 */
int veil_md_server_verify(const struct veil_md_server_hs *hs, const struct veil_md_client_hello *ch,
                          const uint8_t group_id[static VEIL_KEY_LEN]) VEIL_WUR;

/* Appends the ServerInfo container (0x12). */
int veil_md_server_info_encode(struct veil_buf *out, const struct veil_md_server_info *si) VEIL_WUR;
/* Parses a ServerInfo payload; VEIL_EPROTO / VEIL_ELIMIT as for ClientHello. */
int veil_md_server_info_parse(struct veil_md_server_info *si, const uint8_t *p, size_t n) VEIL_WUR;

/* --- transactions (0x40..0x45) --- */

/* Largest encrypted transaction scope (DGTSK box) we send or accept. */
#define VEIL_MD_SCOPE_MAX 1024

/*
 * BeginTransaction (ttl, scope), TransactionRejected and TransactionEnded
 * (device_id, scope). The scope is a DGTSK box, opaque to the mediator.
 */
struct veil_md_tx {
	uint64_t device_id;
	uint32_t ttl; /* seconds; 0 = the mediator's maximum */
	uint8_t scope[VEIL_MD_SCOPE_MAX];
	size_t scope_len;
};

/* Appends BeginTransaction (0x40). VEIL_ELIMIT if the scope is too long. */
int veil_md_begin_tx_encode(struct veil_buf *out, const uint8_t *scope, size_t len,
                            uint32_t ttl) VEIL_WUR;
/* Parses a BeginTransaction payload. VEIL_EPROTO, VEIL_ELIMIT (scope too long). */
int veil_md_begin_tx_parse(struct veil_md_tx *t, const uint8_t *p, size_t n) VEIL_WUR;
/*
 * Appends TransactionRejected (0x44) or TransactionEnded (0x45): type picks
 * which (VEIL_EINVAL otherwise).
 */
int veil_md_tx_info_encode(struct veil_buf *out, uint8_t type, uint64_t device_id,
                           const uint8_t *scope, size_t len) VEIL_WUR;
/* Parses either payload (both have the same fields). */
int veil_md_tx_info_parse(struct veil_md_tx *t, const uint8_t *p, size_t n) VEIL_WUR;
/*
 * Checks that the payload of a message without fields (0x20, 0x21, 0x30,
 * 0x41..0x43) is a protobuf message (unknown fields are skipped). 0 or
 * VEIL_EPROTO.
 */
int veil_md_empty_parse(const uint8_t *p, size_t n) VEIL_WUR;

/* --- device management (0x30..0x34) --- */

/* One device of DevicesInfo. */
struct veil_md_device_entry {
	uint64_t device_id;
	int expiration_policy;   /* enum veil_md_slot_expiration */
	int connected;           /* 1: since is connected_since; 0: last_disconnect_at */
	uint64_t since;          /* ms */
	const uint8_t *enc_info; /* DGDIK box, opaque to the mediator */
	size_t enc_info_len;
};

/* Appends DevicesInfo (0x31). VEIL_ELIMIT if an info is too long or it does not fit. */
int veil_md_devices_info_encode(struct veil_buf *out, const struct veil_md_device_entry *e,
                                size_t count) VEIL_WUR;
/*
 * Parses a DevicesInfo payload and calls fn for each device (e is valid for
 * the call only); fn returning non-zero stops with that value. VEIL_EPROTO,
 * VEIL_ELIMIT (an info over VEIL_MD_ENC_BLOB_MAX).
 */
int veil_md_devices_info_parse(const uint8_t *p, size_t n,
                               int (*fn)(void *arg, const struct veil_md_device_entry *e),
                               void *arg) VEIL_WUR;
/* Appends DropDevice (0x32) or DropDeviceAck (0x33): type picks which (VEIL_EINVAL otherwise). */
int veil_md_drop_device_encode(struct veil_buf *out, uint8_t type, uint64_t device_id) VEIL_WUR;
/* Parses either payload (the same single field). */
int veil_md_drop_device_parse(uint64_t *device_id, const uint8_t *p, size_t n) VEIL_WUR;
/* Appends SetSharedDeviceData (0x34) with a DGSDDK box. VEIL_ELIMIT over VEIL_MD_ENC_BLOB_MAX. */
int veil_md_set_shared_data_encode(struct veil_buf *out, const uint8_t *box, size_t len) VEIL_WUR;
/* Parses it into box (VEIL_MD_ENC_BLOB_MAX bytes). VEIL_EPROTO, VEIL_ELIMIT. */
int veil_md_set_shared_data_parse(uint8_t box[static VEIL_MD_ENC_BLOB_MAX], size_t *len,
                                  const uint8_t *p, size_t n) VEIL_WUR;

/* --- D2D envelope --- */

/*
 * Appends nonce || secretbox(envelope) under DGRK, where envelope is a
 * serialised d2d.Envelope without padding: the padding field (1) is put in
 * front of it, pad_len bytes long, or a random 0..255 if pad_len is
 * negative (none when 0). VEIL_ELIMIT if the result would not fit a reflected
 * message (VEIL_MD_ENVELOPE_MAX).
 */
int veil_md_envelope_seal(struct veil_buf *out, const struct veil_md_keys *k,
                          const uint8_t *envelope, size_t len, int pad_len) VEIL_WUR;

/* What veil_md_envelope_open tells about an envelope besides its bytes. */
struct veil_md_envelope_info {
	uint64_t device_id;        /* the sender */
	uint32_t protocol_version; /* 0 in the envelope is reported as V0.1 (1) */
	int content;               /* the oneof field number, 0 if none */
};

/*
 * Opens a DGRK box into plain (which must hold len - 40 bytes) and checks
 * that it parses as a d2d.Envelope. VEIL_ETRUNC, VEIL_ELIMIT (longer than
 * VEIL_MD_ENVELOPE_MAX), VEIL_ECRYPTO, VEIL_EPROTO. The caller unpacks plain
 * with d2d__envelope__unpack for the content.
 */
int veil_md_envelope_open(uint8_t *plain, size_t *plain_len, struct veil_md_envelope_info *info,
                          const struct veil_md_keys *k, const uint8_t *in, size_t len) VEIL_WUR;

/* --- mediator URL --- */

/*
 * Writes the lowercase hex of d2m.ClientUrlInfo{device_group_id,
 * server_group} into out (at most VEIL_MD_URL_INFO_HEX_MAX bytes with NUL).
 * VEIL_EINVAL if server_group is empty, too long or not [0-9a-zA-Z].
 */
int veil_md_url_info_encode(char *out, size_t cap, const uint8_t group_id[static VEIL_KEY_LEN],
                            const char *server_group) VEIL_WUR;
/*
 * Mediator: parses the last segment of a request path (everything after the
 * last '/', up to an optional '?') as the hex of a ClientUrlInfo. server_group
 * receives a NUL-terminated copy. VEIL_EPROTO for bad hex, a bad protobuf, a
 * group ID that is not 32 bytes or a server group that is not [0-9a-zA-Z]+;
 * VEIL_ELIMIT if the segment is too long.
 */
int veil_md_url_path_parse(const char *path, size_t len, uint8_t group_id[static VEIL_KEY_LEN],
                           char server_group[static VEIL_MD_SERVER_GROUP_MAX + 1]) VEIL_WUR;

#endif
