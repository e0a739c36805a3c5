/*
 * Fuzzes the directory's JSON parsers: the server's request parsers
 * (identity/create, the identities list of fetch_bulk and check, the depth
 * scan, token checks) and the client's parsers of directory answers and of
 * the signed provisioning document. The first input byte picks the parser.
 */
#include <stdint.h>
#include <string.h>

#include "veil/crypto.h"
#include "veil/dir.h"
#include "../srv/directory/directory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	static uint8_t dir_sk[VEIL_KEY_LEN] = {1, 2, 3};
	if (!init) {
		if (veil_crypto_init() != 0)
			return 0;
		init = 1;
	}
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	const char *why = NULL;
	switch (sel % 7) {
	case 0: {
		struct veil_dirsvc_create_req cr;
		(void)!veil_dirsvc_parse_create(data, size, &cr, &why);
		break;
	}
	case 1: {
		static uint8_t ids[VEIL_DIRSVC_MAX_IDS][VEIL_ID_LEN];
		static int valid[VEIL_DIRSVC_MAX_IDS];
		size_t n;
		if (veil_dirsvc_parse_ids(data, size, ids, valid, VEIL_DIRSVC_MAX_IDS, &n, &why) ==
		        0 &&
		    n > VEIL_DIRSVC_MAX_IDS)
			__builtin_trap();
		break;
	}
	case 2: (void)!veil_json_depth_ok(data, size, VEIL_DIRSVC_MAX_DEPTH); break;
	case 3: {
		struct veil_dir_identity di;
		(void)!veil_dir_parse_identity(data, size, &di);
		break;
	}
	case 4: {
		struct veil_dir_provisioning p;
		(void)!veil_dir_parse_provisioning(data, size, NULL, NULL, &p);
		break;
	}
	case 6: {
		/* The chat.addresses list of the provisioning document's chat object. */
		struct veil_dir_provisioning p;
		memset(&p, 0, sizeof p);
		if (veil_dir_parse_chat_addrs(data, size, &p) == 0 &&
		    p.n_chat_addrs > VEIL_DIR_MAX_CHAT_ADDRS)
			__builtin_trap();
		break;
	}
	case 5: {
		/* A phase-2 request checked against fixed server keys. */
		struct veil_server_keys keys;
		memset(&keys, 0, sizeof keys);
		keys.dir_sk = dir_sk;
		struct veil_dirsvc_create_req cr;
		uint64_t exp;
		if (veil_dirsvc_parse_create(data, size, &cr, &why) == 0 && cr.has_token) {
			(void)!veil_dirsvc_token_check(&keys, "identity/create", cr.pk, cr.token,
			                               cr.token_len, 0, &exp);
			(void)!veil_dirsvc_response_check(&keys, cr.pk, cr.token, cr.token_len,
			                                  cr.response);
		}
		break;
	}
	}
	return 0;
}
