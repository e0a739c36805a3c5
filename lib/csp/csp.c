/* The Chat Server Protocol transport: handshake, frames, payload container. */
#include <string.h>

#include <sodium.h>

#include "veil/csp.h"

static const char EXT_MAGIC[] = "threema-clever-extension-field"; /* 30 bytes */
#define EXT_MAGIC_LEN 30

int veil_csp_nonce_next(struct veil_csp_nonce *n, uint8_t nonce[static VEIL_NONCE_LEN])
{
	if (n->counter == UINT64_MAX)
		return VEIL_ELIMIT;
	memcpy(nonce, n->cookie, VEIL_COOKIE_LEN);
	veil_store_u64le(nonce + VEIL_COOKIE_LEN, n->counter);
	n->counter++;
	return 0;
}

int veil_csp_frame_seal(struct veil_csp_session *s, uint8_t *out, const uint8_t *payload,
                        size_t len)
{
	uint8_t nonce[VEIL_NONCE_LEN];
	if (len > VEIL_CSP_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	int rc = veil_csp_nonce_next(&s->tx, nonce);
	if (rc != 0)
		return rc;
	veil_store_u16le(out, (uint16_t)(len + VEIL_MAC_LEN));
	veil_box_seal(out + 2, payload, len, nonce, s->key);
	return 0;
}

int veil_csp_frame_open(struct veil_csp_session *s, uint8_t *out, const uint8_t *box, size_t len)
{
	uint8_t nonce[VEIL_NONCE_LEN];
	if (len < VEIL_MAC_LEN)
		return VEIL_ETRUNC;
	if (len > VEIL_CSP_MAX_FRAME)
		return VEIL_ELIMIT;
	int rc = veil_csp_nonce_next(&s->rx, nonce);
	if (rc != 0)
		return rc;
	return veil_box_open(out, box, len, nonce, s->key);
}

void veil_csp_session_wipe(struct veil_csp_session *s)
{
	sodium_memzero(s, sizeof *s);
}

/*
 * The vouch proves that the client holds the identity's secret key CK:
 * VouchKey = KDF(SS1 || SS2, 'v2', '3ma-csp') with SS1 = X25519HSalsa20(CK,
 * SK) and SS2 = X25519HSalsa20(CK, TSK); vouch = BLAKE2b-256 MAC keyed with
 * VouchKey over SCK || TCK.public.
 */
static int vouch_compute(uint8_t vouch[static 32], const uint8_t ss1[static 32],
                         const uint8_t ss2[static 32], const uint8_t sck[static VEIL_COOKIE_LEN],
                         const uint8_t tck_pk[static VEIL_KEY_LEN])
{
	uint8_t ss[64], vk[32], in[VEIL_COOKIE_LEN + VEIL_KEY_LEN];
	memcpy(ss, ss1, 32);
	memcpy(ss + 32, ss2, 32);
	int rc = veil_kdf(vk, sizeof vk, ss, sizeof ss, "v2", 2, "3ma-csp", 7);
	if (rc == 0) {
		memcpy(in, sck, VEIL_COOKIE_LEN);
		memcpy(in + VEIL_COOKIE_LEN, tck_pk, VEIL_KEY_LEN);
		veil_blake2b_mac(vouch, vk, in, sizeof in);
	}
	sodium_memzero(ss, sizeof ss);
	sodium_memzero(vk, sizeof vk);
	return rc;
}

/* --- client --- */

void veil_csp_client_hello(struct veil_csp_client *c, const uint8_t server_pk[static VEIL_KEY_LEN],
                           uint8_t out[static VEIL_CSP_CLIENT_HELLO_LEN])
{
	memset(c, 0, sizeof *c);
	memcpy(c->server_pk, server_pk, VEIL_KEY_LEN);
	veil_keypair(c->tck_pk, c->tck_sk);
	veil_random(c->sess.tx.cookie, VEIL_COOKIE_LEN);
	c->sess.tx.counter = 1;
	c->sess.rx.counter = 1;
	memcpy(out, c->tck_pk, VEIL_KEY_LEN);
	memcpy(out + VEIL_KEY_LEN, c->sess.tx.cookie, VEIL_COOKIE_LEN);
}

int veil_csp_client_server_hello(struct veil_csp_client *c,
                                 const uint8_t in[static VEIL_CSP_SERVER_HELLO_LEN])
{
	uint8_t k[VEIL_KEY_LEN], nonce[VEIL_NONCE_LEN], plain[VEIL_KEY_LEN + VEIL_COOKIE_LEN];
	int rc;
	memcpy(c->sess.rx.cookie, in, VEIL_COOKIE_LEN);
	if (sodium_memcmp(c->sess.rx.cookie, c->sess.tx.cookie, VEIL_COOKIE_LEN) == 0)
		return VEIL_EPROTO;
	if ((rc = veil_shared_key(k, c->tck_sk, c->server_pk)) != 0)
		goto out;
	if ((rc = veil_csp_nonce_next(&c->sess.rx, nonce)) != 0)
		goto out;
	if ((rc = veil_box_open(plain, in + VEIL_COOKIE_LEN, 64, nonce, k)) != 0)
		goto out;
	if (sodium_memcmp(plain + VEIL_KEY_LEN, c->sess.tx.cookie, VEIL_COOKIE_LEN) != 0) {
		rc = VEIL_EPROTO;
		goto out;
	}
	memcpy(c->tsk_pk, plain, VEIL_KEY_LEN);
	rc = veil_shared_key(c->sess.key, c->tck_sk, c->tsk_pk);
out:
	sodium_memzero(k, sizeof k);
	sodium_memzero(plain, sizeof plain);
	return rc;
}

static int ext_append(struct veil_buf *b, uint8_t type, const void *p, size_t n)
{
	int rc;
	if (n > UINT16_MAX)
		return VEIL_ELIMIT;
	if ((rc = veil_buf_append_u8(b, type)) != 0 ||
	    (rc = veil_buf_append_u16le(b, (uint16_t)n)) != 0 ||
	    (rc = veil_buf_append(b, p, n)) != 0)
		return rc;
	return 0;
}

int veil_csp_client_login(struct veil_csp_client *c, struct veil_buf *out,
                          const uint8_t identity[static VEIL_ID_LEN],
                          const uint8_t ck_sk[static VEIL_KEY_LEN], const char *client_info,
                          uint64_t device_id, const uint8_t *device_cookie)
{
	uint8_t data[VEIL_CSP_LOGIN_DATA_LEN], ss1[32], ss2[32], vouch[32], nonce[VEIL_NONCE_LEN];
	struct veil_buf ext;
	int rc;
	veil_buf_init(&ext, VEIL_CSP_MAX_EXT);
	size_t cilen = client_info ? strlen(client_info) : 0;
	if (cilen > VEIL_CSP_CLIENT_INFO_MAX) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	/* Extensions: client info, features (metadata box, server echo), device id/cookie. */
	uint8_t v = VEIL_CSP_FEATURE_METADATA | VEIL_CSP_FEATURE_ECHO, idb[8];
	if ((rc = ext_append(&ext, VEIL_CSP_EXT_CLIENT_INFO, client_info ? client_info : "",
	                     cilen)) != 0 ||
	    (rc = ext_append(&ext, VEIL_CSP_EXT_FEATURES, &v, 1)) != 0)
		goto out;
	if (device_id != 0) {
		veil_store_u64le(idb, device_id);
		if ((rc = ext_append(&ext, VEIL_CSP_EXT_DEVICE_ID, idb, 8)) != 0)
			goto out;
	}
	if (device_cookie != NULL && (rc = ext_append(&ext, VEIL_CSP_EXT_DEVICE_COOKIE,
	                                              device_cookie, VEIL_COOKIE_LEN)) != 0)
		goto out;

	if ((rc = veil_shared_key(ss1, ck_sk, c->server_pk)) != 0 ||
	    (rc = veil_shared_key(ss2, ck_sk, c->tsk_pk)) != 0 ||
	    (rc = vouch_compute(vouch, ss1, ss2, c->sess.rx.cookie, c->tck_pk)) != 0)
		goto out;

	memset(data, 0, sizeof data);
	memcpy(data, identity, VEIL_ID_LEN);
	memcpy(data + 8, EXT_MAGIC, EXT_MAGIC_LEN);
	veil_store_u16le(data + 8 + EXT_MAGIC_LEN, (uint16_t)(ext.len + VEIL_MAC_LEN));
	memcpy(data + 40, c->sess.rx.cookie, VEIL_COOKIE_LEN);
	memcpy(data + 80, vouch, 32);

	if ((rc = veil_buf_reserve(out, VEIL_CSP_LOGIN_LEN + ext.len + VEIL_MAC_LEN)) != 0 ||
	    (rc = veil_csp_nonce_next(&c->sess.tx, nonce)) != 0)
		goto out;
	veil_box_seal(out->p + out->len, data, sizeof data, nonce, c->sess.key);
	out->len += VEIL_CSP_LOGIN_LEN;
	if ((rc = veil_csp_nonce_next(&c->sess.tx, nonce)) != 0)
		goto out;
	veil_box_seal(out->p + out->len, ext.p, ext.len, nonce, c->sess.key);
	out->len += ext.len + VEIL_MAC_LEN;
out:
	sodium_memzero(ss1, sizeof ss1);
	sodium_memzero(ss2, sizeof ss2);
	sodium_memzero(data, sizeof data);
	veil_buf_release(&ext);
	return rc;
}

int veil_csp_client_login_ack(struct veil_csp_client *c,
                              const uint8_t in[static VEIL_CSP_LOGIN_ACK_LEN])
{
	uint8_t plain[16], nonce[VEIL_NONCE_LEN];
	int rc = veil_csp_nonce_next(&c->sess.rx, nonce);
	if (rc == 0)
		rc = veil_box_open(plain, in, VEIL_CSP_LOGIN_ACK_LEN, nonce, c->sess.key);
	/* The handshake's ephemeral secret is no longer needed. */
	sodium_memzero(c->tck_sk, sizeof c->tck_sk);
	return rc;
}

/* --- server --- */

int veil_csp_server_hello(struct veil_csp_server *s, const uint8_t sk[static VEIL_KEY_LEN],
                          const uint8_t in[static VEIL_CSP_CLIENT_HELLO_LEN],
                          uint8_t out[static VEIL_CSP_SERVER_HELLO_LEN])
{
	uint8_t k[VEIL_KEY_LEN], nonce[VEIL_NONCE_LEN], plain[VEIL_KEY_LEN + VEIL_COOKIE_LEN];
	int rc;
	memset(s, 0, sizeof *s);
	memcpy(s->tck_pk, in, VEIL_KEY_LEN);
	memcpy(s->sess.rx.cookie, in + VEIL_KEY_LEN, VEIL_COOKIE_LEN);
	s->sess.rx.counter = 1;
	s->sess.tx.counter = 1;
	/* The cookie and the ephemeral secret in one draw: one system call, not two. */
	uint8_t rnd[VEIL_COOKIE_LEN + VEIL_KEY_LEN];
	veil_random(rnd, sizeof rnd);
	memcpy(s->sess.tx.cookie, rnd, VEIL_COOKIE_LEN);
	memcpy(s->tsk_sk, rnd + VEIL_COOKIE_LEN, VEIL_KEY_LEN);
	sodium_memzero(rnd, sizeof rnd);
	while (sodium_memcmp(s->sess.tx.cookie, s->sess.rx.cookie, VEIL_COOKIE_LEN) == 0)
		veil_random(s->sess.tx.cookie, VEIL_COOKIE_LEN);
	if ((rc = veil_x25519_base(s->tsk_pk, s->tsk_sk)) != 0 ||
	    (rc = veil_shared_key(k, sk, s->tck_pk)) != 0 ||
	    (rc = veil_shared_key(s->sess.key, s->tsk_sk, s->tck_pk)) != 0 ||
	    (rc = veil_csp_nonce_next(&s->sess.tx, nonce)) != 0)
		goto out;
	memcpy(plain, s->tsk_pk, VEIL_KEY_LEN);
	memcpy(plain + VEIL_KEY_LEN, s->sess.rx.cookie, VEIL_COOKIE_LEN);
	memcpy(out, s->sess.tx.cookie, VEIL_COOKIE_LEN);
	veil_box_seal(out + VEIL_COOKIE_LEN, plain, sizeof plain, nonce, k);
out:
	sodium_memzero(k, sizeof k);
	return rc;
}

int veil_csp_login_data_parse(const uint8_t data[static VEIL_CSP_LOGIN_DATA_LEN],
                              const uint8_t sck[static VEIL_COOKIE_LEN],
                              struct veil_csp_login_info *info)
{
	static const uint8_t zero[24];
	memset(info, 0, sizeof *info);
	memcpy(info->identity, data, VEIL_ID_LEN);
	if (!veil_id_valid(info->identity) || sodium_memcmp(data + 40, sck, VEIL_COOKIE_LEN) != 0 ||
	    memcmp(data + 56, zero, 24) != 0 || memcmp(data + 112, zero, 16) != 0)
		return VEIL_EPROTO;
	memcpy(info->vouch, data + 80, 32);
	if (memcmp(data + 8, EXT_MAGIC, EXT_MAGIC_LEN) == 0) {
		info->has_ext = 1;
		info->ext_len = veil_load_u16le(data + 8 + EXT_MAGIC_LEN);
		if (info->ext_len < VEIL_MAC_LEN || info->ext_len > VEIL_CSP_MAX_EXT)
			return VEIL_ELIMIT;
		return 0;
	}
	/* A legacy client puts its version string here, NUL-padded. */
	size_t n = 0;
	while (n < 32 && data[8 + n] != 0)
		n++;
	if (!veil_utf8_valid(data + 8, n))
		return VEIL_EPROTO;
	memcpy(info->client_info, data + 8, n);
	info->client_info[n] = 0;
	return 0;
}

int veil_csp_server_login(struct veil_csp_server *s, const uint8_t in[static VEIL_CSP_LOGIN_LEN],
                          struct veil_csp_login_info *info)
{
	uint8_t data[VEIL_CSP_LOGIN_DATA_LEN], nonce[VEIL_NONCE_LEN];
	int rc;
	memset(info, 0, sizeof *info);
	if ((rc = veil_csp_nonce_next(&s->sess.rx, nonce)) != 0 ||
	    (rc = veil_box_open(data, in, VEIL_CSP_LOGIN_LEN, nonce, s->sess.key)) != 0)
		return rc;
	rc = veil_csp_login_data_parse(data, s->sess.tx.cookie, info);
	sodium_memzero(data, sizeof data);
	return rc;
}

int veil_csp_login_ext_parse(const uint8_t *plain, size_t len, struct veil_csp_login_info *info)
{
	struct veil_reader r;
	veil_reader_init(&r, plain, len);
	info->features = 0;
	while (veil_reader_left(&r) > 0) {
		uint8_t type;
		uint16_t n;
		const uint8_t *p;
		if (veil_read_u8(&r, &type) != 0 || veil_read_u16le(&r, &n) != 0 ||
		    veil_read_view(&r, &p, n) != 0)
			return VEIL_EPROTO;
		switch (type) {
		case VEIL_CSP_EXT_CLIENT_INFO:
			if (n > VEIL_CSP_CLIENT_INFO_MAX || !veil_utf8_valid(p, n))
				return VEIL_EPROTO;
			memcpy(info->client_info, p, n);
			info->client_info[n] = 0;
			break;
		case VEIL_CSP_EXT_DEVICE_ID:
			if (n != 8)
				return VEIL_EPROTO;
			info->has_device_id = 1;
			info->device_id = veil_load_u64le(p);
			break;
		case VEIL_CSP_EXT_FEATURES:
			/* Older clients sent 1 here as a version; it reads as the same bit. */
			if (n != 1)
				return VEIL_EPROTO;
			info->features = p[0];
			break;
		case VEIL_CSP_EXT_DEVICE_COOKIE:
			if (n != VEIL_COOKIE_LEN)
				return VEIL_EPROTO;
			info->has_device_cookie = 1;
			memcpy(info->device_cookie, p, VEIL_COOKIE_LEN);
			break;
		default:
			/* Unknown extensions are skipped so that clients can add them. */
			break;
		}
	}
	return 0;
}

int veil_csp_server_login_ext(struct veil_csp_server *s, const uint8_t *in, size_t len,
                              struct veil_csp_login_info *info)
{
	uint8_t plain[VEIL_CSP_MAX_EXT], nonce[VEIL_NONCE_LEN];
	int rc;
	if (len != info->ext_len || len < VEIL_MAC_LEN || len > VEIL_CSP_MAX_EXT)
		return VEIL_EPROTO;
	if ((rc = veil_csp_nonce_next(&s->sess.rx, nonce)) != 0 ||
	    (rc = veil_box_open(plain, in, len, nonce, s->sess.key)) != 0)
		return rc;
	rc = veil_csp_login_ext_parse(plain, len - VEIL_MAC_LEN, info);
	sodium_memzero(plain, len);
	return rc;
}

int veil_csp_server_vouch_check_ss1(struct veil_csp_server *s,
                                    const uint8_t ss1[static VEIL_KEY_LEN],
                                    const uint8_t ck_pk[static VEIL_KEY_LEN],
                                    const struct veil_csp_login_info *info)
{
	uint8_t ss2[32], vouch[32];
	int rc;
	if (veil_shared_key(ss2, s->tsk_sk, ck_pk) != 0 ||
	    vouch_compute(vouch, ss1, ss2, s->sess.tx.cookie, s->tck_pk) != 0) {
		rc = VEIL_EAUTH;
		goto out;
	}
	rc = sodium_memcmp(vouch, info->vouch, 32) == 0 ? 0 : VEIL_EAUTH;
out:
	sodium_memzero(ss2, sizeof ss2);
	sodium_memzero(vouch, sizeof vouch);
	return rc;
}

int veil_csp_server_vouch_check(struct veil_csp_server *s, const uint8_t sk[static VEIL_KEY_LEN],
                                const uint8_t ck_pk[static VEIL_KEY_LEN],
                                const struct veil_csp_login_info *info)
{
	uint8_t ss1[32];
	int rc = veil_shared_key(ss1, sk, ck_pk) != 0
	             ? VEIL_EAUTH
	             : veil_csp_server_vouch_check_ss1(s, ss1, ck_pk, info);
	sodium_memzero(ss1, sizeof ss1);
	return rc;
}

int veil_csp_server_login_ack(struct veil_csp_server *s, uint8_t out[static VEIL_CSP_LOGIN_ACK_LEN])
{
	uint8_t plain[16] = {0}, nonce[VEIL_NONCE_LEN];
	int rc = veil_csp_nonce_next(&s->sess.tx, nonce);
	if (rc == 0)
		veil_box_seal(out, plain, sizeof plain, nonce, s->sess.key);
	return rc;
}

void veil_csp_server_forget(struct veil_csp_server *s)
{
	sodium_memzero(s->tsk_sk, sizeof s->tsk_sk);
}

/* --- payloads --- */

int veil_csp_payload_parse(const uint8_t *in, size_t len, uint8_t *type, const uint8_t **data,
                           size_t *datalen)
{
	if (len < 4)
		return VEIL_ETRUNC;
	*type = in[0];
	*data = in + 4;
	*datalen = len - 4;
	return 0;
}

void veil_csp_payload_header(uint8_t out[static 4], uint8_t type)
{
	out[0] = type;
	out[1] = out[2] = out[3] = 0;
}

int veil_csp_ack_parse(const uint8_t *in, size_t len, uint8_t id[static VEIL_ID_LEN],
                       uint64_t *msg_id)
{
	if (len != VEIL_CSP_ACK_LEN)
		return len < VEIL_CSP_ACK_LEN ? VEIL_ETRUNC : VEIL_EPROTO;
	memcpy(id, in, VEIL_ID_LEN);
	*msg_id = veil_load_u64le(in + VEIL_ID_LEN);
	return veil_id_valid(id) ? 0 : VEIL_EPROTO;
}

void veil_csp_ack_encode(uint8_t out[static VEIL_CSP_ACK_LEN], const uint8_t id[static VEIL_ID_LEN],
                         uint64_t msg_id)
{
	memcpy(out, id, VEIL_ID_LEN);
	veil_store_u64le(out + VEIL_ID_LEN, msg_id);
}

int veil_csp_close_error_parse(const uint8_t *in, size_t len, int *can_reconnect, char *text,
                               size_t textcap)
{
	if (len < 1)
		return VEIL_ETRUNC;
	if (textcap == 0 || len - 1 >= textcap)
		return VEIL_ELIMIT;
	if (!veil_utf8_valid(in + 1, len - 1))
		return VEIL_EPROTO;
	*can_reconnect = in[0] != 0;
	memcpy(text, in + 1, len - 1);
	text[len - 1] = 0;
	return 0;
}
