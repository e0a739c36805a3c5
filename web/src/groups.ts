// Groups (lib/e2e/group.c and lib/client/group.c): the two containers of a
// group message (the creator's: group ID and body; a member's: creator,
// group ID and body), the member list of a group setup, and a group's key
// in the conversation list. A group ID is 8 bytes, read little-endian.
import { PbError } from "./pb";

export type Group = { creator: string; gid: bigint; name: string; members: string[]; left: boolean };

export const TYPE_GROUP_TEXT = 0x41;
/** A file message (files.ts) in a group member container. */
export const TYPE_GROUP_FILE = 0x46;
export const TYPE_GROUP_SETUP = 0x4a;
export const TYPE_GROUP_NAME = 0x4b;
export const TYPE_GROUP_LEAVE = 0x4c;
export const GROUP_MAX_MEMBERS = 256;
const NAME_MAX = 256;
const ID_RE = /^[0-9A-Z*][0-9A-Z]{7}$/;
const ascii = new TextDecoder("ascii");

function id(b: Uint8Array, off: number): string {
	const s = ascii.decode(b.subarray(off, off + 8));
	if (!ID_RE.test(s)) throw new PbError("not an ID");
	return s;
}

function u64le(b: Uint8Array, off: number): bigint {
	return new DataView(b.buffer, b.byteOffset + off, 8).getBigUint64(0, true);
}

export function gidHex(gid: bigint): string {
	const b = new Uint8Array(8);
	new DataView(b.buffer).setBigUint64(0, gid, true);
	return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function groupKey(creator: string, gid: bigint): string {
	return "g:" + creator + ":" + gidHex(gid);
}

export function isGroupKey(k: string): boolean {
	return k.startsWith("g:");
}

export function unwrapCreator(b: Uint8Array): { gid: bigint; inner: Uint8Array } {
	if (b.length < 8) throw new PbError("group message too short");
	return { gid: u64le(b, 0), inner: b.subarray(8) };
}

export function unwrapMember(b: Uint8Array): { creator: string; gid: bigint; inner: Uint8Array } {
	if (b.length < 16) throw new PbError("group message too short");
	return { creator: id(b, 0), gid: u64le(b, 8), inner: b.subarray(16) };
}

export function wrapMember(creator: string, gid: bigint, inner: Uint8Array): Uint8Array {
	const out = new Uint8Array(16 + inner.length);
	out.set(new TextEncoder().encode(creator));
	new DataView(out.buffer).setBigUint64(8, gid, true);
	out.set(inner, 16);
	return out;
}

/** The members a setup names, without duplicates and without its sender (the creator). */
export function parseSetup(inner: Uint8Array, creator: string): string[] {
	if (inner.length % 8 !== 0 || inner.length / 8 > GROUP_MAX_MEMBERS) throw new PbError("malformed group setup");
	const out: string[] = [];
	for (let i = 0; i < inner.length; i += 8) {
		const m = id(inner, i);
		if (m !== creator && !out.includes(m)) out.push(m);
	}
	return out;
}

export function parseName(inner: Uint8Array): string {
	if (inner.length > NAME_MAX) throw new PbError("group name too long");
	return new TextDecoder("utf-8", { fatal: true }).decode(inner);
}

export function has(g: Group, who: string): boolean {
	return g.creator === who || g.members.includes(who);
}
