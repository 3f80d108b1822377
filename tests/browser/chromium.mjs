// Debian's headless Chromium for the tests, launched one way for every script: root-safe
// flags, fake camera and microphone, loopback WebRTC. A test tool's own browser download
// cannot reach its host here, so it is /usr/bin/chromium (or $CHROMIUM_PATH).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--allow-loopback-in-peer-connection",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
];

// Runs `use(context)` in a fresh browser profile and removes it afterwards. playwright-core
// refuses a --user-data-dir argument: a persistent context on a fresh directory is the same.
export async function withChromium(name, { args = [], ...options }, use) {
  const userDataDir = await mkdtemp(join(tmpdir(), `${name}-chromium-`));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: [...ARGS, ...args], ...options,
  });
  try {
    return await use(context);
  } finally {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
}
