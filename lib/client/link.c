/*
 * Linking a device: the existing device (ED) offers a join link, the new
 * device (ND) takes it; both meet at the server's rendezvous relay, run
 * the rendezvous protocol (lib/md/rendezvous.c), let their users compare
 * the rendezvous path hash, and ED then sends the device join messages
 * (lib/md/join.c): Begin, EssentialData; ND makes its profile from them,
 * registers with the mediator, and answers Registered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/client.h"
#include "veil/contacts.h"
#include "veil/dir.h"
#include "veil/join.h"
#include "veil/rendezvous.h"

#include "group_int.h"

/* The server group of our ClientUrlInfo (lib/client/d2m.c uses it when none is set). */
#define LINK_SERVER_GROUP "a0"

struct link_io {
	struct veil_ws *ws;
	struct veil_rdv r;
	struct veil_buf out, data;
	uint64_t deadline;
};

static int io_init(struct link_io *io, uint64_t timeout_ms)
{
	memset(io, 0, sizeof *io);
	io->ws = calloc(1, sizeof *io->ws);
	veil_buf_init_secret(&io->out, VEIL_RDV_FRAME_MAX + 64);
	veil_buf_init_secret(&io->data, VEIL_RDV_FRAME_MAX);
	io->deadline = veil_mono_ms() + timeout_ms;
	return io->ws != NULL ? 0 : VEIL_ENOMEM;
}

static void io_release(struct link_io *io, int close_code)
{
	if (io->ws != NULL) {
		veil_ws_close(io->ws, close_code);
		free(io->ws);
	}
	veil_rdv_release(&io->r);
	veil_buf_release(&io->out);
	veil_buf_release(&io->data);
}

/* Sends what the protocol appended to out, in messages the relay accepts. */
static int io_flush(struct veil_msgr *m, struct link_io *io)
{
	for (size_t off = 0; off < io->out.len;) {
		size_t n = io->out.len - off;
		if (n > VEIL_RDV_WS_MESSAGE_MAX)
			n = VEIL_RDV_WS_MESSAGE_MAX;
		if (veil_ws_send(io->ws, io->out.p + off, n) != 0)
			return veil_msgr_fail(m, VEIL_ECLOSED,
			                      "the rendezvous connection broke: %s",
			                      io->ws->errtext);
		off += n;
	}
	veil_buf_reset(&io->out);
	return 0;
}

/* The next protocol event, reading from the relay as needed (never VEIL_RDV_EV_NONE). */
static int io_next(struct veil_msgr *m, struct link_io *io)
{
	for (;;) {
		int ev = veil_rdv_next(&io->r, &io->out, &io->data);
		if (ev < 0)
			return veil_msgr_fail(
			    m, ev,
			    ev == VEIL_ECRYPTO || ev == VEIL_EAUTH
			        ? "the other device failed the rendezvous (a wrong or "
			          "tampered link?)"
			        : "the rendezvous protocol failed: %s",
			    veil_strerror(ev));
		int rc = io_flush(m, io);
		if (rc != 0)
			return rc;
		if (ev != VEIL_RDV_EV_NONE && ev != VEIL_RDV_EV_PROGRESS)
			return ev;
		if (ev == VEIL_RDV_EV_PROGRESS)
			continue;
		const uint8_t *msg;
		size_t len;
		uint64_t left = veil_msgr_left_ms(io->deadline);
		if (left == 0)
			return veil_msgr_fail(m, VEIL_ETIMEOUT,
			                      "the other device did not come in time");
		rc = veil_ws_recv(io->ws, &msg, &len, (int)(left > 0x7fffffff ? 0x7fffffff : left));
		if (rc == VEIL_ETIMEOUT)
			return veil_msgr_fail(m, rc, "the other device did not come in time");
		if (rc != 0)
			return veil_msgr_fail(m, rc,
			                      io->ws->close_code == VEIL_RDV_CLOSE_OTHER_GONE
			                          ? "the other device went away"
			                          : "the rendezvous connection broke: %s",
			                      io->ws->errtext);
		if ((rc = veil_rdv_feed(&io->r, msg, len)) != 0)
			return veil_msgr_fail(m, rc, "the other device sent too much");
	}
}

/*
 * Waits for the handshake to end, then lets the user compare the short
 * rendezvous path hash (confirm returning 0 refuses: refused is the error
 * text, and the connection is to close with the ULP's code).
 */
static int io_confirm(struct veil_msgr *m, struct link_io *io,
                      int (*confirm)(const char *rph, void *ctx), void *ctx, const char *refused,
                      int *close_code)
{
	uint8_t rph[VEIL_RDV_RPH_LEN];
	char rs[VEIL_RDV_RPH_SHORT_LEN];
	int rc = io_next(m, io);
	if (rc < 0)
		return rc;
	if (rc != VEIL_RDV_EV_AUTHENTICATED)
		return veil_msgr_fail(m, VEIL_EPROTO,
		                      "the other device broke the rendezvous protocol");
	if ((rc = veil_rdv_rph(&io->r, rph)) != 0)
		return rc;
	veil_rdv_rph_short(rs, rph);
	if (confirm != NULL && confirm(rs, ctx) == 0) {
		*close_code = VEIL_RDV_CLOSE_ULP;
		return veil_msgr_fail(m, VEIL_EAUTH, "%s", refused);
	}
	return 0;
}

/* --- ED: offering the link --- */

int veil_msgr_link_offer(struct veil_msgr *m, struct veil_link *l, const char *label)
{
	char base[VEIL_RDV_URL_MAX + 1];
	int rc;
	memset(l, 0, sizeof *l);
	if ((rc = veil_msgr_md_enable(m, label)) != 0)
		return rc;
	if ((rc = veil_msgr_ws_service_url_int(m, "rendezvous", base, sizeof base)) != 0)
		return rc;
	if ((rc = veil_rdv_init_new(&l->init, base)) != 0 ||
	    (rc = veil_rdv_link_encode(l->link, sizeof l->link, &l->init, VEIL_RDV_OFFER_TO_JOIN,
	                               VEIL_MD_D2D_VERSION)) != 0)
		return veil_msgr_fail(m, rc, "cannot make a join link for %s", base);
	return 0;
}

void veil_link_release(struct veil_link *l)
{
	veil_rdv_init_wipe(&l->init);
	sodium_memzero(l->link, sizeof l->link);
}

struct export_ctx {
	struct veil_msgr *m;
	struct veil_join_essential *e;
	int rc;
};

static int export_contact(const struct veil_contact *c, void *arg)
{
	struct export_ctx *x = arg;
	struct veil_join_essential *e = x->e;
	if (e->n_contacts == VEIL_JOIN_MAX_CONTACTS)
		return 0;
	struct veil_join_contact *jc = &e->contacts[e->n_contacts++];
	char src[VEIL_LEVEL_SOURCE_MAX + 1];
	int level = VEIL_LEVEL_RED;
	memset(jc, 0, sizeof *jc);
	veil_id_str(jc->identity, c->id);
	memcpy(jc->public_key, c->pk, VEIL_KEY_LEN);
	jc->created_at = c->first_seen_ms;
	snprintf(jc->nickname, sizeof jc->nickname, "%s", c->nickname);
	if (veil_profile_contact_name(&x->m->prof, c->id, jc->first_name, sizeof jc->first_name) !=
	    0)
		jc->first_name[0] = 0;
	if (veil_contacts_level_get(&x->m->prof, c->id, &level, src) != 0)
		level = VEIL_LEVEL_RED;
	jc->verification_level = level >= VEIL_LEVEL_GREEN ? 2 : level >= VEIL_LEVEL_ORANGE ? 1 : 0;
	return 0;
}

static int export_group(const struct veil_group *g, void *arg)
{
	struct export_ctx *x = arg;
	struct veil_join_essential *e = x->e;
	if (e->n_groups == VEIL_JOIN_MAX_GROUPS)
		return 0;
	struct veil_join_group *jg = &e->groups[e->n_groups];
	memset(jg, 0, sizeof *jg);
	veil_id_str(jg->creator, g->creator);
	jg->group_id = g->gid;
	snprintf(jg->name, sizeof jg->name, "%s", g->name);
	jg->created_at = g->created_ms;
	jg->user_state = g->left ? 2 : 0;
	jg->members = calloc(g->n_members + 1, sizeof *jg->members);
	if (jg->members == NULL)
		return x->rc = VEIL_ENOMEM;
	for (size_t i = 0; i < g->n_members && i < VEIL_JOIN_MAX_MEMBERS; i++)
		veil_id_str(jg->members[jg->n_members++], g->members[i]);
	e->n_groups++;
	return 0;
}

/* The hashed nonces of the replay store, each list up to the specification's limit. */
static int export_nonce(const uint8_t h[VEIL_JOIN_NONCE_HASH_LEN], int scope, void *arg)
{
	struct export_ctx *x = arg;
	struct veil_join_essential *e = x->e;
	size_t *n = scope == VEIL_NONCE_D2D ? &e->n_d2d_nonces : &e->n_csp_nonces;
	uint8_t(**v)[VEIL_JOIN_NONCE_HASH_LEN] =
	    scope == VEIL_NONCE_D2D ? &e->d2d_nonces : &e->csp_nonces;
	if (*n == VEIL_JOIN_MAX_NONCES)
		return 0; /* the oldest are as likely to be replayed as the rest: no choice here */
	if (*n % 1024 == 0) {
		void *nv = realloc(*v, (*n + 1024) * VEIL_JOIN_NONCE_HASH_LEN);
		if (nv == NULL)
			return x->rc = VEIL_ENOMEM;
		*v = nv;
	}
	memcpy((*v)[(*n)++], h, VEIL_JOIN_NONCE_HASH_LEN);
	return 0;
}

/* EssentialData from this device's profile (the caller releases it). */
static int essential_make(struct veil_msgr *m, struct veil_join_essential *e)
{
	struct veil_profile *p = &m->prof;
	struct export_ctx x = {.m = m, .e = e};
	memset(e, 0, sizeof *e);
	veil_id_str(e->identity, p->id);
	memcpy(e->ck, p->sk, VEIL_KEY_LEN);
	randombytes_buf(e->device_cookie, sizeof e->device_cookie);
	snprintf(e->server_group, sizeof e->server_group, "%s", LINK_SERVER_GROUP);
	memcpy(e->dgk, p->md_dgk, VEIL_MD_DGK_LEN);
	snprintf(e->nickname, sizeof e->nickname, "%s", p->nickname);
	e->contacts = calloc(VEIL_JOIN_MAX_CONTACTS, sizeof *e->contacts);
	e->groups = calloc(VEIL_JOIN_MAX_GROUPS, sizeof *e->groups);
	if (e->contacts == NULL || e->groups == NULL)
		return veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
	int rc = veil_profile_contact_list(p, export_contact, &x);
	if (rc == 0)
		rc = veil_profile_group_list(p, export_group, &x);
	if (rc == 0)
		rc = veil_profile_nonce_list(p, export_nonce, &x);
	if (rc == 0)
		rc = x.rc;
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot read the profile: %s", veil_strerror(rc));
	return 0;
}

int veil_msgr_link_run(struct veil_msgr *m, struct veil_link *l,
                       int (*confirm)(const char *rph, void *ctx), void *ctx, int timeout_ms)
{
	struct link_io io;
	struct veil_join_essential e;
	int rc, close_code = VEIL_RDV_CLOSE_PROTOCOL;
	memset(&e, 0, sizeof e);
	if ((rc = io_init(&io, (uint64_t)timeout_ms)) != 0) {
		io_release(&io, 0);
		return veil_msgr_fail(m, rc, "out of memory");
	}
	if ((rc = veil_ws_open(io.ws, l->init.url, m->prof.ca_file[0] != 0 ? m->prof.ca_file : NULL,
	                       10000)) != 0) {
		veil_msgr_fail(m, rc, "cannot reach the rendezvous relay %s: %s", l->init.url,
		               io.ws->errtext);
		goto out;
	}
	if ((rc = veil_rdv_start(&io.r, VEIL_RDV_RID, 1, &l->init, &io.out)) != 0 ||
	    (rc = io_flush(m, &io)) != 0)
		goto out;
	if ((rc = io_confirm(m, &io, confirm, ctx, "not confirmed: nothing was sent",
	                     &close_code)) != 0)
		goto out;
	if ((rc = essential_make(m, &e)) != 0)
		goto out;
	struct veil_buf msg;
	veil_buf_init_secret(&msg, VEIL_JOIN_MAX_MESSAGE);
	if ((rc = veil_rdv_nominate(&io.r, &io.out)) == 0 &&
	    (rc = veil_join_begin_encode(&msg)) == 0 &&
	    (rc = veil_rdv_seal(&io.r, msg.p, msg.len, &io.out)) == 0) {
		veil_buf_reset(&msg);
		if ((rc = veil_join_essential_encode(&msg, &e)) == 0)
			rc = veil_rdv_seal(&io.r, msg.p, msg.len, &io.out);
	}
	veil_buf_release(&msg);
	if (rc != 0) {
		veil_msgr_fail(m, rc, "cannot send the profile: %s", veil_strerror(rc));
		goto out;
	}
	if ((rc = io_flush(m, &io)) != 0)
		goto out;
	/* The new device registers with the mediator, then says so. */
	for (;;) {
		int type;
		if ((rc = io_next(m, &io)) < 0)
			goto out;
		if (rc == VEIL_RDV_EV_DATA &&
		    veil_join_nd_parse(&type, io.data.p, io.data.len) == 0 &&
		    type == VEIL_JOIN_REGISTERED)
			break;
	}
	rc = 0;
	close_code = VEIL_RDV_CLOSE_NORMAL;
out:
	veil_join_essential_release(&e);
	io_release(&io, close_code);
	return rc < 0 ? rc : 0;
}

/* --- ND: taking the link --- */

/* The server's base URL from the relay URL (scheme and authority), for a join without --server. */
static int server_from_relay(char *out, size_t cap, const char *url)
{
	const char *scheme = strncmp(url, "wss://", 6) == 0 ? "https://" : "http://";
	const char *host = url + (strncmp(url, "wss://", 6) == 0 ? 6 : 5);
	const char *slash = strchr(host, '/');
	size_t hl = slash != NULL ? (size_t)(slash - host) : strlen(host);
	int n = snprintf(out, cap, "%s%.*s", scheme, (int)hl, host);
	return n < 0 || (size_t)n >= cap ? VEIL_ELIMIT : 0;
}

/* Applies what EssentialData carries beyond identity, key and contacts. */
static void import_rest(struct veil_msgr *m, const struct veil_join_essential *e)
{
	struct veil_profile *p = &m->prof;
	for (size_t i = 0; i < e->n_contacts; i++) {
		const struct veil_join_contact *jc = &e->contacts[i];
		uint8_t id[VEIL_ID_LEN];
		if (veil_id_parse(id, jc->identity) != 0)
			continue;
		int level = jc->verification_level == 2   ? VEIL_LEVEL_GREEN
		            : jc->verification_level == 1 ? VEIL_LEVEL_ORANGE
		                                          : VEIL_LEVEL_RED;
		if (level > VEIL_LEVEL_RED &&
		    veil_contacts_level_raise(p, id, level, "device") != 0)
			veil_log_debug("client: a contact's level was not imported");
		if (jc->first_name[0] && veil_profile_contact_set_name(p, id, jc->first_name) != 0)
			veil_log_debug("client: a contact's name was not imported");
	}
	struct veil_group *g = malloc(sizeof *g);
	if (g == NULL)
		return;
	for (size_t i = 0; i < e->n_groups; i++) {
		const struct veil_join_group *jg = &e->groups[i];
		memset(g, 0, sizeof *g);
		if (veil_id_parse(g->creator, jg->creator) != 0)
			continue;
		g->gid = jg->group_id;
		snprintf(g->name, sizeof g->name, "%s", jg->name);
		g->created_ms = jg->created_at;
		g->left = jg->user_state != 0;
		for (size_t k = 0; k < jg->n_members && g->n_members < VEIL_GROUP_MAX_MEMBERS; k++)
			if (veil_id_parse(g->members[g->n_members], jg->members[k]) == 0 &&
			    memcmp(g->members[g->n_members], p->id, VEIL_ID_LEN) != 0 &&
			    memcmp(g->members[g->n_members], g->creator, VEIL_ID_LEN) != 0)
				g->n_members++;
		if (veil_profile_group_put(p, g) != 0)
			veil_log_debug("client: a group was not imported");
	}
	free(g);
}

/* The nonces the group used: a message replayed to this new device is refused. */
static int import_nonces(struct veil_msgr *m, const struct veil_join_essential *e)
{
	int rc = veil_profile_nonce_import_many(&m->prof, (const uint8_t(*)[32])e->csp_nonces,
	                                        e->n_csp_nonces, VEIL_NONCE_CSP);
	if (rc == 0)
		rc = veil_profile_nonce_import_many(&m->prof, (const uint8_t(*)[32])e->d2d_nonces,
		                                    e->n_d2d_nonces, VEIL_NONCE_D2D);
	if (rc != 0)
		return veil_msgr_fail(m, rc, "cannot store the nonces the other devices used: %s",
		                      veil_strerror(rc));
	return 0;
}

int veil_msgr_join_link(struct veil_msgr *m, const char *home, const char *link,
                        const char *server_url, const char *ca_file, const char *label,
                        int (*confirm)(const char *rph, void *ctx), void *ctx, int timeout_ms)
{
	struct veil_rdv_init init;
	enum veil_rdv_variant variant;
	uint32_t d2d;
	struct link_io io;
	struct veil_md_join j;
	char server[VEIL_PROFILE_URL_MAX];
	int rc, close_code = VEIL_RDV_CLOSE_PROTOCOL;
	memset(&j, 0, sizeof j);
	memset(&init, 0, sizeof init);
	if ((rc = io_init(&io, (uint64_t)timeout_ms)) != 0) {
		io_release(&io, 0);
		return veil_msgr_fail(m, rc, "out of memory");
	}
	if (veil_rdv_link_parse(&init, &variant, &d2d, link, strlen(link)) != 0) {
		rc = veil_msgr_fail(m, VEIL_EINVAL,
		                    "not a device join link (threema://device-group/join#...)");
		goto out;
	}
	if (variant != VEIL_RDV_OFFER_TO_JOIN) {
		rc = veil_msgr_fail(m, VEIL_EINVAL,
		                    "this link asks to join; 'veil init --join' takes a link that "
		                    "offers it ('veil device link' on the existing device)");
		goto out;
	}
	if (server_url == NULL) {
		if (server_from_relay(server, sizeof server, init.url) != 0) {
			rc = veil_msgr_fail(m, VEIL_ELIMIT, "the link's relay URL is too long");
			goto out;
		}
		server_url = server;
	}
	if ((rc = veil_ws_open(io.ws, init.url, ca_file, 10000)) != 0) {
		veil_msgr_fail(m, rc, "cannot reach the rendezvous relay %s: %s", init.url,
		               io.ws->errtext);
		goto out;
	}
	if ((rc = veil_rdv_start(&io.r, VEIL_RDV_RRD, 0, &init, &io.out)) != 0 ||
	    (rc = io_flush(m, &io)) != 0)
		goto out;
	if ((rc = io_confirm(m, &io, confirm, ctx, "not confirmed: this device did not join",
	                     &close_code)) != 0)
		goto out;
	/* Nominate, Begin, then EssentialData (blobs before it are not used). */
	for (;;) {
		struct veil_join_ed ed;
		if ((rc = io_next(m, &io)) < 0)
			goto out;
		if (rc != VEIL_RDV_EV_DATA)
			continue;
		if ((rc = veil_join_ed_parse(&ed, io.data.p, io.data.len)) != 0) {
			veil_msgr_fail(m, rc, "the other device sent a malformed join message");
			goto out;
		}
		if (ed.type != VEIL_JOIN_ESSENTIAL) {
			veil_join_ed_release(&ed);
			continue;
		}
		const struct veil_join_essential *e = &ed.essential;
		rc = veil_id_parse(j.id, e->identity);
		memcpy(j.sk, e->ck, VEIL_KEY_LEN);
		memcpy(j.dgk, e->dgk, VEIL_MD_DGK_LEN);
		snprintf(j.nickname, sizeof j.nickname, "%s", e->nickname);
		j.contacts = calloc(e->n_contacts + 1, sizeof *j.contacts);
		if (rc != 0 || j.contacts == NULL) {
			veil_join_ed_release(&ed);
			rc = veil_msgr_fail(m, rc != 0 ? VEIL_EPROTO : VEIL_ENOMEM,
			                    "cannot take the profile");
			goto out;
		}
		for (size_t i = 0; i < e->n_contacts; i++) {
			struct veil_contact *c = &j.contacts[j.n_contacts];
			if (veil_id_parse(c->id, e->contacts[i].identity) != 0)
				continue;
			memcpy(c->pk, e->contacts[i].public_key, VEIL_KEY_LEN);
			snprintf(c->nickname, sizeof c->nickname, "%s", e->contacts[i].nickname);
			c->first_seen_ms = e->contacts[i].created_at;
			j.n_contacts++;
		}
		struct veil_msgr_init_opts o = {.server_url = server_url, .ca_file = ca_file};
		rc = veil_msgr_join(m, home, &o, &j, label);
		if (rc == 0 && (rc = import_nonces(m, e)) == 0)
			import_rest(m, e);
		veil_join_ed_release(&ed);
		if (rc != 0)
			goto out;
		break;
	}
	/* Register with the mediator (the first connection), then tell ED. */
	struct veil_conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		rc = veil_msgr_fail(m, VEIL_ENOMEM, "out of memory");
		goto out;
	}
	c->fd = -1;
	rc = veil_msgr_conn_open_int(m, c);
	veil_conn_close(c);
	free(c);
	if (rc != 0)
		goto out;
	struct veil_buf reg;
	veil_buf_init(&reg, 64);
	if ((rc = veil_join_registered_encode(&reg)) == 0 &&
	    (rc = veil_rdv_seal(&io.r, reg.p, reg.len, &io.out)) == 0)
		rc = io_flush(m, &io);
	veil_buf_release(&reg);
	if (rc != 0)
		goto out;
	close_code = VEIL_RDV_CLOSE_NORMAL;
out:
	veil_md_join_release(&j);
	veil_rdv_init_wipe(&init);
	io_release(&io, close_code);
	return rc < 0 ? rc : 0;
}
