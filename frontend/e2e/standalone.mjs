// The standalone views (exformer.client.views.document / notebook) in a real Chromium, offline:
// every request but the page's own file: URL is aborted, the context is offline, and any
// request at all is a failure. tests/test_views.py writes the pages and runs this.
//
//   node e2e/standalone.mjs --attention a.html [--attention-json a-json.html] \
//     [--gradients g.html] [--notebook nb.html] --screenshots ../tests/artifacts/screenshots
//
// Every step prints "ok" or "FAIL"; any failure ends with exit code 1 (and a screenshot).

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, COMMON_OPTIONS, check, screenshotDir, stepper } from "./steps.mjs";

const { values: args } = parseArgs({
  options: {
    attention: { type: "string" }, // document("attention", …): float16-base64 embedded
    "attention-json": { type: "string" }, // the same response embedded as "json" nested lists
    gradients: { type: "string" }, // document("gradients", …)
    notebook: { type: "string" }, // a page of notebook(…) outputs, several iframes
    ...COMMON_OPTIONS,
  },
});
const shots = screenshotDir(args.screenshots);

const browser = await chromium.launch({ executablePath: args.chromium, args: CHROMIUM_ARGS });
const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, offline: true });
const allowed = new Set(); // the file: URLs of the pages themselves
const requests = []; // anything else asked: there must be none
await context.route("**/*", (route) => {
  const url = route.request().url();
  if (allowed.has(url)) return route.continue();
  requests.push(url);
  return route.abort("blockedbyclient");
});
context.on("request", (r) => {
  const url = r.url();
  if (!allowed.has(url) && !url.startsWith("data:") && !url.startsWith("about:") && !requests.includes(url)) requests.push(url);
});
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const problems = []; // uncaught errors and console errors (a CSP violation is one)
page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console: ${m.text()}`);
});

const steps = stepper(page, (name) => `${shots}/standalone-${name}.png`, { fullPage: true });
const { shot, step } = steps;
async function open(file) {
  const url = pathToFileURL(resolve(file)).href;
  allowed.add(url);
  await page.goto(url);
  await page.waitForSelector('.exformer-standalone[data-ready="true"], [data-error]', { state: "attached" });
  const error = await page.$eval("[data-error]", (e) => e.dataset.error).catch(() => null); // no wait
  check(!error, `the page shows an error: ${error}`);
}

const edges = (scope = page) => scope.locator("svg.attention-svg path.edge").count();
const curveSignature = () =>
  page.$$eval("svg.attention-svg path.edge", (ps) => ps.map((p) => `${p.getAttribute("d")}@${p.getAttribute("stroke-opacity")}`).join("|"));
const embedded = () => page.evaluate(() => JSON.parse(document.getElementById("exformer-data").textContent));

/** The model's name (and a token) from the data are text on the page: no markup of theirs ran. */
async function shownAsText() {
  const { kind, response } = await embedded();
  const name = response.model.name;
  const header = (await page.textContent(".top .server")).trim();
  check(header.endsWith(` · ${name}`), `header ${JSON.stringify(header)} ≠ model ${JSON.stringify(name)}`);
  const scripts = await page.locator("script").count();
  check(scripts === 2, `${scripts} script elements (the data and the bundle expected)`);
  check((await page.locator("b").count()) === 0, "markup from the data became elements");
  check((await page.title()) === `exformer · ${kind} · ${name}`, `title ${JSON.stringify(await page.title())}`);
  if (kind === "attention") {
    const label = await page.textContent('svg.attention-svg g.tokens.left g.token[data-index="1"] title');
    check(label.includes(response.tokens[1].text), `token 1 reads ${JSON.stringify(label)}`);
  }
  return JSON.stringify(name);
}

// --- attention ---------------------------------------------------------------------------------

let float16Edges = null;
if (args.attention) {
  let payload;
  await step("attention: the page draws curves from the embedded float16-base64 data", async () => {
    await open(args.attention);
    payload = await embedded();
    check(payload.kind === "attention" && payload.response.attention.encoding === "float16-base64", `embedded ${payload.kind}, ${payload.response.attention.encoding}`);
    float16Edges = await edges();
    check(float16Edges > 0, "no curves drawn");
    const tokens = await page.locator("svg.attention-svg g.tokens.left g.token").count();
    check(tokens === payload.response.tokens.length, `${tokens} tokens drawn of ${payload.response.tokens.length}`);
    const toggles = await page.locator("button.head").count();
    check(toggles === payload.response.attention.shape[1], `${toggles} head toggles for ${payload.response.attention.shape[1]} heads`);
    await shot("attention");
    return `${float16Edges} curves, ${tokens} tokens, ${toggles} head toggles`;
  });

  await step("attention: what the data says is shown as text, not markup", shownAsText);

  await step("attention: a head toggle changes what is drawn", async () => {
    const before = await curveSignature();
    await page.click('button.head[data-head="0"]');
    check((await page.getAttribute('button.head[data-head="0"]', "aria-pressed")) === "false", "head 0 still pressed");
    const after = await curveSignature();
    check(after !== before, "same curves with head 0 off");
    await page.click(".heads-none");
    check((await edges()) === 0, "curves remain with no head selected");
    await page.click('button.head[data-head="1"]');
    const one = await edges();
    check(one > 0, "no curves for head 1 alone");
    await shot("attention-head-1");
    await page.click(".heads-all");
    check((await curveSignature()) === before, "all heads again do not draw what they drew first");
    return `head 1 alone: ${one} curves`;
  });

  await step("attention: layer, max aggregation, hover and a token's predictions", async () => {
    const before = await curveSignature();
    const layers = await page.$$eval("select.layer option", (os) => os.map((o) => o.value));
    await page.selectOption("select.layer", layers.at(-1));
    check((await curveSignature()) !== before, "same curves on another layer");
    const meanSig = await curveSignature();
    await page.selectOption("select.agg", "max");
    check((await curveSignature()) !== meanSig, "max draws the same as mean");
    await page.selectOption("select.agg", "mean");
    const token = page.locator('svg.attention-svg g.tokens.left g.token[data-index="2"]');
    await token.hover();
    const on = await page.locator("svg.attention-svg.focus path.edge.on").count();
    check(on > 0 && on < (await edges()), `${on} edges isolated`);
    await token.click();
    const heading = await page.textContent(".predictions-panel h3");
    check(heading !== "Predictions", "clicking a token did not select it");
    await page.mouse.move(5, 5);
    return `layers ${layers.join(",")}; ${on} edges isolated; panel: ${heading}`;
  });

  await step("attention: the model overview draws every layer × head, a click focuses one", async () => {
    await page.click('.tabs button[data-view="overview"]');
    const { shape, layers } = payload.response.attention;
    const cells = payload.response.model.n_layers * shape[1];
    const drawn = await page.locator("canvas.thumb:not(.pending)").count();
    check((await page.locator("canvas.thumb").count()) === cells, `not ${cells} thumbnails`);
    check(drawn === layers.length * shape[1], `${drawn} thumbnails drawn for ${layers.length} layers × ${shape[1]} heads`);
    // A thumbnail is not blank: some pixel is darker than white.
    const inked = await page.$eval("canvas.thumb:not(.pending)", (c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      for (let k = 0; k < d.length; k += 4) if (d[k] < 250 || d[k + 1] < 250 || d[k + 2] < 250) return true;
      return false;
    });
    check(inked, "the first thumbnail is blank");
    await shot("overview");
    const layer = layers.at(-1);
    await page.click(`canvas.thumb[data-layer="${layer}"][data-head="1"]`);
    check(await page.isVisible(".view-attention"), "the attention view is not shown after a click");
    check((await page.inputValue("select.layer")) === String(layer), "layer not focused");
    const pressed = await page.$$eval('button.head[aria-pressed="true"]', (bs) => bs.map((b) => b.dataset.head));
    check(JSON.stringify(pressed) === '["1"]', `heads pressed: ${pressed}`);
    check((await edges()) > 0, "no curves for the focused head");
    return `${cells} thumbnails, focused layer ${layer} head 1`;
  });
}

if (args["attention-json"]) {
  await step("attention: the same response embedded as json draws the same curves", async () => {
    await open(args["attention-json"]);
    const payload = await embedded();
    check(payload.response.attention.encoding === "json" && Array.isArray(payload.response.attention.data), "not json nested lists");
    const n = await edges();
    check(n > 0, "no curves drawn");
    // float16 rounding can move a weight across the 0.01 cut-off, rarely.
    if (float16Edges !== null) check(Math.abs(n - float16Edges) <= 2 + 0.01 * n, `${n} curves from json, ${float16Edges} from float16`);
    await shot("attention-json");
    return `${n} curves (float16: ${float16Edges ?? "not run"})`;
  });
  await step("attention (json): what the data says is shown as text, not markup", shownAsText);
}

// --- gradients ---------------------------------------------------------------------------------

if (args.gradients) {
  await step("gradients: the tokens are shaded and the path is charted", async () => {
    await open(args.gradients);
    const payload = await embedded();
    check(payload.kind === "gradients", `kind ${payload.kind}`);
    const backgrounds = await page.$$eval(".attr-token", (ts) => ts.map((t) => getComputedStyle(t).backgroundColor));
    check(backgrounds.length === payload.response.tokens.length, `${backgrounds.length} tokens for ${payload.response.tokens.length}`);
    const shaded = backgrounds.filter((b) => b && b !== "rgba(0, 0, 0, 0)" && b !== "rgb(255, 255, 255)");
    check(shaded.length > 0 && new Set(backgrounds).size > 1, `backgrounds: ${backgrounds.join(", ")}`);
    const path = await page.getAttribute("#path-chart path.series", "d");
    check(path && path.split(/[ML]/).filter(Boolean).length === payload.response.alphas.length, `path chart: ${path}`);
    const points = await page.locator("#path-chart circle").count();
    check(points === payload.response.alphas.length, `${points} points for ${payload.response.alphas.length} alphas`);
    check(await page.locator("#norm-chart path.series").count(), "no gradient-norm chart");
    const prediction = (await page.textContent(".prediction")).trim();
    await shot("gradients");
    return `${shaded.length} of ${backgrounds.length} tokens shaded; ${points}-point path; ${prediction.slice(0, 50)}`;
  });

  await step("gradients: hiding special tokens hides them", async () => {
    const all = await page.locator(".attr-token").count();
    await page.check("input.hide-special");
    const shown = await page.locator(".attr-token").count();
    check(shown < all && (await page.locator(".attr-token.special").count()) === 0, `${shown} of ${all} tokens shown`);
    await page.uncheck("input.hide-special");
    return `${shown} of ${all}`;
  });
}

// --- notebook outputs: several iframes on one page ---------------------------------------------

if (args.notebook) {
  await step("notebook: each output renders in its own iframe and takes its height", async () => {
    const url = pathToFileURL(resolve(args.notebook)).href;
    allowed.add(url);
    await page.goto(url);
    const frames = page.locator("iframe.exformer-view");
    const count = await frames.count();
    check(count >= 2, `${count} iframes`);
    const notes = [];
    for (let k = 0; k < count; k++) {
      const frame = frames.nth(k).contentFrame();
      await frame.locator('.exformer-standalone[data-ready="true"]').waitFor({ state: "attached" });
      const kind = await frame.locator(".exformer-standalone").getAttribute("data-kind");
      if (kind === "attention") check((await edges(frame)) > 0, `iframe ${k}: no curves`);
      else check((await frame.locator(".attr-token").count()) > 0, `iframe ${k}: no tokens`);
      notes.push(kind);
    }
    // Each page posts its height; the script beside its iframe sets it (and marks data-sized).
    await page.waitForFunction(() => [...document.querySelectorAll("iframe.exformer-view")].every((f) => f.dataset.sized), null, { timeout: 10_000 });
    const heights = await page.$$eval("iframe.exformer-view", (fs) => fs.map((f) => f.getBoundingClientRect().height));
    const scrollHeights = [];
    for (let k = 0; k < count; k++) {
      scrollHeights.push(await frames.nth(k).contentFrame().locator("body").evaluate((e) => Math.ceil(e.getBoundingClientRect().height)));
    }
    heights.forEach((h, k) => check(Math.abs(h - Math.min(scrollHeights[k] + 4, 1100)) <= 4, `iframe ${k}: ${h}px for a ${scrollHeights[k]}px page`));
    await shot("notebook");
    return `${notes.join(", ")}; heights ${heights.map(Math.round).join(", ")} px`;
  });
}

if (requests.length) {
  console.log(`FAIL  the pages asked for: ${requests.join(", ")}`);
  steps.failed = true;
} else {
  console.log("ok    no request left the pages");
}
if (problems.length) {
  console.log(`FAIL  errors in the pages: ${problems.join("; ")}`);
  steps.failed = true;
}
await browser.close();
console.log(steps.failed ? "standalone e2e: FAILED" : "standalone e2e: all steps passed");
process.exit(steps.failed ? 1 : 0);
