/*
 * The provisioning document, served at /.well-known/veil/provisioning, in
 * the spirit of the specification's OnPrem provisioning file (OPPF): a JSON
 * object, a line feed, and the base64 Ed25519 signature over the exact JSON
 * bytes. Field names follow OPPF where it has them:
 *
 *   version        "1.0"
 *   signatureKey   base64 Ed25519 public key that signs this document
 *   refresh        seconds until a client should fetch it again
 *   serverName     the server's public host name (a Veil addition)
 *   chat           {hostname, ports: [port], publicKey: base64 X25519 key}
 *   directory      {url: base URL of the directory, ending with "/"}
 *   blob           {uploadUrl, downloadUrl, doneUrl}
 *   gateway        {url: base URL of the Gateway message API, no trailing "/";
 *                  a Veil addition: the published API's clients take it as
 *                  their base URL}
 *
 * Services that do not exist yet (blob, safe, mediator...) are omitted, not
 * given placeholders. The document is built and signed once at start.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "directory.h"

/* Writes host for use in a URL: IPv6 literals get brackets. */
static void url_host(char *out, size_t cap, const char *host)
{
	if (strchr(host, ':') != NULL)
		snprintf(out, cap, "[%s]", host);
	else
		snprintf(out, cap, "%s", host);
}

int veil_dirsvc_provisioning_build(const struct veil_server *srv, uint16_t port,
                                   struct veil_buf *out)
{
	const struct veil_config *cfg = &srv->cfg;
	const char *host = cfg->public_host[0] != '\0' ? cfg->public_host : cfg->listen;
	char uhost[300], dir_url[400], blob_up[400], blob_down[400], blob_done[400], gw_url[400];
	char sign_b64[VEIL_B64_LEN(32)], csp_b64[VEIL_B64_LEN(32)];
	char sig_b64[VEIL_B64_LEN(crypto_sign_BYTES)];
	uint8_t sig[crypto_sign_BYTES];
	char *text = NULL;
	int rc = VEIL_EPROTO;

	url_host(uhost, sizeof uhost, host);
	snprintf(dir_url, sizeof dir_url, "http://%s:%u/directory/", uhost, (unsigned)port);
	/* The blob service (srv/blob), with OPPF's {blobId} placeholder. */
	snprintf(blob_up, sizeof blob_up, "http://%s:%u/blob/upload", uhost, (unsigned)port);
	snprintf(blob_down, sizeof blob_down, "http://%s:%u/blob/{blobId}", uhost, (unsigned)port);
	snprintf(blob_done, sizeof blob_done, "http://%s:%u/blob/{blobId}/done", uhost,
	         (unsigned)port);
	snprintf(gw_url, sizeof gw_url, "http://%s:%u/gateway", uhost, (unsigned)port);
	if (veil_b64_encode(sign_b64, sizeof sign_b64, srv->keys.sign_pk, 32) != 0 ||
	    veil_b64_encode(csp_b64, sizeof csp_b64, srv->keys.csp_pk, VEIL_KEY_LEN) != 0)
		goto out;
	json_t *doc = json_pack(
	    "{s:s, s:s, s:i, s:s, s:{s:s, s:[i], s:s}, s:{s:s}}", "version", "1.0", "signatureKey",
	    sign_b64, "refresh", VEIL_DIRSVC_OPPF_REFRESH, "serverName", host, "chat", "hostname",
	    host, "ports", (int)cfg->chat_port, "publicKey", csp_b64, "directory", "url", dir_url);
	if (doc != NULL && cfg->data_dir[0] != '\0' &&
	    json_object_set_new(doc, "blob",
	                        json_pack("{s:s, s:s, s:s}", "uploadUrl", blob_up, "downloadUrl",
	                                  blob_down, "doneUrl", blob_done)) != 0) {
		json_decref(doc);
		doc = NULL;
	}
	if (doc != NULL && cfg->data_dir[0] != '\0' &&
	    json_object_set_new(doc, "gateway", json_pack("{s:s}", "url", gw_url)) != 0) {
		json_decref(doc);
		doc = NULL;
	}
	if (doc == NULL)
		goto out;
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL)
		goto out;
	size_t n = strlen(text);
	if (crypto_sign_detached(sig, NULL, (const unsigned char *)text, n, srv->keys.sign_sk) !=
	        0 ||
	    veil_b64_encode(sig_b64, sizeof sig_b64, sig, sizeof sig) != 0) {
		rc = VEIL_ECRYPTO;
		goto out;
	}
	veil_buf_reset(out);
	rc = veil_buf_append(out, text, n);
	if (rc == 0)
		rc = veil_buf_append_u8(out, '\n');
	if (rc == 0)
		rc = veil_buf_append(out, sig_b64, strlen(sig_b64));
out:
	free(text);
	return rc;
}
