// The page: linking, unlocking, and the conversations view.
import { ready } from "./crypto";
import { join, type Profile } from "./link";
import { Store, WrongPassphrase } from "./store";

const $ = <E extends HTMLElement>(id: string): E => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e as E;
};

let store: Store;
let profile: Profile | undefined;

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

async function opened(p: Profile): Promise<void> {
	profile = p;
	$("who").textContent = p.identity + (p.nickname ? " (" + p.nickname + ")" : "");
	show("chat");
	document.dispatchEvent(new CustomEvent("veil:ready", { detail: { identity: p.identity } }));
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
	store.lock();
	profile = undefined;
	$("who").textContent = "";
	document.dispatchEvent(new CustomEvent("veil:lock"));
	show("unlock");
}

async function main(): Promise<void> {
	await ready();
	store = await Store.open();
	$("f-link").addEventListener("submit", (e) => void onLink(e));
	$("f-unlock").addEventListener("submit", (e) => void onUnlock(e));
	$("lock").addEventListener("click", onLock);
	show((await store.exists()) ? "unlock" : "link");
}

export function currentProfile(): Profile | undefined {
	return profile;
}

main().catch((e: unknown) => {
	say("loading", "Cannot start: " + (e instanceof Error ? e.message : String(e)), true);
});
