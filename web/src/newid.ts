// Creating a new identity in the browser, as `veil init` does
// (lib/client/messenger.c, lib/dir/dir.c): a new key pair, the directory's
// identity/create request with its challenge (token, answered with a
// BLAKE2b MAC under a key derived from X25519 with the token's key), then a
// new device group of which this browser is the first device: a random
// device group key, registered with the mediator by its first connection.
import { kdf, random, randomU64, sodium, wipe } from "./crypto";
import * as d2m from "./d2m";
import { APP_VERSION, platformDetails, type Profile } from "./link";
import { provisioning } from "./server";

/** The server group of a new device group (lib/client/link.c's LINK_SERVER_GROUP). */
const SERVER_GROUP = "a0";
const ANSWER_MAX = 65536;
const TOKEN_MAX = 1024;
const NICK_MAX = 256;
const TIMEOUT_MS = 60000;
const ID_RE = /^[0-9A-Z][0-9A-Z]{7}$/;
const b64 = sodium.base64_variants.ORIGINAL;

async function post(url: string, body: Record<string, string>): Promise<Record<string, unknown>> {
	const ac = new AbortController();
	const t = setTimeout(() => ac.abort(), TIMEOUT_MS);
	try {
		const r = await fetch(url, {
			method: "POST",
			headers: { "Content-Type": "application/json", Accept: "application/json" },
			body: JSON.stringify(body),
			cache: "no-store",
			signal: ac.signal,
		});
		const text = await r.text();
		if (text.length > ANSWER_MAX) throw new Error("the directory's answer is too large");
		let j: unknown;
		try {
			j = JSON.parse(text);
		} catch {
			j = undefined;
		}
		const o = typeof j === "object" && j !== null ? (j as Record<string, unknown>) : {};
		if (!r.ok) throw new Error("the directory refused (" + r.status + (typeof o.error === "string" ? ": " + o.error.slice(0, 160) : "") + ")");
		if (o.success === false) throw new Error("the directory refused: " + (typeof o.error === "string" ? o.error.slice(0, 160) : "no reason given"));
		return o;
	} finally {
		clearTimeout(t);
	}
}

/** The answer to the directory's challenge (lib/dir/parse.c veil_dir_token_response). */
export function tokenResponse(sk: Uint8Array, tokenRespPk: Uint8Array, token: Uint8Array): Uint8Array {
	const ss = sodium.crypto_box_beforenm(tokenRespPk, sk);
	const k = kdf(ss, "dir", "3ma-csp");
	const r = sodium.crypto_generichash(32, token, k);
	wipe(ss, k);
	return r;
}

const INVITE_MAX = 64;

/** Asks the directory for a new ID for the key pair's public key (with an invite code where the server wants one). */
export async function createIdentity(directoryUrl: string, pk: Uint8Array, sk: Uint8Array, invite = ""): Promise<string> {
	const url = directoryUrl + "identity/create";
	const req: Record<string, string> = { publicKey: sodium.to_base64(pk, b64) };
	if (invite.length > INVITE_MAX) throw new Error("that is not an invite code");
	if (invite !== "") req.invite = invite;
	const ch = await post(url, req);
	if (typeof ch.token !== "string" || typeof ch.tokenRespKeyPub !== "string" || ch.token.length > TOKEN_MAX)
		throw new Error("the directory's challenge lacks a usable token");
	const token = sodium.from_base64(ch.token, b64);
	const trpk = sodium.from_base64(ch.tokenRespKeyPub, b64);
	if (token.length === 0 || trpk.length !== 32) throw new Error("the directory's challenge is malformed");
	const resp = tokenResponse(sk, trpk, token);
	req.token = ch.token;
	req.response = sodium.to_base64(resp, b64);
	wipe(resp);
	const a = await post(url, req);
	if (a.success !== true || typeof a.identity !== "string" || !ID_RE.test(a.identity)) throw new Error("the directory's answer lacks the new ID");
	return a.identity;
}

export type NewIdEvents = {
	status: (s: string) => void;
	/** Keeps the profile (encrypted) before the device registers. */
	save: (p: Profile) => Promise<void>;
};

/** A new identity with this browser as the first device of its device group; returns the saved, registered profile. */
export async function newIdentity(nickname: string, label: string, invite: string, ev: NewIdEvents): Promise<Profile> {
	if (new TextEncoder().encode(nickname).length > NICK_MAX) throw new Error("the nickname is too long");
	const prov = await provisioning();
	const kp = sodium.crypto_box_keypair();
	ev.status("asking the directory for a new ID");
	let identity: string;
	try {
		identity = await createIdentity(prov.directoryUrl, kp.publicKey, kp.privateKey, invite);
	} catch (e) {
		wipe(kp.privateKey);
		throw e;
	}
	const p: Profile = {
		identity,
		ck: kp.privateKey,
		nickname,
		dgk: random(32),
		deviceId: randomU64(),
		cspDeviceId: randomU64(),
		deviceCookie: random(16),
		serverGroup: SERVER_GROUP,
		mediatorUrl: prov.mediatorUrl,
		directoryUrl: prov.directoryUrl,
		chatPk: prov.chatPk,
		label,
		registered: false,
		contacts: [],
		groups: [],
	};
	await ev.save(p);
	ev.status("registering with the mediator");
	const keys = d2m.deriveKeys(p.dgk);
	try {
		const c = await d2m.connect(
			p.mediatorUrl,
			keys,
			p.serverGroup,
			{ deviceId: p.deviceId, expectNew: true, label, appVersion: APP_VERSION, platformDetails: platformDetails() },
			TIMEOUT_MS,
		);
		c.ws.close(1000);
	} finally {
		d2m.wipeKeys(keys);
	}
	p.registered = true;
	await ev.save(p);
	return p;
}

const $ = <E extends HTMLElement>(id: string): E => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e as E;
};

/** The link view's "new identity" form: a new store under the passphrase, a new identity, then the chat view. */
export function wireNewId(app: { create: (pass: string) => Promise<void>; save: (p: Profile) => Promise<void>; opened: (p: Profile) => Promise<void> }): void {
	const form = $<HTMLFormElement>("f-newid");
	const say = (text: string, error = false): void => {
		const e = $("newid-status");
		e.textContent = text;
		e.classList.toggle("err", error);
	};
	form.addEventListener("submit", (ev) => {
		ev.preventDefault();
		const btn = form.querySelector("button") as HTMLButtonElement;
		btn.disabled = true;
		say("");
		void (async () => {
			try {
				const pass = $<HTMLInputElement>("newid-pass");
				await app.create(pass.value);
				const p = await newIdentity($<HTMLInputElement>("newid-nick").value.trim(), $<HTMLInputElement>("newid-label").value, $<HTMLInputElement>("newid-invite").value.trim(), {
					status: (s) => say(s),
					save: app.save,
				});
				pass.value = "";
				say("created " + p.identity);
				await app.opened(p);
			} catch (e) {
				say("Creating the identity failed: " + (e instanceof Error ? e.message : String(e)), true);
			} finally {
				btn.disabled = false;
			}
		})();
	});
}
