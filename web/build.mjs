// Builds the web client into OUTDIR (default ../build/web): app-HASH.js and
// app-HASH.css (content-hashed, served as immutable) and index.html that
// names them. Usage: node build.mjs [OUTDIR]
import * as esbuild from "esbuild";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "build", "web"));
mkdirSync(out, { recursive: true });
for (const f of readdirSync(out)) rmSync(join(out, f), { recursive: true, force: true });

const r = await esbuild.build({
	entryPoints: [join(here, "src", "app.ts"), join(here, "src", "app.css")],
	bundle: true,
	format: "esm",
	target: ["chrome110", "firefox115", "safari16"],
	minify: true,
	sourcemap: false,
	entryNames: "[name]-[hash]",
	outdir: out,
	metafile: true,
	legalComments: "none",
	logLevel: "warning",
	// libsodium's Node.js paths are never taken in a browser.
	external: ["node:*"],
	platform: "browser",
});
const files = Object.keys(r.metafile.outputs).map((f) => basename(f));
const js = files.find((f) => f.endsWith(".js"));
const css = files.find((f) => f.endsWith(".css"));
if (!js || !css) throw new Error("build: missing output");
const html = readFileSync(join(here, "src", "index.html"), "utf8").replace("%JS%", js).replace("%CSS%", css);
writeFileSync(join(out, "index.html"), html);
let gz = 0;
for (const f of files.filter((x) => x.endsWith(".js"))) gz += gzipSync(readFileSync(join(out, f)), { level: 9 }).length;
console.log(`web: ${out}: ${js} ${css}, JavaScript ${gz} bytes gzip`);
