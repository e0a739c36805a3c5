/*
 * Fuzzes the rendezvous parsers: RendezvousInit, the device join link, the
 * relay URL path, the frame decoder, and the handshake messages behind the
 * AEAD (the input is sealed under the right key and sequence number first,
 * so the protobuf parsing of Hello and AuthHello is reached). The first
 * input byte picks the parser.
 */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "veil/crypto.h"
#include "veil/rendezvous.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Seals p as the peer's first frame (sequence number 1) under key. */
static void seal_first(struct veil_buf *out, uint32_t pid, const uint8_t key[static 32],
                       const uint8_t *p, size_t n)
{
	uint8_t nonce[12] = {0};
	unsigned long long cl = 0;
	for (int i = 0; i < 4; i++)
		nonce[i] = (uint8_t)(pid >> (8 * i));
	nonce[4] = 1;
	if (n > VEIL_RDV_HS_FRAME_MAX - 16 || veil_buf_reserve(out, 4 + n + 16) != 0)
		return;
	uint8_t *f = out->p + out->len;
	crypto_aead_chacha20poly1305_ietf_encrypt(f + 4, &cl, p, n, NULL, 0, NULL, nonce, key);
	for (int i = 0; i < 4; i++)
		f[i] = (uint8_t)(cl >> (8 * i));
	out->len += 4 + (size_t)cl;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct veil_rdv_init init;
	enum veil_rdv_variant v;
	uint32_t d2d;
	char path[VEIL_RDV_PATH_HEX_LEN + 1], s[2048];
	if (!ready) {
		if (veil_crypto_init() != 0)
			return 0;
		ready = 1;
	}
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	switch (sel % 6) {
	case 0: (void)!veil_rdv_init_parse(&init, data, size); break;
	case 1: (void)!veil_rdv_link_parse(&init, &v, &d2d, (const char *)data, size); break;
	case 2:
		if (size < sizeof s) {
			memcpy(s, data, size);
			s[size] = '\0';
			(void)!veil_rdv_url_path(path, s);
		}
		break;
	default: {
		/* 3: raw frames to RID; 4: a sealed Hello to RID; 5: a sealed AuthHello to RRD. */
		struct veil_rdv r;
		struct veil_buf out, dat, in;
		uint8_t ida[32], rda[32], rph[32];
		memset(&init, 0, sizeof init);
		init.path_id = 7;
		memcpy(init.url, "ws://x/", 8);
		veil_buf_init(&out, 1 << 16);
		veil_buf_init(&dat, 1 << 16);
		veil_buf_init(&in, 1 << 16);
		int role = sel % 6 == 5 ? VEIL_RDV_RRD : VEIL_RDV_RID;
		if (veil_rdv_start(&r, role, 1, &init, &out) == 0 &&
		    veil_rdv_derive(init.ak, NULL, ida, rda, ida, rda, rph) == 0) {
			if (sel % 6 == 3)
				(void)!veil_buf_append(&in, data, size);
			else
				seal_first(&in, init.path_id, sel % 6 == 4 ? rda : ida, data, size);
			if (veil_rdv_feed(&r, in.p, in.len) == 0)
				while (veil_rdv_next(&r, &out, &dat) > 0)
					;
		}
		veil_rdv_release(&r);
		veil_buf_release(&out);
		veil_buf_release(&dat);
		veil_buf_release(&in);
		break;
	}
	}
	return 0;
}
