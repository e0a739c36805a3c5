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
 *   chat           {hostname, ports: [port], publicKey: base64 X25519 key,
 *                  addresses: [{hostname, port}] every chat node in the order
 *                  clients try them (a Veil addition, with --chat-address)}
 *   directory      {url: base URL of the directory, ending with "/"}
 *   blob           {uploadUrl, downloadUrl, doneUrl} (with a data directory)
 *   mediator       {url: ws(s):// base URL of the mediator, ending with "/"}
 *   rendezvous     {url: ws(s):// base URL of the rendezvous relay, ending with "/"}
 *   safe           {url: base URL of the Safe backup server, ending with "/"}
 *                  (with a data directory and --safe-max-size above 0)
 *   gateway        {url: base URL of the Gateway message API, no trailing "/";
 *                  a Veil addition: the published API's clients take it as
 *                  their base URL}
 *
 * Clients use exactly these endpoints after their first fetch, so they
 * name the services as clients reach them: below --public-url (a TLS proxy,
 * say) and at --public-chat when set, else at the listeners themselves.
 *
 * OPPF's mediator entry also has a blob mirror, which Veil does not run
 * yet; it is omitted, as are services that do not exist yet,
 * rather than given placeholders. The document is built and signed once at
 * start.
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

/*
 * The host of a URL that veil_config_parse_public_url accepted, without an
 * IPv6 literal's brackets.
 */
static int url_hostname(char *out, size_t cap, const char *url)
{
	const char *h = strstr(url, "://");
	if (h == NULL)
		return VEIL_EINVAL;
	h += 3;
	size_t n;
	if (*h == '[') {
		h++;
		n = strcspn(h, "]");
	} else {
		n = strcspn(h, ":/");
	}
	if (n == 0 || n >= cap)
		return VEIL_EINVAL;
	memcpy(out, h, n);
	out[n] = '\0';
	return 0;
}

int veil_dirsvc_provisioning_build(const struct veil_server *srv, uint16_t port,
                                   struct veil_buf *out)
{
	const struct veil_config *cfg = &srv->cfg;
	char url_name[256];
	const char *host = cfg->listen;
	if (cfg->public_host[0] != '\0')
		host = cfg->public_host;
	else if (cfg->public_url[0] != '\0' &&
	         url_hostname(url_name, sizeof url_name, cfg->public_url) == 0)
		host = url_name;
	const char *chat_host = cfg->public_chat_host[0] != '\0' ? cfg->public_chat_host : host;
	unsigned chat_port = cfg->public_chat_port != 0 ? cfg->public_chat_port : cfg->chat_port;
	char uhost[300], base[VEIL_PUBLIC_URL_MAX + 16];
	char dir_url[VEIL_PUBLIC_URL_MAX + 48], blob_up[VEIL_PUBLIC_URL_MAX + 48];
	char blob_down[VEIL_PUBLIC_URL_MAX + 48], blob_done[VEIL_PUBLIC_URL_MAX + 48];
	char md_url[VEIL_PUBLIC_URL_MAX + 48], rdv_url[VEIL_PUBLIC_URL_MAX + 48];
	char gw_url[VEIL_PUBLIC_URL_MAX + 48], safe_url[VEIL_PUBLIC_URL_MAX + 48];
	char sign_b64[VEIL_B64_LEN(32)], csp_b64[VEIL_B64_LEN(32)];
	char sig_b64[VEIL_B64_LEN(crypto_sign_BYTES)];
	uint8_t sig[crypto_sign_BYTES];
	char *text = NULL;
	int rc = VEIL_EPROTO;

	/* Every HTTP endpoint below one base: the public URL, else the listener itself. */
	if (cfg->public_url[0] != '\0') {
		snprintf(base, sizeof base, "%s", cfg->public_url);
	} else {
		url_host(uhost, sizeof uhost,
		         cfg->public_host[0] != '\0' ? cfg->public_host : cfg->listen);
		snprintf(base, sizeof base, "http://%s:%u", uhost, (unsigned)port);
	}
	snprintf(dir_url, sizeof dir_url, "%s/directory/", base);
	/* The blob service (srv/blob), with OPPF's {blobId} placeholder. */
	snprintf(blob_up, sizeof blob_up, "%s/blob/upload", base);
	snprintf(blob_down, sizeof blob_down, "%s/blob/{blobId}", base);
	snprintf(blob_done, sizeof blob_done, "%s/blob/{blobId}/done", base);
	snprintf(gw_url, sizeof gw_url, "%s/gateway", base);
	snprintf(safe_url, sizeof safe_url, "%s/safe/", base);
	/*
	 * The WebSocket services (srv/mediator, srv/rendezvous) on the same
	 * listener, below the same base: ws for http, wss for https.
	 */
	{
		int tls = strncmp(base, "https://", 8) == 0;
		const char *rest = base + (tls ? 8 : strncmp(base, "http://", 7) == 0 ? 7 : 0);
		snprintf(md_url, sizeof md_url, "%s%s/mediator/", tls ? "wss://" : "ws://", rest);
		snprintf(rdv_url, sizeof rdv_url, "%s%s/rendezvous/", tls ? "wss://" : "ws://",
		         rest);
	}
	if (veil_b64_encode(sign_b64, sizeof sign_b64, srv->keys.sign_pk, 32) != 0 ||
	    veil_b64_encode(csp_b64, sizeof csp_b64, srv->keys.csp_pk, VEIL_KEY_LEN) != 0)
		goto out;
	json_t *doc = json_pack(
	    "{s:s, s:s, s:i, s:s, s:{s:s, s:[i], s:s}, s:{s:s}}", "version", "1.0", "signatureKey",
	    sign_b64, "refresh", VEIL_DIRSVC_OPPF_REFRESH, "serverName", host, "chat", "hostname",
	    chat_host, "ports", (int)chat_port, "publicKey", csp_b64, "directory", "url", dir_url);
	if (doc != NULL && cfg->data_dir[0] != '\0' &&
	    json_object_set_new(doc, "blob",
	                        json_pack("{s:s, s:s, s:s}", "uploadUrl", blob_up, "downloadUrl",
	                                  blob_down, "doneUrl", blob_done)) != 0) {
		json_decref(doc);
		doc = NULL;
	}
	if (doc != NULL &&
	    (json_object_set_new(doc, "mediator", json_pack("{s:s}", "url", md_url)) != 0 ||
	     json_object_set_new(doc, "rendezvous", json_pack("{s:s}", "url", rdv_url)) != 0 ||
	     (cfg->data_dir[0] != '\0' &&
	      json_object_set_new(doc, "gateway", json_pack("{s:s}", "url", gw_url)) != 0) ||
	     (cfg->data_dir[0] != '\0' && cfg->safe_max_size > 0 &&
	      json_object_set_new(doc, "safe", json_pack("{s:s}", "url", safe_url)) != 0))) {
		json_decref(doc);
		doc = NULL;
	}
	/*
	 * --chat-address: every chat node, in the order clients try them, beside
	 * the single hostname/ports entry that older clients read.
	 */
	if (doc != NULL && cfg->n_chat_addrs > 0) {
		json_t *list = json_array();
		for (uint32_t i = 0; list != NULL && i < cfg->n_chat_addrs; i++)
			if (json_array_append_new(
			        list, json_pack("{s:s, s:i}", "hostname", cfg->chat_addrs[i].host,
			                        "port", (int)cfg->chat_addrs[i].port)) != 0) {
				json_decref(list);
				list = NULL;
			}
		if (list == NULL ||
		    json_object_set_new(json_object_get(doc, "chat"), "addresses", list) != 0) {
			json_decref(doc);
			doc = NULL;
		}
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
