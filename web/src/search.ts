// Search in the history: the open conversation or all of them, over the
// decrypted store (nothing leaves the browser). A result opens its
// conversation with the message marked.
import type { Chats } from "./chats";

const $ = (id: string): HTMLElement => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e;
};

export class Search {
	constructor(private chats: Chats) {
		$("f-search").addEventListener("submit", (e) => void this.run(e));
	}

	private async run(e: Event): Promise<void> {
		e.preventDefault();
		const q = ($("q") as HTMLInputElement).value.trim();
		const all = ($("q-all") as HTMLInputElement).checked || this.chats.open === undefined;
		const ol = $("results");
		ol.replaceChildren();
		const st = $("search-status");
		if (q === "") {
			st.textContent = "";
			return;
		}
		const found = await this.chats.search(q, all ? undefined : this.chats.open);
		for (const m of found) {
			const li = document.createElement("li");
			const b = document.createElement("button");
			b.type = "button";
			b.dataset.peer = m.peer;
			b.dataset.id = m.id;
			const who = m.dir === "in" ? this.chats.name(m.peer) : "you to " + this.chats.name(m.peer);
			b.textContent = who + ", " + new Date(m.date).toLocaleString() + ": " + m.text;
			b.addEventListener("click", () => void this.chats.reveal(m.peer, m.id, m.dir));
			li.append(b);
			ol.append(li);
		}
		const where = all ? "in all conversations" : "in this conversation";
		st.textContent = (found.length === 0 ? "no messages found " : found.length + (found.length === 1 ? " message found " : " messages found ")) + where;
	}

	clear(): void {
		$("results").replaceChildren();
		$("search-status").textContent = "";
		($("q") as HTMLInputElement).value = "";
	}
}
