/* Thumbnails of JPEG and PNG images: size, format and refusal of what is not an image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "veil/client.h"

#include "t.h"

static char dir[] = "/tmp/veil-thumb.XXXXXX";
static char src[256], dst[256];

/* A w x h gradient as a baseline JPEG. */
static int write_jpeg(const char *path, uint32_t w, uint32_t h)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	FILE *f = fopen(path, "wb");
	uint8_t *row = malloc((size_t)w * 3);
	if (f == NULL || row == NULL)
		return -1;
	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, f);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_start_compress(&c, TRUE);
	for (uint32_t y = 0; y < h; y++) {
		for (uint32_t x = 0; x < w; x++) {
			row[3 * x] = (uint8_t)x;
			row[3 * x + 1] = (uint8_t)y;
			row[3 * x + 2] = 128;
		}
		JSAMPROW r = row;
		jpeg_write_scanlines(&c, &r, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	return fclose(f);
}

/* Reads the size of an image with libpng's or libjpeg's own decoder. */
static int png_size(const char *path, uint32_t *w, uint32_t *h, int *rgba)
{
	png_image img;
	memset(&img, 0, sizeof img);
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_file(&img, path))
		return -1;
	*w = img.width;
	*h = img.height;
	*rgba = (img.format & PNG_FORMAT_FLAG_ALPHA) != 0;
	png_image_free(&img);
	return 0;
}

static int jpeg_size(const char *path, uint32_t *w, uint32_t *h)
{
	struct jpeg_decompress_struct d;
	struct jpeg_error_mgr e;
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	d.err = jpeg_std_error(&e);
	jpeg_create_decompress(&d);
	jpeg_stdio_src(&d, f);
	jpeg_read_header(&d, TRUE);
	*w = d.image_width;
	*h = d.image_height;
	jpeg_destroy_decompress(&d);
	fclose(f);
	return 0;
}

static void test_jpeg_thumb(void)
{
	const char *mime = NULL;
	uint32_t w, h, tw, th;
	snprintf(src, sizeof src, "%s/photo.jpg", dir);
	snprintf(dst, sizeof dst, "%s/photo.thumb.jpg", dir);
	CHECK(write_jpeg(src, 1600, 1200) == 0);
	CHECK_RC(veil_thumb_make(src, "image/jpeg", dst, &mime, &w, &h), 0);
	CHECK(w == 1600 && h == 1200 && strcmp(mime, "image/jpeg") == 0);
	CHECK(jpeg_size(dst, &tw, &th) == 0);
	CHECK(tw == VEIL_THUMB_MAX_PX && th == 384);
	unlink(dst);
	/* A small image keeps its size. */
	CHECK(write_jpeg(src, 100, 40) == 0);
	CHECK_RC(veil_thumb_make(src, "image/jpeg", dst, &mime, &w, &h), 0);
	CHECK(jpeg_size(dst, &tw, &th) == 0 && tw == 100 && th == 40);
	unlink(dst);
}

static void test_png_thumb(void)
{
	const char *mime = NULL;
	uint32_t w, h, tw, th;
	int rgba = 0;
	png_image img;
	uint32_t sw = 700, sh = 1400;
	uint8_t *px = malloc((size_t)sw * sh * 4);
	CHECK(px != NULL);
	for (size_t i = 0; i < (size_t)sw * sh * 4; i++)
		px[i] = (uint8_t)(i * 7);
	memset(&img, 0, sizeof img);
	img.version = PNG_IMAGE_VERSION;
	img.width = sw;
	img.height = sh;
	img.format = PNG_FORMAT_RGBA;
	snprintf(src, sizeof src, "%s/shot.png", dir);
	snprintf(dst, sizeof dst, "%s/shot.thumb.png", dir);
	int ok = png_image_write_to_file(&img, src, 0, px, 0, NULL);
	free(px);
	CHECK(ok);
	CHECK_RC(veil_thumb_make(src, "image/png", dst, &mime, &w, &h), 0);
	CHECK(w == sw && h == sh && strcmp(mime, "image/png") == 0);
	CHECK(png_size(dst, &tw, &th, &rgba) == 0);
	CHECK(th == VEIL_THUMB_MAX_PX && tw == 256 && rgba);
	unlink(dst);
}

static void test_not_an_image(void)
{
	const char *mime = NULL;
	uint32_t w, h;
	FILE *f;
	snprintf(src, sizeof src, "%s/fake.jpg", dir);
	snprintf(dst, sizeof dst, "%s/fake.thumb.jpg", dir);
	CHECK((f = fopen(src, "wb")) != NULL);
	fputs("\xff\xd8\xff not really a JPEG", f);
	fclose(f);
	CHECK_RC(veil_thumb_make(src, "image/jpeg", dst, &mime, &w, &h), VEIL_EPROTO);
	CHECK(access(dst, F_OK) != 0);
	CHECK_RC(veil_thumb_make(src, "image/png", dst, &mime, &w, &h), VEIL_EPROTO);
	CHECK(access(dst, F_OK) != 0);
	CHECK_RC(veil_thumb_make(src, "application/pdf", dst, &mime, &w, &h), VEIL_EINVAL);
	/* A truncated JPEG is refused, not completed with made-up rows. */
	CHECK(write_jpeg(src, 640, 480) == 0);
	CHECK(truncate(src, 600) == 0);
	CHECK_RC(veil_thumb_make(src, "image/jpeg", dst, &mime, &w, &h), VEIL_EPROTO);
	CHECK(access(dst, F_OK) != 0);
	unlink(src);
}

/* A header claiming more pixels than VEIL_THUMB_SRC_MAX_PIXELS is not decoded. */
static void test_too_many_pixels(void)
{
	const char *mime = NULL;
	uint32_t w, h;
	FILE *f;
	/* PNG signature and an IHDR of 20000 x 20000 pixels with its CRC. */
	static const uint8_t png[] = {0x89, 'P', 'N',  'G',  '\r', '\n', 0x1a, '\n', 0,    0,
	                              0,    13,  'I',  'H',  'D',  'R',  0,    0,    0x4e, 0x20,
	                              0,    0,   0x4e, 0x20, 8,    2,    0,    0,    0};
	snprintf(src, sizeof src, "%s/huge.png", dir);
	snprintf(dst, sizeof dst, "%s/huge.thumb.png", dir);
	CHECK((f = fopen(src, "wb")) != NULL);
	fwrite(png, 1, sizeof png, f);
	fwrite("\x6c\x12\xd1\x6e", 1, 4, f);
	/* The header of an empty IDAT chunk: libpng's header reading ends there. */
	fwrite("\0\0\0\0IDAT", 1, 8, f);
	fclose(f);
	int rc = veil_thumb_make(src, "image/png", dst, &mime, &w, &h);
	unlink(src);
	CHECK_RC(rc, VEIL_ELIMIT);
	CHECK(access(dst, F_OK) != 0);
}

T_MAIN_BEGIN
if (mkdtemp(dir) == NULL)
	return 1;
RUN(test_jpeg_thumb);
RUN(test_png_thumb);
RUN(test_not_an_image);
RUN(test_too_many_pixels);
rmdir(dir);
T_MAIN_END
