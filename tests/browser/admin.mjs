// Headless Chromium drives the admin page at `/admin` as an operator would.
//
//   node admin.mjs <page_url> <plan.json> <screenshot_dir>
//
// plan.json: {"userToken", "adminToken", "nodes": [id, id], "listed": [recording ids],
// "live": id, "failedUpload": id, "deadLetter": id, "stoppedNode": id}.
// Steps: a user token sees nothing but the prompt; the admin token shows both nodes and every
// listed recording with a picture; Stop on the live recording, Retry upload on the failed
// one, the live one's timeline, Replay of the dead letter. Then it prints
// {"step": "stop-node"} and waits for a line on stdin (the test stops that node), and waits
// for the page to show it late. Prints one JSON result on stdout and exits 0, or the reason
// and the page's console on stderr and exits 1.
import { createInterface } from "node:readline";
import { join } from "node:path";
import { readFile } from "node:fs/promises";
import { withChromium } from "./chromium.mjs";

const WAIT_MS = 60_000;

function lineFromStdin() {
  const lines = createInterface({ input: process.stdin });
  return new Promise((resolve) => lines.once("line", (line) => { lines.close(); resolve(line); }));
}

async function main() {
  const [pageUrl, planPath, shots] = process.argv.slice(2);
  if (!pageUrl || !planPath || !shots) {
    throw new Error("usage: node admin.mjs <page_url> <plan.json> <screenshot_dir>");
  }
  const plan = JSON.parse(await readFile(planPath, "utf8"));
  const consoleLines = [];
  await withChromium("admin", { viewport: { width: 1400, height: 1300 } }, async (context) => {
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
      const result = { screenshots: [] };
      const shot = async (name) => {
        const path = join(shots, name);
        await page.screenshot({ path, fullPage: true });
        result.screenshots.push(path);
      };
      const row = (id) => `#recordings tr[data-recording-id="${id}"]`;
      const waitFor = (fn, arg, what) => page.waitForFunction(fn, arg, { timeout: WAIT_MS })
        .catch(async (error) => {
          const message = await page.textContent("#message");
          throw new Error(`${what}: ${error.message} (page says: ${message})`);
        });

      await page.goto(pageUrl);
      // a user token: the prompt says no, and nothing else is shown or rendered
      await page.fill("#token", plan.userToken);
      await page.click("#open");
      await waitFor(() => document.getElementById("message").textContent !== "", null,
        "user token refused");
      result.userView = await page.evaluate(() => ({
        dashboardHidden: document.getElementById("dashboard").hidden,
        dashboardVisible: document.getElementById("dashboard").checkVisibility(),
        rows: document.querySelectorAll("#dashboard tbody tr").length,
        visibleText: document.body.innerText,
        message: document.getElementById("message").textContent,
      }));
      await shot("admin-user-token.png");

      await page.fill("#token", plan.adminToken);
      await page.click("#open");
      await waitFor((ids) => ids.every((id) =>
        document.querySelector(`#nodes tr[data-node-id="${id}"][data-health="ok"]`)),
      plan.nodes, "both nodes ok");
      await waitFor((ids) => ids.every((id) =>
        document.querySelector(`#recordings tr[data-recording-id="${id}"]`)),
      plan.listed, "every recording listed");
      await waitFor(() => [...document.querySelectorAll("img.thumb")]
        .some((img) => img.src.startsWith("blob:") && img.naturalWidth > 0), null, "a picture");
      result.pictures = await page.$$eval("img.thumb", (imgs) =>
        imgs.filter((img) => img.src.startsWith("blob:") && img.naturalWidth > 0).length);

      await page.click(`${row(plan.live)} button.stop`);
      await waitFor((sel) => ["processing", "completed"].includes(
        document.querySelector(`${sel} td.status`)?.textContent), row(plan.live), "stopped");
      await page.click(`${row(plan.failedUpload)} button.retry`);
      await waitFor((sel) => document.querySelector(`${sel} td.status`)?.textContent ===
        "processing", row(plan.failedUpload), "upload retried");
      await page.click(`${row(plan.live)} button.timeline`);
      await waitFor(() => document.querySelector('#timeline li[data-event="recording_stopped"]'),
        null, "timeline");
      result.timeline = await page.$$eval("#timeline li", (items) =>
        items.map((li) => li.dataset.event));

      await waitFor((id) => document.querySelector(`#dead tr[data-letter-id="${id}"]`),
        plan.deadLetter, "dead letter shown");
      await page.click("#replay");
      await waitFor(() => document.querySelectorAll("#dead tr").length === 0, null, "replayed");

      process.stdout.write(JSON.stringify({ step: "stop-node" }) + "\n");
      await lineFromStdin();
      await waitFor((id) => document.querySelector(`#nodes tr.late[data-node-id="${id}"]`),
        plan.stoppedNode, "stopped node late");
      result.stoppedHealth = await page.textContent(
        `#nodes tr[data-node-id="${plan.stoppedNode}"] td.health`);
      await shot("admin.png");
      result.message = await page.textContent("#message");
      process.stdout.write(JSON.stringify(result) + "\n");
    } catch (error) {
      throw new Error(`${error.message}\n${consoleLines.join("\n")}`);
    }
  });
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`admin page flow failed: ${error.stack || error}\n`);
    process.exit(1);
  },
);
