// Conversations: the messages of each peer and its unread count, kept in
// the encrypted store (each conversation's history in chunks, web/src/history.ts,
// and an index of conversations), shown as a list and the open chat.
// Messages are keyed by ID: what arrives twice (a resend, a reflection of
// what this device already has) shows once.
import { type Group, gidHex, groupKey, isGroupKey } from "./groups";
import type { Contact } from "./link";
import { renderFile } from "./fileview";
import type { ChatMessage, OutState } from "./session";
import { History } from "./history";
import type { Store } from "./store";
import { VList } from "./vlist";

const STATE_RANK: Record<OutState, number> = { queued: 0, failed: 0, sent: 1, delivered: 2, read: 3 };
const STATE_ICON: Record<OutState, string> = { queued: "◷", failed: "!", sent: "✓", delivered: "✓✓", read: "✓✓" };
/** Opening a conversation not read yet shows at least its newest TAIL messages (its last chunks) before the whole history is read. */
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
	private cache = new Map<string, History>();
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
		this.list ??= new VList(
			$("msgs"),
			(m) => this.row(m),
			(m) => this.rowKey(m),
			(li, m) => this.mark(li, m),
		);
		return this.list;
	}

	async load(contacts: Contact[], groups: Group[]): Promise<void> {
		this.contacts = contacts;
		this.groups = groups;
		this.index = (await this.store.get<Index>("convs")) ?? { peers: [] };
		this.cache = new Map();
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

	/** The history of peer's conversation (one object per conversation: its operations run one at a time). */
	private hist(peer: string): History {
		let h = this.cache.get(peer);
		if (h === undefined) {
			h = new History(this.store, peer);
			this.cache.set(peer, h);
		}
		return h;
	}

	private messages(peer: string): Promise<ChatMessage[]> {
		return this.hist(peer).all();
	}

	/** Adds a message (once); false if it was there already. */
	async add(msg: ChatMessage): Promise<boolean> {
		if (!(await this.hist(msg.peer).add(msg))) return false;
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
		const h = this.hist(peer);
		let changed = 0;
		if (byMe) {
			if (status !== 2) return;
			changed = await h.change(ids, (m) => {
				if (m.dir !== "in" || m.read) return false;
				m.read = true;
				return true;
			});
			const e = this.index.peers.find((x) => x.peer === peer);
			if (changed > 0 && e !== undefined && e.unread > 0) {
				e.unread = Math.max(0, e.unread - changed);
				await this.store.put("convs", this.index);
				this.render();
			}
		} else {
			const st: OutState | undefined = status === 1 ? "delivered" : status === 2 ? "read" : undefined;
			if (st === undefined) return;
			changed = await h.change(ids, (m) => {
				if (m.dir !== "out" || STATE_RANK[st] <= (m.state === undefined ? 0 : STATE_RANK[m.state])) return false;
				m.state = st;
				return true;
			});
		}
		if (changed === 0) return;
		if (this.open === peer) await this.renderChat();
	}

	/** An outgoing message left the outbox (st "sent") or was refused (st "failed"); a state from a receipt stays. */
	async outState(peer: string, id: string, st: OutState): Promise<void> {
		const changed = await this.hist(peer).change([id], (m) => {
			if (m.dir !== "out" || (m.state !== undefined && m.state !== "queued")) return false;
			m.state = st;
			return true;
		});
		if (changed > 0 && this.open === peer) await this.renderChat();
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
			await this.hist(peer).change(ids, (m) => {
				if (m.dir !== "in" || m.read) return false;
				m.read = true;
				return true;
			});
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

	private async renderChat(): Promise<void> {
		if (this.open === undefined) return;
		$("h-chat").textContent = this.name(this.open);
		const v = this.vlist();
		const peer = this.open;
		const h = this.hist(peer);
		if (!h.complete) {
			// Not read yet: the newest messages first (the last chunks), then the whole history.
			const tail = await h.newest(TAIL);
			if (tail.length > 0 && this.open === peer && !h.complete) {
				v.set(tail, true);
				this.shown = peer;
				// Drawn before the rest is read and decrypted (which holds the thread).
				await new Promise<void>((res) => {
					const t = setTimeout(res, 50);
					requestAnimationFrame(() => {
						clearTimeout(t);
						setTimeout(res, 0);
					});
				});
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

	/**
	 * What row(m) draws: a row whose key stays keeps its element (and its focus) when the list is drawn again.
	 * What changes in place is not in it: the delivery state and the search mark (mark), a file's
	 * download (web/src/fileview.ts).
	 */
	private rowKey(m: ChatMessage): string {
		const from = m.from !== undefined ? this.name(m.from) : "";
		return m.dir + ":" + m.id + ":" + from;
	}

	/** Shows in li what of m changes while its row stays: whether a search revealed it, its delivery state. */
	private mark(li: HTMLElement, m: ChatMessage): void {
		li.classList.toggle("hit", this.hit === m.dir + ":" + m.id);
		let st = li.querySelector<HTMLElement>(":scope > .state");
		if (m.dir !== "out" || m.state === undefined) {
			st?.remove();
			delete li.dataset.state;
			return;
		}
		if (li.dataset.state === m.state && st !== null) return;
		if (st === null) {
			// The state as words for screen readers; the ticks are drawn by CSS.
			st = document.createElement("span");
			st.setAttribute("role", "img");
			li.append(st);
		}
		st.className = "state " + m.state;
		st.setAttribute("aria-label", m.state);
		st.dataset.icon = STATE_ICON[m.state];
		li.dataset.state = m.state;
	}

	private row(m: ChatMessage): HTMLElement {
		const li = document.createElement("li");
		li.className = m.dir;
		li.dataset.id = m.id;
		const prefix = m.from !== undefined ? this.name(m.from) + ": " : "";
		if (m.file !== undefined) renderFile(li, m.file, prefix);
		else li.textContent = prefix + m.text;
		this.mark(li, m);
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
