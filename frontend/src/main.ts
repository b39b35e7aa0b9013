// Wiring: config → models → controls ↔ state (URL) → requests → views.

import "./style.css";
import { ApiError, InferenceApi, loadConfig } from "./api";
import { BASELINES, type Baseline } from "./contract";
import { saveBlob } from "./download";
import {
  gradientsModelDetails,
  resultFor,
  targetControl,
  targetValue,
  TARGET_PLACEHOLDER,
  type HeldResult,
} from "./gradients";
import { loadAttention, type LoadedAttention } from "./load";
import { parseState, serializeState, writeUrl, type AppState, type View } from "./state";
import { Status } from "./status";
import { headColor } from "./transforms";
import type { AppConfig, AttentionRequest, GradientsRequest, ModelDetails } from "./types";
import { AttentionView, attentionNotes, renderPredictions } from "./views/attention";
import { AttributionView } from "./views/attribution";
import { OverviewView } from "./views/overview";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const state: AppState = parseState(location.hash);
const status = new Status($("busy"), $("error"));
const details = new Map<string, ModelDetails>(); // attention models' details, asked at start
const resultDetails = new Map<string, ModelDetails>(); // gradients model → the `model` block of its last result
let config: AppConfig = { inference: "", models: [] };
let api: InferenceApi;

/** The attention on screen, and what it was computed for (a different text means a new run). */
interface Loaded extends LoadedAttention {
  key: string;
  model: ModelDetails;
}
let loaded: Loaded | null = null;
/** The last attribution, for the model it was computed for (shown only while that model is selected). */
let gradients: HeldResult | null = null;

const attentionView = new AttentionView($("attention-graph"), onTokenClick);
const overviewView = new OverviewView($("overview"), (layer, head) => {
  update({ layer, heads: [head], view: "attention" });
  syncControls();
  showView();
});
const attributionView = new AttributionView($("attribution"));

function update(change: Partial<AppState>) {
  Object.assign(state, change);
  writeUrl(state);
}

const modelsOf = (handler: string) => config.models.filter((m) => m.handler === handler).map((m) => m.name);
const inputKey = () => JSON.stringify([state.model, state.text, state.pair]);

// --- start-up -------------------------------------------------------------------------

async function boot() {
  bindControls();
  showView();
  try {
    config = await loadConfig();
  } catch (error) {
    status.showError(error);
    return;
  }
  api = new InferenceApi(config.inference);
  $("server").textContent = `inference API ${api.base}`;
  const attention = modelsOf("attention");
  const grads = modelsOf("gradients");
  if (!attention.includes(state.model)) state.model = attention[0] ?? "";
  if (!grads.includes(state.gmodel)) state.gmodel = grads[0] ?? "";
  fillSelect($("model"), attention.map((m) => [m, m]));
  fillSelect($("gmodel"), grads.map((m) => [m, m]));
  writeUrl(state);

  // Each attention model tells its layers, heads, mask token, labels for an empty request.
  const asked = await Promise.allSettled(attention.map(async (m) => details.set(m, await api.details(m))));
  const failed = asked.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) status.showError(failed.reason);
  syncControls();
  if (state.text.trim() && (state.view !== "attribution" ? details.has(state.model) : state.gmodel)) run();
}

function fillSelect(select: HTMLSelectElement, options: [string, string][]) {
  select.replaceChildren(
    ...options.map(([value, text]) => {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = text;
      return o;
    }),
  );
}

// --- controls ↔ state ---------------------------------------------------------------

function bindControls() {
  document.querySelectorAll<HTMLButtonElement>(".tabs button").forEach((b) =>
    b.addEventListener("click", () => {
      update({ view: b.dataset.view as View });
      showView();
    }),
  );
  $("input").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  $("text").addEventListener("input", () => update({ text: $<HTMLTextAreaElement>("text").value }));
  $("pair").addEventListener("input", () => update({ pair: $<HTMLTextAreaElement>("pair").value }));
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      run();
    }
  });
  $("hide-special").addEventListener("change", () => {
    update({ hideSpecial: $<HTMLInputElement>("hide-special").checked });
    redraw();
  });
  $("model").addEventListener("change", () => {
    update({ model: $<HTMLSelectElement>("model").value, mask: [], token: null, heads: null });
    syncControls();
    if (state.text.trim()) runAttention();
  });
  $("layer").addEventListener("change", () => {
    update({ layer: Number($<HTMLSelectElement>("layer").value) });
    redraw();
  });
  $("agg").addEventListener("change", () => {
    update({ agg: $<HTMLSelectElement>("agg").value as AppState["agg"] });
    redraw();
  });
  $("heads-all").addEventListener("click", () => setHeads(null));
  $("heads-none").addEventListener("click", () => setHeads([]));
  $("predictions").addEventListener("click", (e) => {
    if ((e.target as HTMLElement).id === "unmask") {
      update({ mask: [] });
      runAttention();
    }
  });
  $("gmodel").addEventListener("change", () => {
    update({ gmodel: $<HTMLSelectElement>("gmodel").value, target: "" });
    gradients = null; // the previous model's result: never shown as this one's
    syncTargets();
    showView();
  });
  $("target-select").addEventListener("change", () => update({ target: $<HTMLSelectElement>("target-select").value }));
  // Not trimmed: a causal LM's next token is often " Paris", leading space and all.
  $("target-text").addEventListener("input", () => {
    const value = $<HTMLInputElement>("target-text").value;
    update({ target: value.trim() ? value : "" });
  });
  $("baseline").addEventListener("change", () => update({ baseline: $<HTMLSelectElement>("baseline").value as Baseline }));
  // No client-side clamp: the server's own message names the limit (n_steps: 1..max_n_steps).
  $("steps").addEventListener("input", () => {
    const v = Number($<HTMLInputElement>("steps").value);
    if (Number.isInteger(v) && v > 0) update({ steps: v });
  });
  $("download-json").addEventListener("click", downloadJson);
  $("download-npz").addEventListener("click", downloadNpz);
  fillSelect($("baseline"), BASELINES.map((b) => [b, b]));
  window.addEventListener("hashchange", () => {
    if (location.hash.replace(/^#/, "") === serializeState(state)) return;
    Object.assign(state, parseState(location.hash)); // a pasted link: take it over whole
    loaded = null;
    syncControls();
    showView();
    if (state.text.trim()) run();
  });
}

/** State → every input (after start-up, a pasted link, or a model change). */
function syncControls() {
  $<HTMLTextAreaElement>("text").value = state.text;
  $<HTMLTextAreaElement>("pair").value = state.pair;
  $<HTMLInputElement>("hide-special").checked = state.hideSpecial;
  $<HTMLSelectElement>("model").value = state.model;
  $<HTMLSelectElement>("agg").value = state.agg;
  $<HTMLSelectElement>("gmodel").value = state.gmodel;
  $<HTMLSelectElement>("baseline").value = state.baseline;
  $<HTMLInputElement>("steps").value = String(state.steps);
  const d = details.get(state.model);
  if (d) {
    if (state.layer >= d.n_layers) update({ layer: d.n_layers - 1 });
    fillSelect($("layer"), Array.from({ length: d.n_layers }, (_, l) => [String(l), String(l)]));
    $<HTMLSelectElement>("layer").value = String(state.layer);
    if (state.heads) update({ heads: state.heads.filter((h) => h < d.n_heads) });
  }
  drawHeadToggles();
  syncTargets();
}

function drawHeadToggles() {
  const d = details.get(state.model);
  const box = $("heads");
  box.replaceChildren();
  if (!d) return;
  for (let h = 0; h < d.n_heads; h++) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "head";
    b.textContent = String(h);
    b.dataset.head = String(h);
    b.style.setProperty("--c", headColor(h, d.n_heads));
    b.setAttribute("aria-pressed", String(state.heads === null || state.heads.includes(h)));
    b.title = `head ${h}`;
    b.addEventListener("click", () => {
      const on = state.heads ?? Array.from({ length: d.n_heads }, (_, k) => k);
      setHeads(on.includes(h) ? on.filter((k) => k !== h) : [...on, h].sort((a, b2) => a - b2));
    });
    box.append(b);
  }
}

function setHeads(heads: number[] | null) {
  const d = details.get(state.model);
  if (d && heads && heads.length === d.n_heads) heads = null;
  update({ heads });
  drawHeadToggles();
  redraw();
}

const selectedHeads = (nHeads: number) => state.heads ?? Array.from({ length: nHeads }, (_, h) => h);

/** The target control follows the selected gradients model: its labels (classifier), a next
 * token typed as text or #id (causal LM), or free text while its details are unknown. */
function syncTargets() {
  const control = targetControl(gradientsModelDetails(state.gmodel, details, resultDetails));
  const select = $<HTMLSelectElement>("target-select");
  const text = $<HTMLInputElement>("target-text");
  select.hidden = control.kind !== "label";
  text.hidden = control.kind === "label";
  text.placeholder = TARGET_PLACEHOLDER[control.kind];
  $("view-attribution").dataset.target = control.kind;
  if (control.kind === "label") {
    fillSelect(select, [["", TARGET_PLACEHOLDER.label], ...control.labels.map((l): [string, string] => [l, l])]);
    select.value = control.labels.includes(state.target) ? state.target : "";
  } else {
    select.replaceChildren();
    text.value = state.target;
  }
}

/** Downloads are of the result on screen, so only while the selected model has one. */
function syncDownloads() {
  const none = !resultFor(gradients, state.gmodel);
  $<HTMLButtonElement>("download-json").disabled = none;
  $<HTMLButtonElement>("download-npz").disabled = none;
}

function showView() {
  for (const v of ["attention", "overview", "attribution"] as View[]) {
    $(`view-${v}`).hidden = v !== state.view;
  }
  document.querySelectorAll<HTMLButtonElement>(".tabs button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === state.view)));
  if (state.view === "attribution") {
    if (!modelsOf("gradients").length && config.models.length) attributionView.message("No gradients model is served (deploy/models.txt lists none).");
    else redraw();
  } else if (loaded && loaded.key !== inputKey() && state.text.trim()) {
    runAttention();
  } else {
    redraw();
  }
}

// --- requests -----------------------------------------------------------------------

function run() {
  if (state.view === "attribution") runAttribution();
  else runAttention();
}

async function runAttention() {
  const model = state.model;
  if (!api || !model) return;
  // An empty text goes to the server too: its 400 names the field, one source of truth.
  const key = inputKey();
  if (loaded && loaded.key !== key) update({ mask: [], token: null }); // indices of another text
  const d = details.get(model);
  const body: AttentionRequest = { text: state.text, heads: "all", encoding: "float16-base64" };
  if (state.pair.trim()) body.text_pair = state.pair;
  if (state.mask.length && d?.mask_token) body.mask = state.mask;
  const out = await status.track(`Attention on ${model}`, async (signal) => {
    const n = (details.get(model) ?? (await api.details(model, signal))).n_layers;
    return loadAttention(api, model, body, n, signal);
  });
  if (!out) return;
  const { response } = out;
  details.set(model, response.model);
  loaded = { ...out, key, model: response.model };
  if (state.token !== null && state.token >= response.tokens.length) update({ token: null });
  syncControls();
  redraw();
}

function onTokenClick(index: number) {
  if (!loaded) return;
  const token = loaded.response.tokens[index];
  if (loaded.model.mask_token && !token.special) {
    // Masked models: clicking masks (or unmasks) the token and asks again.
    const mask = state.mask.includes(index) ? state.mask.filter((i) => i !== index) : [...state.mask, index].sort((a, b) => a - b);
    update({ mask, token: index });
    runAttention();
  } else {
    // Causal LMs (no mask token): the next-token predictions are already there.
    update({ token: state.token === index ? null : index });
    redraw();
  }
}

function attributionBody(): GradientsRequest {
  const body: GradientsRequest = {
    text: state.text,
    baseline: state.baseline,
    n_steps: state.steps,
    return: ["attributions", "step_sizes", "path_scores"],
  };
  if (state.pair.trim()) body.text_pair = state.pair;
  const target = targetValue(state.target);
  if (target !== undefined) body.target = target;
  return body;
}

async function runAttribution() {
  const model = state.gmodel;
  if (!model) {
    status.showError(new ApiError("invalid", "No gradients model is served."));
    return;
  }
  const body = attributionBody();
  const result = await status.track(`Integrated gradients on ${model} (${body.n_steps} steps)`, (signal) => api.gradients(model, body, signal));
  if (!result) return;
  gradients = { result, model, body };
  resultDetails.set(model, result.model);
  syncTargets();
  syncDownloads();
  redraw();
}

// --- drawing ------------------------------------------------------------------------

function redraw() {
  if (state.view === "attribution") {
    syncDownloads();
    const held = resultFor(gradients, state.gmodel);
    if (held) attributionView.render(held.result, state.hideSpecial, held.model);
    else attributionView.message(`Choose a target, baseline and steps for ${state.gmodel || "a model"}, then Run.`);
    return;
  }
  if (!loaded) {
    $("attention-notes").textContent = state.text ? "" : "Type a text and press Run.";
    if (state.view === "overview") overviewView.message("Run a text first: the overview shows its attention.");
    return;
  }
  const { response, attention, model } = loaded;
  const heads = selectedHeads(attention.nHeads);
  if (state.view === "overview") {
    overviewView.render(response.tokens, attention, model.n_layers, state.hideSpecial, { layer: state.layer, heads });
    return;
  }
  attentionView.render(response.tokens, attention, {
    layer: state.layer,
    heads,
    agg: state.agg,
    hideSpecial: state.hideSpecial,
    selected: state.token,
  });
  renderPredictions($("predictions"), model, response.tokens, state.token, state.mask);
  $("attention-notes").textContent = attentionNotes(response, state.layer, heads.length, state.agg);
}

// --- downloads ----------------------------------------------------------------------

const fileStem = (held: HeldResult) => `${held.model}-${held.body.baseline}-${held.body.n_steps}`;

function downloadJson() {
  const held = resultFor(gradients, state.gmodel);
  if (!held) return;
  saveBlob(new Blob([JSON.stringify(held.result, null, 2)], { type: "application/json" }), `${fileStem(held)}.json`);
}

/** The full tensors (intermediate gradients too) come from a second request in "npz" format. */
async function downloadNpz() {
  const current = resultFor(gradients, state.gmodel);
  if (!current) return;
  const { return: _summaryOnly, ...body } = current.body; // npz defaults to every tensor
  const blob = await status.track(`Fetching .npz from ${current.model}`, (signal) => api.gradientsNpz(current.model, body, signal));
  if (blob) saveBlob(blob, `${fileStem(current)}.npz`);
}

boot();
