// The encrypted store in headless Chromium: node store.mjs (from the
// repository root). Bundles web/test/store_page.ts, serves it on loopback and
// prints its checks as PASS/FAIL lines (counted by tests/run).
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "./browser.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const esbuild = createRequire(join(here, "..", "package.json"))("esbuild");
const r = await esbuild.build({
	entryPoints: [join(here, "store_page.ts")],
	bundle: true,
	format: "esm",
	write: false,
	outfile: "/store.js",
	external: ["node:*"],
	platform: "browser",
	logLevel: "warning",
});
const js = r.outputFiles[0].contents;
const html = '<!doctype html><meta charset="utf-8"><title>store</title><script type="module" src="/store.js"></script>';
const srv = createServer((req, res) => {
	if (req.url === "/") res.writeHead(200, { "Content-Type": "text/html" }).end(html);
	else if (req.url === "/store.js") res.writeHead(200, { "Content-Type": "text/javascript" }).end(js);
	else res.writeHead(404).end();
});
await new Promise((res) => srv.listen(0, "127.0.0.1", res));
const tmp = mkdtempSync(join(tmpdir(), "veil-webstore-"));
let fails = 0;
await run(join(tmp, "chrome"), async (browser) => {
	const page = await browser.newPage();
	const errs = [];
	page.on("pageerror", (e) => errs.push(e.message));
	await page.goto(`http://127.0.0.1:${srv.address().port}/`, { waitUntil: "load" });
	await page.waitForFunction(() => document.title === "store ready", { timeout: 60000 });
	const res = await page.evaluate(() => window.veilStoreTest());
	for (const [name, ok, detail] of res) {
		process.stdout.write((ok ? "PASS " : "FAIL ") + name + (ok || !detail ? "" : " (" + detail + ")") + "\n");
		if (!ok) fails++;
	}
	if (errs.length > 0) {
		process.stdout.write("FAIL no_page_errors (" + errs.join(" | ") + ")\n");
		fails++;
	}
});
srv.close();
rmSync(tmp, { recursive: true, force: true });
if (fails > 0) process.exitCode = 1;
