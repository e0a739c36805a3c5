// The devices of the group (as `veil device list/rename/drop`,
// lib/client/device.c): the mediator's list with this browser marked,
// renaming this one (its label travels sealed in the next handshake) and
// dropping another.
import type { Device, Session } from "./session";

const LABEL_MAX = 256;

const $ = (id: string): HTMLElement => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e;
};

export function deviceHex(id: bigint): string {
	return id.toString(16).padStart(16, "0");
}

export type DevicesEvents = {
	session: () => Session | undefined;
	/** Stores the new label and connects again so that the mediator learns it. */
	rename: (label: string) => Promise<void>;
	label: () => string;
};

export class Devices {
	constructor(private ev: DevicesEvents) {
		$("dev-refresh").addEventListener("click", () => void this.refresh());
		$("f-rename").addEventListener("submit", (e) => void this.onRename(e));
	}

	private say(text: string, error = false): void {
		const e = $("dev-status");
		e.textContent = text;
		e.classList.toggle("err", error);
	}

	load(): void {
		($("dev-label") as HTMLInputElement).value = this.ev.label();
		$("devices").replaceChildren();
		this.say("");
	}

	async refresh(): Promise<void> {
		const s = this.ev.session();
		if (s === undefined) {
			this.say("not connected", true);
			return;
		}
		this.say("asking the mediator");
		let list: Device[];
		try {
			list = await s.devices();
		} catch (e) {
			this.say("cannot list the devices: " + (e instanceof Error ? e.message : String(e)), true);
			return;
		}
		const ul = $("devices");
		ul.replaceChildren();
		for (const d of list.sort((a, b) => Number(b.self) - Number(a.self))) {
			const li = document.createElement("li");
			li.dataset.id = deviceHex(d.id);
			if (d.self) li.setAttribute("aria-current", "true");
			const name = d.label || "(no name)";
			const t = document.createElement("span");
			t.textContent =
				name + " — " + (d.platform || "unknown platform") + " — " + (d.connected ? "connected" : "not connected") + (d.self ? " (this browser)" : "");
			li.append(t);
			if (!d.self) {
				const b = document.createElement("button");
				b.type = "button";
				b.textContent = "Drop";
				b.setAttribute("aria-label", "Drop the device " + name + " (" + deviceHex(d.id) + ")");
				b.addEventListener("click", () => void this.drop(d, name));
				li.append(" ", b);
			}
			ul.append(li);
		}
		this.say(list.length + (list.length === 1 ? " device" : " devices"));
	}

	private async drop(d: Device, name: string): Promise<void> {
		if (!window.confirm("Drop the device " + name + "? It loses access to this identity's messages until it is linked again.")) return;
		const s = this.ev.session();
		if (s === undefined) {
			this.say("not connected", true);
			return;
		}
		try {
			await s.dropDevice(d.id);
		} catch (e) {
			this.say("cannot drop the device: " + (e instanceof Error ? e.message : String(e)), true);
			return;
		}
		await this.refresh();
		this.say("dropped " + name);
	}

	private async onRename(e: Event): Promise<void> {
		e.preventDefault();
		const label = ($("dev-label") as HTMLInputElement).value.trim();
		if (label === "" || new TextEncoder().encode(label).length > LABEL_MAX) {
			this.say("a device name has 1 to " + LABEL_MAX + " bytes", true);
			return;
		}
		try {
			await this.ev.rename(label);
		} catch (x) {
			this.say("cannot rename: " + (x instanceof Error ? x.message : String(x)), true);
			return;
		}
		if ($("devices").childElementCount > 0) await this.refresh();
		this.say("renamed to " + label);
	}

	clear(): void {
		$("devices").replaceChildren();
		($("dev-label") as HTMLInputElement).value = "";
		this.say("");
	}
}
