#include <sodium.h>

#include "veil/crypto.h"
#include "veil/util.h"
#include "t.h"

static void reader_bounds(void)
{
	const uint8_t in[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
	struct veil_reader r;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	veil_reader_init(&r, in, sizeof in);
	CHECK_RC(veil_read_u8(&r, &u8), 0);
	CHECK(u8 == 1);
	CHECK_RC(veil_read_u16le(&r, &u16), 0);
	CHECK(u16 == 0x0302);
	CHECK_RC(veil_read_u64le(&r, &u64), 0);
	CHECK(u64 == 0x0b0a090807060504ull);
	CHECK_RC(veil_read_u32le(&r, &u32), VEIL_ETRUNC);
	CHECK(r.off == 11);
	CHECK_RC(veil_reader_end(&r), 0);
	veil_reader_init(&r, in, 3);
	CHECK_RC(veil_read_u16le(&r, &u16), 0);
	CHECK_RC(veil_reader_end(&r), VEIL_EPROTO);
	CHECK_RC(veil_read_u16le(&r, &u16), VEIL_ETRUNC);
	CHECK(r.off == 2);
	CHECK_RC(veil_read_skip(&r, (size_t)-1), VEIL_ETRUNC);
}

static void writer_bounds(void)
{
	uint8_t out[6];
	struct veil_writer w;
	veil_writer_init(&w, out, sizeof out);
	CHECK_RC(veil_write_u32le(&w, 0x04030201), 0);
	CHECK_RC(veil_write_u32le(&w, 1), VEIL_ELIMIT);
	CHECK_RC(veil_write_u16le(&w, 0x0605), 0);
	CHECK_RC(veil_write_u8(&w, 7), VEIL_ELIMIT);
	const uint8_t want[] = {1, 2, 3, 4, 5, 6};
	CHECK_MEM(out, want, 6);
}

static void buf_max(void)
{
	struct veil_buf b;
	veil_buf_init(&b, 10);
	CHECK_RC(veil_buf_append(&b, "hello", 5), 0);
	CHECK_RC(veil_buf_append(&b, "world!", 6), VEIL_ELIMIT);
	CHECK(b.len == 5);
	CHECK_RC(veil_buf_append(&b, "world", 5), 0);
	CHECK(b.len == 10 && memcmp(b.p, "helloworld", 10) == 0);
	veil_buf_consume(&b, 5);
	CHECK(b.len == 5 && memcmp(b.p, "world", 5) == 0);
	CHECK_RC(veil_buf_reserve(&b, (size_t)-1), VEIL_ELIMIT);
	veil_buf_release(&b);
	veil_buf_release(&b);
	veil_buf_init_secret(&b, 1 << 20);
	for (int i = 0; i < 1000; i++)
		CHECK_RC(veil_buf_append_u64le(&b, (uint64_t)i), 0);
	CHECK(b.len == 8000 && veil_load_u64le(b.p + 8 * 999) == 999);
	veil_buf_release(&b);
	/* Made when first needed, with its limit; dropped back to NULL. */
	struct veil_buf *lz = NULL;
	veil_buf_drop(&lz);
	CHECK(lz == NULL);
	CHECK(veil_buf_lazy(&lz, 4) != NULL && lz->len == 0 && lz->max == 4);
	struct veil_buf *same = lz;
	CHECK(veil_buf_lazy(&lz, 99) == same && lz->max == 4);
	CHECK_RC(veil_buf_append(lz, "abcde", 5), VEIL_ELIMIT);
	veil_buf_drop(&lz);
	CHECK(lz == NULL);
}

static void hex_b64(void)
{
	const uint8_t in[] = {0x00, 0xff, 0x10, 0xab};
	char hex[VEIL_HEX_LEN(4)];
	uint8_t back[4];
	CHECK_RC(veil_hex_encode(hex, sizeof hex, in, 4), 0);
	CHECK(strcmp(hex, "00ff10ab") == 0);
	CHECK_RC(veil_hex_encode(hex, sizeof hex - 1, in, 4), VEIL_ELIMIT);
	CHECK_RC(veil_hex_decode(back, 4, "00FF10ab", 8), 0);
	CHECK_MEM(back, in, 4);
	CHECK_RC(veil_hex_decode(back, 4, "00ff10a", 7), VEIL_EPROTO);
	CHECK_RC(veil_hex_decode(back, 4, "00ff10ag", 8), VEIL_EPROTO);
	CHECK_RC(veil_hex_decode(back, 4, "00:f10ab", 8), VEIL_EPROTO);
	char b64[VEIL_B64_LEN(4)];
	CHECK_RC(veil_b64_encode(b64, sizeof b64, in, 4), 0);
	CHECK(strcmp(b64, "AP8Qqw==") == 0);
	CHECK_RC(veil_b64_decode(back, 4, "AP8Qqw==", 8), 0);
	CHECK_MEM(back, in, 4);
	CHECK_RC(veil_b64_decode(back, 4, "AP8Qqw=", 7), VEIL_EPROTO);
	CHECK_RC(veil_b64_decode(back, 3, "AP8Qqw==", 8), VEIL_EPROTO);
	size_t got;
	uint8_t big[16];
	CHECK_RC(veil_b64_decode_var(big, sizeof big, &got, "AP8Q", 4), 0);
	CHECK(got == 3);
	CHECK_RC(veil_b64_decode_var(big, sizeof big, &got, "AP8Q!", 5), VEIL_EPROTO);
}

static void ids(void)
{
	uint8_t id[8];
	CHECK_RC(veil_id_parse(id, "ECHOECHO"), 0);
	CHECK_RC(veil_id_parse(id, "*TESTTST"), 0);
	CHECK_RC(veil_id_parse(id, "0123ABCZ"), 0);
	CHECK_RC(veil_id_parse(id, "echoecho"), VEIL_EINVAL);
	CHECK_RC(veil_id_parse(id, "ECHOECH"), VEIL_EINVAL);
	CHECK_RC(veil_id_parse(id, "ECHOECHOX"), VEIL_EINVAL);
	CHECK_RC(veil_id_parse(id, "ECHO*CHO"), VEIL_EINVAL);
	CHECK_RC(veil_id_parse(id, "ECHO ECH"), VEIL_EINVAL);
	CHECK(!veil_id_valid((const uint8_t *)"\0\0\0\0\0\0\0\0"));
}

static void log_levels(void)
{
	enum veil_log_level l;
	CHECK_RC(veil_log_parse_level("debug", &l), 0);
	CHECK(l == VEIL_LOG_DEBUG);
	CHECK_RC(veil_log_parse_level("loud", &l), VEIL_EINVAL);
	CHECK(strcmp(veil_strerror(VEIL_ELIMIT), "size limit exceeded") == 0);
	CHECK(strcmp(veil_strerror(VEIL_EQUOTA), "share of the limit used up") == 0);
	CHECK(strcmp(veil_strerror(-999), "unknown error") == 0);
}

T_MAIN_BEGIN
RUN(reader_bounds);
RUN(writer_bounds);
RUN(buf_max);
RUN(hex_b64);
RUN(ids);
RUN(log_levels);
T_MAIN_END
