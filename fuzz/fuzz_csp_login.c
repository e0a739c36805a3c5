/*
 * Fuzzes the CSP parsers a stranger reaches before and right after
 * authentication: the login data, the login extensions and the payload
 * container with its ack and close-error bodies. The first input byte
 * picks the parser.
 */
#include <stdint.h>
#include <string.h>

#include "veil/csp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct veil_csp_login_info info;
	uint8_t sck[VEIL_COOKIE_LEN] = {0};
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	switch (sel % 4) {
	case 0:
		if (size >= VEIL_CSP_LOGIN_DATA_LEN) {
			memcpy(sck, data + 40, VEIL_COOKIE_LEN);
			(void)!veil_csp_login_data_parse(data, sck, &info);
		}
		break;
	case 1:
		memset(&info, 0, sizeof info);
		(void)!veil_csp_login_ext_parse(data, size, &info);
		break;
	case 2: {
		uint8_t type, id[VEIL_ID_LEN];
		const uint8_t *body;
		size_t n;
		uint64_t mid;
		if (veil_csp_payload_parse(data, size, &type, &body, &n) == 0)
			(void)!veil_csp_ack_parse(body, n, id, &mid);
		break;
	}
	default: {
		char text[256];
		int rec;
		(void)!veil_csp_close_error_parse(data, size, &rec, text, sizeof text);
		(void)veil_utf8_valid(data, size);
		break;
	}
	}
	return 0;
}
