/*
 * The rendezvous relay (md-d2d-rendezvous.proto, "Relayed WebSocket"): a
 * WebSocket route on the HTTP listener at VEIL_RDV_PREFIX followed by 64
 * hex digits, the random rendezvous path. It pairs the first two
 * connections to a path and forwards every binary message of one, whole,
 * to the other. It learns nothing: what flows is end-to-end encrypted by
 * the two devices (lib/md/rendezvous.c).
 *
 * Close codes, as the specification has them: 4000 for a bad path, a full
 * path or a limit; 4003 when the peer did not come within --rendezvous-wait;
 * 4004 to the other side when one side went, except that a close code 1000
 * or 41xx of the side that went is passed on as is. Messages over 64 KiB
 * close with 1009.
 */
#ifndef VEIL_SRV_RENDEZVOUS_H
#define VEIL_SRV_RENDEZVOUS_H

#include "../server.h"
#include "../http/http.h"

#define VEIL_RDV_PREFIX "/rendezvous/"

/* Adds the relay's route to h (before run); it is freed by veil_http_stop. */
int veil_rdvsvc_register(struct veil_http *h, const struct veil_server *srv);

#endif
