// What the page learns from the server it was loaded from: the provisioning
// document (same origin, so as trusted as the page itself) and the
// directory's public-key lookup.
import { sodium } from "./crypto";

export type Provisioning = { mediatorUrl: string; directoryUrl: string; chatPk: Uint8Array };

const DOC_MAX = 65536;

export async function provisioning(): Promise<Provisioning> {
	const r = await fetch("/.well-known/veil/provisioning", { cache: "no-store" });
	if (!r.ok) throw new Error("cannot read the server's provisioning document (" + r.status + ")");
	const text = await r.text();
	if (text.length > DOC_MAX) throw new Error("the provisioning document is too large");
	const doc = JSON.parse(text.split("\n", 1)[0]) as {
		mediator?: { url?: unknown };
		directory?: { url?: unknown };
		chat?: { publicKey?: unknown };
	};
	const m = doc.mediator?.url;
	const d = doc.directory?.url;
	const k = doc.chat?.publicKey;
	if (typeof m !== "string" || !/^wss?:\/\//.test(m)) throw new Error("the server announces no mediator");
	if (typeof d !== "string" || !/^https?:\/\//.test(d)) throw new Error("the server announces no directory");
	if (typeof k !== "string") throw new Error("the server announces no chat key");
	const chatPk = sodium.from_base64(k, sodium.base64_variants.ORIGINAL);
	if (chatPk.length !== 32) throw new Error("the server's chat key is malformed");
	return { mediatorUrl: m, directoryUrl: d, chatPk };
}

const ID_RE = /^[0-9A-Z*][0-9A-Z]{7}$/;

/** The public key the directory holds for id. */
export async function lookup(directoryUrl: string, id: string): Promise<Uint8Array> {
	if (!ID_RE.test(id)) throw new Error("invalid ID");
	const r = await fetch(directoryUrl + "identity/" + id, { cache: "no-store" });
	if (r.status === 404) throw new Error("the directory does not know " + id);
	if (!r.ok) throw new Error("identity lookup failed (" + r.status + ")");
	const text = await r.text();
	if (text.length > DOC_MAX) throw new Error("the directory's answer is too large");
	const j = JSON.parse(text) as { identity?: unknown; publicKey?: unknown };
	if (j.identity !== id || typeof j.publicKey !== "string") throw new Error("the directory answered for another identity");
	const pk = sodium.from_base64(j.publicKey, sodium.base64_variants.ORIGINAL);
	if (pk.length !== 32) throw new Error("the directory's key is malformed");
	return pk;
}
