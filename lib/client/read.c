/*
 * Read state: the user read messages on this device; the peer learns it
 * by a read receipt (if the user's settings allow) and the other devices
 * of a device group by the reflection of that receipt or, with receipts
 * off, by d2d.IncomingMessageUpdate.read (md-d2d.proto allows that update
 * only as the replacement of the receipt).
 */
#include <stdlib.h>
#include <string.h>

#include "veil/client.h"
#include "veil/e2e.h"

#include "group_int.h"
#include "md_int.h"

/* One receipt, one reflected update: the smaller of both limits. */
#define READ_BATCH                                                                                 \
	(VEIL_D2D_MAX_READS < VEIL_E2E_RECEIPT_MAX_IDS ? VEIL_D2D_MAX_READS                        \
	                                               : VEIL_E2E_RECEIPT_MAX_IDS)

static int read_batch(struct veil_msgr *m, const uint8_t peer[static VEIL_ID_LEN],
                      const uint64_t *ids, size_t n)
{
	struct veil_settings set;
	struct veil_buf body;
	uint64_t msg_id;
	int rc;
	if ((rc = veil_profile_settings_get(&m->prof, &set)) != 0)
		return veil_msgr_fail(m, rc, "cannot read the settings: %s", veil_strerror(rc));
	if (set.read_receipts) {
		veil_buf_init(&body, 8 + 8 * READ_BATCH);
		rc = veil_e2e_receipt_encode(&body, VEIL_RECEIPT_READ, ids, n);
		if (rc != 0)
			veil_msgr_fail(m, rc, "cannot encode the receipt: %s", veil_strerror(rc));
		else
			rc = veil_msgr_send_body(m, peer, VEIL_E2E_DELIVERY_RECEIPT, body.p,
			                         body.len, &msg_id);
		veil_buf_release(&body);
	} else if (m->prof.md) {
		struct veil_d2d_msg d;
		memset(&d, 0, sizeof d);
		d.kind = VEIL_D2D_READ;
		memcpy(d.peer, peer, VEIL_ID_LEN);
		d.at_ms = veil_now_ms();
		d.read_ids = ids;
		d.n_read_ids = n;
		rc = veil_msgr_md_send_int(m, -1, &d);
	}
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = veil_profile_log_set_read(&m->prof, peer, ids[i]);
		if (rc != 0 && rc != VEIL_ENOTFOUND)
			return veil_msgr_fail(m, rc, "cannot store the read state: %s",
			                      veil_strerror(rc));
	}
	return 0;
}

int veil_msgr_mark_read(struct veil_msgr *m, const uint8_t peer[static VEIL_ID_LEN],
                        const uint64_t *ids, size_t n)
{
	if (n == 0 || n > VEIL_E2E_RECEIPT_MAX_IDS)
		return veil_msgr_fail(m, VEIL_EINVAL, "1 to %d message IDs at a time",
		                      VEIL_E2E_RECEIPT_MAX_IDS);
	for (size_t i = 0; i < n; i += READ_BATCH) {
		int rc = read_batch(m, peer, ids + i, n - i < READ_BATCH ? n - i : READ_BATCH);
		if (rc != 0)
			return rc;
	}
	return 0;
}

struct unread {
	uint64_t ids[READ_BATCH];
	size_t n;
};

static int unread_fn(const struct veil_log_entry *e, void *ctx)
{
	struct unread *u = ctx;
	/* What a person reads: 1:1 content (group types are 0x40 and up, receipts 0x80). */
	if (e->dir != VEIL_LOG_IN || e->status != 0 || e->type == 0 || e->type >= 0x40)
		return 0;
	u->ids[u->n++] = e->msg_id;
	return u->n == READ_BATCH ? 1 : 0;
}

int veil_msgr_read_conversation(struct veil_msgr *m, const uint8_t peer[static VEIL_ID_LEN],
                                size_t *n_read)
{
	struct unread *u = malloc(sizeof *u);
	int rc = 0;
	*n_read = 0;
	if (u == NULL)
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	for (;;) {
		u->n = 0;
		rc = veil_profile_log_list(&m->prof, peer, unread_fn, u);
		if (rc == 1)
			rc = 0;
		if (rc != 0) {
			veil_msgr_fail(m, rc, "cannot read the log: %s", veil_strerror(rc));
			break;
		}
		if (u->n == 0 || (rc = read_batch(m, peer, u->ids, u->n)) != 0)
			break;
		*n_read += u->n;
		if (u->n < READ_BATCH)
			break; /* that was all */
	}
	free(u);
	return rc;
}
