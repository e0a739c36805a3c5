/*
 * The D2M handshake (ServerHello, ClientHello, ServerInfo) and the small
 * encrypted D2D values it and the transactions carry: device info (DGDIK),
 * shared device data (DGSDDK) and transaction scopes (DGTSK).
 */
#include <string.h>

#include <sodium.h>

#include "md_int.h"
#include "proto/md-d2d.pb-c.h"
#include "proto/md-d2m.pb-c.h"

/* Appends nonce || secretbox(m) under key. */
static int pack_seal(struct veil_buf *out, const uint8_t key[static VEIL_KEY_LEN],
                     const ProtobufCMessage *m)
{
	struct veil_buf plain;
	size_t n = protobuf_c_message_get_packed_size(m);
	int rc;
	if (n > VEIL_MD_ENC_BLOB_MAX - VEIL_MD_BOX_OVERHEAD)
		return VEIL_ELIMIT;
	veil_buf_init_secret(&plain, VEIL_MD_ENC_BLOB_MAX);
	if ((rc = veil_buf_reserve(&plain, n)) != 0)
		goto out;
	if (protobuf_c_message_pack(m, plain.p) != n) {
		rc = VEIL_EPROTO;
		goto out;
	}
	plain.len = n;
	rc = veil_md_seal(out, key, plain.p, plain.len);
out:
	veil_buf_release(&plain);
	return rc;
}

/*
 * Opens a small D2D box and unpacks it as desc. Returns the message (free
 * with protobuf_c_message_free_unpacked) or NULL with *rc set.
 */
static ProtobufCMessage *open_unpack(const ProtobufCMessageDescriptor *desc,
                                     const uint8_t key[static VEIL_KEY_LEN], const uint8_t *in,
                                     size_t len, int *rc)
{
	uint8_t plain[VEIL_MD_ENC_BLOB_MAX];
	size_t n;
	ProtobufCMessage *m = NULL;
	if (len > VEIL_MD_ENC_BLOB_MAX) {
		*rc = VEIL_ELIMIT;
		return NULL;
	}
	if ((*rc = veil_md_open(plain, &n, key, in, len)) != 0)
		return NULL;
	m = protobuf_c_message_unpack(desc, NULL, n, plain);
	sodium_memzero(plain, n);
	*rc = m == NULL ? VEIL_EPROTO : 0;
	return m;
}

static int str_ok(const char *s)
{
	size_t n = strlen(s);
	if (n > VEIL_MD_INFO_STR_MAX)
		return VEIL_ELIMIT;
	return veil_utf8_valid((const uint8_t *)s, n) ? 0 : VEIL_EINVAL;
}

int veil_md_device_info_seal(struct veil_buf *out, const struct veil_md_keys *k,
                             const struct veil_md_device_info *info)
{
	D2d__DeviceInfo di = D2D__DEVICE_INFO__INIT;
	int rc;
	if ((rc = str_ok(info->platform_details)) != 0 || (rc = str_ok(info->app_version)) != 0 ||
	    (rc = str_ok(info->label)) != 0)
		return rc;
	/* Set presence as proto3 would: non-default values only. */
	di.padding.len = veil_md_pad_len();
	di.padding.data = (uint8_t *)(uintptr_t)veil_md_zeros;
	di.has_padding = di.padding.len > 0;
	di.has_platform = info->platform != 0;
	di.platform = (D2d__DeviceInfo__Platform)info->platform;
	/* protobuf-c takes non-const pointers but only reads them. */
	if (info->platform_details[0])
		di.platform_details = (char *)(uintptr_t)info->platform_details;
	if (info->app_version[0])
		di.app_version = (char *)(uintptr_t)info->app_version;
	if (info->label[0])
		di.label = (char *)(uintptr_t)info->label;
	return pack_seal(out, k->dgdik, &di.base);
}

static int str_copy(char dst[static VEIL_MD_INFO_STR_MAX + 1], const char *src)
{
	if (src == NULL)
		return 0;
	size_t n = strlen(src);
	if (n > VEIL_MD_INFO_STR_MAX)
		return VEIL_ELIMIT;
	if (!veil_utf8_valid((const uint8_t *)src, n))
		return VEIL_EPROTO;
	memcpy(dst, src, n + 1);
	return 0;
}

int veil_md_device_info_open(struct veil_md_device_info *info, const struct veil_md_keys *k,
                             const uint8_t *in, size_t len)
{
	int rc;
	memset(info, 0, sizeof *info);
	D2d__DeviceInfo *di =
	    (D2d__DeviceInfo *)open_unpack(&d2d__device_info__descriptor, k->dgdik, in, len, &rc);
	if (di == NULL)
		return rc;
	info->platform = di->has_platform ? (int)di->platform : 0;
	if ((rc = str_copy(info->platform_details, di->platform_details)) != 0 ||
	    (rc = str_copy(info->app_version, di->app_version)) != 0 ||
	    (rc = str_copy(info->label, di->label)) != 0)
		memset(info, 0, sizeof *info);
	d2d__device_info__free_unpacked(di, NULL);
	return rc;
}

int veil_md_shared_data_seal(struct veil_buf *out, const struct veil_md_keys *k, uint32_t version)
{
	D2d__SharedDeviceData sd = D2D__SHARED_DEVICE_DATA__INIT;
	sd.padding.len = veil_md_pad_len();
	sd.padding.data = (uint8_t *)(uintptr_t)veil_md_zeros;
	sd.has_padding = sd.padding.len > 0;
	sd.has_version = version != 0;
	sd.version = version;
	return pack_seal(out, k->dgsddk, &sd.base);
}

int veil_md_shared_data_open(uint32_t *version, const struct veil_md_keys *k, const uint8_t *in,
                             size_t len)
{
	int rc;
	*version = 0;
	D2d__SharedDeviceData *sd = (D2d__SharedDeviceData *)open_unpack(
	    &d2d__shared_device_data__descriptor, k->dgsddk, in, len, &rc);
	if (sd == NULL)
		return rc;
	*version = sd->has_version ? sd->version : 0;
	d2d__shared_device_data__free_unpacked(sd, NULL);
	return 0;
}

/*
 * TransactionScope has no padding field: the scope is one of nine small
 * values, so every sealed scope has the same length anyway.
 */
int veil_md_scope_seal(struct veil_buf *out, const struct veil_md_keys *k, int scope)
{
	D2d__TransactionScope ts = D2D__TRANSACTION_SCOPE__INIT;
	if (scope < 0 || scope > D2D__TRANSACTION_SCOPE__SCOPE__WORK_SYNC_DELTA)
		return VEIL_EINVAL;
	ts.has_scope = scope != 0;
	ts.scope = (D2d__TransactionScope__Scope)scope;
	return pack_seal(out, k->dgtsk, &ts.base);
}

int veil_md_scope_open(int *scope, const struct veil_md_keys *k, const uint8_t *in, size_t len)
{
	int rc;
	*scope = 0;
	D2d__TransactionScope *ts = (D2d__TransactionScope *)open_unpack(
	    &d2d__transaction_scope__descriptor, k->dgtsk, in, len, &rc);
	if (ts == NULL)
		return rc;
	*scope = ts->has_scope ? (int)ts->scope : 0;
	d2d__transaction_scope__free_unpacked(ts, NULL);
	return 0;
}

int veil_md_server_hello_make(struct veil_md_server_hs *hs, struct veil_buf *out)
{
	D2m__ServerHello sh = D2M__SERVER_HELLO__INIT;
	memset(hs, 0, sizeof *hs);
	veil_keypair(hs->hello.esk, hs->esk_sk);
	veil_random(hs->hello.challenge, sizeof hs->hello.challenge);
	hs->hello.version = VEIL_MD_D2M_VERSION;
	sh.version = hs->hello.version;
	sh.esk.data = hs->hello.esk;
	sh.esk.len = sizeof hs->hello.esk;
	sh.challenge.data = hs->hello.challenge;
	sh.challenge.len = sizeof hs->hello.challenge;
	return veil_md_pack_container(out, VEIL_MD_SERVER_HELLO, &sh.base);
}

void veil_md_server_hs_wipe(struct veil_md_server_hs *hs)
{
	sodium_memzero(hs, sizeof *hs);
}

int veil_md_server_hello_parse(struct veil_md_server_hello *out, const uint8_t *p, size_t n)
{
	int rc = 0;
	memset(out, 0, sizeof *out);
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	D2m__ServerHello *sh = d2m__server_hello__unpack(NULL, n, p);
	if (sh == NULL)
		return VEIL_EPROTO;
	if (sh->esk.len != VEIL_KEY_LEN || sh->challenge.len != VEIL_MD_CHALLENGE_LEN) {
		rc = VEIL_EPROTO;
	} else {
		out->version = sh->version;
		memcpy(out->esk, sh->esk.data, VEIL_KEY_LEN);
		memcpy(out->challenge, sh->challenge.data, VEIL_MD_CHALLENGE_LEN);
	}
	d2m__server_hello__free_unpacked(sh, NULL);
	return rc;
}

int veil_md_client_hello_make(struct veil_buf *out, struct veil_md_client_hello *ch,
                              const struct veil_md_keys *k, const struct veil_md_server_hello *sh,
                              const struct veil_md_device_info *info)
{
	D2m__ClientHello m = D2M__CLIENT_HELLO__INIT;
	struct veil_buf enc;
	uint8_t key[VEIL_KEY_LEN];
	int rc;

	/* V0 is the only version, and every server speaks at least V0. */
	ch->version = VEIL_MD_D2M_VERSION;
	if (veil_shared_key(key, k->dgpk_sk, sh->esk) != 0)
		return VEIL_EPROTO;
	veil_random(ch->response, VEIL_NONCE_LEN);
	veil_box_seal(ch->response + VEIL_NONCE_LEN, sh->challenge, VEIL_MD_CHALLENGE_LEN,
	              ch->response, key);
	sodium_memzero(key, sizeof key);

	ch->enc_device_info_len = 0;
	if (info != NULL) {
		veil_buf_init(&enc, VEIL_MD_ENC_BLOB_MAX);
		rc = veil_md_device_info_seal(&enc, k, info);
		if (rc == 0) {
			memcpy(ch->enc_device_info, enc.p, enc.len);
			ch->enc_device_info_len = enc.len;
		}
		veil_buf_release(&enc);
		if (rc != 0)
			return rc;
	}

	m.version = ch->version;
	m.response.data = ch->response;
	m.response.len = sizeof ch->response;
	m.device_id = ch->device_id;
	m.device_slots_exhausted_policy =
	    (D2m__ClientHello__DeviceSlotsExhaustedPolicy)ch->slots_exhausted_policy;
	m.device_slot_expiration_policy =
	    (D2m__DeviceSlotExpirationPolicy)ch->slot_expiration_policy;
	m.expected_device_slot_state = (D2m__DeviceSlotState)ch->expected_slot_state;
	m.encrypted_device_info.data = ch->enc_device_info;
	m.encrypted_device_info.len = ch->enc_device_info_len;
	return veil_md_pack_container(out, VEIL_MD_CLIENT_HELLO, &m.base);
}

int veil_md_client_hello_parse(struct veil_md_client_hello *ch, const uint8_t *p, size_t n)
{
	int rc = 0;
	memset(ch, 0, sizeof *ch);
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	D2m__ClientHello *m = d2m__client_hello__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	if (m->response.len != VEIL_MD_RESPONSE_LEN) {
		rc = VEIL_EPROTO;
	} else if (m->encrypted_device_info.len > VEIL_MD_ENC_BLOB_MAX) {
		rc = VEIL_ELIMIT;
	} else {
		ch->version = m->version;
		memcpy(ch->response, m->response.data, VEIL_MD_RESPONSE_LEN);
		ch->device_id = m->device_id;
		ch->slots_exhausted_policy = (int)m->device_slots_exhausted_policy;
		ch->slot_expiration_policy = (int)m->device_slot_expiration_policy;
		ch->expected_slot_state = (int)m->expected_device_slot_state;
		if (m->encrypted_device_info.len > 0)
			memcpy(ch->enc_device_info, m->encrypted_device_info.data,
			       m->encrypted_device_info.len);
		ch->enc_device_info_len = m->encrypted_device_info.len;
	}
	d2m__client_hello__free_unpacked(m, NULL);
	if (rc != 0)
		memset(ch, 0, sizeof *ch);
	return rc;
}

int veil_md_server_verify(const struct veil_md_server_hs *hs, const struct veil_md_client_hello *ch,
                          const uint8_t group_id[static VEIL_KEY_LEN])
{
	uint8_t key[VEIL_KEY_LEN], plain[VEIL_MD_CHALLENGE_LEN];
	int rc = VEIL_ECRYPTO;
	if (veil_shared_key(key, hs->esk_sk, group_id) != 0)
		goto out;
	if (veil_box_open(plain, ch->response + VEIL_NONCE_LEN,
	                  VEIL_MD_RESPONSE_LEN - VEIL_NONCE_LEN, ch->response, key) != 0)
		goto out;
	if (veil_memcmp(plain, hs->hello.challenge, VEIL_MD_CHALLENGE_LEN) == 0)
		rc = 0;
out:
	sodium_memzero(key, sizeof key);
	sodium_memzero(plain, sizeof plain);
	return rc;
}

int veil_md_server_info_encode(struct veil_buf *out, const struct veil_md_server_info *si)
{
	D2m__ServerInfo m = D2M__SERVER_INFO__INIT;
	if (si->enc_shared_data_len > VEIL_MD_ENC_BLOB_MAX)
		return VEIL_ELIMIT;
	m.current_time = si->current_time;
	m.max_device_slots = si->max_device_slots;
	m.device_slot_state = (D2m__DeviceSlotState)si->slot_state;
	m.encrypted_shared_device_data.data = (uint8_t *)(uintptr_t)si->enc_shared_data;
	m.encrypted_shared_device_data.len = si->enc_shared_data_len;
	m.reflection_queue_length = si->reflection_queue_length;
	return veil_md_pack_container(out, VEIL_MD_SERVER_INFO, &m.base);
}

int veil_md_server_info_parse(struct veil_md_server_info *si, const uint8_t *p, size_t n)
{
	int rc = 0;
	memset(si, 0, sizeof *si);
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	D2m__ServerInfo *m = d2m__server_info__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	rc = veil_md_copy_bytes(si->enc_shared_data, &si->enc_shared_data_len,
	                        m->encrypted_shared_device_data, VEIL_MD_ENC_BLOB_MAX);
	if (rc == 0) {
		si->current_time = m->current_time;
		si->max_device_slots = m->max_device_slots;
		si->slot_state = (int)m->device_slot_state;
		si->reflection_queue_length = m->reflection_queue_length;
	}
	d2m__server_info__free_unpacked(m, NULL);
	return rc;
}
