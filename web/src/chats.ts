// Conversations: the messages of each peer and its unread count, kept in
// the encrypted store (one record per conversation and an index), shown as
// a list and the open chat. Messages are keyed by ID: what arrives twice
// (a resend, a reflection of what this device already has) shows once.
import { type Group, gidHex, groupKey, isGroupKey } from "./groups";
import type { Contact } from "./link";
import { beginRender, renderFile } from "./fileview";
import type { ChatMessage, OutState } from "./session";
import type { Store } from "./store";

const KEEP = 10000;
const STATE_RANK: Record<OutState, number> = { sent: 1, delivered: 2, read: 3 };
const STATE_ICON: Record<OutState, string> = { sent: "✓", delivered: "✓✓", read: "✓✓" };
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

	constructor(private store: Store) {}

	async load(contacts: Contact[], groups: Group[]): Promise<void> {
		this.contacts = contacts;
		this.groups = groups;
		this.index = (await this.store.get<Index>("convs")) ?? { peers: [] };
		this.cache.clear();
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

	private async messages(peer: string): Promise<ChatMessage[]> {
		let m = this.cache.get(peer);
		if (m === undefined) {
			m = (await this.store.get<ChatMessage[]>("conv:" + peer)) ?? [];
			this.cache.set(peer, m);
		}
		return m;
	}

	/** Adds a message (once); false if it was there already. */
	async add(msg: ChatMessage): Promise<boolean> {
		const list = await this.messages(msg.peer);
		if (list.some((x) => x.id === msg.id && x.dir === msg.dir)) return false;
		list.push(msg);
		list.sort((a, b) => a.date - b.date);
		if (list.length > KEEP) list.splice(0, list.length - KEEP);
		await this.store.put("conv:" + msg.peer, list);
		let e = this.index.peers.find((x) => x.peer === msg.peer);
		if (e === undefined) {
			e = { peer: msg.peer, unread: 0, last: 0 };
			this.index.peers.push(e);
		}
		e.last = Math.max(e.last, msg.date);
		if (msg.dir === "in" && (this.open !== msg.peer || document.hidden)) e.unread++;
		await this.store.put("convs", this.index);
		this.render();
		if (this.open === msg.peer) await this.renderChat();
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
		($("text") as HTMLInputElement).focus();
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
		const ol = $("msgs");
		ol.replaceChildren();
		beginRender();
		for (const m of await this.messages(this.open)) {
			const li = document.createElement("li");
			li.className = m.dir;
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
			ol.append(li);
		}
		ol.scrollTop = ol.scrollHeight;
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
		for (const li of $("msgs").querySelectorAll("li")) {
			const e = li as HTMLElement;
			if (e.dataset.id === id && e.classList.contains(dir)) {
				e.classList.add("hit");
				e.tabIndex = -1;
				e.scrollIntoView({ block: "center" });
				e.focus();
			}
		}
	}

	clear(): void {
		this.cache.clear();
		this.index = { peers: [] };
		this.open = undefined;
		$("convs").replaceChildren();
		$("msgs").replaceChildren();
		$("h-chat").textContent = "No conversation open";
		($("f-send") as HTMLFormElement).hidden = true;
	}
}
