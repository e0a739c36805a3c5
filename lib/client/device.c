/*
 * Multi-device in the messenger: turning a profile into a device group's
 * first device, making the profile of a device that joins, and managing
 * the group's devices through the mediator (list, drop, rename).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/client.h"
#include "veil/dir.h"

#include "group_int.h"
#include "md_int.h"
#include "veil/contacts.h"

#define DEVICE_TIMEOUT_MS 15000

/*
 * The base URL of a WebSocket service of the server (which: "mediator" or
 * "rendezvous"): what the provisioning document announces, else the server
 * URL with ws(s) for http(s) and /which/ appended (veild serves both on its
 * HTTP listener).
 */
int veil_msgr_ws_service_url_int(struct veil_msgr *m, const char *which, char *out, size_t cap)
{
	struct veil_dir_provisioning prov;
	struct veil_profile *p = &m->prof;
	int rc = veil_dir_fetch_provisioning(p->server_url, p->sign_pk, p->server_pk, &prov);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot read the provisioning of %s: %s",
		                      p->server_url,
		                      veil_dir_errmsg()[0] ? veil_dir_errmsg() : veil_strerror(rc));
	const char *announced =
	    strcmp(which, "mediator") == 0 ? prov.mediator_url : prov.rendezvous_url;
	if (announced[0] != 0) {
		if (strncmp(announced, "ws://", 5) != 0 && strncmp(announced, "wss://", 6) != 0)
			return veil_msgr_fail(m, VEIL_EPROTO,
			                      "the server announces a %s URL that is not ws:// or "
			                      "wss://: %s",
			                      which, announced);
		snprintf(out, cap, "%s", announced);
		return 0;
	}
	const char *u = p->server_url;
	int n;
	if (strncmp(u, "https://", 8) == 0)
		n = snprintf(out, cap, "wss://%s/%s/", u + 8, which);
	else if (strncmp(u, "http://", 7) == 0)
		n = snprintf(out, cap, "ws://%s/%s/", u + 7, which);
	else
		return veil_msgr_fail(m, VEIL_EINVAL, "the server URL %s is not http(s)", u);
	if (n < 0 || (size_t)n >= cap)
		return veil_msgr_fail(m, VEIL_ELIMIT, "the server URL is too long");
	return 0;
}

static uint64_t random_device_id(void)
{
	uint64_t id = 0;
	while (id == 0)
		id = veil_random_u64();
	return id;
}

static int check_label(struct veil_msgr *m, const char *label)
{
	if (label != NULL && (strlen(label) > VEIL_MD_INFO_STR_MAX ||
	                      !veil_utf8_valid((const uint8_t *)label, strlen(label))))
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "the device label must be UTF-8 of at most %d bytes",
		                      VEIL_MD_INFO_STR_MAX);
	return 0;
}

int veil_msgr_md_enable(struct veil_msgr *m, const char *label)
{
	struct veil_profile *p = &m->prof;
	int rc;
	if (p->md)
		return 0;
	if ((rc = check_label(m, label)) != 0)
		return rc;
	if ((rc = veil_msgr_ws_service_url_int(m, "mediator", p->md_url, sizeof p->md_url)) != 0)
		return rc;
	randombytes_buf(p->md_dgk, sizeof p->md_dgk);
	p->md_device_id = random_device_id();
	p->md_csp_device_id = random_device_id();
	p->md_registered = 0;
	snprintf(p->md_label, sizeof p->md_label, "%s", label != NULL ? label : "");
	if ((rc = veil_profile_md_save(p)) != 0) {
		sodium_memzero(p->md_dgk, sizeof p->md_dgk);
		p->md = 0;
		return veil_msgr_fail(m, rc, "cannot save the device group in %s: %s", p->home,
		                      veil_strerror(rc));
	}
	/* The first connection registers this device's slot with the mediator. */
	struct veil_conn *c = malloc(sizeof *c);
	if (c == NULL)
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	c->fd = -1;
	c->md = NULL;
	rc = veil_msgr_conn_open_int(m, c);
	veil_conn_close(c);
	free(c);
	return rc;
}

void veil_md_join_release(struct veil_md_join *j)
{
	sodium_memzero(j->sk, sizeof j->sk);
	sodium_memzero(j->dgk, sizeof j->dgk);
	free(j->contacts);
	j->contacts = NULL;
	j->n_contacts = 0;
}

static int add_contact(const struct veil_contact *c, void *ctx)
{
	struct veil_md_join *j = ctx;
	if (j->n_contacts % 64 == 0) {
		struct veil_contact *n =
		    realloc(j->contacts, (j->n_contacts + 64) * sizeof *j->contacts);
		if (n == NULL)
			return VEIL_ENOMEM;
		j->contacts = n;
	}
	j->contacts[j->n_contacts++] = *c;
	return 0;
}

int veil_msgr_md_export(struct veil_msgr *m, struct veil_md_join *j)
{
	struct veil_profile *p = &m->prof;
	int rc;
	memset(j, 0, sizeof *j);
	if (!p->md)
		return veil_msgr_fail(m, VEIL_EINVAL, "this profile is not a device group yet");
	memcpy(j->id, p->id, VEIL_ID_LEN);
	memcpy(j->sk, p->sk, VEIL_KEY_LEN);
	memcpy(j->dgk, p->md_dgk, VEIL_MD_DGK_LEN);
	snprintf(j->nickname, sizeof j->nickname, "%s", p->nickname);
	if ((rc = veil_profile_contact_list(p, add_contact, j)) != 0) {
		veil_md_join_release(j);
		return veil_msgr_fail(m, rc, "cannot read the contacts: %s", veil_strerror(rc));
	}
	return 0;
}

int veil_msgr_join(struct veil_msgr *m, const char *home, const struct veil_msgr_init_opts *o,
                   const struct veil_md_join *j, const char *label)
{
	struct veil_profile *p = &m->prof;
	struct veil_dir_identity di;
	uint8_t *ca_pem = NULL;
	size_t ca_len = 0;
	int rc;

	if ((rc = check_label(m, label)) != 0)
		return rc;
	if ((rc = veil_msgr_init_server_int(m, home, o, &ca_pem, &ca_len)) != 0)
		return rc;
	memcpy(p->id, j->id, VEIL_ID_LEN);
	memcpy(p->sk, j->sk, VEIL_KEY_LEN);
	veil_pubkey(p->pk, p->sk);
	snprintf(p->nickname, sizeof p->nickname, "%s", j->nickname);
	/* The server must know this identity with this key, or the new device could not log in. */
	rc = veil_dir_get_identity(p->dir_url, p->id, &di);
	if (rc == 0 && memcmp(di.pk, p->pk, VEIL_KEY_LEN) != 0)
		rc = VEIL_EKEY;
	if (rc != 0) {
		char ids[VEIL_ID_LEN + 1];
		veil_id_str(ids, p->id);
		veil_msgr_fail(m, rc,
		               rc == VEIL_ENOTFOUND ? "the server %s does not know the ID %s"
		               : rc == VEIL_EKEY ? "the server %s holds another key for the ID %s"
		                                 : "cannot check the ID with the server %s (%s)",
		               p->server_url, rc == VEIL_EIO ? veil_dir_errmsg() : ids);
		goto out;
	}
	/* The provisioning document init just read names it, or the server URL gives it. */
	if (p->md_url[0] == 0 &&
	    (rc = veil_msgr_ws_service_url_int(m, "mediator", p->md_url, sizeof p->md_url)) != 0)
		goto out;
	memcpy(p->md_dgk, j->dgk, VEIL_MD_DGK_LEN);
	p->md_device_id = random_device_id();
	p->md_csp_device_id = random_device_id();
	p->md_registered = 0;
	snprintf(p->md_label, sizeof p->md_label, "%s", label != NULL ? label : "");
	/* md.json and the CA before profile.json, which marks a finished profile. */
	if ((rc = veil_profile_md_save(p)) != 0) {
		veil_msgr_fail(m, rc, "cannot save the device group in %s: %s", home,
		               veil_strerror(rc));
		goto out;
	}
	if ((rc = veil_msgr_profile_write_int(m, p, home, ca_pem, ca_len)) != 0)
		goto out;
	for (size_t i = 0; i < j->n_contacts; i++) {
		rc = veil_profile_contact_add(p, &j->contacts[i]);
		if (rc != 0 && rc != VEIL_EEXIST) {
			veil_msgr_fail(m, rc, "cannot store the contacts: %s", veil_strerror(rc));
			goto out;
		}
	}
	rc = 0;
out:
	free(ca_pem);
	if (rc != 0)
		veil_profile_release(p);
	return rc;
}

/* --- device management through the mediator --- */

static int md_connect(struct veil_msgr *m, struct veil_conn **cp)
{
	*cp = NULL;
	if (!m->prof.md)
		return veil_msgr_fail(
		    m, VEIL_EINVAL,
		    "this profile has only one device ('veil device link' adds one)");
	struct veil_conn *c = malloc(sizeof *c);
	if (c == NULL)
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	c->fd = -1;
	c->md = NULL;
	int rc = veil_msgr_conn_open_int(m, c);
	if (rc != 0) {
		free(c);
		return rc;
	}
	*cp = c;
	return 0;
}

static void md_disconnect(struct veil_conn *c)
{
	if (c != NULL) {
		veil_conn_close(c);
		free(c);
	}
}

struct list_ctx {
	struct veil_msgr *m;
	const struct veil_md_keys *k;
	int (*fn)(const struct veil_device *d, void *ctx);
	void *ctx;
};

static int list_one(void *arg, const struct veil_md_device_entry *e)
{
	struct list_ctx *l = arg;
	struct veil_device d;
	struct veil_md_device_info info;
	memset(&d, 0, sizeof d);
	d.device_id = e->device_id;
	d.connected = e->connected;
	d.since_ms = e->since;
	d.persistent = e->expiration_policy == VEIL_MD_SLOT_PERSISTENT;
	d.self = e->device_id == l->m->prof.md_device_id;
	if (veil_md_device_info_open(&info, l->k, e->enc_info, e->enc_info_len) == 0) {
		d.platform = info.platform;
		snprintf(d.label, sizeof d.label, "%s", info.label);
		snprintf(d.platform_details, sizeof d.platform_details, "%s",
		         info.platform_details);
		snprintf(d.app_version, sizeof d.app_version, "%s", info.app_version);
	} else {
		d.unreadable = 1;
	}
	return l->fn(&d, l->ctx);
}

int veil_msgr_devices(struct veil_msgr *m, int (*fn)(const struct veil_device *d, void *ctx),
                      void *ctx)
{
	struct veil_conn *c;
	struct veil_buf req;
	uint8_t *ans = NULL;
	size_t n;
	int rc = md_connect(m, &c);
	if (rc != 0)
		return rc;
	veil_buf_init(&req, 16);
	if ((rc = veil_md_container_encode(&req, VEIL_MD_GET_DEVICES_INFO, NULL, 0)) != 0 ||
	    (rc = veil_conn_md_send(c, req.p, req.len)) != 0 ||
	    (rc = veil_conn_md_wait_type(c, VEIL_MD_DEVICES_INFO, DEVICE_TIMEOUT_MS, &ans, &n)) !=
	        0) {
		veil_msgr_fail(m, rc, "cannot list the devices: %s",
		               c->errtext[0] ? c->errtext : veil_strerror(rc));
		goto out;
	}
	struct list_ctx l = {.m = m, .k = veil_conn_md_keys(c), .fn = fn, .ctx = ctx};
	rc = veil_md_devices_info_parse(ans, n, list_one, &l);
	if (rc < 0)
		veil_msgr_fail(m, rc, "the mediator's device list is malformed");
out:
	free(ans);
	veil_buf_release(&req);
	md_disconnect(c);
	return rc;
}

int veil_msgr_device_drop(struct veil_msgr *m, uint64_t device_id)
{
	struct veil_conn *c;
	struct veil_buf req;
	uint8_t *ans = NULL;
	size_t n;
	uint64_t acked = 0;
	if (m->prof.md && device_id == m->prof.md_device_id)
		return veil_msgr_fail(m, VEIL_EINVAL,
		                      "this is the device you are using: drop it from another one");
	int rc = md_connect(m, &c);
	if (rc != 0)
		return rc;
	veil_buf_init(&req, 32);
	if ((rc = veil_md_drop_device_encode(&req, VEIL_MD_DROP_DEVICE, device_id)) != 0 ||
	    (rc = veil_conn_md_send(c, req.p, req.len)) != 0 ||
	    (rc = veil_conn_md_wait_type(c, VEIL_MD_DROP_DEVICE_ACK, DEVICE_TIMEOUT_MS, &ans,
	                                 &n)) != 0) {
		veil_msgr_fail(m, rc, "cannot drop the device: %s",
		               c->errtext[0] ? c->errtext : veil_strerror(rc));
		goto out;
	}
	if (veil_md_drop_device_parse(&acked, ans, n) != 0 || acked != device_id)
		rc = veil_msgr_fail(m, VEIL_EPROTO, "the mediator acknowledged another device");
out:
	free(ans);
	veil_buf_release(&req);
	md_disconnect(c);
	return rc;
}

int veil_msgr_device_rename(struct veil_msgr *m, const char *label)
{
	struct veil_profile *p = &m->prof;
	struct veil_conn *c;
	char old[sizeof p->md_label];
	int rc = check_label(m, label);
	if (rc != 0)
		return rc;
	if (!p->md)
		return veil_msgr_fail(
		    m, VEIL_EINVAL,
		    "this profile has only one device ('veil device link' adds one)");
	memcpy(old, p->md_label, sizeof old);
	snprintf(p->md_label, sizeof p->md_label, "%s", label);
	/* The label travels sealed in the handshake: one connection tells the mediator. */
	if ((rc = md_connect(m, &c)) != 0) {
		memcpy(p->md_label, old, sizeof old);
		return rc;
	}
	md_disconnect(c);
	if ((rc = veil_profile_md_save(p)) != 0)
		return veil_msgr_fail(m, rc, "cannot save the label: %s", veil_strerror(rc));
	return 0;
}

/* --- transactions: the device group's lock around a sync message --- */

#define TX_TTL_S 30
#define TX_TRIES 5

static int send_empty(struct veil_conn *c, uint8_t type)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_HDR_LEN);
	int rc = veil_md_container_encode(&b, type, NULL, 0);
	if (rc == 0)
		rc = veil_conn_md_send(c, b.p, b.len);
	veil_buf_release(&b);
	return rc;
}

/*
 * Runs one transaction of scope around the reflect of d: begin (waiting
 * for TransactionEnded and trying again while another device holds the
 * lock), reflect and wait for its ack, commit and wait for that ack.
 */
static int md_transaction(struct veil_msgr *m, struct veil_conn *c, int scope,
                          const struct veil_d2d_msg *d)
{
	struct veil_buf box, req;
	uint8_t *ans = NULL, type;
	size_t n;
	int rc;
	veil_buf_init(&box, VEIL_MD_SCOPE_MAX);
	veil_buf_init(&req, VEIL_MD_HDR_LEN + VEIL_MD_SCOPE_MAX + 16);
	if ((rc = veil_md_scope_seal(&box, veil_conn_md_keys(c), scope)) != 0 ||
	    (rc = veil_md_begin_tx_encode(&req, box.p, box.len, TX_TTL_S)) != 0)
		goto out;
	for (int tries = 0;; tries++) {
		static const uint8_t begin_answers[] = {VEIL_MD_BEGIN_TRANSACTION_ACK,
		                                        VEIL_MD_TRANSACTION_REJECTED};
		if ((rc = veil_conn_md_send(c, req.p, req.len)) != 0 ||
		    (rc = veil_conn_md_wait_types(c, begin_answers, sizeof begin_answers,
		                                  DEVICE_TIMEOUT_MS, &type, &ans, &n)) != 0)
			goto out;
		free(ans);
		ans = NULL;
		if (type == VEIL_MD_BEGIN_TRANSACTION_ACK)
			break;
		if (tries + 1 == TX_TRIES) {
			rc = VEIL_EAGAIN;
			veil_msgr_fail(m, rc, "another device keeps the device group busy");
			goto out;
		}
		/* Another device holds the lock: its end is the signal to try again. */
		rc = veil_conn_md_wait_type(c, VEIL_MD_TRANSACTION_ENDED, TX_TTL_S * 1000 + 5000,
		                            &ans, &n);
		free(ans);
		ans = NULL;
		if (rc != 0 && rc != VEIL_ETIMEOUT)
			goto out;
	}
	if ((rc = veil_msgr_md_reflect_int(m, c, d, 1)) != 0 ||
	    (rc = send_empty(c, VEIL_MD_COMMIT_TRANSACTION)) != 0 ||
	    (rc = veil_conn_md_wait_type(c, VEIL_MD_COMMIT_TRANSACTION_ACK, DEVICE_TIMEOUT_MS, &ans,
	                                 &n)) != 0)
		goto out;
out:
	if (rc != 0 && m->errtext[0] == 0)
		veil_msgr_fail(m, rc, "the device group transaction failed: %s",
		               c->errtext[0] ? c->errtext : veil_strerror(rc));
	free(ans);
	veil_buf_release(&box);
	veil_buf_release(&req);
	return rc;
}

/* Our levels (red, orange, green) as the specification's verification levels. */
static int level_to_spec(int level)
{
	return level >= VEIL_LEVEL_GREEN ? 2 : level >= VEIL_LEVEL_ORANGE ? 1 : 0;
}

int veil_msgr_md_sync_contact(struct veil_msgr *m, const uint8_t id[static VEIL_ID_LEN], int create)
{
	struct veil_contact ct;
	struct veil_d2d_msg d;
	char source[VEIL_LEVEL_SOURCE_MAX + 1], name[VEIL_PROFILE_NICK_MAX + 1];
	int level = VEIL_LEVEL_RED, rc;
	if (!m->prof.md)
		return 0;
	if ((rc = veil_profile_contact_get(&m->prof, id, &ct)) != 0)
		return veil_msgr_fail(m, rc, "cannot read the contact: %s", veil_strerror(rc));
	if (veil_contacts_level_get(&m->prof, id, &level, source) != 0)
		level = VEIL_LEVEL_RED;
	if (veil_profile_contact_name(&m->prof, id, name, sizeof name) != 0)
		name[0] = 0;
	memset(&d, 0, sizeof d);
	d.kind = VEIL_D2D_CONTACT;
	memcpy(d.peer, id, VEIL_ID_LEN);
	d.contact_create = create;
	d.contact_pk = ct.pk;
	d.contact_level = level_to_spec(level);
	d.contact_name = name;
	return veil_msgr_md_send_int(m, VEIL_MD_SCOPE_CONTACT_SYNC, &d);
}

int veil_msgr_md_send_int(struct veil_msgr *m, int scope, const struct veil_d2d_msg *d)
{
	int rc;
	m->errtext[0] = 0;
	struct veil_conn *shared = veil_msgr_session_conn_int(m), *c = NULL;
	if (shared != NULL && veil_conn_is_open(shared) && shared->md != NULL)
		c = shared;
	else if ((rc = md_connect(m, &c)) != 0)
		return rc;
	rc = scope < 0 ? veil_msgr_md_reflect_int(m, c, d, 1) : md_transaction(m, c, scope, d);
	if (c != shared)
		md_disconnect(c);
	return rc;
}

/* A contact another device changed: add it, raise its level, take its name. */
int veil_msgr_md_apply_contact_int(struct veil_msgr *m, const struct veil_d2d_msg *d)
{
	struct veil_contact ct;
	int rc = veil_profile_contact_get(&m->prof, d->peer, &ct);
	if (rc == VEIL_ENOTFOUND) {
		if (d->contact_pk == NULL)
			return 0; /* nothing to store it with */
		memset(&ct, 0, sizeof ct);
		memcpy(ct.id, d->peer, VEIL_ID_LEN);
		memcpy(ct.pk, d->contact_pk, VEIL_KEY_LEN);
		rc = veil_profile_contact_add(&m->prof, &ct);
	} else if (rc == 0 && d->contact_pk != NULL &&
	           sodium_memcmp(ct.pk, d->contact_pk, VEIL_KEY_LEN) != 0) {
		/* Keys are never replaced silently, whoever says so. */
		return 0;
	}
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot store a contact: %s", veil_strerror(rc));
	if (d->contact_level >= 0) {
		int level = d->contact_level == 2   ? VEIL_LEVEL_GREEN
		            : d->contact_level == 1 ? VEIL_LEVEL_ORANGE
		                                    : VEIL_LEVEL_RED;
		if ((rc = veil_contacts_level_raise(&m->prof, d->peer, level, "device")) != 0)
			return veil_msgr_fail(m, rc, "cannot store a level: %s", veil_strerror(rc));
	}
	if (d->contact_name != NULL &&
	    (rc = veil_profile_contact_set_name(&m->prof, d->peer, d->contact_name)) != 0)
		return veil_msgr_fail(m, rc, "cannot store a contact name: %s", veil_strerror(rc));
	return 0;
}
