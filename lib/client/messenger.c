/*
 * The messenger: what a client does for its user, on top of the profile,
 * the directory client, the E2E codec and a CSP connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "veil/client.h"
#include "veil/dir.h"
#include "veil/e2e.h"

#include "group_int.h"
#include "md_int.h"
#include "recv_int.h"

/* How long receive waits for the acks of its receipts at the end. */
#define RECEIPT_FLUSH_MS 5000

int veil_msgr_fail(struct veil_msgr *m, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->errtext, sizeof m->errtext, fmt, ap);
	va_end(ap);
	return rc;
}

static void msgr_defaults(struct veil_msgr *m)
{
	memset(m, 0, sizeof *m);
	m->client_info = VEIL_MSGR_CLIENT_INFO;
	m->send_timeout_ms = VEIL_MSGR_SEND_TIMEOUT_MS;
	m->connect_timeout_ms = VEIL_MSGR_CONNECT_TIMEOUT_MS;
}

const char *veil_msgr_type_name(uint8_t type)
{
	switch (type) {
	case VEIL_E2E_TEXT: return "text";
	case VEIL_E2E_IMAGE: return "image";
	case VEIL_E2E_LOCATION: return "location";
	case VEIL_E2E_VIDEO: return "video";
	case VEIL_E2E_AUDIO: return "audio";
	case VEIL_E2E_POLL_SETUP: return "poll";
	case VEIL_E2E_POLL_VOTE: return "poll-vote";
	case VEIL_E2E_FILE: return "file";
	case VEIL_E2E_CONTACT_SET_PICTURE: return "profile-picture";
	case VEIL_E2E_CONTACT_DELETE_PICTURE: return "profile-picture-deleted";
	case VEIL_E2E_CONTACT_REQUEST_PICTURE: return "profile-picture-request";
	case VEIL_E2E_DELIVERY_RECEIPT: return "receipt";
	case VEIL_E2E_REACTION: return "reaction";
	case VEIL_E2E_TYPING: return "typing";
	case VEIL_E2E_EDIT: return "edit";
	case VEIL_E2E_DELETE: return "delete";
	case VEIL_E2E_CALL_OFFER: return "call-offer";
	case VEIL_E2E_CALL_ANSWER: return "call-answer";
	case VEIL_E2E_CALL_ICE_CANDIDATE: return "call-ice-candidate";
	case VEIL_E2E_CALL_HANGUP: return "call-hangup";
	case VEIL_E2E_CALL_RINGING: return "call-ringing";
	case VEIL_E2E_GROUP_TEXT: return "group-text";
	case VEIL_E2E_GROUP_LOCATION: return "group-location";
	case VEIL_E2E_GROUP_IMAGE: return "group-image";
	case VEIL_E2E_GROUP_VIDEO: return "group-video";
	case VEIL_E2E_GROUP_AUDIO: return "group-audio";
	case VEIL_E2E_GROUP_FILE: return "group-file";
	case VEIL_E2E_GROUP_CALL_START: return "group-call";
	case VEIL_E2E_GROUP_SET_PICTURE: return "group-picture";
	case VEIL_E2E_GROUP_DELETE_PICTURE: return "group-picture-deleted";
	case VEIL_E2E_GROUP_POLL_SETUP: return "group-poll";
	case VEIL_E2E_GROUP_POLL_VOTE: return "group-poll-vote";
	case VEIL_E2E_GROUP_REACTION: return "group-reaction";
	case VEIL_E2E_GROUP_EDIT: return "group-edit";
	case VEIL_E2E_GROUP_DELETE: return "group-delete";
	case VEIL_E2E_GROUP_SETUP: return "group-setup";
	case VEIL_E2E_GROUP_NAME: return "group-name";
	case VEIL_E2E_GROUP_LEAVE: return "group-leave";
	case VEIL_E2E_GROUP_SYNC_REQUEST: return "group-sync-request";
	case VEIL_E2E_GROUP_DELIVERY_RECEIPT: return "group-receipt";
	case VEIL_E2E_FS_ENVELOPE: return "fs-envelope";
	case VEIL_E2E_EMPTY: return "empty";
	default: return NULL;
	}
}

/* --- profile lifecycle --- */

static int profile_present(const char *home)
{
	char path[VEIL_PROFILE_PATH_MAX + 32];
	struct stat st;
	int n = snprintf(path, sizeof path, "%s/profile.json", home);
	return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0;
}

int veil_msgr_open(struct veil_msgr *m, const char *home)
{
	msgr_defaults(m);
	int rc = veil_profile_open(&m->prof, home);
	if (rc == 0 && veil_dir_set_ca_file(m->prof.ca_file) != 0) {
		veil_profile_release(&m->prof);
		rc = VEIL_ELIMIT;
	}
	switch (rc) {
	case 0: return 0;
	case VEIL_ENOTFOUND:
		return veil_msgr_fail(
		    m, rc, "not initialised: no profile in %s (run 'veil init --server URL')",
		    home);
	case VEIL_EPROTO: return veil_msgr_fail(m, rc, "the profile in %s is damaged", home);
	case VEIL_ECORRUPT:
		return veil_msgr_fail(m, rc,
		                      "the store of the profile in %s is damaged (or its store.key "
		                      "does not belong to it)",
		                      home);
	case VEIL_EPASS:
		return veil_msgr_fail(m, rc, "wrong passphrase for the profile in %s", home);
	case VEIL_ELOCKED:
		return veil_msgr_fail(
		    m, rc,
		    "the profile in %s has a passphrase: type it on a terminal, or "
		    "name a file holding it in VEIL_PASSPHRASE_FILE",
		    home);
	case VEIL_EPLAIN:
		return veil_msgr_fail(
		    m, rc,
		    "the profile in %s is in the old, plaintext format: convert it "
		    "with 'veil passphrase set' (or 'veil passphrase remove' for "
		    "no passphrase)",
		    home);
	case VEIL_EIO:
		return veil_msgr_fail(
		    m, rc, "cannot open the profile in %s (is its store.key private, mode 0600?)",
		    home);
	default:
		return veil_msgr_fail(m, rc, "cannot open the profile in %s: %s", home,
		                      veil_strerror(rc));
	}
}

void veil_msgr_close(struct veil_msgr *m)
{
	veil_msgr_session_stop(m);
	veil_profile_release(&m->prof);
}

/* Reads --cacert's bundle and uses it for the requests of init; messages in m. */
static int init_ca(struct veil_msgr *m, const char *path, uint8_t **pem, size_t *len)
{
	int rc = veil_profile_ca_read(path, pem, len);
	switch (rc) {
	case 0: break;
	case VEIL_ENOTFOUND: return veil_msgr_fail(m, rc, "no CA file %s", path);
	case VEIL_ELIMIT:
		return veil_msgr_fail(m, rc, "the CA file %s is larger than %d bytes", path,
		                      VEIL_PROFILE_CA_MAX);
	case VEIL_EPROTO:
		return veil_msgr_fail(m, rc, "the CA file %s holds no PEM certificate", path);
	default: return veil_msgr_fail(m, rc, "cannot read the CA file %s", path);
	}
	if (veil_dir_set_ca_file(path) != 0) {
		free(*pem);
		*pem = NULL;
		return veil_msgr_fail(m, VEIL_ELIMIT, "the CA file's path is too long");
	}
	return 0;
}

int veil_msgr_init_server_int(struct veil_msgr *m, const char *home,
                              const struct veil_msgr_init_opts *o, uint8_t **ca_pem, size_t *ca_len)
{
	struct veil_dir_provisioning prov;
	struct veil_profile *p = &m->prof;
	const char *server_url = o->server_url;
	char url[VEIL_PROFILE_URL_MAX];
	int rc;

	*ca_pem = NULL;
	*ca_len = 0;
	msgr_defaults(m);
	size_t ulen = server_url != NULL ? strlen(server_url) : 0;
	while (ulen > 0 && server_url[ulen - 1] == '/')
		ulen--;
	if (ulen == 0 || ulen >= sizeof url)
		return veil_msgr_fail(m, VEIL_EINVAL, "invalid server URL");
	memcpy(url, server_url, ulen);
	url[ulen] = 0;
	if (profile_present(home))
		return veil_msgr_fail(m, VEIL_EEXIST, "already initialised: %s holds a profile",
		                      home);
	if (o->ca_file != NULL && (rc = init_ca(m, o->ca_file, ca_pem, ca_len)) != 0)
		return rc;
	/* Before the server is asked for an ID: a profile that cannot be saved orphans it. */
	if (veil_profile_check_home(home, m->errtext, sizeof m->errtext) != 0) {
		rc = VEIL_EIO;
		goto fail;
	}
	if ((rc = veil_profile_init(p, home)) != 0) {
		veil_msgr_fail(m, rc, "cannot prepare the profile: %s", veil_strerror(rc));
		goto fail;
	}
	rc = veil_dir_fetch_provisioning(url, NULL, o->server_key, &prov);
	if (rc != 0) {
		if (rc == VEIL_EKEY)
			veil_msgr_fail(m, rc,
			               "wrong server key: %s does not serve the key given with "
			               "--server-key",
			               url);
		else if (rc == VEIL_EIO)
			veil_msgr_fail(m, rc, "cannot reach server %s: %s", url, veil_dir_errmsg());
		else
			veil_msgr_fail(m, rc, "cannot use the provisioning of %s: %s", url,
			               veil_dir_errmsg()[0] ? veil_dir_errmsg()
			                                    : veil_strerror(rc));
		goto out;
	}
	snprintf(p->server_url, sizeof p->server_url, "%s", url);
	if (prov.directory_url[0] != 0)
		snprintf(p->dir_url, sizeof p->dir_url, "%s", prov.directory_url);
	else if (snprintf(p->dir_url, sizeof p->dir_url, "%s/directory/", url) >=
	         (int)sizeof p->dir_url) {
		rc = veil_msgr_fail(m, VEIL_ELIMIT, "server URL too long");
		goto out;
	}
	memcpy(p->sign_pk, prov.sign_pk, VEIL_KEY_LEN);
	memcpy(p->server_pk, prov.csp_pk, VEIL_KEY_LEN);
	snprintf(p->chat_host, sizeof p->chat_host, "%s", prov.chat_host);
	p->chat_port = prov.chat_port;
	for (size_t i = 0; i < prov.n_chat_addrs && i < VEIL_PROFILE_CHAT_ADDRS_MAX; i++) {
		snprintf(p->chat_addrs[i].host, sizeof p->chat_addrs[i].host, "%s",
		         prov.chat_addrs[i].host);
		p->chat_addrs[i].port = prov.chat_addrs[i].port;
		p->n_chat_addrs = i + 1;
	}
	/* Kept for a device that joins a group (saved with md.json only then). */
	if (strncmp(prov.mediator_url, "ws://", 5) == 0 ||
	    strncmp(prov.mediator_url, "wss://", 6) == 0)
		snprintf(p->md_url, sizeof p->md_url, "%s", prov.mediator_url);
	if (p->chat_host[0] == 0 || p->chat_port == 0)
		rc = veil_msgr_fail(m, VEIL_EPROTO, "the provisioning of %s names no chat server",
		                    url);
out:
	if (rc != 0)
		veil_profile_release(p);
fail:
	if (rc != 0) {
		free(*ca_pem);
		*ca_pem = NULL;
	}
	return rc;
}

int veil_msgr_init(struct veil_msgr *m, const char *home, const struct veil_msgr_init_opts *o)
{
	struct veil_profile *p = &m->prof;
	const char *nickname = o->nickname;
	uint8_t *ca_pem = NULL;
	size_t ca_len = 0;
	int rc;

	msgr_defaults(m);
	if (nickname != NULL && (strlen(nickname) > VEIL_PROFILE_NICK_MAX ||
	                         !veil_utf8_valid((const uint8_t *)nickname, strlen(nickname))))
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "the nickname must be UTF-8 of at most %d bytes",
		                      VEIL_PROFILE_NICK_MAX);
	if ((rc = veil_msgr_init_server_int(m, home, o, &ca_pem, &ca_len)) != 0)
		return rc;
	snprintf(p->nickname, sizeof p->nickname, "%s", nickname ? nickname : "");

	veil_keypair(p->pk, p->sk);
	rc = veil_dir_create_identity(p->dir_url, p->pk, p->sk, o->invite, p->id);
	if (rc != 0) {
		if (rc == VEIL_EIO)
			veil_msgr_fail(m, rc, "cannot reach the directory at %s: %s", p->dir_url,
			               veil_dir_errmsg());
		else
			veil_msgr_fail(m, rc, "the directory refused to create an identity: %s",
			               veil_dir_errmsg()[0] ? veil_dir_errmsg()
			                                    : veil_strerror(rc));
		goto out;
	}
	/* The CA bundle before profile.json, which marks a finished profile. */
	if (ca_pem != NULL && (rc = veil_profile_ca_write(p, ca_pem, ca_len)) != 0) {
		veil_msgr_fail(m, rc, "cannot write the CA file to %s: %s", home,
		               veil_strerror(rc));
		goto out;
	}
	rc = veil_profile_create(p);
	if (rc == VEIL_EEXIST)
		veil_msgr_fail(m, rc, "already initialised: %s holds a profile", home);
	else if (rc != 0)
		veil_msgr_fail(m, rc, "cannot write the profile to %s: %s", home,
		               veil_strerror(rc));
	else if (veil_dir_set_ca_file(p->ca_file) != 0)
		rc = veil_msgr_fail(m, VEIL_ELIMIT, "the profile's path is too long");
out:
	free(ca_pem);
	if (rc != 0)
		veil_profile_release(p);
	return rc;
}

/* --- contacts --- */

static int dir_lookup(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN],
                      uint8_t pk[static VEIL_KEY_LEN])
{
	struct veil_dir_identity di;
	char ids[VEIL_ID_LEN + 1];
	veil_id_str(ids, id);
	int rc = veil_dir_get_identity(m->prof.dir_url, id, &di);
	if (rc == VEIL_ENOTFOUND)
		return veil_msgr_fail(m, rc, "unknown ID %s", ids);
	if (rc == VEIL_EIO)
		return veil_msgr_fail(m, rc, "cannot reach the directory at %s: %s",
		                      m->prof.dir_url, veil_dir_errmsg());
	if (rc != 0)
		return veil_msgr_fail(m, rc, "directory lookup of %s failed: %s", ids,
		                      veil_dir_errmsg()[0] ? veil_dir_errmsg() : veil_strerror(rc));
	if (memcmp(di.id, id, VEIL_ID_LEN) != 0)
		return veil_msgr_fail(m, VEIL_EPROTO,
		                      "the directory answered for another ID than %s", ids);
	if (di.state == 2)
		return veil_msgr_fail(m, VEIL_ENOTFOUND, "unknown ID %s (revoked)", ids);
	memcpy(pk, di.pk, VEIL_KEY_LEN);
	return 0;
}

int veil_msgr_contact_add(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN],
                          const uint8_t *pk, struct veil_contact *out)
{
	struct veil_contact c;
	char ids[VEIL_ID_LEN + 1];
	int rc;
	memset(&c, 0, sizeof c);
	if (!veil_id_valid(id))
		return veil_msgr_fail(m, VEIL_EINVAL, "invalid ID");
	veil_id_str(ids, id);
	if (memcmp(id, m->prof.id, VEIL_ID_LEN) == 0)
		return veil_msgr_fail(m, VEIL_EINVAL, "%s is your own ID", ids);
	memcpy(c.id, id, VEIL_ID_LEN);
	if (pk != NULL)
		memcpy(c.pk, pk, VEIL_KEY_LEN);
	else if ((rc = dir_lookup(m, id, c.pk)) != 0)
		return rc;
	rc = veil_profile_contact_add(&m->prof, &c);
	if (rc == VEIL_EEXIST)
		return veil_msgr_fail(m, rc, "%s is already a contact", ids);
	if (rc == VEIL_EKEY)
		return veil_msgr_fail(m, rc, "%s is already a contact with a different public key",
		                      ids);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot store contact %s: %s", ids, veil_strerror(rc));
	if (out != NULL && veil_profile_contact_get(&m->prof, id, out) != 0)
		*out = c;
	return 0;
}

/* Finds a peer's key: the contacts first, else the directory (adding a contact). */
static int peer_get(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN],
                    struct veil_contact *c, int *is_new)
{
	*is_new = 0;
	int rc = veil_profile_contact_get(&m->prof, id, c);
	if (rc == 0)
		return 0;
	if (rc != VEIL_ENOTFOUND)
		return veil_msgr_fail(m, rc, "cannot read the contacts: %s", veil_strerror(rc));
	if ((rc = veil_msgr_contact_add(m, id, NULL, c)) != 0)
		return rc;
	*is_new = 1;
	return 0;
}

/* --- connections --- */

/*
 * The server refused our login. The usual reason is that the ID was
 * revoked: ask the directory, so that the user hears that rather than a
 * generic refusal.
 */
static int login_refused(struct veil_msgr *m, const struct veil_conn *c)
{
	struct veil_profile *p = &m->prof;
	struct veil_dir_identity di;
	char ids[VEIL_ID_LEN + 1];
	veil_id_str(ids, p->id);
	int d = veil_dir_get_identity(p->dir_url, p->id, &di);
	if (d == 0 && memcmp(di.id, p->id, VEIL_ID_LEN) == 0 && di.state == 2)
		return veil_msgr_fail(
		    m, VEIL_EAUTH,
		    "your ID %s has been revoked (the directory says so): it can "
		    "no longer log in, send or receive; 'veil init' makes a new one",
		    ids);
	if (d == VEIL_ENOTFOUND)
		return veil_msgr_fail(m, VEIL_EAUTH,
		                      "your ID %s is unknown to the server's directory (%s): the "
		                      "server refused the login",
		                      ids, p->dir_url);
	if (d == 0 && memcmp(di.id, p->id, VEIL_ID_LEN) == 0 &&
	    memcmp(di.pk, p->pk, VEIL_KEY_LEN) != 0)
		return veil_msgr_fail(m, VEIL_EAUTH,
		                      "the directory holds another public key for your ID %s: the "
		                      "server refused the login",
		                      ids);
	return veil_msgr_fail(m, VEIL_EAUTH, "server %s:%u refused the login of %s: %s",
	                      veil_profile_chat_host(p), veil_profile_chat_port(p), ids,
	                      c->errtext);
}

/* Through the mediator: the device group's keys and this device's IDs. */
static int conn_open_md(struct veil_msgr *m, struct veil_conn *c)
{
	struct veil_profile *p = &m->prof;
	struct veil_md_keys k;
	struct veil_md_params mp;
	int rc = veil_md_keys_derive(&k, p->md_dgk);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot derive the device group keys");
	memset(&mp, 0, sizeof mp);
	mp.url = p->md_url;
	mp.cacert = p->ca_file[0] != 0 ? p->ca_file : NULL; /* a private CA for wss:// */
	mp.keys = &k;
	mp.device_id = p->md_device_id;
	mp.csp_device_id = p->md_csp_device_id;
	mp.expect_new = !p->md_registered;
	mp.label = p->md_label;
	/* The specification's "connect anyway" for a clock the user cannot or will not set. */
	const char *skew = getenv("VEIL_IGNORE_CLOCK_SKEW");
	mp.ignore_clock_skew = skew != NULL && strcmp(skew, "1") == 0;
	rc = veil_conn_open_md(c, &mp, p->server_pk, p->id, p->sk, m->client_info,
	                       m->connect_timeout_ms);
	veil_md_keys_wipe(&k);
	if (rc == 0 && !p->md_registered) {
		/* From now on the mediator knows this device: the slot is EXISTING. */
		p->md_registered = 1;
		if (veil_profile_md_save(p) != 0)
			veil_log_debug("client: device registration not saved");
	}
	return rc;
}

/*
 * Straight to the chat server: with a list of chat nodes, each in turn from
 * the one that last took a login, until one does; a node that is down or
 * does not answer in time is passed over, an answer that every node would
 * give (wrong key, login refused, clock) ends the round. The caller backs
 * off between rounds.
 */
static int conn_open_chat(struct veil_msgr *m, struct veil_conn *c)
{
	struct veil_profile *p = &m->prof;
	size_t n = p->n_chat_addrs, first = p->chat_cur < n ? p->chat_cur : 0;
	if (n == 0)
		return veil_conn_open(c, p->chat_host, p->chat_port, p->server_pk, p->id, p->sk,
		                      m->client_info, m->connect_timeout_ms);
	int rc = VEIL_EIO;
	for (size_t k = 0; k < n; k++) {
		p->chat_cur = (first + k) % n;
		rc = veil_conn_open(c, p->chat_addrs[p->chat_cur].host,
		                    p->chat_addrs[p->chat_cur].port, p->server_pk, p->id, p->sk,
		                    m->client_info, m->connect_timeout_ms);
		if (rc == 0)
			return 0;
		if (rc != VEIL_EIO && rc != VEIL_ETIMEOUT && rc != VEIL_ECLOSED)
			break;
		veil_log_debug("client: chat node %u of %zu is not answering",
		               (unsigned)p->chat_cur + 1, n);
	}
	return rc;
}

static int session_opened(struct veil_msgr *m, struct veil_conn *c);

/*
 * Opens c (a session's connection: whoever opens it, a send reconnecting
 * included, starts the session's state of a new connection; see
 * session_opened).
 */
static int conn_open(struct veil_msgr *m, struct veil_conn *c)
{
	struct veil_profile *p = &m->prof;
	char ids[VEIL_ID_LEN + 1];
	int rc = p->md ? conn_open_md(m, c) : conn_open_chat(m, c);
	veil_id_str(ids, p->id);
	if (rc == VEIL_ECLOCK)
		return veil_msgr_fail(m, rc, "%s", c->errtext);
	if (rc != 0 && p->md && c->md_close_code != 0)
		return veil_msgr_fail(m, rc, "cannot connect through the mediator %s: %s",
		                      p->md_url, c->errtext);
	if (rc != 0 && p->md && (rc == VEIL_EIO || rc == VEIL_ETIMEOUT || rc == VEIL_EPROTO) &&
	    c->errtext[0] != 0)
		return veil_msgr_fail(m, rc, "cannot reach the mediator %s: %s", p->md_url,
		                      c->errtext);
	switch (rc) {
	case 0: return session_opened(m, c);
	case VEIL_EIO:
	case VEIL_ETIMEOUT:
		return veil_msgr_fail(m, rc, "cannot reach server %s:%u: %s",
		                      veil_profile_chat_host(p), veil_profile_chat_port(p),
		                      rc == VEIL_ETIMEOUT ? "timed out" : c->errtext);
	case VEIL_ECRYPTO:
		return veil_msgr_fail(
		    m, rc,
		    "wrong server key: the chat server %s:%u does not hold the pinned key (if its "
		    "operator changed it: 'veil server accept-key')",
		    veil_profile_chat_host(p), veil_profile_chat_port(p));
	case VEIL_EAUTH: return login_refused(m, c);
	default:
		return veil_msgr_fail(m, rc, "connection to %s:%u failed: %s",
		                      veil_profile_chat_host(p), veil_profile_chat_port(p),
		                      c->errtext[0] ? c->errtext : veil_strerror(rc));
	}
}

int veil_msgr_conn_open_int(struct veil_msgr *m, struct veil_conn *c)
{
	return conn_open(m, c);
}

uint64_t veil_msgr_left_ms(uint64_t deadline)
{
	uint64_t now = veil_mono_ms();
	return now >= deadline ? 0 : deadline - now;
}

int veil_msgr_profile_write_int(struct veil_msgr *m, struct veil_profile *p, const char *home,
                                const uint8_t *ca_pem, size_t ca_len)
{
	int rc;
	if (ca_pem != NULL && (rc = veil_profile_ca_write(p, ca_pem, ca_len)) != 0)
		return veil_msgr_fail(m, rc, "cannot write the CA file to %s: %s", home,
		                      veil_strerror(rc));
	if ((rc = veil_profile_create(p)) != 0)
		return veil_msgr_fail(m, rc, "cannot write the profile to %s: %s", home,
		                      veil_strerror(rc));
	return 0;
}

void veil_msgr_sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
	                      .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * Reconnects after a drop, with backoff, until deadline. Returns 0 when
 * connected again, else the last error (errtext set).
 */
static int reconnect(struct veil_msgr *m, struct veil_conn *c, struct veil_backoff *b,
                     uint64_t deadline)
{
	int rc = VEIL_ETIMEOUT;
	for (;;) {
		uint64_t d = veil_backoff_next(b);
		if (veil_msgr_left_ms(deadline) <= d)
			break;
		veil_msgr_sleep_ms(d);
		rc = conn_open(m, c);
		if (rc == 0 || rc == VEIL_ECRYPTO || rc == VEIL_EAUTH || rc == VEIL_ECLOCK)
			return rc;
	}
	if (rc == VEIL_ETIMEOUT)
		veil_msgr_fail(m, rc,
		               "lost the connection to %s:%u and could not reconnect in time",
		               veil_profile_chat_host(&m->prof), veil_profile_chat_port(&m->prof));
	return rc;
}

/* Turns a dropped connection into errtext; returns 1 if a reconnect may help. */
static int dropped(struct veil_msgr *m, struct veil_conn *c, int rc)
{
	if (rc == VEIL_ECLOSED && c->close_error) {
		veil_msgr_fail(m, rc, "server closed the connection: %s", c->errtext);
		return c->can_reconnect;
	}
	if (rc == VEIL_ECLOSED && c->md_close_code != 0) {
		veil_msgr_fail(m, rc, "the mediator closed the connection: %s", c->errtext);
		return c->can_reconnect;
	}
	veil_msgr_fail(m, rc, "lost the connection to %s:%u: %s", veil_profile_chat_host(&m->prof),
	               veil_profile_chat_port(&m->prof),
	               c->errtext[0] ? c->errtext : veil_strerror(rc));
	return rc == VEIL_ECLOSED || rc == VEIL_EIO || rc == VEIL_ETIMEOUT;
}

/* Seals one message for peer and appends it to out. */
static int seal(struct veil_msgr *m, struct veil_buf *out, const struct veil_contact *peer,
                uint64_t msg_id, uint64_t created_ms, uint8_t flags, uint8_t type,
                const uint8_t *body, size_t len)
{
	struct veil_e2e_out o;
	memset(&o, 0, sizeof o);
	memcpy(o.sender, m->prof.id, VEIL_ID_LEN);
	memcpy(o.receiver, peer->id, VEIL_ID_LEN);
	o.msg_id = msg_id;
	o.created_at_ms = created_ms;
	o.flags = flags;
	/* The nickname goes only with the types that distribute the user profile. */
	o.nickname = m->prof.nickname[0] && veil_e2e_distributes_profile(type, body, len)
	                 ? m->prof.nickname
	                 : NULL;
	o.type = type;
	return veil_e2e_seal(out, &o, m->prof.sk, peer->pk, body, len);
}

/* --- multi-device: reflecting to the other devices of the group --- */

/* How long a device whose queue ran dry waits to be promoted before it takes another as leader. */
#define MD_PROMOTE_WAIT_MS 1000
/* How long a reflect waits for the mediator's ack. */
#define MD_REFLECT_TIMEOUT_MS 15000

/*
 * Reflects d to the other devices and waits for the mediator's ack, which
 * says it is durable: only then may the caller act on it (ack the incoming
 * message to the chat service, send the outgoing one).
 */
static int md_reflect(struct veil_msgr *m, struct veil_conn *c, const struct veil_d2d_msg *d,
                      int wait)
{
	struct veil_buf env;
	uint32_t rid;
	veil_buf_init_secret(&env, VEIL_MD_ENVELOPE_PLAIN_MAX);
	int rc = veil_d2d_encode(&env, d, m->prof.md_device_id);
	if (rc == 0)
		rc = veil_conn_md_reflect(c, env.p, env.len, 0, &rid);
	veil_buf_release(&env);
	if (rc == 0 && wait)
		rc = veil_conn_md_wait_ack(c, rid, MD_REFLECT_TIMEOUT_MS, NULL);
	if (rc != 0 && rc != VEIL_ECLOSED)
		veil_msgr_fail(m, rc, "cannot reflect a message to the other devices: %s",
		               c->errtext[0] ? c->errtext : veil_strerror(rc));
	return rc;
}

int veil_msgr_md_reflect_int(struct veil_msgr *m, struct veil_conn *c, const struct veil_d2d_msg *d,
                             int wait)
{
	return md_reflect(m, c, d, wait);
}

/* Reflects an outgoing 1:1 message, with the nonce of its box. */
static int md_reflect_outgoing(struct veil_msgr *m, struct veil_conn *c,
                               const uint8_t to[static VEIL_ID_LEN], uint64_t id, uint64_t created,
                               uint8_t type, const uint8_t *body, size_t len,
                               const struct veil_buf *box)
{
	struct veil_msgbox mb;
	struct veil_d2d_msg d;
	memset(&d, 0, sizeof d);
	d.kind = VEIL_D2D_OUTGOING;
	memcpy(d.peer, to, VEIL_ID_LEN);
	d.msg_id = id;
	d.created_ms = created;
	d.type = type;
	d.body = body;
	d.body_len = len;
	if (veil_msgbox_parse(&mb, box->p, box->len) == 0) {
		d.nonces[0] = mb.nonce;
		d.n_nonces = 1;
	}
	return md_reflect(m, c, &d, 1);
}

/* --- send --- */

int veil_msgr_send_text(struct veil_msgr *m, const uint8_t to[static VEIL_ID_LEN], const char *text,
                        size_t len, uint64_t *msg_id)
{
	struct veil_buf body;
	int rc;

	*msg_id = 0;
	veil_buf_init_secret(&body, VEIL_E2E_TEXT_MAX + 1);
	if (len == 0)
		return veil_msgr_fail(m, VEIL_EINVAL, "empty message");
	if (len > VEIL_E2E_TEXT_MAX)
		return veil_msgr_fail(m, VEIL_ELIMIT, "message too long (%zu bytes, at most %d)",
		                      len, VEIL_E2E_TEXT_MAX);
	if (!veil_utf8_valid((const uint8_t *)text, len))
		return veil_msgr_fail(m, VEIL_EINVAL, "the message is not valid UTF-8 text");
	if ((rc = veil_e2e_text_encode(&body, text, len)) != 0) {
		veil_buf_release(&body);
		return veil_msgr_fail(m, rc, "cannot encode the text: %s", veil_strerror(rc));
	}
	rc = veil_msgr_send_body(m, to, VEIL_E2E_TEXT, body.p, body.len, msg_id);
	veil_buf_release(&body);
	return rc;
}

int veil_msgr_send_body(struct veil_msgr *m, const uint8_t to[static VEIL_ID_LEN], uint8_t msg_type,
                        const uint8_t *body, size_t body_len, uint64_t *msg_id)
{
	struct veil_contact peer;
	struct veil_buf box;
	struct veil_conn *c = NULL;
	struct veil_backoff b;
	char ids[VEIL_ID_LEN + 1];
	uint8_t *rx = NULL;
	int rc, is_new;

	*msg_id = 0;
	veil_buf_init(&box, VEIL_MSGBOX_MAX);
	if (body_len > VEIL_E2E_BODY_MAX)
		return veil_msgr_fail(m, VEIL_ELIMIT, "message too large (%zu bytes, at most %zu)",
		                      body_len, (size_t)VEIL_E2E_BODY_MAX);
	if (!veil_id_valid(to))
		return veil_msgr_fail(m, VEIL_EINVAL, "invalid ID");
	veil_id_str(ids, to);
	if (memcmp(to, m->prof.id, VEIL_ID_LEN) == 0)
		return veil_msgr_fail(m, VEIL_EINVAL, "cannot send a message to yourself (%s)",
		                      ids);
	if ((rc = peer_get(m, to, &peer, &is_new)) != 0)
		return rc;

	uint64_t id = veil_random_u64(), created = veil_now_ms();
	uint64_t deadline = veil_mono_ms() + (uint64_t)m->send_timeout_ms;
	/* A session's connection is borrowed (and left open), never a second login. */
	struct veil_conn *shared = veil_msgr_session_conn_int(m);
	c = shared != NULL ? shared : malloc(sizeof *c);
	rx = malloc(VEIL_CONN_MAX_DATA);
	if (c == NULL || rx == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	veil_backoff_init(&b, VEIL_BACKOFF_BASE_MS, VEIL_BACKOFF_MAX_MS);
	if ((shared == NULL || !veil_conn_is_open(c)) && (rc = conn_open(m, c)) != 0)
		goto out;
	int reflected = 0;
	for (;;) {
		/*
		 * Each attempt is sealed afresh (new nonce, same message ID): a
		 * receiver that got an earlier attempt drops this one as a
		 * duplicate ID rather than as a replayed nonce.
		 */
		veil_buf_reset(&box);
		if ((rc = seal(m, &box, &peer, id, created, VEIL_MSG_FLAG_PUSH, msg_type, body,
		               body_len)) != 0) {
			veil_msgr_fail(m, rc, "cannot encrypt the message: %s", veil_strerror(rc));
			goto out;
		}
		/* The other devices learn of it before the peer can (the specification's order). */
		rc = 0;
		if (c->md != NULL && !reflected &&
		    (rc = md_reflect_outgoing(m, c, to, id, created, msg_type, body, body_len,
		                              &box)) == 0)
			reflected = 1;
		if (rc == 0)
			rc = veil_conn_send_payload(c, VEIL_CSP_OUTGOING_MESSAGE, box.p, box.len);
		while (rc == 0) {
			uint8_t type, aid[VEIL_ID_LEN];
			uint64_t amid;
			size_t n;
			uint64_t l = veil_msgr_left_ms(deadline);
			if (l == 0) {
				rc = VEIL_ETIMEOUT;
				break;
			}
			rc = veil_conn_recv_payload(c, (int)l, &type, rx, &n);
			if (rc != 0)
				break;
			if (type == VEIL_CSP_OUTGOING_ACK &&
			    veil_csp_ack_parse(rx, n, aid, &amid) == 0 &&
			    memcmp(aid, to, VEIL_ID_LEN) == 0 && amid == id)
				goto acked;
			if (type == VEIL_CSP_ALERT) {
				char t[VEIL_CONN_ERRTEXT_MAX];
				size_t k = n < sizeof t - 1 ? n : sizeof t - 1;
				if (!veil_utf8_valid(rx, k))
					continue;
				memcpy(t, rx, k);
				t[k] = 0;
				/*
				 * The server reports a message it will not deliver only in
				 * an alert's text, never with an ack: an alert that names
				 * the receiver while we wait for our ack is taken as that
				 * refusal, rather than waiting out the deadline.
				 */
				if (strstr(t, ids) != NULL) {
					rc = veil_msgr_fail(
					    m, VEIL_EAUTH, "the server refused the message: %s", t);
					goto out;
				}
				if (m->alert_fn != NULL)
					m->alert_fn(t, m->alert_ctx);
				continue;
			}
			/*
			 * Without a session incoming messages stay queued for `veil
			 * recv`: we do not ack them. With one they are received here.
			 * So do reflected ones: unacked, the mediator keeps them.
			 */
			if (veil_msgr_session_payload_int(m, c, type, rx, n) != 0 &&
			    !veil_conn_is_open(c)) {
				rc = VEIL_ECLOSED;
				break;
			}
		}
		if (rc == VEIL_ETIMEOUT) {
			veil_msgr_fail(m, rc, "the server did not acknowledge the message in time");
			goto out;
		}
		if (!dropped(m, c, rc))
			goto out;
		veil_conn_close(c);
		if ((rc = reconnect(m, c, &b, deadline)) != 0)
			goto out;
	}
acked:
	*msg_id = id;
	if (c->md != NULL) {
		struct veil_d2d_msg d;
		memset(&d, 0, sizeof d);
		d.kind = VEIL_D2D_SENT;
		memcpy(d.peer, to, VEIL_ID_LEN);
		d.msg_id = id;
		/* Best effort: the message is sent; other devices then just miss the tick. */
		if (md_reflect(m, c, &d, 0) != 0)
			m->errtext[0] = 0;
	}
	{
		struct veil_log_entry e = {.dir = VEIL_LOG_OUT,
		                           .msg_id = id,
		                           .date_ms = created,
		                           .type = msg_type,
		                           .body = body,
		                           .body_len = body_len};
		memcpy(e.peer, to, VEIL_ID_LEN);
		/* The message is on its way; a log failure must not make it look unsent. */
		if (veil_profile_log_add(&m->prof, &e, NULL) != 0)
			veil_log_debug("client: sent message not logged");
	}
	rc = 0;
out:
	if (c != NULL && shared == NULL) {
		veil_conn_close(c);
		free(c);
	}
	free(rx);
	veil_buf_release(&box);
	return rc;
}

/* --- receive --- */

int veil_rx_emit(struct recv_state *s, struct veil_msgr_event *ev)
{
	if (s->cb != NULL && s->cb(ev, s->ctx) != 0)
		s->stop = 1;
	return 0;
}

int veil_rx_error(struct recv_state *s, const uint8_t *from, uint64_t msg_id, int err,
                  const char *fmt, ...)
{
	struct veil_msgr_event ev;
	char text[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	memset(&ev, 0, sizeof ev);
	ev.kind = VEIL_MSGR_EV_ERROR;
	if (from != NULL)
		memcpy(ev.from, from, VEIL_ID_LEN);
	ev.msg_id = msg_id;
	ev.date_ms = veil_now_ms();
	ev.err = err;
	ev.errtext = text;
	return veil_rx_emit(s, &ev);
}

static void emit_alert(struct recv_state *s, const char *text)
{
	struct veil_msgr_event ev;
	memset(&ev, 0, sizeof ev);
	ev.kind = VEIL_MSGR_EV_ALERT;
	ev.date_ms = veil_now_ms();
	ev.errtext = text;
	veil_rx_emit(s, &ev);
}

static int send_ack(struct recv_state *s, const uint8_t sender[static VEIL_ID_LEN], uint64_t id)
{
	uint8_t ack[VEIL_CSP_ACK_LEN];
	veil_csp_ack_encode(ack, sender, id);
	return veil_conn_send_payload(s->c, VEIL_CSP_INCOMING_ACK, ack, sizeof ack);
}

/* 1:1 content that asks for an automatic "received" receipt. */
static int wants_receipt(uint8_t type)
{
	return type < 0x40 || type == VEIL_E2E_EDIT || type == VEIL_E2E_DELETE;
}

static int send_receipt(struct recv_state *s, const struct veil_contact *peer, uint64_t ref_id)
{
	struct veil_buf body, box;
	int rc;
	veil_buf_init(&body, 16);
	veil_buf_init(&box, VEIL_MSGBOX_MAX);
	uint64_t id = veil_random_u64();
	if ((rc = veil_e2e_receipt_encode(&body, VEIL_RECEIPT_RECEIVED, &ref_id, 1)) != 0 ||
	    (rc = seal(s->m, &box, peer, id, veil_now_ms(), 0, VEIL_E2E_DELIVERY_RECEIPT, body.p,
	               body.len)) != 0)
		goto out;
	if ((rc = veil_conn_send_payload(s->c, VEIL_CSP_OUTGOING_MESSAGE, box.p, box.len)) != 0)
		goto out;
	if (s->npending < PENDING_MAX) {
		s->pending[s->npending] = id;
		memcpy(s->pending_to[s->npending], peer->id, VEIL_ID_LEN);
		s->npending++;
	}
out:
	veil_buf_release(&body);
	veil_buf_release(&box);
	return rc;
}

/* Sends a reply of the group code (lib/client/group.c) during receive. */
static int group_reply(void *ctx, const uint8_t to[static VEIL_ID_LEN], uint8_t type, uint8_t flags,
                       const uint8_t *body, size_t len)
{
	struct recv_state *s = ctx;
	struct veil_contact peer;
	struct veil_buf box;
	int rc, is_new;
	/*
	 * A reply (sync request, empty setup, leave) only helps the peer: if its
	 * key cannot be had (unknown ID, directory unreachable), the message is
	 * still handled, without the reply, rather than ending the session.
	 */
	if (peer_get(s->m, to, &peer, &is_new) != 0) {
		veil_log_debug("client: group reply not sent: no key for its receiver");
		s->m->errtext[0] = 0;
		return 0;
	}
	veil_buf_init(&box, VEIL_MSGBOX_MAX);
	uint64_t id = veil_random_u64();
	if ((rc = seal(s->m, &box, &peer, id, veil_now_ms(), flags, type, body, len)) == 0 &&
	    (rc = veil_conn_send_payload(s->c, VEIL_CSP_OUTGOING_MESSAGE, box.p, box.len)) == 0 &&
	    s->npending < PENDING_MAX) {
		s->pending[s->npending] = id;
		memcpy(s->pending_to[s->npending], to, VEIL_ID_LEN);
		s->npending++;
	}
	veil_buf_release(&box);
	return rc;
}

static void pending_done(struct recv_state *s, const uint8_t to[static VEIL_ID_LEN], uint64_t id)
{
	for (size_t i = 0; i < s->npending; i++) {
		if (s->pending[i] == id && memcmp(s->pending_to[i], to, VEIL_ID_LEN) == 0) {
			s->npending--;
			s->pending[i] = s->pending[s->npending];
			memcpy(s->pending_to[i], s->pending_to[s->npending], VEIL_ID_LEN);
			return;
		}
	}
}

/*
 * Stores a message that cannot be decoded as it came (VEIL_LOG_RAW) and
 * reports it, so that it is never acked and lost. type and body are the
 * inner type and body, or 0 and the whole payload if it could not be
 * decrypted; nonce is recorded with it only if the message was
 * authenticated (else a forger could burn a genuine message's nonce).
 * Returns 0 if stored (or stored before), else the storage error (errtext
 * set): the message must then not be acked.
 */
static int store_raw(struct recv_state *s, const uint8_t sender[static VEIL_ID_LEN],
                     uint64_t msg_id, uint64_t date_ms, uint8_t type, const uint8_t *body,
                     size_t len, const uint8_t *nonce, const char *why)
{
	struct veil_msgr_event ev;
	struct veil_log_entry e = {.dir = VEIL_LOG_IN,
	                           .msg_id = msg_id,
	                           .date_ms = date_ms,
	                           .type = type,
	                           .body = body,
	                           .body_len = len,
	                           .status = VEIL_LOG_RAW};
	memcpy(e.peer, sender, VEIL_ID_LEN);
	int rc = veil_profile_log_add(&s->m->prof, &e, nonce);
	if (rc == VEIL_EEXIST || rc == VEIL_EREPLAY)
		return 0; /* stored (and reported) before */
	if (rc != 0)
		return veil_msgr_fail(s->m, rc, "cannot store a message: %s", veil_strerror(rc));
	memset(&ev, 0, sizeof ev);
	ev.kind = VEIL_MSGR_EV_MESSAGE;
	ev.raw = 1;
	memcpy(ev.from, sender, VEIL_ID_LEN);
	ev.msg_id = msg_id;
	ev.date_ms = date_ms;
	ev.type = type;
	ev.body = body;
	ev.body_len = len;
	ev.errtext = why;
	veil_rx_emit(s, &ev);
	return 0;
}

/*
 * Processes one incoming message. Returns 0 (the message was handled,
 * whatever its fate) or an error that ends the session: a failure of the
 * connection or of local storage. A message is acked only once it is
 * stored (or was stored before: a replayed nonce, a resent message ID).
 */
static int handle_incoming(struct recv_state *s, const uint8_t *data, size_t len)
{
	struct veil_msgr *m = s->m;
	struct veil_msgbox mb;
	struct veil_contact peer;
	struct veil_e2e_meta meta;
	struct veil_buf body;
	struct veil_msgr_event ev;
	char from[VEIL_ID_LEN + 1], why[VEIL_MSGR_ERRTEXT_MAX];
	uint64_t ids[VEIL_E2E_RECEIPT_MAX_IDS_IN];
	struct veil_group_rx *grx = NULL;
	int rc, is_new = 0, ack = 1;
	uint8_t type = 0;

	veil_buf_init_secret(&body, VEIL_MSGBOX_MAX);
	memset(&ev, 0, sizeof ev);
	memset(&meta, 0, sizeof meta);
	if (veil_msgbox_parse(&mb, data, len) != 0) {
		/* Keep what we can attribute, then ack it so that the server drops it. */
		if (len >= 24 && veil_id_valid(data)) {
			uint64_t id = veil_load_u64le(data + 16);
			if ((rc = store_raw(s, data, id, veil_now_ms(), 0, data, len, NULL,
			                    "malformed message")) == 0)
				rc = send_ack(s, data, id);
		} else {
			/* Nothing to store it under, nor to ack it with. */
			veil_rx_error(s, NULL, 0, VEIL_EPROTO, "malformed message dropped");
			rc = 0;
		}
		goto out;
	}
	veil_id_str(from, mb.sender);
	ack = !(mb.flags & VEIL_MSG_FLAG_NO_SERVER_ACK);
	uint64_t date_ms = (uint64_t)mb.created_at * 1000u;
	if (memcmp(mb.receiver, m->prof.id, VEIL_ID_LEN) != 0 || !veil_id_valid(mb.sender)) {
		if (!veil_id_valid(mb.sender)) {
			veil_rx_error(s, mb.sender, mb.msg_id, VEIL_EPROTO,
			              "message from an invalid ID dropped");
			goto done;
		}
		snprintf(why, sizeof why, "message from %s not addressed to us", from);
		goto raw_payload;
	}
	rc = veil_profile_contact_get(&m->prof, mb.sender, &peer);
	if (rc == VEIL_ENOTFOUND) {
		uint8_t pk[VEIL_KEY_LEN];
		rc = dir_lookup(m, mb.sender, pk);
		if (rc == VEIL_ENOTFOUND) {
			snprintf(why, sizeof why,
			         "message from unknown ID %s: no key to decrypt it", from);
			m->errtext[0] = 0;
			goto raw_payload;
		}
		if (rc != 0) {
			/* Transient: leave the message on the server for the next run. */
			veil_rx_error(s, mb.sender, mb.msg_id, rc,
			              "message from %s kept on the server: %s", from, m->errtext);
			ack = 0;
			goto done;
		}
		memset(&peer, 0, sizeof peer);
		memcpy(peer.id, mb.sender, VEIL_ID_LEN);
		memcpy(peer.pk, pk, VEIL_KEY_LEN);
		rc = veil_profile_contact_add(&m->prof, &peer);
		if (rc != 0 && rc != VEIL_EEXIST) {
			rc = veil_msgr_fail(m, rc, "cannot store contact %s: %s", from,
			                    veil_strerror(rc));
			goto out;
		}
		is_new = 1;
	} else if (rc != 0) {
		rc = veil_msgr_fail(m, rc, "cannot read the contacts: %s", veil_strerror(rc));
		goto out;
	}
	rc = veil_profile_nonce_seen(&m->prof, mb.nonce);
	if (rc == VEIL_EREPLAY) {
		veil_rx_error(s, mb.sender, mb.msg_id, rc,
		              "replayed message from %s (nonce seen before) dropped", from);
		goto done;
	} else if (rc != 0) {
		rc = veil_msgr_fail(m, rc, "cannot read the replay store: %s", veil_strerror(rc));
		goto out;
	}
	if (veil_e2e_open(&mb, m->prof.sk, peer.pk, &type, &body, &meta) != 0) {
		snprintf(why, sizeof why, "message from %s cannot be decrypted", from);
		goto raw_payload;
	}
	date_ms = meta.created_at_ms;

	/* Decode what we display; anything else is logged as it came. */
	ev.kind = VEIL_MSGR_EV_MESSAGE;
	memcpy(ev.from, mb.sender, VEIL_ID_LEN);
	ev.msg_id = mb.msg_id;
	ev.date_ms = meta.created_at_ms;
	ev.type = type;
	ev.new_contact = is_new;
	ev.body = body.p;
	ev.body_len = body.len;
	size_t nids = 0;
	if (veil_e2e_group_container(type) != 0) {
		/* Group messages: membership rules and group state first (lib/client/group.c). */
		struct veil_group_io gio = {.send = group_reply, .ctx = s};
		if (grx == NULL && (grx = malloc(sizeof *grx)) == NULL) {
			rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
			goto out;
		}
		rc = veil_group_receive(m, &gio, mb.sender, type, body.p, body.len, &ev, grx);
		if (rc < 0)
			goto out; /* not acked: the server keeps it */
		if (rc == VEIL_GROUP_RX_MALFORMED) {
			snprintf(why, sizeof why, "%s", grx->why);
			goto raw_body;
		}
		/* Decoded, but the specification's group rules discard it. */
		if (rc == VEIL_GROUP_RX_DROP)
			veil_rx_error(s, mb.sender, mb.msg_id, VEIL_EPROTO, "%s", grx->why);
		if (rc != VEIL_GROUP_RX_ACCEPT)
			goto done; /* handled: a message that changes nothing */
	}
	if (type == VEIL_E2E_TEXT) {
		if (veil_e2e_text_decode(body.p, body.len, &ev.text, &ev.text_len) != 0) {
			snprintf(why, sizeof why, "text message from %s is malformed", from);
			goto raw_body;
		}
	} else if (type == VEIL_E2E_DELIVERY_RECEIPT) {
		if (veil_e2e_receipt_decode(body.p, body.len, &ev.status, ids, VEIL_ARRAY_LEN(ids),
		                            &nids) != 0) {
			snprintf(why, sizeof why, "delivery receipt from %s is malformed", from);
			goto raw_body;
		}
		ev.n_ids = nids;
		memcpy(ev.ids, ids,
		       (nids < VEIL_MSGR_EV_MAX_IDS ? nids : VEIL_MSGR_EV_MAX_IDS) * 8);
	} else if (type == VEIL_E2E_TYPING) {
		if (veil_e2e_typing_decode(body.p, body.len, &ev.typing) != 0) {
			snprintf(why, sizeof why, "typing indicator from %s is malformed", from);
			goto raw_body;
		}
	}

	struct veil_log_entry e = {.dir = VEIL_LOG_IN,
	                           .msg_id = mb.msg_id,
	                           .date_ms = meta.created_at_ms,
	                           .type = type,
	                           .body = body.p,
	                           .body_len = body.len};
	memcpy(e.peer, mb.sender, VEIL_ID_LEN);
	rc = veil_profile_log_add(&m->prof, &e, mb.nonce);
	if (rc == VEIL_EREPLAY) {
		veil_rx_error(s, mb.sender, mb.msg_id, rc,
		              "replayed message from %s (nonce seen before) dropped", from);
		goto done;
	}
	if (rc != 0 && rc != VEIL_EEXIST) {
		/* Not stored, so not acked: the server keeps it. */
		rc = veil_msgr_fail(m, rc, "cannot store a message: %s", veil_strerror(rc));
		goto out;
	}
	if (s->c->md != NULL) {
		/*
		 * The leader reflects what it received before acking it to the
		 * chat service, so that no device misses a message the server
		 * forgets. A resend (same ID, stored before) is reflected again:
		 * the ack may have been lost after an earlier reflect failed.
		 */
		struct veil_d2d_msg d;
		memset(&d, 0, sizeof d);
		d.kind = VEIL_D2D_INCOMING;
		memcpy(d.peer, mb.sender, VEIL_ID_LEN);
		d.msg_id = mb.msg_id;
		d.created_ms = meta.created_at_ms;
		d.type = type;
		d.body = body.p;
		d.body_len = body.len;
		d.nonce = mb.nonce;
		int r = md_reflect(m, s->c, &d, 1);
		if (r != 0) {
			rc = r; /* not acked: the server delivers it again */
			goto out;
		}
	}
	if (rc == VEIL_EEXIST)
		goto done; /* the same message ID again: a resend; shown once already */
	if (type == VEIL_E2E_DELIVERY_RECEIPT) {
		/* Receipts for messages we did not log (or never sent) change nothing. */
		for (size_t i = 0; i < nids; i++)
			if (veil_profile_log_set_status(&m->prof, mb.sender, ids[i], ev.status) !=
			    0)
				continue;
	}
	/* A legacy message's nickname field counts only for types that distribute the profile. */
	if (meta.has_nickname &&
	    (meta.present || veil_e2e_distributes_profile(type, body.p, body.len)) &&
	    veil_profile_contact_set_nickname(&m->prof, mb.sender, meta.nickname) == 0)
		ev.nickname = meta.nickname;
	else if (veil_profile_contact_get(&m->prof, mb.sender, &peer) == 0 && peer.nickname[0])
		ev.nickname = peer.nickname;

	/* Stored: now the server may forget it. */
	if (ack && (rc = send_ack(s, mb.sender, mb.msg_id)) != 0)
		goto out;
	ack = 0;
	veil_rx_emit(s, &ev);
	if (wants_receipt(type) && !(mb.flags & VEIL_MSG_FLAG_NO_AUTO_RECEIPTS) &&
	    (rc = send_receipt(s, &peer, mb.msg_id)) != 0)
		goto out;
	goto done;

raw_body:
	/* Decrypted (so authenticated) but not understood: the inner body, with its nonce. */
	if ((rc = store_raw(s, mb.sender, mb.msg_id, date_ms, type, body.p, body.len, mb.nonce,
	                    why)) != 0)
		goto out;
	goto done;
raw_payload:
	/* Not decrypted: the whole payload, without recording its nonce. */
	if ((rc = store_raw(s, mb.sender, mb.msg_id, date_ms, 0, data, len, NULL, why)) != 0)
		goto out;
done:
	rc = ack ? send_ack(s, mb.sender, mb.msg_id) : 0;
out:
	sodium_memzero(&meta, sizeof meta);
	veil_buf_release(&body);
	free(grx);
	return rc;
}

/* Waits a little for the server's acks of the receipts we sent. */
static void flush_receipts(struct recv_state *s, uint8_t *buf)
{
	uint64_t deadline = veil_mono_ms() + RECEIPT_FLUSH_MS;
	while (s->npending > 0 && veil_conn_is_open(s->c)) {
		uint8_t type, to[VEIL_ID_LEN];
		uint64_t id;
		size_t n;
		uint64_t l = veil_msgr_left_ms(deadline);
		if (l == 0 || veil_conn_recv_payload(s->c, (int)l, &type, buf, &n) != 0)
			return;
		if (type == VEIL_CONN_D2M && veil_rx_md_inbox(s) != 0)
			return;
		if (type == VEIL_CSP_OUTGOING_ACK && veil_csp_ack_parse(buf, n, to, &id) == 0)
			pending_done(s, to, id);
	}
}

/*
 * Handles one payload of a receive session other than a dropped connection:
 * incoming messages (stored, acked, reported), the end of the queue, acks
 * of our receipts and alerts. Returns 0, or handle_incoming's error that
 * ends the session.
 */
static int rx_payload(struct recv_state *s, uint8_t type, const uint8_t *buf, size_t n)
{
	switch (type) {
	case VEIL_CONN_D2M: return veil_rx_md_inbox(s);
	case VEIL_CSP_INCOMING_MESSAGE: return handle_incoming(s, buf, n);
	case VEIL_CSP_QUEUE_SEND_COMPLETE: s->drained = 1; break;
	case VEIL_CSP_OUTGOING_ACK: {
		uint8_t to[VEIL_ID_LEN];
		uint64_t id;
		if (veil_csp_ack_parse(buf, n, to, &id) == 0)
			pending_done(s, to, id);
		break;
	}
	case VEIL_CSP_ALERT: {
		char t[VEIL_CONN_ERRTEXT_MAX];
		size_t k = n < sizeof t - 1 ? n : sizeof t - 1;
		if (veil_utf8_valid(buf, k)) {
			char a[VEIL_CONN_ERRTEXT_MAX + 16];
			memcpy(t, buf, k);
			t[k] = 0;
			snprintf(a, sizeof a, "server alert: %s", t);
			emit_alert(s, a);
		}
		break;
	}
	default:
		/* Device-cookie indications and the like do not concern this client. */
		break;
	}
	return 0;
}

/* A dropped connection: the text in errtext, an alert if the server ended it. */
static int rx_dropped(struct recv_state *s, int rc)
{
	int again = dropped(s->m, s->c, rc);
	if (s->c->close_error && again) {
		char t[VEIL_MSGR_ERRTEXT_MAX + 32];
		snprintf(t, sizeof t, "%s (reconnecting)", s->m->errtext);
		emit_alert(s, t);
	}
	veil_conn_close(s->c);
	s->npending = 0; /* acks of the old connection will not come */
	s->md_dry = 0;
	s->md_unblocked = 0;
	return again;
}

int veil_msgr_receive(struct veil_msgr *m, int wait_s,
                      int (*cb)(const struct veil_msgr_event *ev, void *ctx), void *ctx)
{
	struct recv_state *s = calloc(1, sizeof *s);
	struct veil_conn *c = malloc(sizeof *c);
	uint8_t *buf = malloc(VEIL_CONN_MAX_DATA);
	struct veil_backoff b;
	int rc, drained = 0;

	if (s == NULL || c == NULL || buf == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	if (m->session != NULL) {
		rc = veil_msgr_fail(m, VEIL_EINVAL, "a session holds the connection");
		goto out;
	}
	if (wait_s < 0)
		wait_s = 0;
	s->m = m;
	s->c = c;
	s->cb = cb;
	s->ctx = ctx;
	c->fd = -1;
	veil_backoff_init(&b, VEIL_BACKOFF_BASE_MS, VEIL_BACKOFF_MAX_MS);
	/* Until the queue is drained the deadline is generous; then it is wait_s. */
	uint64_t deadline = veil_mono_ms() + VEIL_MSGR_QUEUE_TIMEOUT_MS;
	if ((rc = conn_open(m, c)) != 0)
		goto out;
	while (!s->stop) {
		uint8_t type;
		size_t n;
		/*
		 * Through the mediator, a device that is not promoted soon after
		 * its reflection queue ran dry does not lead: another device
		 * receives from the chat service and reflects, and what was
		 * reflected to us is all there is.
		 */
		int md_waiting = c->md != NULL && !drained && s->md_dry && !s->md_unblocked;
		if (md_waiting && veil_msgr_left_ms(s->md_dry_at + MD_PROMOTE_WAIT_MS) == 0) {
			drained = 1;
			deadline = veil_mono_ms() + (uint64_t)wait_s * 1000u;
			md_waiting = 0;
		}
		uint64_t l = veil_msgr_left_ms(deadline);
		if (md_waiting && veil_msgr_left_ms(s->md_dry_at + MD_PROMOTE_WAIT_MS) < l)
			l = veil_msgr_left_ms(s->md_dry_at + MD_PROMOTE_WAIT_MS);
		if (l == 0) {
			rc = VEIL_ETIMEOUT;
		} else {
			rc = veil_conn_recv_payload(c, (int)l, &type, buf, &n);
		}
		if (rc == VEIL_ETIMEOUT) {
			if (drained) {
				rc = 0;
				break;
			}
			if (md_waiting)
				continue;
			rc = veil_msgr_fail(m, rc, "the server did not deliver its queue in time");
			goto out;
		}
		if (rc != 0) {
			if (!rx_dropped(s, rc))
				goto out;
			if ((rc = reconnect(m, c, &b, deadline)) != 0) {
				if (rc == VEIL_ETIMEOUT && drained)
					rc = 0; /* the wait ended while we were away */
				goto out;
			}
			continue;
		}
		veil_backoff_reset(&b);
		if ((rc = rx_payload(s, type, buf, n)) != 0) {
			if (!veil_conn_is_open(c))
				continue; /* the send failed: the next read reconnects */
			goto out;
		}
		if (s->drained && !drained) {
			drained = 1;
			deadline = veil_mono_ms() + (uint64_t)wait_s * 1000u;
		}
	}
	rc = 0;
	flush_receipts(s, buf);
out:
	if (c != NULL) {
		veil_conn_close(c);
		free(c);
	}
	free(buf);
	free(s);
	return rc;
}

/* --- sessions: one connection held open by a long-running client --- */

/* Echo requests keep an idle connection open (veild drops one idle for 5 minutes). */
#define SESSION_ECHO_MS 60000

struct veil_msgr_session {
	struct recv_state rs;
	struct veil_conn conn;
	uint8_t buf[VEIL_CONN_MAX_DATA];
	uint64_t last_echo_ms;
	uint64_t gen; /* connections opened so far (veil_msgr_session_gen) */
};

/*
 * After c was opened: if it is the session's connection, its state is that
 * of a new connection, however it was opened (session_connect, or a send
 * that lost it while waiting for an ack and reconnected, perhaps to another
 * chat node): nothing of the old one is awaited, and it is counted
 * (veil_msgr_session_gen) so that the caller learns of it. Through the
 * mediator, the queue-dry notice and the promotion may have come during
 * the login: they wait in the inbox, not on the socket, so the caller's
 * poll would not see them. They are handled now.
 */
static int session_opened(struct veil_msgr *m, struct veil_conn *c)
{
	struct veil_msgr_session *ss = m->session;
	if (ss == NULL || c != &ss->conn)
		return 0;
	ss->rs.npending = 0;
	ss->rs.drained = 0;
	ss->rs.md_dry = 0;
	ss->rs.md_unblocked = 0;
	ss->last_echo_ms = veil_mono_ms();
	ss->gen++;
	int rc = c->md != NULL ? veil_rx_md_inbox(&ss->rs) : 0;
	if (rc != 0)
		veil_conn_close(c);
	return rc;
}

int veil_msgr_session_start(struct veil_msgr *m,
                            int (*cb)(const struct veil_msgr_event *ev, void *ctx), void *ctx)
{
	struct veil_msgr_session *ss;
	if (m->session != NULL)
		return veil_msgr_fail(m, VEIL_EINVAL, "a session is already started");
	if ((ss = calloc(1, sizeof *ss)) == NULL)
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	ss->conn.fd = -1;
	ss->rs.m = m;
	ss->rs.c = &ss->conn;
	ss->rs.cb = cb;
	ss->rs.ctx = ctx;
	m->session = ss;
	return 0;
}

int veil_msgr_session_connect(struct veil_msgr *m)
{
	struct veil_msgr_session *ss = m->session;
	if (ss == NULL)
		return veil_msgr_fail(m, VEIL_EINVAL, "no session");
	if (veil_conn_is_open(&ss->conn))
		return 0;
	return conn_open(m, &ss->conn); /* and session_opened */
}

uint64_t veil_msgr_session_gen(const struct veil_msgr *m)
{
	return m->session != NULL ? m->session->gen : 0;
}

int veil_msgr_session_fd(const struct veil_msgr *m)
{
	return m->session != NULL ? m->session->conn.fd : -1;
}

int veil_msgr_session_drained(const struct veil_msgr *m)
{
	return m->session != NULL && m->session->rs.drained;
}

int veil_msgr_session_pump(struct veil_msgr *m, int timeout_ms)
{
	struct veil_msgr_session *ss = m->session;
	int rc;
	if (ss == NULL)
		return veil_msgr_fail(m, VEIL_EINVAL, "no session");
	if (!veil_conn_is_open(&ss->conn))
		return veil_msgr_fail(m, VEIL_ECLOSED, "not connected");
	if (veil_msgr_left_ms(ss->last_echo_ms + SESSION_ECHO_MS) == 0) {
		uint8_t echo[8];
		veil_store_u64le(echo, veil_mono_ms());
		ss->last_echo_ms = veil_mono_ms();
		if ((rc = veil_conn_send_payload(&ss->conn, VEIL_CSP_ECHO_REQUEST, echo,
		                                 sizeof echo)) != 0) {
			rx_dropped(&ss->rs, rc);
			return rc;
		}
	}
	for (;;) {
		uint8_t type;
		size_t n;
		rc = veil_conn_recv_payload(&ss->conn, timeout_ms, &type, ss->buf, &n);
		timeout_ms = 0; /* then only what is already there */
		if (rc == VEIL_ETIMEOUT)
			return 0;
		if (rc != 0) {
			rx_dropped(&ss->rs, rc);
			return rc;
		}
		if (type == VEIL_CSP_ECHO_RESPONSE)
			continue;
		if ((rc = rx_payload(&ss->rs, type, ss->buf, n)) != 0) {
			/*
			 * Not stored, so not acked: closing makes the server deliver it
			 * again after the caller reconnects.
			 */
			veil_conn_close(&ss->conn);
			ss->rs.npending = 0;
			return rc;
		}
	}
}

void veil_msgr_session_stop(struct veil_msgr *m)
{
	struct veil_msgr_session *ss = m->session;
	if (ss == NULL)
		return;
	if (veil_conn_is_open(&ss->conn))
		flush_receipts(&ss->rs, ss->buf);
	veil_conn_close(&ss->conn);
	free(ss);
	m->session = NULL;
}

/* Drops what the mediator delivered on a send's own connection: unacked, it all comes again. */
static void d2m_discard(struct veil_conn *c)
{
	uint8_t type, *p;
	size_t n;
	while (veil_conn_md_take(c, &type, &p, &n) == 0)
		free(p);
}

struct veil_conn *veil_msgr_session_conn_int(struct veil_msgr *m)
{
	return m->session != NULL ? &m->session->conn : NULL;
}

int veil_msgr_session_payload_int(struct veil_msgr *m, struct veil_conn *c, uint8_t type,
                                  const uint8_t *data, size_t n)
{
	if (m->session == NULL) {
		/* Without a session incoming messages stay queued for `veil recv`. */
		if (type == VEIL_CONN_D2M)
			d2m_discard(c);
		return 0;
	}
	return rx_payload(&m->session->rs, type, data, n);
}
