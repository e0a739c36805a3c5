// The joining side (RRD, not the nominator) of the Connection Rendezvous
// Protocol over veild's relay, and the device join link that carries the
// RendezvousInit. Fields from proto/url-payloads.proto and
// proto/md-d2d-rendezvous.proto; keys as lib/md/rendezvous.c derives them.
import { hashSaltPersonal, kdf, random, sodium, wipe } from "./crypto";
import * as pb from "./pb";
import { WsQueue } from "./wsq";

const PERSONAL = "3ma-rendezvous";
const LINK_PREFIX = "threema://device-group/join#";
export const LINK_MAX = 1024;
const URL_MAX = 512;
const HS_FRAME_MAX = 16384;
const FRAME_MAX = 16 * 1024 * 1024;
const WS_MESSAGE_MAX = 65536;
const TAG = 16;

export type RdvInit = { ak: Uint8Array; pathId: number; url: string };

export class LinkError extends Error {}

function wsUrlOk(u: string): boolean {
	if (u.length > URL_MAX || !(u.startsWith("ws://") || u.startsWith("wss://"))) return false;
	for (let i = 0; i < u.length; i++) {
		const c = u.charCodeAt(i);
		if (c <= 0x20 || c >= 0x7f) return false;
	}
	return true;
}

/** Parses threema://device-group/join#... (an offer to join, from `veil device link`). */
export function parseLink(link: string): RdvInit {
	link = link.trim();
	if (link.length > LINK_MAX) throw new LinkError("the link is too long");
	if (!link.startsWith(LINK_PREFIX) || link.length === LINK_PREFIX.length)
		throw new LinkError("not a device join link (threema://device-group/join#...)");
	let b = link.slice(LINK_PREFIX.length);
	b = b.replace(/={1,2}$/, "");
	let raw: Uint8Array;
	try {
		raw = sodium.from_base64(b, sodium.base64_variants.URLSAFE_NO_PADDING);
	} catch {
		throw new LinkError("the join link is not valid base64");
	}
	try {
		const m = pb.decode(raw);
		if (pb.num(m, 1) !== 0n) throw new LinkError("unknown join link version");
		const variant = pb.bytes(m, 2);
		const init = pb.bytes(m, 3);
		if (variant === undefined || init === undefined) throw new LinkError("incomplete join link");
		const v = pb.decode(variant);
		if (pb.get(v, 2) === undefined)
			throw new LinkError(
				"this link asks to join; the browser takes a link that offers it ('veil device link' on the existing device)",
			);
		const ri = pb.decode(init);
		const ak = pb.bytes(ri, 2);
		const rw = pb.bytes(ri, 3);
		if (pb.num(ri, 1) !== 0n || ak === undefined || ak.length !== 32 || rw === undefined)
			throw new LinkError("the join link has no usable rendezvous data");
		const r = pb.decode(rw);
		const url = pb.str(r, 3);
		if (url === undefined || !wsUrlOk(url)) throw new LinkError("the join link's relay URL is not ws(s)://");
		return { ak: ak.slice(), pathId: Number(pb.num(r, 1) & 0xffffffffn), url };
	} catch (e) {
		if (e instanceof LinkError) throw e;
		throw new LinkError("the join link is malformed");
	} finally {
		wipe(raw);
	}
}

function nonce(pid: number, sn: number): Uint8Array {
	const n = new Uint8Array(12);
	const dv = new DataView(n.buffer);
	dv.setUint32(0, pid >>> 0, true);
	dv.setUint32(4, sn >>> 0, true);
	return n;
}

/** The RRD side of one relayed path: handshake, then sealed data frames. */
export class Rendezvous {
	private ws!: WsQueue;
	private keyOut: Uint8Array;
	private keyIn: Uint8Array;
	private snOut = 1;
	private snIn = 1;
	private rx = new Uint8Array(0);
	private nominated = false;
	rph: Uint8Array = new Uint8Array(32);

	constructor(private init: RdvInit) {
		this.keyOut = kdf(init.ak, "rrda", PERSONAL);
		this.keyIn = kdf(init.ak, "rida", PERSONAL);
	}

	/** The short form users compare: the first three bytes of the RPH as "xx-xx-xx". */
	shortRph(): string {
		return Array.from(this.rph.subarray(0, 3), (c) => c.toString(16).padStart(2, "0")).join("-");
	}

	private seal(p: Uint8Array, limit: number): void {
		if (p.length > limit - TAG) throw new Error("frame too large");
		const c = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(p, null, null, nonce(this.init.pathId, this.snOut), this.keyOut);
		this.snOut++;
		const f = new Uint8Array(4 + c.length);
		new DataView(f.buffer).setUint32(0, c.length, true);
		f.set(c, 4);
		for (let off = 0; off < f.length; off += WS_MESSAGE_MAX) this.ws.send(f.subarray(off, off + WS_MESSAGE_MAX));
	}

	/** The next whole frame, opened. */
	private async frame(timeoutMs: number): Promise<Uint8Array> {
		const limit = this.nominated ? FRAME_MAX : HS_FRAME_MAX;
		for (;;) {
			if (this.rx.length >= 4) {
				const cl = new DataView(this.rx.buffer, this.rx.byteOffset, 4).getUint32(0, true);
				if (cl > limit || cl < TAG) throw new Error("the other device sent a malformed frame");
				if (this.rx.length - 4 >= cl) {
					const c = this.rx.subarray(4, 4 + cl);
					let p: Uint8Array;
					try {
						p = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, c, null, nonce(this.init.pathId, this.snIn), this.keyIn);
					} catch {
						throw new Error("the other device failed the rendezvous (a wrong or tampered link?)");
					}
					this.snIn++;
					this.rx = this.rx.slice(4 + cl);
					return p;
				}
			}
			const m = await this.ws.next(timeoutMs);
			if (this.rx.length + m.length > 4 + limit + WS_MESSAGE_MAX) throw new Error("the other device sent too much");
			const n = new Uint8Array(this.rx.length + m.length);
			n.set(this.rx);
			n.set(m, this.rx.length);
			this.rx = n;
		}
	}

	/** Connects to the relay and runs the handshake; afterwards rph holds the path hash. */
	async handshake(timeoutMs: number): Promise<void> {
		this.ws = await WsQueue.open(this.init.url, 4 * FRAME_MAX, 10000);
		const challenge = random(16);
		const etk = sodium.crypto_box_keypair();
		this.seal(new pb.Writer().bytes(1, challenge).bytes(2, etk.publicKey).finish(), HS_FRAME_MAX);
		const ah = pb.decode(await this.frame(timeoutMs));
		const resp = pb.bytes(ah, 1);
		const theirs = pb.bytes(ah, 2);
		const theirEtk = pb.bytes(ah, 3);
		if (resp === undefined || resp.length !== 16 || !sodium.memcmp(resp, challenge))
			throw new Error("the other device failed the rendezvous (a wrong or tampered link?)");
		if (theirs === undefined || theirs.length !== 16 || theirEtk === undefined || theirEtk.length !== 32)
			throw new Error("the other device broke the rendezvous protocol");
		const shared = sodium.crypto_box_beforenm(theirEtk, etk.privateKey);
		wipe(etk.privateKey);
		this.seal(new pb.Writer().bytes(1, theirs).finish(), HS_FRAME_MAX);
		const km = new Uint8Array(64);
		km.set(this.init.ak);
		km.set(shared, 32);
		const stk = kdf(km, "st", PERSONAL);
		wipe(km, shared, this.keyOut, this.keyIn);
		this.keyOut = kdf(stk, "rrdt", PERSONAL);
		this.keyIn = kdf(stk, "ridt", PERSONAL);
		this.rph = hashSaltPersonal(stk, "ph", PERSONAL);
		wipe(stk);
	}

	/** Waits for the other side's Nominate (an empty message). */
	async awaitNominate(timeoutMs: number): Promise<void> {
		await this.frame(timeoutMs);
		this.nominated = true;
	}

	recv(timeoutMs: number): Promise<Uint8Array> {
		return this.frame(timeoutMs);
	}

	send(p: Uint8Array): void {
		this.seal(p, FRAME_MAX);
	}

	close(code: number): void {
		wipe(this.keyOut, this.keyIn);
		this.ws?.close(code);
	}
}
