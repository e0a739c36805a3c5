/*
 * Internal interface between the messenger's receive loop
 * (lib/client/messenger.c) and what the mediator delivers
 * (lib/client/md_rx.c). Not installed.
 */
#ifndef VEIL_CLIENT_RECV_INT_H
#define VEIL_CLIENT_RECV_INT_H

#include "veil/client.h"

/* Receipts whose server ack we wait for before disconnecting. */
#define PENDING_MAX 256

/* One receive session: veil_msgr_receive's or a long-running session's. */
struct recv_state {
	struct veil_msgr *m;
	struct veil_conn *c;
	int (*cb)(const struct veil_msgr_event *ev, void *ctx);
	void *ctx;
	int stop;
	int drained;                   /* the server sent queue-send-complete */
	uint64_t pending[PENDING_MAX]; /* IDs of our receipts not yet acked by the server */
	uint8_t pending_to[PENDING_MAX][VEIL_ID_LEN];
	size_t npending;
	/* Multi-device (through the mediator only). */
	int md_dry;         /* the reflection queue was delivered */
	uint64_t md_dry_at; /* when (monotonic ms) */
	int md_unblocked;   /* we lead and asked the chat service for incoming messages */
};

/* Reports an event to the session's callback (a non-zero answer stops it); returns 0. */
int veil_rx_emit(struct recv_state *s, struct veil_msgr_event *ev);
/* Reports a message that could not be handled as an error event; returns 0. */
int veil_rx_error(struct recv_state *s, const uint8_t *from, uint64_t msg_id, int err,
                  const char *fmt, ...) VEIL_PRINTF(5, 6);
/*
 * Handles every D2M message waiting in the connection's inbox: reflected
 * envelopes applied and acked, queue-dry noted, and, once promoted, CSP
 * unblock-incoming-messages sent. 0, or an error that ends the session
 * (storage or connection).
 */
int veil_rx_md_inbox(struct recv_state *s);

#endif
