/*
 * The Chat Server Protocol (CSP) transport: handshake, encrypted frames and
 * the payload container, for both the client and the server side.
 *
 * Nonces are cookie(16) || u64-le counter; each direction has its own
 * cookie (CCK for client->server, SCK for server->client) and counter,
 * which starts at 1 and increases by one per box, handshake boxes included.
 */
#ifndef VEIL_CSP_H
#define VEIL_CSP_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"
#include "veil/util.h"

#define VEIL_CSP_CLIENT_HELLO_LEN 48
#define VEIL_CSP_SERVER_HELLO_LEN 80
#define VEIL_CSP_LOGIN_DATA_LEN 128
#define VEIL_CSP_LOGIN_LEN 144    /* box of the 128-byte login data */
#define VEIL_CSP_LOGIN_ACK_LEN 32 /* box of 16 reserved bytes */
#define VEIL_CSP_MAX_FRAME 8192   /* largest frame length (the u16 prefix excluded) */
#define VEIL_CSP_MAX_PAYLOAD (VEIL_CSP_MAX_FRAME - VEIL_MAC_LEN)
#define VEIL_CSP_MAX_EXT 4096 /* largest login extensions box we accept */
#define VEIL_CSP_CLIENT_INFO_MAX 255

/* Payload container types. */
enum veil_csp_type {
	VEIL_CSP_ECHO_REQUEST = 0x00,
	VEIL_CSP_OUTGOING_MESSAGE = 0x01,
	VEIL_CSP_INCOMING_MESSAGE = 0x02,
	VEIL_CSP_UNBLOCK_INCOMING = 0x03,
	VEIL_CSP_PUSH_TOKEN = 0x20,
	VEIL_CSP_PUSH_TOKEN_HIGH = 0x24,
	VEIL_CSP_DELETE_PUSH_TOKENS = 0x25,
	VEIL_CSP_IDLE_TIMEOUT = 0x30,
	VEIL_CSP_ECHO_RESPONSE = 0x80,
	VEIL_CSP_OUTGOING_ACK = 0x81,
	VEIL_CSP_INCOMING_ACK = 0x82,
	VEIL_CSP_QUEUE_SEND_COMPLETE = 0xd0,
	VEIL_CSP_DEVICE_COOKIE_CHANGED = 0xd2,
	VEIL_CSP_CLEAR_DEVICE_COOKIE = 0xd3,
	VEIL_CSP_CLOSE_ERROR = 0xe0,
	VEIL_CSP_ALERT = 0xe1,
};

/* Login extension types. */
enum veil_csp_ext_type {
	VEIL_CSP_EXT_CLIENT_INFO = 0x00,
	VEIL_CSP_EXT_DEVICE_ID = 0x01,
	VEIL_CSP_EXT_FEATURES = 0x02, /* "message-payload-version" in the spec; a bit mask */
	VEIL_CSP_EXT_DEVICE_COOKIE = 0x03,
};

/* Bits of the features extension. */
#define VEIL_CSP_FEATURE_METADATA 0x01 /* message-with-metadata-box payloads */
#define VEIL_CSP_FEATURE_ECHO 0x02     /* the client answers the server's echo requests */

/* One direction's nonce state. */
struct veil_csp_nonce {
	uint8_t cookie[VEIL_COOKIE_LEN];
	uint64_t counter; /* the counter of the next box */
};

/* Builds the next nonce; fails (VEIL_ELIMIT) rather than wrap the counter. */
int veil_csp_nonce_next(struct veil_csp_nonce *n, uint8_t nonce[static VEIL_NONCE_LEN]) VEIL_WUR;

/* An established session: the transport key and both nonce states. */
struct veil_csp_session {
	uint8_t key[VEIL_KEY_LEN]; /* X25519HSalsa20(TCK, TSK) */
	struct veil_csp_nonce tx;
	struct veil_csp_nonce rx;
};

/*
 * Seals one payload into a frame: u16-le length || box. out must hold
 * 2 + VEIL_MAC_LEN + len bytes; len is at most VEIL_CSP_MAX_PAYLOAD.
 */
int veil_csp_frame_seal(struct veil_csp_session *s, uint8_t *out, const uint8_t *payload,
                        size_t len) VEIL_WUR;
/*
 * Opens the box of one frame (the bytes after the length prefix) into out,
 * which must hold len - VEIL_MAC_LEN bytes. Any failure is fatal to the
 * connection: the nonce counter has moved on.
 */
int veil_csp_frame_open(struct veil_csp_session *s, uint8_t *out, const uint8_t *box,
                        size_t len) VEIL_WUR;
void veil_csp_session_wipe(struct veil_csp_session *s);

/* Login extensions and client information as the server sees them. */
struct veil_csp_login_info {
	uint8_t identity[VEIL_ID_LEN];
	uint8_t vouch[32];
	char client_info[VEIL_CSP_CLIENT_INFO_MAX + 1]; /* NUL-terminated, may be empty */
	int has_ext;                                    /* the login carried an extensions box */
	uint16_t ext_len;                               /* its length in bytes (box included) */
	int has_device_id;
	uint64_t device_id;
	uint8_t features; /* VEIL_CSP_FEATURE_* bits; 0 for a legacy client */
	int has_device_cookie;
	uint8_t device_cookie[VEIL_COOKIE_LEN];
};

/* --- client side --- */

struct veil_csp_client {
	uint8_t server_pk[VEIL_KEY_LEN]; /* SK.public, pinned */
	uint8_t tck_pk[VEIL_KEY_LEN];
	uint8_t tck_sk[VEIL_KEY_LEN];
	uint8_t tsk_pk[VEIL_KEY_LEN];
	struct veil_csp_session sess; /* tx = CCK, rx = SCK */
};

/* Starts a handshake: makes TCK and CCK and writes the client-hello. */
void veil_csp_client_hello(struct veil_csp_client *c, const uint8_t server_pk[static VEIL_KEY_LEN],
                           uint8_t out[static VEIL_CSP_CLIENT_HELLO_LEN]);
/*
 * Reads the server-hello: VEIL_ECRYPTO if it was not made by the pinned
 * server key, VEIL_EPROTO if the echoed cookie is wrong.
 */
int veil_csp_client_server_hello(struct veil_csp_client *c,
                                 const uint8_t in[static VEIL_CSP_SERVER_HELLO_LEN]) VEIL_WUR;
/*
 * Writes the login (144 bytes, then the extensions box if any) into out.
 * ck_sk is the identity's secret key, used only for the vouch. client_info
 * is put in extension 0; device_id 0 means none.
 */
int veil_csp_client_login(struct veil_csp_client *c, struct veil_buf *out,
                          const uint8_t identity[static VEIL_ID_LEN],
                          const uint8_t ck_sk[static VEIL_KEY_LEN], const char *client_info,
                          uint64_t device_id, const uint8_t *device_cookie) VEIL_WUR;
int veil_csp_client_login_ack(struct veil_csp_client *c,
                              const uint8_t in[static VEIL_CSP_LOGIN_ACK_LEN]) VEIL_WUR;

/* --- server side --- */

struct veil_csp_server {
	uint8_t tck_pk[VEIL_KEY_LEN];
	uint8_t tsk_pk[VEIL_KEY_LEN];
	uint8_t tsk_sk[VEIL_KEY_LEN];
	struct veil_csp_session sess; /* tx = SCK, rx = CCK */
};

/*
 * Reads the client-hello and writes the server-hello. sk is the server's
 * long-term secret key.
 */
int veil_csp_server_hello(struct veil_csp_server *s, const uint8_t sk[static VEIL_KEY_LEN],
                          const uint8_t in[static VEIL_CSP_CLIENT_HELLO_LEN],
                          uint8_t out[static VEIL_CSP_SERVER_HELLO_LEN]) VEIL_WUR;
/*
 * Opens the 144-byte login box and parses the login data. On success
 * info->ext_len tells how many more bytes (the extensions box) to read
 * before calling veil_csp_server_login_ext (0 = none).
 */
int veil_csp_server_login(struct veil_csp_server *s, const uint8_t in[static VEIL_CSP_LOGIN_LEN],
                          struct veil_csp_login_info *info) VEIL_WUR;
int veil_csp_server_login_ext(struct veil_csp_server *s, const uint8_t *in, size_t len,
                              struct veil_csp_login_info *info) VEIL_WUR;
/*
 * Checks the vouch against the identity's public key ck_pk (from the
 * directory) and the server's secret key sk. Returns 0 or VEIL_EAUTH.
 */
/*
 * The plaintext parsers behind the two functions above, exposed for tests
 * and fuzzing. sck is the server's cookie, which the login data repeats.
 */
int veil_csp_login_data_parse(const uint8_t data[static VEIL_CSP_LOGIN_DATA_LEN],
                              const uint8_t sck[static VEIL_COOKIE_LEN],
                              struct veil_csp_login_info *info) VEIL_WUR;
int veil_csp_login_ext_parse(const uint8_t *plain, size_t len,
                             struct veil_csp_login_info *info) VEIL_WUR;
int veil_csp_server_vouch_check(struct veil_csp_server *s, const uint8_t sk[static VEIL_KEY_LEN],
                                const uint8_t ck_pk[static VEIL_KEY_LEN],
                                const struct veil_csp_login_info *info) VEIL_WUR;
/*
 * The same with SS1 = X25519HSalsa20(SK, CK) precomputed: SS1 depends only on
 * the server's and the identity's long-term keys, so a server may keep it for
 * identities that log in often and save one X25519 per login.
 */
int veil_csp_server_vouch_check_ss1(struct veil_csp_server *s,
                                    const uint8_t ss1[static VEIL_KEY_LEN],
                                    const uint8_t ck_pk[static VEIL_KEY_LEN],
                                    const struct veil_csp_login_info *info) VEIL_WUR;
int veil_csp_server_login_ack(struct veil_csp_server *s,
                              uint8_t out[static VEIL_CSP_LOGIN_ACK_LEN]) VEIL_WUR;
/* Wipes the ephemeral keys once the handshake is done (the session stays). */
void veil_csp_server_forget(struct veil_csp_server *s);

/* --- payload container --- */

/* Parses type || 3 reserved bytes || data; data points into in. */
int veil_csp_payload_parse(const uint8_t *in, size_t len, uint8_t *type, const uint8_t **data,
                           size_t *datalen) VEIL_WUR;
/* Writes the 4-byte container header. */
void veil_csp_payload_header(uint8_t out[static 4], uint8_t type);

/* Ack body: identity(8) || message id u64-le. */
#define VEIL_CSP_ACK_LEN 16
int veil_csp_ack_parse(const uint8_t *in, size_t len, uint8_t id[static VEIL_ID_LEN],
                       uint64_t *msg_id) VEIL_WUR;
void veil_csp_ack_encode(uint8_t out[static VEIL_CSP_ACK_LEN], const uint8_t id[static VEIL_ID_LEN],
                         uint64_t msg_id);

/* close-error body: can-reconnect u8 || UTF-8 text. text is copied and NUL-terminated. */
int veil_csp_close_error_parse(const uint8_t *in, size_t len, int *can_reconnect, char *text,
                               size_t textcap) VEIL_WUR;

#endif
