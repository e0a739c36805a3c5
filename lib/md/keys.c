/*
 * Multi-device keys, the random-nonce secretbox every D2D value uses, the
 * container and the close-code policy.
 */
#include <string.h>

#include <sodium.h>

#include "md_int.h"

static const char PERSONAL[] = "3ma-mdev";

const uint8_t veil_md_zeros[VEIL_MD_PAD_MAX];

size_t veil_md_pad_len(void)
{
	return (size_t)randombytes_uniform(VEIL_MD_PAD_MAX + 1);
}

static int derive(uint8_t out[static VEIL_KEY_LEN], const uint8_t dgk[static VEIL_MD_DGK_LEN],
                  const char *salt)
{
	return veil_kdf(out, VEIL_KEY_LEN, dgk, VEIL_MD_DGK_LEN, salt, strlen(salt), PERSONAL,
	                sizeof PERSONAL - 1);
}

int veil_md_keys_derive(struct veil_md_keys *k, const uint8_t dgk[static VEIL_MD_DGK_LEN])
{
	memset(k, 0, sizeof *k);
	if (derive(k->dgpk_sk, dgk, "p") != 0 || derive(k->dgrk, dgk, "r") != 0 ||
	    derive(k->dgdik, dgk, "di") != 0 || derive(k->dgsddk, dgk, "sdd") != 0 ||
	    derive(k->dgtsk, dgk, "ts") != 0) {
		veil_md_keys_wipe(k);
		return VEIL_ECRYPTO;
	}
	veil_pubkey(k->group_id, k->dgpk_sk);
	return 0;
}

void veil_md_keys_wipe(struct veil_md_keys *k)
{
	sodium_memzero(k, sizeof *k);
}

int veil_md_seal(struct veil_buf *out, const uint8_t key[static VEIL_KEY_LEN], const uint8_t *plain,
                 size_t n)
{
	int rc;
	if (n > VEIL_MD_MAX_MESSAGE)
		return VEIL_ELIMIT;
	if ((rc = veil_buf_reserve(out, VEIL_MD_BOX_OVERHEAD + n)) != 0)
		return rc;
	uint8_t *p = out->p + out->len;
	veil_random(p, VEIL_NONCE_LEN);
	veil_secretbox_seal(p + VEIL_NONCE_LEN, plain, n, p, key);
	out->len += VEIL_MD_BOX_OVERHEAD + n;
	return 0;
}

int veil_md_open(uint8_t *plain, size_t *plain_len, const uint8_t key[static VEIL_KEY_LEN],
                 const uint8_t *in, size_t len)
{
	*plain_len = 0;
	if (len < VEIL_MD_BOX_OVERHEAD)
		return VEIL_ETRUNC;
	if (veil_secretbox_open(plain, in + VEIL_NONCE_LEN, len - VEIL_NONCE_LEN, in, key) != 0)
		return VEIL_ECRYPTO;
	*plain_len = len - VEIL_MD_BOX_OVERHEAD;
	return 0;
}

int veil_md_type_known(uint8_t type)
{
	switch (type) {
	case VEIL_MD_PROXY:
	case VEIL_MD_SERVER_HELLO:
	case VEIL_MD_CLIENT_HELLO:
	case VEIL_MD_SERVER_INFO:
	case VEIL_MD_REFLECTION_QUEUE_DRY:
	case VEIL_MD_ROLE_PROMOTED_TO_LEADER:
	case VEIL_MD_GET_DEVICES_INFO:
	case VEIL_MD_DEVICES_INFO:
	case VEIL_MD_DROP_DEVICE:
	case VEIL_MD_DROP_DEVICE_ACK:
	case VEIL_MD_SET_SHARED_DEVICE_DATA:
	case VEIL_MD_BEGIN_TRANSACTION:
	case VEIL_MD_BEGIN_TRANSACTION_ACK:
	case VEIL_MD_COMMIT_TRANSACTION:
	case VEIL_MD_COMMIT_TRANSACTION_ACK:
	case VEIL_MD_TRANSACTION_REJECTED:
	case VEIL_MD_TRANSACTION_ENDED:
	case VEIL_MD_REFLECT:
	case VEIL_MD_REFLECT_ACK:
	case VEIL_MD_REFLECTED:
	case VEIL_MD_REFLECTED_ACK: return 1;
	default: return 0;
	}
}

int veil_md_close_may_reconnect(int code)
{
	/* 41xx needs the user; everything else, named or not, may retry. */
	return !(code >= 4100 && code <= 4199);
}

int veil_md_container_parse(const uint8_t *in, size_t len, uint8_t *type, const uint8_t **payload,
                            size_t *payload_len)
{
	*type = 0;
	*payload = NULL;
	*payload_len = 0;
	if (len < VEIL_MD_HDR_LEN)
		return VEIL_ETRUNC;
	if (len > VEIL_MD_MAX_MESSAGE)
		return VEIL_ELIMIT;
	*type = in[0];
	*payload = in + VEIL_MD_HDR_LEN;
	*payload_len = len - VEIL_MD_HDR_LEN;
	return 0;
}

int veil_md_container_begin(struct veil_buf *out, uint8_t type, size_t n)
{
	uint8_t hdr[VEIL_MD_HDR_LEN] = {type, 0, 0, 0};
	int rc;
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	if ((rc = veil_buf_reserve(out, VEIL_MD_HDR_LEN + n)) != 0)
		return rc;
	memcpy(out->p + out->len, hdr, sizeof hdr);
	out->len += sizeof hdr;
	return 0;
}

int veil_md_pack_container(struct veil_buf *out, uint8_t type, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	int rc = veil_md_container_begin(out, type, n);
	if (rc != 0)
		return rc;
	if (protobuf_c_message_pack(m, out->p + out->len) != n)
		return VEIL_EPROTO; /* cannot happen: the size was just computed */
	out->len += n;
	return 0;
}

int veil_md_copy_bytes(uint8_t *dst, size_t *len, ProtobufCBinaryData f, size_t cap)
{
	if (f.len > cap)
		return VEIL_ELIMIT;
	if (f.len > 0)
		memcpy(dst, f.data, f.len);
	*len = f.len;
	return 0;
}

int veil_md_container_encode(struct veil_buf *out, uint8_t type, const uint8_t *payload, size_t len)
{
	int rc;
	if (payload == NULL && len > 0)
		return VEIL_EINVAL;
	if ((rc = veil_md_container_begin(out, type, len)) != 0)
		return rc;
	if (len > 0)
		memcpy(out->p + out->len, payload, len);
	out->len += len;
	return 0;
}
