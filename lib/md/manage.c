/*
 * The D2M messages for transactions (0x40..0x45) and, later, device
 * management (0x30..0x34): protobuf (package d2m) in a container.
 */
#include <string.h>

#include "proto/md-d2m.pb-c.h"
#include "md_int.h"

static int pack_container(struct veil_buf *out, uint8_t type, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	int rc = veil_md_container_begin(out, type, n);
	if (rc != 0)
		return rc;
	if (protobuf_c_message_pack(m, out->p + out->len) != n)
		return VEIL_EPROTO;
	out->len += n;
	return 0;
}

int veil_md_begin_tx_encode(struct veil_buf *out, const uint8_t *scope, size_t len, uint32_t ttl)
{
	D2m__BeginTransaction m = D2M__BEGIN_TRANSACTION__INIT;
	if (len > VEIL_MD_SCOPE_MAX || (scope == NULL && len > 0))
		return VEIL_ELIMIT;
	m.encrypted_scope.data = (uint8_t *)(uintptr_t)scope;
	m.encrypted_scope.len = len;
	m.ttl = ttl;
	return pack_container(out, VEIL_MD_BEGIN_TRANSACTION, &m.base);
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
	if (m->encrypted_scope.len > VEIL_MD_SCOPE_MAX) {
		rc = VEIL_ELIMIT;
	} else {
		if (m->encrypted_scope.len > 0)
			memcpy(t->scope, m->encrypted_scope.data, m->encrypted_scope.len);
		t->scope_len = m->encrypted_scope.len;
		t->ttl = m->ttl;
	}
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
		return pack_container(out, type, &m.base);
	}
	if (type == VEIL_MD_TRANSACTION_ENDED) {
		D2m__TransactionEnded m = D2M__TRANSACTION_ENDED__INIT;
		m.device_id = device_id;
		m.encrypted_scope.data = (uint8_t *)(uintptr_t)scope;
		m.encrypted_scope.len = len;
		return pack_container(out, type, &m.base);
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
	if (m->encrypted_scope.len > VEIL_MD_SCOPE_MAX) {
		rc = VEIL_ELIMIT;
	} else {
		if (m->encrypted_scope.len > 0)
			memcpy(t->scope, m->encrypted_scope.data, m->encrypted_scope.len);
		t->scope_len = m->encrypted_scope.len;
		t->device_id = m->device_id;
	}
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
