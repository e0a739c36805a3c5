// Helpers for the browser tests (tests/it/web_*.sh): Debian's Chromium,
// headless, driven with puppeteer-core (which never downloads a browser).
import puppeteer from "puppeteer-core";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export async function launch(profileDir) {
	return puppeteer.launch({
		executablePath: CHROMIUM,
		headless: true,
		userDataDir: profileDir,
		args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"],
	});
}

/** A page whose console errors, page errors and CSP violations are kept in page.problems. */
export async function openPage(browser, url) {
	const page = await browser.newPage();
	page.problems = [];
	page.on("console", (m) => {
		if (m.type() === "error") page.problems.push("console: " + m.text());
	});
	page.on("pageerror", (e) => page.problems.push("pageerror: " + e.message));
	await page.goto(url, { waitUntil: "load" });
	return page;
}

export function out(key, value) {
	process.stdout.write(key + " " + value + "\n");
}

/** Runs fn, prints "error ..." and exits 1 if it throws; closes the browser. */
export async function run(profileDir, fn) {
	const browser = await launch(profileDir);
	try {
		await fn(browser);
	} catch (e) {
		out("error", String(e && e.stack ? e.stack : e).replace(/\n/g, " | "));
		process.exitCode = 1;
	} finally {
		await browser.close();
	}
}

export async function visible(page, sel, timeout = 30000) {
	await page.waitForSelector(sel, { visible: true, timeout });
}

export async function text(page, sel) {
	return page.$eval(sel, (e) => e.textContent ?? "");
}
