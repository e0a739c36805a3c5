/*
 * Client side of the directory API (identity creation and lookup) and of the
 * server's signed provisioning document, over HTTP with libcurl.
 *
 * URLs: dir_url is the directory's base URL, e.g.
 * "http://127.0.0.1:8080/directory/" (a missing final '/' is added);
 * server_url is the server root, e.g. "http://127.0.0.1:8080", below which
 * the provisioning document lives at /.well-known/veil/provisioning.
 *
 * Every call is synchronous, bounded in time (VEIL_DIR_TIMEOUT_MS) and in
 * response size (VEIL_DIR_MAX_RESPONSE), follows no redirects and prints
 * nothing. Errors: VEIL_EIO the server could not be reached (or answered
 * 5xx), VEIL_EPROTO a malformed answer (or the server called our request
 * malformed), VEIL_ELIMIT an answer too large, VEIL_EAGAIN rate-limited
 * (429; wait at least 10 s), VEIL_EAUTH the server refused the challenge
 * response or token, VEIL_ENOTFOUND unknown identity, VEIL_ECRYPTO a bad
 * signature, VEIL_EKEY a key differs from the pinned one. After a failure,
 * veil_dir_errmsg() describes it for the user.
 */
#ifndef VEIL_DIR_H
#define VEIL_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"

#define VEIL_DIR_MAX_RESPONSE (256u * 1024u)
#define VEIL_DIR_TIMEOUT_MS 10000
#define VEIL_DIR_CONNECT_TIMEOUT_MS 5000
#define VEIL_DIR_MAX_URL 512
#define VEIL_DIR_MAX_HOST 256
#define VEIL_DIR_SIGN_PK_LEN 32

struct veil_dir_identity {
	uint8_t id[VEIL_ID_LEN];
	uint8_t pk[VEIL_KEY_LEN];
	int state; /* 0 active, 1 inactive, 2 invalid (revoked) */
	int type;
	uint64_t feature_mask;
};

/* chat.addresses entries a client keeps (a longer list is cut to these). */
#define VEIL_DIR_MAX_CHAT_ADDRS 8

struct veil_dir_chat_addr {
	char host[VEIL_DIR_MAX_HOST];
	uint16_t port;
};

struct veil_dir_provisioning {
	char server_name[VEIL_DIR_MAX_HOST];
	char chat_host[VEIL_DIR_MAX_HOST];
	uint16_t chat_port; /* the first port of the document's list */
	uint8_t csp_pk[VEIL_KEY_LEN];
	uint8_t sign_pk[VEIL_DIR_SIGN_PK_LEN];
	char directory_url[VEIL_DIR_MAX_URL];
	uint32_t refresh_s;
	/* OPPF blob {uploadUrl, downloadUrl, doneUrl}; "" if the server has no blob service. */
	char blob_upload_url[VEIL_DIR_MAX_URL];
	char blob_download_url[VEIL_DIR_MAX_URL]; /* with the placeholder {blobId} */
	char blob_done_url[VEIL_DIR_MAX_URL];     /* with the placeholder {blobId} */
	/*
	 * OPPF mediator.url and rendezvous.url: base URLs (ws:// or wss://,
	 * ending with "/"); "" if the document has none. A client appends the
	 * hex ClientUrlInfo (mediator) or the 64 hex digits of a rendezvous
	 * path (rendezvous relay, see veil/rendezvous.h).
	 */
	char mediator_url[VEIL_DIR_MAX_URL];
	char rendezvous_url[VEIL_DIR_MAX_URL];
	/*
	 * chat.addresses (a Veil addition): every chat node of a deployment, in
	 * the order a client tries them; none (0) if the document lists none.
	 */
	struct veil_dir_chat_addr chat_addrs[VEIL_DIR_MAX_CHAT_ADDRS];
	size_t n_chat_addrs;
};

/*
 * Creates an identity for the key pair (pk, sk) in both phases of the
 * challenge; writes the new (or, for a known key, the existing) ID to
 * out_id. sk is used only to answer the challenge and is not kept. invite
 * (NULL for none) is the invite code a server with --signup invite asks
 * for; a refusal (sign-up closed, invite missing, unknown, expired or used
 * up) is VEIL_EAUTH with the server's reason in veil_dir_errmsg().
 */
int veil_dir_create_identity(const char *dir_url, const uint8_t pk[static VEIL_KEY_LEN],
                             const uint8_t sk[static VEIL_KEY_LEN], const char *invite,
                             uint8_t out_id[static VEIL_ID_LEN]) VEIL_WUR;

/*
 * Asks for a blob upload credential (identity/blob_cred, both phases of the
 * challenge) and writes the token, NUL-terminated, to token (cap bytes).
 */
int veil_dir_blob_cred(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                       const uint8_t sk[static VEIL_KEY_LEN], char *token, size_t cap) VEIL_WUR;

/* Looks up id; VEIL_ENOTFOUND if the directory does not know it. */
int veil_dir_get_identity(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                          struct veil_dir_identity *out) VEIL_WUR;

/*
 * Fetches and verifies the provisioning document. The signature is checked
 * with the document's own signatureKey, which must equal pin_sign_pk if
 * that is not NULL (first contact: pass NULL and pin out->sign_pk). If
 * pin_csp_pk is not NULL the chat server key must equal it.
 */
int veil_dir_fetch_provisioning(const char *server_url, const uint8_t *pin_sign_pk,
                                const uint8_t *pin_csp_pk,
                                struct veil_dir_provisioning *out) VEIL_WUR;

/*
 * The parsers behind the calls above, for offline use and fuzzing. They
 * take untrusted bytes and return 0 or VEIL_EPROTO / VEIL_ECRYPTO /
 * VEIL_EKEY / VEIL_ELIMIT.
 */
int veil_dir_parse_identity(const uint8_t *json, size_t len,
                            struct veil_dir_identity *out) VEIL_WUR;
int veil_dir_parse_provisioning(const uint8_t *doc, size_t len, const uint8_t *pin_sign_pk,
                                const uint8_t *pin_csp_pk,
                                struct veil_dir_provisioning *out) VEIL_WUR;
/*
 * The chat.addresses list of a provisioning document's chat object (JSON
 * bytes of that object) into out->chat_addrs: at most
 * VEIL_DIR_MAX_CHAT_ADDRS entries are kept, each {hostname, port 1..65535}.
 * Clears out's list first; VEIL_EPROTO for a malformed list.
 */
int veil_dir_parse_chat_addrs(const uint8_t *json, size_t len,
                              struct veil_dir_provisioning *out) VEIL_WUR;

/*
 * The challenge response of the specification: BLAKE2b-256 keyed with
 * KDF(X25519HSalsa20(sk, token_resp_pk), salt "dir", personal "3ma-csp")
 * over the token.
 */
int veil_dir_token_response(uint8_t out[static 32], const uint8_t sk[static VEIL_KEY_LEN],
                            const uint8_t token_resp_pk[static VEIL_KEY_LEN], const uint8_t *token,
                            size_t len) VEIL_WUR;

/*
 * TLS: every https:// request libveil makes (directory, provisioning
 * document, blobs) verifies the server's certificate and host name. By
 * default against the system's CA store; after veil_dir_set_ca_file(path)
 * against the PEM bundle at path alone (a private CA). NULL or "" returns
 * to the system store. Process-wide: call it before any thread makes
 * requests. VEIL_ELIMIT if path is too long.
 */
#define VEIL_DIR_MAX_CA_PATH 1100
int veil_dir_set_ca_file(const char *path) VEIL_WUR;
/* The CA bundle set with veil_dir_set_ca_file, or NULL for the system store. */
const char *veil_dir_ca_file(void);

/* The message of this thread's last failed veil_dir_* call ("" if none). */
const char *veil_dir_errmsg(void);

/* ---------------------------------------------------------------------- */
/* Linking, matching, revocation (authenticated calls answer the          */
/* challenge with sk, which is not kept)                                  */
/* ---------------------------------------------------------------------- */

#define VEIL_DIR_VID_LEN 32          /* verification ID: 32 hex digits */
#define VEIL_DIR_MATCH_TOKEN_MAX 128 /* base64 match token */

/*
 * Starts linking address (an e-mail address, or a phone number in E.164
 * digits) to id; kind is enum veil_contact_kind. An empty address unlinks.
 * On 0: *already is 1 if that address is linked already (nothing sent),
 * else the server sent a code and vid holds the verification ID.
 */
int veil_dir_link(const char *dir_url, int kind, const uint8_t id[static VEIL_ID_LEN],
                  const uint8_t sk[static VEIL_KEY_LEN], const char *address,
                  char vid[static VEIL_DIR_VID_LEN + 1], int *already) VEIL_WUR;
/* Completes a link with the code; VEIL_EAUTH (with the server's reason) if refused. */
int veil_dir_link_verify(const char *dir_url, int kind, const char *vid, const char *code) VEIL_WUR;
/* Fetches a match token (reusable until it expires, about a day). */
int veil_dir_match_token(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                         const uint8_t sk[static VEIL_KEY_LEN],
                         char token[static VEIL_DIR_MATCH_TOKEN_MAX + 1]) VEIL_WUR;

/* One match: which input (kind, index into that kind's list) matched whom. */
struct veil_dir_match {
	uint8_t id[VEIL_ID_LEN];
	uint8_t pk[VEIL_KEY_LEN];
	int kind;
	size_t index;
};
/*
 * Matches 32-byte values (the specification's hashes, or with
 * private_matching the OPRF outputs) of e-mail addresses and phone numbers.
 * Writes up to max matches to out, their number to *n, and the server's
 * checkInterval to *check_interval (may be NULL).
 */
int veil_dir_match(const char *dir_url, const char *token, int private_matching,
                   const uint8_t (*email)[32], size_t n_email, const uint8_t (*phone)[32],
                   size_t n_phone, int include_inactive, struct veil_dir_match *out, size_t max,
                   size_t *n, int *check_interval) VEIL_WUR;
/* Has the server evaluate n (<= VEIL_OPRF_MAX_BATCH) blinded elements. */
int veil_dir_oprf_eval(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                       const uint8_t sk[static VEIL_KEY_LEN], const uint8_t (*in)[32], size_t n,
                       uint8_t (*out)[32]) VEIL_WUR;
/* Revokes id for good (authenticated with its key). */
int veil_dir_revoke(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                    const uint8_t sk[static VEIL_KEY_LEN]) VEIL_WUR;
/* Sets the revocation password (stored as base64(SHA-256(password)[0..4)). */
int veil_dir_set_revocation_key(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                                const uint8_t sk[static VEIL_KEY_LEN],
                                const char *password) VEIL_WUR;
/* *set = 1 and last_changed (ISO 8601) if a revocation key is set. */
int veil_dir_check_revocation_key(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                                  const uint8_t sk[static VEIL_KEY_LEN], int *set,
                                  char last_changed[static 32]) VEIL_WUR;
/* Revokes id with its revocation password, without the key. */
int veil_dir_revoke_with_password(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                                  const char *password) VEIL_WUR;
int veil_dir_set_featuremask(const char *dir_url, const uint8_t id[static VEIL_ID_LEN],
                             const uint8_t sk[static VEIL_KEY_LEN], uint64_t mask) VEIL_WUR;

/* ---------------------------------------------------------------------- */
/* Contact data: normalisation and the private-matching OPRF              */
/* ---------------------------------------------------------------------- */

enum veil_contact_kind { VEIL_CONTACT_EMAIL = 0, VEIL_CONTACT_PHONE = 1 };
#define VEIL_CONTACT_MAX 254 /* longest normalised address (bytes) */

/*
 * Normalises an address-book entry the way the specification's clients do
 * before hashing. E-mail: trimmed of ASCII whitespace, ASCII-lowercased,
 * exactly one '@' with text on both sides, printable ASCII only. Phone: the
 * E.164 digits without '+': spaces, dashes, dots, slashes and brackets are
 * dropped, a leading "+" or "00" marks the international form; a national
 * number (one leading 0) is prefixed with country_code (digits, e.g. "41")
 * after dropping that 0, or refused if country_code is NULL; 7..15 digits.
 * out receives a NUL-terminated string. Returns 0 or VEIL_EINVAL.
 */
int veil_contact_normalize(int kind, const char *in, size_t len, const char *country_code,
                           char out[static VEIL_CONTACT_MAX + 1], size_t *out_len) VEIL_WUR;
/*
 * The specification's contact-matching hash of a normalised entry
 * (veil_hash_email / veil_hash_phone).
 */
int veil_contact_hash(uint8_t out[static 32], int kind, const char *norm, size_t len) VEIL_WUR;

/*
 * An oblivious PRF on ristretto255 (2HashDH), specified in docs/PROTOCOL.md:
 *   P = H2G(kind, x)        ristretto255_from_hash(SHA-512(DST_H2G | kind | len16 | x))
 *   blind:    B = r * P      with a fresh random scalar r (client)
 *   evaluate: Z = k * B      with the server's secret scalar k (server)
 *   unblind:  N = r^-1 * Z   (= k * P)
 *   output:   SHA-256(DST_OUT | kind | len16 | x | N)
 * x is a normalised entry of at most VEIL_CONTACT_MAX bytes; len16 is its
 * length as u16 little-endian. Every function returns 0 or VEIL_EINVAL
 * (bad input) / VEIL_ECRYPTO (an invalid or identity group element).
 */
#define VEIL_OPRF_LEN 32        /* elements, scalars and outputs */
#define VEIL_OPRF_MAX_BATCH 256 /* elements per evaluation request */
#define VEIL_OPRF_DST_H2G "veil-oprf-v1-h2g"
#define VEIL_OPRF_DST_OUT "veil-oprf-v1-out"
#define VEIL_OPRF_DST_KEY "veil-oprf-v1-key"

int veil_oprf_hash_to_group(uint8_t out[static VEIL_OPRF_LEN], int kind, const char *x,
                            size_t len) VEIL_WUR;
/* Picks r (secret: wipe it after finalize) and computes the blinded element. */
int veil_oprf_blind(uint8_t blinded[static VEIL_OPRF_LEN], uint8_t r[static VEIL_OPRF_LEN],
                    int kind, const char *x, size_t len) VEIL_WUR;
/* Server side: out = k * element, refusing invalid encodings and the identity. */
int veil_oprf_evaluate(uint8_t out[static VEIL_OPRF_LEN], const uint8_t k[static VEIL_OPRF_LEN],
                       const uint8_t element[static VEIL_OPRF_LEN]) VEIL_WUR;
/* Client side: unblinds evaluated with r and hashes it into out. */
int veil_oprf_finalize(uint8_t out[static VEIL_OPRF_LEN], int kind, const char *x, size_t len,
                       const uint8_t r[static VEIL_OPRF_LEN],
                       const uint8_t evaluated[static VEIL_OPRF_LEN]) VEIL_WUR;
/* The output hash over an unblinded element N = k * H2G(kind, x). */
int veil_oprf_output(uint8_t out[static VEIL_OPRF_LEN], int kind, const char *x, size_t len,
                     const uint8_t n[static VEIL_OPRF_LEN]) VEIL_WUR;
/*
 * Derives the server's OPRF scalar from a 32-byte secret seed: the
 * BLAKE2b-512 KDF (salt "oprf", personal DST_KEY) reduced mod the group
 * order. Never zero.
 */
int veil_oprf_key_derive(uint8_t k[static VEIL_OPRF_LEN], const uint8_t seed[static 32]) VEIL_WUR;

#endif
