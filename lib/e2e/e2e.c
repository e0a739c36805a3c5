/*
 * Sealing and opening end-to-end messages: the padded inner container, the
 * message box and the metadata box of a message-with-metadata-box.
 */
#include <string.h>

#include <sodium.h>

#include "proto/csp-e2e.pb-c.h"
#include "veil/e2e.h"

/* Longest metadata padding veil_e2e_meta_encode writes. */
#define META_PAD_MAX 32
/* Metadata padding and nickname together reach at least this (as the apps do). */
#define META_PAD_FLOOR 16

static const char mmk_salt[] = "mm";
static const char mmk_personal[] = "3ma-csp";

/* MMK = BLAKE2b(key = shared secret, salt 'mm', personal '3ma-csp'). */
static int derive_mmk(uint8_t mmk[static VEIL_KEY_LEN], const uint8_t shared[static VEIL_KEY_LEN])
{
	return veil_kdf(mmk, VEIL_KEY_LEN, shared, VEIL_KEY_LEN, mmk_salt, sizeof mmk_salt - 1,
	                mmk_personal, sizeof mmk_personal - 1);
}

int veil_e2e_inner_pad(struct veil_buf *out, uint8_t type, const uint8_t *body, size_t body_len,
                       unsigned pad_len)
{
	uint8_t pad[VEIL_E2E_PAD_MAX];
	size_t start = out->len;
	unsigned n;
	int rc;

	if (pad_len > VEIL_E2E_PAD_MAX || (body == NULL && body_len > 0))
		return VEIL_EINVAL;
	n = pad_len ? pad_len : 1 + randombytes_uniform(VEIL_E2E_PAD_MAX);
	/*
	 * The specification counts the padded data without the type byte,
	 * Android with it; body and padding alone reaching the minimum satisfy
	 * both readings.
	 */
	if (body_len + n < VEIL_E2E_MIN_PADDED_LEN)
		n = (unsigned)(VEIL_E2E_MIN_PADDED_LEN - body_len);
	memset(pad, (int)n, n);
	if (body_len > SIZE_MAX - 1 - n)
		return VEIL_ELIMIT;
	if ((rc = veil_buf_reserve(out, 1 + body_len + n)) != 0)
		return rc;
	if ((rc = veil_buf_append_u8(out, type)) != 0 ||
	    (rc = veil_buf_append(out, body, body_len)) != 0 ||
	    (rc = veil_buf_append(out, pad, n)) != 0) {
		out->len = start;
		return rc;
	}
	return 0;
}

int veil_e2e_inner_unpad(const uint8_t *p, size_t len, uint8_t *type, const uint8_t **body,
                         size_t *body_len)
{
	uint8_t n, bad = 0;

	*type = 0;
	*body = NULL;
	*body_len = 0;
	if (len == 0)
		return VEIL_ETRUNC;
	n = p[len - 1];
	/* At least one padding byte, and the type byte must remain. */
	if (n == 0 || n > len - 1)
		return VEIL_EPROTO;
	for (size_t i = len - n; i < len; i++)
		bad |= (uint8_t)(p[i] ^ n);
	if (bad != 0)
		return VEIL_EPROTO;
	*type = p[0];
	*body = p + 1;
	*body_len = len - 1 - n;
	return 0;
}

int veil_e2e_meta_encode(struct veil_buf *out, const struct veil_e2e_meta *meta, size_t pad_len)
{
	static const uint8_t zeros[META_PAD_MAX];
	Veil__MessageMetadata mm = VEIL__MESSAGE_METADATA__INIT;
	size_t n;
	int rc;

	if (pad_len > META_PAD_MAX)
		return VEIL_EINVAL;
	if (meta->has_nickname) {
		if (meta->nickname_len > VEIL_E2E_NICKNAME_MAX)
			return VEIL_ELIMIT;
		if (memchr(meta->nickname, 0, meta->nickname_len) != NULL ||
		    meta->nickname[meta->nickname_len] != 0 ||
		    !veil_utf8_valid((const uint8_t *)meta->nickname, meta->nickname_len))
			return VEIL_EINVAL;
		/* protobuf-c takes a non-const pointer but only reads it. */
		mm.nickname = (char *)(uintptr_t)meta->nickname;
	}
	if (pad_len > 0) {
		mm.has_padding = 1;
		mm.padding.len = pad_len;
		mm.padding.data = (uint8_t *)(uintptr_t)zeros;
	}
	mm.has_message_id = 1;
	mm.message_id = meta->message_id;
	mm.has_created_at = 1;
	mm.created_at = meta->created_at_ms;
	n = veil__message_metadata__get_packed_size(&mm);
	if ((rc = veil_buf_reserve(out, n)) != 0)
		return rc;
	if (veil__message_metadata__pack(&mm, out->p + out->len) != n)
		return VEIL_EPROTO; /* cannot happen: size was just computed */
	out->len += n;
	return 0;
}

int veil_e2e_meta_decode(struct veil_e2e_meta *meta, const uint8_t *p, size_t len)
{
	Veil__MessageMetadata *mm;
	int rc = 0;

	memset(meta, 0, sizeof *meta);
	if (len > VEIL_MSGBOX_METADATA_MAX)
		return VEIL_ELIMIT;
	mm = veil__message_metadata__unpack(NULL, len, p);
	if (mm == NULL)
		return VEIL_EPROTO;
	meta->present = 1;
	meta->message_id = mm->has_message_id ? mm->message_id : 0;
	meta->created_at_ms = mm->has_created_at ? mm->created_at : 0;
	if (mm->nickname != NULL) {
		/*
		 * protobuf-c NUL-terminates strings; a nickname with an embedded
		 * NUL is cut there, which only shortens a display name.
		 */
		size_t n = strnlen(mm->nickname, VEIL_E2E_NICKNAME_MAX + 1);
		if (n > VEIL_E2E_NICKNAME_MAX) {
			rc = VEIL_ELIMIT;
			goto out;
		}
		if (!veil_utf8_valid((const uint8_t *)mm->nickname, n)) {
			rc = VEIL_EPROTO;
			goto out;
		}
		memcpy(meta->nickname, mm->nickname, n);
		meta->nickname[n] = 0;
		meta->nickname_len = n;
		meta->has_nickname = 1;
	}
out:
	veil__message_metadata__free_unpacked(mm, NULL);
	if (rc != 0)
		memset(meta, 0, sizeof *meta);
	return rc;
}

/* Copies a nickname into the legacy field, cut at a UTF-8 boundary. */
static void legacy_nickname(uint8_t dst[static VEIL_MSGBOX_NICKNAME_LEN], const char *nick,
                            size_t len)
{
	memset(dst, 0, VEIL_MSGBOX_NICKNAME_LEN);
	if (len > VEIL_MSGBOX_NICKNAME_LEN) {
		len = VEIL_MSGBOX_NICKNAME_LEN;
		while (len > 0 && ((uint8_t)nick[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(dst, nick, len);
}

int veil_e2e_seal_k(struct veil_buf *out, const struct veil_e2e_out *o,
                    const uint8_t shared[static VEIL_KEY_LEN], const uint8_t *body, size_t body_len)
{
	uint8_t mmk[VEIL_KEY_LEN];
	uint8_t box[VEIL_MSGBOX_BOX_MAX];
	uint8_t metabox[VEIL_E2E_META_OUT_MAX];
	struct veil_buf inner, metaplain;
	struct veil_e2e_meta meta;
	struct veil_msgbox m;
	size_t nicklen = 0, pad;
	int rc;

	veil_buf_init_secret(&inner, VEIL_MSGBOX_BOX_MAX - VEIL_MAC_LEN);
	veil_buf_init_secret(&metaplain, VEIL_E2E_META_OUT_MAX - VEIL_MAC_LEN);
	memset(&meta, 0, sizeof meta);
	if (!veil_id_valid(o->sender) || !veil_id_valid(o->receiver) ||
	    memcmp(o->sender, o->receiver, VEIL_ID_LEN) == 0 || o->type == 0 ||
	    (body == NULL && body_len > 0)) {
		rc = VEIL_EINVAL;
		goto out;
	}
	if (body_len > VEIL_E2E_BODY_MAX) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	if (o->nickname != NULL) {
		nicklen = strnlen(o->nickname, VEIL_E2E_NICKNAME_MAX + 1);
		if (nicklen > VEIL_E2E_NICKNAME_MAX) {
			rc = VEIL_ELIMIT;
			goto out;
		}
		memcpy(meta.nickname, o->nickname, nicklen);
		meta.nickname_len = nicklen;
		meta.has_nickname = 1;
	}
	meta.present = 1;
	meta.message_id = o->msg_id;
	meta.created_at_ms = o->created_at_ms;

	/* Padding hides short nicknames, plus a random part so lengths vary. */
	pad = (nicklen < META_PAD_FLOOR ? META_PAD_FLOOR - nicklen : 0) +
	      randombytes_uniform(META_PAD_MAX - META_PAD_FLOOR + 1);
	if ((rc = veil_e2e_meta_encode(&metaplain, &meta, pad)) != 0)
		goto out;
	if ((rc = veil_e2e_inner_pad(&inner, o->type, body, body_len, 0)) != 0)
		goto out;

	memset(&m, 0, sizeof m);
	memcpy(m.sender, o->sender, VEIL_ID_LEN);
	memcpy(m.receiver, o->receiver, VEIL_ID_LEN);
	m.msg_id = o->msg_id;
	m.created_at =
	    o->created_at_ms / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(o->created_at_ms / 1000);
	m.flags = o->flags;
	/* Only Gateway IDs still read the plaintext nickname. */
	if (o->nickname != NULL && o->receiver[0] == '*')
		legacy_nickname(m.nickname, o->nickname, nicklen);
	veil_random(m.nonce, sizeof m.nonce);

	if ((rc = derive_mmk(mmk, shared)) != 0)
		goto out;
	veil_secretbox_seal(metabox, metaplain.p, metaplain.len, m.nonce, mmk);
	m.metadata = metabox;
	m.metadata_len = metaplain.len + VEIL_MAC_LEN;
	veil_box_seal(box, inner.p, inner.len, m.nonce, shared);
	m.box = box;
	m.box_len = inner.len + VEIL_MAC_LEN;
	rc = veil_msgbox_encode(&m, out);
out:
	sodium_memzero(mmk, sizeof mmk);
	sodium_memzero(&meta, sizeof meta);
	veil_buf_release(&inner);
	veil_buf_release(&metaplain);
	return rc;
}

int veil_e2e_seal(struct veil_buf *out, const struct veil_e2e_out *o,
                  const uint8_t sender_sk[static VEIL_KEY_LEN],
                  const uint8_t receiver_pk[static VEIL_KEY_LEN], const uint8_t *body,
                  size_t body_len)
{
	uint8_t k[VEIL_KEY_LEN];
	int rc = veil_shared_key(k, sender_sk, receiver_pk);
	if (rc == 0)
		rc = veil_e2e_seal_k(out, o, k, body, body_len);
	sodium_memzero(k, sizeof k);
	return rc;
}

/* The legacy nickname field as metadata: up to the first NUL, if UTF-8. */
static void legacy_meta(struct veil_e2e_meta *meta, const struct veil_msgbox *m)
{
	size_t n = 0;

	while (n < VEIL_MSGBOX_NICKNAME_LEN && m->nickname[n] != 0)
		n++;
	meta->present = 0;
	meta->message_id = m->msg_id;
	if (n > 0 && veil_utf8_valid(m->nickname, n)) {
		memcpy(meta->nickname, m->nickname, n);
		meta->nickname[n] = 0;
		meta->nickname_len = n;
		meta->has_nickname = 1;
	}
}

int veil_e2e_open_k(const struct veil_msgbox *m, const uint8_t shared[static VEIL_KEY_LEN],
                    uint8_t *type, struct veil_buf *body, struct veil_e2e_meta *meta)
{
	uint8_t mmk[VEIL_KEY_LEN];
	uint8_t plain[VEIL_MSGBOX_BOX_MAX];
	uint8_t metaplain[VEIL_MSGBOX_METADATA_MAX];
	const uint8_t *b;
	size_t blen = 0, plen = 0, mlen = 0;
	uint8_t t;
	int rc = VEIL_ECRYPTO;

	*type = 0;
	memset(meta, 0, sizeof *meta);
	if (!veil_id_valid(m->sender) || !veil_id_valid(m->receiver) ||
	    memcmp(m->sender, m->receiver, VEIL_ID_LEN) == 0)
		goto out;
	if (m->box == NULL || m->box_len < VEIL_MAC_LEN + 1 || m->box_len > VEIL_MSGBOX_BOX_MAX)
		goto out;
	if (m->metadata_len > 0) {
		if (m->metadata == NULL || m->metadata_len < VEIL_MAC_LEN ||
		    m->metadata_len > VEIL_MSGBOX_METADATA_MAX)
			goto out;
		if (derive_mmk(mmk, shared) != 0)
			goto out;
		mlen = m->metadata_len - VEIL_MAC_LEN;
		if (veil_secretbox_open(metaplain, m->metadata, m->metadata_len, m->nonce, mmk) !=
		    0)
			goto out;
		if (veil_e2e_meta_decode(meta, metaplain, mlen) != 0)
			goto out;
		/* The server must not be able to swap IDs (misquotes, receipts). */
		if (meta->message_id != m->msg_id)
			goto out;
	} else {
		legacy_meta(meta, m);
	}
	if (meta->created_at_ms == 0)
		meta->created_at_ms = (uint64_t)m->created_at * 1000;

	plen = m->box_len - VEIL_MAC_LEN;
	if (veil_box_open(plain, m->box, m->box_len, m->nonce, shared) != 0)
		goto out;
	if (veil_e2e_inner_unpad(plain, plen, &t, &b, &blen) != 0 || t == 0)
		goto out;
	/* Only VEIL_ENOMEM or VEIL_ELIMIT (the caller's maximum) come from here. */
	if ((rc = veil_buf_append(body, b, blen)) != 0)
		goto out;
	*type = t;
	rc = 0;
out:
	sodium_memzero(mmk, sizeof mmk);
	sodium_memzero(plain, plen);
	sodium_memzero(metaplain, mlen);
	if (rc != 0)
		memset(meta, 0, sizeof *meta);
	return rc;
}

int veil_e2e_open(const struct veil_msgbox *m, const uint8_t receiver_sk[static VEIL_KEY_LEN],
                  const uint8_t sender_pk[static VEIL_KEY_LEN], uint8_t *type,
                  struct veil_buf *body, struct veil_e2e_meta *meta)
{
	uint8_t k[VEIL_KEY_LEN];
	int rc;

	*type = 0;
	memset(meta, 0, sizeof *meta);
	if (veil_shared_key(k, receiver_sk, sender_pk) != 0)
		return VEIL_ECRYPTO;
	rc = veil_e2e_open_k(m, k, type, body, meta);
	sodium_memzero(k, sizeof k);
	return rc;
}
