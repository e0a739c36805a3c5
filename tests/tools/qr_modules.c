/*
 * Test helper: the modules of the QR code that `veil` prints for each line
 * of standard input (libqrencode, 8-bit mode, level M, the smallest version,
 * as cmd/veil/qr.c), one line per text: "VERSION WIDTH BITS" with BITS the
 * rows top to bottom as 0 (light) and 1 (dark). web/test/unit.ts compares
 * the browser's encoder (web/src/qr.ts) with it module by module. Not installed.
 */
#include <stdio.h>
#include <string.h>

#include <qrencode.h>

int main(void)
{
	static char line[8192];
	while (fgets(line, sizeof line, stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		QRcode *q = QRcode_encodeString8bit(line, 0, QR_ECLEVEL_M);
		if (q == NULL) {
			printf("error\n");
			continue;
		}
		printf("%d %d ", q->version, q->width);
		for (int i = 0; i < q->width * q->width; i++)
			putchar(q->data[i] & 1 ? '1' : '0');
		putchar('\n');
		QRcode_free(q);
	}
	return 0;
}
