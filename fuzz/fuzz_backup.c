/*
 * Fuzzes what a restore parses from a downloaded backup: the first byte
 * picks the gzip reader (veil_safe_gunzip, on bytes that passed the MAC in
 * real life) or the backup JSON parser (veil_backup_parse), whose result
 * must hold only what its bounds allow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil/safe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		if (veil_crypto_init() != 0)
			return 0;
		init = 1;
	}
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		struct veil_buf out;
		veil_buf_init_secret(&out, VEIL_SAFE_JSON_MAX);
		if (veil_safe_gunzip(&out, data + 1, size - 1) == 0 && out.len > VEIL_SAFE_JSON_MAX)
			abort();
		veil_buf_release(&out);
		return 0;
	}
	struct veil_backup *b = NULL;
	if (veil_backup_parse(data + 1, size - 1, &b) != 0) {
		if (b != NULL)
			abort();
		return 0;
	}
	if (b->n_contacts > VEIL_BACKUP_MAX_CONTACTS || b->n_groups > VEIL_BACKUP_MAX_GROUPS)
		abort();
	for (size_t i = 0; i < b->n_contacts; i++)
		if (strlen(b->contacts[i].nickname) > VEIL_PROFILE_NICK_MAX ||
		    strlen(b->contacts[i].name) > VEIL_PROFILE_NICK_MAX ||
		    b->contacts[i].level < 1 || b->contacts[i].level > 3)
			abort();
	for (size_t i = 0; i < b->n_groups; i++)
		if (b->groups[i].g.n_members >= VEIL_GROUP_MAX_MEMBERS)
			abort();
	veil_backup_free(b);
	return 0;
}
