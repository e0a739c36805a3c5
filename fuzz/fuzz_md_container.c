/*
 * Fuzzes what a mediator or a device parses first from every D2M message:
 * the container, then the reflection struct its type names.
 */
#include <stdint.h>

#include "veil/md.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t type;
	const uint8_t *p;
	size_t n;
	struct veil_md_reflect r;
	if (veil_md_container_parse(data, size, &type, &p, &n) != 0)
		return 0;
	(void)veil_md_type_known(type);
	switch (type) {
	case VEIL_MD_REFLECT: (void)!veil_md_reflect_parse(&r, p, n); break;
	case VEIL_MD_REFLECT_ACK: (void)!veil_md_reflect_ack_parse(&r, p, n); break;
	case VEIL_MD_REFLECTED: (void)!veil_md_reflected_parse(&r, p, n); break;
	case VEIL_MD_REFLECTED_ACK: (void)!veil_md_reflected_ack_parse(&r, p, n); break;
	default:
		/* Any other type: every reflection parser must still be safe on it. */
		(void)!veil_md_reflect_parse(&r, p, n);
		(void)!veil_md_reflected_parse(&r, p, n);
		break;
	}
	return 0;
}
