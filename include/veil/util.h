/* Bounded byte cursors, growable buffers, encodings and logging. */
#ifndef VEIL_UTIL_H
#define VEIL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/err.h"

#if defined(__GNUC__)
#define VEIL_WUR __attribute__((warn_unused_result))
#define VEIL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VEIL_WUR
#define VEIL_PRINTF(a, b)
#endif

#define VEIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A read cursor over caller-owned bytes. Every read checks the bytes
 * remaining first; a short read returns VEIL_ETRUNC and leaves the cursor
 * where it was, so a parser never reads past its input.
 */
struct veil_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
};

void veil_reader_init(struct veil_reader *r, const uint8_t *p, size_t len);
size_t veil_reader_left(const struct veil_reader *r);
int veil_read_u8(struct veil_reader *r, uint8_t *v) VEIL_WUR;
int veil_read_u16le(struct veil_reader *r, uint16_t *v) VEIL_WUR;
int veil_read_u32le(struct veil_reader *r, uint32_t *v) VEIL_WUR;
int veil_read_u64le(struct veil_reader *r, uint64_t *v) VEIL_WUR;
/* Copies n bytes into out. */
int veil_read_bytes(struct veil_reader *r, uint8_t *out, size_t n) VEIL_WUR;
/* Points *out at the next n bytes without copying. */
int veil_read_view(struct veil_reader *r, const uint8_t **out, size_t n) VEIL_WUR;
int veil_read_skip(struct veil_reader *r, size_t n) VEIL_WUR;
/* Returns VEIL_EPROTO if any byte remains (formats with no trailing data). */
int veil_reader_end(const struct veil_reader *r) VEIL_WUR;

/*
 * A write cursor over a caller-owned fixed buffer. Writes past the end
 * return VEIL_ELIMIT and leave the cursor unchanged.
 */
struct veil_writer {
	uint8_t *p;
	size_t cap;
	size_t off;
};

void veil_writer_init(struct veil_writer *w, uint8_t *p, size_t cap);
int veil_write_u8(struct veil_writer *w, uint8_t v) VEIL_WUR;
int veil_write_u16le(struct veil_writer *w, uint16_t v) VEIL_WUR;
int veil_write_u32le(struct veil_writer *w, uint32_t v) VEIL_WUR;
int veil_write_u64le(struct veil_writer *w, uint64_t v) VEIL_WUR;
int veil_write_bytes(struct veil_writer *w, const void *p, size_t n) VEIL_WUR;
int veil_write_zero(struct veil_writer *w, size_t n) VEIL_WUR;

void veil_store_u16le(uint8_t *p, uint16_t v);
void veil_store_u32le(uint8_t *p, uint32_t v);
void veil_store_u64le(uint8_t *p, uint64_t v);
uint16_t veil_load_u16le(const uint8_t *p);
uint32_t veil_load_u32le(const uint8_t *p);
uint64_t veil_load_u64le(const uint8_t *p);

/*
 * A growable heap buffer that never grows beyond max (set at init, never
 * zero). Appending past max returns VEIL_ELIMIT and changes nothing. If
 * secret is set, the memory is wiped whenever it is released or moved.
 */
struct veil_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t max;
	int secret;
};

void veil_buf_init(struct veil_buf *b, size_t max);
void veil_buf_init_secret(struct veil_buf *b, size_t max);
void veil_buf_release(struct veil_buf *b);
int veil_buf_reserve(struct veil_buf *b, size_t extra) VEIL_WUR;
int veil_buf_append(struct veil_buf *b, const void *p, size_t n) VEIL_WUR;
int veil_buf_append_u8(struct veil_buf *b, uint8_t v) VEIL_WUR;
int veil_buf_append_u16le(struct veil_buf *b, uint16_t v) VEIL_WUR;
int veil_buf_append_u32le(struct veil_buf *b, uint32_t v) VEIL_WUR;
int veil_buf_append_u64le(struct veil_buf *b, uint64_t v) VEIL_WUR;
/* Drops the first n bytes (n <= len). */
void veil_buf_consume(struct veil_buf *b, size_t n);
void veil_buf_reset(struct veil_buf *b);
/*
 * A buffer on the heap, made when first needed (so that the many objects
 * that mostly hold none cost one pointer): *b, made empty with limit max
 * if NULL; NULL if out of memory.
 */
struct veil_buf *veil_buf_lazy(struct veil_buf **b, size_t max);
/* Releases and frees *b, if any; *b becomes NULL. */
void veil_buf_drop(struct veil_buf **b);

/*
 * Hex and base64 go through libsodium's constant-time codecs, so keys may
 * pass through them. Encoders NUL-terminate and return VEIL_ELIMIT if out is
 * too small. Decoders require the whole input to be valid, with no
 * separators, and the decoded length to equal want (or to fit in cap for the
 * _var variants, storing the length in *outlen).
 */
int veil_hex_encode(char *out, size_t outcap, const uint8_t *in, size_t n) VEIL_WUR;
int veil_hex_decode(uint8_t *out, size_t want, const char *in, size_t inlen) VEIL_WUR;
int veil_b64_encode(char *out, size_t outcap, const uint8_t *in, size_t n) VEIL_WUR;
int veil_b64_decode_var(uint8_t *out, size_t cap, size_t *outlen, const char *in,
                        size_t inlen) VEIL_WUR;
int veil_b64_decode(uint8_t *out, size_t want, const char *in, size_t inlen) VEIL_WUR;
#define VEIL_HEX_LEN(n) ((n)*2 + 1)
#define VEIL_B64_LEN(n) ((((n) + 2) / 3) * 4 + 1)

/*
 * Levelled logging to stderr (or a sink set by the program). The library
 * itself only logs at debug level and never passes keys, plaintext, contact
 * data or client addresses; programs follow the same rule.
 */
enum veil_log_level { VEIL_LOG_ERROR, VEIL_LOG_WARN, VEIL_LOG_INFO, VEIL_LOG_DEBUG };

void veil_log_set_level(enum veil_log_level lvl);
enum veil_log_level veil_log_get_level(void);
int veil_log_parse_level(const char *s, enum veil_log_level *out) VEIL_WUR;
void veil_log(enum veil_log_level lvl, const char *fmt, ...) VEIL_PRINTF(2, 3);
#define veil_log_error(...) veil_log(VEIL_LOG_ERROR, __VA_ARGS__)
#define veil_log_warn(...) veil_log(VEIL_LOG_WARN, __VA_ARGS__)
#define veil_log_info(...) veil_log(VEIL_LOG_INFO, __VA_ARGS__)
#define veil_log_debug(...) veil_log(VEIL_LOG_DEBUG, __VA_ARGS__)

/*
 * Returns 1 if p[0..n) is valid UTF-8 (no overlong forms, surrogates or
 * values above U+10FFFF) without NUL bytes, else 0.
 */
int veil_utf8_valid(const uint8_t *p, size_t n);

/*
 * Returns 0 if no array or object in the JSON text p[0..len) nests deeper
 * than max_depth (strings and escapes are skipped), else VEIL_ELIMIT. Run
 * before handing untrusted JSON to a recursive parser.
 */
int veil_json_depth_ok(const uint8_t *p, size_t len, int max_depth) VEIL_WUR;

/* Milliseconds since the Unix epoch, and a monotonic clock in ms. */
uint64_t veil_now_ms(void);
uint64_t veil_mono_ms(void);

#endif
