// The browser (a new identity, the leader of its device group) with its tab
// open while its connection stalls (Chromium's offline mode, which leaves an
// open WebSocket open but silent), while the network goes away (the
// connection dropped) and comes back, and while veild is killed
// (kill -9) and started again on the same ports and data directory; B (the
// CLI, made here) writes meanwhile, the browser writes while it cannot send. Afterwards
// every message shows once in the browser, B has each of the browser's once,
// and the attempts to connect backed off. node offline.mjs (environment: T BIN
// URL PROXY_PORT HP VEILD_PID VEILD_ARGS, one argument a line). The browser
// reaches veild through a TCP forwarder on PROXY_PORT (veild's --public-url),
// which this test cuts: it drops every open connection and refuses new ones.
// Prints PASS/FAIL lines (counted by tests/run).
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { openSync } from "node:fs";
import { connect, createServer } from "node:net";
import { openPage, run, text, visible } from "./browser.mjs";

const { T, BIN, URL, PROXY_PORT, HP, VEILD_PID, VEILD_ARGS } = process.env;
const APP = "http://127.0.0.1:" + PROXY_PORT;
let fails = 0;
function check(name, ok, detail) {
	process.stdout.write((ok ? "PASS " : "FAIL ") + name + (ok || !detail ? "" : " (" + detail + ")") + "\n");
	if (!ok) fails++;
}
// Never a synchronous child: the forwarder runs in this process.
const run1 = promisify(execFile);
async function veil(...args) {
	return (await run1(BIN + "/veil", args, { env: { ...process.env, VEIL_HOME: T + "/b" }, encoding: "utf8", timeout: 60000 })).stdout;
}
async function waitFn(page, fn, arg, timeout = 60000) {
	try {
		await page.waitForFunction(fn, { timeout, polling: 200 }, arg);
		return true;
	} catch {
		return false;
	}
}
const waitText = (page, sel, re, timeout) => waitFn(page, ([s, r]) => new RegExp(r).test(document.querySelector(s)?.textContent ?? ""), [sel, re], timeout);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The forwarder: the browser's only way to veild.
let cut = false;
const open = new Set();
const fwd = createServer((c) => {
	if (cut) {
		c.destroy();
		return;
	}
	const u = connect(Number(HP), "127.0.0.1");
	open.add(c);
	open.add(u);
	const end = () => {
		c.destroy();
		u.destroy();
		open.delete(c);
		open.delete(u);
	};
	c.on("error", end).on("close", end);
	u.on("error", end).on("close", end);
	c.pipe(u);
	u.pipe(c);
});
await new Promise((res) => fwd.listen(Number(PROXY_PORT), "127.0.0.1", res));
function network(up) {
	cut = !up;
	if (!up) for (const s of open) s.destroy();
}

// B, the CLI: its server's HTTP paths are announced through the forwarder too
// (what B sends during the cut goes over the chat port, to a contact it knows).
const B = (await veil("init", "--server", URL, "--nickname", "Bob")).trim();
let veild = Number(VEILD_PID);
let child;
async function restartVeild() {
	const log = openSync(T + "/veild.log", "a");
	child = spawn(BIN + "/veild", VEILD_ARGS.split("\n").filter((x) => x !== ""), { stdio: ["ignore", log, log] });
	veild = child.pid;
	for (let i = 0; i < 100; i++) {
		try {
			await run1("curl", ["-sf", URL + "/.well-known/veil/provisioning"]);
			return true;
		} catch {
			await sleep(100);
		}
	}
	return false;
}

/** How many rows of the open conversation read exactly t (the state mark has no text). */
const count = (page, t) => page.$$eval("#msgs li", (l, x) => l.filter((e) => e.textContent === x).length, t);

try {
	await run(T + "/chrome", async (browser) => {
		const page = await openPage(browser, APP + "/app/");
		await page.evaluate(() => {
			window.veilAttempts = [];
			document.addEventListener("veil:connecting", () => window.veilAttempts.push(performance.now()));
		});
		await visible(page, "#v-link");
		await page.type("#newid-nick", "Offliner");
		await page.type("#newid-pass", "an offline passphrase");
		await page.click("#f-newid button");
		check("created", await waitText(page, "#newid-status", "^created [0-9A-Z]{8}$"), await text(page, "#newid-status"));
		const me = (await text(page, "#newid-status")).split(" ")[1] ?? "";
		check("leads", await waitText(page, "#net", "receives for all your devices"), await text(page, "#net"));
		await page.type("#new-peer", B);
		await page.click("#f-new button");
		const send = async (t) => {
			await page.type("#text", t);
			await page.click("#f-send button");
		};
		await send("before the cut");
		check("sent_online", await waitText(page, "#send-status", "^sent$"), await text(page, "#send-status"));
		await veil("send", me, "b before the cut");
		check("received_online", await waitText(page, "#msgs", "b before the cut"));

		// (a) The browser goes offline, its connection left open: Chromium's offline
		// mode stops the WebSocket's traffic without closing it (as a network that
		// goes silent does). An echo request left unanswered gives the connection up.
		await page.setOfflineMode(true);
		check("silent_stall_noticed", await waitText(page, "#net", "stopped answering", 60000), await text(page, "#net"));
		await veil("send", me, "b during the stall");
		await send("queued during the stall");
		await sleep(1000);
		await page.setOfflineMode(false);
		check("stall_over_reconnects", await waitText(page, "#net", "receives for all your devices"), await text(page, "#net"));
		check("stall_messages_arrive", await waitText(page, "#msgs", "b during the stall"), await text(page, "#msgs"));
		check("stall_queued_sent", await waitFn(page, () => document.querySelectorAll('#msgs li[data-state="queued"]').length === 0), await text(page, "#msgs"));

		// (b) The network goes away under the open tab (the browser is told, as a
		// real one is, and its connections are cut); B writes, the browser writes.
		await page.setOfflineMode(true);
		network(false);
		check("offline_noticed", await waitText(page, "#net", "reconnecting|cannot connect"), await text(page, "#net"));
		await veil("send", me, "b while offline 1");
		await veil("send", me, "b while offline 2");
		await send("queued offline 1");
		await send("queued offline 2");
		check("queued_shown", await waitFn(page, () => document.querySelectorAll('#msgs li[data-state="queued"]').length === 2), await text(page, "#msgs"));
		check("queued_said", /sent when the connection is back/.test(await text(page, "#send-status")), await text(page, "#send-status"));
		await sleep(3000);
		await page.setOfflineMode(false);
		network(true);
		check("back_online_reconnects", await waitText(page, "#net", "receives for all your devices"), await text(page, "#net"));
		check("offline_messages_arrive", await waitText(page, "#msgs", "b while offline 2"), await text(page, "#msgs"));
		check("queued_sent", await waitFn(page, () => document.querySelectorAll('#msgs li[data-state="queued"]').length === 0), await text(page, "#msgs"));

		// (c) veild killed (kill -9) and started again on the same ports and data.
		await sleep(1000);
		const t0 = await page.evaluate(() => performance.now());
		process.kill(veild, "SIGKILL");
		check("server_loss_noticed", await waitText(page, "#net", "reconnecting|cannot connect"), await text(page, "#net"));
		await send("queued while the server is down");
		check("queued_while_down", await waitFn(page, () => document.querySelectorAll('#msgs li[data-state="queued"]').length === 1), await text(page, "#msgs"));
		await sleep(12000);
		const t1 = await page.evaluate(() => performance.now());
		check("server_restarted", await restartVeild());
		await veil("send", me, "b after the restart");
		check("reconnects_after_restart", await waitText(page, "#net", "receives for all your devices", 90000), await text(page, "#net"));
		check("restart_message_arrives", await waitText(page, "#msgs", "b after the restart"), await text(page, "#msgs"));
		check("queued_sent_after_restart", await waitFn(page, () => document.querySelectorAll('#msgs li[data-state="queued"]').length === 0), await text(page, "#msgs"));

		// The attempts while the server was down: each wait at least twice the one
		// before (timers never fire early: these are lower bounds), so few of them.
		const at = (await page.evaluate(() => window.veilAttempts)).filter((x) => x > t0 && x < t1);
		const gaps = at.slice(1).map((x, i) => Math.round(x - at[i]));
		process.stdout.write("measure reconnect_gaps_ms " + gaps.join(",") + "\n");
		check("attempts_while_down", at.length >= 2 && at.length <= 6, at.length);
		check("attempts_back_off", gaps.length >= 1 && gaps.every((g, i) => g >= 0.95 * 2000 * 2 ** i), gaps.join(","));

		// Nothing lost, nothing doubled: in the browser, and at B.
		await sleep(2000);
		const inb = ["b before the cut", "b during the stall", "b while offline 1", "b while offline 2", "b after the restart"];
		const outb = ["before the cut", "queued during the stall", "queued offline 1", "queued offline 2", "queued while the server is down"];
		const shown = {};
		for (const t of [...inb, ...outb]) shown[t] = await count(page, t);
		check("browser_shows_each_once", Object.values(shown).every((n) => n === 1), JSON.stringify(shown));
		await veil("recv");
		const log = await veil("log", me);
		const atB = Object.fromEntries(outb.map((t) => [t, log.split("\n").filter((l) => l.includes(t) && !l.includes("b " + t)).length]));
		check("peer_has_each_once", Object.values(atB).every((n) => n === 1), JSON.stringify(atB) + " " + log);
		const order = await page.$$eval("#msgs li", (l) => l.map((e) => e.textContent));
		check("browser_order_kept", outb.every((t, i) => i === 0 || order.indexOf(outb[i - 1]) < order.indexOf(t)), JSON.stringify(order));
		check("no_page_errors", page.problems.filter((p) => !/ERR_INTERNET_DISCONNECTED|ERR_CONNECTION|WebSocket/.test(p)).length === 0, JSON.stringify(page.problems));
	});
} finally {
	fwd.close();
	for (const s of open) s.destroy();
	if (child !== undefined && child.exitCode === null) {
		child.kill("SIGTERM");
		await new Promise((r) => child.once("exit", r));
	}
}
if (fails > 0) process.exitCode = 1;
