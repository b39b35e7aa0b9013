// End to end in a real Chromium against a real TorchServe (tests/test_frontend_e2e.py runs it).
//
//   node e2e/e2e.mjs --url http://127.0.0.1:18090/ --screenshots ../tests/artifacts/screenshots
//
// Every step prints "ok" or "FAIL"; the first failure stops the run with exit code 1 and a
// screenshot. The render time of 128 tokens × 12 heads is reported, not asserted.

import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, COMMON_OPTIONS, check, screenshotDir, stepper } from "./steps.mjs";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8090/" },
    ...COMMON_OPTIONS,
  },
});
const shots = screenshotDir(args.screenshots);
const TIMEOUT = 120_000; // a cold worker's first request on 2 CPU cores

// --- what the server says it serves: pick the models to exercise ---------------------------

const base = new URL(args.url);
const config = await (await fetch(new URL("config.json", base))).json();
const inference = config.inference;
const byHandler = (h) => config.models.filter((m) => m.handler === h).map((m) => m.name);
const details = {};
for (const name of byHandler("attention")) {
  const r = await fetch(`${inference}/predictions/${name}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  details[name] = (await r.json()).model;
}
const models = Object.values(details);
const masker = models.find((m) => m.mask_token); // clicking masks and re-runs
const causal = models.find((m) => m.predictions === "next-token"); // clicking shows next tokens
const timed = models.find((m) => m.n_heads === 12) ?? models[0];
const gradientModels = byHandler("gradients");
console.log(`models: ${config.models.map((m) => `${m.name} (${m.handler})`).join(", ")}`);

// --- the browser ----------------------------------------------------------------------------

const browser = await chromium.launch({ executablePath: args.chromium, args: CHROMIUM_ARGS });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(e.message));
const posted = []; // every inference POST body, to check what the page asked for
page.on("request", (r) => {
  if (r.method() === "POST" && r.url().startsWith(inference)) posted.push({ url: r.url(), body: JSON.parse(r.postData() || "{}") });
});

let shotNumber = 0;
const steps = stepper(page, (name) => `${shots}/${String(++shotNumber).padStart(2, "0")}-${name}.png`);
const { shot, step } = steps;

const edges = () => page.locator("svg.attention-svg path.edge").count();
const idle = () => page.waitForSelector("#busy", { state: "hidden" });
async function run(selector = "#run") {
  await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(`${inference}/predictions/`) && r.request().method() === "POST"),
    page.click(selector),
  ]);
  await idle();
}
// Choose a model, type the input (a pair clears unless given) and run the attention view.
async function analyse(model, text, pair = "") {
  await page.selectOption("#model", model);
  await idle();
  await page.fill("#pair", pair);
  await page.fill("#text", text);
  await run();
}
async function errorText() {
  await page.waitForSelector("#error", { state: "visible" });
  return page.textContent("#error .message");
}
/** A fingerprint of the drawn curves: where they go and how opaque they are. */
const curveSignature = () =>
  page.$$eval("svg.attention-svg path.edge", (ps) => ps.map((p) => `${p.getAttribute("d")}@${p.getAttribute("stroke-opacity")}`).join("|"));
const leftToken = (i) => page.locator(`svg.attention-svg g.tokens.left g.token[data-index="${i}"]`);

// --- the scenario ---------------------------------------------------------------------------

await step("page loads and lists the served models", async () => {
  await page.goto(args.url);
  await page.waitForSelector("#model option", { state: "attached" });
  const listed = await page.$$eval("#model option", (os) => os.map((o) => o.value));
  check(JSON.stringify(listed) === JSON.stringify(byHandler("attention")), `model list ${listed} ≠ config ${byHandler("attention")}`);
  await page.waitForSelector("#heads button.head");
  return listed.join(", ");
});

await step("typing a sentence draws attention curves", async () => {
  check(masker, "no served attention model has a mask token");
  await analyse(masker.name, "The cat sat on the mat.");
  const n = await edges();
  check(n > 0, "no curves drawn");
  const sent = posted.at(-1).body;
  const allLayers = JSON.stringify(Array.from({ length: masker.n_layers }, (_, l) => l));
  check(sent.encoding === "float16-base64" && JSON.stringify(sent.layers) === allLayers, `asked for ${JSON.stringify(sent)}`);
  await shot("attention");
  return `${n} curves on ${masker.name}, float16-base64 for all layers`;
});

await step("changing the layer changes the curves", async () => {
  const before = await curveSignature();
  const layer = String(masker.n_layers - 1);
  await page.selectOption("#layer", layer);
  const after = await curveSignature();
  check(after.length > 0 && after !== before, "same curves after changing the layer");
  check(new URL(page.url()).hash.includes(`layer=${layer}`), `layer not in the URL: ${page.url()}`);
  await shot("layer-changed");
  return `layer 0 → ${layer}`;
});

await step("hovering a token isolates its edges", async () => {
  await leftToken(2).hover();
  const on = await page.locator("svg.attention-svg.focus path.edge.on").count();
  const all = await edges();
  check(on > 0 && on < all, `${on} of ${all} edges highlighted`);
  await page.mouse.move(5, 5);
  return `${on} of ${all} edges`;
});

await step("head toggles and max aggregation", async () => {
  await page.click("#heads-none");
  check((await edges()) === 0, "curves remain with no head selected");
  await page.click('#heads button.head[data-head="0"]');
  const one = await edges();
  check(one > 0, "no curves for head 0");
  check(new URL(page.url()).hash.includes("heads=0"), "heads not in the URL");
  await page.click('#heads button.head[data-head="1"]');
  const meanSig = await curveSignature();
  await page.selectOption("#agg", "max");
  check((await curveSignature()) !== meanSig, "max draws the same as mean");
  await page.selectOption("#agg", "mean");
  await page.click("#heads-all");
  return `head 0 alone: ${one} curves`;
});

await step("clicking a token masks it and runs again", async () => {
  const before = posted.length;
  await Promise.all([page.waitForResponse((r) => r.url().includes(`/predictions/${masker.name}`)), leftToken(2).click()]);
  await idle();
  const sent = posted.slice(before).map((p) => p.body);
  check(sent.some((b) => JSON.stringify(b.mask) === "[2]"), `no request with "mask": [2] (${JSON.stringify(sent)})`);
  check((await leftToken(2).getAttribute("class")).includes("masked"), "token 2 not shown as masked");
  const panel = await page.textContent("#predictions");
  if (masker.predictions) check((await page.locator("ol.predictions li").count()) > 0, "no predictions listed");
  else check(/no LM head/.test(panel), `no 'no LM head' note: ${panel}`);
  await shot("masked");
  return masker.predictions ? "predictions listed" : `${masker.name} has no LM head: the panel says so`;
});

await step("a causal LM shows next-token predictions without masking", async () => {
  check(causal, "no served model makes next-token predictions");
  await analyse(causal.name, "The capital of France is");
  const n = await page.locator("svg.attention-svg g.tokens.left g.token").count();
  const before = posted.length;
  await leftToken(n - 1).click();
  await page.waitForSelector("ol.predictions li");
  check(posted.length === before, "clicking a causal LM's token sent a request");
  const words = await page.$$eval("ol.predictions li .word", (ws) => ws.map((w) => w.textContent.trim()));
  check(words[0] === "Paris", `top next token after 'is' is ${JSON.stringify(words[0])}, expected Paris`);
  await shot("next-token");
  return `${causal.name}: ${words.slice(0, 3).join(", ")}`;
});

await step("model overview: every layer × head, and a click focuses it", async () => {
  await page.click('.tabs button[data-view="overview"]');
  const cells = causal.n_layers * causal.n_heads;
  await page.waitForFunction((k) => document.querySelectorAll("canvas.thumb:not(.pending)").length === k, cells);
  await shot("overview");
  const layer = Math.min(5, causal.n_layers - 1);
  await page.click(`canvas.thumb[data-layer="${layer}"][data-head="2"]`);
  await page.waitForSelector("#view-attention:not([hidden])");
  check((await page.inputValue("#layer")) === String(layer), "layer not focused");
  const pressed = await page.$$eval('#heads button[aria-pressed="true"]', (bs) => bs.map((b) => b.dataset.head));
  check(JSON.stringify(pressed) === '["2"]', `heads pressed: ${pressed}`);
  check((await edges()) > 0, "no curves for the focused head");
  return `${cells} thumbnails; focused layer ${layer} head 2`;
});

await step("the URL restores the view on reload", async () => {
  const url = page.url();
  check(/text=/.test(url) && /heads=2/.test(url), `state missing from ${url}`);
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll("svg.attention-svg path.edge").length > 0);
  check((await page.inputValue("#text")) === "The capital of France is", "text not restored");
  check((await page.inputValue("#model")) === causal.name, "model not restored");
  check((await page.inputValue("#layer")) === String(Math.min(5, causal.n_layers - 1)), "layer not restored");
  return url.slice(url.indexOf("#"));
});

await step("model overview: the rollout toggle adds a rolled-out map per layer", async () => {
  await page.click('.tabs button[data-view="overview"]');
  await page.waitForFunction(() => document.querySelectorAll("canvas.thumb:not(.pending)").length > 0);
  check((await page.locator("canvas.thumb.rollout").count()) === 0, "a rollout column before the toggle");
  const before = posted.length;
  await Promise.all([page.waitForResponse((r) => r.url().includes(`/predictions/${causal.name}`)), page.check("#rollout")]);
  await idle();
  const sent = posted.slice(before).map((p) => p.body);
  check(sent.length >= 1 && sent.every((b) => b.rollout === true), `rollout not asked: ${JSON.stringify(sent)}`);
  await page.waitForFunction((k) => document.querySelectorAll("canvas.thumb.rollout:not(.pending)").length === k, causal.n_layers);
  check(new URL(page.url()).hash.includes("rollout=on"), "rollout not in the URL");
  // Its last layer's map: rows sum to 1, so the canvas is not blank.
  const inked = await page.$eval(`canvas.thumb.rollout[data-layer="${causal.n_layers - 1}"]`, (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let dark = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 200) dark++;
    return dark;
  });
  check(inked > 0, "the last layer's rollout is blank");
  await shot("overview-rollout");
  const asked = posted.length;
  await page.uncheck("#rollout");
  check((await page.locator("canvas.thumb.rollout").count()) === 0, "the rollout column stays after the toggle is off");
  check(posted.length === asked, "turning rollout off asked the server again");
  await page.click('.tabs button[data-view="attention"]');
  return `${causal.n_layers} rollout maps (${sent.length} request${sent.length > 1 ? "s" : ""}); last layer ${inked} inked pixels`;
});

await step("a sentence pair is sent as text_pair and shown", async () => {
  await analyse(masker.name, "The cat sat on the mat.", "It was soft.");
  check(posted.at(-1).body.text_pair === "It was soft.", "no text_pair sent");
  const pairTokens = await page.locator("svg.attention-svg g.tokens.left g.token.pair").count();
  check(pairTokens > 0, "no second-segment tokens shown");
  await page.fill("#pair", "");
  return `${pairTokens} tokens of the second sentence`;
});

await step("a request the server rejects shows its 4xx message", async () => {
  await page.fill("#text", "   ");
  await run();
  const message = await errorText();
  check(/^400 BadRequest: text: must not be empty/.test(message), `error shown: ${JSON.stringify(message)}`);
  check(await page.locator('[data-field="text"].invalid').count(), "the text field is not marked");
  await shot("error-400");
  return message;
});

await step("an unreachable server is named as such", async () => {
  await page.route(`${inference}/**`, (route) => route.abort("connectionrefused"));
  await page.fill("#text", "The cat sat on the mat.");
  await page.click("#run");
  const message = await errorText();
  await page.unroute(`${inference}/**`);
  check(message.startsWith(`Cannot reach the inference API at ${inference}`), `error shown: ${message}`);
  return message.slice(0, 90) + "…";
});

if (!gradientModels.length) {
  console.log("skip  attribution: no gradients model is served (deploy/models.txt lists none)");
} else {
  const gmodel = gradientModels.find((m) => m.startsWith("sentiment")) ?? gradientModels[0];
  await step("attribution shades the tokens and draws the path", async () => {
    await page.click('.tabs button[data-view="attribution"]');
    await page.selectOption("#gmodel", gmodel);
    await page.fill("#text", "A gripping, beautifully acted film.");
    const labels = await page.$$eval("#target-select:not([hidden]) option", (os) => os.map((o) => o.value).filter(Boolean));
    if (labels.length) await page.selectOption("#target-select", labels.at(-1));
    await page.selectOption("#baseline", "pad");
    await page.fill("#steps", "16");
    await run();
    const sent = posted.at(-1).body;
    check(sent.n_steps === 16 && sent.baseline === "pad" && sent.return.includes("path_scores"), `sent ${JSON.stringify(sent)}`);
    const shaded = await page.$$eval(".attr-token", (ts) => ts.filter((t) => t.style.background).length);
    check(shaded > 0, "no shaded tokens");
    check(await page.locator("#path-chart path.series").count(), "no path chart");
    check(await page.locator("#norm-chart path.series").count(), "no gradient-norm chart");
    const label = await page.textContent(".prediction");
    const delta = await page.textContent(".convergence");
    await shot("attribution");
    return `${shaded} tokens shaded; target ${labels.at(-1) ?? "(free text)"}; ${delta.trim().slice(0, 80)}; ${label.slice(0, 60)}`;
  });

  await step("the result downloads as JSON and as npz", async () => {
    const [json] = await Promise.all([page.waitForEvent("download"), page.click("#download-json")]);
    const jsonPath = `${shots}/attribution.json`;
    await json.saveAs(jsonPath);
    const saved = JSON.parse(readFileSync(jsonPath, "utf8"));
    check(saved.attributions?.normalized?.length === saved.tokens.length, "JSON lacks attributions");
    const [npz] = await Promise.all([page.waitForEvent("download"), page.click("#download-npz")]);
    const npzPath = `${shots}/attribution.npz`;
    await npz.saveAs(npzPath);
    const head = readFileSync(npzPath).subarray(0, 2).toString("latin1");
    check(head === "PK", `npz does not start with a zip header: ${JSON.stringify(head)}`);
    check(posted.at(-1).body.format === "npz", "npz not asked with format npz");
    return `${jsonPath}, ${npzPath}`;
  });

  await step("a rejected attribution request shows the server's message", async () => {
    await page.fill("#steps", "100000");
    await run();
    const message = await errorText();
    check(/^400 BadRequest: n_steps: /.test(message), `error shown: ${message}`);
    await page.fill("#steps", "16");
    return message;
  });

  /** Click `selector` (a toggle, a method) and wait for the request it makes; the response's JSON. */
  async function askedBy(selector, action = (sel) => page.click(sel)) {
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith(`/predictions/${gmodel}`) && r.request().method() === "POST"),
      action(selector),
    ]);
    await idle();
    check(response.ok(), `${gmodel} answered ${response.status()}: ${await page.textContent("#error .message").catch(() => "")}`);
    return response.json();
  }
  /** The faithfulness box drawn for `result`: both charts with the explanation's curve, the random
   * mean and its band, the legend, and the win rates the answer gives. */
  async function checkFaithfulness(result, unit) {
    const e = result.evaluation;
    check(e && e.unit === unit && e.rows.length === 1 && e.random_orders === 10, `evaluation ${JSON.stringify(e && { unit: e.unit, rows: e.rows.length })}`);
    const row = e.rows[0];
    await page.waitForSelector(`#attribution .faithfulness[data-unit="${unit}"]`);
    for (const kind of ["deletion", "insertion"]) {
      for (const line of ["path.series.explanation", "path.random-mean", "path.random-band"]) {
        check(await page.locator(`#attribution .faithfulness svg#${kind}-chart ${line}`).count() === 1, `no ${line} in the ${kind} chart`);
      }
      const points = await page.locator(`#attribution svg#${kind}-chart g.points circle`).count();
      check(points === e.counts.length, `${points} points on the ${kind} curve, ${e.counts.length} counts`);
      const win = await page.textContent(`#attribution .faithfulness .faith-win-${kind}`);
      const expected = `beats ${Math.round(row.win_rate[kind] * 100)}% of 10 random orders`;
      check(win.includes(expected), `${kind} win rate shown "${win}", the answer's ${row.win_rate[kind]}`);
      check(Number(await page.getAttribute("#attribution .faithfulness", `data-win-${kind}`)) === row.win_rate[kind], `data-win-${kind}`);
    }
    const aopc = await page.textContent("#attribution .faithfulness .faith-deletion-aopc");
    check(aopc.startsWith(row.deletion_aopc.toFixed(3)) && aopc.includes(`random ${row.random.deletion_aopc.mean.toFixed(3)}`), `deletion AOPC shown ${aopc}`);
    const legend = await page.$$eval("#attribution .faith-legend .faith-key", (ks) => ks.map((k) => k.textContent));
    check(legend.length === 3 && /explanation/.test(legend[0]) && /mean of 10 random orders/.test(legend[1]) && /standard deviation/.test(legend[2]), `legend ${legend}`);
    return `${e.n_units} ${unit}s, deletion AOPC ${row.deletion_aopc.toFixed(3)} vs ${row.random.deletion_aopc.mean.toFixed(3)} (win ${row.win_rate.deletion}), ` +
      `insertion ${row.insertion_aopc.toFixed(3)} vs ${row.random.insertion_aopc.mean.toFixed(3)} (win ${row.win_rate.insertion})`;
  }

  await step("measure faithfulness: deletion and insertion curves against random orders, and saliency", async () => {
    check(!(await page.isChecked("#evaluate")) && (await page.isDisabled("#eval-unit")), "the toggle is on, or its unit offered, before it is asked");
    const tokens = await askedBy("#evaluate", (sel) => page.check(sel));
    const sent = posted.at(-1).body;
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b); // (the module's own is declared further down)
    check(same(sent.evaluate, {}) && sent.n_steps === 16 && !("attribution" in sent), `sent ${JSON.stringify(sent)}`);
    const byToken = await checkFaithfulness(tokens, "token");
    check(new URL(page.url()).hash.includes("eval=on"), "the toggle is not in the URL");
    await page.selectOption("#eval-unit", "word");
    const words = await askedBy('#attr-method label:has(input[value="saliency"])');
    const asked = posted.at(-1).body;
    check(asked.attribution === "saliency" && same(asked.evaluate, { unit: "word" }) && !["baseline", "n_steps", "return"].some((k) => k in asked),
      `sent ${JSON.stringify(asked)}`);
    check(words.attribution === "saliency" && words.convergence_delta === null, `answer ${words.attribution}, δ ${words.convergence_delta}`);
    check((await page.textContent("#attribution .convergence")).includes("No completeness (saliency)"), "saliency's answer is judged for completeness");
    check(await page.locator("#attribution .convergence.warn").count() === 0, "saliency warned of a convergence delta");
    check(await page.isDisabled("#steps") && await page.isDisabled("#baseline"), "steps or baseline offered to saliency");
    const byWord = await checkFaithfulness(words, "word");
    await shot("attribution-faithfulness");
    await page.locator("#view-attribution").screenshot({ path: `${shots}/attribution-faithfulness.png` }); // docs/images
    // back to integrated gradients; turning the toggle off hides the curves and asks nothing
    await askedBy('#attr-method label:has(input[value="integrated_gradients"])');
    const before = posted.length;
    await page.uncheck("#evaluate");
    check(await page.locator("#attribution .faithfulness").count() === 0, "the curves stay with the toggle off");
    check(posted.length === before, "turning the toggle off asked the server");
    return `integrated gradients by token: ${byToken}; saliency by word: ${byWord}`;
  });

  // A causal LM's gradients archive: its twin attention archive says "causal-lm".
  const causalGradients = gradientModels.find((g) => details[g.replace(/-gradients$/, "-attention")]?.head === "causal-lm");
  await step("a causal LM's attribution takes a typed next token", async () => {
    check(causalGradients, `no served gradients model is a causal LM (${gradientModels.join(", ")})`);
    const previous = await page.getAttribute("#attribution", "data-model");
    check(previous === gmodel, `no ${gmodel} result on screen before switching (data-model=${previous})`);
    await page.selectOption("#gmodel", causalGradients);
    // Switching model clears the previous model's result: nothing of it stays on screen.
    check((await page.getAttribute("#attribution", "data-model")) === null, "the previous model's result is still marked as shown");
    check((await page.locator("#attribution .attr-token").count()) === 0, `${gmodel}'s attributions still shown under ${causalGradients}`);
    check(await page.isDisabled("#download-json"), "download offered for a result of another model");
    // The target is a typed next token, not the classifier's labels.
    check(await page.isHidden("#target-select"), "a label list is offered for a causal LM");
    check(await page.isVisible("#target-text"), "no free-text target for a causal LM");
    await page.fill("#text", "The capital of France is");
    await page.fill("#target-text", " Paris");
    await page.fill("#steps", "8");
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith(`/predictions/${causalGradients}`) && r.request().method() === "POST"),
      page.click("#run"),
    ]);
    await idle();
    const sent = posted.at(-1).body;
    check(sent.target === " Paris" && sent.n_steps === 8 && sent.text === "The capital of France is", `sent ${JSON.stringify(sent)}`);
    check(response.ok(), `${causalGradients} answered ${response.status()}: ${await page.textContent("#error .message")}`);
    const result = await response.json();
    check(result.target.text === " Paris", `attributed target ${JSON.stringify(result.target)}`);
    check((await page.getAttribute("#attribution", "data-model")) === causalGradients, "result not marked as the causal LM's");
    const target = await page.textContent("#attribution .target");
    check(target.includes('" Paris"'), `target shown: ${target}`);
    const shown = await page.$$eval("#attribution .attr-token", (ts) => ts.map((t) => Number(t.dataset.value)));
    check(shown.length === result.tokens.length && shown.length === result.attributions.normalized.length,
      `${shown.length} tokens shaded for ${result.tokens.length} tokens`);
    check(shown.every(Number.isFinite), `attributions ${shown}`);
    await shot("attribution-causal-lm");
    return `${causalGradients}: target " Paris" (#${result.target.index}, F(x) = ${result.target.score.toPrecision(3)}), ` +
      `${shown.length} tokens, δ = ${result.convergence_delta.toPrecision(3)}`;
  });

  await step("switching the gradients model clears the result", async () => {
    await page.selectOption("#gmodel", gmodel);
    check((await page.getAttribute("#attribution", "data-model")) === null, "a result is still marked as shown");
    check((await page.locator("#attribution .attr-token").count()) === 0, `${causalGradients}'s attributions still shown under ${gmodel}`);
    check(!(await page.textContent("#attribution")).includes("Paris"), "the causal LM's target still on screen");
    check(await page.isDisabled("#download-json"), "download offered for a result of another model");
    const labels = await page.$$eval("#target-select:not([hidden]) option", (os) => os.map((o) => o.value).filter(Boolean));
    check(labels.length > 0 && (await page.isHidden("#target-text")), `${gmodel} offers no labels`);
    return `${gmodel}: labels ${labels.join(", ")}; nothing of ${causalGradients} shown`;
  });
}

// --- long prompts: the heads combined on the server, then only the top k of each row ----------

await step("a long prompt asks for the heads combined, and the page says so", async () => {
  await page.click('.tabs button[data-view="attention"]');
  const words = ["the", "cat", "sat", "on", "mat", "and", "dog", "ran", "to", "house", "big", "red"];
  const long = Array.from({ length: 500 }, (_, i) => words[i % words.length]).join(" "); // ~2,000 characters: ~500 tokens estimated
  await analyse(masker.name, long);
  const sent = posted.at(-1).body;
  check(sent.heads === "mean" && sent.top_k_per_row === undefined, `asked ${JSON.stringify({ heads: sent.heads, top_k_per_row: sent.top_k_per_row })}`);
  const notes = await page.textContent("#attention-notes");
  check(/Long prompt \(\d+ tokens\): the heads come combined on the server \(heads: "mean"\)/.test(notes), `notes: ${notes}`);
  check(await page.locator(".heads.aggregated").count(), "head toggles still offered for combined heads");
  check((await edges()) > 0, "no curves for the combined heads");
  await page.selectOption("#agg", "max");
  await page.waitForFunction(() => document.getElementById("attention-notes").textContent.includes('heads: "max"'));
  check(posted.at(-1).body.heads === "max", "max not asked of the server");
  await page.selectOption("#agg", "mean");
  await idle();
  const longer = Array.from({ length: 1000 }, (_, i) => words[i % words.length]).join(" "); // ~4,000 characters: ~1,000 tokens estimated
  await analyse(masker.name, longer);
  const sparse = posted.at(-1).body;
  check(sparse.heads === "mean" && sparse.top_k_per_row === 32, `asked ${JSON.stringify({ heads: sparse.heads, top_k_per_row: sparse.top_k_per_row })}`);
  const notes2 = await page.textContent("#attention-notes");
  check(/only the 32 largest weights of each row \(top_k_per_row\), every row keeping at least [\d.]+% of its weight/.test(notes2), `notes: ${notes2}`);
  check((await edges()) > 0, "no curves from the sparse rows");
  await shot("long-prompt");
  return notes2.slice(notes2.indexOf("Long prompt"));
});

// --- explaining a generation ---------------------------------------------------------------

const causalLm = gradientModels.find((g) => details[g.replace(/-gradients$/, "-attention")]?.head === "causal-lm");
/** Run the Generation view; the response's JSON. */
async function explain() {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/predictions/${causalLm}`) && r.request().method() === "POST"),
    page.click("#run"),
  ]);
  await idle();
  return response;
}
const shadedPrompt = () => page.$$eval("#generation .gen-token.prompt", (ts) => ts.filter((t) => t.dataset.value !== undefined).length);
const finiteCells = (row) => page.locator(`#generation svg.gen-heatmap g.hm-row[data-row="${row}"] rect.cell:not(.none)`).count();

await step("generation: a continuation's tokens, heatmap, probability and alternatives", async () => {
  check(causalLm, `no causal LM's gradients archive is served (${gradientModels.join(", ")})`);
  await page.click('.tabs button[data-view="generation"]');
  const offered = await page.$$eval("#lm option", (os) => os.map((o) => o.value));
  check(offered.includes(causalLm) && !offered.some((m) => m.startsWith("sentiment")), `models offered: ${offered}`);
  await page.selectOption("#lm", causalLm);
  check(await page.isHidden("#pair"), "a sentence pair is offered for a prompt");
  await page.fill("#text", "The capital of France is");
  await page.fill("#continuation", " Paris");
  await page.fill("#generate", "");
  await page.fill("#foil", "");
  await page.fill("#gen-steps", "8");
  const response = await explain();
  const sent = posted.at(-1).body;
  check(sent.text === "The capital of France is" && sent.continuation === " Paris" && sent.n_steps === 8 && !("generate" in sent) && !("foil" in sent),
    `sent ${JSON.stringify(sent)}`);
  check(response.ok(), `${causalLm} answered ${response.status()}: ${await page.textContent("#error .message")}`);
  const result = await response.json();
  const nPrompt = result.tokens.filter((t) => !t.target).length;
  check(result.targets.length === 1 && result.targets[0].text === " Paris", `targets ${JSON.stringify(result.targets.map((t) => t.text))}`);
  check((await page.locator("#generation .gen-token.target").count()) === 1, "the target token is not shown");
  check((await page.locator("#generation .gen-token.prompt").count()) === nPrompt, "the prompt's tokens are not shown");
  check((await page.locator("#generation svg.gen-heatmap g.hm-row").count()) === 1, "heatmap rows ≠ 1");
  check((await finiteCells(0)) === nPrompt, `row 0 has ${await finiteCells(0)} values, not len(prompt) = ${nPrompt}`);
  check((await shadedPrompt()) === nPrompt, "the prompt is not shaded by the row");
  const probability = await page.textContent("#generation .gen-probability");
  check(probability === `${(result.targets[0].probability * 100).toFixed(1)}%`, `probability shown ${probability}`);
  check(/nats$/.test(await page.textContent("#generation .gen-entropy")), "no entropy");
  const alternatives = await page.$$eval("#generation .gen-alternatives li .word", (ws) => ws.map((w) => w.textContent));
  check(alternatives.length === result.targets[0].alternatives.length && alternatives.length > 0, `alternatives ${alternatives}`);
  check(!(await page.isDisabled("#gen-download-json")), "no download for the result on screen");
  // numbers on hover, at once: a prompt token's value and a heatmap cell's
  await page.hover("#generation .gen-token.prompt[data-value]");
  const hovered = await page.textContent(".hover-box");
  check(await page.isVisible(".hover-box") && /: -?[\d.]/.test(hovered), `hovering a token shows ${JSON.stringify(hovered)}`);
  await page.hover('#generation svg.gen-heatmap g.hm-row[data-row="0"] rect.cell:not(.none)');
  check((await page.textContent(".hover-box")).includes("←"), "hovering a heatmap cell shows no value");
  await page.mouse.move(0, 0);
  await shot("generation");
  const row = result.targets[0].attributions.normalized;
  const lead = row.indexOf(Math.max(...row));
  return `" Paris": p = ${probability}; ${nPrompt} prompt tokens shaded, led by ${JSON.stringify(result.tokens[lead].surface ?? result.tokens[lead].text)} ` +
    `(${row[lead].toFixed(3)}); alternatives ${alternatives.slice(0, 3).join(", ")}`;
});

/** Act (a toggle, a method) and wait for the Generation view's request; the response's JSON. */
async function generationAskedBy(action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/predictions/${causalLm}`) && r.request().method() === "POST"),
    action(),
  ]);
  await idle();
  check(response.ok(), `${causalLm} answered ${response.status()}: ${await page.textContent("#error .message").catch(() => "")}`);
  return response.json();
}

await step("generation: measure faithfulness draws the whole answer's curves, then a clicked token's; saliency has no completeness", async () => {
  const result = await generationAskedBy(() => page.check("#gen-evaluate"));
  const sent = posted.at(-1).body;
  // the unit is the one chosen in the Attribution view (one state, as baseline and steps)
  check(JSON.stringify(sent.evaluate) === '{"unit":"word"}' && sent.n_steps === 8, `sent ${JSON.stringify(sent)}`);
  check((await page.inputValue("#gen-eval-unit")) === "word", "the unit chosen is not shown");
  const e = result.evaluation;
  check(e && e.unit === "word" && e.rows.length === 2 && e.rows[1].target === null, `evaluation rows ${JSON.stringify(e?.rows.map((r) => r.target))}`);
  await page.waitForSelector('#generation .faithfulness[data-row="whole"]');
  const whole = Number(await page.getAttribute("#generation .faithfulness", "data-win-deletion"));
  check(whole === e.rows[1].win_rate.deletion, `whole answer's win rate shown ${whole}, answer ${e.rows[1].win_rate.deletion}`);
  check(await page.locator("#generation .faithfulness svg#deletion-chart path.random-band").count() === 1, "no band");
  await page.click('#generation .gen-token.target[data-target="0"]');
  await page.waitForSelector('#generation .faithfulness[data-row="0"]');
  const saliency = await generationAskedBy(() => page.click('#gen-method label:has(input[value="saliency"])'));
  const asked = posted.at(-1).body;
  check(asked.attribution === "saliency" && !["baseline", "n_steps"].some((k) => k in asked) && asked.evaluate, `sent ${JSON.stringify(asked)}`);
  check(saliency.targets[0].convergence_delta === null, "saliency answered a convergence delta");
  check((await page.textContent("#generation .gen-details")).includes("No completeness (saliency)"), "saliency's row is judged for completeness");
  check(await page.locator("#generation .gen-tolerance").count() === 0, "a tolerance banner over saliency");
  check(await page.locator("#generation .faithfulness svg#insertion-chart path.series.explanation").count() === 1, "no insertion curve under saliency");
  await generationAskedBy(() => page.click('#gen-method label:has(input[value="integrated_gradients"])'));
  await page.uncheck("#gen-evaluate");
  check(await page.locator("#generation .faithfulness").count() === 0, "the curves stay with the toggle off");
  return `whole answer (log p): deletion AOPC ${e.rows[1].deletion_aopc.toFixed(3)} vs random ${e.rows[1].random.deletion_aopc.mean.toFixed(3)}, win ${whole}; ` +
    `saliency: ${saliency.evaluation.rows.length} rows`;
});

await step("generation: AttnLRP answers each target's logit, with no baseline, steps or completeness", async () => {
  const lrp = await generationAskedBy(() => page.click('#gen-method label:has(input[value="attnlrp"])'));
  const asked = posted.at(-1).body;
  check(asked.attribution === "attnlrp" && !["baseline", "n_steps"].some((k) => k in asked), `sent ${JSON.stringify(asked)}`);
  check(lrp.attribution === "attnlrp" && lrp.score === "logit" && lrp.targets[0].convergence_delta === null, `answer ${lrp.attribution} ${lrp.score}`);
  check((await page.textContent("#generation .gen-details")).includes("No completeness (AttnLRP)"), "AttnLRP's row is judged for completeness");
  check(await page.locator("#generation .gen-tolerance").count() === 0, "a tolerance banner over AttnLRP");
  check(!(await page.textContent("#generation .attr-for")).includes("baseline"), "a baseline named for AttnLRP");
  await generationAskedBy(() => page.click('#gen-method label:has(input[value="integrated_gradients"])'));
  const row = lrp.targets[0].attributions.raw;
  return `AttnLRP of ${JSON.stringify(lrp.targets[0].token)}: logit ${lrp.targets[0].score.toFixed(2)}, relevances sum ${row.reduce((a, b) => a + b, 0).toFixed(2)}`;
});

await step('generation: steps "auto" refines until the row is within 1%, and says so', async () => {
  await page.fill("#gen-steps", "auto");
  const response = await explain();
  const sent = posted.at(-1).body;
  check(sent.n_steps === "auto" && sent.continuation === " Paris", `sent ${JSON.stringify(sent)}`);
  check(response.ok(), `${causalLm} answered ${response.status()}: ${await page.textContent("#error .message")}`);
  const result = await response.json();
  check(result.converged === true && result.method === "gausskronrod" && Number.isInteger(result.n_steps), `answer ${result.n_steps} ${result.method} ${result.converged}`);
  const heading = await page.textContent("#generation .attr-for");
  check(heading.includes(`${result.n_steps} steps (gausskronrod), auto: within 1%`), `heading: ${heading}`);
  check(new URL(page.url()).hash.includes("steps=auto"), "steps=auto is not in the URL");
  return `auto: ${result.n_steps} points, ${heading.split("·").at(-1).trim()}`;
});

await step("generation: a continuation the model would not write is said, and 'generate instead' explains what it writes", async () => {
  await page.fill("#gen-steps", "4");
  await page.fill("#continuation", "Paris"); // no leading space: not what the model writes after "is"
  const response = await explain();
  check(response.ok(), `${causalLm} answered ${response.status()}`);
  const given = await response.json();
  const p = given.targets[0].probability;
  check(p < 0.01, `"Paris" without its space has p = ${p}`);
  const warning = await page.textContent("#generation .gen-unlikely");
  check(warning.includes("would not write") && warning.includes('"Paris"'), `warning: ${warning}`);
  const n = given.targets.length;
  const [again] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/predictions/${causalLm}`) && r.request().method() === "POST"),
    page.click("#generation .gen-generate-instead"),
  ]);
  await idle();
  const sent = posted.at(-1).body;
  check(sent.generate?.max_new_tokens === n && !("continuation" in sent), `sent ${JSON.stringify(sent)}`);
  const written = await again.json();
  check(written.generated === true && (await page.locator("#generation .gen-unlikely").count()) === 0, "the generated answer is warned about");
  check((await page.inputValue("#generate")) === String(n), "the Generate field does not show what was asked");
  await page.fill("#generate", "");
  await page.fill("#continuation", " Paris");
  return `"Paris": p = ${p.toExponential(1)}, warned; generated ${JSON.stringify(written.continuation)} instead`;
});

// Fewer steps from here: each target token is one more backward per step (2 CPU cores).
await step("generation: generate 2 tokens against a foil; a click on a token shows its row", async () => {
  await page.fill("#generate", "2");
  await page.fill("#foil", " London");
  await page.fill("#gen-steps", "4");
  const response = await explain();
  const sent = posted.at(-1).body;
  check(sent.generate?.max_new_tokens === 2 && sent.foil === " London" && sent.n_steps === 4 && !("continuation" in sent), `sent ${JSON.stringify(sent)}`);
  check(response.ok(), `${causalLm} answered ${response.status()}: ${await page.textContent("#error .message")}`);
  const result = await response.json();
  const n = result.targets.length;
  const nPrompt = result.tokens.filter((t) => !t.target).length;
  check(n === 2 && (await page.locator("#generation svg.gen-heatmap g.hm-row").count()) === 2, `${n} targets`);
  for (let t = 0; t < n; t++) check((await finiteCells(t)) === nPrompt + t, `row ${t}: ${await finiteCells(t)} values, not ${nPrompt + t}`);
  await page.click(`#generation .gen-token.target[data-target="${n - 1}"]`);
  await page.waitForSelector(`#generation .gen-details[data-row="${n - 1}"]`);
  check(new URL(page.url()).hash.includes(`row=${n - 1}`), "the selected row is not in the URL");
  const shaded = await page.$$eval("#generation .gen-token", (ts) => ts.filter((t) => t.dataset.value !== undefined).length);
  check(shaded === nPrompt + n - 1, `${shaded} tokens shaded for row ${n - 1}, not ${nPrompt + n - 1}`);
  const foil = await page.textContent("#generation .gen-foil");
  check(foil.startsWith('" London"'), `foil shown: ${foil}`);
  check((await page.textContent("#generation .attr-for")).includes("contrastive"), "not said to be contrastive");
  // A click on a heatmap row selects it too.
  await page.click('#generation svg.gen-heatmap g.hm-row[data-row="0"] text.row-label');
  await page.waitForSelector('#generation .gen-details[data-row="0"]');
  await shot("generation-foil");
  return `generated ${JSON.stringify(result.continuation)}; rows of ${nPrompt}..${nPrompt + n - 1} values; foil ${foil}`;
});

await step("generation: words aggregate the subword values", async () => {
  await page.fill("#generate", "");
  await page.fill("#foil", "");
  await page.fill("#continuation", " Paris,"); // one word of two tokens
  await page.check("#words");
  const response = await explain();
  check(posted.at(-1).body.aggregate === "word", "aggregate word not asked");
  check(response.ok(), `${causalLm} answered ${response.status()}: ${await page.textContent("#error .message")}`);
  const result = await response.json();
  check((await page.getAttribute("#generation", "data-level")) === "word", "not drawn by word");
  const columns = Number(await page.getAttribute("#generation svg.gen-heatmap", "data-columns"));
  check(columns === result.words.length && columns < result.tokens.length, `${columns} columns for ${result.words.length} words`);
  await page.uncheck("#words");
  const tokenColumns = Number(await page.getAttribute("#generation svg.gen-heatmap", "data-columns"));
  check(tokenColumns === result.tokens.length, `${tokenColumns} columns back by token`);
  return `${result.words.length} words for ${result.tokens.length} tokens`;
});

// Its message lists the tokens ("ĠLondon"): not ASCII, which TorchServe's reason phrase must be
// (exformer/serving/handler.py ascii_phrase; before it, the worker was lost).
await step("generation: a foil of two tokens is refused, naming the field", async () => {
  await page.fill("#foil", " London Bridge");
  await explain();
  const message = await errorText();
  check(/^400 BadRequest: foil: " London Bridge" is 2 tokens/.test(message), `error shown: ${message}`);
  check(await page.locator('#view-generation [data-field="foil"].invalid').count(), "the foil field is not marked");
  await page.fill("#foil", "");
  return message;
});

await step("generation: the result downloads as JSON", async () => {
  const [json] = await Promise.all([page.waitForEvent("download"), page.click("#gen-download-json")]);
  const path = `${shots}/generation.json`;
  await json.saveAs(path);
  const saved = JSON.parse(readFileSync(path, "utf8"));
  check(saved.targets?.length > 0 && saved.targets.every((t, k) => t.attributions.raw.length === saved.tokens.filter((x) => !x.target).length + k),
    "the JSON lacks the rows");
  return path;
});

// --- a RAG conversation: two documents as sources, under occlusion, ContextCite and integrated gradients ---

const RAG = {
  system: "Answer from the documents.",
  docA: "The Eiffel Tower is in Paris. It was completed in 1889.",
  docB: "The Colosseum is in Rome. It was completed in 80 AD.",
  continuation: " In Paris.", // 3 target tokens: integrated gradients run a backward per target per point
};
RAG.user = `Document A: ${RAG.docA}\nDocument B: ${RAG.docB}\nQuestion: Where is the Eiffel Tower?`;
// Few path points, to leave rows outside the tolerance (and to stay within the archive's
// max_estimated_seconds: this worker's estimate is corrected by the slow, short requests above).
const RAG_STEPS = 2;
const ragMessages = [{ role: "system", content: RAG.system }, { role: "user", content: RAG.user }];
const ragSources = [{ id: "A", text: RAG.docA }, { id: "B", text: RAG.docB }];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
/** Switch the Generation view's method (which asks again); the response. */
async function viaMethod(method) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/predictions/${causalLm}`) && r.request().method() === "POST"),
    page.click(`#gen-method label:has(input[value="${method}"])`),
  ]);
  await idle();
  check(response.ok(), `${causalLm} answered ${response.status()} to ${method}: ${await page.textContent("#error .message").catch(() => "")}`);
  return response.json();
}
const blocks = () => page.$$eval("#generation .gen-units[data-kind] .gen-source", (bs) =>
  bs.map((b) => ({ id: b.dataset.id, value: b.dataset.value === undefined ? null : Number(b.dataset.value), text: b.querySelector(".source-text").textContent })));
const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
/** The source blocks show `expected` ([{id, attribution}]) with the documents' texts. */
async function checkBlocks(expected, what) {
  const shown = await blocks();
  check(same(shown.map((b) => [b.id, b.text]), [["A", RAG.docA], ["B", RAG.docB]]), `source blocks ${JSON.stringify(shown)}`);
  check(expected.length === 2 && expected.every((e, k) => e.id === shown[k].id && close(shown[k].value, e.attribution)),
    `${what}: blocks ${JSON.stringify(shown.map((b) => b.value))} ≠ ${JSON.stringify(expected)}`);
  return shown.map((b) => `${b.id} ${b.value.toPrecision(3)}`).join(", ");
}
/** The turns drawn: each with its role and its tokens (the template's muted). */
async function checkTurns(result) {
  const turns = await page.$$eval("#generation .gen-turn", (ts) => ts.map((t) => [t.dataset.role, t.dataset.message, t.querySelectorAll(".gen-token").length]));
  const answerTokens = result.tokens.filter((t) => t.message === null || t.message === undefined || t.target).length;
  const expected = [["system", "0", result.messages[0].tokens.length], ["user", "1", result.messages[1].tokens.length], ["assistant", "answer", answerTokens]];
  check(same(turns, expected), `turns ${JSON.stringify(turns)}, expected ${JSON.stringify(expected)}`);
  const template = result.tokens.filter((t) => t.template && !t.target).length;
  const muted = await page.locator("#generation .gen-token.template").count();
  check(template > 0 && muted === template, `${muted} template tokens muted, the answer marks ${template}`);
  return `${turns.map(([role, , n]) => `${role} ${n}`).join(", ")} tokens (${template} of the template)`;
}

await step(`generation: a two-document RAG conversation; integrated gradients with ${RAG_STEPS} steps mark the rows outside the tolerance`, async () => {
  check(causalLm, "no causal LM's gradients archive is served");
  await page.fill("#generate", "");
  await page.fill("#foil", "");
  await page.uncheck("#words");
  await page.click("#clear-turns");
  await page.click("#add-turn");
  await page.click("#add-turn");
  const roles = await page.$$eval("#turns .turn-row select", (ss) => ss.map((s) => s.value));
  check(same(roles, ["system", "user"]), `new turns' roles ${roles}`);
  await page.fill('#turns .turn-row[data-turn="0"] textarea', RAG.system);
  await page.fill('#turns .turn-row[data-turn="1"] textarea', RAG.user);
  check(await page.isHidden("#text"), "the text is still offered beside the conversation");
  for (let k = 0; k < 2; k++) await page.click("#add-source");
  const ids = await page.$$eval("#source-rows .source-row input.source-id", (is) => is.map((i) => i.value));
  check(same(ids, ["A", "B"]), `new sources' ids ${ids}`);
  await page.fill('#source-rows .source-row[data-source="0"] textarea', RAG.docA);
  await page.fill('#source-rows .source-row[data-source="1"] textarea', RAG.docB);
  check((await page.locator('#source-rows .source-row[data-found="true"]').count()) === 2, "the sources are not found once in the conversation");
  await page.fill("#continuation", RAG.continuation);
  await page.click('#gen-method label:has(input[value="integrated_gradients"])');
  await page.fill("#gen-steps", String(RAG_STEPS));
  const response = await explain();
  check(response.ok(), `${causalLm} answered ${response.status()}: ${await page.textContent("#error .message").catch(() => "")}`);
  const result = await response.json();
  const sent = posted.at(-1).body;
  check(sent.n_steps === RAG_STEPS && sent.continuation === RAG.continuation && !("attribution" in sent) && same(sent.sources, ragSources) && same(sent.messages, ragMessages), `sent ${JSON.stringify(sent)}`);
  check(result.attribution === "integrated_gradients" && result.targets.every((t) => typeof t.within_tolerance === "boolean" && "relative_delta" in t),
    "the answer does not say which rows are within the tolerance");
  const off = result.targets.map((t, k) => [t, k]).filter(([t]) => !t.within_tolerance).map(([, k]) => k);
  check(off.length > 0 && result.within_tolerance === false, `${RAG_STEPS} steps left every row within ${result.tolerance}: nothing to mark (relative δ ${result.targets.map((t) => t.relative_delta)})`);
  await page.waitForSelector('#generation[data-method="integrated_gradients"][data-within="false"]');
  check((await page.getAttribute("#generation", "data-whole")) === "true", "a run with sources does not open on the whole answer's sources");
  const caption = await page.textContent("#generation .gen-heatmap-box figcaption");
  const box = await page.$eval("#generation .gen-heatmap-box", (b) => ({ scroll: b.scrollWidth, client: b.clientWidth }));
  check(box.scroll <= box.client || caption.includes("scroll sideways"), `a heatmap wider than its box (${box.scroll} > ${box.client}) does not say it scrolls: ${caption}`);
  const banner = await page.textContent("#generation .gen-tolerance.warn");
  check(banner.includes(`${off.length} of ${result.targets.length} row`) && banner.includes("outside the tolerance"), `banner: ${banner}`);
  const rowsOff = await page.$$eval("#generation svg.gen-heatmap g.hm-row.off", (gs) => gs.map((g) => [Number(g.dataset.row), g.querySelector("text.row-label").textContent]));
  check(same(rowsOff.map(([r]) => r), off) && rowsOff.every(([, label]) => /^⚠ [\d,.]+% /.test(label)), `rows marked ${JSON.stringify(rowsOff)}, off ${off}`);
  const chipsOff = await page.$$eval("#generation .gen-token.target.off", (bs) => bs.map((b) => [Number(b.dataset.target), b.querySelector(".off-badge")?.textContent ?? ""]));
  check(same(chipsOff.map(([k]) => k), off) && chipsOff.every(([, badge]) => /^⚠ [\d,.]+%$/.test(badge)), `chips marked ${JSON.stringify(chipsOff)}`);
  check(await page.locator("#generation .gen-whole.off").count(), "the whole answer is not marked");
  // An off row selected: its own warning, its δ, and its sources.
  const k = off.at(-1);
  await page.click(`#generation .gen-token.target[data-target="${k}"]`);
  await page.waitForSelector(`#generation .gen-details[data-row="${k}"]`);
  check(await page.locator("#generation .gen-row-off").isVisible(), "no warning over the selected off row");
  check(await page.locator("#generation .gen-details .convergence.warn").count(), "no convergence warning for the off row");
  const relative = await page.textContent("#generation .gen-relative.off");
  await checkBlocks(result.targets[k].source_attributions, `row ${k}`);
  const template = result.tokens.filter((t) => t.template && !t.target).length;
  const shaded = await page.locator("#generation .gen-token.prompt[data-value]").count();
  const nPrompt = result.tokens.filter((t) => !t.target).length;
  check(shaded === nPrompt - template, `${shaded} prompt tokens shaded, not the ${nPrompt - template} outside the template`);
  check((await page.locator('#generation .gen-turn[data-message="1"] .turn-value').count()) === 1, "no sum for the user message");
  const turns = await checkTurns(result);
  await shot("generation-rag-integrated-gradients");
  return `${turns}; ${off.length} of ${result.targets.length} rows outside ${result.tolerance * 100}% (row ${k}: ${relative}); banner: ${banner.slice(0, 70)}…`;
});

await step("generation: the method switch asks again: occlusion of each source", async () => {
  const result = await viaMethod("occlusion");
  const sent = posted.at(-1).body;
  check(same(sent.messages, ragMessages) && same(sent.sources, ragSources) && sent.continuation === RAG.continuation && sent.attribution === "occlusion" &&
    !["text", "n_steps", "baseline", "foil", "aggregate"].some((k) => k in sent), `sent ${JSON.stringify(sent)}`);
  check(result.attribution === "occlusion" && result.unit === "source" && result.units.length === 2, `answer: ${result.attribution}, ${result.unit}, ${result.units?.length} units`);
  await page.waitForSelector('#generation[data-method="occlusion"]');
  const turns = await checkTurns(result);
  check((await page.locator("#generation .gen-token[data-value]").count()) === 0, "occlusion's answer shaded tokens: it has no per-token values");
  check(Number(await page.getAttribute("#generation svg.gen-heatmap", "data-columns")) === 2 &&
    Number(await page.getAttribute("#generation svg.gen-heatmap", "data-rows")) === result.targets.length, "the heatmap is not targets × sources");
  const row = Number(await page.getAttribute("#generation", "data-row"));
  await checkBlocks(result.targets[row].attributions, `row ${row}`);
  await page.click("#generation .gen-whole");
  await page.waitForSelector('#generation[data-whole="true"]');
  const whole = await checkBlocks(result.continuation_attributions, "the whole answer");
  const scale = await page.textContent("#generation .gen-units .legend-scale");
  check(scale.includes("full colour at ±") && scale.includes("largest |value|"), `the colour scale's range is not said: ${scale}`);
  const said = await page.textContent("#generation .gen-unit-said");
  check(said.includes("log p(answer)") && said.includes("source"), `the whole answer's unit is not said: ${said}`);
  await shot("generation-rag-occlusion");
  return `${turns}; whole answer: ${whole}; ${result.forwards} prompts run`;
});

await step("generation: ContextCite shows the sources and the surrogate's fit", async () => {
  const result = await viaMethod("contextcite");
  const sent = posted.at(-1).body;
  check(sent.attribution === "contextcite" && same(sent.sources, ragSources) && same(sent.messages, ragMessages), `sent ${JSON.stringify(sent)}`);
  check(result.attribution === "contextcite" && result.surrogate, "no surrogate in the answer");
  await page.waitForSelector('#generation[data-method="contextcite"] .gen-surrogate');
  await checkTurns(result);
  const whole = await checkBlocks(result.continuation_attributions, "the whole answer"); // still selected
  const s = result.surrogate;
  const fixed = (v) => (v === null ? "undefined" : v.toFixed(3));
  const fit = {
    r2: await page.textContent("#generation .gen-surrogate .gen-r2"),
    spearman: await page.textContent("#generation .gen-surrogate .gen-spearman"),
    ablations: await page.textContent("#generation .gen-surrogate .gen-ablations"),
    distinct: await page.textContent("#generation .gen-surrogate .gen-distinct"),
  };
  check(fit.r2 === fixed(s.fit.r2) && fit.spearman === fixed(s.fit.spearman), `fit shown ${JSON.stringify(fit)}, answer ${JSON.stringify(s.fit)}`);
  check(fit.ablations === `${s.n_ablations} fit + ${s.n_holdout} held out` && fit.distinct === String(s.n_distinct_prompts), `surrogate shown ${JSON.stringify(fit)}`);
  const hash = new URL(page.url()).hash;
  check(hash.includes("attr=contextcite") && hash.includes("msgs=") && hash.includes("src="), `the conversation is not in the URL: ${hash.slice(0, 120)}`);
  await page.screenshot({ path: `${shots}/generation-rag.png`, fullPage: true });
  return `whole answer: ${whole}; R² ${fit.r2}, Spearman ${fit.spearman} on ${s.n_holdout} held-out masks; ${fit.ablations}, ${fit.distinct} distinct prompts; ${shots}/generation-rag.png`;
});

await step("generation: a reload restores the conversation, the sources and the method", async () => {
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/predictions/${causalLm}`) && r.request().method() === "POST"),
    page.reload(),
  ]);
  await page.waitForSelector('#generation[data-method="contextcite"] .gen-surrogate');
  const turns = await page.$$eval("#turns .turn-row", (rs) => rs.map((r) => [r.querySelector("select").value, r.querySelector("textarea").value]));
  check(same(turns, ragMessages.map((m) => [m.role, m.content])), `turns restored: ${JSON.stringify(turns)}`);
  const sources = await page.$$eval("#source-rows .source-row", (rs) => rs.map((r) => ({ id: r.querySelector("input").value, text: r.querySelector("textarea").value })));
  check(same(sources, ragSources), `sources restored: ${JSON.stringify(sources)}`);
  check(await page.isChecked('#gen-method input[value="contextcite"]'), "the method is not restored");
  check(same(posted.at(-1).body.messages, ragMessages), "the restored conversation was not the one asked");
  return "2 turns, 2 sources, ContextCite";
});

await step("generation: clearing the conversation gives the text back", async () => {
  await page.click("#clear-turns");
  while (await page.locator("#source-rows .source-row").count()) await page.click("#source-rows .source-row button.remove");
  check(await page.isVisible("#text"), "the text is not offered again");
  const hash = new URL(page.url()).hash;
  check(!hash.includes("msgs=") && !hash.includes("src="), `the URL still holds them: ${hash.slice(0, 120)}`);
  return "text mode";
});

// --- render time: reported, not asserted ----------------------------------------------------

let timing = "not measured";
await step(`render time of 128 tokens × ${timed.n_heads} heads`, async () => {
  const words = ["the", "cat", "sat", "on", "mat", "and", "dog", "ran", "to", "house", "big", "red"];
  await page.click('.tabs button[data-view="attention"]');
  await analyse(timed.name, Array.from({ length: 126 }, (_, i) => words[i % words.length]).join(" "));
  await page.click("#heads-all");
  const n = await page.locator("svg.attention-svg g.tokens.left g.token").count();
  const draws = [];
  const frames = [];
  for (let k = 0; k < 2 * timed.n_layers; k++) {
    const layer = k % timed.n_layers;
    // From the change event to the next painted frame, as a user would wait.
    const frame = await page.evaluate(async (l) => {
      const select = document.getElementById("layer");
      const t0 = performance.now();
      select.value = String(l);
      select.dispatchEvent(new Event("change"));
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      return performance.now() - t0;
    }, layer);
    frames.push(frame);
    draws.push(Number(await page.getAttribute("svg.attention-svg", "data-render-ms")));
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const curves = await edges();
  await shot("128-tokens");
  timing = `render ${n} tokens × ${timed.n_heads} heads (${timed.name}, ${curves} curves): ` +
    `median ${median(draws).toFixed(1)} ms to draw, ${median(frames).toFixed(1)} ms to the next frame, ` +
    `max ${Math.max(...frames).toFixed(1)} ms over ${frames.length} layer changes (goal ≤ 200 ms)`;
  return `${n} tokens`;
});
console.log(timing);

if (pageErrors.length) {
  console.log(`FAIL  uncaught errors in the page: ${pageErrors.join("; ")}`);
  steps.failed = true;
}
writeFileSync(`${shots}/timing.txt`, `${timing}\n`);
await browser.close();
console.log(steps.failed ? "e2e: FAILED" : "e2e: all steps passed");
process.exit(steps.failed ? 1 : 0);
