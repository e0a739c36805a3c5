// The device-to-mediator protocol (proto/md-d2m.proto): the device group
// keys, the mediator URL, the D2M handshake (ServerHello, ClientHello,
// ServerInfo) and the 4-byte container. Keys and layout as lib/md/keys.c
// and lib/md/handshake.c.
import { hex, kdf, random, sodium, wipe } from "./crypto";
import * as pb from "./pb";
import { WsQueue } from "./wsq";

const PERSONAL = "3ma-mdev";
export const MAX_MESSAGE = 65536;
const PAD_MAX = 255;

export const T = {
	PROXY: 0x00,
	SERVER_HELLO: 0x10,
	CLIENT_HELLO: 0x11,
	SERVER_INFO: 0x12,
	REFLECTION_QUEUE_DRY: 0x20,
	ROLE_PROMOTED_TO_LEADER: 0x21,
	GET_DEVICES_INFO: 0x30,
	DEVICES_INFO: 0x31,
	DROP_DEVICE: 0x32,
	DROP_DEVICE_ACK: 0x33,
	BEGIN_TRANSACTION: 0x40,
	BEGIN_TRANSACTION_ACK: 0x41,
	COMMIT_TRANSACTION: 0x42,
	COMMIT_TRANSACTION_ACK: 0x43,
	TRANSACTION_REJECTED: 0x44,
	TRANSACTION_ENDED: 0x45,
	REFLECT: 0x80,
	REFLECT_ACK: 0x81,
	REFLECTED: 0x82,
	REFLECTED_ACK: 0x83,
} as const;

export type MdKeys = {
	dgpkSk: Uint8Array;
	dgrk: Uint8Array;
	dgdik: Uint8Array;
	dgtsk: Uint8Array;
	groupId: Uint8Array;
};

export function deriveKeys(dgk: Uint8Array): MdKeys {
	const dgpkSk = kdf(dgk, "p", PERSONAL);
	return {
		dgpkSk,
		dgrk: kdf(dgk, "r", PERSONAL),
		dgdik: kdf(dgk, "di", PERSONAL),
		dgtsk: kdf(dgk, "ts", PERSONAL),
		groupId: sodium.crypto_scalarmult_base(dgpkSk),
	};
}

export function wipeKeys(k: MdKeys): void {
	wipe(k.dgpkSk, k.dgrk, k.dgdik, k.dgtsk);
}

/** nonce || secretbox(plain) under key: every small D2D value. */
export function seal(key: Uint8Array, plain: Uint8Array): Uint8Array {
	const n = random(24);
	const c = sodium.crypto_secretbox_easy(plain, n, key);
	const out = new Uint8Array(24 + c.length);
	out.set(n);
	out.set(c, 24);
	return out;
}

export function open(key: Uint8Array, box: Uint8Array): Uint8Array {
	if (box.length < 40) throw new Error("box too short");
	return sodium.crypto_secretbox_open_easy(box.subarray(24), box.subarray(0, 24), key);
}

export function container(type: number, payload: Uint8Array): Uint8Array {
	if (payload.length > MAX_MESSAGE - 4) throw new Error("container too large");
	const out = new Uint8Array(4 + payload.length);
	out[0] = type;
	out.set(payload, 4);
	return out;
}

export function parseContainer(m: Uint8Array): { type: number; payload: Uint8Array } {
	if (m.length < 4) throw new Error("the mediator sent a malformed container");
	if (m.length > MAX_MESSAGE) throw new Error("the mediator sent too much");
	return { type: m[0], payload: m.subarray(4) };
}

/** The mediator URL for this device group: base + hex(ClientUrlInfo). */
export function mediatorUrl(base: string, k: MdKeys, serverGroup: string): string {
	const info = new pb.Writer().bytes(1, k.groupId).string(3, serverGroup).finish();
	return base + (base.endsWith("/") ? "" : "/") + hex(info);
}

export type DeviceParams = {
	deviceId: bigint;
	expectNew: boolean;
	label: string;
	appVersion: string;
	platformDetails: string;
};

export type ServerInfo = { currentTime: bigint; maxSlots: number; reflectionQueueLength: number };

const PLATFORM_WEB = 4;

function deviceInfo(k: MdKeys, p: DeviceParams): Uint8Array {
	const w = new pb.Writer();
	const pad = sodium.randombytes_uniform(PAD_MAX + 1);
	if (pad > 0) w.bytes(1, new Uint8Array(pad));
	w.uint(2, PLATFORM_WEB);
	if (p.platformDetails) w.string(3, p.platformDetails);
	if (p.appVersion) w.string(4, p.appVersion);
	if (p.label) w.string(5, p.label);
	return seal(k.dgdik, w.finish());
}

/** Opens the mediator WebSocket and runs the D2M handshake. */
export async function connect(
	base: string,
	k: MdKeys,
	serverGroup: string,
	p: DeviceParams,
	timeoutMs: number,
): Promise<{ ws: WsQueue; info: ServerInfo }> {
	const ws = await WsQueue.open(mediatorUrl(base, k, serverGroup), 16 * MAX_MESSAGE, timeoutMs);
	try {
		const sh = parseContainer(await ws.next(timeoutMs));
		if (sh.type !== T.SERVER_HELLO) throw new Error("the mediator's hello is malformed");
		const f = pb.decode(sh.payload);
		const esk = pb.bytes(f, 2);
		const challenge = pb.bytes(f, 3);
		if (esk === undefined || esk.length !== 32 || challenge === undefined || challenge.length !== 32)
			throw new Error("the mediator's hello is malformed");
		const key = sodium.crypto_box_beforenm(esk, k.dgpkSk);
		const nonce = random(24);
		const boxed = sodium.crypto_box_easy_afternm(challenge, nonce, key);
		wipe(key);
		const response = new Uint8Array(24 + boxed.length);
		response.set(nonce);
		response.set(boxed, 24);
		const ch = new pb.Writer()
			.bytes(2, response)
			.fixed64(3, p.deviceId)
			.uint(5, 1) // device_slot_expiration_policy PERSISTENT
			.bytes(6, deviceInfo(k, p))
			.uint3(7, p.expectNew ? 0 : 1) // expected_device_slot_state NEW / EXISTING
			.finish();
		ws.send(container(T.CLIENT_HELLO, ch));
		const si = parseContainer(await ws.next(timeoutMs));
		if (si.type !== T.SERVER_INFO) throw new Error("the mediator's server info is malformed");
		const g = pb.decode(si.payload);
		return {
			ws,
			info: {
				currentTime: pb.num(g, 4),
				maxSlots: Number(pb.num(g, 1)),
				reflectionQueueLength: Number(pb.num(g, 5)),
			},
		};
	} catch (e) {
		ws.close(4010);
		throw e;
	}
}
