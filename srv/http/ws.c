/*
 * WebSocket routes on the HTTP listener's lws context. Each connection
 * keeps a queue of whole messages and writes a burst of them per writable
 * callback, so a slow peer costs memory up to VEIL_HTTP_WS_MAX_QUEUED,
 * never a blocked thread.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_int.h"

/* One queued message, with LWS_PRE bytes of head room for lws. */
struct http_msg {
	struct http_msg *next;
	size_t len;
	uint8_t data[];
};

struct http_queue {
	struct http_msg *head, *tail;
	size_t bytes;
};

static int queue_push(struct http_queue *q, const uint8_t *p, size_t n)
{
	if (q->bytes + n > VEIL_HTTP_WS_MAX_QUEUED)
		return VEIL_ELIMIT;
	struct http_msg *m = malloc(sizeof *m + LWS_PRE + n);
	if (m == NULL)
		return VEIL_ENOMEM;
	m->next = NULL;
	m->len = n;
	if (n > 0)
		memcpy(m->data + LWS_PRE, p, n);
	if (q->tail != NULL)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->bytes += n;
	return 0;
}

static void queue_pop(struct http_queue *q)
{
	struct http_msg *m = q->head;
	if (m == NULL)
		return;
	q->head = m->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->bytes -= m->len;
	free(m);
}

static void queue_clear(struct http_queue *q)
{
	while (q->head != NULL)
		queue_pop(q);
}

/* --- WebSocket --- */

struct veil_http_ws {
	struct lws *wsi;
	const struct http_ws_route *route;
	void *ctx;
	struct http_queue out;
	struct veil_buf *rx; /* a message being reassembled (made when one comes in pieces) */
	void *rxb;           /* lws's receive buffer for it (lwsmem.c), NULL if not known */
	uint16_t close_code; /* non-zero: close once out is empty */
	uint16_t peer_close; /* the code of the peer's close frame, 0 if none came */
	unsigned established : 1;
	unsigned active : 1;  /* a message came since the last sweep */
	unsigned rx_skip : 1; /* dropping the rest of a message */
};

int veil_http_ws_send(struct veil_http_ws *c, const uint8_t *p, size_t n)
{
	if (c->close_code != 0)
		return VEIL_ECLOSED;
	int rc = queue_push(&c->out, p, n);
	if (rc == 0 && c->established)
		lws_callback_on_writable(c->wsi);
	return rc;
}

size_t veil_http_ws_queued(const struct veil_http_ws *c)
{
	return c->out.bytes;
}

void veil_http_ws_timer(struct veil_http_ws *c, uint32_t ms)
{
	lws_set_timer_usecs(c->wsi, ms > 0 ? (lws_usec_t)ms * 1000 : LWS_SET_TIMER_USEC_CANCEL);
}

void veil_http_ws_rx_pause(struct veil_http_ws *c, int pause)
{
	lws_rx_flow_control(c->wsi, pause ? 0 : 1);
}

int veil_http_ws_peer_close_code(const struct veil_http_ws *c)
{
	return c->peer_close;
}

void veil_http_ws_close(struct veil_http_ws *c, int code)
{
	if (c->close_code != 0)
		return;
	c->close_code = code;
	if (c->established)
		lws_callback_on_writable(c->wsi);
}

/* Ends the connection's state: tells the route once and frees it. */
static void ws_finish(struct veil_http_ws **slot)
{
	struct veil_http_ws *c = *slot;
	if (c == NULL)
		return;
	*slot = NULL;
	if (c->ctx != NULL)
		c->route->ops->closed(c->ctx);
	queue_clear(&c->out);
	veil_buf_drop(&c->rx);
	free(c);
}

static int ws_filter(struct http_ws_table *t, struct lws *wsi, struct veil_http_ws **slot)
{
	char path[VEIL_HTTP_MAX_PATH], client[VEIL_HTTP_CLIENT_LEN];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
	if (n <= 0 || (size_t)n >= sizeof path ||
	    lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0)
		return -1;
	const struct http_ws_route *r = NULL;
	for (size_t i = 0; i < t->n; i++)
		if (strncmp(path, t->r[i].prefix, t->r[i].plen) == 0) {
			r = &t->r[i];
			break;
		}
	if (r == NULL || *slot != NULL)
		return -1;
	http_client_addr(wsi, client, sizeof client);
	struct veil_http_ws *c = calloc(1, sizeof *c);
	if (c == NULL)
		return -1;
	c->wsi = wsi;
	c->route = r;
	*slot = c;
	void *ctx = NULL;
	if (r->ops->open(r->arg, c, path, client, &ctx) != 0 || ctx == NULL) {
		ws_finish(slot);
		return -1;
	}
	c->ctx = ctx;
	return 0;
}

static int ws_receive(struct veil_http_ws *c, const uint8_t *in, size_t len)
{
	if (c->close_code != 0)
		return 0;
	c->active = 1;
	if (lws_is_first_fragment(c->wsi)) {
		if (c->rx != NULL)
			veil_buf_reset(c->rx);
		c->rx_skip = 0;
		if (!lws_frame_is_binary(c->wsi)) {
			veil_http_ws_close(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE);
			return 0;
		}
	}
	if (c->rx_skip)
		return 0;
	if ((c->rx == NULL || c->rx->len == 0) && lws_is_final_fragment(c->wsi) &&
	    lws_remaining_packet_payload(c->wsi) == 0) {
		/* A whole message in one piece (the usual case): no copy. */
		if (len > c->route->max_message) {
			veil_http_ws_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
			return 0;
		}
		c->route->ops->message(c->ctx, in != NULL ? in : (const uint8_t *)"", len);
		return 0;
	}
	if (veil_buf_lazy(&c->rx, c->route->max_message) == NULL ||
	    veil_buf_append(c->rx, in, len) != 0) {
		c->rx_skip = 1;
		veil_http_ws_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
		return 0;
	}
	if (lws_is_final_fragment(c->wsi) && lws_remaining_packet_payload(c->wsi) == 0) {
		c->route->ops->message(c->ctx, c->rx->p != NULL ? c->rx->p : (const uint8_t *)"",
		                       c->rx->len);
		veil_buf_reset(c->rx);
	}
	return 0;
}

/* Frames written in one go when several messages are queued. */
#define WS_COALESCE_MAX (64u * 1024u)

/*
 * Writes the messages at the head of the queue: one as lws frames it, or,
 * when more are queued, as many whole frames as fit in WS_COALESCE_MAX
 * framed here (server frames are unmasked; no extension is negotiated) and
 * written as one raw write, so a busy connection costs one send and one
 * pass of the loop per burst rather than per message. lws keeps what the
 * socket does not take and writes it before the next writable callback.
 */
static int ws_write_head(struct veil_http_ws *c)
{
	static _Thread_local uint8_t buf[LWS_PRE + WS_COALESCE_MAX];
	struct http_msg *m = c->out.head;
	size_t o = LWS_PRE;
	if (m->next == NULL || m->len + m->next->len + 20 > WS_COALESCE_MAX) {
		if (lws_write(c->wsi, m->data + LWS_PRE, m->len, LWS_WRITE_BINARY) != (int)m->len)
			return -1;
		queue_pop(&c->out);
		return 0;
	}
	while (m != NULL && (o - LWS_PRE) + m->len + 10 <= WS_COALESCE_MAX) {
		buf[o++] = 0x82; /* FIN, binary */
		if (m->len < 126) {
			buf[o++] = (uint8_t)m->len;
		} else if (m->len < 65536) {
			buf[o++] = 126;
			buf[o++] = (uint8_t)(m->len >> 8);
			buf[o++] = (uint8_t)m->len;
		} else {
			buf[o++] = 127;
			for (int i = 7; i >= 0; i--)
				buf[o++] = (uint8_t)((uint64_t)m->len >> (8 * i));
		}
		if (m->len > 0)
			memcpy(buf + o, m->data + LWS_PRE, m->len);
		o += m->len;
		queue_pop(&c->out);
		m = c->out.head;
	}
	size_t n = o - LWS_PRE;
	return lws_write(c->wsi, buf + LWS_PRE, n, LWS_WRITE_RAW) == (int)n ? 0 : -1;
}

static int ws_writable(struct veil_http_ws *c)
{
	struct http_msg *m = c->out.head;
	if (m != NULL) {
		if (ws_write_head(c) != 0)
			return -1;
		if (c->out.head != NULL) {
			lws_callback_on_writable(c->wsi);
			return 0;
		}
		if (c->close_code == 0 && c->route->ops->drained != NULL) {
			c->route->ops->drained(c->ctx);
			return 0;
		}
		if (c->close_code != 0)
			lws_callback_on_writable(c->wsi); /* the close frame next */
		return 0;
	}
	if (c->close_code != 0) {
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, NULL, 0);
		return -1;
	}
	return 0;
}

int http_ws_callback(struct http_ws_table *t, struct lws *wsi, enum lws_callback_reasons reason,
                     struct veil_http_ws **slot, void *in, size_t len, int *handled)
{
	*handled = 1;
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* lws allocates the receive buffer between here and ESTABLISHED. */
		(void)http_lwsmem_last_rx();
		return slot != NULL ? ws_filter(t, wsi, slot) : -1;
	case LWS_CALLBACK_ESTABLISHED:
		if (slot == NULL || *slot == NULL)
			return -1;
		(*slot)->rxb = http_lwsmem_last_rx();
		(*slot)->established = 1;
		if ((*slot)->out.head != NULL || (*slot)->close_code != 0)
			lws_callback_on_writable(wsi);
		if ((*slot)->close_code == 0 && (*slot)->route->ops->established != NULL)
			(*slot)->route->ops->established((*slot)->ctx);
		return 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
		const uint8_t *b = in;
		if (slot != NULL && *slot != NULL && len >= 2)
			(*slot)->peer_close = b[0] << 8 | b[1];
		return 0; /* lws answers the close */
	}
	case LWS_CALLBACK_RECEIVE:
		if (slot == NULL || *slot == NULL)
			return -1;
		return ws_receive(*slot, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (slot == NULL || *slot == NULL)
			return -1;
		return ws_writable(*slot);
	case LWS_CALLBACK_TIMER:
		if (slot != NULL && *slot != NULL && (*slot)->close_code == 0 &&
		    (*slot)->ctx != NULL && (*slot)->route->ops->timer != NULL)
			(*slot)->route->ops->timer((*slot)->ctx);
		return 0;
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
		if (slot != NULL)
			ws_finish(slot);
		return 0;
	default: *handled = 0; return 0;
	}
}

void http_ws_sweep(struct veil_http_ws *c)
{
	if (c->active || !c->established) {
		c->active = 0;
		return;
	}
	/* Idle since the last sweep: what it holds for the next message goes. */
	if (c->rx != NULL && c->rx->len == 0)
		veil_buf_drop(&c->rx);
	/*
	 * lws's buffer holds bytes only while a control frame is partly read
	 * (payload still to come); data frames never pass through it.
	 */
	if (c->rxb != NULL && lws_remaining_packet_payload(c->wsi) == 0)
		(void)http_lwsmem_idle(c->rxb);
}
