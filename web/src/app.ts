// The page: linking, unlocking, and the conversations view.
import { randomU64, ready, sodium } from "./crypto";
import { Chats } from "./chats";
import { Contacts } from "./contacts";
import { Devices } from "./devices";
import { initFileSend } from "./filesend";
import { forget as forgetFiles } from "./fileview";
import { groupKey, isGroupKey } from "./groups";
import { upgradeStore } from "./history";
import { Notifier } from "./notify";
import { showOwnQr, wireLinkQr } from "./qrview";
import { wireNewId } from "./newid";
import { Search } from "./search";
import { join, type Profile } from "./link";
import { type Outbound, Session, TEXT_MAX } from "./session";
import { Store, WrongPassphrase } from "./store";

const $ = <E extends HTMLElement>(id: string): E => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e as E;
};

let store: Store;
let profile: Profile | undefined;
let chats: Chats;
let contacts: Contacts;
let devices: Devices;
let notifier: Notifier;
let search: Search;
let session: Session | undefined;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
/** Messages written and not yet acknowledged by the chat service, oldest first (kept in the store as "outbox"). */
const OUTBOX_MAX = 1000;
let backoff = BACKOFF_MIN_MS;
let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
let attempts = 0;
let outbox: Outbound[] = [];
let flushing: Promise<void> | undefined;
let flushAgain = false;

function show(view: "link" | "unlock" | "chat"): void {
	for (const v of ["link", "unlock", "chat"]) $("v-" + v).hidden = v !== view;
	$("loading").hidden = true;
	$("lock").hidden = view !== "chat";
	if (view === "link") $<HTMLTextAreaElement>("link").focus();
	if (view === "unlock") $<HTMLInputElement>("pass2").focus();
}

function say(id: string, text: string, error = false): void {
	const e = $(id);
	e.textContent = text;
	e.classList.toggle("err", error);
}

/** Connects p's session; resolved once connected (or failed, with a retry scheduled). */
function connect(p: Profile): Promise<void> {
	if (profile !== p) return Promise.resolve();
	const s = new Session(p, {
		message: async (m) => {
			if ((await chats.add(m)) && m.dir === "in") notifier.notify(m.peer, chats.name(m.peer));
		},
		group: async (g) => {
			await store.put("profile", p);
			await chats.ensure(groupKey(g.creator, g.gid));
		},
		contact: async () => {
			await store.put("profile", p);
			chats.render();
			contacts.render();
		},
		nonce: async (n, record) => {
			// One record per nonce: its name in the database is a keyed hash.
			const k = "nonce:" + sodium.to_hex(n);
			// (A store from before records named their row keeps its nonces as they were.)
			if ((await store.get(k, true)) !== undefined) return true;
			if (record) await store.put(k, 1);
			return false;
		},
		state: (x) => say("net", x),
		receipt: (peer, status, ids, byMe) => chats.receipt(peer, status, ids, byMe),
		closed: (why, retry) => {
			if (session !== s) return;
			session = undefined;
			say("net", why + (retry ? "; reconnecting" : ""), true);
			if (retry) schedule(p);
		},
	});
	session = s;
	say("net", "connecting");
	// Each attempt is told (tests watch the back-off).
	document.dispatchEvent(new CustomEvent("veil:connecting", { detail: { attempt: ++attempts } }));
	return s.connect().then(
		() => {
			if (session !== s) return;
			backoff = BACKOFF_MIN_MS;
			void flush();
		},
		(e: unknown) => {
			if (session !== s) return;
			session = undefined;
			say("net", "cannot connect: " + (e instanceof Error ? e.message : String(e)) + "; retrying", true);
			schedule(p);
		},
	);
}

/** The next attempt after the back-off, which doubles up to BACKOFF_MAX_MS (reset by a connection that succeeds). */
function schedule(p: Profile): void {
	clearTimeout(reconnectTimer);
	reconnectTimer = setTimeout(() => void connect(p), backoff);
	backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
}

/**
 * Sends the outbox in order while connected: each message sealed once (the
 * sealed bytes saved before the first try), marked sent on the chat
 * service's ack and only then taken out. A message the connection lost stays
 * and goes again, the same bytes, on the next connection.
 */
function flush(): Promise<void> {
	if (flushing !== undefined) {
		// Running: it looks at the outbox once more before it ends.
		flushAgain = true;
		return flushing;
	}
	flushing = (async () => {
		try {
			do {
				flushAgain = false;
				await flushOnce();
			} while (flushAgain && session !== undefined);
		} catch (e) {
			// (locked meanwhile: the store is closed; what is left waits in it)
			say("send-status", "not sent yet: " + (e instanceof Error ? e.message : String(e)), true);
		} finally {
			flushing = undefined;
		}
	})();
	return flushing;
}

async function flushOnce(): Promise<void> {
	while (outbox.length > 0 && session !== undefined) {
		const s = session;
		const o = outbox[0];
		if (o.sealed === undefined) {
			try {
				o.sealed = await s.sealText(o);
			} catch (e) {
				if (session !== s) return; // the connection went meanwhile: sealed on the next one
				outbox.shift();
				await store.put("outbox", outbox);
				await chats.outState(o.key, o.id, "failed");
				say("send-status", "not sent: " + (e instanceof Error ? e.message : String(e)), true);
				continue;
			}
			await store.put("outbox", outbox);
		}
		try {
			await s.sendSealed(o.id, o.sealed);
		} catch {
			return; // not connected (any more): sent on the next connection
		}
		if (outbox[0] === o) outbox.shift();
		await store.put("outbox", outbox);
		await chats.outState(o.key, o.id, "sent");
		say("send-status", outbox.length > 0 ? "sent; " + outbox.length + " waiting" : "sent");
	}
}

async function opened(p: Profile): Promise<void> {
	profile = p;
	$("who").textContent = p.identity + (p.nickname ? " (" + p.nickname + ")" : "");
	p.groups ??= [];
	await chats.load(p.contacts, p.groups);
	outbox = (await store.get<Outbound[]>("outbox")) ?? [];
	// Groups that came with the link (EssentialData) are listed before their first message.
	for (const g of p.groups) if (!g.left) await chats.ensure(groupKey(g.creator, g.gid));
	contacts.load(p.contacts, sodium.crypto_scalarmult_base(p.ck));
	showOwnQr(p.identity, sodium.crypto_scalarmult_base(p.ck));
	devices.load();
	show("chat");
	void connect(p);
	document.dispatchEvent(new CustomEvent("veil:ready", { detail: { identity: p.identity } }));
}

async function onSend(ev: Event): Promise<void> {
	ev.preventDefault();
	const input = $<HTMLInputElement>("text");
	const peer = chats.open;
	const text = input.value;
	if (peer === undefined || text.trim() === "") return;
	const n = new TextEncoder().encode(text).length;
	if (n > TEXT_MAX) {
		say("send-status", "not sent: a message has at most " + TEXT_MAX + " bytes", true);
		return;
	}
	if (isGroupKey(peer) && (profile?.groups ?? []).find((g) => groupKey(g.creator, g.gid) === peer)?.left !== false) {
		say("send-status", "not sent: you are not a member of this group", true);
		return;
	}
	if (peer === profile?.identity) {
		say("send-status", "not sent: cannot send a message to yourself", true);
		return;
	}
	if (outbox.length >= OUTBOX_MAX) {
		say("send-status", "not sent: " + OUTBOX_MAX + " messages wait to be sent already", true);
		return;
	}
	// Queued first (kept in the store), then sent whenever connected: now, or after the connection comes back.
	// The field is free at once (typing on while the message is stored loses nothing).
	input.value = "";
	const o: Outbound = { key: peer, text, id: randomU64().toString(), date: Date.now() };
	outbox.push(o);
	await store.put("outbox", outbox);
	await chats.add({ peer, dir: "out", id: o.id, date: o.date, text, state: "queued" });
	say("send-status", session === undefined ? "not connected: sent when the connection is back" : "sending");
	await flush();
}

function onNew(ev: Event): void {
	ev.preventDefault();
	const i = $<HTMLInputElement>("new-peer");
	const id = i.value.trim().toUpperCase();
	if (!/^[0-9A-Z*][0-9A-Z]{7}$/.test(id)) {
		say("send-status", "an ID has 8 letters and digits", true);
		return;
	}
	i.value = "";
	void chats.openChat(id);
}

async function onLink(ev: Event): Promise<void> {
	ev.preventDefault();
	const btn = ($("f-link") as HTMLFormElement).querySelector("button") as HTMLButtonElement;
	btn.disabled = true;
	say("link-status", "");
	$("rph").textContent = "";
	try {
		await store.create($<HTMLInputElement>("pass1").value);
		$<HTMLInputElement>("pass1").value = "";
		const p = await join($<HTMLTextAreaElement>("link").value, $<HTMLInputElement>("label").value, {
			code: (c) => {
				$("rph").textContent = c;
			},
			status: (s) => say("link-status", s),
			save: (x) => store.put("profile", x),
		});
		$<HTMLTextAreaElement>("link").value = "";
		say("link-status", "linked");
		await opened(p);
	} catch (e) {
		say("link-status", "Linking failed: " + (e instanceof Error ? e.message : String(e)), true);
	} finally {
		btn.disabled = false;
	}
}

async function onUnlock(ev: Event): Promise<void> {
	ev.preventDefault();
	const pass = $<HTMLInputElement>("pass2");
	say("unlock-status", "unlocking");
	try {
		await store.unlock(pass.value);
		pass.value = "";
		if (store.legacy) {
			say("unlock-status", "upgrading this browser's store");
			await upgradeStore(store);
		}
		const p = await store.get<Profile>("profile");
		if (p === undefined || !p.registered) {
			say("unlock-status", "this browser's link was not finished: link it again", true);
			show("link");
			return;
		}
		say("unlock-status", "");
		await opened(p);
	} catch (e) {
		say("unlock-status", e instanceof WrongPassphrase ? "Wrong passphrase" : String(e), true);
		pass.select();
	}
}

function onLock(): void {
	clearTimeout(reconnectTimer);
	const s = session;
	session = undefined;
	s?.close();
	outbox = [];
	chats.clear();
	forgetFiles();
	contacts.clear();
	showOwnQr(undefined);
	devices.clear();
	notifier.closeAll();
	search.clear();
	say("net", "");
	store.lock();
	profile = undefined;
	$("who").textContent = "";
	document.dispatchEvent(new CustomEvent("veil:lock"));
	show("unlock");
}

async function main(): Promise<void> {
	await ready();
	store = await Store.open();
	chats = new Chats(store);
	contacts = new Contacts({
		verified: async (c) => {
			if (profile !== undefined) await store.put("profile", profile);
			if (session === undefined) throw new Error("not connected");
			await session.syncContact(c);
		},
		write: (id) => void chats.openChat(id),
	});
	search = new Search(chats);
	chats.onRead = async (peer, ids) => {
		if (session === undefined) throw new Error("not connected");
		await session.markRead(peer, ids);
	};
	initFileSend(
		chats,
		() => session,
		() => profile,
	);
	notifier = new Notifier((peer) => void chats.openChat(peer));
	// The browser says the network is back: connect now rather than at the end of the back-off.
	window.addEventListener("online", () => {
		if (profile === undefined || session !== undefined) return;
		backoff = BACKOFF_MIN_MS;
		clearTimeout(reconnectTimer);
		void connect(profile);
	});
	// It says the network went away: a connection that stays silent is given up (Session.echo).
	window.addEventListener("offline", () => session?.echo());
	// Back on the tab: what the open conversation got meanwhile is read.
	document.addEventListener("visibilitychange", () => {
		if (!document.hidden && chats.open !== undefined) void chats.openChat(chats.open);
	});
	devices = new Devices({
		session: () => session,
		label: () => profile?.label ?? "",
		rename: async (label) => {
			const p = profile;
			if (p === undefined) throw new Error("locked");
			p.label = label;
			await store.put("profile", p);
			// The label travels sealed in the handshake: one new connection tells the mediator.
			clearTimeout(reconnectTimer);
			const old = session;
			session = undefined;
			old?.close();
			await connect(p);
			if (session === undefined) throw new Error("saved, but not connected: the mediator learns the name on the next connection");
		},
	});
	$("f-send").addEventListener("submit", (e) => void onSend(e));
	$("f-new").addEventListener("submit", onNew);
	$("f-link").addEventListener("submit", (e) => void onLink(e));
	$("f-unlock").addEventListener("submit", (e) => void onUnlock(e));
	$("lock").addEventListener("click", onLock);
	wireLinkQr();
	wireNewId({ create: (pass) => store.create(pass), save: (x) => store.put("profile", x), opened });
	show((await store.exists()) ? "unlock" : "link");
}

export function currentProfile(): Profile | undefined {
	return profile;
}

main().catch((e: unknown) => {
	say("loading", "Cannot start: " + (e instanceof Error ? e.message : String(e)), true);
});
