// Unit tests of the web client's file messages and delivery receipts, run
// in node by tests/it/web_files_unit.sh: the file message JSON as the C
// client writes it, round trips, the blob box with its fixed nonces, and
// both parsers on random and mutated input (they return a well-typed value
// or throw an Error, never anything else).
import { ready, sodium } from "../src/crypto";
import { blobNonce, encodeFileMessage, type FileMeta, NONCE_FILE, NONCE_THUMB, parseFileMessage } from "../src/files";
import { encodeReceipt, parseReceipt, RECEIPT_IDS_MAX } from "../src/receipts";

let fails = 0;
function check(name: string, ok: boolean): void {
	console.log((ok ? "PASS " : "FAIL ") + name);
	if (!ok) fails++;
}
function throws(fn: () => unknown): boolean {
	try {
		fn();
		return false;
	} catch (e) {
		return e instanceof Error;
	}
}
const te = new TextEncoder();
const j = (o: unknown): Uint8Array => te.encode(JSON.stringify(o));

await ready();

// Nonces: 00..01 for the file, 00..02 for its thumbnail.
check("nonce_file", sodium.to_hex(blobNonce(NONCE_FILE)) === "00".repeat(23) + "01");
check("nonce_thumb", sodium.to_hex(blobNonce(NONCE_THUMB)) === "00".repeat(23) + "02");

// The blob box is the combined secretbox: tag first, then the ciphertext.
{
	const key = sodium.randombytes_buf(32);
	const m = sodium.randombytes_buf(1000);
	const box = sodium.crypto_secretbox_easy(m, blobNonce(NONCE_FILE), key);
	const d = sodium.crypto_secretbox_detached(m, blobNonce(NONCE_FILE), key);
	check("blob_tag_first", box.length === 1016 && sodium.to_hex(box.subarray(0, 16)) === sodium.to_hex(d.mac) && sodium.to_hex(box.subarray(16)) === sodium.to_hex(d.cipher));
}

// A file message as lib/e2e/file.c writes it (thumbnail, caption, meta).
const blob = "0123456789abcdef0123456789abcdef";
const key = "ab".repeat(32);
const c = `{"b":"${blob}","k":"${key}","m":"image/png","n":"a.png","s":300000,"i":1,"j":1,"t":"fedcba9876543210fedcba9876543210","p":"image/png","d":"hi","x":{"h":10,"w":20}}`;
{
	const f = parseFileMessage(te.encode(c));
	check(
		"file_c_layout",
		f.blob === blob && f.key === key && f.mime === "image/png" && f.name === "a.png" && f.size === 300000 && f.rendering === 1 && f.thumb === "fedcba9876543210fedcba9876543210" && f.thumbMime === "image/png" && f.caption === "hi" && f.meta?.w === 20,
	);
	const again = parseFileMessage(encodeFileMessage(f));
	check("file_roundtrip", JSON.stringify(again) === JSON.stringify(f));
	const plain: FileMeta = { blob, key, mime: "application/octet-stream", name: "x.bin", size: 5, rendering: 0 };
	const o = JSON.parse(new TextDecoder().decode(encodeFileMessage(plain))) as Record<string, unknown>;
	check("file_encode_keys", o.b === blob && o.k === key && o.n === "x.bin" && o.s === 5 && o.i === 0 && o.j === 0 && o.t === undefined && o.d === undefined);
	check("file_upper_hex_taken", parseFileMessage(j({ b: blob.toUpperCase(), k: key, m: "a/b", s: 1 })).blob === blob);
	check("file_only_i", parseFileMessage(j({ b: blob, k: key, m: "a/b", s: 1, i: 1 })).rendering === 1);
	check("file_unknown_rendering_is_file", parseFileMessage(j({ b: blob, k: key, m: "a/b", s: 1, j: 7 })).rendering === 0);
	check("file_thumb_mime_default", parseFileMessage(j({ b: blob, k: key, m: "a/b", s: 1, t: blob })).thumbMime === "image/jpeg");
}

// Refused: every required field missing or of the wrong type or size, and the bounds.
{
	const base = { b: blob, k: key, m: "a/b", s: 1 } as Record<string, unknown>;
	const bad: [string, Record<string, unknown>][] = [
		["no_b", { ...base, b: undefined }],
		["short_b", { ...base, b: "00" }],
		["not_hex_b", { ...base, b: "zz".repeat(16) }],
		["no_k", { ...base, k: undefined }],
		["short_k", { ...base, k: blob }],
		["no_m", { ...base, m: undefined }],
		["long_m", { ...base, m: "a".repeat(256) }],
		["number_m", { ...base, m: 5 }],
		["no_s", { ...base, s: undefined }],
		["negative_s", { ...base, s: -1 }],
		["fraction_s", { ...base, s: 1.5 }],
		["string_s", { ...base, s: "1" }],
		["huge_s", { ...base, s: 2 ** 60 }],
		["long_n", { ...base, n: "n".repeat(257) }],
		["long_d", { ...base, d: "d".repeat(6001) }],
		["bad_t", { ...base, t: "00" }],
		["string_j", { ...base, j: "1" }],
		["array_x", { ...base, x: [1] }],
		["long_x", { ...base, x: { a: "x".repeat(1100) } }],
	];
	for (const [n, o] of bad) check("file_refused_" + n, throws(() => parseFileMessage(j(o))));
	check("file_refused_array", throws(() => parseFileMessage(te.encode("[]"))));
	check("file_refused_not_json", throws(() => parseFileMessage(te.encode("{"))));
	check("file_refused_not_utf8", throws(() => parseFileMessage(Uint8Array.of(0x7b, 0xff, 0x7d))));
	check("file_refused_deep", throws(() => parseFileMessage(j({ ...base, x: { a: { b: { c: { d: 1 } } } } }))));
	check("file_refused_too_long", throws(() => parseFileMessage(j({ ...base, pad: "p".repeat(7000) }))));
	check("file_encode_too_long_refused", throws(() => encodeFileMessage({ blob, key, mime: "a/b", name: "n", size: 1, rendering: 0, caption: "c".repeat(7000) })));
}

// Random bytes and mutations of a good message: a typed result or an Error.
{
	let ok = true;
	const good = te.encode(c);
	const typed = (f: FileMeta): boolean =>
		/^[0-9a-f]{32}$/.test(f.blob) && /^[0-9a-f]{64}$/.test(f.key) && typeof f.mime === "string" && Number.isSafeInteger(f.size) && f.size >= 0 && [0, 1, 2].includes(f.rendering);
	for (let i = 0; i < 20000 && ok; i++) {
		let b: Uint8Array;
		if (i % 2 === 0) {
			b = sodium.randombytes_buf(sodium.randombytes_uniform(200));
		} else {
			b = good.slice(0, good.length - sodium.randombytes_uniform(8));
			for (let k = sodium.randombytes_uniform(4); k >= 0; k--) b[sodium.randombytes_uniform(b.length)] = sodium.randombytes_uniform(256);
		}
		try {
			if (!typed(parseFileMessage(b))) ok = false;
		} catch (e) {
			if (!(e instanceof Error)) ok = false;
		}
	}
	check("file_parser_random_input", ok);
}

// Receipts: status and IDs, little-endian, decimal strings; bounds.
{
	const b = encodeReceipt(2, ["1", "18446744073709551615", "72623859790382856"]);
	check("receipt_layout", sodium.to_hex(b) === "02" + "0100000000000000" + "ffffffffffffffff" + "0807060504030201");
	const r = parseReceipt(b);
	check("receipt_roundtrip", r.status === 2 && r.ids.join() === "1,18446744073709551615,72623859790382856");
	check("receipt_empty_refused", throws(() => parseReceipt(new Uint8Array(0))) && throws(() => parseReceipt(Uint8Array.of(1))));
	check("receipt_partial_refused", throws(() => parseReceipt(new Uint8Array(10))));
	check("receipt_max_taken", parseReceipt(new Uint8Array(1 + 8 * RECEIPT_IDS_MAX)).ids.length === RECEIPT_IDS_MAX);
	check("receipt_too_many_refused", throws(() => parseReceipt(new Uint8Array(1 + 8 * (RECEIPT_IDS_MAX + 1)))));
	check("receipt_encode_bounds", throws(() => encodeReceipt(2, [])) && throws(() => encodeReceipt(2, Array(RECEIPT_IDS_MAX + 1).fill("1"))));
	check("receipt_encode_bad_id", throws(() => encodeReceipt(2, ["18446744073709551616"])) && throws(() => encodeReceipt(2, ["0x10"])) && throws(() => encodeReceipt(2, ["-1"])));
	let ok = true;
	for (let i = 0; i < 5000 && ok; i++) {
		const x = sodium.randombytes_buf(sodium.randombytes_uniform(100));
		try {
			const p = parseReceipt(x);
			if (p.ids.length !== (x.length - 1) / 8 || !p.ids.every((id) => /^\d+$/.test(id))) ok = false;
		} catch (e) {
			if (!(e instanceof Error)) ok = false;
		}
	}
	check("receipt_parser_random_input", ok);
}

process.exitCode = fails === 0 ? 0 : 1;
