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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct veil_d2d_msg m, m2;
	void *env = NULL, *env2 = NULL;
	struct veil_buf b;
	if (veil_d2d_decode(&env, &m, data, size) == 0 && m.kind != VEIL_D2D_OTHER) {
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
