/* veild configuration: defaults, command line, config file, server keys. */
#ifndef VEIL_SRV_CONFIG_H
#define VEIL_SRV_CONFIG_H

#include "server.h"

/* ./var/veil, or /var/lib/veil in the installed binaries (srv/paths.c). */
extern const char veil_default_data_dir[];
/* The config file read when --config is not given: "" (none) or /etc/veil/veild.conf. */
extern const char veil_default_config[];

void veil_config_defaults(struct veil_config *cfg);
/*
 * Applies one setting by its name (the long flag without "--", e.g.
 * "chat-port"). Returns 0, or VEIL_EINVAL with a message in err.
 */
int veil_config_set(struct veil_config *cfg, const char *key, const char *value, char *err,
                    size_t errcap);
/*
 * --public-url: an http:// or https:// URL with a host (name, IPv4, or IPv6
 * in brackets), an optional port and path, no query, fragment or user
 * part. Writes it to out without final '/'s. 0 or VEIL_EINVAL.
 */
int veil_config_parse_public_url(const char *v, char *out, size_t cap);
/* HOST:PORT (an IPv6 host in brackets, written to host without them). 0 or VEIL_EINVAL. */
int veil_config_parse_hostport(const char *v, char *host, size_t cap, uint16_t *port);
/* cfg->signup, or for VEIL_SIGNUP_DEFAULT what it stands for (by cfg->listen). */
int veil_config_signup(const struct veil_config *cfg);
/* "open", "invite", "closed" (or "default" before veil_config_check). */
const char *veil_signup_name(int signup);
/* Reads an INI file of key = value lines (an optional [veild] section). */
int veil_config_load(struct veil_config *cfg, const char *path, char *err, size_t errcap);
/*
 * Checks the settings against each other once all are read, and fills in
 * defaults that depend on others (queue-sender-limit: a tenth of
 * queue-limit, at least 1; signup: open when listening on loopback with
 * nothing published (no public-url, public-host, public-chat or
 * trusted-proxy), else invite). Returns 0, or VEIL_EINVAL with a message in
 * err.
 */
int veil_config_check(struct veil_config *cfg, char *err, size_t errcap);

/*
 * Loads the server's keys from cfg->data_dir, creating them (mode 0600) on
 * first start. Secrets land in sodium_malloc'd memory.
 */
int veil_server_keys_load(struct veil_server_keys *k, const char *data_dir, char *err,
                          size_t errcap);
void veil_server_keys_free(struct veil_server_keys *k);

#endif
