// Unit tests of the web client's protocol code, run in node by
// tests/it/web_unit.sh (bundled with esbuild): known-answer vectors from
// tests/vectors and tests/unit/test_rdv.c, BLAKE2b against libsodium, the
// protobuf codec and the join link parser on hostile input.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { blake2b } from "../src/blake2b";
import { fingerprint, fingerprintMatches } from "../src/contacts";
import { hashSaltPersonal, kdf, ready, sodium } from "../src/crypto";
import * as d2m from "../src/d2m";
import * as grp from "../src/groups";
import { parseEdToNd } from "../src/join";
import * as pb from "../src/pb";
import { parseLink } from "../src/rendezvous";
import { encode as qrEncode, QR_MAX_BYTES } from "../src/qr";
import { execFileSync } from "node:child_process";

let fails = 0;
function check(name: string, ok: boolean): void {
	console.log((ok ? "PASS " : "FAIL ") + name);
	if (!ok) fails++;
}
function throws(fn: () => unknown): boolean {
	try {
		fn();
		return false;
	} catch {
		return true;
	}
}
const hex = (b: Uint8Array): string => sodium.to_hex(b);

await ready();
const vdir = process.argv[2];

// BLAKE2b: plain and keyed, across block boundaries, against libsodium.
{
	let ok = true;
	for (const n of [0, 1, 64, 127, 128, 129, 255, 256, 257, 1000]) {
		const m = sodium.randombytes_buf(n);
		const k = sodium.randombytes_buf(32);
		if (hex(blake2b(32, m)) !== hex(sodium.crypto_generichash(32, m, null))) ok = false;
		if (hex(blake2b(64, m, k)) !== hex(sodium.crypto_generichash(64, m, k))) ok = false;
	}
	check("blake2b_matches_libsodium", ok);
	const k = sodium.randombytes_buf(32);
	const s = new Uint8Array(16);
	const p = new Uint8Array(16);
	s.set([1, 2, 3]);
	p.set([9, 8]);
	check(
		"blake2b_salt_personal_matches_libsodium",
		hex(blake2b(32, new Uint8Array(0), k, s, p)) === hex(sodium.crypto_generichash_blake2b_salt_personal(32, k, s, p)),
	);
}

// The rendezvous key derivation (vectors of tests/unit/test_rdv.c).
{
	const ak = Uint8Array.from({ length: 32 }, (_, i) => i);
	const shared = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
	const P = "3ma-rendezvous";
	check("rdv_rida", hex(kdf(ak, "rida", P)) === "f8196bbd6288396abba7808af38a7bfb51de9f6ddaf177bca16fb101e73208be");
	check("rdv_rrda", hex(kdf(ak, "rrda", P)) === "ac2f579056bee8bab36f865b45f0943065badd7a7480714afa996138083666c6");
	const km = new Uint8Array(64);
	km.set(ak);
	km.set(shared, 32);
	const stk = kdf(km, "st", P);
	check("rdv_ridt", hex(kdf(stk, "ridt", P)) === "2276c53f2139104887efb679e438a44b9da4aff0795ea60887025c964fa35ee3");
	check("rdv_rrdt", hex(kdf(stk, "rrdt", P)) === "b8346bf7459e79bd2fd0f1bd24d5d368589df977daaa10d07e9e6dcb6d2f9f4b");
	check("rdv_rph", hex(hashSaltPersonal(stk, "ph", P)) === "a9e43507b404a4b10b8901e72d4a02fdbeb3c514fcb9a1e4ac5f09d2b8bbe1c0");
}

// The device group keys (tests/vectors/md-keys-*.txt, from the specification's clients).
if (vdir) {
	let seen = 0;
	let ok = true;
	for (const f of readdirSync(vdir).filter((x) => x.startsWith("md-keys-"))) {
		const v = Object.fromEntries(
			readFileSync(vdir + "/" + f, "utf8")
				.split("\n")
				.filter((l) => l.includes(" = "))
				.map((l) => l.split(" = ")),
		);
		const k = d2m.deriveKeys(sodium.from_hex(v.dgk_hex));
		if (hex(k.dgpkSk) !== v.dgpk_hex || hex(k.dgrk) !== v.dgrk_hex || hex(k.dgdik) !== v.dgdik_hex) ok = false;
		if (hex(k.groupId) !== hex(sodium.crypto_scalarmult_base(sodium.from_hex(v.dgpk_hex)))) ok = false;
		seen++;
	}
	check("md_keys_vectors", ok && seen >= 3);
}

// The protobuf codec: round trip, and bounded on hostile input.
{
	const w = new pb.Writer().uint(1, 300).fixed64(3, 0x0102030405060708n).bytes(2, Uint8Array.of(7, 8)).string(4, "é").finish();
	const f = pb.decode(w);
	check(
		"pb_round_trip",
		pb.num(f, 1) === 300n && pb.num(f, 3) === 0x0102030405060708n && hex(pb.bytes(f, 2) ?? new Uint8Array()) === "0708" && pb.str(f, 4) === "é",
	);
	check("pb_truncated_bytes", throws(() => pb.decode(Uint8Array.of(0x12, 0x05, 1))));
	check("pb_truncated_varint", throws(() => pb.decode(Uint8Array.of(0x08, 0x80))));
	check("pb_long_varint", throws(() => pb.decode(Uint8Array.of(0x08, ...new Array(11).fill(0xff), 0))));
	check("pb_field_zero", throws(() => pb.decode(Uint8Array.of(0x00, 0x00))));
	check("pb_group_wire_type", throws(() => pb.decode(Uint8Array.of(0x0b))));
	check("pb_bad_utf8", throws(() => pb.str(pb.decode(Uint8Array.of(0x0a, 0x01, 0xff)), 1)));
	let ok = true;
	for (let i = 0; i < 2000; i++) {
		try {
			const r = pb.decode(sodium.randombytes_buf(sodium.randombytes_uniform(64)));
			for (const x of r) if (x.b !== undefined && x.b.length > 64) ok = false;
		} catch (e) {
			if (!(e instanceof pb.PbError)) ok = false;
		}
	}
	check("pb_random_input_bounded", ok);
}

// Join links and join messages.
{
	const ri = new pb.Writer()
		.bytes(2, new Uint8Array(32).fill(5))
		.bytes(3, new pb.Writer().uint(1, 7).string(3, "ws://127.0.0.1:1/rendezvous/" + "ab".repeat(32)).finish())
		.finish();
	const offer = new pb.Writer().bytes(2, new pb.Writer().bytes(2, new Uint8Array(0)).finish()).bytes(3, ri).uint(4, 3).finish();
	const link = "threema://device-group/join#" + sodium.to_base64(offer, sodium.base64_variants.URLSAFE_NO_PADDING);
	const i = parseLink(link);
	check("link_parse", i.pathId === 7 && i.url.endsWith("ab".repeat(32)) && i.ak[0] === 5);
	const request = new pb.Writer().bytes(2, new pb.Writer().bytes(1, new Uint8Array(0)).finish()).bytes(3, ri).finish();
	check("link_request_refused", throws(() => parseLink("threema://device-group/join#" + sodium.to_base64(request, sodium.base64_variants.URLSAFE_NO_PADDING))));
	check("link_wrong_prefix", throws(() => parseLink("https://example.org/#" + link.slice(28))));
	check("link_garbage", throws(() => parseLink("threema://device-group/join#AAAA")));
	check("link_too_long", throws(() => parseLink(link + "A".repeat(2000))));
	const badUrl = new pb.Writer()
		.bytes(2, new pb.Writer().bytes(2, new Uint8Array(0)).finish())
		.bytes(3, new pb.Writer().bytes(2, new Uint8Array(32)).bytes(3, new pb.Writer().string(3, "http://x/").finish()).finish())
		.finish();
	check("link_not_ws_refused", throws(() => parseLink("threema://device-group/join#" + sodium.to_base64(badUrl, sodium.base64_variants.URLSAFE_NO_PADDING))));
	check("join_begin", parseEdToNd(Uint8Array.of(0x0a, 0x00)).kind === "begin");
	check("join_empty_essential_refused", throws(() => parseEdToNd(Uint8Array.of(0x1a, 0x00))));
	let ok = true;
	for (let n = 0; n < 2000; n++) {
		try {
			parseEdToNd(Uint8Array.of(0x1a, ...sodium.randombytes_buf(sodium.randombytes_uniform(48))));
		} catch (e) {
			if (!(e instanceof pb.PbError)) ok = false;
		}
	}
	check("join_random_input_bounded", ok);
	// EssentialData with groups (md-d2d-join.proto: AugmentedGroup of d2d_sync.Group).
	const W = (): pb.Writer => new pb.Writer();
	const grpMsg = (creator: string, gid: bigint, name: string, state: number, members: string[]): Uint8Array => {
		const ids = W();
		for (const m of members) ids.string(1, m);
		const gr = W().bytes(1, W().fixed64(1, gid).string(2, creator).finish()).string(2, name).uint(3, 1n);
		if (state !== 0) gr.uint(6, state);
		return W().bytes(1, gr.bytes(8, ids.finish()).finish()).finish();
	};
	const essential = (groups: Uint8Array[]): Uint8Array => {
		const e = W()
			.bytes(2, W().string(1, "ABCDEFGH").bytes(2, new Uint8Array(32)).bytes(3, new Uint8Array(16)).string(4, "a").finish())
			.bytes(3, W().bytes(1, new Uint8Array(32)).finish());
		for (const g of groups) e.bytes(8, g);
		return W().bytes(3, e.finish()).finish();
	};
	const ed = parseEdToNd(
		essential([
			grpMsg("ZZZZZZZZ", 0xfedcba9876543210n, "Hikers", 0, ["ZZZZZZZZ", "ABCDEFGH", "BBBBBBBB", "BBBBBBBB"]),
			grpMsg("ABCDEFGH", 7n, "Old", 2, ["CCCCCCCC"]),
			grpMsg("ABCDEFGH", 7n, "Again", 0, ["CCCCCCCC"]),
		]),
	);
	const gs = ed.kind === "essential" ? ed.essential.groups : [];
	check(
		"join_groups_imported",
		gs.length === 2 &&
			gs[0].creator === "ZZZZZZZZ" &&
			gs[0].gid === 0xfedcba9876543210n &&
			gs[0].name === "Hikers" &&
			gs[0].members.join() === "ABCDEFGH,BBBBBBBB" &&
			!gs[0].left &&
			gs[1].left &&
			gs[1].name === "Old",
	);
	check("join_no_groups", (() => {
		const x = parseEdToNd(essential([]));
		return x.kind === "essential" && x.essential.groups.length === 0;
	})());
	check("join_group_bad_member_refused", throws(() => parseEdToNd(essential([grpMsg("ZZZZZZZZ", 1n, "x", 0, ["bad"])]))));
	check("join_group_too_many_members_refused", throws(() => parseEdToNd(essential([grpMsg("ZZZZZZZZ", 1n, "x", 0, Array.from({ length: 257 }, (_, i) => "M" + String(i).padStart(7, "0")))]))));
	check("join_group_without_identity_refused", throws(() => parseEdToNd(essential([W().bytes(1, W().string(2, "x").finish()).finish()]))));
	ok = true;
	for (let n = 0; n < 2000; n++) {
		try {
			parseEdToNd(essential([sodium.randombytes_buf(sodium.randombytes_uniform(64))]));
		} catch (e) {
			if (!(e instanceof pb.PbError)) ok = false;
		}
	}
	check("join_group_random_input_bounded", ok);
}

// Contact fingerprints: SHA-256 of the key, 16 bytes in groups of four hex digits (veil contact show).
{
	const pk = sodium.randombytes_buf(32);
	const want = createHash("sha256").update(pk).digest("hex").slice(0, 32);
	const fp = fingerprint(pk);
	check("fingerprint_format", /^([0-9a-f]{4} ){7}[0-9a-f]{4}$/.test(fp) && fp.replace(/ /g, "") === want);
	check("fingerprint_matches_spacing_case", fingerprintMatches(pk, want.toUpperCase()) && fingerprintMatches(pk, " " + fp + " "));
	const other = want.slice(0, 31) + (want[31] === "0" ? "1" : "0");
	check("fingerprint_other_refused", !fingerprintMatches(pk, other) && !fingerprintMatches(pk, want.slice(0, 30)) && !fingerprintMatches(pk, "") && !fingerprintMatches(pk, want + "00"));
}

// Group containers and setups on good and hostile input.
{
	const body = grp.wrapMember("ABCDEFGH", 0x0123456789abcdefn, Uint8Array.of(0x68, 0x69));
	const u = grp.unwrapMember(body);
	check("group_member_roundtrip", u.creator === "ABCDEFGH" && u.gid === 0x0123456789abcdefn && hex(u.inner) === "6869");
	check("group_gid_hex_le", grp.gidHex(0x0123456789abcdefn) === "efcdab8967452301");
	check("group_member_short_refused", throws(() => grp.unwrapMember(new Uint8Array(15))));
	check("group_member_bad_creator_refused", throws(() => grp.unwrapMember(new Uint8Array(16))));
	const te = new TextEncoder();
	check("group_setup_dedup_without_creator", grp.parseSetup(te.encode("AAAAAAAABBBBBBBBAAAAAAAACCCCCCCC"), "CCCCCCCC").join() === "AAAAAAAA,BBBBBBBB");
	check("group_setup_partial_refused", throws(() => grp.parseSetup(te.encode("AAAAAAAAB"), "C")));
	check("group_setup_too_many_refused", throws(() => grp.parseSetup(te.encode("AAAAAAAA".repeat(257)), "C")));
	check("group_setup_bad_id_refused", throws(() => grp.parseSetup(te.encode("aaaaaaaa"), "C")));
	check("group_name_long_refused", throws(() => grp.parseName(new Uint8Array(257))) && grp.parseName(te.encode("Hikers")) === "Hikers");
}

// The QR encoder against libqrencode (tests/tools/qr_modules, as `veil` draws), module by module:
// texts of every version 1-40 at level M, a join link, a 3mid text, UTF-8, random bytes as hex.
{
	const tool = process.argv[3];
	const texts: string[] = ["a", "hello", "3mid:ABCDEFGH," + "0123456789abcdef".repeat(4), "Grüße, 世界 ✓"];
	texts.push("threema://device-group/join#" + sodium.to_base64(sodium.randombytes_buf(150), sodium.base64_variants.URLSAFE_NO_PADDING));
	const caps = [14, 26, 42, 62, 84, 106, 122, 152, 180, 213, 251, 287, 331, 362, 412, 450, 504, 560, 624, 666, 711, 779, 857, 911, 997, 1059, 1125, 1190, 1264, 1370, 1452, 1538, 1628, 1722, 1809, 1911, 1989, 2099, 2213, 2331];
	const rnd = (n: number): string => hex(sodium.randombytes_buf(Math.ceil(n / 2))).slice(0, n);
	for (const c of caps) texts.push(rnd(c), rnd(c + 1 <= QR_MAX_BYTES ? c + 1 : c));
	for (let k = 0; k < 40; k++) texts.push(rnd(1 + sodium.randombytes_uniform(300)));
	let ok = tool !== undefined;
	let versions = new Set<number>();
	let detail = "";
	if (ok) {
		const lines = execFileSync(tool, { input: texts.join("\n") + "\n", encoding: "utf8", maxBuffer: 64 << 20 }).trim().split("\n");
		ok = lines.length === texts.length;
		texts.forEach((t, i) => {
			const [v, w, bits] = (lines[i] ?? "").split(" ");
			const q = qrEncode(t);
			let mine = "";
			for (let y = 0; y < q.size; y++) for (let x = 0; x < q.size; x++) mine += q.dark(x, y) ? "1" : "0";
			versions.add(q.version);
			if (String(q.version) !== v || String(q.size) !== w || mine !== bits) {
				if (ok) detail = `text ${i} (${new TextEncoder().encode(t).length} bytes): C v${v}, mine v${q.version} mask ${q.mask}`;
				ok = false;
			}
		});
	}
	check("qr_matches_libqrencode", ok && versions.size === 40);
	if (!ok) console.log("  " + (tool === undefined ? "no qr_modules tool given" : detail));
	check("qr_too_long_refused", throws(() => qrEncode("x".repeat(QR_MAX_BYTES + 1))));
}

process.exitCode = fails === 0 ? 0 : 1;
