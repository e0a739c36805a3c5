/*
 * State shared by the services of one veild process: configuration, the
 * server's long-term keys and the store. Built by srv/main.c.
 */
#ifndef VEIL_SRV_SERVER_H
#define VEIL_SRV_SERVER_H

#include <stdint.h>

#include "veil/crypto.h"
#include "store/store.h"
#include "limit/cidr.h"

/* Most connections the chat service holds at once (all addresses together). */
#define VEIL_CHAT_MAX_CONNECTIONS 19000
#define VEIL_CHAT_MAX_THREADS 64 /* --chat-threads */
/*
 * Longest --public-url: the longest URL the provisioning document derives
 * from it ("/blob/{blobId}/done" added) must fit a client's VEIL_DIR_MAX_URL.
 */
#define VEIL_PUBLIC_URL_MAX 400
#define VEIL_MAX_TRUSTED_PROXIES 16 /* --trusted-proxy given at most this often */
#define VEIL_MAX_CHAT_ADDRS 8       /* --chat-address given at most this often */

/* Who may create an identity (--signup). */
enum veil_signup {
	VEIL_SIGNUP_DEFAULT = 0, /* not set: open on loopback, else invite (veil_config_check) */
	VEIL_SIGNUP_OPEN,
	VEIL_SIGNUP_INVITE,
	VEIL_SIGNUP_CLOSED,
};

struct veil_config {
	char data_dir[1024]; /* --data, default ./var/veil */
	/* --web-root, the browser client's files; "" = next to the binary (srv/web) */
	char web_root[1024];
	/* --store, a postgresql:// URL for the message store; "" = SQLite in data_dir */
	char store[1024];
	/* --blob-dir, where blob files live (several nodes may share it); "" = <data>/blobs */
	char blob_dir[1024];
	char listen[64];       /* --listen, default 127.0.0.1 */
	uint16_t chat_port;    /* --chat-port, default 5222 */
	uint16_t http_port;    /* --http-port, default 8080 */
	char public_host[256]; /* host name clients use in URLs, default = listen */
	/*
	 * --public-url: scheme, host, port and path prefix of the HTTP services as
	 * clients reach them (e.g. behind a TLS proxy), no final '/'; "" = the
	 * listener's own http://public_host:http_port.
	 */
	char public_url[VEIL_PUBLIC_URL_MAX];
	/* --public-chat HOST:PORT of the chat service as clients reach it; "" / 0 = own */
	char public_chat_host[256];
	uint16_t public_chat_port;
	/*
	 * --chat-address HOST:PORT (repeatable): every chat node of a deployment
	 * on one PostgreSQL store, in the order clients try them (chat.addresses
	 * of the provisioning document).
	 */
	struct {
		char host[256];
		uint16_t port;
	} chat_addrs[VEIL_MAX_CHAT_ADDRS];
	uint32_t n_chat_addrs;
	/* --trusted-proxy (repeatable): peers whose X-Forwarded-For / Forwarded count */
	struct veil_cidr trusted_proxies[VEIL_MAX_TRUSTED_PROXIES];
	uint32_t n_trusted_proxies;
	int signup;           /* enum veil_signup, --signup open|invite|closed */
	uint32_t queue_ttl_s; /* message TTL in the queue, default 14 days */
	uint32_t queue_limit; /* max queued messages per identity, default 10000 */
	/* max of those from one sender, <= queue_limit; 0 until veil_config_check = a tenth */
	uint32_t queue_sender_limit;
	uint32_t handoff_ms; /* wait this long for a live recipient's ack before storing, 0 = off */
	uint32_t chat_threads;     /* chat event loops (--chat-threads), 0 = one per CPU up to 8 */
	uint32_t chat_coalesce_us; /* --chat-coalesce-us: the chat loop polls at most this often */
	uint32_t http_max_body;    /* max HTTP request body, default 64 KiB */
	uint32_t dir_rate_per_min; /* directory requests per client address per minute */
	uint32_t http_conn_per_addr; /* --http-conn-per-addr, open HTTP connections per address */
	uint32_t http_conn_rate_per_min; /* --http-conn-rate, new HTTP connections/address/min */
	uint32_t blob_rate_per_min; /* --blob-rate, /blob/ requests per client address per minute */
	uint64_t blob_max_size;     /* --blob-max-size, largest blob in bytes, default 100 MiB */
	uint64_t blob_quota; /* --blob-quota, bytes of live blobs per identity, default 1 GiB */
	uint32_t blob_ttl_s; /* --blob-ttl, lifetime of a blob, default 14 days */
	uint32_t blob_persist_ttl_s; /* --blob-persist-ttl, of a persistent blob, default 90 days */
	int log_level;               /* enum veil_log_level */
	uint32_t store_check_ms;     /* --store-check-ms, integrity check at start, 0 = none */
	uint32_t store_reserve_mb;   /* --store-reserve-mb, disk kept free for acks, 0 = none */

	/* The Safe backup service (srv/safe). */
	uint64_t safe_max_size;       /* --safe-max-size, largest backup in bytes (0: no /safe/) */
	uint32_t safe_retention_days; /* --safe-retention-days, a backup's life after its upload */
	uint32_t safe_rate_per_min;   /* --safe-rate, /safe/ requests per address per minute */
	uint64_t safe_max_backups;    /* --safe-max-backups, backups kept at most */

	/* Per client address on the chat port (srv/chat/chat.c). */
	uint32_t chat_conn_per_addr;       /* --chat-conn-per-addr, connections in total */
	uint32_t chat_handshakes_per_addr; /* --chat-handshakes-per-addr, not yet logged in */
	uint32_t chat_conn_rate_per_min;   /* --chat-conn-rate, new connections a minute, 0 = any */

	/* Mediator (srv/mediator). */
	uint32_t md_max_slots;      /* --mediator-max-slots, devices per device group */
	uint32_t md_tx_ttl_s;       /* --mediator-tx-ttl, longest transaction (seconds) */
	uint32_t md_hs_timeout_s;   /* --mediator-handshake-timeout, D2M handshake (seconds) */
	uint32_t md_queue_limit;    /* --mediator-queue-limit, reflection queue per device */
	uint32_t md_volatile_ttl_s; /* --mediator-volatile-ttl, VOLATILE slot kept offline (s) */

	/* Rendezvous relay (srv/rendezvous). */
	uint32_t rdv_wait_s;         /* --rendezvous-wait, lifetime of an unpaired connection */
	uint32_t rdv_max_paths;      /* --rendezvous-max-paths, paths open at once in total */
	uint32_t rdv_paths_per_addr; /* --rendezvous-paths-per-addr, paths one address opened */

	/* Gateway (srv/gateway): the HTTP message API for bots. */
	int gw_basic;                  /* --gateway-basic, 0 refuses send_simple */
	int gw_callbacks;              /* --gateway-callbacks, 0: this node sends no callbacks */
	uint32_t gw_rate_per_min;      /* --gateway-rate, requests per API identity per minute */
	uint32_t gw_addr_rate_per_min; /* --gateway-addr-rate, requests per client address/min */
	uint32_t gw_retry_max_s; /* --gateway-retry-max, longest wait between callback tries */

	/* Contact linking and matching (srv/directory/contacts.c, srv/notify). */
	char smtp_url[256];           /* --smtp-url, relay for e-mail codes, "" = off */
	char smtp_from[256];          /* --smtp-from, sender address of e-mail codes */
	char sms_webhook[512];        /* --sms-webhook, SMS gateway URL, "" = off */
	uint32_t link_code_ttl_s;     /* --link-code-ttl, default 600 */
	uint32_t link_rate_per_min;   /* --link-rate, codes per identity per minute */
	uint32_t match_rate_per_min;  /* --match-rate, hashes per identity per minute */
	uint32_t oprf_rate_per_min;   /* --oprf-rate, OPRF evaluations per identity per minute */
	uint32_t revoke_rate_per_min; /* --revoke-rate, revocation-key tries per identity/min */

	/* Packaging and push wake-ups (srv/privdrop.c, srv/push). */
	char user[64];                /* --user, run as this user after binding; "" = stay */
	uint32_t push_interval_s;     /* --push-interval, one wake-up per identity per this */
	uint32_t push_rate_per_min;   /* --push-rate, wake-ups per minute in total */
	int push_allow_loopback_http; /* --push-allow-loopback-http, http:// to loopback (tests) */

	/* Operations (srv/metrics, main.c). */
	char admin_listen_host[64]; /* --admin-listen [ADDR:]PORT: /healthz, /metrics; "" = off */
	uint16_t admin_listen_port;
	int log_ip;             /* --log-ip 0|1: client addresses in log lines, cut to /24 or /48 */
	char config_path[1024]; /* --config FILE, re-read on SIGHUP; "" = none */
};

/*
 * The server's long-term keys, in sodium_malloc'd memory. csp: X25519 key
 * of the chat server (clients pin csp_pk). sign: Ed25519 key that signs the
 * provisioning document. dir: X25519 key whose public half is the
 * directory's tokenRespKeyPub.
 */
struct veil_server_keys {
	uint8_t csp_pk[VEIL_KEY_LEN];
	uint8_t *csp_sk; /* VEIL_KEY_LEN */
	uint8_t sign_pk[32];
	uint8_t *sign_sk; /* 64 */
	uint8_t dir_pk[VEIL_KEY_LEN];
	uint8_t *dir_sk; /* VEIL_KEY_LEN */
};

struct veil_push;
struct veil_chat;

struct veil_server {
	struct veil_config cfg;
	struct veil_server_keys keys;
	struct veil_store *store;
	struct veil_push *push; /* wake-ups for identities offline (srv/push); NULL = none */
	struct veil_chat *chat; /* the chat service (its in-process sessions); NULL = none */
};

#endif
