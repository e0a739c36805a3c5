/*
 * File messages for the messenger: upload + JSON body on the way out,
 * download + decrypt + save on the way in (see client.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/client.h"
#include "veil/dir.h"
#include "veil/e2e.h"

#include "group_int.h"

int veil_msgr_blob_client(struct veil_msgr *m, struct veil_blob_client *bc, int want_token)
{
	struct veil_dir_provisioning prov;
	int rc = veil_dir_fetch_provisioning(m->prof.server_url, m->prof.sign_pk, m->prof.server_pk,
	                                     &prov);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot read the server's provisioning document: %s",
		                      veil_dir_errmsg());
	if (prov.blob_upload_url[0] == '\0')
		return veil_msgr_fail(m, VEIL_ENOTFOUND, "the server %s offers no blob service",
		                      m->prof.server_url);
	if (strlen(prov.blob_upload_url) >= sizeof bc->upload_url ||
	    strlen(prov.blob_download_url) >= sizeof bc->download_url ||
	    strlen(prov.blob_done_url) >= sizeof bc->done_url)
		return veil_msgr_fail(m, VEIL_ELIMIT, "blob URLs too long");
	snprintf(bc->upload_url, sizeof bc->upload_url, "%s", prov.blob_upload_url);
	snprintf(bc->download_url, sizeof bc->download_url, "%s", prov.blob_download_url);
	snprintf(bc->done_url, sizeof bc->done_url, "%s", prov.blob_done_url);
	if (want_token && (rc = veil_blob_cred(bc, m->prof.dir_url, m->prof.id, m->prof.sk)) != 0)
		return veil_msgr_fail(m, rc, "%s", bc->errtext);
	return 0;
}

static const char *guess_mime(const char *name)
{
	static const struct {
		const char *ext, *mime;
	} t[] = {
	    {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},     {"png", "image/png"},
	    {"gif", "image/gif"},         {"webp", "image/webp"},     {"heic", "image/heic"},
	    {"mp4", "video/mp4"},         {"mov", "video/quicktime"}, {"webm", "video/webm"},
	    {"mp3", "audio/mpeg"},        {"m4a", "audio/mp4"},       {"ogg", "audio/ogg"},
	    {"opus", "audio/ogg"},        {"aac", "audio/aac"},       {"wav", "audio/wav"},
	    {"pdf", "application/pdf"},   {"txt", "text/plain"},      {"zip", "application/zip"},
	    {"json", "application/json"}, {"html", "text/html"},      {"csv", "text/csv"},
	};
	const char *dot = strrchr(name, '.');
	if (dot != NULL)
		for (size_t i = 0; i < VEIL_ARRAY_LEN(t); i++)
			if (strcasecmp(dot + 1, t[i].ext) == 0)
				return t[i].mime;
	return "application/octet-stream";
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s != NULL ? s + 1 : path;
}

/*
 * Makes and uploads the thumbnail of a JPEG or PNG image (f->key set) and
 * fills f's thumbnail fields. An image that does not decode is sent
 * without a thumbnail (0); only a failed upload is an error.
 */
static int add_thumbnail(struct veil_msgr *m, struct veil_blob_client *bc, const char *path,
                         const char *mime, int persist, struct veil_e2e_file *f)
{
	char tmp[VEIL_PROFILE_PATH_MAX + 32];
	const char *tmime = NULL;
	uint32_t w, h;
	uint64_t tsize;
	if (strcmp(mime, "image/jpeg") != 0 && strcmp(mime, "image/png") != 0)
		return 0;
	/* The thumbnail is as private as the image: it goes in the profile, not /tmp. */
	int n = snprintf(tmp, sizeof tmp, "%s/.thumb.XXXXXX", m->prof.home);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return 0;
	int fd = mkstemp(tmp);
	if (fd < 0)
		return 0;
	close(fd);
	int rc = veil_thumb_make(path, mime, tmp, &tmime, &w, &h);
	if (rc != 0) {
		veil_log_debug("client: no thumbnail (%s)", veil_strerror(rc));
		(void)unlink(tmp);
		return 0;
	}
	/* The thumbnail's upload is not the file's: no progress for it. */
	void (*progress)(uint64_t, uint64_t, void *) = bc->progress;
	bc->progress = NULL;
	rc = veil_blob_upload(bc, tmp, f->key, VEIL_FILE_NONCE_THUMB, persist, f->thumb_blob_id,
	                      &tsize);
	bc->progress = progress;
	(void)unlink(tmp);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "thumbnail: %s", bc->errtext);
	f->has_thumb = 1;
	snprintf(f->thumb_mime, sizeof f->thumb_mime, "%s", tmime);
	snprintf(f->meta_json, sizeof f->meta_json, "{\"h\":%u,\"w\":%u}", (unsigned)h,
	         (unsigned)w);
	return 0;
}

int veil_msgr_file_upload(struct veil_msgr *m, const char *path, const struct veil_file_opts *o,
                          struct veil_buf *json)
{
	static const struct veil_file_opts none = {0};
	struct veil_blob_client *bc = NULL;
	struct veil_e2e_file *f = NULL;
	int rc;
	if (o == NULL)
		o = &none;
	const char *name = o->name != NULL ? o->name : base_name(path);
	const char *mime = o->mime != NULL ? o->mime : guess_mime(name);
	const char *caption = o->caption != NULL ? o->caption : "";
	if (strlen(name) > VEIL_FILE_NAME_MAX ||
	    !veil_utf8_valid((const uint8_t *)name, strlen(name)))
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "the file name is not UTF-8 of at most %d bytes",
		                      VEIL_FILE_NAME_MAX);
	if (strlen(caption) > VEIL_FILE_CAPTION_MAX ||
	    !veil_utf8_valid((const uint8_t *)caption, strlen(caption)))
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "the caption is not UTF-8 of at most %d bytes",
		                      VEIL_FILE_CAPTION_MAX);
	if (strlen(mime) == 0 || strlen(mime) > VEIL_FILE_MIME_MAX)
		return veil_msgr_fail(m, VEIL_EINVAL, "bad media type");
	bc = sodium_malloc(sizeof *bc);
	f = sodium_malloc(sizeof *f);
	if (bc == NULL || f == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	memset(bc, 0, sizeof *bc);
	memset(f, 0, sizeof *f);
	bc->progress = o->progress;
	bc->progress_ctx = o->progress_ctx;
	if ((rc = veil_msgr_blob_client(m, bc, 1)) != 0)
		goto out;
	veil_random(f->key, sizeof f->key);
	/*
	 * With other devices the blob persists (until the server's TTL): the
	 * recipient's "done" must not delete it before this identity's other
	 * devices fetched it from the reflected message.
	 */
	int persist = o->persist || m->prof.md;
	if ((rc = veil_blob_upload(bc, path, f->key, VEIL_FILE_NONCE_FILE, persist, f->blob_id,
	                           &f->size)) != 0) {
		rc = veil_msgr_fail(m, rc, "%s", bc->errtext);
		goto out;
	}
	if (!o->no_thumbnail && (rc = add_thumbnail(m, bc, path, mime, persist, f)) != 0)
		goto out;
	f->rendering = o->rendering;
	snprintf(f->mime, sizeof f->mime, "%s", mime);
	snprintf(f->name, sizeof f->name, "%s", name);
	snprintf(f->caption, sizeof f->caption, "%s", caption);
	if ((rc = veil_e2e_file_encode(json, f)) != 0)
		rc = veil_msgr_fail(m, rc, "cannot encode the file message: %s", veil_strerror(rc));
out:
	if (bc != NULL)
		sodium_free(bc);
	if (f != NULL)
		sodium_free(f);
	return rc;
}

int veil_msgr_send_file(struct veil_msgr *m, const uint8_t to[static VEIL_ID_LEN], const char *path,
                        const struct veil_file_opts *o, uint64_t *msg_id)
{
	struct veil_buf json;
	*msg_id = 0;
	veil_buf_init_secret(&json, VEIL_FILE_JSON_MAX);
	int rc = veil_msgr_file_upload(m, path, o, &json);
	if (rc == 0)
		rc = veil_msgr_send_body(m, to, VEIL_E2E_FILE, json.p, json.len, msg_id);
	veil_buf_release(&json);
	return rc;
}

/* A file name safe to create in a directory: no separators, controls, or leading dots. */
static void safe_name(char *out, size_t cap, const char *name, const uint8_t *blob_id)
{
	size_t o = 0;
	for (const char *p = name; *p != '\0' && o + 1 < cap; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f)
			c = '_';
		if (o == 0 && c == '.')
			c = '_';
		out[o++] = (char)c;
	}
	out[o] = '\0';
	/* Cut at a UTF-8 boundary if truncated. */
	while (o > 0 && !veil_utf8_valid((const uint8_t *)out, o))
		out[--o] = '\0';
	if (o == 0) {
		char hex[VEIL_HEX_LEN(VEIL_BLOB_ID_LEN)];
		if (veil_hex_encode(hex, sizeof hex, blob_id, VEIL_BLOB_ID_LEN) != 0)
			hex[0] = '\0';
		snprintf(out, cap, "file-%s", hex);
	}
}

int veil_msgr_file_download(struct veil_msgr *m, const uint8_t *json, size_t len, const char *dir,
                            int mark_done,
                            void (*progress)(uint64_t done, uint64_t total, void *ctx),
                            void *progress_ctx, char *out_path, size_t out_cap)
{
	struct veil_blob_client *bc = NULL;
	struct veil_e2e_file *f = NULL;
	char name[200], path[VEIL_PROFILE_PATH_MAX];
	int rc;
	if (out_cap > 0)
		out_path[0] = '\0';
	bc = sodium_malloc(sizeof *bc);
	f = sodium_malloc(sizeof *f);
	if (bc == NULL || f == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	memset(bc, 0, sizeof *bc);
	if ((rc = veil_e2e_file_decode(json, len, f)) != 0) {
		rc = veil_msgr_fail(m, rc, "malformed file message");
		goto out;
	}
	bc->progress = progress;
	bc->progress_ctx = progress_ctx;
	if ((rc = veil_msgr_blob_client(m, bc, 0)) != 0)
		goto out;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = veil_msgr_fail(m, VEIL_EIO, "cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	safe_name(name, sizeof name, f->name, f->blob_id);
	const char *dot = strrchr(name, '.');
	size_t stem = dot != NULL && dot != name ? (size_t)(dot - name) : strlen(name);
	for (int i = 0;; i++) {
		int n = i == 0 ? snprintf(path, sizeof path, "%s/%s", dir, name)
		               : snprintf(path, sizeof path, "%s/%.*s (%d)%s", dir, (int)stem, name,
		                          i, name + stem);
		if (n < 0 || (size_t)n >= sizeof path) {
			rc = veil_msgr_fail(m, VEIL_ELIMIT, "download path too long");
			goto out;
		}
		struct stat sb;
		if (lstat(path, &sb) == 0) {
			rc = VEIL_EEXIST;
		} else {
			rc = veil_blob_download(bc, f->blob_id, f->key, VEIL_FILE_NONCE_FILE,
			                        f->size, path);
			if (rc != VEIL_EEXIST)
				break;
		}
		if (i >= 999) {
			rc = veil_msgr_fail(m, VEIL_EEXIST, "too many files named %s in %s", name,
			                    dir);
			goto out;
		}
	}
	if (rc != 0) {
		rc = veil_msgr_fail(m, rc, "%s", bc->errtext);
		goto out;
	}
	if (out_cap > 0)
		snprintf(out_path, out_cap, "%s", path);
	/*
	 * The file is safe on disk; a failed "done" only leaves the blob to
	 * expire. With other devices (a device group) it is not marked done:
	 * they may not have fetched it yet, and it expires on the server.
	 */
	if (mark_done && !m->prof.md && veil_blob_done(bc, f->blob_id) != 0)
		veil_log_debug("client: marking a blob done failed");
	rc = 0;
out:
	if (bc != NULL)
		sodium_free(bc);
	if (f != NULL)
		sodium_free(f);
	return rc;
}

int veil_msgr_thumb_download(struct veil_msgr *m, const uint8_t *json, size_t len,
                             const char *file_path, int mark_done, char *out_path, size_t out_cap)
{
	struct veil_blob_client *bc = NULL;
	struct veil_e2e_file *f = NULL;
	char path[VEIL_PROFILE_PATH_MAX];
	int rc;
	if (out_cap > 0)
		out_path[0] = '\0';
	bc = sodium_malloc(sizeof *bc);
	f = sodium_malloc(sizeof *f);
	if (bc == NULL || f == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	memset(bc, 0, sizeof *bc);
	if ((rc = veil_e2e_file_decode(json, len, f)) != 0) {
		rc = veil_msgr_fail(m, rc, "malformed file message");
		goto out;
	}
	if (!f->has_thumb) {
		rc = veil_msgr_fail(m, VEIL_ENOTFOUND, "the file message has no thumbnail");
		goto out;
	}
	const char *ext = strcmp(f->thumb_mime, "image/jpeg") == 0  ? "jpg"
	                  : strcmp(f->thumb_mime, "image/png") == 0 ? "png"
	                                                            : "bin";
	int n = snprintf(path, sizeof path, "%s.thumb.%s", file_path, ext);
	if (n < 0 || (size_t)n >= sizeof path) {
		rc = veil_msgr_fail(m, VEIL_ELIMIT, "thumbnail path too long");
		goto out;
	}
	if ((rc = veil_msgr_blob_client(m, bc, 0)) != 0)
		goto out;
	/* A thumbnail is small: a size bound instead of the file's size. */
	bc->size_is_bound = 1;
	rc = veil_blob_download(bc, f->thumb_blob_id, f->key, VEIL_FILE_NONCE_THUMB,
	                        VEIL_THUMB_BLOB_MAX, path);
	if (rc != 0) {
		rc = veil_msgr_fail(m, rc, "thumbnail: %s", bc->errtext);
		goto out;
	}
	if (out_cap > 0)
		snprintf(out_path, out_cap, "%s", path);
	if (mark_done && !m->prof.md && veil_blob_done(bc, f->thumb_blob_id) != 0)
		veil_log_debug("client: marking a thumbnail blob done failed");
out:
	if (bc != NULL)
		sodium_free(bc);
	if (f != NULL)
		sodium_free(f);
	return rc;
}
