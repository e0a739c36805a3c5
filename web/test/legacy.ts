// The encrypted store as the browser client wrote it before conversations
// were chunked (web/src/store.ts and chats.ts up to that change): meta with
// the check box "veil-store-v1", every record secretbox(JSON) of the value
// alone (naming no row) under a keyed-hash name, a conversation's whole
// history in "conv:PEER" and its newest 100 messages in "tail:PEER". The
// tests write a profile in that layout and open it with the current code.
import { sodium } from "../src/crypto";
import { History } from "../src/history";
import type { ChatMessage } from "../src/session";
import { Store } from "../src/store";

function req<X>(r: IDBRequest<X>): Promise<X> {
	return new Promise((res, rej) => {
		r.onsuccess = () => res(r.result);
		r.onerror = () => rej(r.error ?? new Error("IndexedDB request failed"));
	});
}

function enc(v: unknown): string {
	return JSON.stringify(v, (_k, x: unknown) =>
		x instanceof Uint8Array ? { $b: sodium.to_base64(x, sodium.base64_variants.ORIGINAL) } : typeof x === "bigint" ? { $n: x.toString() } : x,
	);
}

/** Replaces the whole store by records (logical name to value) in the old layout under pass. */
export async function writeLegacy(pass: string, records: [string, unknown][]): Promise<void> {
	const db = await req(
		(() => {
			const r = indexedDB.open("veil", 1);
			r.onupgradeneeded = () => r.result.createObjectStore("kv");
			return r;
		})(),
	);
	const salt = sodium.randombytes_buf(sodium.crypto_pwhash_SALTBYTES);
	const ops = sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE;
	const mem = sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE;
	const k = sodium.crypto_pwhash(64, pass, salt, ops, mem, sodium.crypto_pwhash_ALG_ARGON2ID13);
	const key = k.slice(0, 32);
	const nameKey = k.slice(32);
	const seal = (s: string): Uint8Array => {
		const n = sodium.randombytes_buf(24);
		const c = sodium.crypto_secretbox_easy(sodium.from_string(s), n, key);
		const out = new Uint8Array(24 + c.length);
		out.set(n);
		out.set(c, 24);
		return out;
	};
	const id = (name: string): string => "r" + sodium.to_hex(sodium.crypto_generichash(16, name, nameKey));
	const tx = db.transaction("kv", "readwrite");
	const os = tx.objectStore("kv");
	os.clear();
	os.put({ v: 1, salt: sodium.to_base64(salt), ops, mem, check: sodium.to_base64(seal("veil-store-v1")) }, "meta");
	for (const [name, v] of records) os.put(seal(enc(v)), id(name));
	await new Promise<void>((res, rej) => {
		tx.oncomplete = () => res();
		tx.onabort = tx.onerror = () => rej(tx.error ?? new Error("IndexedDB transaction failed"));
	});
	db.close();
}

/** The old layout's records of a conversation. */
export function legacyConversation(peer: string, list: ChatMessage[]): [string, unknown][] {
	return [
		["conv:" + peer, list],
		["tail:" + peer, list.slice(-100)],
	];
}

/**
 * Rewrites the current store (unlocked with pass) in the old layout: the
 * profile, the list of conversations and each conversation's history, and
 * the nonces named in nonces (hex). Returns how many messages it wrote.
 */
export async function toLegacy(pass: string, nonces: string[] = []): Promise<number> {
	const st = await Store.open();
	await st.unlock(pass);
	const recs: [string, unknown][] = [];
	const profile = await st.get("profile");
	const convs = await st.get<{ peers: { peer: string }[] }>("convs");
	recs.push(["profile", profile], ["convs", convs]);
	let n = 0;
	for (const e of convs?.peers ?? []) {
		const list = await new History(st, e.peer).all();
		n += list.length;
		if (list.length > 0) recs.push(...legacyConversation(e.peer, list));
	}
	for (const x of nonces) recs.push(["nonce:" + x, 1]);
	st.lock();
	await writeLegacy(pass, recs);
	return n;
}
