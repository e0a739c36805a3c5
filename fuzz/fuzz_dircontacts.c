/*
 * Fuzzes the parsers of contact data that come from outside: address-book
 * entries (e-mail and phone normalisation), scanned QR texts, and OPRF
 * group elements from the network (evaluate on the server side, finalize on
 * the client side). The first input byte picks the parser.
 */
#include <stdint.h>
#include <string.h>

#include "veil/contacts.h"
#include "veil/crypto.h"
#include "veil/dir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	static const uint8_t k[VEIL_OPRF_LEN] = {7, 1, 2, 3};
	if (!init) {
		if (veil_crypto_init() != 0)
			return 0;
		init = 1;
	}
	if (size < 1 || size > 4096)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	char text[4097], out[VEIL_CONTACT_MAX + 1];
	memcpy(text, data, size);
	text[size] = 0;
	size_t n = 0;
	switch (sel % 4) {
	case 0:
	case 1: {
		int kind = sel % 2 == 0 ? VEIL_CONTACT_EMAIL : VEIL_CONTACT_PHONE;
		if (veil_contact_normalize(kind, text, size, "41", out, &n) == 0) {
			uint8_t h[32];
			if (n > VEIL_CONTACT_MAX || strlen(out) != n)
				__builtin_trap();
			if (veil_contact_hash(h, kind, out, n) != 0)
				__builtin_trap(); /* every normalised entry must hash */
		}
		break;
	}
	case 2: {
		uint8_t id[VEIL_ID_LEN], pk[VEIL_KEY_LEN];
		char again[VEIL_QR_TEXT_LEN + 1];
		if (veil_contacts_qr_parse(text, id, pk) == 0 &&
		    veil_contacts_qr_text(again, id, pk) != 0)
			__builtin_trap();
		break;
	}
	default: {
		uint8_t e[VEIL_OPRF_LEN] = {0}, z[VEIL_OPRF_LEN], o[VEIL_OPRF_LEN];
		memcpy(e, data, size < sizeof e ? size : sizeof e);
		if (veil_oprf_evaluate(z, k, e) == 0 &&
		    veil_oprf_finalize(o, VEIL_CONTACT_PHONE, "41791234567", 11, k, z) != 0)
			__builtin_trap(); /* a valid element stays valid under k^-1 */
		break;
	}
	}
	return 0;
}
