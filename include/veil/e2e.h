/*
 * The end-to-end message layer of the Chat Server Protocol: the
 * message-with-metadata-box payload, the padded inner container, the
 * encrypted metadata, the inner bodies of the simplest message types, and the
 * small key derivations and hashes that sit next to them (contact-matching
 * hashes, the Threema Safe key, the Gateway callback MAC).
 *
 * Wire layout of a message-with-metadata-box (integers little-endian):
 *
 *   0  sender(8)  8 receiver(8)  16 message-id u64  24 created-at u32 (s)
 *   28 flags u8   29 reserved u8 (0)  30 metadata-length u16
 *   32 legacy nickname(32, zero-padded)  64 metadata box(metadata-length)
 *   then nonce(24), then the message box (rest of the payload).
 *
 * A legacy message has the same layout with metadata-length 0.
 */
#ifndef VEIL_E2E_H
#define VEIL_E2E_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"
#include "veil/util.h"

/* Message flags (message-with-metadata-box.flags). */
#define VEIL_MSG_FLAG_PUSH 0x01             /* server sends a push notification */
#define VEIL_MSG_FLAG_NO_QUEUE 0x02         /* drop if the receiver is offline */
#define VEIL_MSG_FLAG_NO_SERVER_ACK 0x04    /* neither side acks to/from the server */
#define VEIL_MSG_FLAG_GROUP_RESERVED 0x10   /* reserved, formerly the group marker */
#define VEIL_MSG_FLAG_SHORT_LIVED 0x20      /* queue for 60 s only */
#define VEIL_MSG_FLAG_NO_AUTO_RECEIPTS 0x80 /* no automatic received/read receipts */

/*
 * Size limits. A CSP frame carries at most VEIL_E2E_FRAME_MAX bytes of box;
 * the box holds a 16-byte tag and a 4-byte payload container header, so a
 * whole message-with-metadata-box is at most VEIL_MSGBOX_MAX bytes.
 */
#define VEIL_E2E_FRAME_MAX 8192
#define VEIL_MSGBOX_MAX (VEIL_E2E_FRAME_MAX - VEIL_MAC_LEN - 4)
#define VEIL_MSGBOX_HDR_LEN 64      /* everything before the metadata box */
#define VEIL_MSGBOX_NICKNAME_LEN 32 /* legacy nickname field */
/* Fixed bytes of the payload: header and nonce. */
#define VEIL_MSGBOX_FIXED_LEN (VEIL_MSGBOX_HDR_LEN + VEIL_NONCE_LEN)
/* Largest metadata box we accept (tag included). */
#define VEIL_MSGBOX_METADATA_MAX 1024
/* A message box is at least a tag; at most what the frame leaves. */
#define VEIL_MSGBOX_BOX_MIN VEIL_MAC_LEN
#define VEIL_MSGBOX_BOX_MAX (VEIL_MSGBOX_MAX - VEIL_MSGBOX_FIXED_LEN)

/*
 * Inner container padding: PKCS#7, 1..255 bytes, and body plus padding at
 * least 32 bytes (so the container is at least 33 with its type byte, which
 * meets both the specification's and the Android app's reading).
 */
#define VEIL_E2E_PAD_MAX 255
#define VEIL_E2E_MIN_PADDED_LEN 32

/* Longest nickname we send or accept in the metadata, in UTF-8 bytes. */
#define VEIL_E2E_NICKNAME_MAX 256
/* Worst-case sealed metadata box our encoder produces. */
#define VEIL_E2E_META_OUT_MAX 336
/*
 * Largest inner body veil_e2e_seal accepts: whatever the random padding and
 * metadata, the result then always fits in one frame.
 */
#define VEIL_E2E_BODY_MAX                                                                          \
	(VEIL_MSGBOX_MAX - VEIL_MSGBOX_FIXED_LEN - VEIL_E2E_META_OUT_MAX - VEIL_MAC_LEN - 1 -      \
	 VEIL_E2E_PAD_MAX)

/*
 * Text messages: UTF-8. A sender splits at VEIL_E2E_TEXT_MAX bytes (the
 * specification's split size); a receiver accepts any text that fits a frame.
 */
#define VEIL_E2E_TEXT_MAX 6000
#define VEIL_E2E_TEXT_IN_MAX VEIL_MSGBOX_BOX_MAX
/* Delivery receipts: message IDs per receipt we send, and accept. */
#define VEIL_E2E_RECEIPT_MAX_IDS 875
#define VEIL_E2E_RECEIPT_MAX_IDS_IN (VEIL_MSGBOX_BOX_MAX / 8)

/* Inner message types (common.proto CspE2eMessageType), the ones used here. */
enum veil_e2e_type {
	VEIL_E2E_TEXT = 0x01,
	VEIL_E2E_IMAGE = 0x02, /* deprecated */
	VEIL_E2E_LOCATION = 0x10,
	VEIL_E2E_VIDEO = 0x13, /* deprecated */
	VEIL_E2E_AUDIO = 0x14, /* deprecated */
	VEIL_E2E_POLL_SETUP = 0x15,
	VEIL_E2E_POLL_VOTE = 0x16,
	VEIL_E2E_FILE = 0x17,
	VEIL_E2E_CONTACT_SET_PICTURE = 0x18,
	VEIL_E2E_CONTACT_DELETE_PICTURE = 0x19,
	VEIL_E2E_CONTACT_REQUEST_PICTURE = 0x1a,
	VEIL_E2E_GROUP_TEXT = 0x41,
	VEIL_E2E_GROUP_LOCATION = 0x42,
	VEIL_E2E_GROUP_IMAGE = 0x43, /* deprecated */
	VEIL_E2E_GROUP_VIDEO = 0x44, /* deprecated */
	VEIL_E2E_GROUP_AUDIO = 0x45, /* deprecated */
	VEIL_E2E_GROUP_FILE = 0x46,
	VEIL_E2E_GROUP_SETUP = 0x4a,
	VEIL_E2E_GROUP_NAME = 0x4b,
	VEIL_E2E_GROUP_LEAVE = 0x4c,
	VEIL_E2E_GROUP_CALL_START = 0x4f,
	VEIL_E2E_GROUP_SET_PICTURE = 0x50,
	VEIL_E2E_GROUP_SYNC_REQUEST = 0x51,
	VEIL_E2E_GROUP_POLL_SETUP = 0x52,
	VEIL_E2E_GROUP_POLL_VOTE = 0x53,
	VEIL_E2E_GROUP_DELETE_PICTURE = 0x54,
	VEIL_E2E_CALL_OFFER = 0x60,
	VEIL_E2E_CALL_ANSWER = 0x61,
	VEIL_E2E_CALL_ICE_CANDIDATE = 0x62,
	VEIL_E2E_CALL_HANGUP = 0x63,
	VEIL_E2E_CALL_RINGING = 0x64,
	VEIL_E2E_DELIVERY_RECEIPT = 0x80,
	VEIL_E2E_GROUP_DELIVERY_RECEIPT = 0x81,
	VEIL_E2E_REACTION = 0x82,
	VEIL_E2E_GROUP_REACTION = 0x83,
	VEIL_E2E_TYPING = 0x90,
	VEIL_E2E_EDIT = 0x91,
	VEIL_E2E_DELETE = 0x92,
	VEIL_E2E_GROUP_EDIT = 0x93,
	VEIL_E2E_GROUP_DELETE = 0x94,
	VEIL_E2E_FS_ENVELOPE = 0xa0,
	VEIL_E2E_EMPTY = 0xfc,
};

/*
 * User profile distribution: whether a message of type with body (the
 * inner body, group container included) carries the sender's nickname, as
 * the specification's property of each type says (csp.struct.yml,
 * csp-e2e.proto). Yes: text, location, image/audio/video, file, polls,
 * call offer, reactions, group call start, group-setup, and their group
 * forms. Only for reactions: (group) delivery receipts with status ack or
 * decline. Only if accepted: call answer ("action": 1). No: everything
 * else (receipts received/read, typing, edit, delete, profile pictures,
 * group name, leave, sync request, calls' ICE/hangup/ringing, empty, and
 * unknown types). Returns 1 or 0. A receiver reads the legacy nickname
 * field only for these types.
 */
int veil_e2e_distributes_profile(uint8_t type, const uint8_t *body, size_t len);

/* Delivery receipt status values. */
enum veil_e2e_receipt_status {
	VEIL_RECEIPT_RECEIVED = 1,
	VEIL_RECEIPT_READ = 2,
	VEIL_RECEIPT_ACK = 3,     /* deprecated thumbs-up reaction */
	VEIL_RECEIPT_DECLINE = 4, /* deprecated thumbs-down reaction */
};

/*
 * A parsed message-with-metadata-box. After veil_msgbox_parse the two box
 * pointers point into the parsed input, which must outlive the struct.
 */
struct veil_msgbox {
	uint8_t sender[VEIL_ID_LEN];
	uint8_t receiver[VEIL_ID_LEN];
	uint64_t msg_id;
	uint32_t created_at; /* seconds */
	uint8_t flags;
	uint8_t nickname[VEIL_MSGBOX_NICKNAME_LEN]; /* legacy, zero-padded */
	const uint8_t *metadata;                    /* metadata box; NULL if metadata_len 0 */
	size_t metadata_len;
	uint8_t nonce[VEIL_NONCE_LEN];
	const uint8_t *box; /* message box */
	size_t box_len;
};

/*
 * Parses a whole payload. Returns VEIL_ETRUNC if the input ends inside a
 * field (or the message box is shorter than a tag), VEIL_ELIMIT if the input
 * or a length exceeds its maximum, VEIL_EPROTO if the reserved byte is not
 * zero. IDs are not validated here (the server may want to ack garbage);
 * veil_e2e_open checks them. On failure *m is cleared.
 */
int veil_msgbox_parse(struct veil_msgbox *m, const uint8_t *p, size_t len) VEIL_WUR;

/*
 * Appends the encoding of m to out. Returns VEIL_ELIMIT if a length exceeds
 * its maximum or out's maximum, VEIL_EINVAL for a NULL box with a non-zero
 * length, VEIL_ENOMEM. On failure out is unchanged.
 */
int veil_msgbox_encode(const struct veil_msgbox *m, struct veil_buf *out) VEIL_WUR;

/* Decrypted metadata, or what stands in for it in a legacy message. */
struct veil_e2e_meta {
	int present;         /* 1 if the message carried a metadata box */
	uint64_t message_id; /* equals the outer ID once veil_e2e_open succeeded */
	uint64_t created_at_ms;
	/*
	 * has_nickname: 1 if a nickname was sent. From the metadata this is the
	 * protobuf presence (an empty nickname means "clear it"); for a legacy
	 * message it is 1 if the legacy field is non-empty, and the caller uses it
	 * only for types that distribute the user profile.
	 */
	int has_nickname;
	size_t nickname_len;
	char nickname[VEIL_E2E_NICKNAME_MAX + 1]; /* valid UTF-8, NUL-terminated */
};

/* Parameters of an outgoing message (everything but keys and body). */
struct veil_e2e_out {
	uint8_t sender[VEIL_ID_LEN];
	uint8_t receiver[VEIL_ID_LEN];
	uint64_t msg_id;
	uint64_t created_at_ms; /* the outer field gets created_at_ms / 1000 */
	uint8_t flags;
	const char *nickname; /* NULL: no nickname; "": clear it; at most NICKNAME_MAX */
	uint8_t type;         /* enum veil_e2e_type (any value but 0) */
};

/*
 * Seals one message and appends the whole message-with-metadata-box to out:
 * inner container type || body || random PKCS#7 padding, boxed with
 * X25519HSalsa20(sender_sk, receiver_pk) under a fresh random nonce, and the
 * metadata (padding, message ID, creation time, nickname) in a secretbox
 * keyed by MMK = BLAKE2b(key=shared, salt "mm", personal "3ma-csp") under the
 * same nonce. The legacy nickname field is filled only towards Gateway IDs
 * ('*...'), as the specification asks.
 *
 * Returns VEIL_EINVAL for invalid IDs, sender == receiver, type 0 or a
 * nickname that is not UTF-8; VEIL_ELIMIT if body_len exceeds
 * VEIL_E2E_BODY_MAX, the nickname VEIL_E2E_NICKNAME_MAX or out its maximum;
 * VEIL_ECRYPTO for a low-order public key; VEIL_ENOMEM. On failure out is
 * unchanged. No secret material remains in memory this function owns.
 */
int veil_e2e_seal(struct veil_buf *out, const struct veil_e2e_out *o,
                  const uint8_t sender_sk[static VEIL_KEY_LEN],
                  const uint8_t receiver_pk[static VEIL_KEY_LEN], const uint8_t *body,
                  size_t body_len) VEIL_WUR;

/* As veil_e2e_seal with the precomputed X25519HSalsa20 shared key. */
int veil_e2e_seal_k(struct veil_buf *out, const struct veil_e2e_out *o,
                    const uint8_t shared[static VEIL_KEY_LEN], const uint8_t *body,
                    size_t body_len) VEIL_WUR;

/*
 * Opens a parsed message: checks that both IDs are valid and differ,
 * decrypts the metadata box (if any) and the message box, requires the
 * metadata's message_id to equal the outer one, strips and validates the
 * PKCS#7 padding and appends the body (without type) to body, which the
 * caller initialised (veil_buf_init_secret is advisable). A legacy message
 * (no metadata box) is accepted; meta then carries the outer ID and time.
 *
 * Returns VEIL_ECRYPTO on every failure of authentication, decoding or
 * validation (so a peer cannot tell them apart), VEIL_ENOMEM if body cannot
 * grow, VEIL_ELIMIT if the body exceeds body's maximum. On failure body is unchanged, *type is 0 and *meta is cleared.
 */
int veil_e2e_open(const struct veil_msgbox *m, const uint8_t receiver_sk[static VEIL_KEY_LEN],
                  const uint8_t sender_pk[static VEIL_KEY_LEN], uint8_t *type,
                  struct veil_buf *body, struct veil_e2e_meta *meta) VEIL_WUR;

/* As veil_e2e_open with the precomputed shared key. */
int veil_e2e_open_k(const struct veil_msgbox *m, const uint8_t shared[static VEIL_KEY_LEN],
                    uint8_t *type, struct veil_buf *body, struct veil_e2e_meta *meta) VEIL_WUR;

/*
 * The inner container on its own (for forward-security envelopes and tests).
 * _pad appends type || body || padding to out, where the padding length is
 * pad_len if it is 1..255, or random in 1..255 if pad_len is 0, and is then
 * raised so that body and padding (the type byte not counted) are at
 * least VEIL_E2E_MIN_PADDED_LEN bytes.
 * _unpad checks the padding (1..255 equal bytes, at least the type byte
 * left) and points *body into p. Returns VEIL_EPROTO on bad padding,
 * VEIL_ETRUNC on an empty input.
 */
int veil_e2e_inner_pad(struct veil_buf *out, uint8_t type, const uint8_t *body, size_t body_len,
                       unsigned pad_len) VEIL_WUR;
int veil_e2e_inner_unpad(const uint8_t *p, size_t len, uint8_t *type, const uint8_t **body,
                         size_t *body_len) VEIL_WUR;

/*
 * Metadata protobuf (veil.MessageMetadata). _encode appends the plaintext
 * for meta (pad_len zero bytes of padding, at most 32, VEIL_EINVAL beyond;
 * nickname only if has_nickname)
 * to out. _decode fills meta from a plaintext; returns VEIL_EPROTO for
 * undecodable protobuf or a nickname that is not UTF-8, VEIL_ELIMIT for a
 * nickname over VEIL_E2E_NICKNAME_MAX. present is set to 1.
 */
int veil_e2e_meta_encode(struct veil_buf *out, const struct veil_e2e_meta *meta,
                         size_t pad_len) VEIL_WUR;
int veil_e2e_meta_decode(struct veil_e2e_meta *meta, const uint8_t *p, size_t len) VEIL_WUR;

/*
 * Inner bodies. Encoders append to out and check limits (VEIL_ELIMIT,
 * VEIL_EINVAL). Decoders take the unpadded body and reject trailing bytes.
 *
 * text: UTF-8 without NUL (veil_utf8_valid). The encoder takes
 * 1..VEIL_E2E_TEXT_MAX bytes, the decoder 1..VEIL_E2E_TEXT_IN_MAX (what a
 * frame can carry) and points *text into p.
 */
int veil_e2e_text_encode(struct veil_buf *out, const char *text, size_t len) VEIL_WUR;
int veil_e2e_text_decode(const uint8_t *p, size_t len, const char **text,
                         size_t *text_len) VEIL_WUR;

/*
 * delivery receipt: status (1..4) || 1..N u64-le message IDs. The decoder
 * stores up to cap IDs in ids and their count in *n; more than cap (or than
 * VEIL_E2E_RECEIPT_MAX_IDS_IN) gives VEIL_ELIMIT, a bad status VEIL_EPROTO,
 * a length that is not 1 + 8k VEIL_ETRUNC.
 */
int veil_e2e_receipt_encode(struct veil_buf *out, uint8_t status, const uint64_t *ids,
                            size_t n) VEIL_WUR;
int veil_e2e_receipt_decode(const uint8_t *p, size_t len, uint8_t *status, uint64_t *ids,
                            size_t cap, size_t *n) VEIL_WUR;

/* typing indicator: one byte, 0 (stopped) or 1 (typing). */
int veil_e2e_typing_encode(struct veil_buf *out, int typing) VEIL_WUR;
int veil_e2e_typing_decode(const uint8_t *p, size_t len, int *typing) VEIL_WUR;

/*
 * Contact-matching hashes: HMAC-SHA256 with the directory's fixed keys.
 * Email: trimmed of ASCII whitespace and ASCII-lowercased (at most
 * VEIL_HASH_EMAIL_MAX bytes, must contain '@'). Phone: E.164 digits without
 * '+' (a leading '+' and surrounding whitespace are removed; 1..15 digits).
 * Return VEIL_EINVAL for input that does not normalise.
 */
#define VEIL_HASH_EMAIL_MAX 254
int veil_hash_email(uint8_t out[static 32], const char *email, size_t len) VEIL_WUR;
int veil_hash_phone(uint8_t out[static 32], const char *phone, size_t len) VEIL_WUR;

/*
 * The Gateway callback MAC: HMAC-SHA256 keyed with the API secret over the
 * concatenated string values from, to, messageId, date, nonce, box (as they
 * appear in the form, nonce and box in hex). Every field must be non-NULL.
 */
struct veil_gw_callback {
	const char *from;
	const char *to;
	const char *message_id;
	const char *date;
	const char *nonce;
	const char *box;
};
int veil_hash_gateway_callback(uint8_t out[static 32], const char *secret, size_t secret_len,
                               const struct veil_gw_callback *f) VEIL_WUR;

/*
 * Threema Safe: master = scrypt(password, salt = the 8-byte ID, N = 65536,
 * r = 8, p = 1, 64 bytes); backup_id = master[0..32), key = master[32..64).
 * Uses 64 MiB of memory. Returns VEIL_EINVAL for an empty password or one
 * over VEIL_SAFE_PASSWORD_MAX bytes, VEIL_ENOMEM if scrypt cannot allocate.
 */
#define VEIL_SAFE_PASSWORD_MAX 4096
int veil_safe_derive(uint8_t backup_id[static 32], uint8_t key[static 32], const char *password,
                     size_t password_len, const uint8_t id[static VEIL_ID_LEN]) VEIL_WUR;

/*
 * Groups. A group is named by its creator's ID and a random 64-bit group ID,
 * never by the group ID alone. Its members (the creator excluded) are set by
 * group-setup messages from the creator. VEIL_GROUP_MAX_MEMBERS counts the
 * creator, so a setup lists at most VEIL_GROUP_MAX_MEMBERS - 1 IDs.
 */
#define VEIL_GROUP_MAX_MEMBERS 256
#define VEIL_GROUP_NAME_MAX 256 /* bytes of UTF-8 */
/* group-creator-container: group-id u64 || inner. */
#define VEIL_GROUP_CREATOR_HDR_LEN 8
/* group-member-container: creator(8) || group-id u64 || inner. */
#define VEIL_GROUP_MEMBER_HDR_LEN (VEIL_ID_LEN + 8)

enum veil_group_container {
	VEIL_GROUP_CONTAINER_CREATOR = 1, /* sent by the creator only */
	VEIL_GROUP_CONTAINER_MEMBER = 2,  /* sent by any member */
};

/* Which container a group message type uses: an enum veil_group_container, or 0 for a non-group type. */
int veil_e2e_group_container(uint8_t type);

/*
 * Container codecs. _wrap appends the header and inner to out (VEIL_EINVAL
 * for an invalid creator ID, VEIL_ELIMIT if the result would exceed
 * VEIL_E2E_BODY_MAX); on failure out is unchanged. _unwrap points *inner into
 * p; VEIL_ETRUNC if p is shorter than the header, VEIL_EPROTO for an invalid
 * creator ID. The inner part may be empty.
 */
int veil_e2e_group_member_wrap(struct veil_buf *out, const uint8_t creator[static VEIL_ID_LEN],
                               uint64_t gid, const uint8_t *inner, size_t len) VEIL_WUR;
int veil_e2e_group_member_unwrap(const uint8_t *p, size_t len, uint8_t creator[static VEIL_ID_LEN],
                                 uint64_t *gid, const uint8_t **inner, size_t *inner_len) VEIL_WUR;
int veil_e2e_group_creator_wrap(struct veil_buf *out, uint64_t gid, const uint8_t *inner,
                                size_t len) VEIL_WUR;
int veil_e2e_group_creator_unwrap(const uint8_t *p, size_t len, uint64_t *gid,
                                  const uint8_t **inner, size_t *inner_len) VEIL_WUR;

/*
 * group-setup body: the members' IDs, 8 bytes each, the creator excluded; an
 * empty list removes the receiver (or disbands the group). The encoder takes
 * at most VEIL_GROUP_MAX_MEMBERS - 1 valid IDs. The decoder accepts up to
 * VEIL_GROUP_MAX_MEMBERS (a sender may list the creator, whom receivers drop)
 * and at most cap: VEIL_ETRUNC if len is not a multiple of 8, VEIL_ELIMIT
 * beyond the limits, VEIL_EPROTO for an invalid ID. Duplicates are kept.
 */
int veil_e2e_group_setup_encode(struct veil_buf *out, const uint8_t (*members)[VEIL_ID_LEN],
                                size_t n) VEIL_WUR;
int veil_e2e_group_setup_decode(const uint8_t *p, size_t len, uint8_t (*members)[VEIL_ID_LEN],
                                size_t cap, size_t *n) VEIL_WUR;

/*
 * group-name body: UTF-8 without NUL, 0..VEIL_GROUP_NAME_MAX bytes (empty
 * clears the name). The decoder points *name into p (not NUL-terminated) and
 * returns VEIL_ELIMIT or VEIL_EPROTO.
 */
int veil_e2e_group_name_encode(struct veil_buf *out, const char *name, size_t len) VEIL_WUR;
int veil_e2e_group_name_decode(const uint8_t *p, size_t len, const char **name,
                               size_t *name_len) VEIL_WUR;

/* ---------------------------------------------------------------------- */
/* File messages (type 0x17) and blob encryption                          */
/* ---------------------------------------------------------------------- */

#define VEIL_FILE_KEY_LEN 32
#define VEIL_BLOB_ID_LEN 16
/* The fixed secretbox nonces of blobs: 00..01 for a file, 00..02 for its thumbnail. */
#define VEIL_FILE_NONCE_FILE 1
#define VEIL_FILE_NONCE_THUMB 2
/* Bound on the plaintext size "s" accepted in a file message; servers set their own. */
#define VEIL_FILE_SIZE_MAX (((uint64_t)1) << 40)

/* Writes the fixed nonce 00..00 which (VEIL_FILE_NONCE_FILE or _THUMB). */
void veil_file_nonce(uint8_t nonce[static VEIL_NONCE_LEN], int which);

/*
 * A secretbox (XSalsa20-Poly1305, combined form tag(16) || ciphertext)
 * computed over a message given in pieces of any size, in constant memory:
 * the tag and ciphertext equal those of one crypto_secretbox_easy over the
 * whole message. Encrypt: init, encrypt each piece in order, final gives the
 * tag (which goes first on the wire). Decrypt: init, decrypt each piece of
 * ciphertext, then verify the tag; the plaintext must not be trusted (or
 * kept) unless verify returns 0. final, verify and wipe erase the state.
 */
#define VEIL_SBSTREAM_MAC_STATE 256
struct veil_sbstream {
	_Alignas(16) unsigned char mac[VEIL_SBSTREAM_MAC_STATE];
	uint8_t key[VEIL_FILE_KEY_LEN];
	uint8_t nonce[VEIL_NONCE_LEN];
	uint64_t off; /* keystream bytes used so far (32 for the Poly1305 key) */
};
int veil_sbstream_init(struct veil_sbstream *s, const uint8_t key[static VEIL_FILE_KEY_LEN],
                       const uint8_t nonce[static VEIL_NONCE_LEN]) VEIL_WUR;
/* out may equal in. */
void veil_sbstream_encrypt(struct veil_sbstream *s, uint8_t *out, const uint8_t *in, size_t len);
void veil_sbstream_decrypt(struct veil_sbstream *s, uint8_t *out, const uint8_t *in, size_t len);
void veil_sbstream_final(struct veil_sbstream *s, uint8_t tag[static VEIL_MAC_LEN]);
/* 0 if tag authenticates everything decrypted, else VEIL_ECRYPTO. */
int veil_sbstream_verify(struct veil_sbstream *s, const uint8_t tag[static VEIL_MAC_LEN]) VEIL_WUR;
void veil_sbstream_wipe(struct veil_sbstream *s);

/* Rendering types ("j"). */
#define VEIL_FILE_RENDER_FILE 0
#define VEIL_FILE_RENDER_MEDIA 1
#define VEIL_FILE_RENDER_STICKER 2

#define VEIL_FILE_MIME_MAX 255
#define VEIL_FILE_NAME_MAX 256
#define VEIL_FILE_CAPTION_MAX 6000
#define VEIL_FILE_CORRELATION_MAX 64
#define VEIL_FILE_META_MAX 1024 /* "x" as compact JSON */
#define VEIL_FILE_JSON_MAX VEIL_E2E_BODY_MAX
#define VEIL_FILE_JSON_DEPTH 4

/*
 * The JSON body of a file message. Strings are NUL-terminated UTF-8; an
 * empty name, caption or correlation ID is left out of the JSON. size is
 * the plaintext size ("s"). key is secret: wipe the struct after use.
 */
struct veil_e2e_file {
	int rendering; /* VEIL_FILE_RENDER_* */
	uint8_t key[VEIL_FILE_KEY_LEN];
	uint8_t blob_id[VEIL_BLOB_ID_LEN];
	char mime[VEIL_FILE_MIME_MAX + 1];
	char name[VEIL_FILE_NAME_MAX + 1];
	uint64_t size;
	int has_thumb;
	uint8_t thumb_blob_id[VEIL_BLOB_ID_LEN];
	char thumb_mime[VEIL_FILE_MIME_MAX + 1];
	char caption[VEIL_FILE_CAPTION_MAX + 1];
	char correlation[VEIL_FILE_CORRELATION_MAX + 1];
	char meta_json[VEIL_FILE_META_MAX + 1]; /* "" or a JSON object */
};

/*
 * Appends the JSON of f to out: "b", "k" (hex), "m", "n", "s", "i" (1 for
 * media, else 0, for older readers), "j", and "t"/"p", "d", "c", "x" when
 * set. VEIL_EINVAL for a field out of range, VEIL_ELIMIT beyond
 * VEIL_FILE_JSON_MAX.
 */
int veil_e2e_file_encode(struct veil_buf *out, const struct veil_e2e_file *f) VEIL_WUR;
/*
 * Parses a file message body (untrusted). Required: "b", "k", "m", "s";
 * "j" (else "i") outside 0..2 reads as a plain file; "t" without "p" gets
 * image/jpeg. Unknown fields are ignored. Returns 0, VEIL_EPROTO or
 * VEIL_ELIMIT; on failure f is zeroed.
 */
int veil_e2e_file_decode(const uint8_t *p, size_t len, struct veil_e2e_file *f) VEIL_WUR;

#endif
