/*
 * Fuzzes the client's reading of reflected D2D messages (lib/client/md_d2d.c):
 * the bytes are an opened d2d.Envelope as another device (or a forged
 * mediator queue entry under a stolen key) could send. Whatever decodes
 * must encode again and decode to the same message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/client/md_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A read names its messages per update: the updates of the first usable
 * one's conversation, encoded again, must decode to as many updates.
 */
static void read_roundtrip(const struct veil_d2d_msg *m)
{
	static uint64_t ids[VEIL_D2D_MAX_READS];
	static struct veil_d2d_msg e, m2;
	struct veil_d2d_read r, first;
	struct veil_buf b;
	void *env2 = NULL;
	size_t n = 0;
	for (size_t i = 0; i < m->n_reads; i++) {
		if (veil_d2d_read_get(m, i, &r) != 0)
			continue;
		if (n == 0)
			first = r;
		if (n < VEIL_D2D_MAX_READS && r.group == first.group &&
		    memcmp(r.peer, first.peer, VEIL_ID_LEN) == 0)
			ids[n++] = r.msg_id;
	}
	if (n == 0)
		return;
	memset(&e, 0, sizeof e);
	e.kind = VEIL_D2D_READ;
	e.group = first.group;
	memcpy(e.peer, first.peer, VEIL_ID_LEN);
	memcpy(e.group_creator, first.creator, VEIL_ID_LEN);
	e.group_id = first.gid;
	e.at_ms = first.at_ms;
	e.read_ids = ids;
	e.n_read_ids = n;
	veil_buf_init(&b, VEIL_MD_ENVELOPE_PLAIN_MAX);
	if (veil_d2d_encode(&b, &e, m->device_id) == 0) {
		if (veil_d2d_decode(&env2, &m2, b.p, b.len) != 0 || m2.kind != VEIL_D2D_READ ||
		    m2.n_reads != n || veil_d2d_read_get(&m2, n - 1, &r) != 0 ||
		    r.msg_id != ids[n - 1])
			abort();
		veil_d2d_free(env2);
	}
	veil_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct veil_d2d_msg m, m2;
	void *env = NULL, *env2 = NULL;
	struct veil_buf b;
	int rc = veil_d2d_decode(&env, &m, data, size);
	/* Only what decoded is encoded again (a refused message may be half filled in). */
	if (rc == 0 && m.kind == VEIL_D2D_READ) {
		read_roundtrip(&m);
	} else if (rc == 0 && m.kind != VEIL_D2D_OTHER) {
		veil_buf_init(&b, VEIL_MD_ENVELOPE_PLAIN_MAX);
		if (veil_d2d_encode(&b, &m, m.device_id) == 0) {
			if (veil_d2d_decode(&env2, &m2, b.p, b.len) != 0 || m2.kind != m.kind ||
			    m2.msg_id != m.msg_id || m2.type != m.type ||
			    m2.body_len != m.body_len ||
			    memcmp(m2.peer, m.peer, VEIL_ID_LEN) != 0 || m2.n_nonces != m.n_nonces)
				abort();
			veil_d2d_free(env2);
		}
		veil_buf_release(&b);
	}
	veil_d2d_free(env);
	return 0;
}
