// A new identity created in the browser (the first device of a new device
// group) talks with B's CLI: node newid.mjs (environment: T BIN URL B).
// Prints PASS/FAIL lines (counted by tests/run).
import { execFileSync } from "node:child_process";
import { openPage, run, text, visible } from "./browser.mjs";

const { T, BIN, URL, B, INVITE } = process.env;
const PASS = "a new passphrase";
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

await run(T + "/chrome", async (browser) => {
	const page = await openPage(browser, URL + "/app/");
	await visible(page, "#v-link");
	await page.type("#newid-nick", "Webby");
	await page.type("#newid-pass", PASS);
	// The server wants an invite code: refused without, created with it.
	await page.click("#f-newid button");
	check("refused_without_invite", await waitText(page, "#newid-status", "^Creating the identity failed: .*invite", 60000), await text(page, "#newid-status"));
	await page.type("#newid-invite", INVITE);
	await page.click("#f-newid button");
	check("created", await waitText(page, "#newid-status", "^created [0-9A-Z]{8}$", 60000), await text(page, "#newid-status"));
	const id = (await text(page, "#newid-status")).split(" ")[1] ?? "";
	check("chat_view", await waitText(page, "#who", "^" + id + " \\(Webby\\)$"), await text(page, "#who"));
	check("leads", await waitText(page, "#net", "receives for all your devices", 60000), await text(page, "#net"));
	const dirKey = JSON.parse(execFileSync("curl", ["-sf", URL + "/directory/identity/" + id], { encoding: "utf8" })).publicKey;
	const mine = (await text(page, "#my-qr-text")).split(",")[1] ?? "";
	check("directory_has_browser_key", Buffer.from(dirKey, "base64").toString("hex") === mine, dirKey + " " + mine);

	// The browser writes to B's CLI identity; B answers; the browser shows it.
	await page.type("#new-peer", B);
	await page.click("#f-new button");
	await page.type("#text", "hello from a new browser identity");
	await page.click("#f-send button");
	check("sent", await waitText(page, "#send-status", "^sent$", 60000), await text(page, "#send-status"));
	const got = veil("b", "recv");
	check("cli_receives", got.includes("hello from a new browser identity") && got.includes(id), got);
	veil("b", "send", id, "welcome, new browser");
	check("answer_shown", await waitText(page, "#msgs", "welcome, new browser", 60000), await text(page, "#msgs"));

	// Reload: locked; the passphrase opens the same identity with its history.
	await page.reload({ waitUntil: "load" });
	await visible(page, "#v-unlock");
	await page.type("#pass2", PASS);
	await page.click("#f-unlock button");
	check("same_identity_after_reload", await waitText(page, "#who", "^" + id + " ", 60000), await text(page, "#who"));
	const conv = `#convs button[data-peer="${B}"]`;
	let ok = true;
	try {
		await page.waitForSelector(conv, { timeout: 30000 });
		await page.click(conv);
	} catch {
		ok = false;
	}
	check("history_kept", ok && (await waitText(page, "#msgs", "hello from a new browser identity.*welcome, new browser")), await text(page, "#msgs"));
	check("reconnects", await waitText(page, "#net", "receives for all your devices", 60000), await text(page, "#net"));
	veil("b", "send", id, "still there?");
	check("receives_after_reload", await waitText(page, "#msgs", "still there\\?", 60000), await text(page, "#msgs"));
	check("no_page_errors", page.problems.length === 0, JSON.stringify(page.problems));
});
if (fails > 0) process.exitCode = 1;
