/*
 * Fuzzes the D2M handshake parsers (ServerHello, ClientHello, ServerInfo)
 * and the mediator URL path. The first input byte picks the parser.
 */
#include <stdint.h>
#include <string.h>

#include "veil/md.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct veil_md_client_hello ch;
	static struct veil_md_server_info si;
	struct veil_md_server_hello sh;
	uint8_t gid[VEIL_KEY_LEN];
	char sg[VEIL_MD_SERVER_GROUP_MAX + 1];
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	switch (sel % 4) {
	case 0: (void)!veil_md_server_hello_parse(&sh, data, size); break;
	case 1: {
		static struct veil_md_server_hs hs;
		if (veil_md_client_hello_parse(&ch, data, size) == 0)
			(void)!veil_md_server_verify(&hs, &ch, gid);
		break;
	}
	case 2: (void)!veil_md_server_info_parse(&si, data, size); break;
	default:
		memset(gid, 0, sizeof gid);
		(void)!veil_md_url_path_parse((const char *)data, size, gid, sg);
		break;
	}
	return 0;
}
