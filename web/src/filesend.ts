// Sending a file from the browser: the file picker beside the message box
// and drag-and-drop onto the conversation. The file is encrypted and
// uploaded here (files.ts) with the upload's progress shown, then sent as
// a file message (reflected to the other devices first, like any message);
// to a group, one group file message per member, all naming the same blob.
import type { Chats } from "./chats";
import { FILE_MAX, prepareFile } from "./files";
import { groupKey, isGroupKey } from "./groups";
import type { Profile } from "./link";
import type { Session } from "./session";

const $ = <E extends HTMLElement>(id: string): E => {
	const e = document.getElementById(id);
	if (e === null) throw new Error("missing element " + id);
	return e as E;
};

function say(text: string, error = false): void {
	const e = $("file-status");
	e.textContent = text;
	e.classList.toggle("err", error);
}

export function initFileSend(chats: Chats, session: () => Session | undefined, profile: () => Profile | undefined): void {
	const input = $<HTMLInputElement>("file");
	const bar = $<HTMLProgressElement>("file-progress");
	let sending = false;

	const send = async (file: File): Promise<void> => {
		const peer = chats.open;
		const s = session();
		const p = profile();
		if (peer === undefined) return;
		if (sending) {
			say("one file at a time: wait until this one is sent", true);
			return;
		}
		if (s === undefined || p === undefined) {
			say("not connected: the file was not sent", true);
			return;
		}
		if (isGroupKey(peer) && (p.groups ?? []).find((g) => groupKey(g.creator, g.gid) === peer)?.left !== false) {
			say("you are not a member of this group: the file was not sent", true);
			return;
		}
		if (file.size > FILE_MAX) {
			say(file.name + " is larger than " + FILE_MAX / 1048576 + " MB: not sent", true);
			return;
		}
		sending = true;
		bar.hidden = false;
		bar.value = 0;
		bar.max = file.size + 16;
		say("encrypting and uploading " + file.name);
		try {
			const f = await prepareFile(p.directoryUrl, p.identity, p.ck, file, "", (done, total) => {
				bar.max = total || file.size + 16;
				bar.value = done;
				say("uploading " + file.name + ": " + Math.floor((100 * done) / (total || file.size + 16)) + "%");
			});
			say("sending " + file.name);
			// A group: the one blob (uploaded with persist) in a file message to each member.
			const m = isGroupKey(peer) ? await s.sendGroupFile(peer, f) : await s.sendFile(peer, f);
			await chats.add(m);
			say("sent " + file.name);
		} catch (e) {
			say("not sent: " + (e instanceof Error ? e.message : String(e)), true);
		} finally {
			sending = false;
			bar.hidden = true;
			input.value = "";
		}
	};

	input.addEventListener("change", () => {
		const f = input.files?.[0];
		if (f !== undefined) void send(f);
	});
	const zone = $("chat");
	zone.addEventListener("dragover", (e) => {
		if (chats.open === undefined || !e.dataTransfer?.types.includes("Files")) return;
		e.preventDefault();
		e.dataTransfer.dropEffect = "copy";
		zone.classList.add("drop");
	});
	zone.addEventListener("dragleave", () => zone.classList.remove("drop"));
	zone.addEventListener("drop", (e) => {
		zone.classList.remove("drop");
		const f = e.dataTransfer?.files[0];
		if (chats.open === undefined || f === undefined) return;
		e.preventDefault();
		void send(f);
	});
}
