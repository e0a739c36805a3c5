// The device join messages (proto/md-d2d-join.proto, proto/md-d2d-sync.proto):
// what the existing device sends (Begin, BlobData, EssentialData) and the
// one answer of the new device (Registered).
import type { Group } from "./groups";
import * as pb from "./pb";

export const MAX_CONTACTS = 10000;
/** As include/veil/join.h: VEIL_JOIN_MAX_GROUPS, VEIL_JOIN_MAX_MEMBERS. */
export const MAX_GROUPS = 4096;
export const MAX_MEMBERS = 256;
const NAME_MAX = 256;

export type JoinContact = {
	identity: string;
	publicKey: Uint8Array;
	nickname: string;
	firstName: string;
	verificationLevel: number;
};

export type Essential = {
	identity: string;
	ck: Uint8Array;
	deviceCookie: Uint8Array;
	serverGroup: string;
	dgk: Uint8Array;
	nickname: string;
	contacts: JoinContact[];
	groups: Group[];
};

export type EdToNd = { kind: "begin" } | { kind: "blob" } | { kind: "essential"; essential: Essential };

const ID_RE = /^[0-9A-Z*][0-9A-Z]{7}$/;

function name(fs: pb.Field[], no: number): string {
	const s = pb.str(fs, no) ?? "";
	if (s.length > NAME_MAX) throw new pb.PbError("name too long");
	return s;
}

function contact(b: Uint8Array): JoinContact {
	const ac = pb.decode(b);
	const cb = pb.bytes(ac, 1);
	if (cb === undefined) throw new pb.PbError("contact without data");
	const c = pb.decode(cb);
	const identity = pb.str(c, 1) ?? "";
	const pk = pb.bytes(c, 2);
	if (!ID_RE.test(identity) || pk === undefined || pk.length !== 32) throw new pb.PbError("bad contact");
	return {
		identity,
		publicKey: pk.slice(),
		firstName: name(c, 4),
		nickname: name(c, 6),
		verificationLevel: Number(pb.num(c, 7) & 3n),
	};
}

/** EssentialData.AugmentedGroup: a d2d_sync.Group (identity, name, user state, members). */
function group(b: Uint8Array): Group {
	const gb = pb.bytes(pb.decode(b), 1);
	if (gb === undefined) throw new pb.PbError("group without data");
	const gf = pb.decode(gb);
	const gib = pb.bytes(gf, 1);
	if (gib === undefined) throw new pb.PbError("group without identity");
	const gi = pb.decode(gib);
	const gidf = pb.get(gi, 1);
	const creator = pb.str(gi, 2) ?? "";
	if (gidf === undefined || gidf.wt !== 1 || !ID_RE.test(creator)) throw new pb.PbError("bad group identity");
	const mb = pb.bytes(gf, 8);
	const ms = mb !== undefined ? pb.all(pb.decode(mb, MAX_MEMBERS + 1), 1) : [];
	if (ms.length > MAX_MEMBERS) throw new pb.PbError("too many members");
	const members: string[] = [];
	for (const m of ms) {
		const id = new TextDecoder().decode(m);
		if (!ID_RE.test(id)) throw new pb.PbError("bad member");
		if (id !== creator && !members.includes(id)) members.push(id);
	}
	return { creator, gid: gidf.v, name: name(gf, 2), members, left: pb.num(gf, 6) !== 0n };
}

export function parseEdToNd(b: Uint8Array): EdToNd {
	const m = pb.decode(b);
	if (pb.get(m, 1) !== undefined) return { kind: "begin" };
	if (pb.get(m, 2) !== undefined) return { kind: "blob" };
	const ed = pb.bytes(m, 3);
	if (ed === undefined) throw new pb.PbError("unknown join message");
	const e = pb.decode(ed);
	const idb = pb.bytes(e, 2);
	const dgb = pb.bytes(e, 3);
	if (idb === undefined || dgb === undefined) throw new pb.PbError("essential data incomplete");
	const id = pb.decode(idb);
	const dg = pb.decode(dgb);
	const identity = pb.str(id, 1) ?? "";
	const ck = pb.bytes(id, 2);
	const cookie = pb.bytes(id, 3);
	const sg = pb.str(id, 4) ?? "";
	const dgk = pb.bytes(dg, 1);
	if (
		!ID_RE.test(identity) ||
		ck === undefined ||
		ck.length !== 32 ||
		cookie === undefined ||
		cookie.length !== 16 ||
		!/^[0-9a-zA-Z]{1,32}$/.test(sg) ||
		dgk === undefined ||
		dgk.length !== 32
	)
		throw new pb.PbError("essential data malformed");
	const up = pb.bytes(e, 4);
	const cs = pb.all(e, 7);
	if (cs.length > MAX_CONTACTS) throw new pb.PbError("too many contacts");
	const gs = pb.all(e, 8);
	if (gs.length > MAX_GROUPS) throw new pb.PbError("too many groups");
	const groups: Group[] = [];
	for (const x of gs.map(group)) if (!groups.some((y) => y.creator === x.creator && y.gid === x.gid)) groups.push(x);
	return {
		kind: "essential",
		essential: {
			identity,
			ck: ck.slice(),
			deviceCookie: cookie.slice(),
			serverGroup: sg,
			dgk: dgk.slice(),
			nickname: up !== undefined ? name(pb.decode(up), 1) : "",
			contacts: cs.map(contact),
			groups,
		},
	};
}

/** NdToEd { registered: Registered {} } */
export function registered(): Uint8Array {
	return new pb.Writer().bytes(1, new Uint8Array(0)).finish();
}
