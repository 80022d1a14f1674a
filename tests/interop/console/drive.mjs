// A Playwright (playwright-core) driver of Debian's chromium for tests/interop/test_console.py.
// It reads one JSON command a line on stdin and answers each with one JSON line on stdout,
// so that the Python test decides the order of browser steps and gateway-side actions (a
// record put, an MQTT publish). Every wait is bounded by the command's timeout.
//
//   {"do": "goto", "url": ...}                      navigate, wait for the load event
//   {"do": "fill", "selector": ..., "value": ...}   type into a field
//   {"do": "click", "selector": ...}                click (dialogs are accepted)
//   {"do": "select", "selector": ..., "value": ...} choose an option
//   {"do": "until", "js": ..., "timeout": ms}       wait until the expression is truthy; its value
//   {"do": "eval", "js": ...}                       evaluate an expression; its value
//   {"do": "screenshot", "path": ...}               a PNG of the page
//   {"do": "errors"}                                console errors and page errors so far
//   {"do": "cookies"}                               the context's cookies
//   {"do": "url"}                                   the page's address
//   {"do": "prompt", "value": ...}                 what the next prompt() dialogs answer
//   {"do": "close"}
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--disable-gpu"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const errors = [];
page.on("console", (m) => {
  if (m.type() === "error") errors.push(`console: ${m.text()} (${m.location().url || ""})`);
});
page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
let promptAnswer = null;
page.on("dialog", (d) => d.accept(d.type() === "prompt" ? (promptAnswer ?? d.defaultValue()) : undefined));

const TIMEOUT = 15000;

async function run(c) {
  const timeout = c.timeout || TIMEOUT;
  switch (c.do) {
    case "goto":
      await page.goto(c.url, { waitUntil: "load", timeout });
      return page.url();
    case "fill":
      await page.fill(c.selector, c.value, { timeout });
      return null;
    case "click":
      await page.click(c.selector, { timeout });
      return null;
    case "select":
      await page.selectOption(c.selector, c.value, { timeout });
      return null;
    case "until": {
      // Polled with page.evaluate (DevTools evaluation, which the console's CSP allows;
      // waitForFunction would eval a string inside the page, which the CSP forbids).
      const deadline = Date.now() + timeout;
      let last;
      for (;;) {
        try {
          last = await page.evaluate(c.js);
        } catch (e) {
          last = `(${e.message})`;
          if (!/context was destroyed|navigation/i.test(e.message)) throw e;
        }
        if (last && !(typeof last === "string" && last.startsWith("(") && last.endsWith(")"))) return last;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms; last value: ${JSON.stringify(last)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    case "eval":
      return page.evaluate(c.js);
    case "screenshot":
      await page.screenshot({ path: c.path, fullPage: true, timeout });
      return c.path;
    case "errors":
      return errors.splice(0);
    case "cookies":
      return context.cookies();
    case "url":
      return page.url();
    case "prompt":
      promptAnswer = c.value;
      return null;
    case "close":
      await browser.close();
      return null;
    default:
      throw new Error(`unknown command ${c.do}`);
  }
}

const lines = createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ok: true, value: "ready" }) + "\n");
for await (const line of lines) {
  let answer;
  try {
    const command = JSON.parse(line);
    answer = { ok: true, value: await run(command) };
    if (command.do === "close") {
      process.stdout.write(JSON.stringify(answer) + "\n");
      break;
    }
  } catch (e) {
    answer = { ok: false, error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
process.exit(0);
