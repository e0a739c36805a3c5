/*
 * Group messages: the two group containers and the bodies of the group
 * control messages (group-setup, group-name). A group is named by its
 * creator's ID and a random 64-bit group ID; every group message is an
 * ordinary E2E message to one member whose inner body starts with one of
 * the containers.
 */
#include <string.h>

#include "veil/e2e.h"

int veil_e2e_group_container(uint8_t type)
{
	switch (type) {
	case VEIL_E2E_GROUP_SETUP:
	case VEIL_E2E_GROUP_NAME:
	case 0x50: /* group set profile picture */
	case 0x54: /* group delete profile picture */ return VEIL_GROUP_CONTAINER_CREATOR;
	case VEIL_E2E_GROUP_TEXT:
	case 0x42: /* location */
	case 0x43: /* image (deprecated) */
	case 0x44: /* video (deprecated) */
	case 0x45: /* audio (deprecated) */
	case VEIL_E2E_GROUP_FILE:
	case VEIL_E2E_GROUP_LEAVE:
	case 0x4f: /* group call start */
	case VEIL_E2E_GROUP_SYNC_REQUEST:
	case 0x52: /* poll setup */
	case 0x53: /* poll vote */
	case VEIL_E2E_GROUP_DELIVERY_RECEIPT:
	case 0x83: /* reaction */
	case 0x93: /* edit */
	case 0x94: /* delete */ return VEIL_GROUP_CONTAINER_MEMBER;
	default: return 0;
	}
}

int veil_e2e_group_member_wrap(struct veil_buf *out, const uint8_t creator[static VEIL_ID_LEN],
                               uint64_t gid, const uint8_t *inner, size_t len)
{
	size_t start = out->len;
	int rc;
	if (!veil_id_valid(creator) || (inner == NULL && len != 0))
		return VEIL_EINVAL;
	if (len > VEIL_E2E_BODY_MAX - VEIL_GROUP_MEMBER_HDR_LEN)
		return VEIL_ELIMIT;
	if ((rc = veil_buf_reserve(out, VEIL_GROUP_MEMBER_HDR_LEN + len)) != 0 ||
	    (rc = veil_buf_append(out, creator, VEIL_ID_LEN)) != 0 ||
	    (rc = veil_buf_append_u64le(out, gid)) != 0 ||
	    (len > 0 && (rc = veil_buf_append(out, inner, len)) != 0)) {
		out->len = start;
		return rc;
	}
	return 0;
}

int veil_e2e_group_member_unwrap(const uint8_t *p, size_t len, uint8_t creator[static VEIL_ID_LEN],
                                 uint64_t *gid, const uint8_t **inner, size_t *inner_len)
{
	memset(creator, 0, VEIL_ID_LEN);
	*gid = 0;
	*inner = NULL;
	*inner_len = 0;
	if (len < VEIL_GROUP_MEMBER_HDR_LEN)
		return VEIL_ETRUNC;
	if (!veil_id_valid(p))
		return VEIL_EPROTO;
	memcpy(creator, p, VEIL_ID_LEN);
	*gid = veil_load_u64le(p + VEIL_ID_LEN);
	*inner = p + VEIL_GROUP_MEMBER_HDR_LEN;
	*inner_len = len - VEIL_GROUP_MEMBER_HDR_LEN;
	return 0;
}

int veil_e2e_group_creator_wrap(struct veil_buf *out, uint64_t gid, const uint8_t *inner,
                                size_t len)
{
	size_t start = out->len;
	int rc;
	if (inner == NULL && len != 0)
		return VEIL_EINVAL;
	if (len > VEIL_E2E_BODY_MAX - VEIL_GROUP_CREATOR_HDR_LEN)
		return VEIL_ELIMIT;
	if ((rc = veil_buf_reserve(out, VEIL_GROUP_CREATOR_HDR_LEN + len)) != 0 ||
	    (rc = veil_buf_append_u64le(out, gid)) != 0 ||
	    (len > 0 && (rc = veil_buf_append(out, inner, len)) != 0)) {
		out->len = start;
		return rc;
	}
	return 0;
}

int veil_e2e_group_creator_unwrap(const uint8_t *p, size_t len, uint64_t *gid,
                                  const uint8_t **inner, size_t *inner_len)
{
	*gid = 0;
	*inner = NULL;
	*inner_len = 0;
	if (len < VEIL_GROUP_CREATOR_HDR_LEN)
		return VEIL_ETRUNC;
	*gid = veil_load_u64le(p);
	*inner = p + VEIL_GROUP_CREATOR_HDR_LEN;
	*inner_len = len - VEIL_GROUP_CREATOR_HDR_LEN;
	return 0;
}

int veil_e2e_group_setup_encode(struct veil_buf *out, const uint8_t (*members)[VEIL_ID_LEN],
                                size_t n)
{
	size_t start = out->len;
	int rc;
	if (n > 0 && members == NULL)
		return VEIL_EINVAL;
	if (n > VEIL_GROUP_MAX_MEMBERS - 1)
		return VEIL_ELIMIT;
	for (size_t i = 0; i < n; i++)
		if (!veil_id_valid(members[i]))
			return VEIL_EINVAL;
	if ((rc = veil_buf_reserve(out, n * VEIL_ID_LEN)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if ((rc = veil_buf_append(out, members[i], VEIL_ID_LEN)) != 0) {
			out->len = start;
			return rc;
		}
	}
	return 0;
}

int veil_e2e_group_setup_decode(const uint8_t *p, size_t len, uint8_t (*members)[VEIL_ID_LEN],
                                size_t cap, size_t *n)
{
	*n = 0;
	if (len % VEIL_ID_LEN != 0)
		return VEIL_ETRUNC;
	size_t k = len / VEIL_ID_LEN;
	/* The creator may appear in the list (receivers drop it), hence MAX and not MAX - 1. */
	if (k > VEIL_GROUP_MAX_MEMBERS || k > cap)
		return VEIL_ELIMIT;
	for (size_t i = 0; i < k; i++)
		if (!veil_id_valid(p + i * VEIL_ID_LEN))
			return VEIL_EPROTO;
	for (size_t i = 0; i < k; i++)
		memcpy(members[i], p + i * VEIL_ID_LEN, VEIL_ID_LEN);
	*n = k;
	return 0;
}

int veil_e2e_group_name_encode(struct veil_buf *out, const char *name, size_t len)
{
	if (name == NULL && len != 0)
		return VEIL_EINVAL;
	if (len > VEIL_GROUP_NAME_MAX)
		return VEIL_ELIMIT;
	if (len == 0)
		return 0;
	if (!veil_utf8_valid((const uint8_t *)name, len))
		return VEIL_EINVAL;
	return veil_buf_append(out, name, len);
}

int veil_e2e_group_name_decode(const uint8_t *p, size_t len, const char **name, size_t *name_len)
{
	*name = "";
	*name_len = 0;
	if (len > VEIL_GROUP_NAME_MAX)
		return VEIL_ELIMIT;
	if (len == 0)
		return 0;
	if (!veil_utf8_valid(p, len))
		return VEIL_EPROTO;
	*name = (const char *)p;
	*name_len = len;
	return 0;
}
