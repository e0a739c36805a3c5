// Bundles test/unit.ts (or ENTRY, a .ts file of test/) for node and runs it:
// node run-unit.mjs VECTOR_DIR [ENTRY.ts] [ARG] (the test reads VECTOR_DIR and ARG as
// process.argv[2] and [3]).
import * as esbuild from "esbuild";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { webcrypto } from "node:crypto";

// libsodium.js's ESM build takes its randomness from globalThis.crypto, which
// node 18 (Debian 12) does not expose by default.
globalThis.crypto ??= webcrypto;

const here = dirname(fileURLToPath(import.meta.url));
// An entry other than unit.ts is named by a third argument ending in .ts; it is
// taken out of argv, so that a test's own argument stays process.argv[3].
let entry = "unit.ts";
if (process.argv[3]?.endsWith(".ts")) entry = process.argv.splice(3, 1)[0];
const dir = mkdtempSync(join(tmpdir(), "veil-web-unit-"));
try {
	await esbuild.build({
		entryPoints: [join(here, entry)],
		bundle: true,
		format: "esm",
		platform: "node",
		outfile: join(dir, "unit.mjs"),
		logLevel: "warning",
	});
	await import(pathToFileURL(join(dir, "unit.mjs")).href);
} finally {
	rmSync(dir, { recursive: true, force: true });
}
