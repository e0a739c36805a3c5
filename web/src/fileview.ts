// How a file message looks in a conversation: its name, size and type, the
// thumbnail inline for an image that has one, and a button that downloads
// the blob with progress, decrypts it in the browser and offers it to save
// (a blob: URL with the file's name and type). A blob that does not
// decrypt shows the reason, never a broken download. What a download gave
// stays in memory for the session (object URLs), so the chat can be drawn
// again without fetching again.
import { type BlobUrls, blobUrls, describe, downloadBlob, type FileMeta, fileKey, NONCE_FILE, NONCE_THUMB } from "./files";
import { wipe } from "./crypto";

const THUMB_BOUND = 4 * 1024 * 1024;
/** Object URLs kept at most (files and thumbnails), oldest dropped first. */
const KEEP_URLS = 200;
const INLINE_MIME = /^image\/(jpeg|png|gif|webp)$/;
const ACTIVE_MIME = /html|xml|svg|script|xsl|multipart/i;

type Saved = { url: string; type: string; error?: undefined } | { url?: undefined; error: string };

let urlsP: Promise<BlobUrls> | undefined;
const saved = new Map<string, Saved>();
const thumbs = new Map<string, Promise<string | undefined>>();
const busy = new Map<string, { done: number; total: number }>();
/** Downloads just finished: their save link is clicked once drawn. */
const offer = new Set<string>();
let redraw: () => void = () => undefined;

function urls(): Promise<BlobUrls> {
	urlsP ??= blobUrls().catch((e: unknown) => {
		urlsP = undefined;
		throw e;
	});
	return urlsP;
}

function keep<V>(m: Map<string, V>, k: string, v: V): void {
	m.set(k, v);
	while (m.size > KEEP_URLS) {
		const first = m.keys().next().value as string;
		const x = m.get(first);
		if (typeof x === "object" && x !== null && "url" in x && typeof x.url === "string") URL.revokeObjectURL(x.url);
		m.delete(first);
	}
}

/** Called when a download changes state (the chat is drawn again). */
export function onChange(fn: () => void): void {
	redraw = fn;
}

/** Forgets every decrypted file (on lock). */
export function forget(): void {
	for (const s of saved.values()) if (s.url !== undefined) URL.revokeObjectURL(s.url);
	for (const t of thumbs.values()) void t.then((u) => u !== undefined && URL.revokeObjectURL(u));
	saved.clear();
	thumbs.clear();
	busy.clear();
	offer.clear();
}

let io: IntersectionObserver | undefined;
const waiting = new WeakMap<Element, () => void>();

/** Runs fn once el is in view (at once where IntersectionObserver is missing). */
function seen(el: Element, fn: () => void): void {
	if (typeof IntersectionObserver === "undefined") {
		fn();
		return;
	}
	io ??= new IntersectionObserver((es) => {
		for (const e of es) {
			if (!e.isIntersecting) continue;
			io?.unobserve(e.target);
			waiting.get(e.target)?.();
			waiting.delete(e.target);
		}
	});
	waiting.set(el, fn);
	io.observe(el);
}

/** The conversation is drawn anew: elements of the old drawing are no longer watched. */
export function beginRender(): void {
	io?.disconnect();
}

function thumbUrl(f: FileMeta): Promise<string | undefined> {
	const id = f.thumb;
	if (id === undefined) return Promise.resolve(undefined);
	let p = thumbs.get(id);
	if (p === undefined) {
		p = (async () => {
			const k = fileKey(f);
			try {
				const b = await downloadBlob(await urls(), id, k, NONCE_THUMB, THUMB_BOUND, true);
				const mime = INLINE_MIME.test(f.thumbMime ?? "") ? (f.thumbMime as string) : "image/jpeg";
				return URL.createObjectURL(new Blob([b as BlobPart], { type: mime }));
			} catch {
				return undefined;
			} finally {
				wipe(k);
			}
		})();
		keep(thumbs, id, p);
	}
	return p;
}

async function download(f: FileMeta): Promise<void> {
	if (busy.has(f.blob)) return;
	busy.set(f.blob, { done: 0, total: f.size + 16 });
	redraw();
	const k = fileKey(f);
	try {
		const b = await downloadBlob(await urls(), f.blob, k, NONCE_FILE, f.size, false, (done, total) => {
			busy.set(f.blob, { done, total: total || f.size + 16 });
			const p = document.querySelector(`progress[data-blob="${f.blob}"]`);
			if (p instanceof HTMLProgressElement) {
				p.max = total || f.size + 16;
				p.value = done;
			}
		});
		// The blob: URL has this page's origin: a type a browser would run (HTML, SVG,
		// script) is saved as plain bytes instead, so opening the link cannot run it here.
		const mime = /^[\w.+-]+\/[\w.+-]+$/.test(f.mime) && !ACTIVE_MIME.test(f.mime) ? f.mime : "application/octet-stream";
		keep(saved, f.blob, { url: URL.createObjectURL(new Blob([b as BlobPart], { type: mime })), type: mime });
		wipe(b);
	} catch (e) {
		keep(saved, f.blob, { error: e instanceof Error ? e.message : String(e) });
	} finally {
		wipe(k);
		busy.delete(f.blob);
	}
	offer.add(f.blob);
	redraw();
}

/** Fills li with the view of file f (name as it is received: never used as a path). */
export function renderFile(li: HTMLElement, f: FileMeta, prefix: string): void {
	li.classList.add("file");
	const d = document.createElement("span");
	d.className = "fdesc";
	d.textContent = prefix + describe(f);
	li.append(d);
	if (f.thumb !== undefined) {
		const img = document.createElement("img");
		img.className = "thumb";
		img.alt = "preview of " + (f.name || "the image");
		img.hidden = true;
		li.append(img);
		// Fetched once the message scrolls into view: a long chat does not fetch them all.
		const show = (): void =>
			void thumbUrl(f).then((u) => {
				if (u !== undefined) {
					img.src = u;
					img.hidden = false;
				}
			});
		if (thumbs.has(f.thumb)) show();
		else
			seen(li, show);
	}
	const s = saved.get(f.blob);
	const b = busy.get(f.blob);
	if (b !== undefined) {
		const p = document.createElement("progress");
		p.dataset.blob = f.blob;
		p.max = b.total;
		p.value = b.done;
		p.setAttribute("aria-label", "downloading " + (f.name || "the file"));
		li.append(p);
	} else if (s?.url !== undefined) {
		const a = document.createElement("a");
		a.className = "save";
		a.dataset.blob = f.blob;
		a.href = s.url;
		a.download = f.name || "file";
		a.type = s.type;
		a.textContent = "Save " + (f.name || "the file");
		li.append(a);
		// Offer to save right away once downloaded (the link stays for later). The
		// virtualised list may have built the row again meanwhile: the link in the
		// page then is another element for the same blob.
		if (offer.delete(f.blob))
			setTimeout(() => {
				const cur = document.querySelector(`#msgs a.save[data-blob="${f.blob}"]`);
				if (cur instanceof HTMLAnchorElement) cur.click();
			}, 0);
	} else {
		if (s?.error !== undefined) {
			const e = document.createElement("span");
			e.className = "ferr err";
			e.setAttribute("role", "alert");
			e.textContent = "Cannot open the file: " + s.error;
			li.append(e);
		}
		const btn = document.createElement("button");
		btn.type = "button";
		btn.className = "dl";
		btn.dataset.blob = f.blob;
		btn.textContent = (s?.error !== undefined ? "Try again: download " : "Download ") + (f.name || "the file");
		btn.addEventListener("click", () => void download(f));
		li.append(btn);
	}
}
