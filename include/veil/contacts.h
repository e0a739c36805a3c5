/*
 * Verification levels of contacts and the pending link of the own
 * profile, kept in the profile's database (tables contact_levels and
 * link_pending, created on first use).
 *
 * Levels, as in the specification's clients: red (1) the key came from the
 * directory by ID only; orange (2) the contact was found through a linked
 * phone number or e-mail address (source "phone" or "email"); green (3)
 * the contact's QR code was scanned in person (source "qr"). A level is
 * only ever raised, never lowered.
 */
#ifndef VEIL_CONTACTS_H
#define VEIL_CONTACTS_H

#include <stddef.h>
#include <stdint.h>

#include "veil/client.h"

enum veil_level { VEIL_LEVEL_RED = 1, VEIL_LEVEL_ORANGE = 2, VEIL_LEVEL_GREEN = 3 };
#define VEIL_LEVEL_SOURCE_MAX 15

/* "red", "orange", "green" or "unknown". */
const char *veil_level_name(int level);
/*
 * The level of a contact and how it was reached; a contact without a
 * record is red with source "directory". VEIL_ENOTFOUND if id is not a
 * contact.
 */
int veil_contacts_level_get(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                            int *level, char source[static VEIL_LEVEL_SOURCE_MAX + 1]) VEIL_WUR;
/* Raises the level of a contact to level (no change if it is already as high). */
int veil_contacts_level_raise(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                              int level, const char *source) VEIL_WUR;

/* The own pending link of kind (enum veil_contact_kind): one per kind. */
int veil_contacts_pending_set(struct veil_profile *p, int kind, const char *vid) VEIL_WUR;
/* The most recent pending link: VEIL_ENOTFOUND if none. */
int veil_contacts_pending_get(struct veil_profile *p, int *kind, char vid[static 33]) VEIL_WUR;
int veil_contacts_pending_clear(struct veil_profile *p, int kind) VEIL_WUR;

/*
 * The QR text of the specification, "3mid:ID,KEYHEX", and its parser
 * (VEIL_EINVAL for anything else; lower-case hex accepted).
 */
#define VEIL_QR_TEXT_LEN (5 + VEIL_ID_LEN + 1 + 2 * VEIL_KEY_LEN)
int veil_contacts_qr_text(char out[static VEIL_QR_TEXT_LEN + 1],
                          const uint8_t id[static VEIL_ID_LEN],
                          const uint8_t pk[static VEIL_KEY_LEN]) VEIL_WUR;
int veil_contacts_qr_parse(const char *text, uint8_t id[static VEIL_ID_LEN],
                           uint8_t pk[static VEIL_KEY_LEN]) VEIL_WUR;

#endif
