import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startTinyServer } from "../test/tiny-server.js";

// The landing/chat page in a real headless Chromium (Debian `chromium`, driven by playwright-core).

// Browser globals used inside page callbacks (this package is typed for Node, without the DOM lib).
interface PageNode {
  readonly textContent: string | null;
  readonly firstChild: { readonly data: string } | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): PageNode | null;
}
declare const document: {
  getElementById(id: string): PageNode | null;
  querySelector(selector: string): PageNode | null;
  querySelectorAll(selector: string): { readonly length: number };
  readonly body: { readonly dataset: Record<string, string | undefined> };
};
const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));
const haveChromium = existsSync(CHROMIUM);
// The test command (scripts/test-ci.mjs) sets HALO_REQUIRE_BROWSER=1: there a missing browser fails instead of skipping.
const browserRequired = process.env["HALO_REQUIRE_BROWSER"] === "1";
// Where the browser is required and missing, the tests run and fail on the launch, naming the fix.
const skipPage = !haveChromium && !browserRequired;
if (skipPage) console.warn(`page test skipped: ${CHROMIUM} is missing (install it with \`apt-get install -y chromium\`, as scripts/setup-system.sh does)`);

/** Headless Debian Chromium with the flags this sandboxed, offline machine needs (no background networking, no sandbox as root). */
async function launchChromium(): Promise<import("playwright-core").Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

describe("the chat page in headless Chromium", () => {
  it.skipIf(skipPage)(
    "streams a typed prompt's reply into the page while the live stats update; saves a screenshot",
    async () => {
      const tiny = await startTinyServer({ parallel: 2, statsIntervalMs: 100 });
      const browser = await launchChromium();
      try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
        const pageErrors: string[] = [];
        page.on("pageerror", (error) => pageErrors.push(error.message));
        await page.goto(`${tiny.url}/`);
        await page.waitForFunction(() => document.getElementById("status")?.textContent === "ready");
        expect(await page.textContent("#model")).toBe("tiny");
        const updatesBefore = Number(await page.evaluate(() => document.body.dataset["statsUpdates"] ?? "0"));

        await page.click("#settings summary");
        await page.fill("#temperature", "0");
        await page.fill("#max-tokens", "160");
        await page.fill("#prompt", "Tell me about ternary weights.");
        await page.click("#send");

        // Tokens arrive over time: the reply grows while the bubble is still streaming.
        const bubble = page.locator(".msg.assistant").last();
        await page.waitForFunction(() => Number(document.querySelector(".msg.assistant")?.getAttribute("data-chunks") ?? 0) >= 3);
        const early = await bubble.evaluate((el) => ({
          state: (el as unknown as PageNode).getAttribute("data-state"),
          length: (el as unknown as PageNode).firstChild?.data.length ?? 0,
        }));
        expect(early.state).toBe("streaming");
        // Live stats show the generation while it runs.
        await page.waitForFunction(
          () => document.getElementById("stat-active")?.textContent === "1 / 2" && Number(document.getElementById("stat-tps")?.textContent) > 0,
        );
        // The KV tile shows the engine's own numbers: one of its two slots held (then bytes or positions).
        await page.waitForFunction(() =>
          /^1 \/ 2 slots · [\d.,]+ \/ [\d.,]+ (MiB|positions)$/.test(document.getElementById("stat-kv-detail")?.textContent ?? ""),
        );
        await page.waitForFunction(() => document.querySelector(".msg.assistant")?.getAttribute("data-state") === "done", undefined, { timeout: 30_000 });
        const final = await bubble.evaluate((el) => ({
          text: (el as unknown as PageNode).firstChild?.data ?? "",
          meta: (el as unknown as PageNode).querySelector(".meta")?.textContent ?? "",
        }));
        expect(final.text.length).toBeGreaterThan(early.length);
        expect(final.meta).toMatch(/tokens · [\d.,]+ tok\/s/);

        // What the page shows is exactly what the engine generates for this conversation.
        let expected = "";
        for await (const event of tiny.engine.chat([{ role: "user", content: "Tell me about ternary weights." }], { maxTokens: 160, temperature: 0 })) {
          if (event.type === "request-end") expected = event.text;
        }
        expect(final.text).toBe(expected);

        await page.waitForFunction(() => Number(document.getElementById("stat-requests")?.textContent) >= 1);
        const updatesAfter = Number(await page.evaluate(() => document.body.dataset["statsUpdates"] ?? "0"));
        expect(updatesAfter).toBeGreaterThan(updatesBefore + 2);
        expect(pageErrors).toEqual([]);

        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: `${ARTIFACTS}chat-page.png`, fullPage: true });
        expect(existsSync(`${ARTIFACTS}chat-page.png`)).toBe(true);
      } finally {
        await browser.close();
        await tiny.close();
      }
    },
    60_000,
  );

  it.skipIf(skipPage)(
    "keeps chatting when the context is full: a note says the server dropped the oldest turns, which are greyed out",
    async () => {
      const tiny = await startTinyServer({ parallel: 1, statsIntervalMs: 100, contextLength: 64 });
      const browser = await launchChromium();
      try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
        const pageErrors: string[] = [];
        page.on("pageerror", (error) => pageErrors.push(error.message));
        await page.goto(`${tiny.url}/`);
        await page.waitForFunction(() => document.getElementById("status")?.textContent === "ready");
        expect(await page.textContent("#stat-context")).toBe("0 / 64");
        // Loaded without a drafter: the speculative tile says so.
        expect(await page.textContent("#stat-spec")).toBe("off");
        await page.click("#settings summary");
        await page.fill("#temperature", "0");
        await page.fill("#max-tokens", "12");
        const answers = page.locator(".msg.assistant");
        for (let turn = 1; turn <= 6; turn++) {
          await page.fill("#prompt", `Question number ${turn}, please?`);
          await page.click("#send");
          await page.waitForFunction((n) => document.querySelectorAll(".msg.assistant[data-state='done']").length === n, turn, { timeout: 30_000 });
        }
        // Every turn got an answer, none an error, and at least one note says turns were dropped.
        expect(await page.locator(".msg.error").count()).toBe(0);
        expect(await answers.count()).toBe(6);
        const notes = await page.locator(".note.context").allTextContents();
        expect(notes.length).toBeGreaterThan(0);
        expect(notes[0]).toMatch(/^Context full: the server dropped the \d+ oldest messages \(greyed out\)/);
        expect(await page.locator(".msg.dropped").count()).toBeGreaterThan(0);
        // The newest answer still has text and the context it used.
        expect(await answers.last().locator(".meta").textContent()).toMatch(/context \d+ \/ 64/);
        expect(tiny.app.stats().droppedMessages).toBeGreaterThan(0);
        expect(pageErrors).toEqual([]);
        mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: `${ARTIFACTS}chat-page-context-full.png`, fullPage: true });
      } finally {
        await browser.close();
        await tiny.close();
      }
    },
    90_000,
  );
});
