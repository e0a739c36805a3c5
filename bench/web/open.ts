// In the page of bench/web/bench.mjs (the client's own index.html and CSS):
// seeds one conversation of N messages into a new encrypted store, then
// opens it R times with the client's Chats (cold: nothing cached, the
// records are read and decrypted each time) and measures each opening with
// the performance API: from the call to the first frame after the rows
// entered the list, and to the whole history in place. Also reports what was
// rendered.
import { ready } from "../../web/src/crypto";
import { Chats } from "../../web/src/chats";
import { History } from "../../web/src/history";
import type { ChatMessage } from "../../web/src/session";
import { Store } from "../../web/src/store";

const PEER = "BENCHPER";

declare global {
	interface Window {
		veilBenchOpen: (n: number, runs: number, adds: number) => Promise<unknown>;
	}
}

window.veilBenchOpen = async (n: number, runs: number, adds: number) => {
	await ready();
	const store = await Store.open();
	if (!(await store.exists())) await store.create("bench passphrase");
	const base = Date.now() - n * 60000;
	const list: ChatMessage[] = [];
	for (let i = 0; i < n; i++)
		list.push({ peer: PEER, dir: i % 3 === 0 ? "out" : "in", id: String(1000000 + i), date: base + i * 60000, text: "message " + i + " " + "lorem ipsum ".repeat(1 + (i % 7)) });
	// All but the last stored at once; the last one added as the app adds a message (which writes the records it keeps).
	const last = list.pop() as ChatMessage;
	await new History(store, PEER).replace(list);
	await store.put("convs", { peers: [{ peer: PEER, unread: 0, last: base + n * 60000 }] });
	const chats = new Chats(store);
	await chats.load([], []);
	await chats.add(last);
	// One opening first, not counted: the code's first run (compilation) is not the budget's concern.
	await chats.load([], []);
	await chats.openChat(PEER);
	const ms: number[] = [];
	const fullMs: number[] = [];
	const ol0 = document.getElementById("msgs") as HTMLElement;
	for (let r = 0; r < runs; r++) {
		await chats.load([], []);
		ol0.replaceChildren();
		// The first render: the first time rows enter the list, then its layout and the next frame.
		const first = new Promise<void>((res) => {
			const mo = new MutationObserver(() => {
				if (ol0.querySelector("li:not(.spacer)") === null) return;
				mo.disconnect();
				void ol0.offsetHeight;
				performance.mark("open-rendered");
				requestAnimationFrame(() => {
					performance.mark("open-frame");
					res();
				});
			});
			mo.observe(ol0, { childList: true });
		});
		performance.mark("open-start");
		await chats.openChat(PEER);
		void ol0.offsetHeight;
		performance.mark("open-full");
		await first;
		ms.push(performance.measure("open", "open-start", "open-frame").duration);
		fullMs.push(performance.measure("open-full", "open-start", "open-full").duration);
	}
	// Where the time goes: the store's read and decryption of every chunk alone; an opening with the messages cached (the rendering).
	const readMs: number[] = [];
	const warmMs: number[] = [];
	for (let r = 0; r < runs; r++) {
		let t = performance.now();
		await new History(store, PEER).all();
		readMs.push(performance.now() - t);
		await chats.openChat(PEER);
		t = performance.now();
		await chats.openChat(PEER);
		void document.getElementById("msgs")?.offsetHeight;
		await new Promise((res) => requestAnimationFrame(() => res(undefined)));
		warmMs.push(performance.now() - t);
	}
	const ol = document.getElementById("msgs") as HTMLElement;
	const label = ol.getAttribute("aria-label");
	const rows = [...ol.querySelectorAll("li:not(.spacer)")] as HTMLElement[];
	const lastRow = rows[rows.length - 1];
	// The first message, far above: reached by the keyboard's Home (scrollTop 0) and rendered there.
	ol.focus();
	const focusable = ol.tabIndex === 0 && document.activeElement === ol;
	ol.scrollTop = 0;
	await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(() => res(undefined))));
	const firstRow = ol.querySelector("li:not(.spacer)") as HTMLElement | null;
	// Scrolling keeps the elements of the rows that stay rendered (and so the
	// focus on one of them): 5 px, then past a few rows' height (new rows enter
	// below, none leave above), from the top and from the middle of the list.
	const frames = (): Promise<unknown> => new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(() => res(undefined))));
	const live = (): string => [...ol.querySelectorAll("li:not(.spacer)")].map((r) => r.getAttribute("aria-posinset")).join(",").replace(/^(\d+),.*,(\d+)$/, "$1-$2");
	const scrollKeeps = async (row: HTMLElement | null, by: number[]): Promise<string> => {
		if (row === null) return "no row";
		row.setAttribute("tabindex", "-1");
		row.focus();
		const pos = row.getAttribute("aria-posinset");
		for (const d of by) {
			const was = live();
			const stay = [...ol.querySelectorAll("li:not(.spacer)")].filter((r) => {
				const b = r.getBoundingClientRect();
				const v = ol.getBoundingClientRect();
				return b.bottom > v.top + Math.abs(d) && b.top < v.bottom - Math.abs(d);
			});
			ol.scrollTop += d;
			await frames();
			if (!(row.isConnected && document.activeElement === row)) return "row " + pos + " lost (scrolled " + d + ", rows " + was + " then " + live() + ")";
			if (!stay.every((r) => r.isConnected)) return "rows in view rebuilt (scrolled " + d + ", rows " + was + " then " + live() + ")";
		}
		return "ok";
	};
	const rowsKept = await scrollKeeps(firstRow, [5, 200, -100]);
	ol.scrollTop = ol.scrollHeight / 2;
	await frames();
	const mid = [...ol.querySelectorAll("li:not(.spacer)")].find((r) => r.getBoundingClientRect().top >= ol.getBoundingClientRect().top + 250) as HTMLElement | undefined;
	const midKept = await scrollKeeps(mid ?? null, [5, 200, -300, 40]);
	// Scrolled up while the newest chunks are shown and the rest is read: the
	// whole history, in place, keeps the same message at the top of the view.
	await chats.load([], []);
	ol.replaceChildren();
	let before = "";
	const shown = new Promise<void>((res) => {
		const mo = new MutationObserver(() => {
			if (ol.querySelector("li:not(.spacer)") === null) return;
			mo.disconnect();
			ol.scrollTop -= 300;
			before = topInView(ol);
			res();
		});
		mo.observe(ol, { childList: true });
	});
	await chats.openChat(PEER);
	await shown;
	await frames();
	const after = topInView(ol);
	const tailKept = before !== "" && after === before ? "ok" : "top row " + before + " then " + after;
	// Adding one message to the open conversation (its history in memory), as
	// the app adds what arrives: the store's writes and the rendering; then one
	// message's state changed by a receipt (delivered, then read).
	const addMs: number[] = [];
	const receiptMs: number[] = [];
	for (let r = 0; r < adds; r++) {
		let t = performance.now();
		await chats.add({ peer: PEER, dir: "out", id: String(5000000 + r), date: base + (n + r) * 60000, text: "added " + r, state: "sent" });
		addMs.push(performance.now() - t);
		t = performance.now();
		await chats.receipt(PEER, 1 + (r % 2), [String(5000000 + r - (r % 2))], false);
		receiptMs.push(performance.now() - t);
	}
	// Not a time: messages added at once to a conversation not read yet are all kept, once each.
	const race = "RACEPEER";
	await chats.load([], []);
	const m = (id: string): ChatMessage => ({ peer: race, dir: "in", id, date: Number(id), text: "race " + id });
	await Promise.all([chats.add(m("1")), chats.add(m("2")), chats.add(m("1")), chats.add(m("3"))]);
	await chats.load([], []);
	const kept = (await new History(store, race).all()).map((x) => x.id).join(",");
	await chats.load([], []);
	return {
		kept,
		rowsKept,
		midKept,
		tailKept,
		addMs,
		receiptMs,
		ms,
		fullMs,
		readMs,
		warmMs,
		rows: rows.length,
		setsize: lastRow?.getAttribute("aria-setsize"),
		lastPos: lastRow?.getAttribute("aria-posinset"),
		lastText: lastRow?.textContent,
		label,
		focusable,
		firstAfterHome: firstRow?.textContent?.split(" ").slice(0, 2).join(" "),
		firstPos: firstRow?.getAttribute("aria-posinset"),
	};
};
/** The first message whose row reaches into the view ("message N"). */
function topInView(ol: HTMLElement): string {
	const top = ol.getBoundingClientRect().top;
	const r = [...ol.querySelectorAll("li:not(.spacer)")].find((x) => x.getBoundingClientRect().bottom > top);
	return r === undefined ? "" : (r.textContent ?? "").split(" ").slice(0, 2).join(" ");
}
document.title = "bench ready";
