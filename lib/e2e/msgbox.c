/* Codec of the CSP message-with-metadata-box payload. */
#include <string.h>

#include "veil/e2e.h"

int veil_msgbox_parse(struct veil_msgbox *m, const uint8_t *p, size_t len)
{
	struct veil_reader r;
	uint8_t reserved;
	uint16_t metalen;
	int rc;

	memset(m, 0, sizeof *m);
	if (len > VEIL_MSGBOX_MAX)
		return VEIL_ELIMIT;
	veil_reader_init(&r, p, len);
	if ((rc = veil_read_bytes(&r, m->sender, VEIL_ID_LEN)) != 0 ||
	    (rc = veil_read_bytes(&r, m->receiver, VEIL_ID_LEN)) != 0 ||
	    (rc = veil_read_u64le(&r, &m->msg_id)) != 0 ||
	    (rc = veil_read_u32le(&r, &m->created_at)) != 0 ||
	    (rc = veil_read_u8(&r, &m->flags)) != 0 || (rc = veil_read_u8(&r, &reserved)) != 0 ||
	    (rc = veil_read_u16le(&r, &metalen)) != 0 ||
	    (rc = veil_read_bytes(&r, m->nickname, sizeof m->nickname)) != 0)
		goto out;
	if (reserved != 0) {
		rc = VEIL_EPROTO;
		goto out;
	}
	if (metalen > VEIL_MSGBOX_METADATA_MAX) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	if (metalen > 0) {
		if ((rc = veil_read_view(&r, &m->metadata, metalen)) != 0)
			goto out;
		m->metadata_len = metalen;
	}
	if ((rc = veil_read_bytes(&r, m->nonce, sizeof m->nonce)) != 0)
		goto out;
	/* The message box is the rest; the total was bounded above. */
	m->box_len = veil_reader_left(&r);
	if (m->box_len < VEIL_MSGBOX_BOX_MIN) {
		rc = VEIL_ETRUNC;
		goto out;
	}
	if ((rc = veil_read_view(&r, &m->box, m->box_len)) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		memset(m, 0, sizeof *m);
	return rc;
}

int veil_msgbox_encode(const struct veil_msgbox *m, struct veil_buf *out)
{
	size_t total, start = out->len;
	int rc;

	if ((m->metadata == NULL && m->metadata_len != 0) || m->box == NULL)
		return VEIL_EINVAL;
	if (m->metadata_len > VEIL_MSGBOX_METADATA_MAX || m->box_len < VEIL_MSGBOX_BOX_MIN ||
	    m->box_len > VEIL_MSGBOX_BOX_MAX)
		return VEIL_ELIMIT;
	total = VEIL_MSGBOX_FIXED_LEN + m->metadata_len + m->box_len;
	if (total > VEIL_MSGBOX_MAX)
		return VEIL_ELIMIT;
	if ((rc = veil_buf_reserve(out, total)) != 0)
		return rc;
	if ((rc = veil_buf_append(out, m->sender, VEIL_ID_LEN)) != 0 ||
	    (rc = veil_buf_append(out, m->receiver, VEIL_ID_LEN)) != 0 ||
	    (rc = veil_buf_append_u64le(out, m->msg_id)) != 0 ||
	    (rc = veil_buf_append_u32le(out, m->created_at)) != 0 ||
	    (rc = veil_buf_append_u8(out, m->flags)) != 0 ||
	    (rc = veil_buf_append_u8(out, 0)) != 0 ||
	    (rc = veil_buf_append_u16le(out, (uint16_t)m->metadata_len)) != 0 ||
	    (rc = veil_buf_append(out, m->nickname, sizeof m->nickname)) != 0 ||
	    (m->metadata_len > 0 &&
	     (rc = veil_buf_append(out, m->metadata, m->metadata_len)) != 0) ||
	    (rc = veil_buf_append(out, m->nonce, sizeof m->nonce)) != 0 ||
	    (rc = veil_buf_append(out, m->box, m->box_len)) != 0) {
		out->len = start;
		return rc;
	}
	return 0;
}
