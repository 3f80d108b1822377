// Headless Chromium drives the recorder's own page at `/` the way a user would: token and
// room, Publish camera, Start, Pause, Resume, Stop, then Play the finished file.
//
//   node page.mjs <page_url> <token> <room> <screenshot.png>
//
// Prints one JSON object (the recording id, the statuses seen, the <video> duration) on stdout
// and exits 0 when the whole flow worked; otherwise prints the reason and the page's console
// on stderr and exits 1. Waits are generous: they only guard against a hang.
import { withChromium } from "./chromium.mjs";

const WAIT_MS = 90_000;
const RECORD_MS = 3_000;

async function main() {
  const [pageUrl, token, room, screenshot] = process.argv.slice(2);
  if (!pageUrl || !token || !room || !screenshot) {
    throw new Error("usage: node page.mjs <page_url> <token> <room> <screenshot.png>");
  }
  const consoleLines = [];
  await withChromium("page", {
    args: ["--autoplay-policy=no-user-gesture-required"],
    viewport: { width: 1200, height: 1000 },
  }, async (context) => {
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
      await page.goto(pageUrl);
      await page.fill("#token", token);
      await page.fill("#room", room);
      await page.dispatchEvent("#room", "change");
      await page.selectOption("#format", "webm");
      await page.selectOption("#quality", "low");

      const seen = [];
      const waitText = async (selector, text) => {
        try {
          await page.waitForFunction(([s, t]) => document.querySelector(s)?.textContent === t,
            [selector, text], { timeout: WAIT_MS });
        } catch (error) {
          const shown = await page.textContent(selector);
          const message = await page.textContent("#message");
          throw new Error(`${selector} never showed ${text} (shows ${shown}; ${message})`);
        }
        if (selector === "#status") seen.push(text);
      };

      await page.click("#publish");
      await waitText("#publish-state", "connected");
      await page.click("#start");
      await waitText("#status", "recording");
      await page.waitForTimeout(RECORD_MS);
      await page.click("#pause");
      await waitText("#status", "paused");
      await page.waitForTimeout(1_000);
      await page.click("#resume");
      await waitText("#status", "recording");
      await page.waitForTimeout(RECORD_MS);
      await page.click("#stop");
      await waitText("#status", "completed");
      const recordingId = await page.textContent("#recording-id");

      const play = `tr[data-recording-id="${recordingId}"] button.play:not([disabled])`;
      await page.waitForSelector(play, { timeout: WAIT_MS });
      await page.click(play);
      await page.waitForFunction(() => {
        const video = document.getElementById("player");
        return video.readyState >= 1 && Number.isFinite(video.duration) && video.duration > 0;
      }, null, { timeout: WAIT_MS });
      const video = await page.evaluate(() => {
        const v = document.getElementById("player");
        return { duration: v.duration, width: v.videoWidth, height: v.videoHeight,
          src: v.currentSrc, error: v.error && v.error.message };
      });
      await page.click("#unpublish");
      await waitText("#publish-state", "off");
      await page.waitForTimeout(500);  // let the player paint a frame for the screenshot
      await page.screenshot({ path: screenshot, fullPage: true });
      const message = await page.textContent("#message");
      process.stdout.write(JSON.stringify({ recordingId, seen, video, message }) + "\n");
    } catch (error) {
      throw new Error(`${error.message}\n${consoleLines.join("\n")}`);
    }
  });
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`page flow failed: ${error.stack || error}\n`);
    process.exit(1);
  },
);
