/*
 * The mediator service (multi-device, D2M): a WebSocket route on the HTTP
 * listener at VEIL_MEDIATOR_PREFIX followed by the hex of a ClientUrlInfo.
 * It runs on the HTTP thread, keeps its store in DATA/mediator.db and
 * reaches the chat service for each connected device's own CSP session
 * over one TCP connection per device from veild itself, so the chat
 * service only ever sees the mediator's address (and does not count these
 * connections against its per-address limits).
 */
#ifndef VEIL_SRV_MEDIATOR_H
#define VEIL_SRV_MEDIATOR_H

#include "../server.h"
#include "../http/http.h"

#define VEIL_MEDIATOR_PREFIX "/mediator/"

/*
 * Opens the mediator's store and adds its route to h (before run); the
 * service is freed by veil_http_stop. Returns 0 or a negative veil_err.
 */
int veil_medsvc_register(struct veil_http *h, const struct veil_server *srv);

#endif
