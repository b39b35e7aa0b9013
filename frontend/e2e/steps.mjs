// The step runner of the browser scripts (e2e.mjs, standalone.mjs): each step prints ok/FAIL
// with its time; the first failure skips the rest and leaves a screenshot.

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
