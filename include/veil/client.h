/*
 * The client side of 1:1 messaging: a blocking CSP connection, the local
 * profile (identity, contacts, replay store, message log) and a messenger
 * layer that ties them to the directory and the end-to-end codec.
 *
 * Everything here is synchronous and single-threaded: a command-line client
 * connects, does one job with a deadline and disconnects.
 */
#ifndef VEIL_CLIENT_H
#define VEIL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"
#include "veil/csp.h"
#include "veil/e2e.h"
#include "veil/md.h"
#include "veil/rendezvous.h"
#include "veil/util.h"
#include "veil/vault.h"

/* ---------------------------------------------------------------------- */
/* Connection                                                             */
/* ---------------------------------------------------------------------- */

#define VEIL_CONN_ERRTEXT_MAX 256
/* Largest data part of one payload (the container header excluded). */
#define VEIL_CONN_MAX_DATA (VEIL_CSP_MAX_PAYLOAD - 4)

/*
 * One CSP connection. Embedded by the caller; veil_conn_open fills it,
 * veil_conn_close releases it. After any failure errtext holds a one-line
 * reason without a trailing newline: the operating system's text for
 * VEIL_EIO, the server's text for a close-error (VEIL_ECLOSED).
 */
struct veil_conn_md;

struct veil_conn {
	int fd;
	int io_timeout_ms; /* bound on every write */
	int can_reconnect; /* set from a close-error; 1 for a plain disconnect */
	int close_error;   /* the connection ended with the server's close-error */
	char errtext[VEIL_CONN_ERRTEXT_MAX];
	struct veil_csp_session sess;
	struct veil_conn_md *md; /* through the mediator (veil_conn_open_md), else NULL */
	int md_close_code;       /* the mediator's WebSocket close code, 0 if none */
	size_t rlen;             /* bytes buffered in rbuf */
	uint8_t rbuf[2 + VEIL_CSP_MAX_FRAME];
	uint8_t plain[VEIL_CSP_MAX_FRAME];
};

/*
 * Connects over TCP to host:port and runs the whole handshake with the
 * pinned server key, the identity and its secret key ck_sk (used only for
 * the vouch). client_info may be NULL. Every step shares one deadline of
 * timeout_ms. Returns:
 *   VEIL_EIO      the TCP connection failed (errtext: the OS reason)
 *   VEIL_ETIMEOUT the deadline passed
 *   VEIL_ECRYPTO  the server-hello did not open with server_pk
 *                 (the server holds another key)
 *   VEIL_EPROTO   the server broke the handshake format
 *   VEIL_ECLOSED  the server closed the connection during the handshake
 *   VEIL_EAUTH    the server closed it right after our login, i.e. it
 *                 refused the identity or the vouch
 * On failure the connection is closed and c->errtext says why.
 */
int veil_conn_open(struct veil_conn *c, const char *host, uint16_t port,
                   const uint8_t server_pk[static VEIL_KEY_LEN],
                   const uint8_t identity[static VEIL_ID_LEN],
                   const uint8_t ck_sk[static VEIL_KEY_LEN], const char *client_info,
                   int timeout_ms) VEIL_WUR;

/* ---------------------------------------------------------------------- */
/* WebSocket client (RFC 6455, binary messages)                            */
/* ---------------------------------------------------------------------- */

#define VEIL_WS_URL_MAX 1024
#define VEIL_WS_MAX_MESSAGE 65536

/*
 * One blocking WebSocket connection over libcurl (ws:// plain, wss:// with
 * TLS verified against the system store or cacert). About 130 KiB: keep it
 * on the heap.
 */
struct veil_ws {
	void *curl;
	int fd;
	int io_timeout_ms;
	int close_code; /* the server's close code once it closed (1006: no close frame) */
	int mop, deliver_done;
	size_t mlen, rlen;
	char errtext[VEIL_CONN_ERRTEXT_MAX];
	uint8_t rbuf[14 + VEIL_WS_MAX_MESSAGE];
	uint8_t msg[VEIL_WS_MAX_MESSAGE];
};

/*
 * Connects to url (ws://host:port/path or wss://...) and upgrades, checking
 * Sec-WebSocket-Accept. VEIL_EINVAL (bad URL), VEIL_EIO / VEIL_ETIMEOUT
 * (connect or TLS failed), VEIL_EPROTO (no upgrade: errtext has the status
 * line). On failure w is closed.
 */
int veil_ws_open(struct veil_ws *w, const char *url, const char *cacert, int timeout_ms) VEIL_WUR;
/* Sends one binary message (at most VEIL_WS_MAX_MESSAGE bytes). */
int veil_ws_send(struct veil_ws *w, const uint8_t *p, size_t n) VEIL_WUR;
/*
 * Waits up to timeout_ms (negative: forever) for the next whole message;
 * *msg points into w and stays valid until the next call. Pings are
 * answered. VEIL_ETIMEOUT leaves the connection usable; VEIL_ECLOSED with
 * close_code set when the server closed; other errors close it.
 */
int veil_ws_recv(struct veil_ws *w, const uint8_t **msg, size_t *len, int timeout_ms) VEIL_WUR;
int veil_ws_is_open(const struct veil_ws *w);
int veil_ws_fd(const struct veil_ws *w);
/* Sends a close frame with code (if > 0) and closes; safe to call twice. */
void veil_ws_close(struct veil_ws *w, int code);

/* ---------------------------------------------------------------------- */
/* CSP through the mediator (multi-device)                                 */
/* ---------------------------------------------------------------------- */

/* What a device needs to reach its group's mediator. */
struct veil_md_params {
	const char *url;          /* the mediator's base URL (ws[s]://host:port/mediator/) */
	const char *cacert;       /* CA file for wss://, or NULL for the system store */
	const char *server_group; /* of the ClientUrlInfo; NULL for the default */
	const struct veil_md_keys *keys;
	uint64_t device_id;     /* the D2M device ID */
	uint64_t csp_device_id; /* sent in the CSP login's device-id extension */
	int expect_new;         /* 1 on the device's first connection (slot state NEW) */
	const char *label;      /* device info, sealed under DGDIK */
	const char *platform_details;
	const char *app_version;
	int ignore_clock_skew; /* connect although the clocks differ by more than 20 minutes */
};

/*
 * The specification's limit on the difference between the device's clock
 * and the mediator's (ServerInfo.current_time): beyond it the device does
 * not connect (VEIL_ECLOCK) unless the user says so.
 */
#define VEIL_MD_CLOCK_SKEW_MAX_MS (20u * 60u * 1000u)

/*
 * The payload type veil_conn_recv_payload reports when, through the
 * mediator, a D2M message (anything but proxy and reflect-ack) waits: take
 * it with veil_conn_md_take. Not a CSP payload type.
 */
#define VEIL_CONN_D2M 0xff

/*
 * Like veil_conn_open, but through the mediator: the D2M handshake, then
 * the CSP handshake in proxy containers with the device-id extension.
 * Close codes of the mediator end it with VEIL_ECLOSED, errtext naming the
 * reason, md_close_code and can_reconnect set.
 */
int veil_conn_open_md(struct veil_conn *c, const struct veil_md_params *mp,
                      const uint8_t server_pk[static VEIL_KEY_LEN],
                      const uint8_t identity[static VEIL_ID_LEN],
                      const uint8_t ck_sk[static VEIL_KEY_LEN], const char *client_info,
                      int timeout_ms) VEIL_WUR;
/* Takes the oldest D2M message of the inbox; *payload is the caller's to free(). */
int veil_conn_md_take(struct veil_conn *c, uint8_t *type, uint8_t **payload, size_t *len) VEIL_WUR;
/* Takes the first message of type want, reading until timeout_ms; the others keep their order. */
int veil_conn_md_wait_type(struct veil_conn *c, uint8_t want, int timeout_ms, uint8_t **payload,
                           size_t *len) VEIL_WUR;
/* The same for the first message of any of the nwant types in want; *type says which. */
int veil_conn_md_wait_types(struct veil_conn *c, const uint8_t *want, size_t nwant, int timeout_ms,
                            uint8_t *type, uint8_t **payload, size_t *len) VEIL_WUR;
/* Sends a whole D2M container (type || reserved || payload). */
int veil_conn_md_send(struct veil_conn *c, const uint8_t *container, size_t len) VEIL_WUR;
/* Seals a serialised d2d.Envelope (padding added) and reflects it; *id is its reflect-id. */
int veil_conn_md_reflect(struct veil_conn *c, const uint8_t *envelope, size_t len, int ephemeral,
                         uint32_t *id) VEIL_WUR;
/* Waits for the reflect-ack of id (proxy bytes and other messages are kept meanwhile). */
int veil_conn_md_wait_ack(struct veil_conn *c, uint32_t id, int timeout_ms,
                          uint64_t *timestamp) VEIL_WUR;
/* Whether the queue was reported dry, we lead, and whether the inbox dropped something. */
int veil_conn_md_state(const struct veil_conn *c, int *dry, int *leader, int *overflow);
int veil_conn_md_pending(const struct veil_conn *c);
const struct veil_md_keys *veil_conn_md_keys(const struct veil_conn *c);
const struct veil_md_server_info *veil_conn_md_server_info(const struct veil_conn *c);
/* Internal to lib/client (conn.c's transport through the mediator). */
int veil_conn_md_open(struct veil_conn *c, const struct veil_md_params *mp, uint64_t deadline);
int veil_conn_md_read(struct veil_conn *c, uint64_t deadline);
int veil_conn_md_write(struct veil_conn *c, const uint8_t *p, size_t n);
/* Moves backlogged CSP bytes into the read buffer as far as they fit; 1 if any moved. */
int veil_conn_md_unbacklog(struct veil_conn *c);
void veil_conn_md_free(struct veil_conn *c);

/* Sends one payload (type || 3 zero bytes || data), len <= VEIL_CONN_MAX_DATA. */
int veil_conn_send_payload(struct veil_conn *c, uint8_t type, const uint8_t *data,
                           size_t len) VEIL_WUR;

/*
 * Waits up to timeout_ms (negative: forever) for the next payload and
 * copies its data part into buf (VEIL_CONN_MAX_DATA bytes), its length into
 * *len. Echo requests are answered here and never returned. Alerts (0xe1)
 * are returned like any other payload. A close-error ends the connection
 * with VEIL_ECLOSED, errtext set to the server's text and can_reconnect to
 * its flag. VEIL_ETIMEOUT leaves the connection usable (a partly received
 * frame stays buffered); every other error closes it.
 */
int veil_conn_recv_payload(struct veil_conn *c, int timeout_ms, uint8_t *type,
                           uint8_t buf[static VEIL_CONN_MAX_DATA], size_t *len) VEIL_WUR;

/* Returns 1 while the connection is open. */
int veil_conn_is_open(const struct veil_conn *c);
/* Closes the socket and wipes the session; safe to call twice. */
void veil_conn_close(struct veil_conn *c);

/* ---------------------------------------------------------------------- */
/* Reconnect backoff                                                      */
/* ---------------------------------------------------------------------- */

/*
 * Exponential backoff with jitter: the n-th delay is drawn uniformly from
 * [nominal/2, nominal] where nominal = min(base_ms * 2^n, max_ms).
 */
struct veil_backoff {
	uint32_t base_ms;
	uint32_t max_ms;
	uint32_t nominal_ms; /* nominal value of the next delay */
};

#define VEIL_BACKOFF_BASE_MS 250
#define VEIL_BACKOFF_MAX_MS 8000

void veil_backoff_init(struct veil_backoff *b, uint32_t base_ms, uint32_t max_ms);
/* Returns the next delay in milliseconds and advances the schedule. */
uint32_t veil_backoff_next(struct veil_backoff *b);
void veil_backoff_reset(struct veil_backoff *b);

/* ---------------------------------------------------------------------- */
/* Profile                                                                */
/* ---------------------------------------------------------------------- */

#define VEIL_PROFILE_PATH_MAX 1024
#define VEIL_PROFILE_URL_MAX 512
#define VEIL_PROFILE_HOST_MAX 256
#define VEIL_PROFILE_NICK_MAX 256     /* bytes of UTF-8, like VEIL_E2E_NICKNAME_MAX */
#define VEIL_PROFILE_CHAT_ADDRS_MAX 8 /* = VEIL_DIR_MAX_CHAT_ADDRS */

/*
 * The profile of one identity, kept in a directory (VEIL_HOME, default
 * ~/.veil, mode 0700): "profile.json" (everything public) and "veil.db"
 * (SQLite, every record sealed: contacts, E2E nonces seen, groups, the
 * device group, message log; the secret key wrapped under the passphrase,
 * see include/veil/vault.h), and "store.key" for a profile without
 * passphrase. sk lives in sodium_malloc memory.
 */
struct veil_profile {
	char home[VEIL_PROFILE_PATH_MAX];
	uint8_t id[VEIL_ID_LEN];
	uint8_t pk[VEIL_KEY_LEN];
	uint8_t *sk; /* VEIL_KEY_LEN bytes, guarded */
	char server_url[VEIL_PROFILE_URL_MAX];
	char dir_url[VEIL_PROFILE_URL_MAX]; /* the directory's base URL */
	uint8_t sign_pk[VEIL_KEY_LEN];      /* provisioning signature key, pinned */
	char chat_host[VEIL_PROFILE_HOST_MAX];
	uint16_t chat_port;
	/*
	 * Every chat node of the server (the provisioning document's
	 * chat.addresses, "chat_addresses" in profile.json), tried in order from
	 * the one that last took a login (chat_cur, kept in memory); with none,
	 * chat_host:chat_port alone.
	 */
	struct {
		char host[VEIL_PROFILE_HOST_MAX];
		uint16_t port;
	} chat_addrs[VEIL_PROFILE_CHAT_ADDRS_MAX];
	size_t n_chat_addrs;
	size_t chat_cur;
	uint8_t server_pk[VEIL_KEY_LEN];
	char nickname[VEIL_PROFILE_NICK_MAX + 1];
	/* home/ca.pem if the profile has its own CA bundle for https, else "" */
	char ca_file[VEIL_PROFILE_PATH_MAX + 16];
	void *db;    /* sqlite3 * */
	void *vault; /* the store's keys (lib/client/vault_int.h), guarded memory */
	/*
	 * Multi-device, from "md.json" (mode 0600; absent for a single-device
	 * profile): the device group key and this device's IDs.
	 */
	int md;
	uint8_t md_dgk[VEIL_MD_DGK_LEN];
	uint64_t md_device_id;
	uint64_t md_csp_device_id;
	int md_registered; /* the mediator has this device's slot (slot state EXISTING) */
	char md_url[VEIL_PROFILE_URL_MAX];
	char md_label[VEIL_MD_INFO_STR_MAX + 1];
};

/* The chat server a connection of p goes to now (the last one tried). */
static inline const char *veil_profile_chat_host(const struct veil_profile *p)
{
	return p->n_chat_addrs > 0 ? p->chat_addrs[p->chat_cur].host : p->chat_host;
}
static inline unsigned veil_profile_chat_port(const struct veil_profile *p)
{
	return p->n_chat_addrs > 0 ? p->chat_addrs[p->chat_cur].port : p->chat_port;
}

/* Writes md.json from p's md fields (atomically, mode 0600). */
int veil_profile_md_save(struct veil_profile *p) VEIL_WUR;

/*
 * Resolves the profile directory: $VEIL_HOME if set and non-empty, else
 * $HOME/.veil. VEIL_EINVAL if neither variable is usable, VEIL_ELIMIT if the
 * path does not fit.
 */
int veil_profile_home(char *out, size_t cap) VEIL_WUR;

/*
 * Makes sure a profile can be written to home before anything is created
 * elsewhere: creates the directory (mode 0700) if it is missing, checks
 * that it is a directory, and writes, syncs and removes a probe file in it.
 * Returns 0, or VEIL_EIO with one sentence in why (e.g. "cannot write
 * VEIL_HOME /x: permission denied").
 */
int veil_profile_check_home(const char *home, char *why, size_t cap) VEIL_WUR;

/*
 * Prepares an empty profile in memory for home (allocates sk). The caller
 * fills the fields and calls veil_profile_create. Always pair with
 * veil_profile_release.
 */
int veil_profile_init(struct veil_profile *p, const char *home) VEIL_WUR;
/*
 * Creates home (0700) if needed and writes the profile files: the store,
 * with a passphrase from the passphrase source if veil_vault_set_new_level
 * set a level (none by default), then profile.json. VEIL_EEXIST if home
 * already holds a profile (nothing is overwritten).
 */
int veil_profile_create(struct veil_profile *p) VEIL_WUR;
/* Rewrites profile.json atomically (after a nickname change, say). */
int veil_profile_save(struct veil_profile *p) VEIL_WUR;
/*
 * Loads the profile in home (veil_profile_init is done here), asking the
 * passphrase source (veil_vault_set_passphrase_fn) if it has a passphrase.
 * VEIL_ENOTFOUND if there is no profile, VEIL_EPROTO if a file is damaged,
 * VEIL_ECORRUPT if the store is, VEIL_EIO if store.key is readable by others
 * or the database cannot be opened, VEIL_EPASS for a wrong passphrase,
 * VEIL_ELOCKED if none was given, VEIL_EPLAIN for a profile of the first,
 * plaintext format (veil_profile_migrate converts it). Nothing is changed
 * on failure.
 */
int veil_profile_open(struct veil_profile *p, const char *home) VEIL_WUR;
/* Closes the database and wipes the secret key. Safe on a zeroed struct. */
void veil_profile_release(struct veil_profile *p);

#define VEIL_PROFILE_CA_MAX (1024 * 1024) /* largest CA bundle a profile keeps */
/*
 * Reads the PEM CA bundle at path (at most VEIL_PROFILE_CA_MAX bytes, at
 * least one certificate) into a malloc'd *pem. 0, VEIL_ENOTFOUND,
 * VEIL_EIO, VEIL_ELIMIT, or VEIL_EPROTO if it holds no PEM certificate.
 */
int veil_profile_ca_read(const char *path, uint8_t **pem, size_t *len) VEIL_WUR;
/*
 * Keeps a copy of a CA bundle as home/ca.pem, used for every https request
 * of this profile from then on (veil_msgr_open passes it to
 * veil_dir_set_ca_file), and sets p->ca_file.
 */
int veil_profile_ca_write(struct veil_profile *p, const uint8_t *pem, size_t len) VEIL_WUR;

struct veil_contact {
	uint8_t id[VEIL_ID_LEN];
	uint8_t pk[VEIL_KEY_LEN];
	char nickname[VEIL_PROFILE_NICK_MAX + 1]; /* empty if unknown */
	uint64_t first_seen_ms;
};

/* VEIL_ENOTFOUND if the contact is unknown. */
int veil_profile_contact_get(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                             struct veil_contact *out) VEIL_WUR;
/*
 * Adds a contact (first_seen_ms 0 means now). If the ID is known with the
 * same key, returns VEIL_EEXIST and changes nothing; with a different key
 * VEIL_EKEY (a key never changes silently). VEIL_EINVAL for an invalid ID.
 */
int veil_profile_contact_add(struct veil_profile *p, const struct veil_contact *c) VEIL_WUR;
/* Sets a contact's nickname (valid UTF-8, at most VEIL_PROFILE_NICK_MAX bytes). */
int veil_profile_contact_set_nickname(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                                      const char *nickname) VEIL_WUR;
/*
 * The local name of a contact: a name this profile gives it (never sent to
 * anyone), unlike the nickname its owner sends. set_name: valid UTF-8 of at
 * most VEIL_PROFILE_NICK_MAX bytes, "" removes it; VEIL_ENOTFOUND if id is
 * not a contact. contact_name: VEIL_ENOTFOUND (out "") if none is set.
 */
int veil_profile_contact_set_name(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                                  const char *name) VEIL_WUR;
int veil_profile_contact_name(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                              char *out, size_t cap) VEIL_WUR;
/* Calls fn for every contact in ID order; a non-zero return from fn stops and is returned. */
int veil_profile_contact_list(struct veil_profile *p,
                              int (*fn)(const struct veil_contact *c, void *ctx),
                              void *ctx) VEIL_WUR;

/* Returns VEIL_EREPLAY if nonce was recorded before, 0 if not. */
int veil_profile_nonce_seen(struct veil_profile *p,
                            const uint8_t nonce[static VEIL_NONCE_LEN]) VEIL_WUR;
/* Records nonce (a CSP one); VEIL_EREPLAY if it was recorded before. */
int veil_profile_nonce_add(struct veil_profile *p,
                           const uint8_t nonce[static VEIL_NONCE_LEN]) VEIL_WUR;
/*
 * The replay store as EssentialData hands it to a new device: each nonce
 * is kept hashed (HMAC-SHA256 under the ID, 32 bytes) with its scope.
 * add_scope records a nonce of scope; import records a hash another
 * device used (VEIL_EREPLAY if known); list calls fn for every hash
 * (those recorded before hashing existed are not listed).
 */
enum { VEIL_NONCE_CSP = 0, VEIL_NONCE_D2D = 1 };
int veil_profile_nonce_add_scope(struct veil_profile *p, const uint8_t nonce[static VEIL_NONCE_LEN],
                                 int scope) VEIL_WUR;
int veil_profile_nonce_import(struct veil_profile *p, const uint8_t h[static 32],
                              int scope) VEIL_WUR;
/* Imports n hashes in one transaction (known ones skipped); 0 or a storage error. */
int veil_profile_nonce_import_many(struct veil_profile *p, const uint8_t (*h)[32], size_t n,
                                   int scope) VEIL_WUR;
int veil_profile_nonce_list(struct veil_profile *p,
                            int (*fn)(const uint8_t h[32], int scope, void *ctx),
                            void *ctx) VEIL_WUR;

/* One entry of the message log. */
enum veil_log_dir { VEIL_LOG_IN = 0, VEIL_LOG_OUT = 1 };
#define VEIL_LOG_BODY_MAX 8192

struct veil_log_entry {
	int dir; /* enum veil_log_dir */
	uint8_t peer[VEIL_ID_LEN];
	uint64_t msg_id;
	uint64_t date_ms;    /* creation time of the message */
	uint8_t type;        /* inner message type */
	const uint8_t *body; /* the inner body, unpadded */
	size_t body_len;
	int status; /* outgoing: 0 sent, else the best receipt status; incoming: 0 (unread),
	               VEIL_LOG_READ or VEIL_LOG_RAW */
};
/* Status of an incoming message the user has read (on this or another device). */
#define VEIL_LOG_READ 2
/*
 * Status of an incoming message stored as it came because it could not be
 * decoded: type is its inner type and body its inner body, or type 0 and
 * body the whole payload if it could not even be decrypted. It is stored
 * so that it is never acked and lost.
 */
#define VEIL_LOG_RAW (-1)

/*
 * Stores one message. If nonce is non-NULL it is recorded in the same
 * transaction, so a message is never stored without its nonce (or the
 * other way round). VEIL_EREPLAY if the nonce was seen, VEIL_EEXIST if a
 * message with this direction, peer and ID is already logged; in both
 * cases nothing is written. Exception: a logged payload that could not be
 * decrypted (type 0) is replaced by an entry of another type.
 */
int veil_profile_log_add(struct veil_profile *p, const struct veil_log_entry *e,
                         const uint8_t *nonce) VEIL_WUR;
/* Raises the status of an outgoing message; VEIL_ENOTFOUND if not logged. */
int veil_profile_log_set_status(struct veil_profile *p, const uint8_t peer[static VEIL_ID_LEN],
                                uint64_t msg_id, int status) VEIL_WUR;
/*
 * Marks an unread incoming message from peer read (one stored raw stays
 * raw); VEIL_ENOTFOUND if not logged, 0 if it was read already.
 */
int veil_profile_log_set_read(struct veil_profile *p, const uint8_t peer[static VEIL_ID_LEN],
                              uint64_t msg_id) VEIL_WUR;
/*
 * Calls fn for the logged messages with peer (NULL: all), oldest first. The
 * entry's body is valid only during the call.
 */
int veil_profile_log_list(struct veil_profile *p, const uint8_t *peer,
                          int (*fn)(const struct veil_log_entry *e, void *ctx), void *ctx) VEIL_WUR;

/* Which logged messages veil_profile_log_query returns; zeroed: all. */
struct veil_log_query {
	const uint8_t *peer; /* only this peer (VEIL_ID_LEN bytes); NULL: every peer */
	uint64_t since_ms;   /* only messages created at or after this time; 0: all */
};
/*
 * Calls fn for the logged messages that q selects, ordered by their
 * creation date (messages of the same date in the order they were stored).
 * The entry's body is valid only during the call; a non-zero return from fn
 * stops and is returned.
 */
int veil_profile_log_query(struct veil_profile *p, const struct veil_log_query *q,
                           int (*fn)(const struct veil_log_entry *e, void *ctx),
                           void *ctx) VEIL_WUR;

/* ---------------------------------------------------------------------- */
/* Messenger                                                              */
/* ---------------------------------------------------------------------- */

#define VEIL_MSGR_ERRTEXT_MAX 512
/* Default deadlines. */
#define VEIL_MSGR_CONNECT_TIMEOUT_MS 10000
#define VEIL_MSGR_SEND_TIMEOUT_MS 30000
/* How long receive waits for the server's queue to drain before giving up. */
#define VEIL_MSGR_QUEUE_TIMEOUT_MS 30000

/*
 * The messenger: a profile plus the last error's text. Every function
 * returns 0 or a negative veil_err and, on failure, puts one sentence
 * (no "veil:" prefix, no newline) in errtext, e.g. "cannot reach server
 * 127.0.0.1:5222: Connection refused" or "unknown ID ABCD1234".
 */
struct veil_msgr {
	struct veil_profile prof;
	char errtext[VEIL_MSGR_ERRTEXT_MAX];
	const char *client_info; /* CSP client-info string; a default if NULL */
	int send_timeout_ms;     /* overall deadline of send */
	int connect_timeout_ms;  /* per connection attempt */
	/* Called with the text of every alert the server sends during a send. */
	void (*alert_fn)(const char *text, void *ctx);
	void *alert_ctx;
	/*
	 * Group operations: called once for every receiver that did not get the
	 * message, with one sentence saying why. unreachable is 1 if the
	 * receiver cannot get messages at all (unknown or revoked ID), 0 if it
	 * may later (directory unreachable, server queue full...).
	 */
	void (*receiver_fail_fn)(const uint8_t id[VEIL_ID_LEN], int unreachable, const char *why,
	                         void *ctx);
	void *receiver_fail_ctx;
	/*
	 * Set by veil_msgr_session_start: every send then uses the session's one
	 * connection instead of a login of its own (a second login would end
	 * the first), and receives the messages that arrive meanwhile.
	 */
	struct veil_msgr_session *session;
};

/* client-info sent when the caller sets none (see the CSP spec's format). */
#define VEIL_MSGR_CLIENT_INFO "0.1;Q;en/US;veil-cli;0.1;Linux;any"

struct veil_msgr_init_opts {
	const char *server_url;    /* the server's base URL, http:// or https:// */
	const uint8_t *server_key; /* the chat server's key to expect, NULL: pin the served one */
	const char *nickname;      /* NULL for none */
	/* PEM CA bundle that https certificates must chain to, NULL: the system store */
	const char *ca_file;
	const char *invite; /* invite code for a server that asks for one, NULL for none */
};

/*
 * Creates a new identity in home: makes a key pair, fetches the server's
 * signed provisioning document from o->server_url (checking it against
 * o->server_key if non-NULL, else pinning the key it carries), registers
 * the public key with the directory and saves the profile, with a copy of
 * o->ca_file if given. VEIL_EEXIST if home already holds a profile. On
 * success m is open as with veil_msgr_open.
 */
int veil_msgr_init(struct veil_msgr *m, const char *home,
                   const struct veil_msgr_init_opts *o) VEIL_WUR;
/* Opens an existing profile; VEIL_ENOTFOUND (errtext "not initialised ...") if none. */
int veil_msgr_open(struct veil_msgr *m, const char *home) VEIL_WUR;
void veil_msgr_close(struct veil_msgr *m);

/*
 * Adds a contact: with pk from the caller (offline), or with pk NULL from
 * the directory. VEIL_ENOTFOUND ("unknown ID ...") if the directory does
 * not know the ID, VEIL_EKEY if the contact exists with another key,
 * VEIL_EEXIST if it exists with this key. out (may be NULL) gets the
 * contact.
 */
int veil_msgr_contact_add(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN],
                          const uint8_t *pk, struct veil_contact *out) VEIL_WUR;

/*
 * Sends a text (valid UTF-8, 1..VEIL_E2E_TEXT_MAX bytes; VEIL_ELIMIT
 * beyond) to id, which is looked up in the directory and added as a
 * contact if unknown. Returns once the server acknowledged the message as
 * stored, with its ID in *msg_id; reconnects with backoff within the send
 * deadline if the connection drops.
 */
int veil_msgr_send_text(struct veil_msgr *m, const uint8_t to[static VEIL_ID_LEN], const char *text,
                        size_t len, uint64_t *msg_id) VEIL_WUR;

/*
 * Sends one 1:1 message of any inner type with an already encoded body (at
 * most VEIL_E2E_BODY_MAX bytes): the same delivery as veil_msgr_send_text
 * (directory lookup, ack wait, reconnects, message log), which is built on
 * it.
 */
int veil_msgr_send_body(struct veil_msgr *m, const uint8_t to[static VEIL_ID_LEN], uint8_t type,
                        const uint8_t *body, size_t body_len, uint64_t *msg_id) VEIL_WUR;

enum veil_msgr_event_kind {
	VEIL_MSGR_EV_MESSAGE = 1, /* a decrypted, stored message */
	VEIL_MSGR_EV_ERROR = 2,   /* a message that could not be processed */
	/*
	 * A server alert ("server alert: ...") or a close-error after which the
	 * client reconnects ("server closed the connection: ... (reconnecting)").
	 */
	VEIL_MSGR_EV_ALERT = 3,
};

#define VEIL_MSGR_EV_MAX_IDS 16

/* What the receive callback sees; every pointer is valid only during the call. */
struct veil_msgr_event {
	int kind;
	uint8_t from[VEIL_ID_LEN]; /* zero for alerts and for unparsable messages */
	uint64_t msg_id;
	uint64_t date_ms;
	uint8_t type;         /* inner type for messages */
	int new_contact;      /* the sender was added to the contacts just now */
	const char *nickname; /* sender's nickname if known, else NULL */
	const char *text;     /* text messages: the UTF-8 text (not NUL-terminated) */
	size_t text_len;
	uint8_t status;                     /* receipts */
	uint64_t ids[VEIL_MSGR_EV_MAX_IDS]; /* receipts: the first IDs */
	size_t n_ids;                       /* receipts: the number of IDs (may exceed the array) */
	int typing;                         /* typing indicators */
	int err;                            /* errors: the veil_err code */
	const char *errtext;                /* errors and alerts: one line of text */
	const uint8_t *body;                /* messages: the inner body as received (unpadded) */
	size_t body_len;
	/*
	 * raw = 1: a message that could not be decoded (errtext says why),
	 * stored as it came (VEIL_LOG_RAW) and acked. type is its inner type,
	 * or 0 if it could not be decrypted (body is then the whole payload).
	 */
	int raw;
	/*
	 * Group messages (group = 1). text/text_len, status and ids then carry
	 * the inner group text or group receipt. group_members lists the members
	 * of a group-setup (the creator excluded); group_removed is set when a
	 * setup removed us or disbanded the group.
	 */
	int group;
	uint8_t group_creator[VEIL_ID_LEN];
	uint64_t group_id;
	const char *group_name; /* "" if the group has no name */
	const uint8_t (*group_members)[VEIL_ID_LEN];
	size_t group_n_members;
	int group_removed;
	/*
	 * Multi-device: outgoing = 1 for a message another device of this
	 * identity sent (to is its receiver, from is our own ID); other_device
	 * = 1 for every message this device learnt from another one of the
	 * group (it was reflected, not received from the chat service).
	 */
	int outgoing;
	uint8_t to[VEIL_ID_LEN];
	int other_device;
};

/*
 * Connects and processes the server's queue: each message is parsed,
 * checked (receiver, replayed nonce, duplicate ID), decrypted, stored and
 * only then acknowledged; text and other non-receipt messages without flag
 * 0x80 get an automatic "received" receipt. Senders not in the contacts are
 * fetched from the directory and added. No message is acked before it is
 * stored: one that cannot be decrypted or decoded is stored as it came
 * (VEIL_LOG_RAW) and reported as a raw message event; one whose sender key
 * cannot be fetched because the directory is unreachable is left queued,
 * and so is every message if storing fails (the session then ends). After queue-send-complete,
 * waits up to wait_s seconds for more. cb returning non-zero stops early.
 * Returns 0, or the error that ended the session.
 */
int veil_msgr_receive(struct veil_msgr *m, int wait_s,
                      int (*cb)(const struct veil_msgr_event *ev, void *ctx), void *ctx) VEIL_WUR;

/*
 * Sessions, for a long-running client (veil daemon) that holds the one
 * connection of its identity: it receives continuously and sends on the
 * same connection. Single-threaded: the caller polls the session's socket
 * with its own, and calls veil_msgr_session_pump when it is readable.
 *
 * session_start prepares the session (cb gets every event, as with
 * veil_msgr_receive) without connecting; session_connect logs in if not
 * connected (errors as for a send); session_fd is the socket to poll (-1
 * while not connected); session_pump waits up to timeout_ms (0: not at
 * all) for a payload, then handles every payload already received: each
 * message is stored, acked and reported exactly as by veil_msgr_receive,
 * receipts included, and an echo request keeps an idle connection open.
 * It returns 0, or the error that closed the connection (errtext set;
 * messages not stored were not acked: the server delivers them again after
 * session_connect). session_drained is 1 once the server's queue was
 * delivered on this connection. session_gen counts the connections the
 * session opened: a send that lost the connection while waiting for its ack
 * opens a new one itself (perhaps to another chat node), which the caller
 * sees only as a new session_gen. session_stop waits briefly for the acks of
 * our receipts, closes the connection and frees the session;
 * veil_msgr_close does it too. While a session runs, veil_msgr_receive is
 * refused (VEIL_EINVAL).
 */
int veil_msgr_session_start(struct veil_msgr *m,
                            int (*cb)(const struct veil_msgr_event *ev, void *ctx),
                            void *ctx) VEIL_WUR;
int veil_msgr_session_connect(struct veil_msgr *m) VEIL_WUR;
int veil_msgr_session_fd(const struct veil_msgr *m);
int veil_msgr_session_pump(struct veil_msgr *m, int timeout_ms) VEIL_WUR;
int veil_msgr_session_drained(const struct veil_msgr *m);
uint64_t veil_msgr_session_gen(const struct veil_msgr *m);
void veil_msgr_session_stop(struct veil_msgr *m);

/* ---------------------------------------------------------------------- */
/* Read state and settings                                                 */
/* ---------------------------------------------------------------------- */

/* The user's settings this client acts on (a subset of d2d_sync.Settings). */
struct veil_settings {
	int read_receipts; /* 1: send read receipts (the default), 0: do not */
};
/* Reads the settings; the defaults if none were ever stored. */
int veil_profile_settings_get(struct veil_profile *p, struct veil_settings *s) VEIL_WUR;
int veil_profile_settings_put(struct veil_profile *p, const struct veil_settings *s) VEIL_WUR;
/*
 * Stores s and, in a device group, tells the other devices (d2d.SettingsSync
 * in a transaction of scope SETTINGS_SYNC). On a sync failure the local
 * change stands and the error (errtext) is returned.
 */
int veil_msgr_settings_set(struct veil_msgr *m, const struct veil_settings *s) VEIL_WUR;

/*
 * Sets the nickname sent along with messages and, in a device group,
 * tells the other devices (d2d.UserProfileSync in a USER_PROFILE_SYNC
 * transaction). On a sync failure the local change stands.
 */
int veil_msgr_set_nickname(struct veil_msgr *m, const char *nickname) VEIL_WUR;

/*
 * The user has read the n messages ids (incoming 1:1 messages) from peer:
 * with read receipts on, sends peer a delivery receipt "read" (which the
 * other devices of a device group see as an outgoing message); with them
 * off, tells only the other devices (d2d.IncomingMessageUpdate.read, the
 * specification's replacement for the receipt). Then marks them read in
 * the log. Either way the other devices mark them read and send nothing.
 */
int veil_msgr_mark_read(struct veil_msgr *m, const uint8_t peer[static VEIL_ID_LEN],
                        const uint64_t *ids, size_t n) VEIL_WUR;
/* Marks every unread incoming message from peer read (as above); *n_read: how many. */
int veil_msgr_read_conversation(struct veil_msgr *m, const uint8_t peer[static VEIL_ID_LEN],
                                size_t *n_read) VEIL_WUR;

/* ---------------------------------------------------------------------- */
/* Multi-device                                                            */
/* ---------------------------------------------------------------------- */

/*
 * Makes this single-device profile the first device of a device group: a
 * new device group key and device IDs (saved in md.json), the mediator's
 * URL from the provisioning document, then one connection through the
 * mediator that registers the device's slot. From then on every
 * connection goes through the mediator. label names the device (may be
 * NULL). Nothing happens if the profile is a device group already.
 */
int veil_msgr_md_enable(struct veil_msgr *m, const char *label) VEIL_WUR;

/* What a device that joins gets from the one that links it (a subset of join.EssentialData). */
struct veil_md_join {
	uint8_t id[VEIL_ID_LEN];
	uint8_t sk[VEIL_KEY_LEN];
	uint8_t dgk[VEIL_MD_DGK_LEN];
	char nickname[VEIL_PROFILE_NICK_MAX + 1];
	struct veil_contact *contacts; /* malloc'ed */
	size_t n_contacts;
};
/* Wipes the secrets and frees the contacts. */
void veil_md_join_release(struct veil_md_join *j);
/* Fills j from a device group's profile (the caller releases it). */
int veil_msgr_md_export(struct veil_msgr *m, struct veil_md_join *j) VEIL_WUR;
/*
 * Creates the profile of a joining device in home from j: the server's
 * provisioning (as for veil_msgr_init, of which o's server_url, server_key
 * and ca_file count), a check that the directory holds
 * the identity with j's key, the contacts, and new device IDs in the
 * group of j's DGK. The device's slot is registered on its first
 * connection. On success m is open on the new profile.
 */
int veil_msgr_join(struct veil_msgr *m, const char *home, const struct veil_msgr_init_opts *o,
                   const struct veil_md_join *j, const char *label) VEIL_WUR;

/*
 * Linking a new device. On the existing device: veil_msgr_link_offer makes
 * the profile a device group if it is not one yet (veil_msgr_md_enable)
 * and a join link (link, to show as text and QR code) for the server's
 * rendezvous relay; veil_msgr_link_run then waits up to timeout_ms for the
 * new device, runs the rendezvous protocol, calls confirm with the short
 * rendezvous path hash ("xx-xx-xx", which both devices show; 0 from
 * confirm refuses and sends nothing), sends the identity, its keys, the
 * device group key, contacts and groups, and returns once the new device
 * has registered with the mediator. Release l with veil_link_release.
 *
 * On the new device, veil_msgr_join_link does the other half and creates
 * the profile in home (server_url NULL: the relay's server; ca_file: a
 * private CA for https and wss, kept in the profile, or NULL); on success
 * m is open on it.
 */
struct veil_link {
	struct veil_rdv_init init;
	char link[VEIL_RDV_LINK_MAX + 1];
};
int veil_msgr_link_offer(struct veil_msgr *m, struct veil_link *l, const char *label) VEIL_WUR;
int veil_msgr_link_run(struct veil_msgr *m, struct veil_link *l,
                       int (*confirm)(const char *rph, void *ctx), void *ctx,
                       int timeout_ms) VEIL_WUR;
void veil_link_release(struct veil_link *l);
int veil_msgr_join_link(struct veil_msgr *m, const char *home, const char *link,
                        const char *server_url, const char *ca_file, const char *label,
                        int (*confirm)(const char *rph, void *ctx), void *ctx,
                        int timeout_ms) VEIL_WUR;

/* One device of the group, as veil_msgr_devices reports it. */
struct veil_device {
	uint64_t device_id;
	int self;      /* the device making the call */
	int connected; /* 1: since_ms is when it connected; 0: when it disconnected */
	uint64_t since_ms;
	int persistent; /* its slot survives disconnection */
	int unreadable; /* its device info does not open with our key */
	int platform;   /* enum veil_md_platform */
	char label[VEIL_MD_INFO_STR_MAX + 1];
	char platform_details[VEIL_MD_INFO_STR_MAX + 1];
	char app_version[VEIL_MD_INFO_STR_MAX + 1];
};
/* Lists the group's devices (fn returning non-zero stops with that value). */
int veil_msgr_devices(struct veil_msgr *m, int (*fn)(const struct veil_device *d, void *ctx),
                      void *ctx) VEIL_WUR;
/* Removes a device from the group (the mediator closes it with 4113 and forgets its slot). */
int veil_msgr_device_drop(struct veil_msgr *m, uint64_t device_id) VEIL_WUR;
/*
 * Tells the other devices about contact id as this device has it (key,
 * verification level, the user's name for it): a d2d.ContactSync in a
 * CONTACT_SYNC transaction (retried while another device holds the lock).
 * create: the contact is new here. Nothing to do (0) for a single-device
 * profile. Uses the session's connection if one runs, else its own.
 */
int veil_msgr_md_sync_contact(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN],
                              int create) VEIL_WUR;
/* Renames this device (the label other devices see). */
int veil_msgr_device_rename(struct veil_msgr *m, const char *label) VEIL_WUR;

/* Name of an inner message type for output ("text", "receipt", ...), or NULL. */
const char *veil_msgr_type_name(uint8_t type);

/* ---------------------------------------------------------------------- */
/* Blobs and file messages                                                */
/* ---------------------------------------------------------------------- */

#define VEIL_BLOB_URL_MAX 512
#define VEIL_BLOB_TOKEN_MAX 256
#define VEIL_BLOB_CONNECT_TIMEOUT_MS 10000
#define VEIL_BLOB_STALL_TIMEOUT_S 30 /* a transfer below 1 byte/s this long fails */
#define VEIL_BLOB_ATTEMPTS 5         /* download attempts (resumed with Range) */

/*
 * A blob server client: the OPPF blob URLs (download and done with the
 * placeholder {blobId}), the upload credential, and an optional progress
 * callback (bytes done and total of the encrypted blob). Fill it with
 * veil_msgr_blob_client or by hand; errtext says why the last call failed.
 */
struct veil_blob_client {
	char upload_url[VEIL_BLOB_URL_MAX];
	char download_url[VEIL_BLOB_URL_MAX];
	char done_url[VEIL_BLOB_URL_MAX];
	char token[VEIL_BLOB_TOKEN_MAX]; /* "ThreemaBlobToken" credential, base64 */
	void (*progress)(uint64_t done, uint64_t total, void *ctx);
	void *progress_ctx;
	int max_attempts;    /* 0: VEIL_BLOB_ATTEMPTS */
	int stall_timeout_s; /* 0: VEIL_BLOB_STALL_TIMEOUT_S */
	int resumed;         /* downloads resumed after a cut connection (counted) */
	/*
	 * Downloads: plain_size is only an upper bound (a thumbnail, whose size
	 * the file message does not carry); the blob ends with the server's body.
	 */
	int size_is_bound;
	char errtext[VEIL_MSGR_ERRTEXT_MAX];
};

/* Fetches an upload credential (identity/blob_cred, two phases) into bc->token. */
int veil_blob_cred(struct veil_blob_client *bc, const char *dir_url,
                   const uint8_t id[static VEIL_ID_LEN],
                   const uint8_t sk[static VEIL_KEY_LEN]) VEIL_WUR;
/*
 * Encrypts the regular file at path with key and the fixed nonce
 * nonce_which (VEIL_FILE_NONCE_FILE or _THUMB) and uploads it, reading it
 * twice and holding only fixed buffers. persist keeps the blob until it
 * expires (group files). On 0, id is the blob ID and *plain_size the file
 * size. VEIL_EAUTH bad credential, VEIL_ELIMIT too large or over quota,
 * VEIL_EIO unreachable or the file changed while being sent.
 */
int veil_blob_upload(struct veil_blob_client *bc, const char *path,
                     const uint8_t key[static VEIL_FILE_KEY_LEN], int nonce_which, int persist,
                     uint8_t id[static VEIL_BLOB_ID_LEN], uint64_t *plain_size) VEIL_WUR;
/*
 * Downloads blob id, decrypting into "<dest>.part" as it arrives, resuming
 * a cut transfer with HTTP Range (up to max_attempts), checks the tag and
 * only then links the file to dest (never overwriting: VEIL_EEXIST). On
 * any failure nothing is left behind. VEIL_ENOTFOUND unknown or expired
 * blob, VEIL_ETRUNC truncated, VEIL_ECRYPTO tampered or wrong key,
 * VEIL_EPROTO longer than plain_size + 16.
 */
int veil_blob_download(struct veil_blob_client *bc, const uint8_t id[static VEIL_BLOB_ID_LEN],
                       const uint8_t key[static VEIL_FILE_KEY_LEN], int nonce_which,
                       uint64_t plain_size, const char *dest) VEIL_WUR;
/* Tells the server a 1:1 blob was received (it deletes it). */
int veil_blob_done(struct veil_blob_client *bc, const uint8_t id[static VEIL_BLOB_ID_LEN]) VEIL_WUR;

/*
 * Prepares bc for m's server: the blob URLs from the signed provisioning
 * document (checked against the pinned keys) and, if want_token, an upload
 * credential. bc->progress is kept.
 */
int veil_msgr_blob_client(struct veil_msgr *m, struct veil_blob_client *bc,
                          int want_token) VEIL_WUR;

/* What to send with a file; every field may be 0/NULL. */
struct veil_file_opts {
	const char *name; /* file name shown to the receiver; NULL: the path's last part */
	const char *mime; /* media type; NULL: from the extension, else application/octet-stream */
	const char *caption; /* NULL or "": none */
	int rendering;       /* VEIL_FILE_RENDER_*; 0 = plain file */
	int persist;         /* 1 for group files: the blob outlives the first download */
	int no_thumbnail;    /* 1: send a JPEG or PNG image without a thumbnail */
	void (*progress)(uint64_t done, uint64_t total, void *ctx);
	void *progress_ctx;
};

/*
 * Thumbnails. The specification (csp.struct.yml, "Media", "Thumbnails")
 * recommends at most 512x512 pixels and keeping the source's format; Threema's
 * Android (THUMBNAIL_SIZE_PX) and desktop (CSP_THUMBNAIL_MAX_SIZE) clients use 512.
 */
#define VEIL_THUMB_MAX_PX 512
/* Largest image a thumbnail is made of (pixels): above, the time it takes is not worth it. */
#define VEIL_THUMB_SRC_MAX_PIXELS (100u * 1000u * 1000u)
/* Largest thumbnail blob a download accepts (plaintext bytes). */
#define VEIL_THUMB_BLOB_MAX (4 * 1024 * 1024)
/*
 * Writes to dest a thumbnail of the JPEG or PNG image at src (mime
 * "image/jpeg" or "image/png") that fits in VEIL_THUMB_MAX_PX square, in the
 * same format (PNG as RGBA, so transparency is kept), and sets *thumb_mime
 * and the source's size in *w, *h. Reads the source a row at a time: memory
 * does not grow with the image. VEIL_EINVAL for another media type or an
 * interlaced PNG, VEIL_ELIMIT above VEIL_THUMB_SRC_MAX_PIXELS, VEIL_EPROTO
 * for an image that does not decode (or is corrupt or truncated), VEIL_EIO
 * if a file cannot be opened or written; dest is then removed.
 */
int veil_thumb_make(const char *src, const char *mime, const char *dest, const char **thumb_mime,
                    uint32_t *w, uint32_t *h) VEIL_WUR;

/*
 * Encrypts and uploads the file at path with a fresh random key and
 * appends the file message JSON body (the inner body of type 0x17, also
 * the inner body of a group file message) to json. The key lives only in
 * json: wipe it after sending (veil_buf_init_secret does). A JPEG or PNG
 * image also gets a thumbnail (veil_thumb_make), uploaded as its own blob
 * with the same key and the thumbnail nonce, and its width and height in
 * "x"; an image that does not decode is sent without one.
 */
int veil_msgr_file_upload(struct veil_msgr *m, const char *path, const struct veil_file_opts *o,
                          struct veil_buf *json) VEIL_WUR;
/* Uploads path and sends it to `to` as a file message (0x17); *msg_id as in send_text. */
int veil_msgr_send_file(struct veil_msgr *m, const uint8_t to[static VEIL_ID_LEN], const char *path,
                        const struct veil_file_opts *o, uint64_t *msg_id) VEIL_WUR;
/*
 * Downloads, authenticates and decrypts the file of a file message body
 * (json, len) into directory dir (created 0700 if missing) under the
 * message's file name made safe (no path parts; " (n)" added if taken),
 * writes its path to out_path, and, if mark_done (1:1 messages) and the
 * profile has no other devices (no device group: they may still need it),
 * tells the server it may delete the blob. progress may be NULL.
 */
int veil_msgr_file_download(struct veil_msgr *m, const uint8_t *json, size_t len, const char *dir,
                            int mark_done,
                            void (*progress)(uint64_t done, uint64_t total, void *ctx),
                            void *progress_ctx, char *out_path, size_t out_cap) VEIL_WUR;
/*
 * Downloads, authenticates and decrypts the thumbnail of a file message
 * body into "<file_path>.thumb.jpg" (".png" for a PNG thumbnail, ".bin"
 * for another type), beside the file saved by veil_msgr_file_download, and
 * writes its path to out_path. VEIL_ENOTFOUND if the message has no
 * thumbnail; a thumbnail already there is kept (VEIL_EEXIST).
 */
int veil_msgr_thumb_download(struct veil_msgr *m, const uint8_t *json, size_t len,
                             const char *file_path, int mark_done, char *out_path,
                             size_t out_cap) VEIL_WUR;

/* ---------------------------------------------------------------------- */
/* Groups                                                                 */
/* ---------------------------------------------------------------------- */

/*
 * A group as this profile knows it. members are the members other than the
 * creator, as the creator's last group-setup listed them (so they include
 * us unless we are the creator); left is set once we left, were removed,
 * or (as creator) disbanded the group: such a group receives nothing more.
 */
struct veil_group {
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	char name[VEIL_GROUP_NAME_MAX + 1];
	int left;
	uint64_t created_ms;
	size_t n_members;
	uint8_t members[VEIL_GROUP_MAX_MEMBERS][VEIL_ID_LEN];
};

/* VEIL_ENOTFOUND if the profile knows no group (creator, gid). */
int veil_profile_group_get(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, struct veil_group *out) VEIL_WUR;
/* Stores g (name, state and the whole member list), replacing what was there, in one transaction. */
int veil_profile_group_put(struct veil_profile *p, const struct veil_group *g) VEIL_WUR;
/* Forgets a group (as if its state were lost). VEIL_ENOTFOUND if unknown. */
int veil_profile_group_delete(struct veil_profile *p, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid) VEIL_WUR;
/*
 * Calls fn for every group (ordered by group ID, then creator); g is valid
 * only during the call. A non-zero return from fn stops and is returned.
 */
int veil_profile_group_list(struct veil_profile *p,
                            int (*fn)(const struct veil_group *g, void *ctx), void *ctx) VEIL_WUR;
/* 1 if id is the creator or one of the members of g. */
int veil_group_has(const struct veil_group *g, const uint8_t id[static VEIL_ID_LEN]);

/*
 * Group operations of the messenger. Each sends one end-to-end encrypted
 * message per receiver, all with the same message ID and creation time,
 * over one connection, and returns once the server stored every one
 * (reconnecting within the send deadline). Receivers unknown to the
 * contacts are looked up in the directory first; IDs being added (create,
 * update) must all be found, or nothing is sent.
 *
 * A member that cannot get the message does not stop the others from
 * getting it: each such member is reported through receiver_fail_fn. A
 * member whose ID is unknown or revoked (the directory says so, or the
 * server refuses it as an unknown identity) is unreachable: the operation
 * still returns 0 if every other receiver got it. If a receiver that may
 * be reachable did not (its key could not be fetched, the server refused
 * the copy for another reason) the others still get theirs and the
 * operation returns VEIL_EPARTIAL, with errtext naming how many: sending
 * again would give the others a duplicate. errtext says why on failure.
 *
 * create: we become the creator of a new group with a random group ID and
 * the given members (at most VEIL_GROUP_MAX_MEMBERS - 1, without us and
 * without duplicates); sends group-setup and group-name to every member.
 * update: (creator only) adds and removes members; the removed get an empty
 * group-setup, the others the new setup and the name. rename: (creator only)
 * sends the new name. leave: a member sends group-leave to all others and
 * marks the group left; the creator disbands the group (an empty setup to
 * everyone). send_text: group text to every other member and the creator.
 * send_receipt: a group delivery receipt (VEIL_RECEIPT_ACK or _DECLINE) for
 * message IDs of the group.
 */
int veil_msgr_group_create(struct veil_msgr *m, const char *name,
                           const uint8_t (*members)[VEIL_ID_LEN], size_t n,
                           struct veil_group *out) VEIL_WUR;
int veil_msgr_group_update(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, const uint8_t (*add)[VEIL_ID_LEN], size_t n_add,
                           const uint8_t (*remove)[VEIL_ID_LEN], size_t n_remove) VEIL_WUR;
int veil_msgr_group_rename(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                           uint64_t gid, const char *name) VEIL_WUR;
int veil_msgr_group_leave(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                          uint64_t gid) VEIL_WUR;
int veil_msgr_group_send_text(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid, const char *text, size_t len,
                              uint64_t *msg_id) VEIL_WUR;
int veil_msgr_group_send_receipt(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                                 uint64_t gid, uint8_t status, const uint64_t *ids,
                                 size_t n) VEIL_WUR;
/*
 * Sends an already encoded inner body of a member-container type (such as
 * VEIL_E2E_GROUP_FILE with a file message's JSON) to the group, with flags;
 * the container is added here. The message is logged like a group text.
 */
int veil_msgr_group_send_body(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid, uint8_t type, uint8_t flags, const uint8_t *inner,
                              size_t len, uint64_t *msg_id) VEIL_WUR;
/*
 * Uploads the file at path (encrypted, with the persist flag, since every
 * member downloads the same blob) and sends its file message to the group
 * as a group file (0x46); o as for veil_msgr_send_file (persist is forced).
 */
int veil_msgr_group_send_file(struct veil_msgr *m, const uint8_t creator[static VEIL_ID_LEN],
                              uint64_t gid, const char *path, const struct veil_file_opts *o,
                              uint64_t *msg_id) VEIL_WUR;

#endif
