/*
 * The D2M messages for transactions (0x40..0x45) and device management
 * (0x30..0x34): protobuf (package d2m) in a container.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/md-d2m.pb-c.h"
#include "md_int.h"

int veil_md_begin_tx_encode(struct veil_buf *out, const uint8_t *scope, size_t len, uint32_t ttl)
{
	D2m__BeginTransaction m = D2M__BEGIN_TRANSACTION__INIT;
	if (len > VEIL_MD_SCOPE_MAX || (scope == NULL && len > 0))
		return VEIL_ELIMIT;
	m.encrypted_scope.data = (uint8_t *)(uintptr_t)scope;
	m.encrypted_scope.len = len;
	m.ttl = ttl;
	return veil_md_pack_container(out, VEIL_MD_BEGIN_TRANSACTION, &m.base);
}

int veil_md_begin_tx_parse(struct veil_md_tx *t, const uint8_t *p, size_t n)
{
	int rc = 0;
	memset(t, 0, sizeof *t);
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	D2m__BeginTransaction *m = d2m__begin_transaction__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	rc = veil_md_copy_bytes(t->scope, &t->scope_len, m->encrypted_scope, VEIL_MD_SCOPE_MAX);
	if (rc == 0)
		t->ttl = m->ttl;
	d2m__begin_transaction__free_unpacked(m, NULL);
	return rc;
}

int veil_md_tx_info_encode(struct veil_buf *out, uint8_t type, uint64_t device_id,
                           const uint8_t *scope, size_t len)
{
	if (len > VEIL_MD_SCOPE_MAX || (scope == NULL && len > 0))
		return VEIL_ELIMIT;
	if (type == VEIL_MD_TRANSACTION_REJECTED) {
		D2m__TransactionRejected m = D2M__TRANSACTION_REJECTED__INIT;
		m.device_id = device_id;
		m.encrypted_scope.data = (uint8_t *)(uintptr_t)scope;
		m.encrypted_scope.len = len;
		return veil_md_pack_container(out, type, &m.base);
	}
	if (type == VEIL_MD_TRANSACTION_ENDED) {
		D2m__TransactionEnded m = D2M__TRANSACTION_ENDED__INIT;
		m.device_id = device_id;
		m.encrypted_scope.data = (uint8_t *)(uintptr_t)scope;
		m.encrypted_scope.len = len;
		return veil_md_pack_container(out, type, &m.base);
	}
	return VEIL_EINVAL;
}

int veil_md_tx_info_parse(struct veil_md_tx *t, const uint8_t *p, size_t n)
{
	int rc = 0;
	memset(t, 0, sizeof *t);
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	/* TransactionEnded has the same fields and numbers as TransactionRejected. */
	D2m__TransactionRejected *m = d2m__transaction_rejected__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	rc = veil_md_copy_bytes(t->scope, &t->scope_len, m->encrypted_scope, VEIL_MD_SCOPE_MAX);
	if (rc == 0)
		t->device_id = m->device_id;
	d2m__transaction_rejected__free_unpacked(m, NULL);
	return rc;
}

int veil_md_empty_parse(const uint8_t *p, size_t n)
{
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_EPROTO;
	D2m__CommitTransaction *m = d2m__commit_transaction__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	d2m__commit_transaction__free_unpacked(m, NULL);
	return 0;
}

int veil_md_devices_info_encode(struct veil_buf *out, const struct veil_md_device_entry *e,
                                size_t count)
{
	D2m__DevicesInfo m = D2M__DEVICES_INFO__INIT;
	D2m__DevicesInfo__AugmentedDeviceInfoEntry *ent = calloc(count + 1, sizeof *ent);
	D2m__DevicesInfo__AugmentedDeviceInfoEntry **ptr = calloc(count + 1, sizeof *ptr);
	D2m__DevicesInfo__AugmentedDeviceInfo *val = calloc(count + 1, sizeof *val);
	int rc = 0;
	if (ent == NULL || ptr == NULL || val == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		if (e[i].enc_info_len > VEIL_MD_ENC_BLOB_MAX ||
		    (e[i].enc_info == NULL && e[i].enc_info_len > 0)) {
			rc = VEIL_ELIMIT;
			goto out;
		}
		d2m__devices_info__augmented_device_info__init(&val[i]);
		val[i].encrypted_device_info.data = (uint8_t *)(uintptr_t)e[i].enc_info;
		val[i].encrypted_device_info.len = e[i].enc_info_len;
		val[i].device_slot_expiration_policy =
		    (D2m__DeviceSlotExpirationPolicy)e[i].expiration_policy;
		if (e[i].connected) {
			val[i].connection_state_case =
			    D2M__DEVICES_INFO__AUGMENTED_DEVICE_INFO__CONNECTION_STATE_CONNECTED_SINCE;
			val[i].connected_since = e[i].since;
		} else {
			val[i].connection_state_case =
			    D2M__DEVICES_INFO__AUGMENTED_DEVICE_INFO__CONNECTION_STATE_LAST_DISCONNECT_AT;
			val[i].last_disconnect_at = e[i].since;
		}
		d2m__devices_info__augmented_device_info_entry__init(&ent[i]);
		ent[i].key = e[i].device_id;
		ent[i].value = &val[i];
		ptr[i] = &ent[i];
	}
	m.n_augmented_device_info = count;
	m.augmented_device_info = ptr;
	rc = veil_md_pack_container(out, VEIL_MD_DEVICES_INFO, &m.base);
out:
	free(ent);
	free(ptr);
	free(val);
	return rc;
}

int veil_md_devices_info_parse(const uint8_t *p, size_t n,
                               int (*fn)(void *arg, const struct veil_md_device_entry *e),
                               void *arg)
{
	int rc = 0;
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	D2m__DevicesInfo *m = d2m__devices_info__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	for (size_t i = 0; i < m->n_augmented_device_info && rc == 0; i++) {
		const D2m__DevicesInfo__AugmentedDeviceInfoEntry *en = m->augmented_device_info[i];
		struct veil_md_device_entry e = {.device_id = en->key};
		const D2m__DevicesInfo__AugmentedDeviceInfo *v = en->value;
		if (v != NULL) {
			if (v->encrypted_device_info.len > VEIL_MD_ENC_BLOB_MAX) {
				rc = VEIL_ELIMIT;
				break;
			}
			e.enc_info = v->encrypted_device_info.data;
			e.enc_info_len = v->encrypted_device_info.len;
			e.expiration_policy = (int)v->device_slot_expiration_policy;
			e.connected =
			    v->connection_state_case ==
			    D2M__DEVICES_INFO__AUGMENTED_DEVICE_INFO__CONNECTION_STATE_CONNECTED_SINCE;
			e.since =
			    e.connected ? v->connected_since
			    : v->connection_state_case ==
			            D2M__DEVICES_INFO__AUGMENTED_DEVICE_INFO__CONNECTION_STATE_LAST_DISCONNECT_AT
			        ? v->last_disconnect_at
			        : 0;
		}
		rc = fn(arg, &e);
	}
	d2m__devices_info__free_unpacked(m, NULL);
	return rc;
}

int veil_md_drop_device_encode(struct veil_buf *out, uint8_t type, uint64_t device_id)
{
	if (type == VEIL_MD_DROP_DEVICE) {
		D2m__DropDevice m = D2M__DROP_DEVICE__INIT;
		m.device_id = device_id;
		return veil_md_pack_container(out, type, &m.base);
	}
	if (type == VEIL_MD_DROP_DEVICE_ACK) {
		D2m__DropDeviceAck m = D2M__DROP_DEVICE_ACK__INIT;
		m.device_id = device_id;
		return veil_md_pack_container(out, type, &m.base);
	}
	return VEIL_EINVAL;
}

int veil_md_drop_device_parse(uint64_t *device_id, const uint8_t *p, size_t n)
{
	*device_id = 0;
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	/* DropDeviceAck has the same single field as DropDevice. */
	D2m__DropDevice *m = d2m__drop_device__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	*device_id = m->device_id;
	d2m__drop_device__free_unpacked(m, NULL);
	return 0;
}

int veil_md_set_shared_data_encode(struct veil_buf *out, const uint8_t *box, size_t len)
{
	D2m__SetSharedDeviceData m = D2M__SET_SHARED_DEVICE_DATA__INIT;
	if (len > VEIL_MD_ENC_BLOB_MAX || (box == NULL && len > 0))
		return VEIL_ELIMIT;
	m.encrypted_shared_device_data.data = (uint8_t *)(uintptr_t)box;
	m.encrypted_shared_device_data.len = len;
	return veil_md_pack_container(out, VEIL_MD_SET_SHARED_DEVICE_DATA, &m.base);
}

int veil_md_set_shared_data_parse(uint8_t box[static VEIL_MD_ENC_BLOB_MAX], size_t *len,
                                  const uint8_t *p, size_t n)
{
	int rc = 0;
	*len = 0;
	if (n > VEIL_MD_MAX_PAYLOAD)
		return VEIL_ELIMIT;
	D2m__SetSharedDeviceData *m = d2m__set_shared_device_data__unpack(NULL, n, p);
	if (m == NULL)
		return VEIL_EPROTO;
	if (m->encrypted_shared_device_data.len > VEIL_MD_ENC_BLOB_MAX) {
		rc = VEIL_ELIMIT;
	} else {
		if (m->encrypted_shared_device_data.len > 0)
			memcpy(box, m->encrypted_shared_device_data.data,
			       m->encrypted_shared_device_data.len);
		*len = m->encrypted_shared_device_data.len;
	}
	d2m__set_shared_device_data__free_unpacked(m, NULL);
	return rc;
}
