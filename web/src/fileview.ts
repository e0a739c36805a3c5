// How a file message looks in a conversation: its name, size and type, the
// thumbnail inline for an image that has one, and a button that downloads
// the blob with progress, decrypts it in the browser and offers it to save
// (a blob: URL with the file's name and type). A blob that does not
// decrypt shows the reason, never a broken download. What a download gave
// stays in memory for the session (object URLs), so the chat can be drawn
// again without fetching again.
//
// A row is built once for its message (the list keeps it while the message
// stays the same, web/src/vlist.ts) and changed in place as its download
// goes: the one button stays the same element from "Download" through
// "Downloading" to "Save" (or "Try again"), so the keyboard focus on it
// survives the download and every redraw of the conversation.
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
/** The file each row drawn shows (its controls change in place). */
const shown = new WeakMap<Element, FileMeta>();

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

/** Forgets every decrypted file (on lock). */
export function forget(): void {
	for (const s of saved.values()) if (s.url !== undefined) URL.revokeObjectURL(s.url);
	for (const t of thumbs.values()) void t.then((u) => u !== undefined && URL.revokeObjectURL(u));
	saved.clear();
	thumbs.clear();
	busy.clear();
	offer.clear();
	io?.disconnect();
	watched.clear();
}

let io: IntersectionObserver | undefined;
const waiting = new WeakMap<Element, () => void>();
/** The elements io watches: those no longer in the page (rows the list dropped) are let go now and then. */
const watched = new Set<Element>();
const WATCH_PRUNE = 64;
let pruning = false;

/** Stops watching the rows the list dropped (after the list placed the rows it built: a row just built is not in the page yet). */
function prune(): void {
	pruning = false;
	for (const el of watched)
		if (!el.isConnected) {
			io?.unobserve(el);
			waiting.delete(el);
			watched.delete(el);
		}
}

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
			watched.delete(e.target);
			waiting.get(e.target)?.();
			waiting.delete(e.target);
		}
	});
	waiting.set(el, fn);
	watched.add(el);
	io.observe(el);
	if (watched.size > WATCH_PRUNE && !pruning) {
		pruning = true;
		setTimeout(prune, 0);
	}
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

/** Brings the rows of blob in the page up to date with its download. */
function update(blob: string): void {
	for (const li of document.querySelectorAll(`#msgs li.file[data-blob="${blob}"]`)) {
		const f = shown.get(li);
		if (f !== undefined && li instanceof HTMLElement) paint(li, f);
	}
}

async function download(f: FileMeta): Promise<void> {
	if (busy.has(f.blob)) return;
	busy.set(f.blob, { done: 0, total: f.size + 16 });
	update(f.blob);
	const k = fileKey(f);
	try {
		const b = await downloadBlob(await urls(), f.blob, k, NONCE_FILE, f.size, false, (done, total) => {
			busy.set(f.blob, { done, total: total || f.size + 16 });
			update(f.blob);
		});
		// The blob: URL has this page's origin: a type a browser would run (HTML, SVG,
		// script) is saved as plain bytes instead, so opening the link cannot run it here.
		const mime = /^[\w.+-]+\/[\w.+-]+$/.test(f.mime) && !ACTIVE_MIME.test(f.mime) ? f.mime : "application/octet-stream";
		keep(saved, f.blob, { url: URL.createObjectURL(new Blob([b as BlobPart], { type: mime })), type: mime });
		offer.add(f.blob);
		wipe(b);
	} catch (e) {
		keep(saved, f.blob, { error: e instanceof Error ? e.message : String(e) });
	} finally {
		wipe(k);
		busy.delete(f.blob);
	}
	update(f.blob);
}

/** The save link of blob in the page is clicked (its row may have been built again meanwhile: the link then is another element). */
function save(blob: string): void {
	const cur = document.querySelector(`#msgs a.save[data-blob="${blob}"]`);
	if (cur instanceof HTMLAnchorElement) cur.click();
}

/** Fills li with the view of file f (name as it is received: never used as a path). */
export function renderFile(li: HTMLElement, f: FileMeta, prefix: string): void {
	li.classList.add("file");
	li.dataset.blob = f.blob;
	shown.set(li, f);
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
		else seen(li, show);
	}
	const btn = document.createElement("button");
	btn.type = "button";
	btn.dataset.blob = f.blob;
	btn.addEventListener("click", () => {
		if (busy.has(f.blob)) return;
		if (saved.get(f.blob)?.url !== undefined) save(f.blob);
		else void download(f);
	});
	li.append(btn);
	paint(li, f);
}

/**
 * Shows the state of f's download in its row: the button's words (and its
 * class: dl to download, busy, saved), the progress while it runs, the
 * reason it failed, the (hidden) link the button saves through. The button
 * is never replaced; what is beside it comes and goes.
 */
function paint(li: HTMLElement, f: FileMeta): void {
	const btn = li.querySelector<HTMLButtonElement>(":scope > button[data-blob]");
	if (btn === null) return;
	const name = f.name || "the file";
	const s = saved.get(f.blob);
	const b = busy.get(f.blob);
	const state = b !== undefined ? "busy" : s?.url !== undefined ? "saved" : "dl";
	for (const c of ["dl", "busy", "saved"]) btn.classList.toggle(c, c === state);
	const words = state === "busy" ? "Downloading " + name : state === "saved" ? "Save " + name : (s?.error !== undefined ? "Try again: download " : "Download ") + name;
	// Set only when it changes: the progress calls this often, and a screen reader may read a new name again.
	if (btn.textContent !== words) btn.textContent = words;
	if (state === "busy") btn.setAttribute("aria-disabled", "true");
	else btn.removeAttribute("aria-disabled");

	let p = li.querySelector<HTMLProgressElement>(":scope > progress");
	if (b !== undefined) {
		if (p === null) {
			p = document.createElement("progress");
			p.setAttribute("aria-label", "downloading " + name);
			p.dataset.blob = f.blob;
			btn.after(p);
		}
		p.max = b.total;
		p.value = b.done;
	} else p?.remove();

	// The reason a download failed, until the next try (a new alert each time, so it is read again).
	let e = li.querySelector<HTMLElement>(":scope > .ferr");
	if (s?.error !== undefined && b === undefined) {
		if (e === null) {
			e = document.createElement("span");
			e.className = "ferr err";
			e.setAttribute("role", "alert");
			btn.before(e);
		}
		const why = "Cannot open the file: " + s.error;
		if (e.textContent !== why) e.textContent = why;
	} else e?.remove();

	// The saved file's link: not shown (the button says "Save" and clicks it), but there
	// for the browser's download with the file's name and type.
	let a = li.querySelector<HTMLAnchorElement>(":scope > a.save");
	if (s?.url !== undefined) {
		if (a === null) {
			a = document.createElement("a");
			a.className = "save";
			a.hidden = true;
			a.dataset.blob = f.blob;
			btn.after(a);
		}
		if (a.href !== s.url) a.href = s.url;
		a.download = f.name || "file";
		a.type = s.type;
		// Offered to save right away once downloaded (the button stays for later).
		if (offer.delete(f.blob)) setTimeout(() => save(f.blob), 0);
	} else a?.remove();
}
