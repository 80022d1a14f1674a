// Plays an HLS session URL with hls.js in Debian's chromium (playwright-core), for
// tests/interop/test_kvs_archive.py. One shot: `node hls_play.mjs PAGE_URL SESSION_URL SECONDS`
// opens PAGE_URL (a page of the gateway, so that the session URL is same-origin), loads
// hls.js from node_modules, plays SESSION_URL muted and prints one JSON line:
// {"played": <currentTime reached>, "errors": [...]} once SECONDS of video played, or when the
// bounded wait ran out.
import { chromium } from "playwright-core";
import { createRequire } from "node:module";

const [pageUrl, sessionUrl, seconds] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const hlsPath = require.resolve("hls.js/dist/hls.min.js");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--disable-gpu"],
});
try {
  const page = await browser.newPage();
  await page.goto(pageUrl, { waitUntil: "load", timeout: 15000 });
  await page.addScriptTag({ path: hlsPath });
  const result = await page.evaluate(
    ([url, want]) =>
      new Promise((resolve) => {
        const errors = [];
        const video = document.createElement("video");
        video.muted = true;
        document.body.appendChild(video);
        if (!window.Hls || !window.Hls.isSupported()) {
          resolve({ played: 0, errors: ["hls.js is not supported in this browser"] });
          return;
        }
        const hls = new window.Hls();
        hls.on(window.Hls.Events.ERROR, (_, data) => {
          errors.push(`${data.type}: ${data.details}${data.fatal ? " (fatal)" : ""}`);
          if (data.fatal) resolve({ played: video.currentTime, errors });
        });
        hls.on(window.Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => errors.push(`play: ${e}`)));
        hls.loadSource(url);
        hls.attachMedia(video);
        const deadline = Date.now() + 45000;
        const poll = setInterval(() => {
          if (video.currentTime >= want || Date.now() > deadline) {
            clearInterval(poll);
            resolve({ played: video.currentTime, errors });
          }
        }, 200);
      }),
    [sessionUrl, Number(seconds)],
  );
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
