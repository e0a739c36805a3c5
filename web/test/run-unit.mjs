// Bundles test/unit.ts (or ENTRY) for node and runs it: node run-unit.mjs VECTOR_DIR [ENTRY]
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
const dir = mkdtempSync(join(tmpdir(), "veil-web-unit-"));
try {
	await esbuild.build({
		entryPoints: [join(here, process.argv[3] ?? "unit.ts")],
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
