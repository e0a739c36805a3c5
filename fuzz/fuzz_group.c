/*
 * Fuzzes the group body parsers a group member reaches with any decrypted
 * message: both containers, the group-setup member list and the group
 * name. The first input byte picks the parser; a container's inner part is
 * fed on to the setup and name decoders.
 */
#include <stdint.h>
#include <string.h>

#include "veil/e2e.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t members[VEIL_GROUP_MAX_MEMBERS][VEIL_ID_LEN];

static void inner(const uint8_t *p, size_t n)
{
	const char *name;
	size_t k;
	if (veil_e2e_group_setup_decode(p, n, members, VEIL_GROUP_MAX_MEMBERS, &k) == 0) {
		struct veil_buf b;
		veil_buf_init(&b, 8192);
		/* What decodes (up to the send limit) encodes back to the same bytes. */
		if (k < VEIL_GROUP_MAX_MEMBERS &&
		    veil_e2e_group_setup_encode(&b, (const uint8_t(*)[VEIL_ID_LEN])members, k) ==
		        0 &&
		    (b.len != n || (n > 0 && memcmp(b.p, p, n) != 0)))
			__builtin_trap();
		veil_buf_release(&b);
	}
	(void)!veil_e2e_group_name_decode(p, n, &name, &k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t creator[VEIL_ID_LEN];
	uint64_t gid;
	const uint8_t *p;
	size_t n;
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	switch (sel % 3) {
	case 0:
		if (veil_e2e_group_member_unwrap(data, size, creator, &gid, &p, &n) == 0)
			inner(p, n);
		break;
	case 1:
		if (veil_e2e_group_creator_unwrap(data, size, &gid, &p, &n) == 0)
			inner(p, n);
		break;
	default: inner(data, size); break;
	}
	return 0;
}
