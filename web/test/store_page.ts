// In a page of web/test/store.mjs: the encrypted store's records and a
// conversation's chunks (web/src/store.ts, history.ts), on IndexedDB in
// Chromium. Returns the checks as [name, ok, detail] for store.mjs to print.
import { ready } from "../src/crypto";
import { CHUNK, History, KEEP, upgradeStore } from "../src/history";
import type { ChatMessage } from "../src/session";
import { DamagedRecord, Store } from "../src/store";
import { legacyConversation, writeLegacy } from "./legacy";

const PASS = "an old profile";
const PEER = "OLDPEER1";

declare global {
	interface Window {
		veilStoreTest: () => Promise<[string, boolean, string][]>;
	}
}

function req<X>(r: IDBRequest<X>): Promise<X> {
	return new Promise((res, rej) => {
		r.onsuccess = () => res(r.result);
		r.onerror = () => rej(r.error ?? new Error("IndexedDB request failed"));
	});
}

/** Every row of the database: name to its value as hex (ciphertext) or JSON (meta). */
async function rows(): Promise<Map<string, string>> {
	const db = await req(indexedDB.open("veil", 1));
	const tx = db.transaction("kv", "readonly");
	const os = tx.objectStore("kv");
	const keys = (await req(os.getAllKeys())) as string[];
	const vals = await req(os.getAll());
	db.close();
	const m = new Map<string, string>();
	keys.forEach((k, i) => m.set(k, vals[i] instanceof Uint8Array ? Array.from(vals[i] as Uint8Array, (b) => b.toString(16).padStart(2, "0")).join("") : JSON.stringify(vals[i])));
	return m;
}

function changed(a: Map<string, string>, b: Map<string, string>): string[] {
	const out: string[] = [];
	for (const [k, v] of b) if (a.get(k) !== v) out.push(k);
	for (const k of a.keys()) if (!b.has(k)) out.push("-" + k);
	return out;
}

const msg = (i: number, dir: "in" | "out" = i % 2 ? "in" : "out"): ChatMessage => ({ peer: PEER, dir, id: String(100000 + i), date: 1700000000000 + i * 1000, text: "old message " + i, state: dir === "out" ? "sent" : undefined });

async function throwsDamaged(f: () => Promise<unknown>): Promise<boolean> {
	try {
		await f();
		return false;
	} catch (e) {
		return e instanceof DamagedRecord;
	}
}

window.veilStoreTest = async () => {
	await ready();
	const r: [string, boolean, string][] = [];
	const check = (name: string, ok: boolean, detail: unknown = ""): void => {
		r.push([name, ok, typeof detail === "string" ? detail : JSON.stringify(detail)]);
	};

	// A profile written by the client before chunks: 600 messages in one record.
	const old: ChatMessage[] = [];
	for (let i = 0; i < 600; i++) old.push(msg(i));
	const profile = { identity: "OLDIDENT", note: "a profile" };
	await writeLegacy(PASS, [["profile", profile], ["convs", { peers: [{ peer: PEER, unread: 2, last: old[599].date }] }], ...legacyConversation(PEER, old), ["nonce:00ff", 1]]);
	const before = await rows();

	let st = await Store.open();
	let wrong = false;
	try {
		await st.unlock("not the passphrase");
	} catch {
		wrong = true;
	}
	check("legacy_wrong_passphrase_refused", wrong);
	await st.unlock(PASS);
	check("legacy_store_recognised", st.legacy);
	await upgradeStore(st);
	check("legacy_upgraded", !st.legacy);
	const after = await rows();
	const h = new History(st, PEER);
	const all = await h.all();
	check("migrated_all_messages_in_order", all.length === 600 && all.every((m, i) => m.id === old[i].id && m.text === old[i].text && m.dir === old[i].dir), all.length);
	check("old_records_gone", (await st.rawGet("conv:" + PEER)) === undefined && (await st.rawGet("tail:" + PEER)) === undefined);
	const chunks = [...after.keys()].filter((k) => !before.has(k));
	// hist index + ceil(600 / CHUNK) chunks are new rows; profile, convs, meta rewritten
	check("migrated_into_chunks", chunks.length === 1 + Math.ceil(600 / CHUNK), chunks.length);
	check("profile_kept", JSON.stringify(await st.get("profile")) === JSON.stringify(profile));
	check("old_nonce_still_known", (await st.get("nonce:00ff", true)) === 1);
	check("old_nonce_refused_as_bound_record", await throwsDamaged(() => st.get("nonce:00ff")));
	check("ciphertext_only", ![...after.values()].some((v) => v.includes(Array.from(new TextEncoder().encode("old message"), (b) => b.toString(16).padStart(2, "0")).join(""))));

	// Opened again: no longer legacy, the same history.
	st.lock();
	st = await Store.open();
	await st.unlock(PASS);
	check("reopened_not_legacy", !st.legacy);
	check("reopened_same_history", (await new History(st, PEER).all()).length === 600);

	// One message added: only the last chunk and the index are written.
	let h2 = new History(st, PEER);
	await h2.size();
	let b0 = await rows();
	check("add_new", await h2.add(msg(600)));
	let b1 = await rows();
	check("add_touches_last_chunk_and_index", changed(b0, b1).length === 2, changed(b0, b1));
	check("add_twice_once", !(await h2.add(msg(600))) && (await h2.size()) === 601);
	// Read anew (nothing cached): the duplicate is found in the chunk its date falls in.
	check("add_twice_once_cold", !(await new History(st, PEER).add(msg(3))));
	// A receipt for the oldest message: its chunk and the index.
	b0 = await rows();
	h2 = new History(st, PEER);
	const n = await h2.change([old[0].id], (m) => {
		m.state = "read";
		return true;
	});
	b1 = await rows();
	check("change_touches_its_chunk_and_index", n === 1 && changed(b0, b1).length === 2, changed(b0, b1));
	check("change_kept", (await new History(st, PEER).all())[0].state === "read");

	// A record copied to another row does not open there.
	const ix = (await st.get<{ chunks: { k: number }[] }>("hist:" + PEER)) as { chunks: { k: number }[] };
	const k0 = ix.chunks[0].k;
	const k1 = ix.chunks[1].k;
	const c1 = await st.rawGet("chunk:" + PEER + ":" + k1);
	await st.rawSet("chunk:" + PEER + ":" + k1, await st.rawGet("chunk:" + PEER + ":" + k0));
	check("chunk_copied_to_another_row_refused", await throwsDamaged(() => new History(st, PEER).all()));
	await st.rawSet("chunk:" + PEER + ":" + k1, c1);
	check("chunk_back_in_place_opens", (await new History(st, PEER).all()).length === 601);
	await st.rawSet("profile", await st.rawGet("convs"));
	check("record_copied_to_another_row_refused", await throwsDamaged(() => st.get("profile")));
	// An older copy of a chunk put back in its own row (a replay) is refused.
	const oldC0 = await st.rawGet("chunk:" + PEER + ":" + k0);
	await new History(st, PEER).change([old[0].id], (m) => {
		m.state = "delivered";
		return true;
	});
	await st.rawSet("chunk:" + PEER + ":" + k0, oldC0);
	check("older_chunk_replayed_refused", await throwsDamaged(() => new History(st, PEER).all()));
	// A record of the old format put into a row of an upgraded store is refused.
	st.lock();
	await writeLegacy(PASS, [["profile", profile]]);
	const legacyProfile = (await rows()).size;
	st = await Store.open();
	await st.unlock(PASS);
	const legacyRow = await st.rawGet("profile");
	st.lock();
	st = await Store.open();
	await st.create(PASS);
	await st.put("profile", profile);
	await st.rawSet("profile", legacyRow);
	check("legacy_record_in_new_store_refused", legacyProfile === 2 && (await throwsDamaged(() => st.get("profile"))));

	// Messages out of date order split a chunk; the oldest chunks go past KEEP.
	const P2 = "SPLITPR1";
	const h3 = new History(st, P2);
	const base: ChatMessage[] = [];
	for (let i = 0; i < CHUNK; i++) base.push({ ...msg(i * 1000), peer: P2 });
	await h3.replace(base);
	for (let i = 0; i < CHUNK + 20; i++) await h3.add({ ...msg(500 + i), peer: P2 });
	const s3 = await new History(st, P2).all();
	const sorted = s3.every((m, i) => i === 0 || s3[i - 1].date <= m.date);
	const ix3 = (await st.get<{ chunks: { n: number }[] }>("hist:" + P2)) as { chunks: { n: number }[] };
	check("inserted_in_order_and_split", s3.length === 2 * CHUNK + 20 && sorted && ix3.chunks.length >= 2 && ix3.chunks.every((c) => c.n <= 2 * CHUNK), ix3.chunks.map((c) => c.n));
	const P3 = "KEEPPER1";
	const many: ChatMessage[] = [];
	for (let i = 0; i < KEEP + 2 * CHUNK; i++) many.push({ ...msg(i), peer: P3 });
	const h4 = new History(st, P3);
	await h4.replace(many.slice(0, KEEP));
	for (const m of many.slice(KEEP)) await h4.add(m);
	const s4 = await new History(st, P3).all();
	check("keeps_newest", s4.length >= KEEP && s4.length < KEEP + CHUNK && s4[s4.length - 1].id === many[many.length - 1].id && s4[0].id === many[many.length - s4.length].id, s4.length);
	st.lock();
	return r;
};
document.title = "store ready";
