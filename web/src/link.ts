// Linking this browser to an existing identity as a new device (the
// joiner): the same steps as `veil init --join LINK` (lib/client/link.c).
import { randomU64, wipe } from "./crypto";
import * as d2m from "./d2m";
import { type Essential, parseEdToNd, registered } from "./join";
import { parseLink, Rendezvous } from "./rendezvous";
import { provisioning } from "./server";
import type { Group } from "./groups";

export type Contact = { identity: string; publicKey: Uint8Array; nickname: string; firstName: string; level: number };

/** What the store keeps about this device and its identity. */
export type Profile = {
	identity: string;
	ck: Uint8Array;
	nickname: string;
	dgk: Uint8Array;
	deviceId: bigint;
	cspDeviceId: bigint;
	deviceCookie: Uint8Array;
	serverGroup: string;
	mediatorUrl: string;
	directoryUrl: string;
	chatPk: Uint8Array;
	label: string;
	registered: boolean;
	contacts: Contact[];
	/** Groups this identity is in (added after the first version: may be missing). */
	groups?: Group[];
};

const RDV_CLOSE_NORMAL = 1000;
const RDV_CLOSE_PROTOCOL = 4000;
const TIMEOUT_MS = 60000;
export const APP_VERSION = "0.1";

export type LinkEvents = {
	code: (rph: string) => void;
	status: (s: string) => void;
	/** Keeps the profile (encrypted) before the device registers. */
	save: (p: Profile) => Promise<void>;
};

export function platformDetails(): string {
	return "Veil web (" + (navigator.platform || "browser") + ")";
}

/** Joins the identity the link offers; returns the saved and registered profile. */
export async function join(link: string, label: string, ev: LinkEvents): Promise<Profile> {
	const init = parseLink(link);
	const prov = await provisioning();
	const r = new Rendezvous(init);
	let close = RDV_CLOSE_PROTOCOL;
	try {
		ev.status("meeting the other device");
		await r.handshake(TIMEOUT_MS);
		ev.code(r.shortRph());
		ev.status("waiting for the other device to confirm");
		await r.awaitNominate(TIMEOUT_MS);
		let e: Essential | undefined;
		while (e === undefined) {
			const m = parseEdToNd(await r.recv(TIMEOUT_MS));
			if (m.kind === "essential") e = m.essential;
		}
		const p: Profile = {
			identity: e.identity,
			ck: e.ck,
			nickname: e.nickname,
			dgk: e.dgk,
			deviceId: randomU64(),
			cspDeviceId: randomU64(),
			deviceCookie: e.deviceCookie,
			serverGroup: e.serverGroup,
			mediatorUrl: prov.mediatorUrl,
			directoryUrl: prov.directoryUrl,
			chatPk: prov.chatPk,
			label,
			registered: false,
			contacts: e.contacts.map((c) => ({
				identity: c.identity,
				publicKey: c.publicKey,
				nickname: c.nickname,
				firstName: c.firstName,
				level: c.verificationLevel,
			})),
			groups: e.groups,
		};
		await ev.save(p);
		ev.status("registering with the mediator");
		const keys = d2m.deriveKeys(p.dgk);
		try {
			const c = await d2m.connect(
				p.mediatorUrl,
				keys,
				p.serverGroup,
				{
					deviceId: p.deviceId,
					expectNew: true,
					label,
					appVersion: APP_VERSION,
					platformDetails: platformDetails(),
				},
				TIMEOUT_MS,
			);
			c.ws.close(1000);
		} finally {
			d2m.wipeKeys(keys);
		}
		p.registered = true;
		await ev.save(p);
		r.send(registered());
		close = RDV_CLOSE_NORMAL;
		return p;
	} finally {
		wipe(init.ak);
		r.close(close);
	}
}
