// Headless Chromium publishes its fake camera and microphone over WHIP with a data channel
// `chat`, then sends what the test asks for, one command per stdin line:
//
//   node chat.mjs <page_url> <whip_url> <token>
//   stdin:  send <text>   -> stdout {"sent": <text>, "at": <unix ms>}
//           stop          -> DELETEs the session, prints {"deleted": <status>}, exits 0
//
// Prints {"ready": true} once connected with the channel open; any failure goes to stderr
// with exit code 1. Uses the Debian chromium (see chromium.mjs).
import { createInterface } from "node:readline";
import { withChromium } from "./chromium.mjs";

const say = (value) => process.stdout.write(JSON.stringify(value) + "\n");

async function main() {
  const [pageUrl, whipUrl, token] = process.argv.slice(2);
  if (!pageUrl || !whipUrl || token === undefined) {
    throw new Error("usage: node chat.mjs <page_url> <whip_url> <token>");
  }
  await withChromium("chat", {}, async (context) => {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(pageUrl);
    await page.evaluate(([url, tok]) => window.whipPublish(url, tok, 640, 360, ["chat"]),
      [whipUrl, token]);
    say({ ready: true });
    for await (const line of createInterface({ input: process.stdin })) {
      if (line.startsWith("send ")) {
        const text = line.slice(5);
        const at = await page.evaluate(([t]) => window.whipSend("chat", t), [text]);
        say({ sent: text, at });
      } else if (line === "stop") {
        say({ deleted: await page.evaluate(() => window.whipStop()) });
        return;
      }
    }
    throw new Error("stdin closed before stop");
  });
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`chat failed: ${error.stack || error}\n`);
    process.exit(1);
  },
);
