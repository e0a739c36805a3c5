/*
 * Thumbnails of JPEG and PNG images for file messages (see client.h).
 *
 * The source is read one row at a time and averaged into the target box by
 * box, so memory stays at one source row plus the thumbnail whatever the
 * image's size; a JPEG is also decoded at 1/2, 1/4 or 1/8 of its size when
 * that still leaves at least the thumbnail's size.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "veil/client.h"

/* JPEG quality of thumbnails, as Threema's desktop client uses (0.8). */
#define THUMB_JPEG_QUALITY 80

/* The box averager: sums of every target pixel's source pixels. */
struct boxer {
	uint32_t sw, sh, tw, th, ch;
	uint32_t *sum; /* tw * th * ch */
	uint32_t *cnt; /* tw * th */
};

static int boxer_init(struct boxer *b, uint32_t sw, uint32_t sh, uint32_t ch)
{
	memset(b, 0, sizeof *b);
	if (sw == 0 || sh == 0)
		return VEIL_EPROTO;
	b->sw = sw;
	b->sh = sh;
	b->ch = ch;
	uint32_t big = sw > sh ? sw : sh;
	if (big <= VEIL_THUMB_MAX_PX) {
		b->tw = sw;
		b->th = sh;
	} else {
		b->tw = (uint32_t)(((uint64_t)sw * VEIL_THUMB_MAX_PX + big / 2) / big);
		b->th = (uint32_t)(((uint64_t)sh * VEIL_THUMB_MAX_PX + big / 2) / big);
		if (b->tw == 0)
			b->tw = 1;
		if (b->th == 0)
			b->th = 1;
	}
	b->sum = calloc((size_t)b->tw * b->th * ch, sizeof *b->sum);
	b->cnt = calloc((size_t)b->tw * b->th, sizeof *b->cnt);
	return b->sum != NULL && b->cnt != NULL ? 0 : VEIL_ENOMEM;
}

static void boxer_row(struct boxer *b, uint32_t y, const uint8_t *row)
{
	uint32_t ty = (uint32_t)((uint64_t)y * b->th / b->sh);
	for (uint32_t x = 0; x < b->sw; x++) {
		uint32_t tx = (uint32_t)((uint64_t)x * b->tw / b->sw);
		size_t k = (size_t)ty * b->tw + tx;
		for (uint32_t c = 0; c < b->ch; c++)
			b->sum[k * b->ch + c] += row[(size_t)x * b->ch + c];
		b->cnt[k]++;
	}
}

/* Target row ty as bytes into out (tw * ch). */
static void boxer_out(const struct boxer *b, uint32_t ty, uint8_t *out)
{
	for (uint32_t tx = 0; tx < b->tw; tx++) {
		size_t k = (size_t)ty * b->tw + tx;
		uint32_t n = b->cnt[k] ? b->cnt[k] : 1;
		for (uint32_t c = 0; c < b->ch; c++)
			out[(size_t)tx * b->ch + c] =
			    (uint8_t)((b->sum[k * b->ch + c] + n / 2) / n);
	}
}

static void boxer_release(struct boxer *b)
{
	free(b->sum);
	free(b->cnt);
	b->sum = b->cnt = NULL;
}

/* --- JPEG --- */

struct jerr {
	struct jpeg_error_mgr mgr;
	jmp_buf jb;
};

static void jpeg_fail(j_common_ptr c)
{
	longjmp(((struct jerr *)c->err)->jb, 1);
}

/*
 * Corrupt or truncated data is only a warning to libjpeg, which then makes
 * up the missing rows: here it ends the thumbnail, so a short file cannot
 * make us decode a huge image of nothing.
 */
static void jpeg_quiet(j_common_ptr c, int level)
{
	if (level < 0)
		longjmp(((struct jerr *)c->err)->jb, 1);
}

static int jpeg_thumb(FILE *in, FILE *out, uint32_t *w, uint32_t *h)
{
	struct jpeg_decompress_struct d;
	struct jpeg_compress_struct e;
	struct jerr je;
	struct boxer b;
	/* volatile: changed between setjmp and a longjmp back. */
	uint8_t *volatile row = NULL;
	volatile int have_d = 0, have_e = 0;
	volatile int rc = VEIL_EPROTO;
	memset(&b, 0, sizeof b);
	d.err = jpeg_std_error(&je.mgr);
	je.mgr.error_exit = jpeg_fail;
	je.mgr.emit_message = jpeg_quiet;
	if (setjmp(je.jb) != 0) {
		rc = VEIL_EPROTO;
		goto out;
	}
	jpeg_create_decompress(&d);
	have_d = 1;
	jpeg_stdio_src(&d, in);
	jpeg_read_header(&d, TRUE);
	*w = d.image_width;
	*h = d.image_height;
	if ((uint64_t)d.image_width * d.image_height > VEIL_THUMB_SRC_MAX_PIXELS) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	d.out_color_space = JCS_RGB;
	uint32_t big = d.image_width > d.image_height ? d.image_width : d.image_height;
	d.scale_num = 1;
	d.scale_denom = 1;
	while (d.scale_denom < 8 && big / (d.scale_denom * 2) >= VEIL_THUMB_MAX_PX)
		d.scale_denom *= 2;
	jpeg_start_decompress(&d);
	if (d.output_components != 3 ||
	    (rc = boxer_init(&b, d.output_width, d.output_height, 3)) != 0) {
		rc = rc ? rc : VEIL_EPROTO;
		goto out;
	}
	row = malloc((size_t)d.output_width * 3);
	if (row == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	while (d.output_scanline < d.output_height) {
		JSAMPROW r = row;
		uint32_t y = d.output_scanline;
		if (jpeg_read_scanlines(&d, &r, 1) != 1)
			goto out;
		boxer_row(&b, y, row);
	}
	jpeg_finish_decompress(&d);

	e.err = d.err;
	jpeg_create_compress(&e);
	have_e = 1;
	jpeg_stdio_dest(&e, out);
	e.image_width = b.tw;
	e.image_height = b.th;
	e.input_components = 3;
	e.in_color_space = JCS_RGB;
	jpeg_set_defaults(&e);
	jpeg_set_quality(&e, THUMB_JPEG_QUALITY, TRUE);
	jpeg_start_compress(&e, TRUE);
	for (uint32_t y = 0; y < b.th; y++) {
		JSAMPROW r = row;
		boxer_out(&b, y, row);
		jpeg_write_scanlines(&e, &r, 1);
	}
	jpeg_finish_compress(&e);
	rc = 0;
out:
	if (have_e)
		jpeg_destroy_compress(&e);
	if (have_d)
		jpeg_destroy_decompress(&d);
	free(row);
	boxer_release(&b);
	return rc;
}

/* --- PNG --- */

/* libpng's errors end in our setjmp, without its default message on stderr. */
static void png_fail(png_structp p, png_const_charp msg)
{
	(void)msg;
	png_longjmp(p, 1);
}

static void png_quiet(png_structp p, png_const_charp msg)
{
	(void)p;
	(void)msg;
}

static int png_thumb(FILE *in, FILE *out, uint32_t *w, uint32_t *h)
{
	png_structp rp = NULL, wp = NULL;
	png_infop ri = NULL, wi = NULL;
	struct boxer b;
	uint8_t *volatile row = NULL;
	volatile int rc = VEIL_EPROTO;
	memset(&b, 0, sizeof b);
	rp = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_quiet);
	ri = rp != NULL ? png_create_info_struct(rp) : NULL;
	if (ri == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (setjmp(png_jmpbuf(rp)) != 0) {
		rc = VEIL_EPROTO;
		goto out;
	}
	png_init_io(rp, in);
	png_read_info(rp, ri);
	uint32_t sw = png_get_image_width(rp, ri), sh = png_get_image_height(rp, ri);
	*w = sw;
	*h = sh;
	if ((uint64_t)sw * sh > VEIL_THUMB_SRC_MAX_PIXELS) {
		rc = VEIL_ELIMIT;
		goto out;
	}
	/* Interlaced images cannot be read row by row in one pass: none of those. */
	if (png_get_interlace_type(rp, ri) != PNG_INTERLACE_NONE) {
		rc = VEIL_EINVAL;
		goto out;
	}
	/* Everything as 8-bit RGBA, so transparency is kept in the thumbnail. */
	png_set_expand(rp);
	png_set_strip_16(rp);
	png_set_gray_to_rgb(rp);
	png_set_add_alpha(rp, 0xff, PNG_FILLER_AFTER);
	png_read_update_info(rp, ri);
	if (png_get_rowbytes(rp, ri) != (size_t)sw * 4 || (rc = boxer_init(&b, sw, sh, 4)) != 0) {
		rc = rc ? rc : VEIL_EPROTO;
		goto out;
	}
	row = malloc((size_t)sw * 4);
	if (row == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	for (uint32_t y = 0; y < sh; y++) {
		png_read_row(rp, row, NULL);
		boxer_row(&b, y, row);
	}
	wp = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_quiet);
	wi = wp != NULL ? png_create_info_struct(wp) : NULL;
	if (wi == NULL) {
		rc = VEIL_ENOMEM;
		goto out;
	}
	if (setjmp(png_jmpbuf(wp)) != 0) {
		rc = VEIL_EIO;
		goto out;
	}
	png_init_io(wp, out);
	png_set_IHDR(wp, wi, b.tw, b.th, 8, PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE,
	             PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(wp, wi);
	for (uint32_t y = 0; y < b.th; y++) {
		boxer_out(&b, y, row);
		png_write_row(wp, row);
	}
	png_write_end(wp, NULL);
	rc = 0;
out:
	if (wp != NULL)
		png_destroy_write_struct(&wp, wi != NULL ? &wi : NULL);
	if (rp != NULL)
		png_destroy_read_struct(&rp, ri != NULL ? &ri : NULL, NULL);
	free(row);
	boxer_release(&b);
	return rc;
}

int veil_thumb_make(const char *src, const char *mime, const char *dest, const char **thumb_mime,
                    uint32_t *w, uint32_t *h)
{
	int is_jpeg = strcmp(mime, "image/jpeg") == 0, is_png = strcmp(mime, "image/png") == 0;
	*w = *h = 0;
	if (!is_jpeg && !is_png)
		return VEIL_EINVAL;
	FILE *in = fopen(src, "rb");
	if (in == NULL)
		return VEIL_EIO;
	FILE *out = fopen(dest, "wb");
	if (out == NULL) {
		fclose(in);
		return VEIL_EIO;
	}
	int rc = is_jpeg ? jpeg_thumb(in, out, w, h) : png_thumb(in, out, w, h);
	fclose(in);
	if (fclose(out) != 0 && rc == 0)
		rc = VEIL_EIO;
	if (rc != 0)
		(void)remove(dest);
	else
		*thumb_mime = is_jpeg ? "image/jpeg" : "image/png";
	return rc;
}
