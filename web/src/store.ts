// The browser's local store: IndexedDB holding only ciphertext. A key is
// derived from the user's passphrase with Argon2id (crypto_pwhash); every
// record is secretbox(JSON) under it, and a record's name in the database
// is a keyed hash of its logical name, so that neither contents nor the
// names of conversations show. Each record's plaintext starts with the name
// of its row, checked when it is read: a record copied to another row does
// not open there. One clear record, "meta", holds the salt, the Argon2id
// parameters and a check box that tells a wrong passphrase (and, by its
// text, whether the store was written before records named their row).
// Locking forgets the key.
import { sodium, wipe } from "./crypto";

const DB = "veil";
const OS = "kv";
const META = "meta";
/** The check box of a store whose records name their row; CHECK_V1 of one written before (opened once, then upgraded). */
const CHECK = "veil-store-v2";
const CHECK_V1 = "veil-store-v1";
/** A record's plaintext: BOUND, its row's name, NUL, the JSON. A record of v1 is the JSON alone (never starting with BOUND). */
const BOUND = "\u0002";

type Meta = { v: 1; salt: string; ops: number; mem: number; check: string };

function req<X>(r: IDBRequest<X>): Promise<X> {
	return new Promise((res, rej) => {
		r.onsuccess = () => res(r.result);
		r.onerror = () => rej(r.error ?? new Error("IndexedDB request failed"));
	});
}

function openDb(): Promise<IDBDatabase> {
	const r = indexedDB.open(DB, 1);
	r.onupgradeneeded = () => r.result.createObjectStore(OS);
	return req(r);
}

// JSON with Uint8Array and bigint kept.
function enc(v: unknown): string {
	return JSON.stringify(v, (_k, x: unknown) =>
		x instanceof Uint8Array
			? { $b: sodium.to_base64(x, sodium.base64_variants.ORIGINAL) }
			: typeof x === "bigint"
				? { $n: x.toString() }
				: x,
	);
}

function dec(s: string): unknown {
	return JSON.parse(s, (_k, x: unknown) => {
		if (x !== null && typeof x === "object") {
			const o = x as Record<string, unknown>;
			if (typeof o.$b === "string") return sodium.from_base64(o.$b, sodium.base64_variants.ORIGINAL);
			if (typeof o.$n === "string") return BigInt(o.$n);
		}
		return x;
	});
}

export class WrongPassphrase extends Error {
	constructor() {
		super("wrong passphrase");
	}
}

export class DamagedRecord extends Error {
	constructor(what: string) {
		super("the store holds a damaged record (" + what + ")");
	}
}

export class Store {
	private key: Uint8Array | undefined;
	private nameKey: Uint8Array | undefined;
	/**
	 * Unlocked a store written before records named their row: its records
	 * open without that check until upgraded() (the caller rewrites them).
	 */
	legacy = false;

	private constructor(private db: IDBDatabase) {}

	static async open(): Promise<Store> {
		return new Store(await openDb());
	}

	private async raw(name: string): Promise<unknown> {
		const tx = this.db.transaction(OS, "readonly");
		return req(tx.objectStore(OS).get(name));
	}

	private async rawPut(name: string, v: unknown): Promise<void> {
		const tx = this.db.transaction(OS, "readwrite");
		await req(tx.objectStore(OS).put(v, name));
	}

	/** Whether a profile was made in this browser (the store has its meta record). */
	async exists(): Promise<boolean> {
		return (await this.raw(META)) !== undefined;
	}

	get unlocked(): boolean {
		return this.key !== undefined;
	}

	private derive(pass: string, salt: Uint8Array, ops: number, mem: number): void {
		const k = sodium.crypto_pwhash(64, pass, salt, ops, mem, sodium.crypto_pwhash_ALG_ARGON2ID13);
		this.key = k.slice(0, 32);
		this.nameKey = k.slice(32);
		wipe(k);
	}

	/** Starts an empty store under pass (everything there before is gone). */
	async create(pass: string): Promise<void> {
		if (pass.length === 0) throw new Error("a passphrase is needed");
		const tx = this.db.transaction(OS, "readwrite");
		await req(tx.objectStore(OS).clear());
		const salt = sodium.randombytes_buf(sodium.crypto_pwhash_SALTBYTES);
		const ops = sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE;
		const mem = sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE;
		this.derive(pass, salt, ops, mem);
		const meta: Meta = {
			v: 1,
			salt: sodium.to_base64(salt),
			ops,
			mem,
			check: sodium.to_base64(this.seal(CHECK)),
		};
		await this.rawPut(META, meta);
	}

	/** Derives the key from pass; throws WrongPassphrase if it does not open the store. */
	async unlock(pass: string): Promise<void> {
		const m = (await this.raw(META)) as Meta | undefined;
		if (m === undefined || m.v !== 1) throw new Error("no profile in this browser");
		this.derive(pass, sodium.from_base64(m.salt), m.ops, m.mem);
		let c: string;
		try {
			c = this.open(sodium.from_base64(m.check));
		} catch {
			c = "";
		}
		if (c !== CHECK && c !== CHECK_V1) {
			this.lock();
			throw new WrongPassphrase();
		}
		this.legacy = c === CHECK_V1;
	}

	/** The caller rewrote what it reads of a legacy store: from now on every record must name its row. */
	async upgraded(): Promise<void> {
		const m = (await this.raw(META)) as Meta;
		m.check = sodium.to_base64(this.seal(CHECK));
		await this.rawPut(META, m);
		this.legacy = false;
	}

	lock(): void {
		wipe(this.key, this.nameKey);
		this.key = this.nameKey = undefined;
		this.legacy = false;
	}

	private need(): Uint8Array {
		if (this.key === undefined) throw new Error("the store is locked");
		return this.key;
	}

	private seal(s: string): Uint8Array {
		const n = sodium.randombytes_buf(24);
		const c = sodium.crypto_secretbox_easy(sodium.from_string(s), n, this.need());
		const out = new Uint8Array(24 + c.length);
		out.set(n);
		out.set(c, 24);
		return out;
	}

	private open(b: Uint8Array): string {
		const p = sodium.crypto_secretbox_open_easy(b.subarray(24), b.subarray(0, 24), this.need());
		const s = sodium.to_string(p);
		wipe(p);
		return s;
	}

	private id(name: string): string {
		if (this.nameKey === undefined) throw new Error("the store is locked");
		return "r" + sodium.to_hex(sodium.crypto_generichash(16, name, this.nameKey));
	}

	private sealAs(row: string, v: unknown): Uint8Array {
		return this.seal(BOUND + row + "\0" + enc(v));
	}

	/** A record read from row: it must name row (or, where legacy allows, be a record of v1). */
	private openAs(row: string, b: unknown, legacy: boolean): unknown {
		if (!(b instanceof Uint8Array) || b.length < 24 + sodium.crypto_secretbox_MACBYTES) throw new DamagedRecord("not a sealed record");
		let s: string;
		try {
			s = this.open(b);
		} catch {
			throw new DamagedRecord("does not open");
		}
		if (!s.startsWith(BOUND)) {
			if (!legacy) throw new DamagedRecord("names no row");
			return dec(s);
		}
		const nul = s.indexOf("\0");
		if (nul < 0 || s.slice(1, nul) !== row) throw new DamagedRecord("belongs to another row");
		return dec(s.slice(nul + 1));
	}

	async put(name: string, v: unknown): Promise<void> {
		const row = this.id(name);
		await this.rawPut(row, this.sealAs(row, v));
	}

	/**
	 * Writes and deletes (value undefined) records in one transaction: all of
	 * them are stored, or none. The records are sealed before this returns,
	 * so that calls made one after the other write in that order.
	 */
	putMany(entries: [string, unknown][]): Promise<void> {
		const sealed = entries.map(([name, v]): [string, Uint8Array | undefined] => {
			const row = this.id(name);
			return [row, v === undefined ? undefined : this.sealAs(row, v)];
		});
		const tx = this.db.transaction(OS, "readwrite");
		const os = tx.objectStore(OS);
		for (const [row, b] of sealed) {
			if (b === undefined) os.delete(row);
			else os.put(b, row);
		}
		return new Promise((res, rej) => {
			tx.oncomplete = () => res();
			tx.onabort = tx.onerror = () => rej(tx.error ?? new Error("IndexedDB transaction failed"));
		});
	}

	/**
	 * A record's value. legacy: a record of a store written before records
	 * named their row opens too (only while the store is legacy, or for the
	 * records a caller upgrades on sight: nonces, a conversation's old record).
	 */
	async get<X>(name: string, legacy = false): Promise<X | undefined> {
		const row = this.id(name);
		const b = await this.raw(row);
		if (b === undefined) return undefined;
		return this.openAs(row, b, legacy || this.legacy) as X;
	}

	/** For tests: the raw (sealed) value of name's row, and a raw value put there. */
	async rawGet(name: string): Promise<unknown> {
		return this.raw(this.id(name));
	}

	async rawSet(name: string, v: unknown): Promise<void> {
		await this.rawPut(this.id(name), v);
	}

	/** Every record's value, ciphertext, for tests that look for plaintext. */
	async dump(): Promise<unknown[]> {
		const tx = this.db.transaction(OS, "readonly");
		return req(tx.objectStore(OS).getAll());
	}
}
