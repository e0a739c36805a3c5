// QR codes on the page (web/src/qr.ts draws them): the join link pasted on
// the link view, so that it can be checked or scanned from this screen, and
// this identity's "3mid:ID,KEYHEX" text (as `veil qr`) beside the
// fingerprint, for a contact who verifies by scanning. Each figure shows the
// text beside the symbol; the SVG carries a label for screen readers.
import { hex, wipe } from "./crypto";
import { encode, QrError, svg } from "./qr";
import { parseLink } from "./rendezvous";

const $ = (id: string): HTMLElement => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e;
};

/** Draws text's QR code into the figure id (its svg) and its caption (id-text); hides it for undefined. */
export function showQr(id: string, text: string | undefined, label: string): void {
	const fig = $(id);
	const box = fig.querySelector(".qr") as HTMLElement;
	box.replaceChildren();
	$(id + "-text").textContent = "";
	fig.hidden = true;
	if (text === undefined) return;
	try {
		box.append(svg(encode(text), label));
	} catch (e) {
		if (e instanceof QrError) return;
		throw e;
	}
	$(id + "-text").textContent = text;
	fig.hidden = false;
}

/** The link view: a QR code of the pasted join link, once it reads as one. */
export function wireLinkQr(): void {
	const ta = $("link") as HTMLTextAreaElement;
	const update = (): void => {
		let ok = false;
		try {
			wipe(parseLink(ta.value).ak);
			ok = true;
		} catch {
			ok = false;
		}
		showQr("link-qr", ok ? ta.value.trim() : undefined, "QR code of the join link");
	};
	ta.addEventListener("input", update);
	($("f-link") as HTMLFormElement).addEventListener("submit", () => showQr("link-qr", undefined, ""));
}

/** This identity's QR code, as `veil qr` prints it; undefined clears it (locking). */
export function showOwnQr(identity: string | undefined, pk?: Uint8Array): void {
	showQr("my-qr", identity !== undefined && pk !== undefined ? "3mid:" + identity + "," + hex(pk) : undefined, "QR code of your ID " + (identity ?? "") + " and public key");
}
