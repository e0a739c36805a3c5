/* Inner message bodies: text, delivery receipt, typing indicator. */
#include <string.h>

#include <jansson.h>

#include "veil/e2e.h"

/* A delivery receipt's status byte is a reaction: thumbs up or down. */
static int receipt_is_reaction(const uint8_t *p, size_t len, size_t off)
{
	return len > off && (p[off] == VEIL_RECEIPT_ACK || p[off] == VEIL_RECEIPT_DECLINE);
}

int veil_e2e_distributes_profile(uint8_t type, const uint8_t *body, size_t len)
{
	switch (type) {
	case VEIL_E2E_TEXT:
	case VEIL_E2E_IMAGE:
	case VEIL_E2E_LOCATION:
	case VEIL_E2E_VIDEO:
	case VEIL_E2E_AUDIO:
	case VEIL_E2E_POLL_SETUP:
	case VEIL_E2E_POLL_VOTE:
	case VEIL_E2E_FILE:
	case VEIL_E2E_CALL_OFFER:
	case VEIL_E2E_REACTION:
	case VEIL_E2E_GROUP_TEXT:
	case VEIL_E2E_GROUP_LOCATION:
	case VEIL_E2E_GROUP_IMAGE:
	case VEIL_E2E_GROUP_VIDEO:
	case VEIL_E2E_GROUP_AUDIO:
	case VEIL_E2E_GROUP_FILE:
	case VEIL_E2E_GROUP_SETUP:
	case VEIL_E2E_GROUP_CALL_START:
	case VEIL_E2E_GROUP_POLL_SETUP:
	case VEIL_E2E_GROUP_POLL_VOTE:
	case VEIL_E2E_GROUP_REACTION: return 1;
	case VEIL_E2E_DELIVERY_RECEIPT: return receipt_is_reaction(body, len, 0);
	case VEIL_E2E_GROUP_DELIVERY_RECEIPT:
		return receipt_is_reaction(body, len, VEIL_GROUP_MEMBER_HDR_LEN);
	case VEIL_E2E_CALL_ANSWER: {
		/* Only an accepted call ("action": 1) introduces the answerer. */
		if (body == NULL || len == 0)
			return 0;
		json_t *o = json_loadb((const char *)body, len, 0, NULL);
		json_t *a = json_object_get(o, "action");
		int yes = json_is_integer(a) && json_integer_value(a) == 1;
		json_decref(o);
		return yes;
	}
	default: return 0;
	}
}

int veil_e2e_text_encode(struct veil_buf *out, const char *text, size_t len)
{
	if (text == NULL || len == 0)
		return VEIL_EINVAL;
	if (len > VEIL_E2E_TEXT_MAX)
		return VEIL_ELIMIT;
	if (!veil_utf8_valid((const uint8_t *)text, len))
		return VEIL_EINVAL;
	return veil_buf_append(out, text, len);
}

int veil_e2e_text_decode(const uint8_t *p, size_t len, const char **text, size_t *text_len)
{
	*text = NULL;
	*text_len = 0;
	if (len == 0)
		return VEIL_ETRUNC;
	if (len > VEIL_E2E_TEXT_IN_MAX)
		return VEIL_ELIMIT;
	if (!veil_utf8_valid(p, len))
		return VEIL_EPROTO;
	*text = (const char *)p;
	*text_len = len;
	return 0;
}

static int receipt_status_valid(uint8_t s)
{
	return s >= VEIL_RECEIPT_RECEIVED && s <= VEIL_RECEIPT_DECLINE;
}

int veil_e2e_receipt_encode(struct veil_buf *out, uint8_t status, const uint64_t *ids, size_t n)
{
	size_t start = out->len;
	int rc;

	if (!receipt_status_valid(status) || n == 0 || ids == NULL)
		return VEIL_EINVAL;
	if (n > VEIL_E2E_RECEIPT_MAX_IDS)
		return VEIL_ELIMIT;
	if ((rc = veil_buf_reserve(out, 1 + 8 * n)) != 0)
		return rc;
	if ((rc = veil_buf_append_u8(out, status)) != 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if ((rc = veil_buf_append_u64le(out, ids[i])) != 0)
			goto fail;
	return 0;
fail:
	out->len = start;
	return rc;
}

int veil_e2e_receipt_decode(const uint8_t *p, size_t len, uint8_t *status, uint64_t *ids,
                            size_t cap, size_t *n)
{
	size_t count;

	*status = 0;
	*n = 0;
	if (len < 1 + 8 || (len - 1) % 8 != 0)
		return VEIL_ETRUNC;
	count = (len - 1) / 8;
	if (count > VEIL_E2E_RECEIPT_MAX_IDS_IN || count > cap)
		return VEIL_ELIMIT;
	if (!receipt_status_valid(p[0]))
		return VEIL_EPROTO;
	for (size_t i = 0; i < count; i++)
		ids[i] = veil_load_u64le(p + 1 + 8 * i);
	*status = p[0];
	*n = count;
	return 0;
}

int veil_e2e_typing_encode(struct veil_buf *out, int typing)
{
	if (typing != 0 && typing != 1)
		return VEIL_EINVAL;
	return veil_buf_append_u8(out, (uint8_t)typing);
}

int veil_e2e_typing_decode(const uint8_t *p, size_t len, int *typing)
{
	*typing = 0;
	if (len == 0)
		return VEIL_ETRUNC;
	if (len > 1)
		return VEIL_EPROTO;
	if (p[0] > 1)
		return VEIL_EPROTO;
	*typing = p[0];
	return 0;
}
