// Wiring: config → models → the store (session.ts; its URL part in the hash) → views, which
// subscribe to it; inputs (controls.ts) set it; requests (api.ts) and downloads (download.ts)
// run from here.

import "./style.css";
import { ApiError, InferenceApi, attentionRequest, longPrompt, attributionRequest, generationRequest, loadConfig } from "./api";
import { $, Controls } from "./controls";
import { ATTRIBUTION_NAMES } from "./conversation";
import { downloadJson, downloadNpz } from "./download";
import { causalLms, generationFor } from "./generation";
import { resultFor } from "./gradients";
import { loadAttention } from "./load";
import { createAppStore, modelsOf, urlState, withEntry, type App } from "./session";
import { parseState, serializeState, STATE_KEYS, writeUrl } from "./state";
import { Status } from "./status";
import { AttentionPanel } from "./views/attention";
import { AttributionPanel } from "./views/attribution";
import { GenerationPanel } from "./views/generation";
import { OverviewPanel } from "./views/overview";
import { installHover } from "./views/hover";
import { PredictionsView } from "./views/predictions";

const store = createAppStore(location.hash);
const status = new Status($("busy"), $("error"));
let api: InferenceApi;

/** What an attention result depends on: another key means a new run (the heads asked change
 * with the length, and with "Heads combined by" for a long prompt). */
const textKey = (s: App) => JSON.stringify([s.model, s.text, s.pair]);
const inputKey = (s: App) => JSON.stringify([s.model, s.text, s.pair, longPrompt(s).heads, longPrompt(s).topK]);

/** The attention on screen is not the one the state asks for (asked again on a view switch,
 * a long prompt's mean/max, the rollout toggled on). */
const stale = (s: App) => Boolean(s.loaded && s.text.trim() && (s.loaded.key !== inputKey(s) || (s.rollout && !s.loaded.rollout)));

// The URL follows the shareable state; a view switch may need a run first.
store.subscribe(STATE_KEYS, (s) => writeUrl(urlState(s)));

new Controls(store, {
  run,
  modelChanged: runAttention,
  downloadJson: () => downloadJson(resultFor(store.state.gradients, store.state.gmodel)),
  downloadNpz: () => downloadNpz(api, status, resultFor(store.state.gradients, store.state.gmodel)),
  downloadGeneration: () => downloadJson(generationFor(store.state.generation, store.state.lm)),
  // A method switch, or "measure faithfulness" turned on, asks again where there is a prompt to explain.
  methodChanged: rerun,
  evaluateChanged: rerun,
});

function rerun() {
  const s = store.state;
  if ((s.view === "generation" || s.view === "attribution") && hasPrompt(s)) run();
}

/** Whether there is something to run: a text, or (Generation view) a conversation. */
function hasPrompt(s: App): boolean {
  return Boolean(s.text.trim() || (s.view === "generation" && s.messages.length));
}

store.subscribe(["view", "agg", "rollout"], (s) => {
  if ((s.view === "attention" || s.view === "overview") && stale(s)) runAttention();
});

const panels = [
  new AttentionPanel($("attention-graph"), $("attention-notes"), store, onTokenClick),
  new PredictionsView($("predictions"), store, () => {
    store.set({ mask: [] });
    runAttention();
  }),
  new OverviewPanel($("overview"), $("overview-notes"), store, (layer, head) =>
    // Heads combined on the server (a long prompt): a click picks the layer only.
    store.set(store.state.loaded?.aggregate ? { layer, view: "attention" } : { layer, heads: [head], view: "attention" }),
  ),
  new AttributionPanel($("attribution"), [$<HTMLButtonElement>("download-json"), $<HTMLButtonElement>("download-npz")], store),
  new GenerationPanel($("generation"), $<HTMLButtonElement>("gen-download-json"), store, (n) => {
    store.set({ generate: n }); // the Generation view's "generate instead": what the model itself writes
    run();
  }),
];
panels.forEach((p) => p.draw());

// --- start-up -------------------------------------------------------------------------

async function boot() {
  installHover();
  let config;
  try {
    config = await loadConfig();
  } catch (error) {
    status.showError(error);
    return;
  }
  api = new InferenceApi(config.inference);
  $("server").textContent = `inference API ${api.base}`;
  const attention = modelsOf(config, "attention");
  const grads = modelsOf(config, "gradients");
  const s = store.state;
  store.set({
    config,
    model: attention.includes(s.model) ? s.model : (attention[0] ?? ""),
    gmodel: grads.includes(s.gmodel) ? s.gmodel : (grads[0] ?? ""),
  });

  // Each attention model tells its layers, heads, mask token, labels for an empty request.
  const asked = await Promise.allSettled(
    attention.map(async (m) => {
      const d = await api.details(m);
      store.set({ details: withEntry(store.state.details, m, d) });
    }),
  );
  const failed = asked.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) status.showError(failed.reason);
  pickLm();
  const t = store.state;
  if (hasPrompt(t) && (t.view === "attribution" ? t.gmodel : t.view === "generation" ? t.lm : t.details.has(t.model))) run();
}

/** The generation model: the URL's if it is a causal LM, else the first one. */
function pickLm() {
  const s = store.state;
  const lms = causalLms(s.config, s.details, s.resultDetails);
  if (!lms.includes(s.lm)) store.set({ lm: lms[0] ?? "" });
}

window.addEventListener("hashchange", () => {
  if (location.hash.replace(/^#/, "") === serializeState(urlState(store.state))) return;
  // A pasted link: take it over whole.
  store.batch(() => store.set({ ...parseState(location.hash), loaded: null }));
  if (hasPrompt(store.state)) run();
});

// --- requests -----------------------------------------------------------------------

function run() {
  const view = store.state.view;
  if (view === "attribution") runAttribution();
  else if (view === "generation") runGeneration();
  else runAttention();
}

async function runAttention() {
  const s = store.state;
  const model = s.model;
  if (!api || !model) return;
  const key = inputKey(s);
  const text = textKey(s);
  if (s.loaded && s.loaded.text !== text) store.set({ mask: [], token: null }); // indices of another text
  const body = attentionRequest(store.state, s.details.get(model));
  const out = await status.track(`Attention on ${model}`, async (signal) => {
    const n = (store.state.details.get(model) ?? (await api.details(model, signal))).n_layers;
    return loadAttention(api, model, body, n, signal);
  });
  if (!out) return;
  const { response } = out;
  store.batch(() => {
    store.set({ details: withEntry(store.state.details, model, response.model), loaded: { ...out, key, text, model: response.model } });
    const token = store.state.token;
    if (token !== null && token >= response.tokens.length) store.set({ token: null });
  });
}

function onTokenClick(index: number) {
  const s = store.state;
  if (!s.loaded) return;
  const token = s.loaded.response.tokens[index];
  if (s.loaded.model.mask_token && !token.special) {
    // Masked models: clicking masks (or unmasks) the token and asks again.
    const mask = s.mask.includes(index) ? s.mask.filter((i) => i !== index) : [...s.mask, index].sort((a, b) => a - b);
    store.set({ mask, token: index });
    runAttention();
  } else {
    // Causal LMs (no mask token): the next-token predictions are already there.
    store.set({ token: s.token === index ? null : index });
  }
}

async function runAttribution() {
  const model = store.state.gmodel;
  if (!model) {
    status.showError(new ApiError("invalid", "No gradients model is served."));
    return;
  }
  const body = attributionRequest(store.state);
  const how = body.attribution ? ATTRIBUTION_NAMES[body.attribution] : `Integrated gradients, ${body.n_steps} steps`;
  const result = await status.track(`${how[0].toUpperCase()}${how.slice(1)} on ${model}${body.evaluate ? ", measuring faithfulness" : ""}`, (signal) =>
    api.gradients(model, body, signal));
  if (!result) return;
  store.set({ gradients: { result, model, body }, resultDetails: withEntry(store.state.resultDetails, model, result.model) });
}

async function runGeneration() {
  const model = store.state.lm;
  if (!model) {
    status.showError(new ApiError("invalid", "No causal LM's gradients archive is served."));
    return;
  }
  const body = generationRequest(store.state);
  const what = body.generate ? `${body.generate.max_new_tokens} generated tokens` : "the continuation";
  const how = (body.attribution && body.attribution !== "integrated_gradients"
    ? ATTRIBUTION_NAMES[body.attribution]
    : `integrated gradients, ${body.n_steps} steps`) + (body.evaluate ? ", measuring faithfulness" : "");
  const result = await status.track(`Explaining ${what} on ${model} (${how})`, (signal) => api.generation(model, body, signal));
  if (!result) return;
  const row = store.state.row;
  const before = store.state.generation?.body;
  // A new question (other prompt, answer or sources) starts from nothing chosen; another method on the same keeps the row.
  const asked = (b: typeof body) => JSON.stringify([b.text, b.messages, b.continuation, b.generate, b.sources]);
  const same = before !== undefined && asked(before) === asked(body);
  store.set({
    generation: { result, model, body },
    resultDetails: withEntry(store.state.resultDetails, model, result.model),
    row: same && row !== null && row < result.targets.length ? row : null,
    whole: same ? store.state.whole : false,
  });
}

boot();
