// Links the browser to an identity: node link.mjs PROFILE_DIR URL LINK PASSPHRASE [LABEL]
// Prints "code xx-xx-xx", "id ABCDEFGH", "problems N", and what the QR codes show. With GROUP=g:CREATOR:GIDHEX
// in the environment, then opens that group (made before linking) and writes
// "hello group from the browser" in it: prints "group NAME" and "group_send STATUS".
import { openPage, out, run, text, visible } from "./browser.mjs";

const [profileDir, url, link, pass, label] = process.argv.slice(2);
await run(profileDir, async (browser) => {
	const page = await openPage(browser, url + "/app/");
	await visible(page, "#v-link");
	await page.type("#link", link);
	// The pasted link's QR code, with the link beside it.
	await visible(page, "#link-qr svg");
	out("link_qr_text", await text(page, "#link-qr-text"));
	out("link_qr_label", await page.$eval("#link-qr svg", (e) => e.getAttribute("aria-label") + " " + e.getAttribute("role") + " " + e.querySelector("path").getAttribute("d").split("M").length));
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
	out("link_qr_hidden", await page.$eval("#link-qr", (e) => e.hidden));
	await page.click("#my-qr-sum");
	await visible(page, "#my-qr svg");
	out("my_qr_text", await text(page, "#my-qr-text"));
	if (process.env.GROUP) {
		const conv = `#convs button[data-peer="${process.env.GROUP}"]`;
		await page.waitForSelector(conv, { timeout: 30000 });
		out("group", await text(page, conv));
		await page.click(conv);
		await page.type("#text", "hello group from the browser");
		await page.click("#f-send button");
		await page.waitForFunction(() => /^(sent|not sent.*)$/.test(document.getElementById("send-status")?.textContent ?? ""), { timeout: 60000 });
		out("group_send", await text(page, "#send-status"));
	}
	out("problems", page.problems.length);
	for (const p of page.problems) out("problem", p);
});
