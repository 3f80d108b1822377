// Headless Chromium publishes its fake camera and microphone over WHIP for N seconds.
//
//   node publish.mjs <page_url> <whip_url> <token> <seconds>
//
// Prints one JSON object (offer/answer candidates, bytes sent, the selected candidate pair,
// the DELETE status) on stdout and exits 0 when the publish, the media and the DELETE all
// worked; otherwise prints the reason on stderr and exits 1. Uses the Debian chromium at
// /usr/bin/chromium: a test tool's own browser download cannot reach its host here.
import { withChromium } from "./chromium.mjs";

async function main() {
  const [pageUrl, whipUrl, token, secondsText] = process.argv.slice(2);
  if (!pageUrl || !whipUrl || token === undefined || !secondsText) {
    throw new Error("usage: node publish.mjs <page_url> <whip_url> <token> <seconds>");
  }
  const seconds = Number(secondsText);
  await withChromium("whip", {}, async (context) => {
    const page = context.pages()[0] ?? (await context.newPage());
    const consoleLines = [];
    page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
    await page.goto(pageUrl);
    let published;
    try {
      published = await page.evaluate(([url, tok]) => window.whipPublish(url, tok),
        [whipUrl, token]);
    } catch (error) {
      throw new Error(`${error.message}\n${consoleLines.join("\n")}`);
    }
    await page.waitForTimeout(seconds * 1000);
    const stats = await page.evaluate(() => window.whipStats());
    const deleteStatus = await page.evaluate(() => window.whipStop());
    const result = {
      location: published.location,
      offerCandidates: published.offerCandidates,
      answerCandidates: published.answerCandidates,
      offerSetup: published.offer.match(/a=setup:(\w+)/)?.[1],
      answerSetup: published.answer.match(/a=setup:(\w+)/)?.[1],
      offer: published.offer,
      bytesSent: stats.bytesSent,
      pair: stats.pair,
      deleteStatus,
    };
    process.stdout.write(JSON.stringify(result) + "\n");
    if (!(stats.bytesSent.audio > 0 && stats.bytesSent.video > 0)) {
      throw new Error(`no media sent: ${JSON.stringify(stats)}`);
    }
    if (deleteStatus < 200 || deleteStatus >= 300) {
      throw new Error(`WHIP DELETE answered ${deleteStatus}`);
    }
  });
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`publish failed: ${error.stack || error}\n`);
    process.exit(1);
  },
);
