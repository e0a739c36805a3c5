/*
 * Cuts the chat service's side of a CSP connection into whole messages:
 * server-hello (80 bytes), login-ack (32), then frames (u16 length || box).
 * The mediator sends each one in a proxy container of its own, which is
 * what the clients of the specification expect.
 */
#ifndef VEIL_SRV_MEDIATOR_CSPCUT_H
#define VEIL_SRV_MEDIATOR_CSPCUT_H

#include <stddef.h>
#include <stdint.h>

#include "veil/util.h"

struct md_cspcut {
	int stage;            /* 0: server-hello, 1: login-ack, 2: frames */
	struct veil_buf *buf; /* a message's start, while one waits (else NULL) */
};

void md_cspcut_init(struct md_cspcut *c);
void md_cspcut_release(struct md_cspcut *c);
/*
 * Feeds n bytes of the stream; calls fn once per whole message, in order (a
 * non-zero return from fn is returned at once). Any amount may come at
 * once: only the start of a message waits. VEIL_EPROTO for a frame length
 * over VEIL_CSP_MAX_FRAME.
 */
int md_cspcut_feed(struct md_cspcut *c, const uint8_t *p, size_t n,
                   int (*fn)(void *arg, const uint8_t *msg, size_t len), void *arg) VEIL_WUR;

#endif
