/*
 * The Connection Rendezvous Protocol on one relayed WebSocket path, and the
 * device join link that carries its RendezvousInit. See
 * include/veil/rendezvous.h for the flow, the keys and the framing.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "veil/err.h"
#include "veil/rendezvous.h"
#include "proto/md-d2d-rendezvous.pb-c.h"
#include "proto/url-payloads.pb-c.h"

static const char PERSONAL[] = "3ma-rendezvous";
static const char LINK_PREFIX[] = "threema://device-group/join#";

/* Largest protobuf RendezvousInit we parse (a link holds far less). */
#define INIT_MAX 4096
/* Most direct TCP addresses we look through (only to check path IDs). */
#define DIRECT_MAX 64

static int kdf(uint8_t out[static 32], const uint8_t *key, size_t keylen, const char *salt)
{
	return veil_kdf(out, 32, key, keylen, salt, strlen(salt), PERSONAL, sizeof PERSONAL - 1);
}

/* --- RendezvousInit and the link --- */

void veil_rdv_init_wipe(struct veil_rdv_init *init)
{
	sodium_memzero(init, sizeof *init);
}

static int ws_url_ok(const char *url, size_t n)
{
	if (n > VEIL_RDV_URL_MAX)
		return 0;
	if (!(n > 5 && memcmp(url, "ws://", 5) == 0) && !(n > 6 && memcmp(url, "wss://", 6) == 0))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return 0;
	return 1;
}

int veil_rdv_init_new(struct veil_rdv_init *init, const char *relay_base)
{
	uint8_t path[VEIL_RDV_PATH_LEN];
	char hex[VEIL_RDV_PATH_HEX_LEN + 1];
	memset(init, 0, sizeof *init);
	size_t n = strlen(relay_base);
	if (!ws_url_ok(relay_base, n) || relay_base[n - 1] != '/' ||
	    strchr(relay_base, '?') != NULL || strchr(relay_base, '#') != NULL)
		return VEIL_EINVAL;
	if (n + VEIL_RDV_PATH_HEX_LEN > VEIL_RDV_URL_MAX)
		return VEIL_ELIMIT;
	veil_random(init->ak, sizeof init->ak);
	veil_random(&init->path_id, sizeof init->path_id);
	veil_random(path, sizeof path);
	if (veil_hex_encode(hex, sizeof hex, path, sizeof path) != 0) {
		veil_rdv_init_wipe(init);
		return VEIL_EINVAL;
	}
	memcpy(init->url, relay_base, n);
	memcpy(init->url + n, hex, VEIL_RDV_PATH_HEX_LEN + 1);
	return 0;
}

/* Fills m (and its relayed path rw) from init; pointers into init. */
static void init_to_pb(D2dRendezvous__RendezvousInit *m,
                       D2dRendezvous__RendezvousInit__RelayedWebSocket *rw,
                       const struct veil_rdv_init *init)
{
	d2d_rendezvous__rendezvous_init__init(m);
	d2d_rendezvous__rendezvous_init__relayed_web_socket__init(rw);
	m->version = D2D_RENDEZVOUS__RENDEZVOUS_INIT__VERSION__V1_0;
	m->ak.data = (uint8_t *)init->ak;
	m->ak.len = VEIL_RDV_AK_LEN;
	rw->path_id = init->path_id;
	rw->network_cost = (D2dRendezvous__RendezvousInit__NetworkCost)init->network_cost;
	rw->url = (char *)init->url;
	m->relayed_web_socket = rw;
}

int veil_rdv_init_encode(struct veil_buf *out, const struct veil_rdv_init *init)
{
	D2dRendezvous__RendezvousInit m;
	D2dRendezvous__RendezvousInit__RelayedWebSocket rw;
	init_to_pb(&m, &rw, init);
	size_t n = d2d_rendezvous__rendezvous_init__get_packed_size(&m);
	int rc = veil_buf_reserve(out, n);
	if (rc != 0)
		return rc;
	out->len += d2d_rendezvous__rendezvous_init__pack(&m, out->p + out->len);
	return 0;
}

static int init_from_pb(struct veil_rdv_init *init, const D2dRendezvous__RendezvousInit *m)
{
	memset(init, 0, sizeof *init);
	if (m->version != D2D_RENDEZVOUS__RENDEZVOUS_INIT__VERSION__V1_0 ||
	    m->ak.len != VEIL_RDV_AK_LEN)
		return VEIL_EPROTO;
	const D2dRendezvous__RendezvousInit__RelayedWebSocket *rw = m->relayed_web_socket;
	if (rw == NULL || rw->url == NULL)
		return VEIL_ENOTFOUND;
	size_t n = strlen(rw->url);
	if (n > VEIL_RDV_URL_MAX)
		return VEIL_ELIMIT;
	if (!ws_url_ok(rw->url, n))
		return VEIL_EPROTO;
	/* Every path ID must be unique; the direct paths are otherwise ignored. */
	const D2dRendezvous__RendezvousInit__DirectTcpServer *d = m->direct_tcp_server;
	if (d != NULL) {
		if (d->n_ip_addresses > DIRECT_MAX)
			return VEIL_ELIMIT;
		for (size_t i = 0; i < d->n_ip_addresses; i++) {
			uint32_t id = d->ip_addresses[i]->path_id;
			if (id == rw->path_id)
				return VEIL_EPROTO;
			for (size_t j = 0; j < i; j++)
				if (d->ip_addresses[j]->path_id == id)
					return VEIL_EPROTO;
		}
	}
	memcpy(init->ak, m->ak.data, VEIL_RDV_AK_LEN);
	init->path_id = rw->path_id;
	init->network_cost = (uint32_t)rw->network_cost;
	memcpy(init->url, rw->url, n + 1);
	return 0;
}

int veil_rdv_init_parse(struct veil_rdv_init *init, const uint8_t *p, size_t n)
{
	memset(init, 0, sizeof *init);
	if (n > INIT_MAX)
		return VEIL_ELIMIT;
	D2dRendezvous__RendezvousInit *m = d2d_rendezvous__rendezvous_init__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	int rc = init_from_pb(init, m);
	if (m->ak.data != NULL)
		sodium_memzero(m->ak.data, m->ak.len);
	d2d_rendezvous__rendezvous_init__free_unpacked(m, NULL);
	if (rc != 0)
		veil_rdv_init_wipe(init);
	return rc;
}

int veil_rdv_link_encode(char *out, size_t cap, const struct veil_rdv_init *init,
                         enum veil_rdv_variant variant, uint32_t d2d_version)
{
	Url__DeviceGroupJoinRequestOrOffer m;
	Url__DeviceGroupJoinRequestOrOffer__Variant v;
	Common__Unit unit;
	D2dRendezvous__RendezvousInit ri;
	D2dRendezvous__RendezvousInit__RelayedWebSocket rw;
	uint8_t packed[VEIL_RDV_LINK_MAX];
	size_t pre = sizeof LINK_PREFIX - 1;

	if (cap > 0)
		out[0] = '\0';
	if (variant != VEIL_RDV_REQUEST_TO_JOIN && variant != VEIL_RDV_OFFER_TO_JOIN)
		return VEIL_EINVAL;
	url__device_group_join_request_or_offer__init(&m);
	url__device_group_join_request_or_offer__variant__init(&v);
	common__unit__init(&unit);
	init_to_pb(&ri, &rw, init);
	if (variant == VEIL_RDV_REQUEST_TO_JOIN) {
		v.type_case =
		    URL__DEVICE_GROUP_JOIN_REQUEST_OR_OFFER__VARIANT__TYPE_REQUEST_TO_JOIN;
		v.request_to_join = &unit;
	} else {
		v.type_case = URL__DEVICE_GROUP_JOIN_REQUEST_OR_OFFER__VARIANT__TYPE_OFFER_TO_JOIN;
		v.offer_to_join = &unit;
	}
	m.version = URL__DEVICE_GROUP_JOIN_REQUEST_OR_OFFER__VERSION__V1_0;
	m.d2d_protocol_version = d2d_version;
	m.variant = &v;
	m.rendezvous_init = &ri;
	size_t n = url__device_group_join_request_or_offer__get_packed_size(&m);
	if (n > sizeof packed)
		return VEIL_ELIMIT;
	url__device_group_join_request_or_offer__pack(&m, packed);
	size_t b64 = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE);
	if (pre + b64 > VEIL_RDV_LINK_MAX + 1 || pre + b64 > cap) {
		sodium_memzero(packed, n);
		return VEIL_ELIMIT;
	}
	memcpy(out, LINK_PREFIX, pre);
	sodium_bin2base64(out + pre, cap - pre, packed, n, sodium_base64_VARIANT_URLSAFE);
	sodium_memzero(packed, n);
	return 0;
}

int veil_rdv_link_parse(struct veil_rdv_init *init, enum veil_rdv_variant *variant,
                        uint32_t *d2d_version, const char *link, size_t len)
{
	uint8_t packed[VEIL_RDV_LINK_MAX];
	size_t pre = sizeof LINK_PREFIX - 1, n = 0;
	int rc = VEIL_EPROTO;

	memset(init, 0, sizeof *init);
	*variant = 0;
	*d2d_version = 0;
	if (len > VEIL_RDV_LINK_MAX)
		return VEIL_ELIMIT;
	if (len <= pre || memcmp(link, LINK_PREFIX, pre) != 0)
		return VEIL_EPROTO;
	const char *b = link + pre;
	size_t bl = len - pre;
	/* The desktop app pads; accept both by dropping the padding. */
	for (int i = 0; i < 2 && bl > 0 && b[bl - 1] == '='; i++)
		bl--;
	if (sodium_base642bin(packed, sizeof packed, b, bl, NULL, &n, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return VEIL_EPROTO;
	Url__DeviceGroupJoinRequestOrOffer *m =
	    url__device_group_join_request_or_offer__unpack(NULL, n, packed);
	sodium_memzero(packed, n);
	if (m == NULL)
		return VEIL_EPROTO;
	if (m->version != URL__DEVICE_GROUP_JOIN_REQUEST_OR_OFFER__VERSION__V1_0 ||
	    m->variant == NULL || m->rendezvous_init == NULL)
		goto out;
	if (m->variant->type_case ==
	    URL__DEVICE_GROUP_JOIN_REQUEST_OR_OFFER__VARIANT__TYPE_REQUEST_TO_JOIN)
		*variant = VEIL_RDV_REQUEST_TO_JOIN;
	else if (m->variant->type_case ==
	         URL__DEVICE_GROUP_JOIN_REQUEST_OR_OFFER__VARIANT__TYPE_OFFER_TO_JOIN)
		*variant = VEIL_RDV_OFFER_TO_JOIN;
	else
		goto out;
	rc = init_from_pb(init, m->rendezvous_init);
	if (rc == 0)
		*d2d_version = m->d2d_protocol_version;
out:
	if (m->rendezvous_init != NULL && m->rendezvous_init->ak.data != NULL)
		sodium_memzero(m->rendezvous_init->ak.data, m->rendezvous_init->ak.len);
	url__device_group_join_request_or_offer__free_unpacked(m, NULL);
	if (rc != 0) {
		veil_rdv_init_wipe(init);
		*variant = 0;
	}
	return rc;
}

int veil_rdv_url_path(char out[static VEIL_RDV_PATH_HEX_LEN + 1], const char *url)
{
	out[0] = '\0';
	const char *s = strrchr(url, '/');
	if (s == NULL || strlen(s + 1) != VEIL_RDV_PATH_HEX_LEN)
		return VEIL_EPROTO;
	s++;
	for (size_t i = 0; i < VEIL_RDV_PATH_HEX_LEN; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return VEIL_EPROTO;
	}
	memcpy(out, s, VEIL_RDV_PATH_HEX_LEN + 1);
	return 0;
}

/* --- the path --- */

static int fail(struct veil_rdv *r, int rc)
{
	int role = r->role, nominator = r->nominator;
	struct veil_buf rx = r->rx;
	sodium_memzero(r, sizeof *r);
	r->rx = rx;
	r->role = role;
	r->nominator = nominator;
	r->state = VEIL_RDV_S_FAILED;
	veil_buf_reset(&r->rx);
	return rc;
}

static void nonce_make(uint8_t nonce[static 12], uint32_t pid, uint32_t sn)
{
	for (int i = 0; i < 4; i++) {
		nonce[i] = (uint8_t)(pid >> (8 * i));
		nonce[4 + i] = (uint8_t)(sn >> (8 * i));
		nonce[8 + i] = 0;
	}
}

/* Appends u32-le(length) || ChaCha20-Poly1305(p) under key_out and RxDSN+. */
static int seal_frame(struct veil_rdv *r, const uint8_t *p, size_t n, size_t limit,
                      struct veil_buf *out)
{
	uint8_t nonce[12];
	if (n > limit - VEIL_RDV_TAG_LEN)
		return VEIL_ELIMIT;
	if (r->sn_out == UINT32_MAX)
		return VEIL_ELIMIT;
	size_t cl = n + VEIL_RDV_TAG_LEN;
	int rc = veil_buf_reserve(out, VEIL_RDV_FRAME_HDR + cl);
	if (rc != 0)
		return rc;
	nonce_make(nonce, r->pid, r->sn_out);
	uint8_t *f = out->p + out->len;
	for (int i = 0; i < 4; i++)
		f[i] = (uint8_t)(cl >> (8 * i));
	unsigned long long got = 0;
	crypto_aead_chacha20poly1305_ietf_encrypt(f + VEIL_RDV_FRAME_HDR, &got, p, n, NULL, 0, NULL,
	                                          nonce, r->key_out);
	out->len += VEIL_RDV_FRAME_HDR + cl;
	r->sn_out++;
	return 0;
}

/* Packs m and seals it as a handshake frame. */
static int seal_msg(struct veil_rdv *r, const ProtobufCMessage *m, struct veil_buf *out)
{
	uint8_t buf[256];
	size_t n = protobuf_c_message_get_packed_size(m);
	if (n > sizeof buf)
		return VEIL_ELIMIT;
	protobuf_c_message_pack(m, buf);
	int rc = seal_frame(r, buf, n, VEIL_RDV_HS_FRAME_MAX, out);
	sodium_memzero(buf, sizeof buf);
	return rc;
}

int veil_rdv_start(struct veil_rdv *r, enum veil_rdv_role role, int nominator,
                   const struct veil_rdv_init *init, struct veil_buf *out)
{
	uint8_t rida[32], rrda[32];
	memset(r, 0, sizeof *r);
	/* Room for a whole frame of the largest kind and the start of the next one. */
	veil_buf_init_secret(&r->rx,
	                     VEIL_RDV_FRAME_HDR + VEIL_RDV_FRAME_MAX + VEIL_RDV_WS_MESSAGE_MAX);
	r->role = role;
	r->nominator = nominator != 0;
	r->state = VEIL_RDV_S_FAILED;
	if (role != VEIL_RDV_RID && role != VEIL_RDV_RRD)
		return VEIL_EINVAL;
	r->pid = init->path_id;
	r->sn_out = r->sn_in = 1;
	memcpy(r->ak, init->ak, VEIL_RDV_AK_LEN);
	if (veil_rdv_derive(r->ak, NULL, rida, rrda, rida, rrda, r->rph) != 0)
		return fail(r, VEIL_ECRYPTO);
	memcpy(r->key_out, role == VEIL_RDV_RID ? rida : rrda, 32);
	memcpy(r->key_in, role == VEIL_RDV_RID ? rrda : rida, 32);
	sodium_memzero(rida, sizeof rida);
	sodium_memzero(rrda, sizeof rrda);
	if (role == VEIL_RDV_RID) {
		r->state = VEIL_RDV_S_AWAIT_HELLO;
		return 0;
	}
	/* RRD opens with its Hello. */
	uint8_t pk[VEIL_RDV_ETK_LEN];
	veil_random(r->challenge, sizeof r->challenge);
	veil_keypair(pk, r->etk_sk);
	D2dRendezvous__Handshake__RrdToRid__Hello h;
	d2d_rendezvous__handshake__rrd_to_rid__hello__init(&h);
	h.challenge.data = r->challenge;
	h.challenge.len = sizeof r->challenge;
	h.etk.data = pk;
	h.etk.len = sizeof pk;
	int rc = seal_msg(r, &h.base, out);
	if (rc != 0)
		return fail(r, rc);
	r->state = VEIL_RDV_S_AWAIT_AUTH_HELLO;
	return 0;
}

void veil_rdv_release(struct veil_rdv *r)
{
	veil_buf_release(&r->rx);
	sodium_memzero(r, sizeof *r);
}

int veil_rdv_feed(struct veil_rdv *r, const uint8_t *p, size_t n)
{
	if (r->state == VEIL_RDV_S_FAILED)
		return VEIL_EPROTO;
	return veil_buf_append(&r->rx, p, n);
}

int veil_rdv_derive(const uint8_t ak[static VEIL_RDV_AK_LEN], const uint8_t *shared_etk,
                    uint8_t ridak[static 32], uint8_t rrdak[static 32], uint8_t ridtk[static 32],
                    uint8_t rrdtk[static 32], uint8_t rph[static VEIL_RDV_RPH_LEN])
{
	uint8_t km[64], stk[32];
	uint8_t salt[crypto_generichash_blake2b_SALTBYTES] = {'p', 'h'};
	uint8_t pers[crypto_generichash_blake2b_PERSONALBYTES] = {0};
	int rc = 0;
	if (kdf(ridak, ak, VEIL_RDV_AK_LEN, "rida") != 0 ||
	    kdf(rrdak, ak, VEIL_RDV_AK_LEN, "rrda") != 0)
		return VEIL_ECRYPTO;
	if (shared_etk == NULL)
		return 0;
	memcpy(pers, PERSONAL, sizeof PERSONAL - 1);
	memcpy(km, ak, 32);
	memcpy(km + 32, shared_etk, 32);
	if (kdf(stk, km, sizeof km, "st") != 0 || kdf(ridtk, stk, 32, "ridt") != 0 ||
	    kdf(rrdtk, stk, 32, "rrdt") != 0 ||
	    crypto_generichash_blake2b_salt_personal(rph, 32, stk, 32, NULL, 0, salt, pers) != 0)
		rc = VEIL_ECRYPTO;
	sodium_memzero(km, sizeof km);
	sodium_memzero(stk, sizeof stk);
	return rc;
}

/* From the ETK shared secret: RxDTK in place of RxDAK, and RPH. */
static int transport_keys(struct veil_rdv *r)
{
	uint8_t ida[32], rda[32], idt[32], rdt[32];
	int rc = veil_rdv_derive(r->ak, r->shared_etk, ida, rda, idt, rdt, r->rph);
	if (rc == 0) {
		memcpy(r->key_out, r->role == VEIL_RDV_RID ? idt : rdt, 32);
		memcpy(r->key_in, r->role == VEIL_RDV_RID ? rdt : idt, 32);
	}
	sodium_memzero(ida, sizeof ida);
	sodium_memzero(rda, sizeof rda);
	sodium_memzero(idt, sizeof idt);
	sodium_memzero(rdt, sizeof rdt);
	sodium_memzero(r->shared_etk, sizeof r->shared_etk);
	sodium_memzero(r->etk_sk, sizeof r->etk_sk);
	return rc;
}

/* A 16-byte challenge and a 32-byte ETK from the peer's message. */
static int check_hello_fields(ProtobufCBinaryData challenge, ProtobufCBinaryData etk)
{
	return challenge.len == VEIL_RDV_CHALLENGE_LEN && etk.len == VEIL_RDV_ETK_LEN ? 0
	                                                                              : VEIL_EPROTO;
}

/* RID got Hello: answer with AuthHello. */
static int on_hello(struct veil_rdv *r, const uint8_t *p, size_t n, struct veil_buf *out)
{
	D2dRendezvous__Handshake__RrdToRid__Hello *h =
	    (D2dRendezvous__Handshake__RrdToRid__Hello *)protobuf_c_message_unpack(
	        &d2d_rendezvous__handshake__rrd_to_rid__hello__descriptor, NULL, n, p);
	if (h == NULL)
		return VEIL_EPROTO;
	int rc = check_hello_fields(h->challenge, h->etk);
	uint8_t pk[VEIL_RDV_ETK_LEN];
	if (rc == 0) {
		veil_random(r->challenge, sizeof r->challenge);
		veil_keypair(pk, r->etk_sk);
		if (veil_shared_key(r->shared_etk, r->etk_sk, h->etk.data) != 0)
			rc = VEIL_ECRYPTO;
	}
	if (rc == 0) {
		D2dRendezvous__Handshake__RidToRrd__AuthHello a;
		d2d_rendezvous__handshake__rid_to_rrd__auth_hello__init(&a);
		a.response = h->challenge;
		a.challenge.data = r->challenge;
		a.challenge.len = sizeof r->challenge;
		a.etk.data = pk;
		a.etk.len = sizeof pk;
		rc = seal_msg(r, &a.base, out);
	}
	protobuf_c_message_free_unpacked(&h->base, NULL);
	if (rc == 0)
		r->state = VEIL_RDV_S_AWAIT_AUTH;
	return rc == 0 ? VEIL_RDV_EV_PROGRESS : rc;
}

static int response_ok(const struct veil_rdv *r, ProtobufCBinaryData resp)
{
	return resp.len == VEIL_RDV_CHALLENGE_LEN &&
	       sodium_memcmp(resp.data, r->challenge, VEIL_RDV_CHALLENGE_LEN) == 0;
}

/* RID got Auth: authenticated. */
static int on_auth(struct veil_rdv *r, const uint8_t *p, size_t n)
{
	D2dRendezvous__Handshake__RrdToRid__Auth *a =
	    (D2dRendezvous__Handshake__RrdToRid__Auth *)protobuf_c_message_unpack(
	        &d2d_rendezvous__handshake__rrd_to_rid__auth__descriptor, NULL, n, p);
	if (a == NULL)
		return VEIL_EPROTO;
	int rc = response_ok(r, a->response) ? 0 : VEIL_EAUTH;
	protobuf_c_message_free_unpacked(&a->base, NULL);
	if (rc == 0)
		rc = transport_keys(r);
	if (rc != 0)
		return rc;
	r->state = VEIL_RDV_S_AWAIT_NOMINATE;
	return VEIL_RDV_EV_AUTHENTICATED;
}

/* RRD got AuthHello: answer with Auth, authenticated. */
static int on_auth_hello(struct veil_rdv *r, const uint8_t *p, size_t n, struct veil_buf *out)
{
	D2dRendezvous__Handshake__RidToRrd__AuthHello *a =
	    (D2dRendezvous__Handshake__RidToRrd__AuthHello *)protobuf_c_message_unpack(
	        &d2d_rendezvous__handshake__rid_to_rrd__auth_hello__descriptor, NULL, n, p);
	if (a == NULL)
		return VEIL_EPROTO;
	int rc = response_ok(r, a->response) ? 0 : VEIL_EAUTH;
	if (rc == 0)
		rc = check_hello_fields(a->challenge, a->etk);
	if (rc == 0 && veil_shared_key(r->shared_etk, r->etk_sk, a->etk.data) != 0)
		rc = VEIL_ECRYPTO;
	if (rc == 0) {
		D2dRendezvous__Handshake__RrdToRid__Auth au;
		d2d_rendezvous__handshake__rrd_to_rid__auth__init(&au);
		au.response = a->challenge;
		rc = seal_msg(r, &au.base, out);
	}
	protobuf_c_message_free_unpacked(&a->base, NULL);
	if (rc == 0)
		rc = transport_keys(r);
	if (rc != 0)
		return rc;
	r->state = VEIL_RDV_S_AWAIT_NOMINATE;
	return VEIL_RDV_EV_AUTHENTICATED;
}

static int on_nominate(struct veil_rdv *r, const uint8_t *p, size_t n)
{
	if (r->nominator)
		return VEIL_EPROTO; /* only the other side may nominate */
	D2dRendezvous__Nominate *m = d2d_rendezvous__nominate__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	d2d_rendezvous__nominate__free_unpacked(m, NULL);
	r->state = VEIL_RDV_S_NOMINATED;
	return VEIL_RDV_EV_NOMINATED;
}

int veil_rdv_next(struct veil_rdv *r, struct veil_buf *out, struct veil_buf *data)
{
	uint8_t nonce[12], hs[VEIL_RDV_HS_FRAME_MAX];
	unsigned long long pl = 0;
	int rc;

	if (r->state == VEIL_RDV_S_FAILED)
		return VEIL_EPROTO;
	if (r->rx.len < VEIL_RDV_FRAME_HDR)
		return VEIL_RDV_EV_NONE;
	const uint8_t *f = r->rx.p;
	size_t cl = (size_t)f[0] | (size_t)f[1] << 8 | (size_t)f[2] << 16 | (size_t)f[3] << 24;
	int nominated = r->state == VEIL_RDV_S_NOMINATED;
	if (cl > (nominated ? VEIL_RDV_FRAME_MAX : VEIL_RDV_HS_FRAME_MAX) || cl < VEIL_RDV_TAG_LEN)
		return fail(r, VEIL_EPROTO);
	if (r->rx.len - VEIL_RDV_FRAME_HDR < cl)
		return VEIL_RDV_EV_NONE;
	if (r->sn_in == UINT32_MAX)
		return fail(r, VEIL_ELIMIT);
	nonce_make(nonce, r->pid, r->sn_in);
	uint8_t *plain = hs;
	if (nominated) {
		if (data == NULL)
			return VEIL_EINVAL; /* nothing consumed: call again with a buffer */
		veil_buf_reset(data);
		if ((rc = veil_buf_reserve(data, cl - VEIL_RDV_TAG_LEN + 1)) != 0)
			return fail(r, rc);
		plain = data->p;
	}
	if (crypto_aead_chacha20poly1305_ietf_decrypt(plain, &pl, NULL, f + VEIL_RDV_FRAME_HDR, cl,
	                                              NULL, 0, nonce, r->key_in) != 0)
		return fail(r, VEIL_ECRYPTO);
	r->sn_in++;
	veil_buf_consume(&r->rx, VEIL_RDV_FRAME_HDR + cl);
	if (nominated) {
		data->len = (size_t)pl;
		return VEIL_RDV_EV_DATA;
	}
	switch (r->state) {
	case VEIL_RDV_S_AWAIT_HELLO: rc = on_hello(r, hs, (size_t)pl, out); break;
	case VEIL_RDV_S_AWAIT_AUTH: rc = on_auth(r, hs, (size_t)pl); break;
	case VEIL_RDV_S_AWAIT_AUTH_HELLO: rc = on_auth_hello(r, hs, (size_t)pl, out); break;
	case VEIL_RDV_S_AWAIT_NOMINATE: rc = on_nominate(r, hs, (size_t)pl); break;
	default: rc = VEIL_EPROTO; break;
	}
	sodium_memzero(hs, (size_t)pl);
	return rc < 0 ? fail(r, rc) : rc;
}

int veil_rdv_nominate(struct veil_rdv *r, struct veil_buf *out)
{
	if (!r->nominator || r->state != VEIL_RDV_S_AWAIT_NOMINATE)
		return VEIL_EINVAL;
	D2dRendezvous__Nominate m;
	d2d_rendezvous__nominate__init(&m);
	int rc = seal_msg(r, &m.base, out);
	if (rc != 0)
		return fail(r, rc);
	r->state = VEIL_RDV_S_NOMINATED;
	return 0;
}

int veil_rdv_seal(struct veil_rdv *r, const uint8_t *p, size_t n, struct veil_buf *out)
{
	if (r->state != VEIL_RDV_S_NOMINATED)
		return VEIL_EINVAL;
	return seal_frame(r, p, n, VEIL_RDV_FRAME_MAX, out);
}

int veil_rdv_rph(const struct veil_rdv *r, uint8_t out[static VEIL_RDV_RPH_LEN])
{
	if (r->state != VEIL_RDV_S_AWAIT_NOMINATE && r->state != VEIL_RDV_S_NOMINATED) {
		memset(out, 0, VEIL_RDV_RPH_LEN);
		return VEIL_EINVAL;
	}
	memcpy(out, r->rph, VEIL_RDV_RPH_LEN);
	return 0;
}

void veil_rdv_rph_short(char out[static VEIL_RDV_RPH_SHORT_LEN],
                        const uint8_t rph[static VEIL_RDV_RPH_LEN])
{
	snprintf(out, VEIL_RDV_RPH_SHORT_LEN, "%02x-%02x-%02x", rph[0], rph[1], rph[2]);
}
