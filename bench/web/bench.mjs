// The web client's budgets, measured (never asserted) in Debian's headless
// Chromium with puppeteer-core:
//
//   node bench/web/bench.mjs open [--messages 10000] [--runs 3] [--adds 20]
//     opening a conversation of N messages (seeded into the encrypted store):
//     median of the runs, from the call to the first frame after it; then
//     A messages added one by one to the open conversation, and a receipt
//     changing one message's state after each: medians of A.
//   node bench/web/bench.mjs send [--messages 20] [--bin build]
//     a message sent in the browser (a new identity, the leader of its
//     session) to its arrival on the peer's CLI device (`veil daemon`, its
//     "receive" notification on the JSON-RPC socket), on loopback through
//     veild's mediator and chat service; median of N, beside the same path
//     from a CLI device (`veil daemon` of a third identity, its "send" method)
//     measured in the same run, and their ratio.
//
// Both print "name value unit" lines; --check also verifies what is not a time
// (the list is virtualised, labelled, reachable by keyboard; scrolling keeps
// the rows that stay and a focused row's focus; every message arrives) and
// exits 1 if not: tests/it/web_bench.sh runs both that way with one run (open
// at its full 10,000 messages, send with 3). Run from the repository root
// after `make`.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createConnection, createServer as netServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { createRequire } from "node:module";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(join(root, "web", "package.json"));
const puppeteer = require("puppeteer-core");
const esbuild = require("esbuild");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

const args = process.argv.slice(2);
const cmd = args[0];
const opt = (name, def) => {
	const i = args.indexOf("--" + name);
	return i >= 0 ? args[i + 1] : def;
};
const checking = args.includes("--check");
let problems = 0;
const out = (k, v, unit = "") => process.stdout.write(k + " " + v + (unit ? " " + unit : "") + "\n");
const check = (name, ok, detail) => {
	process.stdout.write((ok ? "PASS " : "FAIL ") + name + (ok || detail === undefined ? "" : " (" + detail + ")") + "\n");
	if (!ok) problems++;
};
const median = (xs) => {
	const s = [...xs].sort((a, b) => a - b);
	return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f1 = (x) => x.toFixed(1);

const tmp = mkdtempSync(join(tmpdir(), "veil-webbench-"));
const cleanups = [];
async function launch() {
	const b = await puppeteer.launch({
		executablePath: CHROMIUM,
		headless: true,
		userDataDir: join(tmp, "chrome"),
		args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"],
	});
	cleanups.push(() => b.close());
	return b;
}

/** A free loopback port in 20000-32000 (below the ephemeral range). */
async function port() {
	for (;;) {
		const p = 20000 + Math.floor(Math.random() * 12000);
		const ok = await new Promise((res) => {
			const s = netServer();
			s.once("error", () => res(false));
			s.listen(p, "127.0.0.1", () => s.close(() => res(true)));
		});
		if (ok) return p;
	}
}

async function benchOpen() {
	const n = Number(opt("messages", "10000"));
	const runs = Number(opt("runs", "3"));
	const adds = Number(opt("adds", "20"));
	const r = await esbuild.build({
		entryPoints: [join(root, "bench", "web", "open.ts"), join(root, "web", "src", "app.css")],
		bundle: true,
		format: "esm",
		write: false,
		outdir: "/",
		entryNames: "[name]",
		external: ["node:*"],
		platform: "browser",
		logLevel: "warning",
	});
	const files = Object.fromEntries(r.outputFiles.map((f) => [f.path, f.contents]));
	const html = readFileSync(join(root, "web", "src", "index.html"), "utf8").replace("/app/%JS%", "/open.js").replace("/app/%CSS%", "/app.css");
	const srv = createServer((req, res) => {
		const body = req.url === "/" ? Buffer.from(html) : files[req.url ?? ""];
		if (body === undefined) {
			res.writeHead(404).end();
			return;
		}
		const type = req.url === "/" ? "text/html" : req.url.endsWith(".css") ? "text/css" : "text/javascript";
		res.writeHead(200, { "Content-Type": type, "Cache-Control": "no-store" }).end(body);
	});
	const p = await port();
	await new Promise((res) => srv.listen(p, "127.0.0.1", res));
	cleanups.push(() => new Promise((res) => srv.close(res)));
	const browser = await launch();
	const page = await browser.newPage();
	await page.setViewport({ width: 1280, height: 800 });
	await page.goto(`http://127.0.0.1:${p}/`, { waitUntil: "load" });
	await page.waitForFunction(() => document.title === "bench ready");
	// The chat view as the app shows it (the bench page has no app.ts to do it).
	await page.evaluate(() => {
		document.getElementById("loading").hidden = true;
		document.getElementById("v-chat").hidden = false;
	});
	const res = await page.evaluate((a, b, c) => window.veilBenchOpen(a, b, c), n, runs, adds);
	out("web_open_messages", n);
	out("web_open_runs_ms", res.ms.map(f1).join(","));
	out("web_open_median_ms", f1(median(res.ms)), "(budget 100)");
	out("web_open_full_history_ms", res.fullMs.map(f1).join(","), "(median " + f1(median(res.fullMs)) + ")");
	out("web_open_store_read_ms", res.readMs.map(f1).join(","));
	out("web_open_cached_ms", res.warmMs.map(f1).join(","));
	out("web_open_rows_in_dom", res.rows);
	if (adds > 0) {
		out("web_add_one_median_ms", f1(median(res.addMs)), "(median of " + adds + ", to a conversation of " + n + ")");
		out("web_add_one_runs_ms", res.addMs.map(f1).join(","));
		out("web_receipt_one_median_ms", f1(median(res.receiptMs)), "(median of " + adds + ")");
	}
	if (checking) {
		check("open_virtualised", res.rows > 0 && res.rows < Math.min(n, 400), res.rows);
		check("open_shows_last", res.lastText?.startsWith("message " + (n - 1) + " ") && res.lastPos === String(n) && res.setsize === String(n), JSON.stringify(res));
		check("open_labelled", res.label === "Messages, " + n + " in all", res.label);
		check("scroll_keeps_rows_and_focus", res.rowsKept === "ok", res.rowsKept);
		check("scroll_mid_keeps_rows_and_focus", res.midKept === "ok", res.midKept);
		check("open_scrolled_keeps_view_as_history_loads", res.tailKept === "ok", res.tailKept);
		check("concurrent_adds_kept_once", res.kept === "1,2,3", res.kept);
		check("open_keyboard_reaches_first", res.focusable && res.firstAfterHome === "message 0" && res.firstPos === "1", JSON.stringify(res));
	}
}

/** One line-delimited JSON-RPC connection to a `veil daemon`. */
function rpc(sock, onNote) {
	return new Promise((resolveConn, reject) => {
		const c = createConnection(sock);
		let buf = "";
		let id = 0;
		const waiting = new Map();
		c.setEncoding("utf8");
		c.on("data", (d) => {
			buf += d;
			for (let i; (i = buf.indexOf("\n")) >= 0; ) {
				const line = buf.slice(0, i);
				buf = buf.slice(i + 1);
				const m = JSON.parse(line);
				if (m.id !== undefined && waiting.has(m.id)) {
					waiting.get(m.id)(m);
					waiting.delete(m.id);
				} else if (m.method) onNote(m);
			}
		});
		c.on("error", reject);
		c.on("connect", () =>
			resolveConn({
				call: (method, params) =>
					new Promise((res) => {
						waiting.set(++id, res);
						c.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
					}),
				close: () => c.destroy(),
			}),
		);
	});
}

async function benchSend() {
	const n = Number(opt("messages", "20"));
	const bin = resolve(opt("bin", process.env.VEIL_BIN ?? join(root, "build")));
	const cp = await port();
	const hp = await port();
	const url = `http://127.0.0.1:${hp}`;
	const veild = spawn(join(bin, "veild"), ["--data", join(tmp, "srv"), "--chat-port", String(cp), "--http-port", String(hp)], { stdio: "ignore" });
	cleanups.push(
		() =>
			new Promise((res) => {
				veild.once("exit", res);
				veild.kill("SIGTERM");
			}),
	);
	for (let i = 0; ; i++) {
		try {
			if ((await fetch(url + "/.well-known/veil/provisioning")).ok) break;
		} catch {
			/* not yet */
		}
		if (i > 100) throw new Error("veild did not start");
		await new Promise((r) => setTimeout(r, 100));
	}
	const env = (who) => ({ ...process.env, VEIL_HOME: join(tmp, who), VEIL_PASSPHRASE_FILE: join(root, "tests", "it", "passphrase.txt"), VEIL_KDF: "min" });
	const veil = (who, ...a) => execFileSync(join(bin, "veil"), a, { env: env(who), encoding: "utf8", timeout: 60000 }).trim();
	const B = veil("b", "init", "--server", url, "--nickname", "Bob");
	const C = veil("c", "init", "--server", url, "--nickname", "Carol");
	const daemons = ["b", "c"].map((who) => spawn(join(bin, "veil"), ["daemon", "--quiet"], { env: env(who), stdio: "ignore" }));
	for (const d of daemons)
		cleanups.push(
			() =>
				new Promise((res) => {
					d.once("exit", res);
					d.kill("SIGTERM");
				}),
		);
	const sock = (who) => join(tmp, who, "daemon.sock");
	let bConn, cConn;
	for (let i = 0; ; i++) {
		try {
			const arrived = new Map();
			bConn = await rpc(sock("b"), (m) => {
				if (m.method === "receive" && typeof m.params?.text === "string") {
					const t = performance.now();
					const w = arrived.get(m.params.text);
					if (w) w(t);
					else arrived.set(m.params.text, t);
				}
			});
			bConn.arrival = (text) =>
				new Promise((res) => {
					const t = arrived.get(text);
					if (typeof t === "number") res(t);
					else arrived.set(text, res);
				});
			cConn = await rpc(sock("c"), () => {});
			break;
		} catch (e) {
			if (i > 100) throw e;
			await new Promise((r) => setTimeout(r, 100));
		}
	}
	cleanups.push(() => {
		bConn.close();
		cConn.close();
	});
	await bConn.call("subscribe");
	const within = (p, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(what + ": no arrival in 30 s")), 30000))]);

	// The browser: a new identity (the first and leading device of its group), a conversation with B.
	const browser = await launch();
	const page = await browser.newPage();
	await page.goto(url + "/app/", { waitUntil: "load" });
	await page.waitForSelector("#v-link", { visible: true });
	await page.type("#newid-nick", "Bench");
	await page.type("#newid-pass", "bench passphrase");
	await page.click("#f-newid button");
	await page.waitForFunction(() => /receives for all your devices/.test(document.getElementById("net")?.textContent ?? ""), { timeout: 60000 });
	await page.type("#new-peer", B);
	await page.click("#f-new button");
	const browserSend = async (text) => {
		await page.evaluate(() => {
			document.getElementById("send-status").textContent = "";
		});
		const arrived = bConn.arrival(text);
		const t0 = performance.now();
		await page.evaluate((t) => {
			document.getElementById("text").value = t;
			document.getElementById("f-send").requestSubmit();
		}, text);
		const t1 = await within(arrived, "browser to B");
		await page.waitForFunction(() => /^(sent|not sent.*)$/.test(document.getElementById("send-status")?.textContent ?? ""), { timeout: 30000 });
		return t1 - t0;
	};
	const cliSend = async (text) => {
		const arrived = bConn.arrival(text);
		const t0 = performance.now();
		const r = await cConn.call("send", { to: B, text });
		if (r.error) throw new Error("C's daemon: " + JSON.stringify(r.error));
		return (await within(arrived, "C to B")) - t0;
	};
	// One of each first: the key lookups and first connections are not what is measured.
	await browserSend("warm-up from the browser");
	await cliSend("warm-up from the CLI");
	const web = [];
	const cli = [];
	for (let i = 0; i < n; i++) {
		web.push(await browserSend("browser message " + i));
		cli.push(await cliSend("cli message " + i));
	}
	const mw = median(web);
	const mc = median(cli);
	out("web_send_messages", n);
	out("web_send_to_peer_device_median_ms", f1(mw), "(budget 50)");
	out("cli_send_to_peer_device_median_ms", f1(mc), "(reference, same run)");
	out("web_send_ratio_to_cli", (mw / mc).toFixed(2));
	if (checking) check("send_all_arrived", web.length === n && cli.length === n && C.length === 8);
}

try {
	if (cmd === "open") await benchOpen();
	else if (cmd === "send") await benchSend();
	else {
		process.stderr.write("usage: node bench/web/bench.mjs open|send [--messages N] [--runs R] [--bin DIR] [--check]\n");
		process.exitCode = 2;
	}
} catch (e) {
	process.stdout.write("FAIL bench_" + cmd + " (" + String(e?.stack ?? e).replace(/\n/g, " | ") + ")\n");
	process.exitCode = 1;
} finally {
	for (const c of cleanups.reverse()) {
		try {
			await c();
		} catch {
			/* already gone */
		}
	}
	rmSync(tmp, { recursive: true, force: true });
}
if (problems > 0) process.exitCode = 1;
