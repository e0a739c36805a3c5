/* Verification levels, the pending link, and the QR text (include/veil/contacts.h). */
#include <stdio.h>
#include <string.h>

#include "veil/contacts.h"
#include "vault_int.h"

const char *veil_level_name(int level)
{
	switch (level) {
	case VEIL_LEVEL_RED: return "red";
	case VEIL_LEVEL_ORANGE: return "orange";
	case VEIL_LEVEL_GREEN: return "green";
	default: return "unknown";
	}
}

/* A level record: level (u32le), updated (u64le), source. */
int veil_contacts_level_get(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                            int *level, char source[static VEIL_LEVEL_SOURCE_MAX + 1])
{
	struct veil_contact c;
	struct veil_buf v;
	*level = 0;
	source[0] = 0;
	int rc = veil_profile_contact_get(p, id, &c);
	if (rc != 0)
		return rc;
	veil_buf_init_secret(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	rc = veil_rec_get(p, VEIL_REC_LEVEL, id, VEIL_ID_LEN, &v);
	if (rc == 0) {
		if (v.len < 12 || v.len - 12 > VEIL_LEVEL_SOURCE_MAX) {
			rc = VEIL_ECORRUPT;
		} else {
			*level = (int)veil_load_u32le(v.p);
			snprintf(source, VEIL_LEVEL_SOURCE_MAX + 1, "%.*s", (int)(v.len - 12),
			         (const char *)v.p + 12);
		}
	} else if (rc == VEIL_ENOTFOUND) {
		*level = VEIL_LEVEL_RED;
		snprintf(source, VEIL_LEVEL_SOURCE_MAX + 1, "directory");
		rc = 0;
	}
	veil_buf_release(&v);
	return rc;
}

int veil_contacts_level_raise(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                              int level, const char *source)
{
	uint8_t rec[12 + VEIL_LEVEL_SOURCE_MAX];
	struct veil_contact c;
	struct veil_buf v;
	size_t n = strlen(source);
	if (level < VEIL_LEVEL_RED || level > VEIL_LEVEL_GREEN || n > VEIL_LEVEL_SOURCE_MAX)
		return VEIL_EINVAL;
	int rc = veil_profile_contact_get(p, id, &c);
	if (rc != 0)
		return rc;
	veil_buf_init(&v, VEIL_REC_MAX + VEIL_REC_PAD);
	rc = veil_rec_get(p, VEIL_REC_LEVEL, id, VEIL_ID_LEN, &v);
	/* A stored level only rises. */
	int keep = rc == 0 && v.len >= 4 && (int)veil_load_u32le(v.p) >= level;
	veil_buf_release(&v);
	if (rc != 0 && rc != VEIL_ENOTFOUND)
		return rc;
	if (keep)
		return 0;
	veil_store_u32le(rec, (uint32_t)level);
	veil_store_u64le(rec + 4, veil_now_ms());
	memcpy(rec + 12, source, n);
	return veil_rec_put(p, VEIL_REC_LEVEL, id, VEIL_ID_LEN, rec, 12 + n);
}

/* A pending link record: vid (32), started (u64le), kind (u8); keyed by its kind. */
int veil_contacts_pending_set(struct veil_profile *p, int kind, const char *vid)
{
	uint8_t rec[32 + 8 + 1], k = (uint8_t)kind;
	if (strlen(vid) != 32 || kind < 0 || kind > 255)
		return VEIL_EINVAL;
	memcpy(rec, vid, 32);
	veil_store_u64le(rec + 32, veil_now_ms());
	rec[40] = k;
	return veil_rec_put(p, VEIL_REC_LINK, &k, 1, rec, sizeof rec);
}

struct pending_best {
	int kind;
	uint64_t started;
	char vid[33];
	int found;
};

static int pending_one(const uint8_t *v, size_t n, void *ctx)
{
	struct pending_best *b = ctx;
	if (n != 32 + 8 + 1)
		return VEIL_ECORRUPT;
	uint64_t started = veil_load_u64le(v + 32);
	if (!b->found || started >= b->started) {
		b->found = 1;
		b->started = started;
		b->kind = v[40];
		memcpy(b->vid, v, 32);
		b->vid[32] = 0;
	}
	return 0;
}

int veil_contacts_pending_get(struct veil_profile *p, int *kind, char vid[static 33])
{
	struct pending_best b;
	memset(&b, 0, sizeof b);
	vid[0] = 0;
	int rc = veil_rec_scan(p, VEIL_REC_LINK, pending_one, &b);
	if (rc != 0)
		return rc;
	if (!b.found)
		return VEIL_ENOTFOUND;
	*kind = b.kind;
	memcpy(vid, b.vid, 33);
	return 0;
}

int veil_contacts_pending_clear(struct veil_profile *p, int kind)
{
	uint8_t k = (uint8_t)kind;
	int rc = veil_rec_del(p, VEIL_REC_LINK, &k, 1);
	return rc == VEIL_ENOTFOUND ? 0 : rc;
}

int veil_contacts_qr_text(char out[static VEIL_QR_TEXT_LEN + 1],
                          const uint8_t id[static VEIL_ID_LEN],
                          const uint8_t pk[static VEIL_KEY_LEN])
{
	char hex[VEIL_HEX_LEN(VEIL_KEY_LEN)];
	if (!veil_id_valid(id) || veil_hex_encode(hex, sizeof hex, pk, VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	snprintf(out, VEIL_QR_TEXT_LEN + 1, "3mid:%.8s,%s", (const char *)id, hex);
	return 0;
}

int veil_contacts_qr_parse(const char *text, uint8_t id[static VEIL_ID_LEN],
                           uint8_t pk[static VEIL_KEY_LEN])
{
	char ids[VEIL_ID_LEN + 1];
	size_t n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	if (n != VEIL_QR_TEXT_LEN || strncmp(text, "3mid:", 5) != 0 || text[5 + VEIL_ID_LEN] != ',')
		return VEIL_EINVAL;
	memcpy(ids, text + 5, VEIL_ID_LEN);
	ids[VEIL_ID_LEN] = 0;
	if (veil_id_parse(id, ids) != 0 ||
	    veil_hex_decode(pk, VEIL_KEY_LEN, text + 6 + VEIL_ID_LEN, 2 * VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	return 0;
}
