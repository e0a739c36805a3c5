// Files in the browser, as lib/client/file.c and blob.c do them: a file
// message (type 0x17) is JSON naming a blob and its key; the blob is the
// secretbox (XSalsa20-Poly1305, tag first) of the file under a random
// 32-byte key with the fixed nonce 00..01 (the thumbnail: 00..02), stored
// by veild's blob service (/blob/) under a credential the directory gives
// to the identity (identity/blob_cred, challenge and response).
import { kdf, random, sodium, wipe } from "./crypto";

export const TYPE_FILE = 0x17;
export const NONCE_FILE = 1;
export const NONCE_THUMB = 2;
/** What the browser holds in memory at once: the whole file, encrypted and not. */
export const FILE_MAX = 64 * 1024 * 1024;
const THUMB_BLOB_MAX = 4 * 1024 * 1024;
const THUMB_SIDE = 512;
const JSON_MAX = 7000;
const NAME_MAX = 256;
const MIME_MAX = 255;
const CAPTION_MAX = 6000;
const CORRELATION_MAX = 64;
const META_MAX = 1024;
const ANSWER_MAX = 65536;
const MAC = 16;
const HEX32 = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const te = new TextEncoder();

/** A file message's fields (hex as on the wire); what the store keeps of a file. */
export type FileMeta = {
	blob: string;
	key: string;
	mime: string;
	name: string;
	size: number;
	caption?: string;
	thumb?: string;
	thumbMime?: string;
	/** 0 file, 1 media, 2 sticker ("j", or the older "i"). */
	rendering: number;
	correlation?: string;
	meta?: Record<string, unknown>;
};

export type Progress = (done: number, total: number) => void;

function utf8Len(s: string): number {
	return te.encode(s).length;
}

/** The fixed blob nonce 00..00 which. */
export function blobNonce(which: number): Uint8Array {
	const n = new Uint8Array(24);
	n[23] = which;
	return n;
}

function optStr(o: Record<string, unknown>, k: string, max: number): string | undefined {
	const v = o[k];
	if (v === undefined) return undefined;
	if (typeof v !== "string" || utf8Len(v) > max) throw new Error("malformed file message: " + k);
	return v;
}

/**
 * Parses a file message body (bounded: size, depth, every field's type and
 * length), as lib/e2e/file.c's decoder accepts it. Throws on anything else.
 */
export function parseFileMessage(body: Uint8Array): FileMeta {
	if (body.length > JSON_MAX) throw new Error("malformed file message: too long");
	let depth = 0;
	let max = 0;
	for (const c of body) {
		if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
		else if (c === 0x7d || c === 0x5d) depth--;
	}
	if (max > 4) throw new Error("malformed file message: too deep");
	let o: unknown;
	try {
		o = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
	} catch {
		throw new Error("malformed file message: not JSON");
	}
	if (o === null || typeof o !== "object" || Array.isArray(o)) throw new Error("malformed file message: not an object");
	const r = o as Record<string, unknown>;
	const b = r.b;
	const k = r.k;
	if (typeof b !== "string" || !HEX32.test(b.toLowerCase())) throw new Error("malformed file message: b");
	if (typeof k !== "string" || !HEX64.test(k.toLowerCase())) throw new Error("malformed file message: k");
	const mime = optStr(r, "m", MIME_MAX);
	if (mime === undefined) throw new Error("malformed file message: m");
	const s = r.s;
	if (typeof s !== "number" || !Number.isSafeInteger(s) || s < 0) throw new Error("malformed file message: s");
	let j = r.j ?? r.i;
	if (j !== undefined && (typeof j !== "number" || !Number.isInteger(j))) throw new Error("malformed file message: j");
	j ??= 0;
	const f: FileMeta = {
		blob: b.toLowerCase(),
		key: k.toLowerCase(),
		mime,
		name: optStr(r, "n", NAME_MAX) ?? "",
		size: s,
		rendering: j === 1 || j === 2 ? j : 0,
	};
	const d = optStr(r, "d", CAPTION_MAX);
	if (d !== undefined) f.caption = d;
	const c = optStr(r, "c", CORRELATION_MAX);
	if (c !== undefined) f.correlation = c;
	if (r.t !== undefined) {
		if (typeof r.t !== "string" || !HEX32.test(r.t.toLowerCase())) throw new Error("malformed file message: t");
		f.thumb = r.t.toLowerCase();
		f.thumbMime = optStr(r, "p", MIME_MAX) ?? "image/jpeg";
	}
	if (r.x !== undefined) {
		if (r.x === null || typeof r.x !== "object" || Array.isArray(r.x) || JSON.stringify(r.x).length > META_MAX)
			throw new Error("malformed file message: x");
		f.meta = r.x as Record<string, unknown>;
	}
	return f;
}

/** The file message body for f (keys as lib/e2e/file.c writes them). */
export function encodeFileMessage(f: FileMeta): Uint8Array {
	const o: Record<string, unknown> = { b: f.blob, k: f.key, m: f.mime };
	if (f.name !== "") o.n = f.name;
	o.s = f.size;
	o.i = f.rendering === 1 ? 1 : 0;
	o.j = f.rendering;
	if (f.thumb !== undefined) {
		o.t = f.thumb;
		o.p = f.thumbMime ?? "image/jpeg";
	}
	if (f.caption) o.d = f.caption;
	if (f.meta !== undefined) o.x = f.meta;
	const b = te.encode(JSON.stringify(o));
	if (b.length > JSON_MAX) throw new Error("the file message is too long (a shorter name or caption)");
	return b;
}

/** The words for a file: name, size, type, caption. */
export function describe(f: FileMeta): string {
	const kb = f.size < 1024 ? f.size + " bytes" : f.size < 1048576 ? (f.size / 1024).toFixed(1) + " KB" : (f.size / 1048576).toFixed(1) + " MB";
	return (f.name || "file") + " (" + kb + ", " + f.mime + ")" + (f.caption ? " — " + f.caption : "");
}

export type BlobUrls = { upload: string; download: string; done: string };

/** The blob service's URLs from the provisioning document (same origin as the page). */
export async function blobUrls(): Promise<BlobUrls> {
	const r = await fetch("/.well-known/veil/provisioning", { cache: "no-store" });
	if (!r.ok) throw new Error("cannot read the server's provisioning document (" + r.status + ")");
	const text = await r.text();
	if (text.length > ANSWER_MAX) throw new Error("the provisioning document is too large");
	const doc = JSON.parse(text.split("\n", 1)[0]) as { blob?: { uploadUrl?: unknown; downloadUrl?: unknown; doneUrl?: unknown } };
	const u = doc.blob?.uploadUrl;
	const d = doc.blob?.downloadUrl;
	const n = doc.blob?.doneUrl;
	if (typeof u !== "string" || typeof d !== "string" || typeof n !== "string" || ![u, d, n].every((x) => /^https?:\/\//.test(x)))
		throw new Error("the server offers no blob service");
	return { upload: u, download: d, done: n };
}

async function postJson(url: string, body: unknown): Promise<Record<string, unknown>> {
	const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), cache: "no-store" });
	const text = await r.text();
	if (text.length > ANSWER_MAX) throw new Error("the directory's answer is too large");
	if (!r.ok) throw new Error("the directory refused the blob credential (" + r.status + ")");
	const j = JSON.parse(text) as unknown;
	if (j === null || typeof j !== "object") throw new Error("the directory's answer is malformed");
	return j as Record<string, unknown>;
}

/**
 * A blob upload credential for identity: the directory's challenge (a token
 * and a key) answered with BLAKE2b-MAC(token) under the KDF of the shared
 * key, as lib/dir's veil_dir_auth_post.
 */
export async function blobCredential(directoryUrl: string, identity: string, ck: Uint8Array): Promise<string> {
	const url = directoryUrl + "identity/blob_cred";
	const ch = await postJson(url, { identity });
	const tok = ch.token;
	const trpk = ch.tokenRespKeyPub;
	if (typeof tok !== "string" || typeof trpk !== "string") throw new Error("the directory's challenge is malformed");
	const token = sodium.from_base64(tok, sodium.base64_variants.ORIGINAL);
	const pk = sodium.from_base64(trpk, sodium.base64_variants.ORIGINAL);
	if (pk.length !== 32 || token.length === 0) throw new Error("the directory's challenge is malformed");
	const ss = sodium.crypto_box_beforenm(pk, ck);
	const k = kdf(ss, "dir", "3ma-csp");
	const resp = sodium.crypto_generichash(32, token, k);
	wipe(ss, k);
	const a = await postJson(url, { identity, token: tok, response: sodium.to_base64(resp, sodium.base64_variants.ORIGINAL) });
	if (a.success !== true || typeof a.token !== "string" || a.token.length === 0 || a.token.length > 1024)
		throw new Error("the directory gave no blob credential");
	return a.token;
}

function xhr(method: string, url: string, body: FormData | null, auth: string | undefined, onProgress: Progress | undefined, upload: boolean): Promise<XMLHttpRequest> {
	return new Promise((res, rej) => {
		const x = new XMLHttpRequest();
		x.open(method, url);
		x.responseType = upload ? "text" : "arraybuffer";
		if (auth !== undefined) x.setRequestHeader("Authorization", "ThreemaBlobToken " + auth);
		const p = (e: ProgressEvent): void => onProgress?.(e.loaded, e.lengthComputable ? e.total : 0);
		if (upload) x.upload.onprogress = p;
		else x.onprogress = p;
		x.onload = () => res(x);
		x.onerror = () => rej(new Error("the blob service cannot be reached"));
		x.onabort = () => rej(new Error("the transfer was cancelled"));
		x.send(body);
	});
}

/** Encrypts plain under key with nonce which and uploads it; returns the blob ID (hex). */
export async function uploadBlob(urls: BlobUrls, token: string, plain: Uint8Array, key: Uint8Array, which: number, onProgress?: Progress): Promise<string> {
	const box = sodium.crypto_secretbox_easy(plain, blobNonce(which), key);
	const fd = new FormData();
	fd.append("blob", new Blob([box as BlobPart], { type: "application/octet-stream" }), "blob");
	// persist=1: the browser is one device of a group; the recipient's "done" must
	// not delete the blob before this identity's other devices fetched it.
	const x = await xhr("POST", urls.upload + (urls.upload.includes("?") ? "&" : "?") + "persist=1", fd, token, onProgress, true);
	if (x.status !== 200) {
		let why = "";
		try {
			const e = (JSON.parse(String(x.responseText).slice(0, ANSWER_MAX)) as { error?: unknown }).error;
			if (typeof e === "string") why = ": " + e;
		} catch {
			// no JSON error text
		}
		throw new Error("the blob service refused the upload (HTTP " + x.status + why + ")");
	}
	const id = String(x.responseText).trim().toLowerCase();
	if (!HEX32.test(id)) throw new Error("the blob service answered without a blob ID");
	return id;
}

/**
 * Downloads blob id and opens it with key and nonce which; size is the
 * plaintext size the message names (or, with bound, the most it may have).
 * Throws a clear error for a blob that is missing, longer or shorter, or
 * does not authenticate; nothing of an unauthenticated blob is returned.
 */
export async function downloadBlob(urls: BlobUrls, id: string, key: Uint8Array, which: number, size: number, bound: boolean, onProgress?: Progress): Promise<Uint8Array> {
	if (!HEX32.test(id)) throw new Error("malformed blob ID");
	if (size > FILE_MAX) throw new Error("the file is larger than this browser handles (" + FILE_MAX / 1048576 + " MB)");
	const x = await xhr("GET", urls.download.replace("{blobId}", id), null, undefined, onProgress, false);
	if (x.status === 404) throw new Error("the file is no longer on the server");
	if (x.status === 410) throw new Error("the file has expired on the server");
	if (x.status !== 200) throw new Error("the download failed (HTTP " + x.status + ")");
	const box = new Uint8Array(x.response as ArrayBuffer);
	if (bound ? box.length < MAC || box.length > size + MAC : box.length !== size + MAC)
		throw new Error("the file on the server has another size than the message says");
	try {
		return sodium.crypto_secretbox_open_easy(box, blobNonce(which), key);
	} catch {
		throw new Error("the file does not decrypt: it was tampered with or the key is wrong");
	}
}

/** A JPEG thumbnail of at most 512x512 of an image file, or undefined if it does not decode. */
export async function makeThumbnail(file: Blob): Promise<{ bytes: Uint8Array; w: number; h: number } | undefined> {
	try {
		const bm = await createImageBitmap(file);
		const s = Math.min(1, THUMB_SIDE / Math.max(bm.width, bm.height));
		const w = Math.max(1, Math.round(bm.width * s));
		const h = Math.max(1, Math.round(bm.height * s));
		const c = document.createElement("canvas");
		c.width = w;
		c.height = h;
		const ctx = c.getContext("2d");
		if (ctx === null) return undefined;
		ctx.drawImage(bm, 0, 0, w, h);
		bm.close();
		const b = await new Promise<Blob | null>((res) => c.toBlob(res, "image/jpeg", 0.8));
		if (b === null || b.size > THUMB_BLOB_MAX) return undefined;
		return { bytes: new Uint8Array(await b.arrayBuffer()), w, h };
	} catch {
		return undefined;
	}
}

/**
 * Encrypts and uploads file (and a thumbnail for a JPEG or PNG image) and
 * returns the file message's fields. The key is wiped once used.
 */
export async function prepareFile(directoryUrl: string, identity: string, ck: Uint8Array, file: File, caption: string, onProgress?: Progress): Promise<FileMeta> {
	if (file.size === 0) throw new Error(file.name + " is empty");
	if (file.size > FILE_MAX) throw new Error(file.name + " is larger than this browser sends (" + FILE_MAX / 1048576 + " MB)");
	const name = file.name.slice(0, NAME_MAX);
	const mime = file.type && utf8Len(file.type) <= MIME_MAX ? file.type : "application/octet-stream";
	if (utf8Len(name) > NAME_MAX) throw new Error("the file name is too long");
	if (utf8Len(caption) > CAPTION_MAX) throw new Error("the caption is too long");
	const urls = await blobUrls();
	const token = await blobCredential(directoryUrl, identity, ck);
	const key = random(32);
	const plain = new Uint8Array(await file.arrayBuffer());
	try {
		const blob = await uploadBlob(urls, token, plain, key, NONCE_FILE, onProgress);
		const f: FileMeta = { blob, key: sodium.to_hex(key), mime, name, size: plain.length, rendering: 0 };
		if (caption) f.caption = caption;
		if (mime === "image/jpeg" || mime === "image/png") {
			const t = await makeThumbnail(file);
			if (t !== undefined) {
				f.thumb = await uploadBlob(urls, token, t.bytes, key, NONCE_THUMB);
				f.thumbMime = "image/jpeg";
				f.meta = { h: t.h, w: t.w };
			}
		}
		return f;
	} finally {
		wipe(key, plain);
	}
}

/** The key of f as bytes (the caller wipes it). */
export function fileKey(f: FileMeta): Uint8Array {
	return sodium.from_hex(f.key);
}
