// Desktop notifications (the Notification API) for messages that arrive
// while the tab is hidden. Permission is asked only when the user presses
// the button. A notification names the sender but never shows the text:
// the system may keep notifications where the encrypted store cannot
// protect them.
const $ = (id: string): HTMLElement => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e;
};

function supported(): boolean {
	return typeof window.Notification === "function";
}

export class Notifier {
	private open = new Map<string, Notification>();

	constructor(private onOpen: (peer: string) => void) {
		$("notify-on").addEventListener("click", () => void this.ask());
		document.addEventListener("visibilitychange", () => {
			if (!document.hidden) this.closeAll();
		});
		this.update();
	}

	private update(): void {
		const b = $("notify-on");
		b.hidden = !supported() || Notification.permission !== "default";
		const st = $("notify-status");
		st.textContent = supported() && Notification.permission === "denied" ? "desktop notifications are blocked in this browser's settings" : "";
	}

	private async ask(): Promise<void> {
		if (!supported()) return;
		try {
			await Notification.requestPermission();
		} finally {
			this.update();
		}
	}

	/** A message from name (peer's conversation) arrived: tell the user if the tab is hidden. */
	notify(peer: string, name: string): void {
		if (!document.hidden || !supported() || Notification.permission !== "granted") return;
		this.open.get(peer)?.close();
		const n = new Notification("Veil: a message from " + name, { body: "Open Veil to read it.", tag: "veil:" + peer });
		n.onclick = () => {
			window.focus();
			n.close();
			this.onOpen(peer);
		};
		n.onclose = () => {
			if (this.open.get(peer) === n) this.open.delete(peer);
		};
		this.open.set(peer, n);
	}

	closeAll(): void {
		for (const n of this.open.values()) n.close();
		this.open.clear();
	}
}
