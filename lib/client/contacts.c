/* Verification levels, the pending link, and the QR text (include/veil/contacts.h). */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "veil/contacts.h"

static const char SCHEMA[] = "CREATE TABLE IF NOT EXISTS contact_levels("
                             " id TEXT PRIMARY KEY, level INTEGER NOT NULL,"
                             " source TEXT NOT NULL, updated INTEGER NOT NULL);"
                             "CREATE TABLE IF NOT EXISTS link_pending("
                             " kind INTEGER PRIMARY KEY, vid TEXT NOT NULL,"
                             " started INTEGER NOT NULL);";

const char *veil_level_name(int level)
{
	switch (level) {
	case VEIL_LEVEL_RED: return "red";
	case VEIL_LEVEL_ORANGE: return "orange";
	case VEIL_LEVEL_GREEN: return "green";
	default: return "unknown";
	}
}

static int prep(struct veil_profile *p, sqlite3_stmt **st, const char *sql)
{
	*st = NULL;
	if (p->db == NULL || sqlite3_exec(p->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK)
		return VEIL_EIO;
	return sqlite3_prepare_v2(p->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : VEIL_EIO;
}

int veil_contacts_level_get(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                            int *level, char source[static VEIL_LEVEL_SOURCE_MAX + 1])
{
	struct veil_contact c;
	*level = 0;
	source[0] = 0;
	int rc = veil_profile_contact_get(p, id, &c);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st;
	rc = prep(p, &st, "SELECT level, source FROM contact_levels WHERE id = ?1");
	if (rc != 0)
		return rc;
	sqlite3_bind_text(st, 1, (const char *)id, VEIL_ID_LEN, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*level = sqlite3_column_int(st, 0);
		const unsigned char *t = sqlite3_column_text(st, 1);
		snprintf(source, VEIL_LEVEL_SOURCE_MAX + 1, "%s", t ? (const char *)t : "");
	} else if (s == SQLITE_DONE) {
		*level = VEIL_LEVEL_RED;
		snprintf(source, VEIL_LEVEL_SOURCE_MAX + 1, "directory");
	} else {
		rc = VEIL_EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

int veil_contacts_level_raise(struct veil_profile *p, const uint8_t id[static VEIL_ID_LEN],
                              int level, const char *source)
{
	struct veil_contact c;
	if (level < VEIL_LEVEL_RED || level > VEIL_LEVEL_GREEN ||
	    strlen(source) > VEIL_LEVEL_SOURCE_MAX)
		return VEIL_EINVAL;
	int rc = veil_profile_contact_get(p, id, &c);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st;
	rc =
	    prep(p, &st,
	         "INSERT INTO contact_levels (id, level, source, updated) VALUES (?1, ?2, ?3, ?4) "
	         "ON CONFLICT (id) DO UPDATE SET level = excluded.level, source = excluded.source, "
	         "updated = excluded.updated WHERE excluded.level > contact_levels.level");
	if (rc != 0)
		return rc;
	sqlite3_bind_text(st, 1, (const char *)id, VEIL_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, level);
	sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)veil_now_ms());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

int veil_contacts_pending_set(struct veil_profile *p, int kind, const char *vid)
{
	sqlite3_stmt *st;
	int rc = prep(
	    p, &st, "INSERT OR REPLACE INTO link_pending (kind, vid, started) VALUES (?1, ?2, ?3)");
	if (rc != 0)
		return rc;
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_text(st, 2, vid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)veil_now_ms());
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

int veil_contacts_pending_get(struct veil_profile *p, int *kind, char vid[static 33])
{
	sqlite3_stmt *st;
	vid[0] = 0;
	int rc = prep(p, &st, "SELECT kind, vid FROM link_pending ORDER BY started DESC LIMIT 1");
	if (rc != 0)
		return rc;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32) {
		*kind = sqlite3_column_int(st, 0);
		memcpy(vid, sqlite3_column_text(st, 1), 32);
		vid[32] = 0;
	} else {
		rc = s == SQLITE_DONE ? VEIL_ENOTFOUND : VEIL_EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

int veil_contacts_pending_clear(struct veil_profile *p, int kind)
{
	sqlite3_stmt *st;
	int rc = prep(p, &st, "DELETE FROM link_pending WHERE kind = ?1");
	if (rc != 0)
		return rc;
	sqlite3_bind_int(st, 1, kind);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : VEIL_EIO;
	sqlite3_finalize(st);
	return rc;
}

int veil_contacts_qr_text(char out[static VEIL_QR_TEXT_LEN + 1],
                          const uint8_t id[static VEIL_ID_LEN],
                          const uint8_t pk[static VEIL_KEY_LEN])
{
	char hex[VEIL_HEX_LEN(VEIL_KEY_LEN)];
	if (!veil_id_valid(id) || veil_hex_encode(hex, sizeof hex, pk, VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	snprintf(out, VEIL_QR_TEXT_LEN + 1, "3mid:%.8s,%s", (const char *)id, hex);
	return 0;
}

int veil_contacts_qr_parse(const char *text, uint8_t id[static VEIL_ID_LEN],
                           uint8_t pk[static VEIL_KEY_LEN])
{
	char ids[VEIL_ID_LEN + 1];
	size_t n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	if (n != VEIL_QR_TEXT_LEN || strncmp(text, "3mid:", 5) != 0 || text[5 + VEIL_ID_LEN] != ',')
		return VEIL_EINVAL;
	memcpy(ids, text + 5, VEIL_ID_LEN);
	ids[VEIL_ID_LEN] = 0;
	if (veil_id_parse(id, ids) != 0 ||
	    veil_hex_decode(pk, VEIL_KEY_LEN, text + 6 + VEIL_ID_LEN, 2 * VEIL_KEY_LEN) != 0)
		return VEIL_EINVAL;
	return 0;
}
