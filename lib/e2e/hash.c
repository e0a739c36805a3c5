/*
 * Contact-matching hashes (HMAC-SHA256 of a normalised email address or
 * phone number) and the Gateway callback MAC.
 */
#include <string.h>

#include <sodium.h>

#include "veil/e2e.h"

/* The directory's fixed HMAC keys for contact matching. */
static const uint8_t email_key[32] = {
    0x30, 0xa5, 0x50, 0x0f, 0xed, 0x97, 0x01, 0xfa, 0x6d, 0xef, 0xdb, 0x61, 0x08, 0x41, 0x90, 0x0f,
    0xeb, 0xb8, 0xe4, 0x30, 0x88, 0x1f, 0x7a, 0xd8, 0x16, 0x82, 0x62, 0x64, 0xec, 0x09, 0xba, 0xd7,
};
static const uint8_t phone_key[32] = {
    0x85, 0xad, 0xf8, 0x22, 0x69, 0x53, 0xf3, 0xd9, 0x6c, 0xfd, 0x5d, 0x09, 0xbf, 0x29, 0x55, 0x5e,
    0xb9, 0x55, 0xfc, 0xd8, 0xaa, 0x5e, 0xc4, 0xf9, 0xfc, 0xd8, 0x69, 0xe2, 0x58, 0x37, 0x07, 0x23,
};

#define PHONE_DIGITS_MAX 15 /* E.164 */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Narrows [*p, *p + *len) to exclude leading and trailing ASCII whitespace. */
static void trim(const char **p, size_t *len)
{
	while (*len > 0 && is_space((*p)[0])) {
		(*p)++;
		(*len)--;
	}
	while (*len > 0 && is_space((*p)[*len - 1]))
		(*len)--;
}

int veil_hash_email(uint8_t out[static 32], const char *email, size_t len)
{
	char norm[VEIL_HASH_EMAIL_MAX];
	int at = 0;

	if (email == NULL)
		return VEIL_EINVAL;
	trim(&email, &len);
	if (len == 0 || len > sizeof norm)
		return VEIL_EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = email[i];
		if (c == 0)
			return VEIL_EINVAL;
		if (c == '@')
			at = 1;
		norm[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	if (!at)
		return VEIL_EINVAL;
	veil_hmac_sha256(out, email_key, sizeof email_key, (const uint8_t *)norm, len);
	sodium_memzero(norm, sizeof norm);
	return 0;
}

int veil_hash_phone(uint8_t out[static 32], const char *phone, size_t len)
{
	if (phone == NULL)
		return VEIL_EINVAL;
	trim(&phone, &len);
	if (len > 0 && phone[0] == '+') {
		phone++;
		len--;
	}
	if (len == 0 || len > PHONE_DIGITS_MAX || phone[0] == '0')
		return VEIL_EINVAL;
	for (size_t i = 0; i < len; i++)
		if (phone[i] < '0' || phone[i] > '9')
			return VEIL_EINVAL;
	veil_hmac_sha256(out, phone_key, sizeof phone_key, (const uint8_t *)phone, len);
	return 0;
}

int veil_hash_gateway_callback(uint8_t out[static 32], const char *secret, size_t secret_len,
                               const struct veil_gw_callback *f)
{
	const char *parts[6];
	crypto_auth_hmacsha256_state st;

	if (secret == NULL || f == NULL || f->from == NULL || f->to == NULL ||
	    f->message_id == NULL || f->date == NULL || f->nonce == NULL || f->box == NULL)
		return VEIL_EINVAL;
	parts[0] = f->from;
	parts[1] = f->to;
	parts[2] = f->message_id;
	parts[3] = f->date;
	parts[4] = f->nonce;
	parts[5] = f->box;
	crypto_auth_hmacsha256_init(&st, (const uint8_t *)secret, secret_len);
	for (size_t i = 0; i < VEIL_ARRAY_LEN(parts); i++)
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)parts[i], strlen(parts[i]));
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
	return 0;
}
