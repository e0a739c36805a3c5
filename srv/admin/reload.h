/*
 * SIGHUP: what a changed config file may change in a running veild.
 *
 * Applied at once (each change logged with its old and new value): the
 * log level, sign-up mode, --log-ip, the per-address HTTP rates
 * (--dir-rate, --blob-rate, --gateway-addr-rate), --queue-ttl,
 * --handoff-ms and --blob-max-size. Every other setting that differs is
 * logged as needing a restart and keeps its running value (listen
 * addresses and ports, store, data directory, public URLs, queue limits,
 * ...). Connections are not touched.
 */
#ifndef VEIL_SRV_RELOAD_H
#define VEIL_SRV_RELOAD_H

#include "../server.h"

struct veil_http;

/*
 * Compares next (a whole new configuration, veil_config_check'ed) with
 * srv->cfg, applies what can change and logs the rest. Loop thread; http
 * may be NULL. Returns the number of settings changed.
 */
int veil_reload_apply(struct veil_server *srv, struct veil_http *http,
                      const struct veil_config *next);

#endif
