/* veild configuration and long-term keys. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "config.h"

void veil_config_defaults(struct veil_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", veil_default_data_dir);
	snprintf(cfg->listen, sizeof cfg->listen, "%s", "127.0.0.1");
	cfg->chat_port = 5222;
	cfg->http_port = 8080;
	cfg->queue_ttl_s = 14 * 24 * 3600;
	cfg->queue_limit = 10000;
	cfg->handoff_ms = 100;
	cfg->http_max_body = 64 * 1024;
	cfg->dir_rate_per_min = 120;
	cfg->http_conn_per_addr = 64;
	cfg->http_conn_rate_per_min = 600;
	cfg->blob_rate_per_min = 600;
	cfg->blob_max_size = 100ull * 1024 * 1024;
	cfg->blob_quota = 1024ull * 1024 * 1024;
	cfg->blob_ttl_s = 14 * 24 * 3600;
	cfg->blob_persist_ttl_s = 90 * 24 * 3600;
	cfg->safe_max_size = 512u * 1024u;
	cfg->safe_retention_days = 180;
	cfg->safe_rate_per_min = 60;
	cfg->safe_max_backups = 100000;
	cfg->link_code_ttl_s = 600;
	cfg->link_rate_per_min = 3;
	cfg->match_rate_per_min = 4000;
	cfg->oprf_rate_per_min = 600;
	cfg->revoke_rate_per_min = 5;
	cfg->chat_conn_per_addr = 1000;
	cfg->chat_handshakes_per_addr = 32;
	cfg->chat_conn_rate_per_min = 1200;
	cfg->store_check_ms = 10000;
	cfg->store_reserve_mb = 64;
	cfg->md_max_slots = 4;
	cfg->md_tx_ttl_s = 60;
	cfg->rdv_wait_s = 120;
	cfg->rdv_max_paths = 256;
	cfg->rdv_paths_per_addr = 8;
	cfg->md_hs_timeout_s = 10;
	cfg->md_queue_limit = 100000;
	cfg->md_volatile_ttl_s = 300;
	cfg->gw_basic = 1;
	cfg->gw_callbacks = 1;
	cfg->gw_rate_per_min = 6000;
	cfg->gw_addr_rate_per_min = 6000;
	cfg->gw_retry_max_s = 600;
	cfg->log_level = VEIL_LOG_INFO;
	cfg->push_interval_s = 60;
	cfg->push_rate_per_min = 600;
}

static int parse_uint(const char *v, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	if (*v == 0 || *v == '-' || *v == '+')
		return VEIL_EINVAL;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno != 0 || *end != 0 || n < min || n > max)
		return VEIL_EINVAL;
	*out = n;
	return 0;
}

static int set_str(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n >= cap)
		return VEIL_EINVAL;
	memcpy(dst, v, n + 1);
	return 0;
}

/* A character that may stand in a URL or host as given in the configuration. */
static int url_char(char c)
{
	return c > 0x20 && c < 0x7f && strchr("\"<>\\^`{|}", c) == NULL;
}

/* Parses a decimal port 1..65535 of exactly n characters. */
static int parse_port(const char *p, size_t n, uint16_t *out)
{
	char tmp[8];
	unsigned long v;
	if (n == 0 || n >= sizeof tmp)
		return VEIL_EINVAL;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	if (parse_uint(tmp, 1, 65535, &v) != 0)
		return VEIL_EINVAL;
	*out = (uint16_t)v;
	return 0;
}

/*
 * Checks a host and optional ":port" (host in brackets if it is an IPv6
 * literal) of n characters. With need_port the port must be there.
 */
static int parse_hostport(const char *s, size_t n, int need_port, size_t *host_off,
                          size_t *host_len, uint16_t *port)
{
	size_t hl, rest;
	*port = 0;
	if (n == 0)
		return VEIL_EINVAL;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (close == NULL || close == s + 1)
			return VEIL_EINVAL;
		*host_off = 1;
		hl = (size_t)(close - s) - 1;
		for (size_t i = 1; i <= hl; i++)
			if (!(s[i] == ':' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
			      (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
				return VEIL_EINVAL;
		rest = hl + 2;
	} else {
		*host_off = 0;
		hl = 0;
		while (hl < n && s[hl] != ':')
			hl++;
		if (hl == 0)
			return VEIL_EINVAL;
		for (size_t i = 0; i < hl; i++)
			if (!(s[i] == '.' || s[i] == '-' || s[i] == '_' ||
			      (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
			      (s[i] >= 'A' && s[i] <= 'Z')))
				return VEIL_EINVAL;
		rest = hl;
	}
	*host_len = hl;
	if (rest == n)
		return need_port ? VEIL_EINVAL : 0;
	if (s[rest] != ':')
		return VEIL_EINVAL;
	return parse_port(s + rest + 1, n - rest - 1, port);
}

int veil_config_parse_public_url(const char *v, char *out, size_t cap)
{
	size_t n = strlen(v), skip;
	if (strncmp(v, "https://", 8) == 0)
		skip = 8;
	else if (strncmp(v, "http://", 7) == 0)
		skip = 7;
	else
		return VEIL_EINVAL;
	while (n > skip && v[n - 1] == '/')
		n--;
	if (n >= cap)
		return VEIL_EINVAL;
	for (size_t i = skip; i < n; i++)
		if (!url_char(v[i]) || v[i] == '?' || v[i] == '#' || v[i] == '@')
			return VEIL_EINVAL;
	const char *slash = memchr(v + skip, '/', n - skip);
	size_t auth = slash != NULL ? (size_t)(slash - v) - skip : n - skip;
	size_t ho, hl;
	uint16_t port;
	if (parse_hostport(v + skip, auth, 0, &ho, &hl, &port) != 0)
		return VEIL_EINVAL;
	memcpy(out, v, n);
	out[n] = '\0';
	return 0;
}

int veil_config_parse_hostport(const char *v, char *host, size_t cap, uint16_t *port)
{
	size_t ho, hl;
	if (parse_hostport(v, strlen(v), 1, &ho, &hl, port) != 0 || hl >= cap)
		return VEIL_EINVAL;
	memcpy(host, v + ho, hl);
	host[hl] = '\0';
	return 0;
}

int veil_config_set(struct veil_config *cfg, const char *key, const char *v, char *err,
                    size_t errcap)
{
	unsigned long n = 0;
	int rc;
	enum veil_log_level lvl;
	if (strcmp(key, "data") == 0)
		rc = set_str(cfg->data_dir, sizeof cfg->data_dir, v);
	else if (strcmp(key, "web-root") == 0)
		rc = set_str(cfg->web_root, sizeof cfg->web_root, v);
	else if (strcmp(key, "blob-dir") == 0)
		rc = set_str(cfg->blob_dir, sizeof cfg->blob_dir, v);
	else if (strcmp(key, "store") == 0) {
		/* The URL may hold a password: the error never repeats it. */
		if (!veil_store_is_url(v) || set_str(cfg->store, sizeof cfg->store, v) != 0) {
			snprintf(
			    err, errcap,
			    "invalid value for store: a postgresql:// or postgres:// URL of at "
			    "most %zu characters",
			    sizeof cfg->store - 1);
			return VEIL_EINVAL;
		}
		rc = 0;
	} else if (strcmp(key, "listen") == 0)
		rc = set_str(cfg->listen, sizeof cfg->listen, v);
	else if (strcmp(key, "public-host") == 0)
		rc = set_str(cfg->public_host, sizeof cfg->public_host, v);
	else if (strcmp(key, "public-url") == 0)
		rc = veil_config_parse_public_url(v, cfg->public_url, sizeof cfg->public_url);
	else if (strcmp(key, "signup") == 0) {
		rc = 0;
		if (strcmp(v, "open") == 0)
			cfg->signup = VEIL_SIGNUP_OPEN;
		else if (strcmp(v, "invite") == 0)
			cfg->signup = VEIL_SIGNUP_INVITE;
		else if (strcmp(v, "closed") == 0)
			cfg->signup = VEIL_SIGNUP_CLOSED;
		else
			rc = VEIL_EINVAL;
	} else if (strcmp(key, "trusted-proxy") == 0) {
		if (cfg->n_trusted_proxies >= VEIL_MAX_TRUSTED_PROXIES) {
			snprintf(err, errcap, "trusted-proxy: at most %d addresses or ranges",
			         VEIL_MAX_TRUSTED_PROXIES);
			return VEIL_EINVAL;
		}
		rc = veil_cidr_parse(v, &cfg->trusted_proxies[cfg->n_trusted_proxies]);
		if (rc == 0)
			cfg->n_trusted_proxies++;
	} else if (strcmp(key, "chat-address") == 0) {
		if (cfg->n_chat_addrs >= VEIL_MAX_CHAT_ADDRS) {
			snprintf(err, errcap, "chat-address: at most %d addresses",
			         VEIL_MAX_CHAT_ADDRS);
			return VEIL_EINVAL;
		}
		rc = veil_config_parse_hostport(v, cfg->chat_addrs[cfg->n_chat_addrs].host,
		                                sizeof cfg->chat_addrs[0].host,
		                                &cfg->chat_addrs[cfg->n_chat_addrs].port);
		if (rc == 0)
			cfg->n_chat_addrs++;
	} else if (strcmp(key, "public-chat") == 0)
		rc = veil_config_parse_hostport(
		    v, cfg->public_chat_host, sizeof cfg->public_chat_host, &cfg->public_chat_port);
	else if (strcmp(key, "chat-port") == 0) {
		if ((rc = parse_uint(v, 1, 65535, &n)) == 0)
			cfg->chat_port = (uint16_t)n;
	} else if (strcmp(key, "http-port") == 0) {
		if ((rc = parse_uint(v, 1, 65535, &n)) == 0)
			cfg->http_port = (uint16_t)n;
	} else if (strcmp(key, "queue-ttl") == 0) {
		if ((rc = parse_uint(v, 60, 365ul * 24 * 3600, &n)) == 0)
			cfg->queue_ttl_s = (uint32_t)n;
	} else if (strcmp(key, "queue-limit") == 0) {
		if ((rc = parse_uint(v, 1, 10000000, &n)) == 0)
			cfg->queue_limit = (uint32_t)n;
	} else if (strcmp(key, "queue-sender-limit") == 0) {
		if ((rc = parse_uint(v, 1, 10000000, &n)) == 0)
			cfg->queue_sender_limit = (uint32_t)n;
	} else if (strcmp(key, "chat-threads") == 0) {
		if ((rc = parse_uint(v, 0, VEIL_CHAT_MAX_THREADS, &n)) == 0)
			cfg->chat_threads = (uint32_t)n;
	} else if (strcmp(key, "chat-coalesce-us") == 0) {
		if ((rc = parse_uint(v, 0, 5000, &n)) == 0)
			cfg->chat_coalesce_us = (uint32_t)n;
	} else if (strcmp(key, "handoff-ms") == 0) {
		if ((rc = parse_uint(v, 0, 10000, &n)) == 0)
			cfg->handoff_ms = (uint32_t)n;
	} else if (strcmp(key, "http-max-body") == 0) {
		if ((rc = parse_uint(v, 1024, 16ul * 1024 * 1024, &n)) == 0)
			cfg->http_max_body = (uint32_t)n;
	} else if (strcmp(key, "dir-rate") == 0) {
		if ((rc = parse_uint(v, 1, 1000000, &n)) == 0)
			cfg->dir_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "http-conn-per-addr") == 0) {
		if ((rc = parse_uint(v, 1, 4096, &n)) == 0)
			cfg->http_conn_per_addr = (uint32_t)n;
	} else if (strcmp(key, "http-conn-rate") == 0) {
		if ((rc = parse_uint(v, 1, 1000000, &n)) == 0)
			cfg->http_conn_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "mediator-max-slots") == 0) {
		if ((rc = parse_uint(v, 1, 64, &n)) == 0)
			cfg->md_max_slots = (uint32_t)n;
	} else if (strcmp(key, "mediator-tx-ttl") == 0) {
		if ((rc = parse_uint(v, 1, 3600, &n)) == 0)
			cfg->md_tx_ttl_s = (uint32_t)n;
	} else if (strcmp(key, "rendezvous-wait") == 0) {
		if ((rc = parse_uint(v, 1, 3600, &n)) == 0)
			cfg->rdv_wait_s = (uint32_t)n;
	} else if (strcmp(key, "rendezvous-max-paths") == 0) {
		if ((rc = parse_uint(v, 1, 1000000, &n)) == 0)
			cfg->rdv_max_paths = (uint32_t)n;
	} else if (strcmp(key, "rendezvous-paths-per-addr") == 0) {
		if ((rc = parse_uint(v, 1, 100000, &n)) == 0)
			cfg->rdv_paths_per_addr = (uint32_t)n;
	} else if (strcmp(key, "mediator-handshake-timeout") == 0) {
		if ((rc = parse_uint(v, 1, 300, &n)) == 0)
			cfg->md_hs_timeout_s = (uint32_t)n;
	} else if (strcmp(key, "mediator-queue-limit") == 0) {
		if ((rc = parse_uint(v, 1, 10000000, &n)) == 0)
			cfg->md_queue_limit = (uint32_t)n;
	} else if (strcmp(key, "mediator-volatile-ttl") == 0) {
		if ((rc = parse_uint(v, 0, 86400, &n)) == 0)
			cfg->md_volatile_ttl_s = (uint32_t)n;
	} else if (strcmp(key, "gateway-basic") == 0) {
		if ((rc = parse_uint(v, 0, 1, &n)) == 0)
			cfg->gw_basic = (int)n;
	} else if (strcmp(key, "gateway-callbacks") == 0) {
		if ((rc = parse_uint(v, 0, 1, &n)) == 0)
			cfg->gw_callbacks = (int)n;
	} else if (strcmp(key, "gateway-rate") == 0) {
		if ((rc = parse_uint(v, 1, 100000000, &n)) == 0)
			cfg->gw_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "gateway-addr-rate") == 0) {
		if ((rc = parse_uint(v, 1, 100000000, &n)) == 0)
			cfg->gw_addr_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "gateway-retry-max") == 0) {
		if ((rc = parse_uint(v, 1, 86400, &n)) == 0)
			cfg->gw_retry_max_s = (uint32_t)n;
	} else if (strcmp(key, "smtp-url") == 0) {
		rc = set_str(cfg->smtp_url, sizeof cfg->smtp_url, v);
	} else if (strcmp(key, "smtp-from") == 0) {
		rc = set_str(cfg->smtp_from, sizeof cfg->smtp_from, v);
	} else if (strcmp(key, "sms-webhook") == 0) {
		rc = set_str(cfg->sms_webhook, sizeof cfg->sms_webhook, v);
	} else if (strcmp(key, "link-code-ttl") == 0) {
		if ((rc = parse_uint(v, 60, 86400, &n)) == 0)
			cfg->link_code_ttl_s = (uint32_t)n;
	} else if (strcmp(key, "link-rate") == 0) {
		if ((rc = parse_uint(v, 1, 1000000, &n)) == 0)
			cfg->link_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "match-rate") == 0) {
		if ((rc = parse_uint(v, 1, 100000000, &n)) == 0)
			cfg->match_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "oprf-rate") == 0) {
		if ((rc = parse_uint(v, 1, 100000000, &n)) == 0)
			cfg->oprf_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "revoke-rate") == 0) {
		if ((rc = parse_uint(v, 1, 1000000, &n)) == 0)
			cfg->revoke_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "blob-rate") == 0) {
		if ((rc = parse_uint(v, 1, 1000000, &n)) == 0)
			cfg->blob_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "blob-max-size") == 0) {
		if ((rc = parse_uint(v, 1024, 64ul * 1024 * 1024 * 1024, &n)) == 0)
			cfg->blob_max_size = n;
	} else if (strcmp(key, "blob-quota") == 0) {
		if ((rc = parse_uint(v, 1024, ULONG_MAX, &n)) == 0)
			cfg->blob_quota = n;
	} else if (strcmp(key, "blob-ttl") == 0) {
		if ((rc = parse_uint(v, 1, 10ul * 365 * 24 * 3600, &n)) == 0)
			cfg->blob_ttl_s = (uint32_t)n;
	} else if (strcmp(key, "blob-persist-ttl") == 0) {
		if ((rc = parse_uint(v, 1, 10ul * 365 * 24 * 3600, &n)) == 0)
			cfg->blob_persist_ttl_s = (uint32_t)n;
	} else if (strcmp(key, "safe-max-size") == 0) {
		if ((rc = parse_uint(v, 0, 64ul * 1024 * 1024, &n)) == 0)
			cfg->safe_max_size = n;
	} else if (strcmp(key, "safe-retention-days") == 0) {
		if ((rc = parse_uint(v, 1, 3650, &n)) == 0)
			cfg->safe_retention_days = (uint32_t)n;
	} else if (strcmp(key, "safe-rate") == 0) {
		if ((rc = parse_uint(v, 1, 1000000, &n)) == 0)
			cfg->safe_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "safe-max-backups") == 0) {
		if ((rc = parse_uint(v, 1, 1000000000, &n)) == 0)
			cfg->safe_max_backups = n;
	} else if (strcmp(key, "chat-conn-per-addr") == 0) {
		if ((rc = parse_uint(v, 1, VEIL_CHAT_MAX_CONNECTIONS, &n)) == 0)
			cfg->chat_conn_per_addr = (uint32_t)n;
	} else if (strcmp(key, "chat-handshakes-per-addr") == 0) {
		if ((rc = parse_uint(v, 1, VEIL_CHAT_MAX_CONNECTIONS, &n)) == 0)
			cfg->chat_handshakes_per_addr = (uint32_t)n;
	} else if (strcmp(key, "chat-conn-rate") == 0) {
		if ((rc = parse_uint(v, 0, 100000000, &n)) == 0)
			cfg->chat_conn_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "store-reserve-mb") == 0) {
		if ((rc = parse_uint(v, 0, 65536, &n)) == 0)
			cfg->store_reserve_mb = (uint32_t)n;
	} else if (strcmp(key, "store-check-ms") == 0) {
		if ((rc = parse_uint(v, 0, 3600000, &n)) == 0)
			cfg->store_check_ms = (uint32_t)n;
	} else if (strcmp(key, "user") == 0) {
		rc = set_str(cfg->user, sizeof cfg->user, v);
	} else if (strcmp(key, "push-interval") == 0) {
		if ((rc = parse_uint(v, 1, 86400, &n)) == 0)
			cfg->push_interval_s = (uint32_t)n;
	} else if (strcmp(key, "push-rate") == 0) {
		if ((rc = parse_uint(v, 1, 1000000, &n)) == 0)
			cfg->push_rate_per_min = (uint32_t)n;
	} else if (strcmp(key, "push-allow-loopback-http") == 0) {
		if ((rc = parse_uint(v, 0, 1, &n)) == 0)
			cfg->push_allow_loopback_http = (int)n;
	} else if (strcmp(key, "admin-listen") == 0) {
		/* A bare port is on loopback: the metrics are not for the world. */
		if (v[0] != '\0' && strspn(v, "0123456789") == strlen(v)) {
			snprintf(cfg->admin_listen_host, sizeof cfg->admin_listen_host,
			         "127.0.0.1");
			if ((rc = parse_uint(v, 1, 65535, &n)) == 0)
				cfg->admin_listen_port = (uint16_t)n;
		} else {
			rc = veil_config_parse_hostport(v, cfg->admin_listen_host,
			                                sizeof cfg->admin_listen_host,
			                                &cfg->admin_listen_port);
		}
	} else if (strcmp(key, "log-ip") == 0) {
		if ((rc = parse_uint(v, 0, 1, &n)) == 0)
			cfg->log_ip = (int)n;
	} else if (strcmp(key, "log-level") == 0) {
		if ((rc = veil_log_parse_level(v, &lvl)) == 0)
			cfg->log_level = (int)lvl;
	} else {
		snprintf(err, errcap, "unknown setting '%s'", key);
		return VEIL_EINVAL;
	}
	if (rc != 0)
		snprintf(err, errcap, "invalid value for %s: '%s'", key, v);
	return rc;
}

/* Whether addr is a loopback address (127.0.0.0/8, ::1). */
static int is_loopback(const char *addr)
{
	struct veil_cidr lo[2];
	if (veil_cidr_parse("127.0.0.0/8", &lo[0]) != 0 || veil_cidr_parse("::1", &lo[1]) != 0)
		return 0;
	return veil_cidr_match_text(lo, 2, addr);
}

int veil_config_signup(const struct veil_config *cfg)
{
	/* SIGHUP may change it on the loop thread while the HTTP thread reads it. */
	int mode = __atomic_load_n(&cfg->signup, __ATOMIC_RELAXED);
	if (mode != VEIL_SIGNUP_DEFAULT)
		return mode;
	/* Open only while veild is for this machine alone: loopback and nothing published. */
	int local = is_loopback(cfg->listen) && cfg->public_url[0] == '\0' &&
	            cfg->public_host[0] == '\0' && cfg->public_chat_port == 0 &&
	            cfg->n_trusted_proxies == 0;
	return local ? VEIL_SIGNUP_OPEN : VEIL_SIGNUP_INVITE;
}

const char *veil_signup_name(int signup)
{
	switch (signup) {
	case VEIL_SIGNUP_OPEN: return "open";
	case VEIL_SIGNUP_INVITE: return "invite";
	case VEIL_SIGNUP_CLOSED: return "closed";
	default: return "default";
	}
}

int veil_config_check(struct veil_config *cfg, char *err, size_t errcap)
{
	/* Anyone who reaches a public listener could otherwise make identities. */
	cfg->signup = veil_config_signup(cfg);
	if (cfg->queue_sender_limit == 0) {
		cfg->queue_sender_limit = cfg->queue_limit / VEIL_STORE_SENDER_SHARE_DIV;
		if (cfg->queue_sender_limit == 0)
			cfg->queue_sender_limit = 1;
	}
	if (cfg->queue_sender_limit > cfg->queue_limit) {
		snprintf(err, errcap, "queue-sender-limit (%u) must not exceed queue-limit (%u)",
		         (unsigned)cfg->queue_sender_limit, (unsigned)cfg->queue_limit);
		return VEIL_EINVAL;
	}
	return 0;
}

struct ini_ctx {
	struct veil_config *cfg;
	char *err;
	size_t errcap;
	int rc;
};

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *x = user;
	if (section[0] != 0 && strcmp(section, "veild") != 0) {
		snprintf(x->err, x->errcap, "unknown section [%s]", section);
		x->rc = VEIL_EINVAL;
		return 0;
	}
	if (veil_config_set(x->cfg, name, value, x->err, x->errcap) != 0) {
		x->rc = VEIL_EINVAL;
		return 0;
	}
	return 1;
}

int veil_config_load(struct veil_config *cfg, const char *path, char *err, size_t errcap)
{
	struct ini_ctx x = {cfg, err, errcap, 0};
	int line = ini_parse(path, ini_cb, &x);
	if (line < 0) {
		snprintf(err, errcap, "cannot read %s", path);
		return VEIL_EIO;
	}
	if (x.rc != 0) {
		size_t n = strlen(err);
		snprintf(err + n, errcap - n, " (%s line %d)", path, line);
		return x.rc;
	}
	if (line > 0) {
		snprintf(err, errcap, "%s line %d: not a key = value line", path, line);
		return VEIL_EINVAL;
	}
	return 0;
}

/* Creates every missing directory of path with mode 0700. */
static int mkdirs(const char *path)
{
	char tmp[1024];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof tmp)
		return VEIL_EINVAL;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return VEIL_EIO;
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return VEIL_EIO;
	return 0;
}

/* Reads exactly n secret bytes from dir/name, or creates them with gen. */
static int key_file(const char *dir, const char *name, uint8_t *sec, size_t n,
                    void (*gen)(uint8_t *sec, size_t n), char *err, size_t errcap)
{
	char path[1100], tmp[1110];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t got = read(fd, sec, n);
		uint8_t extra;
		ssize_t more = read(fd, &extra, 1);
		close(fd);
		if (got != (ssize_t)n || more != 0) {
			snprintf(err, errcap, "%s: not a %zu-byte key file", path, n);
			return VEIL_EPROTO;
		}
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(err, errcap, "%s: %s", path, strerror(errno));
		return VEIL_EIO;
	}
	gen(sec, n);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, sec, n) != (ssize_t)n || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(tmp, path) != 0) {
		snprintf(err, errcap, "cannot write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return VEIL_EIO;
	}
	return 0;
}

static void gen_x25519(uint8_t *sec, size_t n)
{
	(void)n;
	uint8_t pk[32];
	veil_keypair(pk, sec);
}

static void gen_ed25519(uint8_t *sec, size_t n)
{
	(void)n;
	uint8_t pk[32];
	crypto_sign_keypair(pk, sec);
}

int veil_server_keys_load(struct veil_server_keys *k, const char *data_dir, char *err,
                          size_t errcap)
{
	int rc;
	memset(k, 0, sizeof *k);
	if (mkdirs(data_dir) != 0) {
		snprintf(err, errcap, "cannot create %s: %s", data_dir, strerror(errno));
		return VEIL_EIO;
	}
	k->csp_sk = sodium_malloc(32);
	k->dir_sk = sodium_malloc(32);
	k->sign_sk = sodium_malloc(64);
	if (k->csp_sk == NULL || k->dir_sk == NULL || k->sign_sk == NULL) {
		veil_server_keys_free(k);
		snprintf(err, errcap, "out of memory");
		return VEIL_ENOMEM;
	}
	if ((rc = key_file(data_dir, "chat.key", k->csp_sk, 32, gen_x25519, err, errcap)) != 0 ||
	    (rc = key_file(data_dir, "directory.key", k->dir_sk, 32, gen_x25519, err, errcap)) !=
	        0 ||
	    (rc = key_file(data_dir, "sign.key", k->sign_sk, 64, gen_ed25519, err, errcap)) != 0) {
		veil_server_keys_free(k);
		return rc;
	}
	veil_pubkey(k->csp_pk, k->csp_sk);
	veil_pubkey(k->dir_pk, k->dir_sk);
	crypto_sign_ed25519_sk_to_pk(k->sign_pk, k->sign_sk);
	return 0;
}

void veil_server_keys_free(struct veil_server_keys *k)
{
	sodium_free(k->csp_sk);
	sodium_free(k->dir_sk);
	sodium_free(k->sign_sk);
	k->csp_sk = k->dir_sk = k->sign_sk = NULL;
}
