// A conversation's messages in the encrypted store, in chunks: records of at
// most a few hundred messages each ("chunk:PEER:K"), in date order, and a
// small index ("hist:PEER") listing them with their sizes, date ranges and
// write generations. Adding a message or changing one (a receipt) rewrites
// the chunk that holds it and the index, in one IndexedDB transaction,
// never the whole history. A chunk opens only as the generation the index
// names, so an older copy of a chunk put back in its place is refused.
// Chunks are read when needed: the newest for a first view, those whose
// dates could hold a message to tell whether it is there already.
import type { ChatMessage } from "./session";
import { DamagedRecord, type Store } from "./store";

/** Messages a new chunk takes before the next one starts. */
export const CHUNK = 250;
/** A chunk grown past this (messages inserted by date) is split in two. */
const SPLIT = 2 * CHUNK;
/** The newest messages kept per conversation (older chunks are dropped whole, so up to CHUNK more stay). */
export const KEEP = 10000;

type Ref = { k: number; n: number; lo: number; hi: number; g: number };
type Index = { v: 2; next: number; chunks: Ref[] };
type Chunk = { g: number; m: ChatMessage[] };

const indexName = (peer: string): string => "hist:" + peer;
const chunkName = (peer: string, k: number): string => "chunk:" + peer + ":" + k;
/** The layout before chunks: the whole history in one record, the newest 100 in another. */
export const legacyName = (peer: string): string => "conv:" + peer;
const legacyTail = (peer: string): string => "tail:" + peer;

const same = (a: ChatMessage, b: ChatMessage): boolean => a.id === b.id && a.dir === b.dir;

function validIndex(x: unknown): x is Index {
	if (x === null || typeof x !== "object") return false;
	const i = x as Index;
	return i.v === 2 && Number.isSafeInteger(i.next) && Array.isArray(i.chunks) && i.chunks.every((r) => Number.isSafeInteger(r.k) && r.k < i.next && Number.isSafeInteger(r.n) && r.n > 0 && Number.isSafeInteger(r.g));
}

/** The chunks of list (sorted by date): CHUNK messages each, the last one partly filled. */
function cut(list: ChatMessage[], ix: Index, loaded: Map<number, ChatMessage[]>): void {
	for (let i = 0; i < list.length; i += CHUNK) {
		const m = list.slice(i, i + CHUNK);
		const r: Ref = { k: ix.next++, n: m.length, lo: m[0].date, hi: m[m.length - 1].date, g: 0 };
		ix.chunks.push(r);
		loaded.set(r.k, m);
	}
}

export class History {
	private ix: Index | undefined;
	private loaded = new Map<number, ChatMessage[]>();
	private turn: Promise<unknown> = Promise.resolve();

	constructor(
		private store: Store,
		readonly peer: string,
	) {}

	/** One operation at a time: each sees what the one before wrote. */
	private serial<X>(fn: () => Promise<X>): Promise<X> {
		const r = this.turn.then(fn);
		this.turn = r.catch(() => undefined);
		return r;
	}

	private async index(): Promise<Index> {
		if (this.ix !== undefined) return this.ix;
		const x = await this.store.get<unknown>(indexName(this.peer));
		if (x === undefined) {
			this.ix = { v: 2, next: 0, chunks: [] };
			// A conversation kept in the layout before chunks (a legacy store not upgraded yet).
			const old = this.store.legacy ? await this.store.get<ChatMessage[]>(legacyName(this.peer)) : undefined;
			if (Array.isArray(old) && old.length > 0) {
				cut(old, this.ix, this.loaded);
				await this.write(new Set(this.ix.chunks), [], [legacyName(this.peer), legacyTail(this.peer)]);
			}
		} else if (validIndex(x)) {
			this.ix = x;
		} else {
			throw new DamagedRecord("the index of a conversation");
		}
		return this.ix;
	}

	private async chunk(r: Ref): Promise<ChatMessage[]> {
		let m = this.loaded.get(r.k);
		if (m !== undefined) return m;
		const c = await this.store.get<Chunk>(chunkName(this.peer, r.k));
		if (c === undefined || c.g !== r.g || !Array.isArray(c.m) || c.m.length !== r.n) throw new DamagedRecord("a chunk of a conversation, missing or not the one its index names");
		m = c.m;
		this.loaded.set(r.k, m);
		return m;
	}

	/** Writes the chunks changed (their generation raised), drops those gone and names extra, with the index: all at once. */
	private write(dirty: Set<Ref>, gone: Ref[], extra: string[] = []): Promise<void> {
		const ix = this.ix as Index;
		const e: [string, unknown][] = [];
		for (const r of dirty) {
			r.g++;
			e.push([chunkName(this.peer, r.k), { g: r.g, m: this.loaded.get(r.k) ?? [] } satisfies Chunk]);
		}
		for (const r of gone) e.push([chunkName(this.peer, r.k), undefined]);
		for (const n of extra) e.push([n, undefined]);
		e.push([indexName(this.peer), ix]);
		return this.store.putMany(e);
	}

	/** Whether every chunk is in memory (all() will not read the store). */
	get complete(): boolean {
		return this.ix !== undefined && this.ix.chunks.every((r) => this.loaded.has(r.k));
	}

	/** How many messages the conversation has. */
	async size(): Promise<number> {
		return this.serial(async () => (await this.index()).chunks.reduce((a, r) => a + r.n, 0));
	}

	/** Every message, oldest first (a new array; the messages are the history's own). */
	all(): Promise<ChatMessage[]> {
		return this.serial(async () => {
			const ix = await this.index();
			const parts = await Promise.all(ix.chunks.map((r) => this.chunk(r)));
			return ([] as ChatMessage[]).concat(...parts);
		});
	}

	/** At least the newest min messages (whole chunks from the end), oldest first. */
	newest(min: number): Promise<ChatMessage[]> {
		return this.serial(async () => {
			const ix = await this.index();
			const parts: ChatMessage[][] = [];
			let n = 0;
			for (let i = ix.chunks.length - 1; i >= 0 && n < min; i--) {
				const m = await this.chunk(ix.chunks[i]);
				parts.unshift(m);
				n += m.length;
			}
			return ([] as ChatMessage[]).concat(...parts);
		});
	}

	/** Adds msg by its date (once: false if a message of that ID and direction is there). */
	add(msg: ChatMessage): Promise<boolean> {
		return this.serial(async () => {
			const ix = await this.index();
			// A copy carries the same date: only the chunks whose dates reach it can hold one.
			for (const r of ix.chunks) if (r.lo <= msg.date && msg.date <= r.hi && (await this.chunk(r)).some((x) => same(x, msg))) return false;
			let i = ix.chunks.length - 1;
			while (i > 0 && ix.chunks[i].lo > msg.date) i--;
			const dirty = new Set<Ref>();
			if (i < 0 || (i === ix.chunks.length - 1 && ix.chunks[i].n >= CHUNK && msg.date >= ix.chunks[i].hi)) {
				const r: Ref = { k: ix.next++, n: 0, lo: msg.date, hi: msg.date, g: 0 };
				ix.chunks.push(r);
				this.loaded.set(r.k, []);
				i = ix.chunks.length - 1;
			}
			const r = ix.chunks[i];
			const l = await this.chunk(r);
			let j = l.length;
			while (j > 0 && l[j - 1].date > msg.date) j--;
			l.splice(j, 0, msg);
			dirty.add(r);
			if (l.length > SPLIT) {
				const rest = l.splice(CHUNK);
				const s: Ref = { k: ix.next++, n: rest.length, lo: rest[0].date, hi: rest[rest.length - 1].date, g: 0 };
				this.loaded.set(s.k, rest);
				ix.chunks.splice(i + 1, 0, s);
				dirty.add(s);
			}
			r.n = l.length;
			r.lo = l[0].date;
			r.hi = l[l.length - 1].date;
			const gone: Ref[] = [];
			let total = ix.chunks.reduce((a, x) => a + x.n, 0);
			while (ix.chunks.length > 1 && total - ix.chunks[0].n >= KEEP) {
				const d = ix.chunks.shift() as Ref;
				total -= d.n;
				this.loaded.delete(d.k);
				dirty.delete(d);
				gone.push(d);
			}
			await this.write(dirty, gone);
			return true;
		});
	}

	/**
	 * Applies f to the messages whose ID is in ids (newest chunks first,
	 * until every ID was seen); f tells whether it changed the message.
	 * Writes the chunks changed; returns how many messages changed.
	 */
	change(ids: Iterable<string>, f: (m: ChatMessage) => boolean): Promise<number> {
		const want = new Set(ids);
		return this.serial(async () => {
			const ix = await this.index();
			const seen = new Set<string>();
			const dirty = new Set<Ref>();
			let changed = 0;
			for (let i = ix.chunks.length - 1; i >= 0 && seen.size < want.size; i--) {
				const r = ix.chunks[i];
				for (const m of await this.chunk(r)) {
					if (!want.has(m.id)) continue;
					seen.add(m.id);
					if (f(m)) {
						changed++;
						dirty.add(r);
					}
				}
			}
			if (dirty.size > 0) await this.write(dirty, []);
			return changed;
		});
	}

	/** Puts list (sorted by date) as the whole history, replacing what was there (benchmarks seed with it). */
	replace(list: ChatMessage[]): Promise<void> {
		return this.serial(async () => {
			const old = await this.index();
			const gone = old.chunks;
			this.loaded = new Map();
			this.ix = { v: 2, next: old.next, chunks: [] };
			cut(list, this.ix, this.loaded);
			await this.write(new Set(this.ix.chunks), gone);
		});
	}
}

/**
 * Rewrites a store of the layout before chunks (Store.legacy): each
 * conversation listed in "convs" into chunks (dropping its old records), then
 * the records read by name ("convs", "profile") so that they name their row;
 * then marks the store upgraded. Safe to interrupt: what was done stays
 * done, the rest is done at the next unlock.
 */
export async function upgradeStore(store: Store): Promise<void> {
	if (!store.legacy) return;
	const convs = await store.get<{ peers: { peer: string }[] }>("convs");
	for (const e of convs?.peers ?? []) await new History(store, e.peer).size();
	if (convs !== undefined) await store.put("convs", convs);
	const p = await store.get<unknown>("profile");
	if (p !== undefined) await store.put("profile", p);
	await store.upgraded();
}
