/*
 * Invite codes: 20 characters of an alphabet without look-alikes (no 0/O,
 * 1/I/L), about 99 bits, shown in groups of five. The store keeps only
 * their keyed BLAKE2b hash, so a copy of the store does not hand out
 * working codes.
 */
#include <string.h>

#include <sodium.h>

#include "directory.h"

static const char alphabet[] = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
static const char hash_key[] = "veil invite code hash v1";

int veil_invite_hash(const char *code, uint8_t hash[static 32])
{
	char norm[VEIL_INVITE_CODE_LEN];
	size_t n = 0, len = strnlen(code, VEIL_INVITE_TEXT_MAX + 1);
	memset(hash, 0, 32);
	if (len > VEIL_INVITE_TEXT_MAX)
		return VEIL_EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = code[i];
		if (c == '-' || c == ' ')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c == '\0' || strchr(alphabet, c) == NULL || n == sizeof norm)
			return VEIL_EINVAL;
		norm[n++] = c;
	}
	if (n != sizeof norm)
		return VEIL_EINVAL;
	crypto_generichash(hash, 32, (const unsigned char *)norm, n,
	                   (const unsigned char *)hash_key, sizeof hash_key - 1);
	sodium_memzero(norm, sizeof norm);
	return 0;
}

int veil_invite_code_new(char out[static VEIL_INVITE_TEXT_MAX + 1], uint8_t hash[static 32])
{
	size_t o = 0;
	for (size_t i = 0; i < VEIL_INVITE_CODE_LEN; i++) {
		if (i > 0 && i % 5 == 0)
			out[o++] = '-';
		out[o++] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
	}
	out[o] = '\0';
	return veil_invite_hash(out, hash);
}
