// The Chat Server Protocol as a client speaks it through the mediator
// (lib/csp/csp.c): the handshake with its vouch, frames under the session
// key, the payload container; and the end-to-end message box of a 1:1
// message (lib/e2e): header, metadata box, padded inner message.
import { kdf, random, sodium, wipe } from "./crypto";
import * as pb from "./pb";

export const P = {
	ECHO_REQUEST: 0x00,
	OUTGOING_MESSAGE: 0x01,
	INCOMING_MESSAGE: 0x02,
	UNBLOCK_INCOMING: 0x03,
	ECHO_RESPONSE: 0x80,
	OUTGOING_ACK: 0x81,
	INCOMING_ACK: 0x82,
	QUEUE_SEND_COMPLETE: 0xd0,
	CLOSE_ERROR: 0xe0,
	ALERT: 0xe1,
} as const;

export const SERVER_HELLO_LEN = 80;
export const LOGIN_ACK_LEN = 32;
const MAX_FRAME = 8192;
const EXT_MAGIC = "threema-clever-extension-field";
const FEATURE_METADATA = 0x01;
const FEATURE_ECHO = 0x02;
const te = new TextEncoder();
const td = new TextDecoder("utf-8", { fatal: true });

function u64le(v: bigint): Uint8Array {
	const b = new Uint8Array(8);
	new DataView(b.buffer).setBigUint64(0, v, true);
	return b;
}

function cat(...parts: Uint8Array[]): Uint8Array {
	const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
	let o = 0;
	for (const p of parts) {
		out.set(p, o);
		o += p.length;
	}
	return out;
}

class Nonce {
	counter = 1n;
	constructor(public cookie: Uint8Array) {}
	next(): Uint8Array {
		return cat(this.cookie, u64le(this.counter++));
	}
}

/** The client side of one CSP session. */
export class CspClient {
	private tck = sodium.crypto_box_keypair();
	private tx = new Nonce(random(16));
	private rx: Nonce | undefined;
	private key: Uint8Array | undefined;
	private tskPk: Uint8Array | undefined;

	constructor(private serverPk: Uint8Array) {}

	hello(): Uint8Array {
		return cat(this.tck.publicKey, this.tx.cookie);
	}

	/** Opens the server's hello; throws if it does not open with the pinned key. */
	serverHello(b: Uint8Array): void {
		if (b.length !== SERVER_HELLO_LEN) throw new Error("the server's hello is malformed");
		this.rx = new Nonce(b.slice(0, 16));
		if (sodium.memcmp(this.rx.cookie, this.tx.cookie)) throw new Error("the server's hello is malformed");
		const k = sodium.crypto_box_beforenm(this.serverPk, this.tck.privateKey);
		let p: Uint8Array;
		try {
			p = sodium.crypto_box_open_easy_afternm(b.subarray(16), this.rx.next(), k);
		} catch {
			throw new Error("the server's hello does not open with the server key");
		} finally {
			wipe(k);
		}
		if (!sodium.memcmp(p.subarray(32, 48), this.tx.cookie)) throw new Error("the server's hello is malformed");
		this.tskPk = p.slice(0, 32);
		this.key = sodium.crypto_box_beforenm(this.tskPk, this.tck.privateKey);
	}

	/** The login (data box and extensions box) proving the identity's key with the vouch. */
	login(identity: string, ck: Uint8Array, clientInfo: string, deviceId: bigint): Uint8Array {
		if (this.rx === undefined || this.tskPk === undefined || this.key === undefined) throw new Error("no server hello");
		const ci = te.encode(clientInfo);
		const ext = (type: number, v: Uint8Array): Uint8Array => cat(Uint8Array.of(type, v.length & 0xff, v.length >> 8), v);
		const exts = cat(ext(0x00, ci), ext(0x02, Uint8Array.of(FEATURE_METADATA | FEATURE_ECHO)), ext(0x01, u64le(deviceId)));
		const ss1 = sodium.crypto_box_beforenm(this.serverPk, ck);
		const ss2 = sodium.crypto_box_beforenm(this.tskPk, ck);
		const vk = kdf(cat(ss1, ss2), "v2", "3ma-csp");
		const vouch = sodium.crypto_generichash(32, cat(this.rx.cookie, this.tck.publicKey), vk);
		wipe(ss1, ss2, vk);
		const data = new Uint8Array(128);
		data.set(te.encode(identity), 0);
		data.set(te.encode(EXT_MAGIC), 8);
		new DataView(data.buffer).setUint16(38, exts.length + 16, true);
		data.set(this.rx.cookie, 40);
		data.set(vouch, 80);
		const a = sodium.crypto_box_easy_afternm(data, this.tx.next(), this.key);
		const b = sodium.crypto_box_easy_afternm(exts, this.tx.next(), this.key);
		wipe(data);
		return cat(a, b);
	}

	loginAck(b: Uint8Array): void {
		if (this.key === undefined || this.rx === undefined || b.length !== LOGIN_ACK_LEN) throw new Error("no login ack");
		try {
			sodium.crypto_box_open_easy_afternm(b, this.rx.next(), this.key);
		} catch {
			throw new Error("the server's login acknowledgement does not open");
		}
		wipe(this.tck.privateKey);
	}

	/** One frame: u16-le length, then the box of type || 3 reserved bytes || data. */
	frame(type: number, data: Uint8Array): Uint8Array {
		if (this.key === undefined) throw new Error("not logged in");
		if (data.length + 4 + 16 > MAX_FRAME) throw new Error("payload too large");
		const box = sodium.crypto_box_easy_afternm(cat(Uint8Array.of(type, 0, 0, 0), data), this.tx.next(), this.key);
		const out = new Uint8Array(2 + box.length);
		new DataView(out.buffer).setUint16(0, box.length, true);
		out.set(box, 2);
		return out;
	}

	/** Opens one frame's box (without its length prefix). */
	open(box: Uint8Array): { type: number; data: Uint8Array } {
		if (this.key === undefined || this.rx === undefined) throw new Error("not logged in");
		if (box.length < 16 + 4 || box.length > MAX_FRAME) throw new Error("malformed frame");
		const p = sodium.crypto_box_open_easy_afternm(box, this.rx.next(), this.key);
		return { type: p[0], data: p.subarray(4) };
	}

	wipe(): void {
		wipe(this.key, this.tck.privateKey);
	}
}

/** Splits a byte stream into CSP frames' boxes. */
export class FrameReader {
	private buf: Uint8Array = new Uint8Array(0);
	push(b: Uint8Array): void {
		if (this.buf.length + b.length > 4 * MAX_FRAME) throw new Error("the chat service sent too much");
		this.buf = cat(this.buf, b);
	}
	take(n: number): Uint8Array | undefined {
		if (this.buf.length < n) return undefined;
		const r = this.buf.slice(0, n);
		this.buf = this.buf.slice(n);
		return r;
	}
	nextFrame(): Uint8Array | undefined {
		if (this.buf.length < 2) return undefined;
		const n = new DataView(this.buf.buffer, this.buf.byteOffset, 2).getUint16(0, true);
		if (n > MAX_FRAME) throw new Error("the chat service sent an oversized frame");
		if (this.buf.length < 2 + n) return undefined;
		const r = this.buf.slice(2, 2 + n);
		this.buf = this.buf.slice(2 + n);
		return r;
	}
}

// --- end-to-end messages ---

export type Opened = { sender: string; msgId: bigint; createdMs: bigint; type: number; body: Uint8Array; nonce: Uint8Array; nickname?: string };

const MSGBOX_MAX = 8192 - 16 - 4;
const HDR = 64;
const META_MAX = 1024;

export function readId(b: Uint8Array, off: number): string {
	return String.fromCharCode(...b.subarray(off, off + 8));
}

/** The outer fields of a message box (for acks even when it does not open). */
export function peek(b: Uint8Array): { sender: string; receiver: string; msgId: bigint; flags: number } {
	if (b.length < HDR + 24 + 16 || b.length > MSGBOX_MAX) throw new Error("malformed message");
	const dv = new DataView(b.buffer, b.byteOffset, b.length);
	return { sender: readId(b, 0), receiver: readId(b, 8), msgId: dv.getBigUint64(16, true), flags: b[28] };
}

/** Opens a 1:1 message box from senderPk to sk. */
export function openMessage(b: Uint8Array, sk: Uint8Array, senderPk: Uint8Array): Opened {
	const h = peek(b);
	const dv = new DataView(b.buffer, b.byteOffset, b.length);
	if (b[29] !== 0) throw new Error("malformed message");
	const createdS = dv.getUint32(24, true);
	const metaLen = dv.getUint16(30, true);
	if (metaLen > META_MAX || HDR + metaLen + 24 + 17 > b.length) throw new Error("malformed message");
	const meta = b.subarray(HDR, HDR + metaLen);
	const nonce = b.slice(HDR + metaLen, HDR + metaLen + 24);
	const box = b.subarray(HDR + metaLen + 24);
	const shared = sodium.crypto_box_beforenm(senderPk, sk);
	try {
		let createdMs = BigInt(createdS) * 1000n;
		let nickname: string | undefined;
		if (metaLen > 0) {
			const mmk = kdf(shared, "mm", "3ma-csp");
			const mp = sodium.crypto_secretbox_open_easy(meta, nonce, mmk);
			wipe(mmk);
			const f = pb.decode(mp);
			if (pb.num(f, 3) !== h.msgId) throw new Error("the message's metadata names another message");
			if (pb.get(f, 4) !== undefined) createdMs = pb.num(f, 4);
			nickname = pb.str(f, 2);
		}
		const p = sodium.crypto_box_open_easy_afternm(box, nonce, shared);
		const n = p[p.length - 1];
		if (n === 0 || n > p.length - 1) throw new Error("malformed padding");
		for (let i = p.length - n; i < p.length; i++) if (p[i] !== n) throw new Error("malformed padding");
		return { sender: h.sender, msgId: h.msgId, createdMs, type: p[0], body: p.slice(1, p.length - n), nonce, nickname };
	} finally {
		wipe(shared);
	}
}

/** Seals a 1:1 message (with a metadata box) from sender (sk) to receiver (pk). */
export function sealMessage(
	sender: string,
	receiver: string,
	sk: Uint8Array,
	receiverPk: Uint8Array,
	msgId: bigint,
	createdMs: bigint,
	type: number,
	body: Uint8Array,
	nickname: string,
	flags = 0x01,
): { box: Uint8Array; nonce: Uint8Array } {
	const shared = sodium.crypto_box_beforenm(receiverPk, sk);
	const nonce = random(24);
	let pad = 1 + sodium.randombytes_uniform(255);
	if (body.length + pad < 32) pad = 32 - body.length;
	const inner = cat(Uint8Array.of(type), body, new Uint8Array(pad).fill(pad));
	const mw = new pb.Writer();
	const nick = te.encode(nickname);
	const mpad = (nick.length < 16 ? 16 - nick.length : 0) + sodium.randombytes_uniform(17);
	if (mpad > 0) mw.bytes(1, new Uint8Array(mpad));
	if (nickname) mw.bytes(2, nick);
	mw.fixed64(3, msgId).uint(4, createdMs);
	const mmk = kdf(shared, "mm", "3ma-csp");
	const meta = sodium.crypto_secretbox_easy(mw.finish(), nonce, mmk);
	const box = sodium.crypto_box_easy_afternm(inner, nonce, shared);
	wipe(mmk, shared, inner);
	const hdr = new Uint8Array(HDR);
	const dv = new DataView(hdr.buffer);
	hdr.set(te.encode(sender), 0);
	hdr.set(te.encode(receiver), 8);
	dv.setBigUint64(16, msgId, true);
	dv.setUint32(24, Number(createdMs / 1000n), true);
	hdr[28] = flags; // 0x01: push
	dv.setUint16(30, meta.length, true);
	const out = cat(hdr, meta, nonce, box);
	if (out.length > MSGBOX_MAX) throw new Error("message too large");
	return { box: out, nonce };
}

export function ack(sender: string, msgId: bigint): Uint8Array {
	return cat(te.encode(sender), u64le(msgId));
}

export function text(body: Uint8Array): string {
	return td.decode(body);
}
