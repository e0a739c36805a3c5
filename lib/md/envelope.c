/* The D2D envelope under DGRK, and the ClientUrlInfo of the mediator URL. */
#include <string.h>

#include <sodium.h>

#include "md_int.h"
#include "proto/md-d2d.pb-c.h"
#include "proto/md-d2m.pb-c.h"

/*
 * Padding. The specification asks for "a random amount of padding" and
 * names no range; the Android app sends 0..255 bytes. We do the same, with
 * zero bytes (the receiver ignores the content). The padding field is put
 * in front of the caller's serialised envelope: protobuf allows fields in
 * any order, and should the caller's bytes carry a padding field too, the
 * later one wins, which changes nothing since padding is ignored.
 */
int veil_md_envelope_seal(struct veil_buf *out, const struct veil_md_keys *k,
                          const uint8_t *envelope, size_t len, int pad_len)
{
	struct veil_buf plain;
	size_t pad;
	int rc;

	if (envelope == NULL && len > 0)
		return VEIL_EINVAL;
	if (pad_len > VEIL_MD_PAD_MAX)
		return VEIL_EINVAL;
	pad = pad_len < 0 ? veil_md_pad_len() : (size_t)pad_len;
	veil_buf_init_secret(&plain, VEIL_MD_ENVELOPE_PLAIN_MAX);
	if (pad > 0) {
		/* Field 1, wire type 2 (0x0a), then the length as a varint. */
		uint8_t hdr[3] = {0x0a, (uint8_t)(pad & 0x7f), 0};
		size_t hl = 2;
		if (pad >= 0x80) {
			hdr[1] |= 0x80;
			hdr[2] = (uint8_t)(pad >> 7);
			hl = 3;
		}
		if ((rc = veil_buf_append(&plain, hdr, hl)) != 0 ||
		    (rc = veil_buf_append(&plain, veil_md_zeros, pad)) != 0)
			goto out;
	}
	if ((rc = veil_buf_append(&plain, envelope, len)) != 0)
		goto out;
	rc = veil_md_seal(out, k->dgrk, plain.p, plain.len);
out:
	veil_buf_release(&plain);
	return rc;
}

int veil_md_envelope_open(uint8_t *plain, size_t *plain_len, struct veil_md_envelope_info *info,
                          const struct veil_md_keys *k, const uint8_t *in, size_t len)
{
	int rc;
	memset(info, 0, sizeof *info);
	*plain_len = 0;
	if (len > VEIL_MD_ENVELOPE_MAX)
		return VEIL_ELIMIT;
	if ((rc = veil_md_open(plain, plain_len, k->dgrk, in, len)) != 0)
		return rc;
	D2d__Envelope *env = d2d__envelope__unpack(NULL, *plain_len, plain);
	if (env == NULL) {
		sodium_memzero(plain, *plain_len);
		*plain_len = 0;
		return VEIL_EPROTO;
	}
	info->device_id = env->has_device_id ? env->device_id : 0;
	info->protocol_version =
	    env->has_protocol_version && env->protocol_version != 0 ? env->protocol_version : 1;
	info->content = (int)env->content_case;
	d2d__envelope__free_unpacked(env, NULL);
	return 0;
}

static int server_group_ok(const char *s, size_t n)
{
	if (n == 0 || n > VEIL_MD_SERVER_GROUP_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return 0;
	}
	return 1;
}

int veil_md_url_info_encode(char *out, size_t cap, const uint8_t group_id[static VEIL_KEY_LEN],
                            const char *server_group)
{
	D2m__ClientUrlInfo m = D2M__CLIENT_URL_INFO__INIT;
	uint8_t buf[(VEIL_MD_URL_INFO_HEX_MAX - 1) / 2];
	if (cap > 0)
		out[0] = 0;
	if (server_group == NULL || !server_group_ok(server_group, strlen(server_group)))
		return VEIL_EINVAL;
	m.device_group_id.data = (uint8_t *)(uintptr_t)group_id;
	m.device_group_id.len = VEIL_KEY_LEN;
	m.server_group = (char *)(uintptr_t)server_group;
	size_t n = d2m__client_url_info__get_packed_size(&m);
	if (n > sizeof buf)
		return VEIL_ELIMIT; /* cannot happen with the checks above */
	if (d2m__client_url_info__pack(&m, buf) != n)
		return VEIL_EPROTO;
	return veil_hex_encode(out, cap, buf, n);
}

int veil_md_url_path_parse(const char *path, size_t len, uint8_t group_id[static VEIL_KEY_LEN],
                           char server_group[static VEIL_MD_SERVER_GROUP_MAX + 1])
{
	uint8_t buf[(VEIL_MD_URL_INFO_HEX_MAX - 1) / 2];
	size_t start = 0, end = len;
	int rc = 0;

	memset(group_id, 0, VEIL_KEY_LEN);
	server_group[0] = 0;
	for (size_t i = 0; i < len; i++) {
		if (path[i] == '?') {
			end = i;
			break;
		}
		if (path[i] == '/')
			start = i + 1;
	}
	size_t seg = end - start;
	if (seg == 0 || seg % 2 != 0)
		return VEIL_EPROTO;
	if (seg / 2 > sizeof buf)
		return VEIL_ELIMIT;
	if (veil_hex_decode(buf, seg / 2, path + start, seg) != 0)
		return VEIL_EPROTO;
	D2m__ClientUrlInfo *m = d2m__client_url_info__unpack(NULL, seg / 2, buf);
	if (m == NULL)
		return VEIL_EPROTO;
	size_t sl = strlen(m->server_group);
	if (m->device_group_id.len != VEIL_KEY_LEN || !server_group_ok(m->server_group, sl)) {
		rc = VEIL_EPROTO;
	} else {
		memcpy(group_id, m->device_group_id.data, VEIL_KEY_LEN);
		memcpy(server_group, m->server_group, sl + 1);
	}
	d2m__client_url_info__free_unpacked(m, NULL);
	return rc;
}
