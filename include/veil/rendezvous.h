/*
 * The Connection Rendezvous Protocol (md-d2d-rendezvous.proto) and the
 * device join link (url-payloads.proto), as byte-in, byte-out functions:
 * the caller owns the transport (a WebSocket to a rendezvous relay) and
 * this module never does I/O.
 *
 * Only the relayed WebSocket path is implemented: no direct TCP server
 * paths. A RendezvousInit we make carries one relayed path; one we parse
 * may carry direct paths, which are ignored.
 *
 * Roles: RID (initiator) makes the RendezvousInit and shows it as a link;
 * RRD (responder) scans it. Both connect to the relay URL in it; the relay
 * pairs the two connections and forwards whole WebSocket messages. The
 * handshake, lock-step:
 *
 *   RRD -- Hello(challenge, ETK)              --> RID   under RRDAK
 *   RRD <- AuthHello(response, challenge, ETK) -- RID   under RIDAK
 *   RRD -- Auth(response)                     --> RID   under RRDAK
 *   nominator -- Nominate                     --> other under RIDTK / RRDTK
 *
 * after which the upper-layer protocol (ULP, e.g. the device join
 * messages) is sealed under RIDTK (from RID) or RRDTK (from RRD).
 *
 * Keys: RIDAK/RRDAK = BLAKE2b-256(key=AK, salt 'rida'/'rrda', personal
 * '3ma-rendezvous'); STK = BLAKE2b-256(key=AK || X25519HSalsa20(local ETK,
 * remote ETK), salt 'st'); RIDTK/RRDTK = BLAKE2b-256(key=STK, salt
 * 'ridt'/'rrdt'); the rendezvous path hash RPH = BLAKE2b-256(no key, salt
 * 'ph', input STK). Each direction is ChaCha20-Poly1305 (IETF) with nonce
 * u32-le(PID) || u32-le(sequence number) || 4 zero bytes; each direction's
 * sequence number starts at 1 and runs on from the AK keys to the TK keys.
 * A replayed, reordered, dropped or forged frame therefore fails to open.
 *
 * Framing: every encrypted message is a frame u32-le(length) || ciphertext.
 * Frames are a byte stream: a WebSocket message may hold part of a frame or
 * several frames. Send the bytes this module appends to out in WebSocket
 * binary messages of at most VEIL_RDV_WS_MESSAGE_MAX bytes each (the relay's
 * limit), and feed every received message to veil_rdv_feed.
 *
 * Usage, RID (shows the link):
 *   veil_rdv_init_new(&init, relay_base_url);
 *   veil_rdv_link_encode(link, sizeof link, &init, VEIL_RDV_OFFER_TO_JOIN, 0);
 *   connect a WebSocket to init.url; show link (QR code);
 *   veil_rdv_start(&r, VEIL_RDV_RID, is_nominator, &init, &out);   (out stays empty)
 * RRD (scans the link):
 *   veil_rdv_link_parse(&init, &variant, &d2d, link, strlen(link));
 *   connect a WebSocket to init.url;
 *   veil_rdv_start(&r, VEIL_RDV_RRD, is_nominator, &init, &out);   (out = Hello)
 * Then both, in a loop: send out (if not empty) and reset it; read one
 * WebSocket message, veil_rdv_feed it; call veil_rdv_next until it returns
 * VEIL_RDV_EV_NONE, sending out after each call. On VEIL_RDV_EV_AUTHENTICATED
 * the nominator calls veil_rdv_nominate (a frame into out) and shows the RPH;
 * the other side waits for VEIL_RDV_EV_NOMINATED. After that,
 * veil_rdv_seal sends a ULP message and VEIL_RDV_EV_DATA delivers one.
 */
#ifndef VEIL_RENDEZVOUS_H
#define VEIL_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

#include "veil/util.h"

#define VEIL_RDV_AK_LEN 32
#define VEIL_RDV_RPH_LEN 32
#define VEIL_RDV_CHALLENGE_LEN 16
#define VEIL_RDV_ETK_LEN 32
#define VEIL_RDV_TAG_LEN 16
#define VEIL_RDV_FRAME_HDR 4
/* The random rendezvous path: 32 bytes, 64 hex characters at the end of the URL. */
#define VEIL_RDV_PATH_LEN 32
#define VEIL_RDV_PATH_HEX_LEN (2 * VEIL_RDV_PATH_LEN)
/* Longest relay URL we make or accept (without NUL). */
#define VEIL_RDV_URL_MAX 512
/* Longest device join link (without NUL). */
#define VEIL_RDV_LINK_MAX 1024
/* Largest frame (ciphertext) before nomination, as libthreema has it. */
#define VEIL_RDV_HS_FRAME_MAX 16384
/*
 * Largest frame after nomination. libthreema accepts 100 MiB; the join
 * protocol's largest message is EssentialData, which veil_join bounds well
 * below this (VEIL_JOIN_MAX_MESSAGE).
 */
#define VEIL_RDV_FRAME_MAX (16u * 1024u * 1024u)
/* Largest WebSocket message the relay forwards (veild's relay limit). */
#define VEIL_RDV_WS_MESSAGE_MAX 65536
/* "xx-xx-xx": the short, human-comparable form of the RPH, with NUL. */
#define VEIL_RDV_RPH_SHORT_LEN 9

/* WebSocket close codes of the specification. */
#define VEIL_RDV_CLOSE_NORMAL 1000
#define VEIL_RDV_CLOSE_PROTOCOL 4000
#define VEIL_RDV_CLOSE_INIT_TIMEOUT 4003
#define VEIL_RDV_CLOSE_OTHER_GONE 4004
#define VEIL_RDV_CLOSE_ULP 4100

enum veil_rdv_role { VEIL_RDV_RID = 1, VEIL_RDV_RRD = 2 };

/* DeviceGroupJoinRequestOrOffer.variant. */
enum veil_rdv_variant {
	VEIL_RDV_REQUEST_TO_JOIN = 1, /* the new device (ND) made the link: ND is RID */
	VEIL_RDV_OFFER_TO_JOIN = 2,   /* the existing device (ED) made the link: ED is RID */
};

/* A RendezvousInit with its one relayed WebSocket path. */
struct veil_rdv_init {
	uint8_t ak[VEIL_RDV_AK_LEN]; /* secret: wipe with veil_rdv_init_wipe */
	uint32_t path_id;
	uint32_t network_cost; /* 0 unknown, 1 unmetered, 2 metered */
	char url[VEIL_RDV_URL_MAX + 1];
};

/*
 * Fills init for RID: a random AK, a random path ID and url = relay_base
 * (a ws:// or wss:// URL ending with '/', e.g. the provisioning document's
 * rendezvous.url) followed by the hex of 32 random bytes. VEIL_EINVAL for a
 * base that is not ws(s)://.../, VEIL_ELIMIT if the URL would be too long.
 */
int veil_rdv_init_new(struct veil_rdv_init *init, const char *relay_base) VEIL_WUR;
void veil_rdv_init_wipe(struct veil_rdv_init *init);

/* Appends the protobuf RendezvousInit (version 1.0, the relayed path). */
int veil_rdv_init_encode(struct veil_buf *out, const struct veil_rdv_init *init) VEIL_WUR;
/*
 * Parses a protobuf RendezvousInit: version 1.0, a 32-byte AK, a relayed
 * WebSocket path with a ws:// or wss:// URL of at most VEIL_RDV_URL_MAX
 * bytes. Direct TCP paths are ignored, but their path IDs must differ from
 * the relayed one. VEIL_EPROTO / VEIL_ELIMIT / VEIL_ENOTFOUND (no relayed
 * path); init is wiped on failure.
 */
int veil_rdv_init_parse(struct veil_rdv_init *init, const uint8_t *p, size_t n) VEIL_WUR;

/*
 * The link threema://device-group/join#<url-safe base64, padded, of a
 * DeviceGroupJoinRequestOrOffer> (url-payloads.proto), NUL-terminated in
 * out. d2d_version is the D2D protocol version to announce (0 = V0.1).
 */
int veil_rdv_link_encode(char *out, size_t cap, const struct veil_rdv_init *init,
                         enum veil_rdv_variant variant, uint32_t d2d_version) VEIL_WUR;
/*
 * Parses such a link (base64 with or without padding; the scheme and path
 * compared exactly). VEIL_EPROTO for another form, an unknown version or
 * variant; VEIL_ELIMIT over VEIL_RDV_LINK_MAX.
 */
int veil_rdv_link_parse(struct veil_rdv_init *init, enum veil_rdv_variant *variant,
                        uint32_t *d2d_version, const char *link, size_t len) VEIL_WUR;

/*
 * Extracts the hex rendezvous path (the last URL segment, 64 hex digits)
 * from a relay URL into out (VEIL_RDV_PATH_HEX_LEN + 1 bytes).
 */
int veil_rdv_url_path(char out[static VEIL_RDV_PATH_HEX_LEN + 1], const char *url) VEIL_WUR;

/* --- the handshake and the transport --- */

enum veil_rdv_state {
	VEIL_RDV_S_AWAIT_HELLO = 1,  /* RID: waiting for RrdToRid.Hello */
	VEIL_RDV_S_AWAIT_AUTH_HELLO, /* RRD: waiting for RidToRrd.AuthHello */
	VEIL_RDV_S_AWAIT_AUTH,       /* RID: waiting for RrdToRid.Auth */
	VEIL_RDV_S_AWAIT_NOMINATE,   /* authenticated; the nominator nominates */
	VEIL_RDV_S_NOMINATED,        /* ULP data may flow */
	VEIL_RDV_S_FAILED,           /* an error ended the protocol */
};

/* What veil_rdv_next did. */
enum veil_rdv_event {
	VEIL_RDV_EV_NONE = 0,          /* no whole frame buffered: feed more */
	VEIL_RDV_EV_PROGRESS = 1,      /* a handshake frame was handled (out may have grown) */
	VEIL_RDV_EV_AUTHENTICATED = 2, /* handshake done, RPH known: nominator calls nominate */
	VEIL_RDV_EV_NOMINATED = 3,     /* the peer nominated the path: ULP may start */
	VEIL_RDV_EV_DATA = 4,          /* one ULP message is in data */
};

/*
 * One rendezvous path's state. Embed it or put it on the stack; every
 * secret in it is wiped by veil_rdv_release and on failure.
 */
struct veil_rdv {
	int role, nominator, state;
	uint32_t pid;
	uint32_t sn_out, sn_in;
	uint8_t ak[VEIL_RDV_AK_LEN];
	uint8_t key_out[32], key_in[32]; /* RxDAK, later RxDTK */
	uint8_t etk_sk[VEIL_RDV_ETK_LEN];
	uint8_t shared_etk[32];
	uint8_t challenge[VEIL_RDV_CHALLENGE_LEN]; /* the one we sent */
	uint8_t rph[VEIL_RDV_RPH_LEN];
	struct veil_buf rx; /* received bytes not yet handled */
};

/*
 * Starts the protocol on the relayed path of init for role; nominator says
 * whether this side nominates (the ULP decides: in device join, ED).
 * RRD appends its Hello frame to out. r must be released with
 * veil_rdv_release whatever this returns.
 */
int veil_rdv_start(struct veil_rdv *r, enum veil_rdv_role role, int nominator,
                   const struct veil_rdv_init *init, struct veil_buf *out) VEIL_WUR;
void veil_rdv_release(struct veil_rdv *r);

/*
 * Appends received bytes (one WebSocket message, whole or any part of a
 * frame stream). VEIL_ELIMIT if more than a whole frame and its successor's
 * maximum would be buffered; VEIL_EPROTO once failed.
 */
int veil_rdv_feed(struct veil_rdv *r, const uint8_t *p, size_t n) VEIL_WUR;

/*
 * Handles the next whole buffered frame, if any. Returns an event >= 0 or
 * a negative veil_err, after which the state is VEIL_RDV_S_FAILED and every
 * call fails (close the WebSocket with VEIL_RDV_CLOSE_PROTOCOL):
 * VEIL_ECRYPTO (a frame does not open: wrong AK, forged, replayed or out of
 * order), VEIL_EAUTH (a challenge response differs), VEIL_EPROTO (a message
 * that is not the expected one, a Nominate from a side that may not, a
 * frame over the limit), VEIL_ELIMIT (sequence numbers exhausted).
 * Frames to send are appended to out; on VEIL_RDV_EV_DATA the plaintext
 * replaces data's contents (data's max must allow VEIL_RDV_FRAME_MAX or
 * the message: VEIL_ELIMIT otherwise). Call it again until VEIL_RDV_EV_NONE.
 */
int veil_rdv_next(struct veil_rdv *r, struct veil_buf *out, struct veil_buf *data) VEIL_WUR;

/*
 * Nominator only, in VEIL_RDV_S_AWAIT_NOMINATE: appends the Nominate frame
 * and enters VEIL_RDV_S_NOMINATED. VEIL_EINVAL otherwise.
 */
int veil_rdv_nominate(struct veil_rdv *r, struct veil_buf *out) VEIL_WUR;

/* Appends one ULP message as a frame. Only once nominated (VEIL_EINVAL before). */
int veil_rdv_seal(struct veil_rdv *r, const uint8_t *p, size_t n, struct veil_buf *out) VEIL_WUR;

/*
 * The rendezvous path hash, once authenticated (VEIL_EINVAL before), and
 * its short form: the first three bytes as lowercase hex "xx-xx-xx" (the
 * bytes Threema's apps show as three emoji from their 256-entry list).
 */
int veil_rdv_rph(const struct veil_rdv *r, uint8_t out[static VEIL_RDV_RPH_LEN]) VEIL_WUR;
void veil_rdv_rph_short(char out[static VEIL_RDV_RPH_SHORT_LEN],
                        const uint8_t rph[static VEIL_RDV_RPH_LEN]);

/*
 * The key schedule, exposed for known-answer tests: RIDAK and RRDAK from
 * AK, and, if shared_etk (the X25519HSalsa20 secret of the two ETKs) is not
 * NULL, RIDTK, RRDTK and RPH as well (else those are left untouched).
 */
int veil_rdv_derive(const uint8_t ak[static VEIL_RDV_AK_LEN], const uint8_t *shared_etk,
                    uint8_t ridak[static 32], uint8_t rrdak[static 32], uint8_t ridtk[static 32],
                    uint8_t rrdtk[static 32], uint8_t rph[static VEIL_RDV_RPH_LEN]) VEIL_WUR;

#endif
