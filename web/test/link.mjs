// Links the browser to an identity: node link.mjs PROFILE_DIR URL LINK PASSPHRASE [LABEL]
// Prints "code xx-xx-xx", "id ABCDEFGH" and "problems N".
import { openPage, out, run, text, visible } from "./browser.mjs";

const [profileDir, url, link, pass, label] = process.argv.slice(2);
await run(profileDir, async (browser) => {
	const page = await openPage(browser, url + "/app/");
	await visible(page, "#v-link");
	await page.type("#link", link);
	await page.$eval("#label", (e) => {
		e.value = "";
	});
	await page.type("#label", label ?? "browser");
	await page.type("#pass1", pass);
	await page.click("#f-link button");
	await page.waitForFunction(() => /^[0-9a-f]{2}-[0-9a-f]{2}-[0-9a-f]{2}$/.test(document.getElementById("rph")?.textContent ?? ""), { timeout: 60000 });
	out("code", await text(page, "#rph"));
	await page.waitForFunction(() => !document.getElementById("v-chat").hidden || /failed/i.test(document.getElementById("link-status").textContent), { timeout: 60000 });
	out("status", await text(page, "#link-status"));
	out("id", (await text(page, "#who")).split(" ")[0]);
	out("problems", page.problems.length);
	for (const p of page.problems) out("problem", p);
});
