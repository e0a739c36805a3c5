// Conversations: the messages of each peer and its unread count, kept in
// the encrypted store (one record per conversation and an index), shown as
// a list and the open chat. Messages are keyed by ID: what arrives twice
// (a resend, a reflection of what this device already has) shows once.
import { type Group, gidHex, groupKey, isGroupKey } from "./groups";
import type { Contact } from "./link";
import { beginRender, renderFile } from "./fileview";
import type { ChatMessage, OutState } from "./session";
import type { Store } from "./store";
import { VList } from "./vlist";

const KEEP = 10000;
const STATE_RANK: Record<OutState, number> = { sent: 1, delivered: 2, read: 3 };
const STATE_ICON: Record<OutState, string> = { sent: "✓", delivered: "✓✓", read: "✓✓" };
/** The newest messages of a conversation, also kept in a small record of their own ("tail:PEER") so that opening shows them before the whole history is read. */
const TAIL = 100;
const SEARCH_MAX = 100;

const norm = (s: string): string => s.normalize("NFKC").toLocaleLowerCase();

type Index = { peers: { peer: string; unread: number; last: number }[] };

const $ = (id: string): HTMLElement => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e;
};

export class Chats {
	private index: Index = { peers: [] };
	private cache = new Map<string, ChatMessage[]>();
	open: string | undefined;
	private contacts: Contact[] = [];
	private groups: Group[] = [];
	/**
	 * Told which incoming messages the user now sees (an open conversation in
	 * a shown tab); resolves once the peer (or the other devices) are told.
	 */
	private pendingRead = new Set<string>();
	onRead: (peer: string, ids: string[]) => Promise<void> = async () => undefined;
	private list: VList<ChatMessage> | undefined;
	/** The message a search result revealed ("dir:id"), marked while its conversation stays open. */
	private hit = "";

	constructor(private store: Store) {}

	private vlist(): VList<ChatMessage> {
		this.list ??= new VList($("msgs"), (m) => this.row(m));
		return this.list;
	}

	async load(contacts: Contact[], groups: Group[]): Promise<void> {
		this.contacts = contacts;
		this.groups = groups;
		this.index = (await this.store.get<Index>("convs")) ?? { peers: [] };
		this.cache = new Map();
		this.loading = new Map();
		this.open = undefined;
		this.render();
	}

	name(peer: string): string {
		if (isGroupKey(peer)) {
			const g = this.groups.find((x) => groupKey(x.creator, x.gid) === peer);
			if (g === undefined) return "a group";
			return (g.name || "group " + gidHex(g.gid)) + " (group" + (g.left ? ", left" : "") + ")";
		}
		const c = this.contacts.find((x) => x.identity === peer);
		const n = c?.firstName || c?.nickname;
		return n ? n + " (" + peer + ")" : peer;
	}

	/** Reads in progress: every caller of one conversation gets the same array (two reads would each take a copy, and the later write would drop what the other added). */
	private loading = new Map<string, Promise<ChatMessage[]>>();

	private async messages(peer: string): Promise<ChatMessage[]> {
		const m = this.cache.get(peer);
		if (m !== undefined) return m;
		let l = this.loading.get(peer);
		if (l === undefined) {
			const cache = this.cache;
			l = this.store.get<ChatMessage[]>("conv:" + peer).then((x) => {
				const list = x ?? [];
				// Kept unless the view was cleared (locked, or loaded anew) meanwhile.
				if (this.cache === cache) cache.set(peer, list);
				return list;
			});
			this.loading.set(peer, l);
			const loading = this.loading;
			const done = (): void => {
				if (loading.get(peer) === l) loading.delete(peer);
			};
			l.then(done, done);
		}
		return l;
	}

	/** Adds a message (once); false if it was there already. */
	async add(msg: ChatMessage): Promise<boolean> {
		const list = await this.messages(msg.peer);
		if (list.some((x) => x.id === msg.id && x.dir === msg.dir)) return false;
		list.push(msg);
		list.sort((a, b) => a.date - b.date);
		if (list.length > KEEP) list.splice(0, list.length - KEEP);
		await this.store.put("conv:" + msg.peer, list);
		await this.store.put("tail:" + msg.peer, list.slice(-TAIL));
		let e = this.index.peers.find((x) => x.peer === msg.peer);
		if (e === undefined) {
			e = { peer: msg.peer, unread: 0, last: 0 };
			this.index.peers.push(e);
		}
		e.last = Math.max(e.last, msg.date);
		if (msg.dir === "in" && (this.open !== msg.peer || document.hidden)) e.unread++;
		await this.store.put("convs", this.index);
		this.render();
		if (this.open === msg.peer) {
			await this.renderChat();
			// The list is re-rendered as it scrolls, so it is not a live region: new messages are told here.
			if (msg.dir === "in") $("msg-live").textContent = (msg.from !== undefined ? this.name(msg.from) : this.name(msg.peer)) + ": " + (msg.file !== undefined ? msg.file.name : msg.text);
		}
		if (msg.dir === "in" && this.open === msg.peer && !document.hidden) void this.readOpen(msg.peer);
		return true;
	}

	/**
	 * Applies delivery receipts: the peer's about what this identity sent
	 * (received, read: the state only rises), or this identity's (another
	 * device's) read receipt about what it received.
	 */
	async receipt(peer: string, status: number, ids: string[], byMe: boolean): Promise<void> {
		const list = await this.messages(peer);
		const want = new Set(ids);
		let changed = 0;
		if (byMe) {
			if (status !== 2) return;
			for (const m of list)
				if (m.dir === "in" && want.has(m.id) && !m.read) {
					m.read = true;
					changed++;
				}
			const e = this.index.peers.find((x) => x.peer === peer);
			if (changed > 0 && e !== undefined && e.unread > 0) {
				e.unread = Math.max(0, e.unread - changed);
				await this.store.put("convs", this.index);
				this.render();
			}
		} else {
			const st: OutState | undefined = status === 1 ? "delivered" : status === 2 ? "read" : undefined;
			if (st === undefined) return;
			for (const m of list)
				if (m.dir === "out" && want.has(m.id) && STATE_RANK[st] > (m.state === undefined ? 0 : STATE_RANK[m.state])) {
					m.state = st;
					changed++;
				}
		}
		if (changed === 0) return;
		await this.store.put("conv:" + peer, list);
		if (this.open === peer) await this.renderChat();
	}

	/** Tells onRead about the open conversation's incoming messages not read yet; marks them once told. */
	private async readOpen(peer: string): Promise<void> {
		const list = await this.messages(peer);
		const mine = list.filter((m) => m.dir === "in" && !m.read && !this.pendingRead.has(peer + ":" + m.id));
		if (mine.length === 0) return;
		const ids = mine.map((m) => m.id);
		for (const id of ids) this.pendingRead.add(peer + ":" + id);
		try {
			await this.onRead(peer, ids);
			for (const m of mine) m.read = true;
			await this.store.put("conv:" + peer, list);
		} catch {
			// not connected: told the next time the conversation is opened
		} finally {
			for (const id of ids) this.pendingRead.delete(peer + ":" + id);
		}
	}

	/** Lists a conversation (a group just joined) even before its first message. */
	async ensure(peer: string): Promise<void> {
		if (!this.index.peers.some((x) => x.peer === peer)) {
			this.index.peers.push({ peer, unread: 0, last: Date.now() });
			await this.store.put("convs", this.index);
		}
		this.render();
		if (this.open === peer) await this.renderChat();
	}

	async openChat(peer: string): Promise<void> {
		// Focus moves to the composer only if the user has not moved it meanwhile
		// (typing into the search field while the history loads stays there).
		const had = document.activeElement;
		if (this.open !== peer) this.hit = "";
		this.open = peer;
		let e = this.index.peers.find((x) => x.peer === peer);
		if (e === undefined) {
			e = { peer, unread: 0, last: Date.now() };
			this.index.peers.push(e);
		}
		e.unread = 0;
		await this.store.put("convs", this.index);
		this.render();
		await this.renderChat();
		if (!document.hidden) void this.readOpen(peer);
		($("f-send") as HTMLFormElement).hidden = false;
		const now = document.activeElement;
		if (now === had || now === null || now === document.body) ($("text") as HTMLInputElement).focus();
	}

	render(): void {
		const ul = $("convs");
		ul.replaceChildren();
		for (const e of [...this.index.peers].sort((a, b) => b.last - a.last)) {
			const li = document.createElement("li");
			const b = document.createElement("button");
			b.type = "button";
			b.dataset.peer = e.peer;
			b.textContent = this.name(e.peer);
			if (e.peer === this.open) b.setAttribute("aria-current", "true");
			if (e.unread > 0) {
				const u = document.createElement("span");
				u.className = "unread";
				u.textContent = String(e.unread);
				u.setAttribute("aria-label", e.unread + " unread");
				b.append(u);
			}
			b.addEventListener("click", () => void this.openChat(e.peer));
			li.append(b);
			ul.append(li);
		}
	}

	/** Draws the open conversation again (a download changed state). */
	async refresh(): Promise<void> {
		await this.renderChat();
	}

	private async renderChat(): Promise<void> {
		if (this.open === undefined) return;
		$("h-chat").textContent = this.name(this.open);
		const v = this.vlist();
		const peer = this.open;
		// The rows are built anew: the thumbnails of the old ones are no longer watched.
		beginRender();
		if (!this.cache.has(peer)) {
			// Not read yet: the newest messages first (one small record), then the whole history.
			const tail = await this.store.get<ChatMessage[]>("tail:" + peer);
			if (tail !== undefined && this.open === peer && !this.cache.has(peer)) {
				v.set(tail, true);
				this.shown = peer;
			}
		}
		const msgs = await this.messages(peer);
		if (this.open !== peer) return;
		// Only the rows in view are built (web/src/vlist.ts); a new message keeps the end in view.
		v.set(msgs, this.shown !== this.open || v.atEnd());
		this.shown = this.open;
		$("msgs").setAttribute("aria-label", "Messages, " + msgs.length + " in all");
	}

	private shown: string | undefined;

	private row(m: ChatMessage): HTMLElement {
		const li = document.createElement("li");
		li.className = m.dir;
		if (this.hit === m.dir + ":" + m.id) li.classList.add("hit");
		li.dataset.id = m.id;
		const prefix = m.from !== undefined ? this.name(m.from) + ": " : "";
		if (m.file !== undefined) renderFile(li, m.file, prefix);
		else li.textContent = prefix + m.text;
		if (m.dir === "out" && m.state !== undefined) {
			// The state as words for screen readers; the ticks are drawn by CSS.
			const st = document.createElement("span");
			st.className = "state " + m.state;
			st.setAttribute("role", "img");
			st.setAttribute("aria-label", m.state);
			st.dataset.icon = STATE_ICON[m.state];
			li.dataset.state = m.state;
			li.append(st);
		}
		li.title = new Date(m.date).toLocaleString() + (m.other && m.dir === "out" ? " (sent from another device)" : "");
		return li;
	}

	/**
	 * Messages containing q (case-insensitive), newest first, at most limit: in
	 * peer's conversation, or in all. Runs over the decrypted store.
	 */
	async search(q: string, peer: string | undefined, limit = SEARCH_MAX): Promise<ChatMessage[]> {
		const needle = norm(q);
		if (needle === "") return [];
		const peers = peer !== undefined ? [peer] : this.index.peers.map((e) => e.peer);
		const out: ChatMessage[] = [];
		for (const p of peers) for (const m of await this.messages(p)) if (norm(m.text).includes(needle)) out.push(m);
		out.sort((a, b) => b.date - a.date);
		return out.slice(0, limit);
	}

	/** Opens peer's conversation with the message id marked and in view. */
	async reveal(peer: string, id: string, dir: string): Promise<void> {
		await this.openChat(peer);
		this.hit = dir + ":" + id;
		const i = (await this.messages(peer)).findIndex((m) => m.id === id && m.dir === dir);
		const e = i >= 0 ? this.vlist().scrollTo(i) : undefined;
		if (e !== undefined) {
			e.tabIndex = -1;
			e.focus();
		}
	}

	clear(): void {
		this.cache = new Map();
		this.loading = new Map();
		this.index = { peers: [] };
		this.open = undefined;
		this.shown = undefined;
		this.hit = "";
		$("convs").replaceChildren();
		this.vlist().clear();
		$("h-chat").textContent = "No conversation open";
		($("f-send") as HTMLFormElement).hidden = true;
	}
}
