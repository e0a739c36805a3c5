// The device join messages (proto/md-d2d-join.proto, proto/md-d2d-sync.proto):
// what the existing device sends (Begin, BlobData, EssentialData) and the
// one answer of the new device (Registered).
import * as pb from "./pb";

export const MAX_CONTACTS = 10000;
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
		},
	};
}

/** NdToEd { registered: Registered {} } */
export function registered(): Uint8Array {
	return new pb.Writer().bytes(1, new Uint8Array(0)).finish();
}
