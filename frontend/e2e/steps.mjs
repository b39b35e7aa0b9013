// What the browser scripts (e2e.mjs, standalone.mjs) share: their common options, Chromium's
// flags on this machine, and the step runner (each step prints ok/FAIL with its time; the
// first failure skips the rest and leaves a screenshot).
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";

export const COMMON_OPTIONS = {
  screenshots: { type: "string", default: "../tests/artifacts/screenshots" },
  chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
};

// Without the background-networking flags Chromium keeps calling out of this closed network.
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--no-first-run", "--disable-sync"];

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** The screenshot folder, made and announced. */
export function screenshotDir(path) {
  const shots = resolve(path);
  mkdirSync(shots, { recursive: true });
  console.log(`screenshots: ${shots}`);
  return shots;
}

export function stepper(page, shotPath, { fullPage = false } = {}) {
  const run = { failed: false };
  run.shot = async (name) => {
    const file = shotPath(name);
    await page.screenshot({ path: file, fullPage });
    return file;
  };
  run.step = async (name, fn) => {
    if (run.failed) return;
    const t0 = Date.now();
    try {
      const note = await fn();
      console.log(`ok    ${name} (${Date.now() - t0} ms)${note ? `: ${note}` : ""}`);
    } catch (error) {
      run.failed = true;
      console.log(`FAIL  ${name}: ${error.message.split("\n")[0]}`);
      console.log(`      screenshot: ${await run.shot("failure").catch(() => "none")}`);
    }
  };
  return run;
}
