/* veil qr: the own QR code ("3mid:ID,KEYHEX") in the terminal, with libqrencode
 * (8-bit mode, level M, as the browser's web/src/qr.ts draws the same texts). */
#include <stdio.h>
#include <string.h>

#include <qrencode.h>

#include "veil/contacts.h"
#include "cli.h"

/* Two modules per character row, with the Unicode half blocks; quiet zone of 2. */
static void print_qr(FILE *f, const QRcode *q)
{
	const int quiet = 2, w = q->width;
	for (int y = -quiet; y < w + quiet; y += 2) {
		for (int x = -quiet; x < w + quiet; x++) {
			int top = y >= 0 && y < w && x >= 0 && x < w && (q->data[y * w + x] & 1);
			int bot = y + 1 >= 0 && y + 1 < w && x >= 0 && x < w &&
			          (q->data[(y + 1) * w + x] & 1);
			/* Dark modules print as spaces on a light background: readable on dark terminals. */
			fputs(top && bot ? " "
			      : top      ? "\xe2\x96\x84"
			      : bot      ? "\xe2\x96\x80"
			                 : "\xe2\x96\x88",
			      f);
		}
		fputc('\n', f);
	}
}

int cli_qr_print(FILE *f, const char *text)
{
	QRcode *q = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
	if (q == NULL)
		return -1;
	print_qr(f, q);
	QRcode_free(q);
	return 0;
}

int cmd_qr(int argc, char **argv)
{
	int text_only = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--text") == 0)
			text_only = 1;
		else
			return cli_usage_err("qr", "unexpected argument");
	}
	struct veil_msgr m;
	char text[VEIL_QR_TEXT_LEN + 1];
	if (cli_open(&m) != 0)
		return 1;
	int rc = veil_contacts_qr_text(text, m.prof.id, m.prof.pk);
	veil_msgr_close(&m);
	if (rc != 0)
		return cli_err("cannot build the QR text");
	if (!text_only) {
		QRcode *q = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
		if (q == NULL)
			return cli_err("cannot encode the QR code");
		print_qr(stdout, q);
		QRcode_free(q);
	}
	printf("%s\n", text);
	return 0;
}
