/* The body of a bulk lookup (POST lookup/bulk), bounded; see gateway.h. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway.h"

/* Reads one array of 64-hex-digit hashes into out[*n..]; 0 or the error to return. */
static int take(json_t *arr, uint8_t (*out)[32], size_t *n, size_t *total)
{
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return VEIL_EPROTO;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v))
			return VEIL_EPROTO;
		if (*total >= VEIL_GW_BULK_MAX)
			return VEIL_ELIMIT;
		const char *s = json_string_value(v);
		if (json_string_length(v) != 64 || veil_hex_decode(out[*n], 32, s, 64) != 0)
			return VEIL_EPROTO;
		(*n)++;
		(*total)++;
	}
	return 0;
}

int veil_gw_bulk_parse(const uint8_t *body, size_t len, struct veil_gw_bulk *out)
{
	memset(out, 0, sizeof *out);
	if (veil_json_depth_ok(body, len, 3) != 0)
		return VEIL_EPROTO;
	json_error_t err;
	json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return VEIL_EPROTO;
	}
	json_t *ph = json_object_get(root, "phoneHashes"),
	       *em = json_object_get(root, "emailHashes");
	size_t np = json_is_array(ph) ? json_array_size(ph) : 0;
	size_t ne = json_is_array(em) ? json_array_size(em) : 0;
	int rc = 0;
	if (np > VEIL_GW_BULK_MAX || ne > VEIL_GW_BULK_MAX || np + ne > VEIL_GW_BULK_MAX)
		rc = VEIL_ELIMIT;
	if (rc == 0 && np > 0 && (out->phone = calloc(np, 32)) == NULL)
		rc = VEIL_ENOMEM;
	if (rc == 0 && ne > 0 && (out->email = calloc(ne, 32)) == NULL)
		rc = VEIL_ENOMEM;
	size_t total = 0;
	if (rc == 0)
		rc = take(ph, out->phone, &out->nphone, &total);
	if (rc == 0)
		rc = take(em, out->email, &out->nemail, &total);
	json_decref(root);
	if (rc != 0)
		veil_gw_bulk_free(out);
	return rc;
}

void veil_gw_bulk_free(struct veil_gw_bulk *b)
{
	free(b->phone);
	free(b->email);
	memset(b, 0, sizeof *b);
}
