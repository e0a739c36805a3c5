/* Helpers shared by the files of lib/dir (not part of the public API). */
#ifndef VEIL_DIR_INT_H
#define VEIL_DIR_INT_H

#include <jansson.h>

#include "veil/dir.h"

#define VEIL_DIR_MAX_DEPTH 8    /* JSON nesting accepted in an answer */
#define VEIL_DIR_MAX_TOKEN 1024 /* largest challenge token accepted */

/* Records a message for veil_dir_errmsg() and returns rc. */
int veil_dir_fail(int rc, const char *fmt, ...) VEIL_PRINTF(2, 3);
void veil_dir_clear_err(void);
/* Loads a JSON object with bounded size and depth. */
int veil_dir_json_load(const uint8_t *p, size_t len, json_t **out);
int veil_dir_json_b64(json_t *obj, const char *name, uint8_t *out, size_t want);
int veil_dir_json_id(json_t *obj, const char *name, uint8_t out[static VEIL_ID_LEN]);
int veil_dir_identity_from_json(json_t *obj, struct veil_dir_identity *out);
/*
 * POSTs req (JSON) to dir_url/endpoint; on HTTP 200 with a JSON object
 * that is not {success:false}, *out owns the parsed answer. Errors as in
 * dir.h, with what naming the call in the message.
 */
int veil_dir_post(const char *dir_url, const char *endpoint, json_t *req, const char *what,
                  json_t **out);

/*
 * Runs both phases of the challenge for req against endpoint: phase 1 posts
 * req, phase 2 posts it again with the token and the response computed with
 * sk. If linked is not NULL and phase 1 answers {linked: true}, stops there
 * with *linked = 1. *out owns the final answer.
 */
int veil_dir_auth_post(const char *dir_url, const char *endpoint, json_t *req,
                       const uint8_t sk[static VEIL_KEY_LEN], const char *what, int *linked,
                       json_t **out);

#endif
