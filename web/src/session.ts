// A device's session through the mediator (lib/client/d2m.c and
// messenger.c): the D2M connection, the CSP session inside proxy
// containers, reflection both ways. When the mediator promotes this device
// to leader it asks the chat service for incoming messages (0x03); every
// message it receives is reflected to the other devices (IncomingMessage)
// before it is acked to the chat service. A message it sends is reflected
// (OutgoingMessage) before it goes to the chat service. What other devices
// reflect arrives as Reflected and is acked once applied.
import * as csp from "./csp";
import { randomU64, sodium, wipe } from "./crypto";
import * as d2m from "./d2m";
import { encodeReceipt, parseReceipt, RECEIPT_IDS_MAX } from "./receipts";
import { describe, encodeFileMessage, type FileMeta, parseFileMessage, TYPE_FILE } from "./files";
import { APP_VERSION, type Contact, platformDetails, type Profile } from "./link";
import * as g from "./groups";
import * as pb from "./pb";
import { lookup } from "./server";
import { WsQueue } from "./wsq";

/** An outgoing message's state: waiting to be sent (offline), stored by the chat service, delivered to the peer, read by it; or refused before it left. */
export type OutState = "queued" | "sent" | "delivered" | "read" | "failed";

/**
 * A text message written while offline (or not sent yet): its ID and date
 * are fixed when it is written; sealed once (sealed), so that however often
 * it is sent the bytes are the same and a copy that arrives twice (an ack
 * lost with the connection) is dropped by the receiver as a replay.
 */
export type Outbound = {
	/** A contact's ID or a group's key (groups.ts groupKey). */
	key: string;
	text: string;
	id: string;
	date: number;
	sealed?: { reflect: Uint8Array; boxes: { peer: string; box: Uint8Array }[] };
};

export type ChatMessage = {
	peer: string;
	dir: "in" | "out";
	id: string;
	date: number;
	text: string;
	other?: boolean;
	from?: string;
	/** A file message's fields (text then describes the file). */
	file?: FileMeta;
	/** Outgoing: how far it got. */
	state?: OutState;
	/** Incoming: read on one of this identity's devices. */
	read?: boolean;
};

export type Device = { id: bigint; self: boolean; connected: boolean; label: string; platform: string };

export type SessionEvents = {
	message: (m: ChatMessage) => Promise<void>;
	contact: (c: Contact) => Promise<void>;
	group: (gr: g.Group) => Promise<void>;
	/** Whether a message nonce was seen before (a replay); record marks it as seen. */
	nonce: (n: Uint8Array, record: boolean) => Promise<boolean>;
	state: (s: string) => void;
	/**
	 * Delivery receipts (status 1 received, 2 read, 3/4 reactions) about ids
	 * (decimal, as ChatMessage.id): from peer about what this identity sent (byMe false),
	 * or sent by another device of this identity to peer about what it
	 * received (byMe true; also IncomingMessageUpdate.read, status 2).
	 */
	receipt: (peer: string, status: number, ids: string[], byMe: boolean) => Promise<void>;
	closed: (why: string, retry: boolean) => void;
};

const TIMEOUT_MS = 20000;
const ECHO_MS = 60000;
const CLIENT_INFO = "0.1;W;en/US;veil-web;" + APP_VERSION + ";Browser;any";
const TYPE_TEXT = 0x01;
const NICKNAME_MAX = 256;
const TYPE_RECEIPT = 0x80;
const TYPE_EDIT = 0x91;
const TYPE_DELETE = 0x92;
const RECEIPT_RECEIVED = 1;
const RECEIPT_READ = 2;
const FLAG_NO_AUTO_RECEIPTS = 0x80;
export const TEXT_MAX = 6000;
const REFLECTED_HDR_MIN = 16;
const TX_TTL_S = 30;
const TX_TRIES = 5;
const SCOPE_CONTACT_SYNC = 1;
const DEVICES_MAX = 64;
const GROUPS_MAX = 1000;
const LABEL_MAX = 256;

function u32le(b: Uint8Array, off: number): number {
	return new DataView(b.buffer, b.byteOffset, b.length).getUint32(off, true);
}

export class Session {
	private ws!: WsQueue;
	private keys: d2m.MdKeys;
	private cspc: csp.CspClient;
	private reader = new csp.FrameReader();
	private nextReflectId = 1 + sodium.randombytes_uniform(0x10000000);
	private reflectWaiters = new Map<number, () => void>();
	private ackWaiters = new Map<string, () => void>();
	private chain: Promise<void> = Promise.resolve();
	private early: { type: number; payload: Uint8Array }[] = [];
	leader = false;
	private echoTimer: ReturnType<typeof setInterval> | undefined;
	private typeWaiters: { types: number[]; res: (p: Uint8Array, type: number) => void }[] = [];
	/** An echo request not answered yet: the connection is given up if it stays unanswered. */
	private echoWait: ReturnType<typeof setTimeout> | undefined;
	private txChain: Promise<void> = Promise.resolve();

	constructor(
		private p: Profile,
		private ev: SessionEvents,
	) {
		this.keys = d2m.deriveKeys(p.dgk);
		this.cspc = new csp.CspClient(p.chatPk);
	}

	private contact(id: string): Contact | undefined {
		return this.p.contacts.find((c) => c.identity === id);
	}

	private async contactKey(id: string): Promise<Uint8Array> {
		const c = this.contact(id);
		if (c) return c.publicKey;
		const pk = await lookup(this.p.directoryUrl, id);
		const nc: Contact = { identity: id, publicKey: pk, nickname: "", firstName: "", level: 0 };
		this.p.contacts.push(nc);
		await this.ev.contact(nc);
		return pk;
	}

	/** Reads proxy bytes until n CSP bytes are in, keeping other containers for later. */
	private async cspBytes(n: number): Promise<Uint8Array> {
		for (;;) {
			const got = this.reader.take(n);
			if (got) return got;
			const c = d2m.parseContainer(await this.ws.next(TIMEOUT_MS));
			if (c.type === d2m.T.PROXY) this.reader.push(c.payload);
			else if (this.early.length < 1024) this.early.push({ type: c.type, payload: c.payload.slice() });
		}
	}

	private proxy(b: Uint8Array): void {
		this.ws.send(d2m.container(d2m.T.PROXY, b));
	}

	async connect(): Promise<void> {
		const c = await d2m.connect(
			this.p.mediatorUrl,
			this.keys,
			this.p.serverGroup,
			{ deviceId: this.p.deviceId, expectNew: false, label: this.p.label, appVersion: APP_VERSION, platformDetails: platformDetails() },
			TIMEOUT_MS,
		);
		this.ws = c.ws;
		try {
			this.proxy(this.cspc.hello());
			this.cspc.serverHello(await this.cspBytes(csp.SERVER_HELLO_LEN));
			this.proxy(this.cspc.login(this.p.identity, this.p.ck, CLIENT_INFO, this.p.cspDeviceId));
			this.cspc.loginAck(await this.cspBytes(csp.LOGIN_ACK_LEN));
		} catch (e) {
			this.ws.close(1000);
			throw e;
		}
		this.ws.onclose = (e) => {
			clearInterval(this.echoTimer);
			clearTimeout(this.echoWait);
			this.cspc.wipe();
			// 41xx needs the user, except 4112 (this device connected again elsewhere).
			const retry = !(e.code >= 4100 && e.code <= 4199);
			this.ev.closed(e.code === 4011 ? e.message : "the mediator closed the connection (" + e.code + ")", retry);
		};
		// Echo requests keep the session open while nothing else flows (veild drops a
		// CSP session idle for 5 minutes), as the C client's session does.
		// One unanswered for TIMEOUT_MS means the connection is gone without a close
		// (a network that went away): it is closed, and the app connects again.
		this.echoTimer = setInterval(() => this.echo(), ECHO_MS);
		this.ev.state("connected");
		const early = this.early;
		this.early = [];
		for (const x of early) this.onContainer(x.type, x.payload);
		this.ws.listen((m) => {
			try {
				const x = d2m.parseContainer(m);
				this.onContainer(x.type, x.payload);
			} catch (e) {
				this.fail(e);
			}
		});
		this.pumpCsp();
	}

	/** Sends an echo request; the connection closes (4011, retried) if no answer comes in time. */
	echo(): void {
		if (!this.ws.isOpen() || this.echoWait !== undefined) return;
		this.echoWait = setTimeout(() => {
			this.ws.abandon(4011, "the server stopped answering");
		}, TIMEOUT_MS);
		this.proxy(this.cspc.frame(csp.P.ECHO_REQUEST, new Uint8Array(8)));
	}

	close(): void {
		clearInterval(this.echoTimer);
		clearTimeout(this.echoWait);
		this.ws?.close(1000);
		this.cspc.wipe();
		d2m.wipeKeys(this.keys);
	}

	private fail(e: unknown): void {
		this.ev.state("error: " + (e instanceof Error ? e.message : String(e)));
		this.ws.close(4010);
	}

	/** Work that must happen in order (one message at a time). */
	private queue(fn: () => Promise<void>): void {
		this.chain = this.chain.then(fn).catch((e: unknown) => this.fail(e));
	}

	private onContainer(type: number, p: Uint8Array): void {
		switch (type) {
			case d2m.T.PROXY:
				this.reader.push(p);
				this.pumpCsp();
				break;
			case d2m.T.REFLECT_ACK: {
				if (p.length !== 16) throw new Error("malformed reflect-ack");
				const w = this.reflectWaiters.get(u32le(p, 4));
				this.reflectWaiters.delete(u32le(p, 4));
				w?.();
				break;
			}
			case d2m.T.REFLECTED: {
				const copy = p.slice();
				this.queue(() => this.onReflected(copy));
				break;
			}
			case d2m.T.REFLECTION_QUEUE_DRY:
				this.ev.state("up to date");
				break;
			case d2m.T.ROLE_PROMOTED_TO_LEADER:
				this.leader = true;
				this.proxy(this.cspc.frame(csp.P.UNBLOCK_INCOMING, new Uint8Array(0)));
				this.ev.state("connected; this browser receives for all your devices");
				break;
			default: {
				// An answer someone waits for (transactions, device management).
				const i = this.typeWaiters.findIndex((w) => w.types.includes(type));
				if (i >= 0) {
					const w = this.typeWaiters[i];
					this.typeWaiters.splice(i, 1);
					w.res(p.slice(), type);
				}
				break;
			}
		}
	}

	/** The next container of one of types (registered before the request goes out). */
	private waitFor(types: number[], timeoutMs: number): Promise<{ type: number; payload: Uint8Array }> {
		return new Promise((res, rej) => {
			const w = {
				types,
				res: (payload: Uint8Array, type: number) => {
					clearTimeout(t);
					res({ type, payload });
				},
			};
			const t = setTimeout(() => {
				const i = this.typeWaiters.indexOf(w);
				if (i >= 0) this.typeWaiters.splice(i, 1);
				rej(new Error("the mediator did not answer in time"));
			}, timeoutMs);
			this.typeWaiters.push(w);
		});
	}

	/**
	 * One device group transaction of scope around the reflect of envelope, as
	 * lib/client/device.c: begin (while another device holds the lock, wait for
	 * its end and try again, up to TX_TRIES times), reflect, commit.
	 */
	private transaction(scope: number, envelope: Uint8Array): Promise<void> {
		const run = async (): Promise<void> => {
			const box = d2m.seal(this.keys.dgtsk, new pb.Writer().uint3(1, scope).finish());
			const begin = d2m.container(d2m.T.BEGIN_TRANSACTION, new pb.Writer().bytes(1, box).uint(2, TX_TTL_S).finish());
			for (let tries = 0; ; tries++) {
				const w = this.waitFor([d2m.T.BEGIN_TRANSACTION_ACK, d2m.T.TRANSACTION_REJECTED], TIMEOUT_MS);
				this.ws.send(begin);
				if ((await w).type === d2m.T.BEGIN_TRANSACTION_ACK) break;
				if (tries + 1 === TX_TRIES) throw new Error("another device keeps the device group busy");
				try {
					await this.waitFor([d2m.T.TRANSACTION_ENDED], TX_TTL_S * 1000 + 5000);
				} catch {
					// its lock ran out: try again
				}
			}
			await this.reflect(envelope);
			const c = this.waitFor([d2m.T.COMMIT_TRANSACTION_ACK], TIMEOUT_MS);
			this.ws.send(d2m.container(d2m.T.COMMIT_TRANSACTION, new Uint8Array(0)));
			await c;
		};
		const r = this.txChain.then(run);
		this.txChain = r.catch(() => undefined);
		return r;
	}

	/** The devices of the group, as the mediator lists them (GetDevicesInfo). */
	async devices(): Promise<Device[]> {
		const w = this.waitFor([d2m.T.DEVICES_INFO], TIMEOUT_MS);
		this.ws.send(d2m.container(d2m.T.GET_DEVICES_INFO, new Uint8Array(0)));
		const out: Device[] = [];
		for (const e of pb.all(pb.decode((await w).payload), 1)) {
			if (out.length >= DEVICES_MAX) break;
			const ef = pb.decode(e);
			const id = pb.get(ef, 1);
			if (id === undefined || id.wt !== 1) throw new Error("the mediator's device list is malformed");
			const a = pb.decode(pb.bytes(ef, 2) ?? new Uint8Array(0));
			const d: Device = { id: id.v, self: id.v === this.p.deviceId, connected: pb.get(a, 2) !== undefined, label: "", platform: "" };
			try {
				const info = pb.decode(d2m.open(this.keys.dgdik, pb.bytes(a, 1) ?? new Uint8Array(0)));
				d.label = (pb.str(info, 5) ?? "").slice(0, LABEL_MAX);
				d.platform = (pb.str(info, 3) ?? "").slice(0, LABEL_MAX);
			} catch {
				d.label = "(unreadable)";
			}
			out.push(d);
		}
		return out;
	}

	/** Drops another device of the group (DropDevice); resolved on its ack. */
	async dropDevice(id: bigint): Promise<void> {
		if (id === this.p.deviceId) throw new Error("this is the device you are using: drop it from another one");
		const w = this.waitFor([d2m.T.DROP_DEVICE_ACK], TIMEOUT_MS);
		this.ws.send(d2m.container(d2m.T.DROP_DEVICE, new pb.Writer().fixed64(1, id).finish()));
		const a = pb.get(pb.decode((await w).payload), 1);
		if (a === undefined || a.wt !== 1 || a.v !== id) throw new Error("the mediator acknowledged another device");
	}

	/** Tells the other devices about a contact (its key, level and name): ContactSync update. */
	async syncContact(c: Contact): Promise<void> {
		const ct = new pb.Writer().string(1, c.identity).bytes(2, c.publicKey);
		if (c.firstName) ct.string(4, c.firstName);
		ct.uint(7, c.level);
		const cs = new pb.Writer().bytes(2, new pb.Writer().bytes(1, ct.finish()).finish()).finish();
		await this.transaction(SCOPE_CONTACT_SYNC, this.envelope(6, cs));
	}

	/** A contact another device changed: add it, raise its level, take its name; a different key is never taken. */
	private async applyContactSync(b: Uint8Array): Promise<void> {
		const cs = pb.decode(b);
		const act = pb.bytes(cs, 1) ?? pb.bytes(cs, 2);
		const raw = act === undefined ? undefined : pb.bytes(pb.decode(act), 1);
		if (raw === undefined) return;
		const f = pb.decode(raw);
		const id = pb.str(f, 1) ?? "";
		const pk = pb.bytes(f, 2);
		const lv = pb.get(f, 7) === undefined ? -1 : Number(pb.num(f, 7));
		const name = pb.str(f, 4);
		if (!/^[0-9A-Z*][0-9A-Z]{7}$/.test(id) || (pk !== undefined && pk.length !== 32) || lv > 2 || (name?.length ?? 0) > NICKNAME_MAX)
			throw new Error("malformed contact");
		let c = this.contact(id);
		if (c === undefined) {
			if (pk === undefined) return;
			c = { identity: id, publicKey: pk.slice(), nickname: "", firstName: "", level: 0 };
			this.p.contacts.push(c);
		} else if (pk !== undefined && !sodium.memcmp(pk, c.publicKey)) {
			return;
		}
		if (lv > c.level) c.level = lv;
		if (name !== undefined) c.firstName = name;
		await this.ev.contact(c);
	}

	private pumpCsp(): void {
		for (;;) {
			const f = this.reader.nextFrame();
			if (f === undefined) return;
			const { type, data } = this.cspc.open(f);
			switch (type) {
				case csp.P.ECHO_REQUEST:
					this.proxy(this.cspc.frame(csp.P.ECHO_RESPONSE, data));
					break;
				case csp.P.ECHO_RESPONSE:
					clearTimeout(this.echoWait);
					this.echoWait = undefined;
					break;
				case csp.P.OUTGOING_ACK: {
					if (data.length !== 16) throw new Error("malformed ack");
					const k = csp.readId(data, 0) + ":" + new DataView(data.buffer, data.byteOffset + 8, 8).getBigUint64(0, true);
					const w = this.ackWaiters.get(k);
					this.ackWaiters.delete(k);
					w?.();
					break;
				}
				case csp.P.INCOMING_MESSAGE: {
					const copy = data.slice();
					this.queue(() => this.onIncoming(copy));
					break;
				}
				case csp.P.CLOSE_ERROR:
				case csp.P.ALERT:
					this.ev.state("server: " + new TextDecoder().decode(data.subarray(type === csp.P.CLOSE_ERROR ? 1 : 0)));
					break;
				default:
					break;
			}
		}
	}

	private reflect(envelope: Uint8Array): Promise<void> {
		const id = this.nextReflectId;
		this.nextReflectId = (this.nextReflectId + 1) >>> 0 || 1;
		const box = d2m.seal(this.keys.dgrk, envelope);
		const hdr = new Uint8Array(8);
		hdr[0] = 8;
		new DataView(hdr.buffer).setUint32(4, id, true);
		const payload = new Uint8Array(8 + box.length);
		payload.set(hdr);
		payload.set(box, 8);
		return new Promise((res, rej) => {
			const t = setTimeout(() => {
				this.reflectWaiters.delete(id);
				rej(new Error("the mediator did not acknowledge a reflected message in time"));
			}, TIMEOUT_MS);
			this.reflectWaiters.set(id, () => {
				clearTimeout(t);
				res();
			});
			this.ws.send(d2m.container(d2m.T.REFLECT, payload));
		});
	}

	private envelope(content: number, msg: Uint8Array): Uint8Array {
		const w = new pb.Writer();
		const pad = sodium.randombytes_uniform(256);
		if (pad > 0) w.bytes(1, new Uint8Array(pad));
		return w.fixed64(13, this.p.deviceId).uint(3, 3).bytes(content, msg).finish();
	}

	/** A message from the chat service (this device leads). */
	private async onIncoming(b: Uint8Array): Promise<void> {
		let h: ReturnType<typeof csp.peek>;
		try {
			h = csp.peek(b);
		} catch {
			return; // nothing to ack it with
		}
		const sendAck = (): void => {
			if ((h.flags & 0x04) === 0) this.proxy(this.cspc.frame(csp.P.INCOMING_ACK, csp.ack(h.sender, h.msgId)));
		};
		if (h.receiver !== this.p.identity) {
			sendAck();
			return;
		}
		let m: csp.Opened;
		try {
			m = csp.openMessage(b, this.p.ck, await this.contactKey(h.sender));
		} catch {
			sendAck(); // cannot be opened: dropped, as the C client logs and acks it
			return;
		}
		if (await this.ev.nonce(m.nonce, false)) {
			sendAck(); // a replay (or a resend of what was shown already): dropped
			return;
		}
		const inner = new pb.Writer()
			.string(1, m.sender)
			.fixed64(2, m.msgId)
			.uint(3, m.createdMs)
			.uint(5, m.type)
			.bytes(6, m.body)
			.bytes(7, m.nonce)
			.finish();
		await this.reflect(this.envelope(4, inner));
		await this.ev.nonce(m.nonce, true);
		// The sender's nickname from the metadata box (the legacy field is not read).
		const c = this.contact(m.sender);
		if (c !== undefined && m.nickname !== undefined && m.nickname.length <= NICKNAME_MAX && c.nickname !== m.nickname) {
			c.nickname = m.nickname;
			await this.ev.contact(c);
		}
		if (m.type >= 0x40 && m.type < 0x80) await this.onGroup(m.sender, m.type, m.body, m.msgId, m.createdMs, false);
		if (m.type === TYPE_TEXT) {
			let t: string | undefined;
			try {
				t = csp.text(m.body);
			} catch {
				t = undefined;
			}
			if (t !== undefined) await this.ev.message({ peer: m.sender, dir: "in", id: m.msgId.toString(), date: Number(m.createdMs), text: t });
		}
		if (m.type === TYPE_FILE || m.type === TYPE_RECEIPT) await this.onContent(m.sender, "in", m.type, m.body, m.msgId, m.createdMs, false);
		sendAck();
		// An automatic "received" receipt, as the C client sends one (not reflected, not awaited).
		const t = m.type;
		if ((t < 0x40 || t === TYPE_EDIT || t === TYPE_DELETE) && (h.flags & FLAG_NO_AUTO_RECEIPTS) === 0) {
			const body = new Uint8Array(9);
			body[0] = RECEIPT_RECEIVED;
			new DataView(body.buffer).setBigUint64(1, m.msgId, true);
			const r = csp.sealMessage(this.p.identity, m.sender, this.p.ck, await this.contactKey(m.sender), randomU64(), BigInt(Date.now()), TYPE_RECEIPT, body, "", 0);
			this.proxy(this.cspc.frame(csp.P.OUTGOING_MESSAGE, r.box));
		}
		wipe(m.body);
	}

	/** What another device reflected. */
	private async onReflected(p: Uint8Array): Promise<void> {
		if (p.length < REFLECTED_HDR_MIN || p[0] < REFLECTED_HDR_MIN || p[0] > p.length) throw new Error("malformed reflected message");
		const id = u32le(p, 4);
		try {
			const env = pb.decode(d2m.open(this.keys.dgrk, p.subarray(p[0])));
			const inc = pb.bytes(env, 4);
			const out = pb.bytes(env, 2);
			const cs = pb.bytes(env, 6);
			const inu = pb.bytes(env, 11);
			if (cs !== undefined) {
				await this.applyContactSync(cs);
			} else if (inu !== undefined) {
				await this.applyIncomingUpdate(inu);
			} else if (inc !== undefined) {
				const f = pb.decode(inc);
				const sender = pb.str(f, 1) ?? "";
				const nonce = pb.bytes(f, 7);
				if (nonce !== undefined && nonce.length === 24) await this.ev.nonce(nonce, true);
				const t = Number(pb.num(f, 5));
				if (t >= 0x40 && t < 0x80) await this.onGroup(sender, t, pb.bytes(f, 6) ?? new Uint8Array(0), pb.num(f, 2), pb.num(f, 3), true);
				if (t === TYPE_FILE || t === TYPE_RECEIPT) await this.onContent(sender, "in", t, pb.bytes(f, 6) ?? new Uint8Array(0), pb.num(f, 2), pb.num(f, 3), true);
				if (t === TYPE_TEXT)
					await this.ev.message({
						peer: sender,
						dir: "in",
						id: pb.num(f, 2).toString(),
						date: Number(pb.num(f, 3)),
						text: csp.text(pb.bytes(f, 6) ?? new Uint8Array(0)),
						other: true,
					});
			} else if (out !== undefined) {
				const f = pb.decode(out);
				const conv = pb.bytes(f, 1);
				const cf = conv !== undefined ? pb.decode(conv) : [];
				const peer = pb.str(cf, 1);
				const grp = pb.bytes(cf, 3);
				const t = Number(pb.num(f, 4));
				if (grp !== undefined && t >= 0x40 && t < 0x80)
					await this.onGroup(this.p.identity, t, pb.bytes(f, 5) ?? new Uint8Array(0), pb.num(f, 2), pb.num(f, 3), true);
				if (peer !== undefined && (t === TYPE_FILE || t === TYPE_RECEIPT)) await this.onContent(peer, "out", t, pb.bytes(f, 5) ?? new Uint8Array(0), pb.num(f, 2), pb.num(f, 3), true);
				if (peer !== undefined && Number(pb.num(f, 4)) === TYPE_TEXT)
					await this.ev.message({
						peer,
						dir: "out",
						id: pb.num(f, 2).toString(),
						date: Number(pb.num(f, 3)),
						text: csp.text(pb.bytes(f, 5) ?? new Uint8Array(0)),
						other: true,
					});
			}
		} catch (e) {
			// Undecodable or not for us: acked all the same, as the C client drops it.
			this.ev.state("a reflected message was dropped: " + (e instanceof Error ? e.message : String(e)));
		}
		const ack = new Uint8Array(8);
		new DataView(ack.buffer).setUint32(4, id, true);
		this.ws.send(d2m.container(d2m.T.REFLECTED_ACK, ack));
	}

	/** A file message or a delivery receipt (1:1), received or reflected; dir is this identity's side. */
	private async onContent(peer: string, dir: "in" | "out", type: number, body: Uint8Array, msgId: bigint, created: bigint, other: boolean): Promise<void> {
		try {
			if (type === TYPE_FILE) {
				const file = parseFileMessage(body);
				await this.ev.message({ peer, dir, id: msgId.toString(), date: Number(created), text: describe(file), file, other });
			} else {
				const r = parseReceipt(body);
				await this.ev.receipt(peer, r.status, r.ids, dir === "out");
			}
		} catch (e) {
			this.ev.state("a message was dropped: " + (e instanceof Error ? e.message : String(e)));
		}
	}

	/** The conversation a ConversationId names: a contact's ID, or a group's key. */
	private convKey(b: Uint8Array | undefined): string | undefined {
		if (b === undefined) return undefined;
		const cf = pb.decode(b);
		const c = pb.str(cf, 1);
		if (c !== undefined) return /^[0-9A-Z*][0-9A-Z]{7}$/.test(c) ? c : undefined;
		const gi = pb.bytes(cf, 3);
		if (gi === undefined) return undefined;
		const gf = pb.decode(gi);
		const gid = pb.get(gf, 1);
		const creator = pb.str(gf, 2);
		if (gid === undefined || gid.wt !== 1 || creator === undefined) return undefined;
		return g.groupKey(creator, gid.v);
	}

	/** IncomingMessageUpdate: messages another device marked read. */
	private async applyIncomingUpdate(b: Uint8Array): Promise<void> {
		const byPeer = new Map<string, string[]>();
		for (const u of pb.all(pb.decode(b), 1).slice(0, RECEIPT_IDS_MAX)) {
			const f = pb.decode(u);
			const peer = this.convKey(pb.bytes(f, 1));
			const id = pb.get(f, 2);
			if (peer === undefined || id === undefined || id.wt !== 1 || pb.bytes(f, 3) === undefined) continue;
			const l = byPeer.get(peer) ?? [];
			l.push(id.v.toString());
			byPeer.set(peer, l);
		}
		for (const [peer, ids] of byPeer) await this.ev.receipt(peer, RECEIPT_READ, ids, true);
	}

	/**
	 * Marks incoming messages ids of conversation key as read. For a contact: a
	 * delivery receipt "read" to the peer, reflected first (the other devices
	 * learn it from the reflection). For a group, which has no read receipts:
	 * IncomingMessageUpdate.read reflected to the other devices, as
	 * csp.struct.yml's delivery-receipt says.
	 */
	async markRead(key: string, ids: string[]): Promise<void> {
		for (let i = 0; i < ids.length; i += RECEIPT_IDS_MAX) {
			const part = ids.slice(i, i + RECEIPT_IDS_MAX);
			if (!g.isGroupKey(key)) {
				await this.sendBody(key, TYPE_RECEIPT, encodeReceipt(RECEIPT_READ, part), 0);
				continue;
			}
			const gr = this.groups().find((x) => g.groupKey(x.creator, x.gid) === key);
			if (gr === undefined) continue;
			const conv = new pb.Writer().bytes(3, new pb.Writer().fixed64(1, gr.gid).string(2, gr.creator).finish()).finish();
			const read = new pb.Writer().uint(1, Date.now()).finish();
			const upd = new pb.Writer();
			for (const id of part) upd.bytes(1, new pb.Writer().bytes(1, conv).fixed64(2, BigInt(id)).bytes(3, read).finish());
			await this.reflect(this.envelope(11, upd.finish()));
		}
	}

	/** Sends a file message (the blob uploaded already) to peer. */
	async sendFile(peer: string, file: FileMeta): Promise<ChatMessage> {
		const m = await this.sendBody(peer, TYPE_FILE, encodeFileMessage(file));
		return { ...m, text: describe(file), file };
	}

	private groups(): g.Group[] {
		this.p.groups ??= [];
		return this.p.groups;
	}

	private group(creator: string, gid: bigint): g.Group | undefined {
		return this.groups().find((x) => x.creator === creator && x.gid === gid);
	}

	/**
	 * A group message (received, or reflected by another device; sender is this
	 * identity for what it sent), by the rules of lib/client/group.c for setup,
	 * name, leave, text and files. Messages for unknown groups are dropped (the browser
	 * does not ask creators for a group's state yet).
	 */
	private async onGroup(sender: string, type: number, body: Uint8Array, msgId: bigint, created: bigint, other: boolean): Promise<void> {
		const me = this.p.identity;
		try {
			switch (type) {
				case g.TYPE_GROUP_SETUP: {
					const { gid, inner } = g.unwrapCreator(body);
					const members = g.parseSetup(inner, sender);
					let gr = this.group(sender, gid);
					if (sender !== me && !members.includes(me)) {
						if (gr === undefined) return;
						gr.left = true; // removed, or the group was disbanded
					} else if (gr === undefined) {
						if (this.groups().length >= GROUPS_MAX) return;
						gr = { creator: sender, gid, name: "", members, left: false };
						this.groups().push(gr);
					} else {
						gr.members = members;
						gr.left = false;
					}
					await this.ev.group(gr);
					return;
				}
				case g.TYPE_GROUP_NAME: {
					const { gid, inner } = g.unwrapCreator(body);
					const gr = this.group(sender, gid);
					if (gr === undefined || gr.left) return;
					gr.name = g.parseName(inner);
					await this.ev.group(gr);
					return;
				}
				case g.TYPE_GROUP_LEAVE: {
					const { creator, gid } = g.unwrapMember(body);
					const gr = this.group(creator, gid);
					if (gr === undefined || gr.left || sender === creator) return;
					if (sender === me) gr.left = true;
					else gr.members = gr.members.filter((x) => x !== sender);
					await this.ev.group(gr);
					return;
				}
				case g.TYPE_GROUP_FILE:
				case g.TYPE_GROUP_TEXT: {
					const { creator, gid, inner } = g.unwrapMember(body);
					const gr = this.group(creator, gid);
					if (gr === undefined || gr.left || !g.has(gr, sender)) return;
					const file = type === g.TYPE_GROUP_FILE ? parseFileMessage(inner) : undefined;
					await this.ev.message({
						peer: g.groupKey(creator, gid),
						dir: sender === me ? "out" : "in",
						from: sender === me ? undefined : sender,
						id: msgId.toString(),
						date: Number(created),
						text: file !== undefined ? describe(file) : csp.text(inner),
						...(file !== undefined ? { file } : {}),
						other,
					});
					return;
				}
				default:
					return;
			}
		} catch (e) {
			this.ev.state("a group message was dropped: " + (e instanceof Error ? e.message : String(e)));
		}
	}

	/** Sends text to a group (key as groupKey): reflected once, then one copy per member, resolved on every ack. */
	async sendGroupText(key: string, text: string): Promise<ChatMessage> {
		const inner = new TextEncoder().encode(text);
		if (inner.length === 0 || inner.length > TEXT_MAX) throw new Error("a message has 1 to " + TEXT_MAX + " bytes");
		return { ...(await this.sendGroupBody(key, g.TYPE_GROUP_TEXT, inner)), text };
	}

	/**
	 * Sends a file message to a group (the blob uploaded already, with persist:
	 * every member downloads the same blob), as lib/client's group files: one
	 * group file message (0x46) per member, reflected once.
	 */
	async sendGroupFile(key: string, file: FileMeta): Promise<ChatMessage> {
		const m = await this.sendGroupBody(key, g.TYPE_GROUP_FILE, encodeFileMessage(file));
		return { ...m, text: describe(file), file };
	}

	/** A group message of type with inner (inside the group member container) to every other member; resolved on every ack. */
	private async sendGroupBody(key: string, type: number, inner: Uint8Array): Promise<ChatMessage> {
		const gr = this.groups().find((x) => g.groupKey(x.creator, x.gid) === key);
		if (gr === undefined) throw new Error("unknown group");
		if (gr.left) throw new Error("you are no longer a member of this group");
		const to = [gr.creator, ...gr.members].filter((x) => x !== this.p.identity);
		const body = g.wrapMember(gr.creator, gr.gid, inner);
		const msgId = randomU64();
		const created = BigInt(Date.now());
		const boxes: { peer: string; box: Uint8Array; nonce: Uint8Array }[] = [];
		for (const peer of to) {
			const pk = await this.contactKey(peer);
			const { box, nonce } = csp.sealMessage(this.p.identity, peer, this.p.ck, pk, msgId, created, type, body, this.p.nickname);
			boxes.push({ peer, box, nonce });
		}
		const gi = new pb.Writer().fixed64(1, gr.gid).string(2, gr.creator).finish();
		const om = new pb.Writer()
			.bytes(1, new pb.Writer().bytes(3, gi).finish())
			.fixed64(2, msgId)
			.uint(3, created)
			.uint(4, type)
			.bytes(5, body);
		for (const b of boxes) om.bytes(7, b.nonce);
		await this.reflect(this.envelope(2, om.finish()));
		await this.sendBoxes(boxes, msgId);
		return { peer: key, dir: "out", id: msgId.toString(), date: Number(created), text: "", state: "sent" };
	}

	/**
	 * Seals a queued text message (o.key a contact or a group) with its own ID
	 * and date: the reflection for the other devices and one box per receiver.
	 */
	async sealText(o: Outbound): Promise<NonNullable<Outbound["sealed"]>> {
		const text = new TextEncoder().encode(o.text);
		if (text.length === 0 || text.length > TEXT_MAX) throw new Error("a message has 1 to " + TEXT_MAX + " bytes");
		if (!/^[0-9]{1,20}$/.test(o.id) || BigInt(o.id) >= 1n << 64n) throw new Error("malformed message ID");
		const msgId = BigInt(o.id);
		const created = BigInt(o.date);
		const boxes: { peer: string; box: Uint8Array }[] = [];
		const om = new pb.Writer();
		if (g.isGroupKey(o.key)) {
			const gr = this.groups().find((x) => g.groupKey(x.creator, x.gid) === o.key);
			if (gr === undefined) throw new Error("unknown group");
			if (gr.left) throw new Error("you are no longer a member of this group");
			const body = g.wrapMember(gr.creator, gr.gid, text);
			const nonces: Uint8Array[] = [];
			for (const peer of [gr.creator, ...gr.members].filter((x) => x !== this.p.identity)) {
				const { box, nonce } = csp.sealMessage(this.p.identity, peer, this.p.ck, await this.contactKey(peer), msgId, created, g.TYPE_GROUP_TEXT, body, this.p.nickname);
				boxes.push({ peer, box });
				nonces.push(nonce);
			}
			const gi = new pb.Writer().fixed64(1, gr.gid).string(2, gr.creator).finish();
			om.bytes(1, new pb.Writer().bytes(3, gi).finish()).fixed64(2, msgId).uint(3, created).uint(4, g.TYPE_GROUP_TEXT).bytes(5, body);
			for (const n of nonces) om.bytes(7, n);
		} else {
			if (o.key === this.p.identity) throw new Error("cannot send a message to yourself");
			const { box, nonce } = csp.sealMessage(this.p.identity, o.key, this.p.ck, await this.contactKey(o.key), msgId, created, TYPE_TEXT, text, this.p.nickname, 0x01);
			boxes.push({ peer: o.key, box });
			om.bytes(1, new pb.Writer().string(1, o.key).finish()).fixed64(2, msgId).uint(3, created).uint(4, TYPE_TEXT).bytes(5, text).bytes(7, nonce);
		}
		return { reflect: this.envelope(2, om.finish()), boxes };
	}

	/** Sends each box of message msgId to the chat service; resolved once every one is acked. */
	private async sendBoxes(boxes: { peer: string; box: Uint8Array }[], msgId: bigint): Promise<void> {
		await Promise.all(
			boxes.map(
				(b) =>
					new Promise<void>((res, rej) => {
						const k = b.peer + ":" + msgId;
						const t = setTimeout(() => {
							this.ackWaiters.delete(k);
							rej(new Error("the chat service did not acknowledge the message in time"));
						}, TIMEOUT_MS);
						this.ackWaiters.set(k, () => {
							clearTimeout(t);
							res();
						});
						this.proxy(this.cspc.frame(csp.P.OUTGOING_MESSAGE, b.box));
					}),
			),
		);
	}

	/** Sends what sealText sealed: reflected first, then each box to the chat service; resolved on every ack. */
	async sendSealed(id: string, s: NonNullable<Outbound["sealed"]>): Promise<void> {
		await this.reflect(s.reflect);
		await this.sendBoxes(s.boxes, BigInt(id));
	}

	/** Sends text to peer: reflected first, then to the chat service, resolved on its ack. */
	async sendText(peer: string, text: string): Promise<ChatMessage> {
		const body = new TextEncoder().encode(text);
		if (body.length === 0 || body.length > TEXT_MAX) throw new Error("a message has 1 to " + TEXT_MAX + " bytes");
		const m = await this.sendBody(peer, TYPE_TEXT, body);
		return { ...m, text };
	}

	/** Sends a 1:1 message of type: reflected first, then to the chat service, resolved on its ack. */
	private async sendBody(peer: string, type: number, body: Uint8Array, flags = 0x01): Promise<ChatMessage> {
		if (peer === this.p.identity) throw new Error("cannot send a message to yourself");
		const pk = await this.contactKey(peer);
		const msgId = randomU64();
		const created = BigInt(Date.now());
		const { box, nonce } = csp.sealMessage(this.p.identity, peer, this.p.ck, pk, msgId, created, type, body, this.p.nickname, flags);
		const om = new pb.Writer()
			.bytes(1, new pb.Writer().string(1, peer).finish())
			.fixed64(2, msgId)
			.uint(3, created)
			.uint(4, type)
			.bytes(5, body)
			.bytes(7, nonce)
			.finish();
		await this.reflect(this.envelope(2, om));
		await new Promise<void>((res, rej) => {
			const k = peer + ":" + msgId;
			const t = setTimeout(() => {
				this.ackWaiters.delete(k);
				rej(new Error("the chat service did not acknowledge the message in time"));
			}, TIMEOUT_MS);
			this.ackWaiters.set(k, () => {
				clearTimeout(t);
				res();
			});
			this.proxy(this.cspc.frame(csp.P.OUTGOING_MESSAGE, box));
		});
		return { peer, dir: "out", id: msgId.toString(), date: Number(created), text: "", state: "sent" };
	}
}
