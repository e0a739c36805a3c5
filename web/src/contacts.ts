// The contact list and verifying a contact by its key fingerprint, as
// `veil contact show/verify` (cmd/veil/contact_match.c): the fingerprint is
// the first 16 bytes of SHA-256(public key), in hex, in groups of four.
// Levels are the specification's (d2d_sync.Contact.VerificationLevel):
// 0 unverified (red), 1 server verified (orange), 2 fully verified (green).
import { sodium } from "./crypto";
import type { Contact } from "./link";

export const LEVEL_FULL = 2;
const LEVELS = ["red (unverified)", "orange (server verified)", "green (verified)"];

export function levelName(level: number): string {
	return LEVELS[level] ?? LEVELS[0];
}

export function fingerprint(pk: Uint8Array): string {
	const h = sodium.to_hex(sodium.crypto_hash_sha256(pk).subarray(0, 16));
	return (h.match(/.{4}/g) ?? []).join(" ");
}

/** Whether what the user typed (any spacing or case) is the fingerprint of pk, compared in constant time. */
export function fingerprintMatches(pk: Uint8Array, typed: string): boolean {
	const t = typed.replace(/[\s:-]/g, "").toLowerCase();
	if (!/^[0-9a-f]{32}$/.test(t)) return false;
	const want = sodium.crypto_hash_sha256(pk).subarray(0, 16);
	return sodium.memcmp(sodium.from_hex(t), want);
}

const $ = (id: string): HTMLElement => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e;
};

export type ContactsEvents = {
	/** Marks c fully verified: stores it and tells the other devices. */
	verified: (c: Contact) => Promise<void>;
	write: (id: string) => void;
};

export class Contacts {
	private list: Contact[] = [];
	private shown: string | undefined;

	constructor(private ev: ContactsEvents) {
		$("f-verify").addEventListener("submit", (e) => void this.onVerify(e));
		$("c-write").addEventListener("click", () => {
			if (this.shown !== undefined) this.ev.write(this.shown);
		});
	}

	load(contacts: Contact[], ownPk: Uint8Array | undefined): void {
		this.list = contacts;
		this.shown = undefined;
		$("contact").hidden = true;
		$("my-fp").textContent = ownPk ? fingerprint(ownPk) : "";
		this.render();
	}

	render(): void {
		const ul = $("contacts");
		ul.replaceChildren();
		for (const c of [...this.list].sort((a, b) => a.identity.localeCompare(b.identity))) {
			const li = document.createElement("li");
			const b = document.createElement("button");
			b.type = "button";
			b.dataset.id = c.identity;
			const n = c.firstName || c.nickname;
			b.textContent = (n ? n + " (" + c.identity + ")" : c.identity) + " ";
			const l = document.createElement("span");
			l.className = "level l" + c.level;
			l.textContent = levelName(c.level);
			b.append(l);
			if (c.identity === this.shown) b.setAttribute("aria-current", "true");
			b.addEventListener("click", () => this.show(c.identity));
			li.append(b);
			ul.append(li);
		}
		if (this.shown !== undefined) this.fill();
	}

	show(id: string): void {
		this.shown = id;
		$("contact").hidden = false;
		$("verify-status").textContent = "";
		this.render();
		($("fp-in") as HTMLInputElement).value = "";
		$("h-contact").focus();
	}

	private fill(): void {
		const c = this.list.find((x) => x.identity === this.shown);
		if (c === undefined) return;
		$("h-contact").textContent = c.identity + (c.firstName || c.nickname ? " (" + (c.firstName || c.nickname) + ")" : "");
		$("c-fp").textContent = fingerprint(c.publicKey);
		$("c-level").textContent = levelName(c.level);
	}

	private async onVerify(e: Event): Promise<void> {
		e.preventDefault();
		const c = this.list.find((x) => x.identity === this.shown);
		const st = $("verify-status");
		if (c === undefined) return;
		const input = $("fp-in") as HTMLInputElement;
		if (!fingerprintMatches(c.publicKey, input.value)) {
			st.textContent = "The fingerprints differ: " + c.identity + " is NOT verified. Check what you typed, or the key is not theirs.";
			st.classList.add("err");
			return;
		}
		st.classList.remove("err");
		st.textContent = "verifying";
		c.level = LEVEL_FULL;
		this.render();
		try {
			await this.ev.verified(c);
			st.textContent = c.identity + " is verified (green), on your other devices too";
		} catch (x) {
			st.textContent = c.identity + " is verified here; the other devices were not told: " + (x instanceof Error ? x.message : String(x));
			st.classList.add("err");
		}
	}

	clear(): void {
		this.list = [];
		this.shown = undefined;
		$("contacts").replaceChildren();
		$("contact").hidden = true;
		$("my-fp").textContent = "";
	}
}
