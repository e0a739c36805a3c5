// The browser as a linked device of A, talking with B, while the CLI plays
// A's other device and B: node chat.mjs (environment: T BIN URL A B LINK).
// Prints PASS/FAIL lines (counted by tests/run) and leaves screenshots in
// $T/shots.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { openPage, run, text, visible } from "./browser.mjs";

const { T, BIN, URL, A, B, C, LINK, GID, GSEC, GSK } = process.env;
const PASS = "correct horse battery";
const shots = T + "/shots";
mkdirSync(shots, { recursive: true });
let fails = 0;
function check(name, ok, detail) {
	process.stdout.write((ok ? "PASS " : "FAIL ") + name + (ok || !detail ? "" : " (" + detail + ")") + "\n");
	if (!ok) fails++;
}
function veil(who, ...args) {
	return execFileSync(BIN + "/veil", args, { env: { ...process.env, VEIL_HOME: T + "/" + who }, encoding: "utf8", timeout: 60000 });
}
async function waitText(page, sel, re, timeout = 30000) {
	try {
		await page.waitForFunction((s, r) => new RegExp(r).test(document.querySelector(s)?.textContent ?? ""), { timeout }, sel, re);
		return true;
	} catch {
		return false;
	}
}
async function shot(page, name) {
	await page.screenshot({ path: shots + "/" + name + ".png" });
}

await run(T + "/chrome", async (browser) => {
	await browser.defaultBrowserContext().overridePermissions(URL, ["notifications"]);
	const page = await openPage(browser, URL + "/app/");
	const violations = [];
	await page.exposeFunction("veilViolation", (v) => violations.push(v));
	await page.evaluate(() => document.addEventListener("securitypolicyviolation", (e) => window.veilViolation(e.violatedDirective)));

	// Link.
	await visible(page, "#v-link");
	await shot(page, "link");
	await page.type("#link", LINK);
	await page.type("#pass1", PASS);
	await page.click("#f-link button");
	check("linked", await waitText(page, "#link-status", "^linked$", 60000), await text(page, "#link-status"));
	check("leads", await waitText(page, "#net", "receives for all your devices"), await text(page, "#net"));

	// A message from B reaches the browser (the leader) and A's CLI device (by reflection).
	veil("b", "send", A, "from bob to the browser");
	const conv = `#convs button[data-peer="${B}"]`;
	let ok = true;
	try {
		await page.waitForSelector(conv, { timeout: 30000 });
	} catch {
		ok = false;
	}
	check("conversation_listed", ok, await text(page, "#net"));
	check("unread_count", ok && (await text(page, conv + " .unread")) === "1");
	check("sender_nickname_shown", ok && (await text(page, conv)).startsWith("Bob (" + B + ")"), ok ? await text(page, conv) : "");
	await shot(page, "conversations");
	if (ok) await page.click(conv);
	check("incoming_shown", await waitText(page, "#msgs", "from bob to the browser"));
	check("unread_cleared", ok && (await page.$(conv + " .unread")) === null);

	// The browser answers: B receives it, A's CLI device sees it as sent by another device.
	await page.type("#text", "from the browser");
	const t0 = Date.now();
	await page.click("#f-send button");
	check("sent", await waitText(page, "#send-status", "^sent$"), await text(page, "#send-status"));
	// A figure for the report, not a timed assertion: click to the chat service's ack
	// (reflected and acked by the mediator first).
	process.stdout.write("measure send_click_to_server_ack_ms " + (Date.now() - t0) + "\n");
	check("outgoing_shown", (await page.$$eval("#msgs li.out", (l) => l.map((e) => e.textContent))).includes("from the browser"));
	await shot(page, "chat");
	const bRecv = veil("b", "recv");
	check("peer_receives", bRecv.includes("from the browser"), bRecv);
	const bLog = veil("b", "log", A);
	// Received on arrival, then read: the conversation was open in the browser (web_files.sh checks the order).
	check("browser_sent_received_receipt", /receipt: received/.test(bLog) && /from bob to the browser \[read\]/.test(bLog), bLog);
	const aRecv = veil("a", "recv");
	check("cli_device_sees_incoming", aRecv.includes("from bob to the browser"), aRecv);
	check("cli_device_sees_outgoing", /from the browser.*another device|another device.*from the browser/.test(aRecv), aRecv);

	// A message sent from the CLI device shows in the browser as outgoing (reflected).
	veil("a", "send", B, "from the cli device");
	check("reflected_outgoing_shown", await waitText(page, "#msgs", "from the cli device"));

	// Notifications (permission granted above, so the button is not offered): one for a
	// message that arrives while the tab is hidden, naming the sender but not the text;
	// none while the tab is shown. Notification is wrapped to count what the page creates.
	check("notify_button_hidden_when_granted", await page.$eval("#notify-on", (e) => e.hidden));
	await page.evaluate(() => {
		window.veilNotes = [];
		const N = window.Notification;
		window.Notification = class extends N {
			constructor(title, o) {
				super(title, o);
				window.veilNotes.push({ title, body: o?.body ?? "" });
			}
		};
	});
	const other = await browser.newPage();
	await other.bringToFront();
	check("tab_hidden", await page.evaluate(() => document.hidden));
	veil("b", "send", A, "while hidden");
	let notes = [];
	try {
		// Polled on a timer: a hidden tab runs no animation frames (the default polling).
		await page.waitForFunction(() => window.veilNotes.length > 0, { timeout: 30000, polling: 100 });
		notes = await page.evaluate(() => window.veilNotes);
	} catch {
		notes = [];
	}
	check("notification_shown", notes.length === 1 && notes[0].title.includes("Bob (" + B + ")"), JSON.stringify(notes));
	check("notification_without_text", notes.length > 0 && !JSON.stringify(notes).includes("while hidden"));
	await page.bringToFront();
	await other.close();
	check("read_when_shown_again", await page.waitForFunction((s) => document.querySelector(s) === null, { timeout: 10000 }, conv + " .unread").then(() => true, () => false));
	veil("b", "send", A, "while shown");
	check("shown_message_arrives", await waitText(page, "#msgs", "while shown"));
	check("no_notification_while_shown", (await page.evaluate(() => window.veilNotes.length)) === 1);

	// A new conversation with an ID A never wrote to: its key comes from the directory.
	await page.type("#new-peer", C.toLowerCase());
	await page.click("#f-new button");
	check("new_conversation_opened", await waitText(page, "#h-chat", C));
	await page.type("#text", "hello carol");
	await page.click("#f-send button");
	check("sent_to_new_contact", await waitText(page, "#send-status", "^sent$"), await text(page, "#send-status"));
	const cRecv = veil("c", "recv");
	check("new_contact_receives", cRecv.includes("hello carol"), cRecv);

	// Contacts: verifying B by its fingerprint in the browser raises B on the CLI
	// device too (ContactSync in a transaction); a wrong fingerprint is refused.
	const cB = `#contacts button[data-id="${B}"]`;
	ok = (await page.$(cB)) !== null;
	check("contact_listed", ok);
	const showB = veil("a", "contact", "show", B);
	const fpB = (/fingerprint: *(.*)/.exec(showB) ?? ["", ""])[1].trim();
	if (ok) await page.click(cB);
	check("contact_fingerprint_as_cli", (await text(page, "#c-fp")) === fpB, (await text(page, "#c-fp")) + " vs " + fpB);
	check("contact_not_verified_yet", !(await text(page, cB + " .level")).startsWith("green") && !/level: *green/.test(showB), showB);
	await page.type("#fp-in", "0123 4567 89ab cdef 0123 4567 89ab cdef");
	await page.click("#f-verify button");
	check("wrong_fingerprint_refused", await waitText(page, "#verify-status", "NOT verified"), await text(page, "#verify-status"));
	check("wrong_fingerprint_level_kept", !(await text(page, cB + " .level")).startsWith("green"));
	await page.$eval("#fp-in", (e) => {
		e.value = "";
	});
	await page.type("#fp-in", fpB.toUpperCase());
	await page.click("#f-verify button");
	check("contact_verified", await waitText(page, "#verify-status", "verified \\(green\\), on your other devices"), await text(page, "#verify-status"));
	check("contact_level_green", (await text(page, cB + " .level")).startsWith("green"));
	await shot(page, "contact");
	veil("a", "recv");
	const showB2 = veil("a", "contact", "show", B);
	check("cli_device_sees_verified", /level: *green \(device\)/.test(showB2), showB2);
	// The other way: the CLI device verifies C from C's QR text; the browser shows C green.
	const qrC = veil("c", "qr", "--text").trim();
	veil("a", "contact", "verify", C, "--scan", qrC);
	const cC = `#contacts button[data-id="${C}"] .level`;
	check("verified_on_cli_shown", await waitText(page, cC, "^green"), await text(page, cC));

	// Devices: the group's two devices, this one marked; renaming reaches the mediator.
	await page.click("#dev-refresh");
	check("devices_listed", await waitText(page, "#dev-status", "^2 devices$"), await text(page, "#dev-status"));
	const self = await page.$$eval("#devices li[aria-current]", (l) => l.map((e) => e.textContent));
	check("this_device_marked", self.length === 1 && self[0].startsWith("browser — ") && self[0].includes("(this browser)"), JSON.stringify(self));
	const cliId = await page.$eval("#devices li:not([aria-current])", (e) => e.dataset.id);
	let aList = veil("a", "device", "list");
	check("cli_device_listed", typeof cliId === "string" && aList.includes(cliId), cliId + " " + aList);
	await page.$eval("#dev-label", (e) => {
		e.value = "";
	});
	await page.type("#dev-label", "web renamed");
	await page.click("#f-rename button");
	check("renamed", await waitText(page, "#dev-status", "^renamed to web renamed$"), await text(page, "#dev-status"));
	check("leads_after_rename", await waitText(page, "#net", "receives for all your devices"), await text(page, "#net"));
	aList = veil("a", "device", "list");
	check("cli_sees_new_label", /web renamed/.test(aList), aList);
	check("list_shows_new_label", (await text(page, "#devices li[aria-current]")).startsWith("web renamed — "), await text(page, "#devices"));
	await shot(page, "devices");
	await page.click(conv);

	// Search: in the open conversation (B's), then in all; a result opens its conversation.
	await page.type("#q", "FROM BOB");
	await page.click("#f-search button");
	// On failure the detail names what was found (a doubled message would show twice).
	check("search_in_conversation", await waitText(page, "#search-status", "^1 message found in this conversation$"), (await text(page, "#search-status")) + ": " + (await text(page, "#results")));
	check("search_result_text", (await text(page, "#results")).includes("from bob to the browser"), await text(page, "#results"));
	await page.$eval("#q", (e) => {
		e.value = "";
	});
	await page.type("#q", "carol");
	await page.click("#f-search button");
	check("search_other_conversation_not_in_this", await waitText(page, "#search-status", "^no messages found in this conversation$"), await text(page, "#search-status"));
	await page.click("#q-all");
	await page.click("#f-search button");
	check("search_in_all", await waitText(page, "#search-status", "^1 message found in all conversations$"), await text(page, "#search-status"));
	await page.click("#results button");
	check("search_result_opens", (await waitText(page, "#h-chat", C)) && (await text(page, "#msgs li.hit")) === "hello carol", await text(page, "#h-chat"));
	await shot(page, "search");
	await page.click(conv);

	// Groups: B makes a group of A and C and writes to it; the browser shows it and
	// answers both; A's CLI device gets all of it by reflection, and what it says in the
	// group shows in the browser.
	const gh = veil("b", "group", "create", "Hikers", A, C).trim();
	const gconv2 = `#convs button[data-peer="g:${B}:${gh}"]`;
	ok = true;
	try {
		await page.waitForSelector(gconv2, { timeout: 30000 });
	} catch {
		ok = false;
	}
	check("group_listed", ok && (await waitText(page, gconv2, "^Hikers \\(group\\)")), ok ? await text(page, gconv2) : gh);
	veil("b", "group", "send", gh, "hello hikers");
	if (ok) await page.click(gconv2);
	check("group_text_shown", await waitText(page, "#msgs", "Bob \\(" + B + "\\): hello hikers"), await text(page, "#msgs"));
	await page.type("#text", "hi from the browser");
	await page.click("#f-send button");
	check("group_sent", await waitText(page, "#send-status", "^sent$"), await text(page, "#send-status"));
	const bG = veil("b", "recv");
	check("group_member_receives", bG.includes("hi from the browser"), bG);
	const cG = veil("c", "recv");
	check("group_other_member_receives", cG.includes("hi from the browser") && cG.includes("hello hikers"), cG);
	const aG = veil("a", "recv");
	check("cli_device_sees_group", aG.includes("hello hikers") && aG.includes("hi from the browser"), aG);
	veil("a", "group", "send", gh, "from the cli into the group");
	check("group_reflected_outgoing_shown", await waitText(page, "#msgs", "from the cli into the group"), await text(page, "#msgs"));
	await shot(page, "group");

	// A message delivered twice with the same nonce (a replay) shows once.
	execFileSync("python3", [new globalThis.URL("gw_replay.py", import.meta.url).pathname, URL + "/gateway", GID, GSEC, GSK, A, "said once", "2"], {
		encoding: "utf8",
		timeout: 60000,
	});
	const gconv = `#convs button[data-peer="${GID}"]`;
	ok = true;
	try {
		await page.waitForSelector(gconv, { timeout: 30000 });
		await page.click(gconv);
	} catch {
		ok = false;
	}
	check("gateway_message_shown", ok && (await waitText(page, "#msgs", "said once")));
	// The second copy comes right behind the first; a later message shows both were handled.
	veil("b", "send", A, "after the replay");
	await page.click(conv);
	check("later_message_shown", await waitText(page, "#msgs", "after the replay"));
	if (ok) await page.click(gconv);
	await waitText(page, "#msgs", "said once");
	check("replay_shown_once", (await page.$$eval("#msgs li", (l) => l.filter((e) => e.textContent === "said once").length)) === 1);
	await page.click(conv);

	// The store holds ciphertext only.
	const plain = await page.evaluate(async (needles) => {
		const db = await new Promise((res, rej) => {
			const r = indexedDB.open("veil");
			r.onsuccess = () => res(r.result);
			r.onerror = () => rej(r.error);
		});
		const all = await new Promise((res) => {
			const r = db.transaction("kv").objectStore("kv").getAll();
			r.onsuccess = () => res(r.result);
		});
		const enc = new TextEncoder();
		const hits = [];
		for (const v of all) {
			const bytes = v instanceof Uint8Array ? v : enc.encode(JSON.stringify(v));
			const s = Array.from(bytes, (c) => String.fromCharCode(c)).join("");
			for (const n of needles) if (s.includes(n)) hits.push(n);
		}
		return { n: all.length, hits };
	}, ["from the browser", "from bob", A, B]);
	check("store_ciphertext_only", plain.n >= 3 && plain.hits.length === 0, JSON.stringify(plain));

	// An injected inline script does not run; the page reports the violation.
	await page.evaluate(() => {
		const s = document.createElement("script");
		s.textContent = "window.veilInjected = 1;";
		document.body.append(s);
	});
	await new Promise((r) => setTimeout(r, 300));
	check("csp_blocks_inline_script", (await page.evaluate(() => window.veilInjected)) === undefined);
	check("csp_violation_reported", violations.some((v) => v.startsWith("script-src")), JSON.stringify(violations));

	// Reload: the profile stays, locked; a wrong passphrase is refused; history is kept.
	const before = page.problems.filter((p) => !p.includes("Content Security Policy")).length;
	await page.reload({ waitUntil: "load" });
	await visible(page, "#v-unlock");
	check("reload_locked", !(await page.$eval("#v-unlock", (e) => e.hidden)) && (await page.$eval("#v-chat", (e) => e.hidden)));
	await page.type("#pass2", "wrong passphrase");
	await page.click("#f-unlock button");
	check("wrong_passphrase_refused", await waitText(page, "#unlock-status", "Wrong passphrase", 60000));
	await page.$eval("#pass2", (e) => {
		e.value = "";
	});
	await page.type("#pass2", PASS);
	await page.click("#f-unlock button");
	ok = true;
	try {
		await page.waitForSelector(conv, { timeout: 60000 });
		await page.click(conv);
	} catch {
		ok = false;
	}
	check("history_kept", ok && (await waitText(page, "#msgs", "from bob to the browser.*from the browser|from the browser.*from bob")));
	check("reconnects_after_unlock", await waitText(page, "#net", "receives for all|connected|up to date"), await text(page, "#net"));
	await shot(page, "unlocked");

	// Dropping the CLI device (after a confirmation): one device is left, and the CLI device is shut out.
	page.on("dialog", (d) => void d.accept());
	await page.click("#dev-refresh");
	await waitText(page, "#dev-status", "^2 devices$");
	await page.click("#devices li:not([aria-current]) button");
	check("device_dropped", await waitText(page, "#dev-status", "^dropped "), await text(page, "#dev-status"));
	check("one_device_left", (await page.$$("#devices li")).length === 1 && (await page.$$("#devices li[aria-current]")).length === 1);
	let refused = "";
	try {
		veil("a", "recv");
	} catch (e) {
		refused = String(e.stderr ?? e);
	}
	check("dropped_cli_device_refused", /does not know this device/.test(refused), refused);

	// Locking forgets the key: the chat view empties and asks for the passphrase.
	await page.click("#lock");
	check("lock", !(await page.$eval("#v-unlock", (e) => e.hidden)) && (await page.$$("#msgs li")).length === 0);
	check("no_page_errors", before === 0 && page.problems.filter((p) => !p.includes("Content Security Policy")).length === 0, JSON.stringify(page.problems));
});
if (fails > 0) process.exitCode = 1;
