/* SIGHUP: apply what can change, name what cannot (see reload.h). */
#include <stddef.h>
#include <string.h>

#include "reload.h"
#include "config.h"
#include "directory/directory.h"
#include "gateway/gateway.h"
#include "http/http.h"
#include "veil/util.h"

static const char *level_name(int l)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	return l >= 0 && l < (int)VEIL_ARRAY_LEN(names) ? names[l] : "?";
}

/* Settings a restart is needed for: the key and where it lives in struct veil_config. */
static const struct {
	const char *key;
	size_t off, len;
} fixed[] = {
#define F(key, field)                                                                              \
	{                                                                                          \
		key, offsetof(struct veil_config, field), sizeof(((struct veil_config *)0)->field) \
	}
    F("data", data_dir),
    F("store", store),
    F("blob-dir", blob_dir),
    F("listen", listen),
    F("chat-port", chat_port),
    F("http-port", http_port),
    F("public-host", public_host),
    F("public-url", public_url),
    F("public-chat", public_chat_host),
    F("public-chat", public_chat_port),
    F("trusted-proxy", trusted_proxies),
    F("trusted-proxy", n_trusted_proxies),
    F("queue-limit", queue_limit),
    F("queue-sender-limit", queue_sender_limit),
    F("http-max-body", http_max_body),
    F("http-conn-per-addr", http_conn_per_addr),
    F("http-conn-rate", http_conn_rate_per_min),
    F("blob-quota", blob_quota),
    F("blob-ttl", blob_ttl_s),
    F("blob-persist-ttl", blob_persist_ttl_s),
    F("store-check-ms", store_check_ms),
    F("store-reserve-mb", store_reserve_mb),
    F("chat-conn-per-addr", chat_conn_per_addr),
    F("chat-handshakes-per-addr", chat_handshakes_per_addr),
    F("chat-conn-rate", chat_conn_rate_per_min),
    F("mediator-max-slots", md_max_slots),
    F("mediator-tx-ttl", md_tx_ttl_s),
    F("mediator-handshake-timeout", md_hs_timeout_s),
    F("mediator-queue-limit", md_queue_limit),
    F("mediator-volatile-ttl", md_volatile_ttl_s),
    F("rendezvous-wait", rdv_wait_s),
    F("rendezvous-max-paths", rdv_max_paths),
    F("rendezvous-paths-per-addr", rdv_paths_per_addr),
    F("gateway-basic", gw_basic),
    F("gateway-callbacks", gw_callbacks),
    F("chat-threads", chat_threads),
    F("gateway-rate", gw_rate_per_min),
    F("gateway-retry-max", gw_retry_max_s),
    F("smtp-url", smtp_url),
    F("smtp-from", smtp_from),
    F("sms-webhook", sms_webhook),
    F("link-code-ttl", link_code_ttl_s),
    F("link-rate", link_rate_per_min),
    F("match-rate", match_rate_per_min),
    F("oprf-rate", oprf_rate_per_min),
    F("revoke-rate", revoke_rate_per_min),
    F("admin-listen", admin_listen_host),
    F("admin-listen", admin_listen_port),
#undef F
};

int veil_reload_apply(struct veil_server *srv, struct veil_http *http,
                      const struct veil_config *next)
{
	struct veil_config *cur = &srv->cfg;
	int changed = 0;
	const char *said = NULL;
	for (size_t i = 0; i < VEIL_ARRAY_LEN(fixed); i++) {
		const char *a = (const char *)cur + fixed[i].off,
		           *b = (const char *)next + fixed[i].off;
		if (memcmp(a, b, fixed[i].len) == 0 ||
		    (said != NULL && strcmp(said, fixed[i].key) == 0))
			continue;
		said = fixed[i].key;
		veil_log_warn("reload: %s changed in the configuration but needs a restart; the "
		              "running value stays",
		              fixed[i].key);
	}
	if (cur->log_level != next->log_level) {
		veil_log_info("reload: log-level %s -> %s", level_name(cur->log_level),
		              level_name(next->log_level));
		cur->log_level = next->log_level;
		veil_log_set_level((enum veil_log_level)next->log_level);
		changed++;
	}
	if (cur->signup != next->signup) {
		veil_log_info("reload: signup %s -> %s", veil_signup_name(cur->signup),
		              veil_signup_name(next->signup));
		__atomic_store_n(&cur->signup, next->signup, __ATOMIC_RELAXED);
		changed++;
	}
	if (cur->log_ip != next->log_ip) {
		veil_log_info("reload: log-ip %d -> %d", cur->log_ip, next->log_ip);
		__atomic_store_n(&cur->log_ip, next->log_ip, __ATOMIC_RELAXED);
		changed++;
	}
	static const struct {
		const char *key;
		size_t off;
		const char *p1, *p2;
	} rates[] = {
	    {"dir-rate", offsetof(struct veil_config, dir_rate_per_min), "/directory/",
	     VEIL_DIRSVC_PROVISIONING_PATH},
	    {"blob-rate", offsetof(struct veil_config, blob_rate_per_min), "/blob/", NULL},
	    {"gateway-addr-rate", offsetof(struct veil_config, gw_addr_rate_per_min),
	     VEIL_GW_PREFIX, NULL},
	};
	for (size_t i = 0; i < VEIL_ARRAY_LEN(rates); i++) {
		uint32_t *c = (uint32_t *)((char *)cur + rates[i].off);
		uint32_t n = *(const uint32_t *)((const char *)next + rates[i].off);
		if (*c == n)
			continue;
		int rc = veil_http_limit_set(http, rates[i].p1, n);
		if (rc == 0 && rates[i].p2 != NULL)
			rc = veil_http_limit_set(http, rates[i].p2, n);
		if (rc != 0) {
			veil_log_warn("reload: %s cannot change from %u now (no such limit is "
			              "running); it needs a restart",
			              rates[i].key, (unsigned)*c);
			continue;
		}
		veil_log_info("reload: %s %u -> %u a minute", rates[i].key, (unsigned)*c,
		              (unsigned)n);
		*c = n;
		changed++;
	}
	if (cur->queue_ttl_s != next->queue_ttl_s) {
		veil_log_info("reload: queue-ttl %u -> %u s", (unsigned)cur->queue_ttl_s,
		              (unsigned)next->queue_ttl_s);
		__atomic_store_n(&cur->queue_ttl_s, next->queue_ttl_s, __ATOMIC_RELAXED);
		changed++;
	}
	if (cur->handoff_ms != next->handoff_ms) {
		veil_log_info("reload: handoff-ms %u -> %u", (unsigned)cur->handoff_ms,
		              (unsigned)next->handoff_ms);
		__atomic_store_n(&cur->handoff_ms, next->handoff_ms, __ATOMIC_RELAXED);
		changed++;
	}
	if (cur->chat_coalesce_us != next->chat_coalesce_us) {
		veil_log_info("reload: chat-coalesce-us %u -> %u", (unsigned)cur->chat_coalesce_us,
		              (unsigned)next->chat_coalesce_us);
		__atomic_store_n(&cur->chat_coalesce_us, next->chat_coalesce_us, __ATOMIC_RELAXED);
		changed++;
	}
	if (cur->blob_max_size != next->blob_max_size) {
		veil_log_info("reload: blob-max-size %llu -> %llu bytes",
		              (unsigned long long)cur->blob_max_size,
		              (unsigned long long)next->blob_max_size);
		__atomic_store_n(&cur->blob_max_size, next->blob_max_size, __ATOMIC_RELAXED);
		changed++;
	}
	veil_log_info("reload: done, %d setting%s changed", changed, changed == 1 ? "" : "s");
	return changed;
}
