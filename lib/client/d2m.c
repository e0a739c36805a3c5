/*
 * A CSP connection through the mediator (multi-device). The WebSocket to
 * the mediator carries D2M containers: the device's CSP stream travels in
 * proxy containers (one whole CSP message each way per container), so
 * lib/client/conn.c keeps its framing and only swaps its byte transport
 * for the two functions at the end of this file. Every other container
 * (reflected envelopes, the queue-dry and leader notices, answers to
 * device management and transactions) is kept in an inbox, in order, for
 * the messenger; reflect-acks are matched here.
 *
 * The inbox is bounded. What does not fit is dropped, never acked: the
 * mediator keeps it and sends it again on the next connection, and
 * `overflow` tells the messenger to reconnect once it has emptied the inbox.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/client.h"

#define INBOX_MAX_BYTES (8u * 1024u * 1024u)
/* CSP bytes received while the connection's read buffer is full (the caller waits for an ack). */
#define BACKLOG_MAX (8u * 1024u * 1024u)
#define ACKED_RING 64

struct inbox_msg {
	struct inbox_msg *next;
	uint8_t type;
	size_t len;
	uint8_t p[];
};

struct veil_conn_md {
	struct veil_ws ws;
	struct veil_md_keys keys;
	uint64_t device_id;
	struct veil_md_server_info si;
	int dry, leader, overflow;
	uint32_t next_reflect_id;
	uint32_t acked[ACKED_RING]; /* reflect-ids acked lately, with their timestamps */
	uint64_t acked_ts[ACKED_RING];
	size_t acked_pos;
	struct inbox_msg *head, *tail;
	size_t inbox_bytes;
	struct veil_buf backlog; /* proxy bytes that did not fit the CSP read buffer, in order */
};

static void md_err(struct veil_conn *c, const char *text)
{
	snprintf(c->errtext, sizeof c->errtext, "%s", text);
}

/* Maps the end of the WebSocket to a veil_err with errtext set. */
static int ws_failed(struct veil_conn *c, int rc)
{
	struct veil_conn_md *md = c->md;
	c->md_close_code = md->ws.close_code;
	if (rc == VEIL_ECLOSED && md->ws.close_code >= 1000) {
		const char *why;
		switch (md->ws.close_code) {
		case VEIL_MD_CLOSE_DEVICE_LIMIT: why = "the device group has no free slot"; break;
		case VEIL_MD_CLOSE_DUPLICATE:
			why = "another connection of this device replaced this one";
			break;
		case VEIL_MD_CLOSE_DROPPED:
			why = "this device was removed from the device group by another device";
			break;
		case VEIL_MD_CLOSE_SLOT_MISMATCH:
			why = "the mediator does not know this device (or knows it when it should "
			      "not)";
			break;
		case VEIL_MD_CLOSE_VERSION:
			why = "the mediator does not speak our protocol version";
			break;
		case VEIL_MD_CLOSE_QUEUE_LIMIT:
			why = "the reflection queue of this device is full";
			break;
		case VEIL_MD_CLOSE_PROTOCOL: why = "the mediator reported a protocol error"; break;
		case VEIL_MD_CLOSE_CSP_CLOSED:
			why = "the chat service closed the connection";
			break;
		case VEIL_MD_CLOSE_CSP_UNREACHABLE:
			why = "the mediator cannot reach the chat service";
			break;
		default: why = NULL; break;
		}
		if (why != NULL)
			snprintf(c->errtext, sizeof c->errtext, "%s (mediator close code %d)", why,
			         md->ws.close_code);
		else
			snprintf(c->errtext, sizeof c->errtext,
			         "the mediator closed the connection (%d)", md->ws.close_code);
		/*
		 * 41xx needs the user, except 4112: another connection of this
		 * device is most likely one of our own commands taking the
		 * device's connection for a moment, so the replaced one (a
		 * daemon) comes back after it.
		 */
		c->can_reconnect = veil_md_close_may_reconnect(md->ws.close_code) ||
		                   md->ws.close_code == VEIL_MD_CLOSE_DUPLICATE;
		return VEIL_ECLOSED;
	}
	if (rc != VEIL_ETIMEOUT)
		snprintf(c->errtext, sizeof c->errtext, "%s", md->ws.errtext);
	return rc;
}

static void inbox_free(struct veil_conn_md *md)
{
	while (md->head != NULL) {
		struct inbox_msg *n = md->head->next;
		sodium_memzero(md->head->p, md->head->len);
		free(md->head);
		md->head = n;
	}
	md->tail = NULL;
	md->inbox_bytes = 0;
}

static void inbox_push(struct veil_conn_md *md, uint8_t type, const uint8_t *p, size_t n)
{
	if (md->inbox_bytes + n > INBOX_MAX_BYTES) {
		md->overflow = 1;
		return;
	}
	struct inbox_msg *m = malloc(sizeof *m + n);
	if (m == NULL) {
		md->overflow = 1;
		return;
	}
	m->next = NULL;
	m->type = type;
	m->len = n;
	memcpy(m->p, p, n);
	if (md->tail != NULL)
		md->tail->next = m;
	else
		md->head = m;
	md->tail = m;
	md->inbox_bytes += n;
}

/*
 * Reads one message from the mediator: proxy bytes go to the CSP read
 * buffer, reflect-acks to the ring, the queue-dry and leader notices set
 * their flags (and go to the inbox too), everything else to the inbox.
 */
int veil_conn_md_read(struct veil_conn *c, uint64_t deadline)
{
	struct veil_conn_md *md = c->md;
	const uint8_t *msg, *pl;
	size_t len, pn;
	uint8_t type;
	int ms = -1;
	if (deadline != 0) {
		uint64_t now = veil_mono_ms();
		ms = now >= deadline
		         ? 0
		         : (int)(deadline - now > 0x7fffffff ? 0x7fffffff : deadline - now);
	}
	int rc = veil_ws_recv(&md->ws, &msg, &len, ms);
	if (rc != 0)
		return ws_failed(c, rc);
	if (veil_md_container_parse(msg, len, &type, &pl, &pn) != 0) {
		md_err(c, "the mediator sent a malformed container");
		veil_ws_close(&md->ws, VEIL_MD_CLOSE_PROTOCOL);
		return VEIL_EPROTO;
	}
	switch (type) {
	case VEIL_MD_PROXY:
		/*
		 * While the caller waits for something else (a reflect-ack), the
		 * chat service may send more than the read buffer holds: the rest
		 * waits in the backlog, in order, until the caller reads it.
		 */
		if (md->backlog.len == 0 && pn <= sizeof c->rbuf - c->rlen) {
			memcpy(c->rbuf + c->rlen, pl, pn);
			c->rlen += pn;
			return 0;
		}
		if (veil_buf_append(&md->backlog, pl, pn) != 0) {
			md_err(c, "the chat service sent more than this client keeps unread");
			veil_ws_close(&md->ws, VEIL_MD_CLOSE_PROTOCOL);
			return VEIL_ELIMIT;
		}
		return 0;
	case VEIL_MD_REFLECT_ACK: {
		struct veil_md_reflect r;
		if (veil_md_reflect_ack_parse(&r, pl, pn) != 0) {
			md_err(c, "the mediator sent a malformed reflect-ack");
			veil_ws_close(&md->ws, VEIL_MD_CLOSE_PROTOCOL);
			return VEIL_EPROTO;
		}
		md->acked[md->acked_pos] = r.id;
		md->acked_ts[md->acked_pos] = r.timestamp;
		md->acked_pos = (md->acked_pos + 1) % ACKED_RING;
		return 0;
	}
	case VEIL_MD_REFLECTION_QUEUE_DRY: md->dry = 1; break;
	case VEIL_MD_ROLE_PROMOTED_TO_LEADER: md->leader = 1; break;
	default: break;
	}
	inbox_push(md, type, pl, pn);
	return 0;
}

int veil_conn_md_unbacklog(struct veil_conn *c)
{
	struct veil_conn_md *md = c->md;
	size_t n = md->backlog.len, room = sizeof c->rbuf - c->rlen;
	if (n > room)
		n = room;
	if (n == 0)
		return 0;
	memcpy(c->rbuf + c->rlen, md->backlog.p, n);
	c->rlen += n;
	veil_buf_consume(&md->backlog, n);
	return 1;
}

int veil_conn_md_write(struct veil_conn *c, const uint8_t *p, size_t n)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	int rc = veil_md_container_encode(&b, VEIL_MD_PROXY, p, n);
	if (rc == 0 && (rc = veil_ws_send(&c->md->ws, b.p, b.len)) != 0)
		rc = ws_failed(c, rc);
	veil_buf_release(&b);
	return rc;
}

int veil_conn_md_pending(const struct veil_conn *c)
{
	return c->md != NULL && c->md->head != NULL;
}

void veil_conn_md_free(struct veil_conn *c)
{
	struct veil_conn_md *md = c->md;
	if (md == NULL)
		return;
	veil_ws_close(&md->ws, VEIL_MD_CLOSE_NORMAL);
	inbox_free(md);
	veil_buf_release(&md->backlog);
	sodium_memzero(&md->keys, sizeof md->keys);
	free(md);
	c->md = NULL;
}

/* --- opening: the D2M handshake --- */

static int md_handshake(struct veil_conn *c, const struct veil_md_params *mp, uint64_t deadline)
{
	struct veil_conn_md *md = c->md;
	struct veil_md_server_hello sh;
	struct veil_md_client_hello ch;
	struct veil_md_device_info info;
	struct veil_buf out;
	const uint8_t *msg, *pl;
	size_t len, pn;
	uint8_t type;
	int rc;

	uint64_t now = veil_mono_ms();
	int ms = now >= deadline ? 0 : (int)(deadline - now);
	if ((rc = veil_ws_recv(&md->ws, &msg, &len, ms)) != 0)
		return ws_failed(c, rc);
	if (veil_md_container_parse(msg, len, &type, &pl, &pn) != 0 ||
	    type != VEIL_MD_SERVER_HELLO || veil_md_server_hello_parse(&sh, pl, pn) != 0) {
		md_err(c, "the mediator's hello is malformed");
		return VEIL_EPROTO;
	}
	memset(&ch, 0, sizeof ch);
	ch.device_id = mp->device_id;
	ch.slots_exhausted_policy = VEIL_MD_SLOTS_REJECT;
	ch.slot_expiration_policy = VEIL_MD_SLOT_PERSISTENT;
	ch.expected_slot_state = mp->expect_new ? VEIL_MD_SLOT_NEW : VEIL_MD_SLOT_EXISTING;
	memset(&info, 0, sizeof info);
	info.platform = VEIL_MD_PLATFORM_DESKTOP;
	snprintf(info.platform_details, sizeof info.platform_details, "%s",
	         mp->platform_details != NULL ? mp->platform_details : "veil (Linux)");
	snprintf(info.app_version, sizeof info.app_version, "%s",
	         mp->app_version != NULL ? mp->app_version : "0.1");
	snprintf(info.label, sizeof info.label, "%s", mp->label != NULL ? mp->label : "");
	veil_buf_init(&out, VEIL_MD_MAX_MESSAGE);
	rc = veil_md_client_hello_make(&out, &ch, &md->keys, &sh, &info);
	if (rc == 0 && (rc = veil_ws_send(&md->ws, out.p, out.len)) != 0)
		rc = ws_failed(c, rc);
	veil_buf_release(&out);
	if (rc != 0) {
		if (c->errtext[0] == 0)
			md_err(c, "cannot build the mediator handshake");
		return rc;
	}
	now = veil_mono_ms();
	ms = now >= deadline ? 0 : (int)(deadline - now);
	if ((rc = veil_ws_recv(&md->ws, &msg, &len, ms)) != 0)
		return ws_failed(c, rc);
	if (veil_md_container_parse(msg, len, &type, &pl, &pn) != 0 ||
	    type != VEIL_MD_SERVER_INFO || veil_md_server_info_parse(&md->si, pl, pn) != 0) {
		md_err(c, "the mediator's server info is malformed");
		return VEIL_EPROTO;
	}
	/* Timestamps, expiries and the user's view of time all rest on a clock that is right. */
	uint64_t here = veil_now_ms(), there = md->si.current_time;
	uint64_t skew = here > there ? here - there : there - here;
	if (there != 0 && skew > VEIL_MD_CLOCK_SKEW_MAX_MS && !mp->ignore_clock_skew) {
		snprintf(
		    c->errtext, sizeof c->errtext,
		    "this computer's clock is %llu minutes %s the server's (more than %u "
		    "allowed): set the clock, or set VEIL_IGNORE_CLOCK_SKEW=1 to connect anyway",
		    (unsigned long long)(skew / 60000u), here > there ? "ahead of" : "behind",
		    VEIL_MD_CLOCK_SKEW_MAX_MS / 60000u);
		veil_ws_close(&md->ws, 1000);
		return VEIL_ECLOCK;
	}
	return 0;
}

int veil_conn_md_open(struct veil_conn *c, const struct veil_md_params *mp, uint64_t deadline)
{
	char url[VEIL_WS_URL_MAX], hex[VEIL_MD_URL_INFO_HEX_MAX];
	struct veil_conn_md *md = calloc(1, sizeof *md);
	int rc;
	if (md == NULL) {
		md_err(c, "out of memory");
		return VEIL_ENOMEM;
	}
	c->md = md;
	veil_buf_init_secret(&md->backlog, BACKLOG_MAX);
	md->keys = *mp->keys;
	md->device_id = mp->device_id;
	md->next_reflect_id = randombytes_uniform(0x10000000u) + 1;
	const char *sg = mp->server_group != NULL && mp->server_group[0] ? mp->server_group : "a0";
	size_t ul = strlen(mp->url);
	if (veil_md_url_info_encode(hex, sizeof hex, md->keys.group_id, sg) != 0 ||
	    snprintf(url, sizeof url, "%s%s%s", mp->url,
	             ul > 0 && mp->url[ul - 1] == '/' ? "" : "/", hex) >= (int)sizeof url) {
		md_err(c, "the mediator URL is too long");
		return VEIL_EINVAL;
	}
	uint64_t now = veil_mono_ms();
	int ms = now >= deadline ? 1 : (int)(deadline - now);
	if ((rc = veil_ws_open(&md->ws, url, mp->cacert, ms)) != 0) {
		snprintf(c->errtext, sizeof c->errtext, "%s", md->ws.errtext);
		return rc;
	}
	c->fd = veil_ws_fd(&md->ws);
	return md_handshake(c, mp, deadline);
}

/* --- what the messenger uses --- */

int veil_conn_md_take(struct veil_conn *c, uint8_t *type, uint8_t **payload, size_t *len)
{
	struct veil_conn_md *md = c->md;
	*payload = NULL;
	*len = 0;
	if (md == NULL || md->head == NULL)
		return VEIL_ENOTFOUND;
	struct inbox_msg *m = md->head;
	md->head = m->next;
	if (md->head == NULL)
		md->tail = NULL;
	md->inbox_bytes -= m->len;
	*type = m->type;
	*len = m->len;
	/* The message's bytes move to the front of its allocation, owned by the caller. */
	memmove(m, m->p, m->len);
	*payload = (uint8_t *)m;
	return 0;
}

int veil_conn_md_send(struct veil_conn *c, const uint8_t *container, size_t len)
{
	if (c->md == NULL || !veil_ws_is_open(&c->md->ws)) {
		md_err(c, "not connected to the mediator");
		return VEIL_ECLOSED;
	}
	int rc = veil_ws_send(&c->md->ws, container, len);
	return rc != 0 ? ws_failed(c, rc) : 0;
}

int veil_conn_md_reflect(struct veil_conn *c, const uint8_t *envelope, size_t len, int ephemeral,
                         uint32_t *id)
{
	struct veil_conn_md *md = c->md;
	struct veil_buf box, out;
	int rc;
	if (md == NULL)
		return VEIL_EINVAL;
	veil_buf_init(&box, VEIL_MD_ENVELOPE_MAX);
	veil_buf_init(&out, VEIL_MD_MAX_MESSAGE);
	*id = md->next_reflect_id++;
	if (md->next_reflect_id == 0)
		md->next_reflect_id = 1;
	if ((rc = veil_md_envelope_seal(&box, &md->keys, envelope, len, -1)) == 0 &&
	    (rc = veil_md_reflect_encode(&out, ephemeral ? VEIL_MD_FLAG_EPHEMERAL : 0, *id, box.p,
	                                 box.len)) == 0)
		rc = veil_conn_md_send(c, out.p, out.len);
	veil_buf_release(&box);
	veil_buf_release(&out);
	return rc;
}

int veil_conn_md_wait_ack(struct veil_conn *c, uint32_t id, int timeout_ms, uint64_t *timestamp)
{
	struct veil_conn_md *md = c->md;
	uint64_t deadline = veil_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
	if (md == NULL)
		return VEIL_EINVAL;
	for (;;) {
		for (size_t i = 0; i < ACKED_RING; i++)
			if (md->acked[i] == id) {
				md->acked[i] = 0;
				if (timestamp != NULL)
					*timestamp = md->acked_ts[i];
				return 0;
			}
		if (veil_mono_ms() >= deadline) {
			md_err(c, "the mediator did not acknowledge a reflected message in time");
			return VEIL_ETIMEOUT;
		}
		int rc = veil_conn_md_read(c, deadline);
		if (rc != 0)
			return rc;
	}
}

int veil_conn_md_wait_types(struct veil_conn *c, const uint8_t *want, size_t nwant, int timeout_ms,
                            uint8_t *type, uint8_t **payload, size_t *len)
{
	struct veil_conn_md *md = c->md;
	uint64_t deadline = veil_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
	*payload = NULL;
	*len = 0;
	if (md == NULL)
		return VEIL_EINVAL;
	for (;;) {
		/* Take the first message of a wanted type out of the inbox, keeping the others' order. */
		struct inbox_msg **pp = &md->head, *prev = NULL;
		for (; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
			if (memchr(want, (*pp)->type, nwant) == NULL)
				continue;
			struct inbox_msg *m = *pp;
			*pp = m->next;
			if (md->tail == m)
				md->tail = prev;
			md->inbox_bytes -= m->len;
			*type = m->type;
			*len = m->len;
			memmove(m, m->p, m->len);
			*payload = (uint8_t *)m;
			return 0;
		}
		if (veil_mono_ms() >= deadline) {
			md_err(c, "the mediator did not answer in time");
			return VEIL_ETIMEOUT;
		}
		int rc = veil_conn_md_read(c, deadline);
		if (rc != 0)
			return rc;
	}
}

int veil_conn_md_wait_type(struct veil_conn *c, uint8_t want, int timeout_ms, uint8_t **payload,
                           size_t *len)
{
	uint8_t type;
	return veil_conn_md_wait_types(c, &want, 1, timeout_ms, &type, payload, len);
}

int veil_conn_md_state(const struct veil_conn *c, int *dry, int *leader, int *overflow)
{
	if (c->md == NULL)
		return VEIL_EINVAL;
	if (dry != NULL)
		*dry = c->md->dry;
	if (leader != NULL)
		*leader = c->md->leader;
	if (overflow != NULL)
		*overflow = c->md->overflow;
	return 0;
}

const struct veil_md_keys *veil_conn_md_keys(const struct veil_conn *c)
{
	return c->md != NULL ? &c->md->keys : NULL;
}

const struct veil_md_server_info *veil_conn_md_server_info(const struct veil_conn *c)
{
	return c->md != NULL ? &c->md->si : NULL;
}
