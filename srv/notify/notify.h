/*
 * The verification-code sender of the directory: a pluggable delivery of
 * short texts to an e-mail address (SMTP through libcurl to the relay set
 * in the config, smtp-url and smtp-from) or to a phone number (an HTTP POST
 * of {"to": "+<E.164>", "text": "..."} to the SMS gateway's webhook,
 * sms-webhook).
 *
 * Sending runs on a worker thread so that the HTTP thread never waits on a
 * relay: veil_notify_send copies the message into a bounded queue and
 * returns. Addresses and codes live in memory only until sent and are
 * wiped then; nothing about them is logged (only the outcome and the kind).
 */
#ifndef VEIL_SRV_NOTIFY_H
#define VEIL_SRV_NOTIFY_H

#include <stddef.h>

#include "../server.h"

#define VEIL_NOTIFY_QUEUE 256    /* messages waiting to be sent */
#define VEIL_NOTIFY_MAX_TO 256   /* longest address */
#define VEIL_NOTIFY_MAX_TEXT 512 /* longest text */
#define VEIL_NOTIFY_TIMEOUT_MS 15000

enum veil_notify_kind { VEIL_NOTIFY_EMAIL = 0, VEIL_NOTIFY_SMS = 1 };

struct veil_notify;

/*
 * Creates the sender for cfg (the URLs are copied) and starts its thread.
 * A kind whose setting is empty is simply unavailable.
 */
int veil_notify_new(struct veil_notify **out, const struct veil_config *cfg);
/* Stops the thread (messages still queued are dropped) and frees n; NULL is a no-op. */
void veil_notify_free(struct veil_notify *n);
/* 1 if kind can be delivered with this configuration. */
int veil_notify_available(const struct veil_notify *n, int kind);
/*
 * Queues text (one line of printable text) for to. Returns 0, VEIL_EINVAL
 * if the kind is not configured or to or text holds characters that could
 * break the message's framing (CR, LF, '<', '>', ','), VEIL_ELIMIT if the
 * queue is full or a string too long.
 */
int veil_notify_send(struct veil_notify *n, int kind, const char *to, const char *subject,
                     const char *text);
/* Counters, for tests and operators. */
void veil_notify_stats(struct veil_notify *n, unsigned long *sent, unsigned long *failed);
/* Waits up to timeout_ms until the queue is empty and nothing is in flight; 0 or VEIL_ETIMEOUT. */
int veil_notify_flush(struct veil_notify *n, int timeout_ms);

#endif
