// The standalone visualizer: the app's own views drawn from a response embedded in the page
// (exformer.client.views.document / notebook: a result's save_html and _repr_html_). No server and
// no requests: everything comes from
//   <script type="application/json" id="exformer-data">{"kind": "attention"|"gradients", "response": {...}}</script>
// Built as one IIFE script + one CSS file (vite.standalone.config.ts → exformer/client/_static/).

import "./style.css";
import "./standalone.css";
import { attentionLayers, firstLayer, parseEmbedded, toggleHead, type Embedded } from "./embed";
import { headColor, type Aggregation } from "./transforms";
import type { AttentionResponse, GradientsResponse } from "./types";
import { AttentionView, attentionNotes } from "./views/attention";
import { renderPredictions } from "./views/predictions";
import { AttributionView } from "./views/attribution";
import { installHover } from "./views/hover";
import { OverviewView } from "./views/overview";

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function header(what: string, model: string, tabs?: HTMLElement): HTMLElement {
  const top = h("header", { class: "top standalone-top" }, h("h1", {}, "exformer"));
  if (tabs) top.append(tabs);
  top.append(h("span", { class: "server" }, `${what} · ${model}`));
  return top;
}

const checkbox = (label: string) => {
  const input = h("input", { type: "checkbox", class: "hide-special" });
  return { input, label: h("label", { class: "check" }, input, ` ${label}`) };
};

// --- attention: curves with head toggles, and the model overview ----------------------------

function mountAttention(root: HTMLElement, response: AttentionResponse) {
  const attention = attentionLayers(response);
  const model = response.model;
  const headName = (k: number) => attention.heads?.[k] ?? k;
  const state = {
    view: "attention" as "attention" | "overview",
    layer: firstLayer(attention),
    heads: null as number[] | null, // indices into the data; null: all
    agg: "mean" as Aggregation,
    hideSpecial: false,
    selected: null as number | null,
  };
  const selectedHeads = () => state.heads ?? Array.from({ length: attention.nHeads }, (_, k) => k);

  const tabButton = (view: typeof state.view, text: string) => h("button", { type: "button", role: "tab", "data-view": view }, text);
  const tabs = h("nav", { class: "tabs", role: "tablist" }, tabButton("attention", "Attention"), tabButton("overview", "Model overview"));

  const layer = h("select", { class: "layer" });
  for (const l of [...attention.layers.keys()].sort((a, b) => a - b)) layer.append(h("option", { value: String(l) }, String(l)));
  const agg = h("select", { class: "agg" }, h("option", { value: "mean" }, "mean"), h("option", { value: "max" }, "max"));
  const toggles = h("span", { class: "head-toggles" });
  const all = h("button", { type: "button", class: "link heads-all" }, "all");
  const none = h("button", { type: "button", class: "link heads-none" }, "none");
  const hide = checkbox("hide special tokens");
  const controls = h(
    "div",
    { class: "controls" },
    h("label", { class: "field-inline" }, "Layer ", layer),
    h("label", { class: "field-inline" }, "Heads combined by ", agg),
    h("div", { class: "heads" }, h("span", { class: "heads-title" }, "Heads"), toggles, all, none),
    hide.label,
  );
  const notes = h("p", { class: "notes attention-notes" });
  const graph = h("div", { class: "graph attention-graph" });
  const panel = h("aside", { class: "predictions-panel" });
  const attentionSection = h(
    "section",
    { class: "view card view-attention" },
    controls,
    h("p", { class: "hint" }, "Curve opacity is the attention weight; its colour is the selected head that gives the most. ",
      "Hover a token to isolate its edges; click it to see its predictions."),
    notes,
    h("div", { class: "attention-body" }, graph, panel),
  );
  const overviewRoot = h("div", { class: "overview" });
  const overviewSection = h(
    "section",
    { class: "view card view-overview" },
    h("p", { class: "hint" }, "Every layer × head of the model; darker = more attention (rows attend to columns). Click one to focus it."),
    overviewRoot,
  );
  root.append(header("attention", model.name, tabs), h("main", {}, attentionSection, overviewSection));

  const attentionView = new AttentionView(graph, (index) => {
    state.selected = state.selected === index ? null : index;
    redraw();
  });
  const overviewView = new OverviewView(overviewRoot, (l, k) => {
    if (!attention.layers.has(l)) return; // a layer this response does not hold
    Object.assign(state, { layer: l, heads: attention.nHeads === 1 ? null : [k], view: "attention" });
    layer.value = String(l);
    redraw();
  });
  const masked = response.tokens.filter((t) => t.masked).map((t) => t.index);

  function drawToggles() {
    toggles.replaceChildren(
      ...Array.from({ length: attention.nHeads }, (_, k) => {
        const b = h("button", { type: "button", class: "head", "data-head": String(headName(k)), title: `head ${headName(k)}` }, String(headName(k)));
        b.style.setProperty("--c", headColor(k, attention.nHeads));
        b.setAttribute("aria-pressed", String(state.heads === null || state.heads.includes(k)));
        b.addEventListener("click", () => {
          state.heads = toggleHead(state.heads, k, attention.nHeads);
          redraw();
        });
        return b;
      }),
    );
  }

  function redraw() {
    attentionSection.hidden = state.view !== "attention";
    overviewSection.hidden = state.view !== "overview";
    tabs.querySelectorAll<HTMLButtonElement>("button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === state.view)));
    drawToggles();
    const heads = selectedHeads();
    if (state.view === "overview") {
      overviewView.render(response.tokens, attention, model.n_layers, state.hideSpecial, { layer: state.layer, heads });
    } else {
      attentionView.render(response.tokens, attention, { layer: state.layer, heads, agg: state.agg, hideSpecial: state.hideSpecial, selected: state.selected });
      renderPredictions(panel, model, response.tokens, state.selected, masked, true);
      notes.textContent = attentionNotes(response, state.layer, heads.length, state.agg, attention.aggregate);
    }
    resized();
  }

  tabs.querySelectorAll<HTMLButtonElement>("button").forEach((b) =>
    b.addEventListener("click", () => {
      state.view = b.dataset.view as typeof state.view;
      redraw();
    }),
  );
  layer.addEventListener("change", () => {
    state.layer = Number(layer.value);
    redraw();
  });
  agg.addEventListener("change", () => {
    state.agg = agg.value as Aggregation;
    redraw();
  });
  all.addEventListener("click", () => {
    state.heads = null;
    redraw();
  });
  none.addEventListener("click", () => {
    state.heads = [];
    redraw();
  });
  hide.input.addEventListener("change", () => {
    state.hideSpecial = hide.input.checked;
    redraw();
  });
  layer.value = String(state.layer);
  redraw();
}

// --- gradients: token shading, prediction, convergence, path chart ---------------------------

function mountGradients(root: HTMLElement, response: GradientsResponse) {
  const hide = checkbox("hide special tokens");
  const body = h("div", { class: "attribution" });
  root.append(
    header("integrated gradients", response.model.name),
    h("main", {}, h("section", { class: "view card view-attribution" }, h("div", { class: "controls" }, hide.label), body)),
  );
  const view = new AttributionView(body);
  const redraw = () => {
    view.render(response, hide.input.checked, response.model.name);
    resized();
  };
  hide.input.addEventListener("change", redraw);
  redraw();
}

// --- start ------------------------------------------------------------------------------------

/**
 * Inside a notebook's iframe: tell the notebook our height (exformer.client.views.notebook listens).
 * The body's own height, not the document's scrollHeight: that is at least the iframe's
 * height, so it would only ever grow.
 */
let lastHeight = 0;
function resized() {
  if (window.parent === window) return;
  requestAnimationFrame(() => {
    const height = Math.ceil(document.body.getBoundingClientRect().height);
    if (height === lastHeight) return;
    lastHeight = height;
    window.parent.postMessage({ type: "exformer:height", height }, "*");
  });
}

export function mount(root: HTMLElement, payload: Embedded) {
  installHover(root.ownerDocument);
  root.classList.add("exformer-standalone");
  root.dataset.kind = payload.kind;
  if (payload.kind === "attention") mountAttention(root, payload.response);
  else mountGradients(root, payload.response);
  root.dataset.ready = "true";
}

function start() {
  const scripts = document.querySelectorAll<HTMLScriptElement>('script#exformer-data, script[type="application/json"][data-exformer]');
  if (!scripts.length) return;
  scripts.forEach((script) => {
    const root = h("div");
    script.after(root);
    try {
      mount(root, parseEmbedded(script.textContent));
    } catch (error) {
      root.replaceChildren(h("div", { class: "error", role: "alert" }, h("span", { class: "message" }, `exformer: ${(error as Error).message}`)));
      root.dataset.error = (error as Error).message;
      console.error(error);
    }
  });
  window.addEventListener("resize", resized);
  // The notebook's listener may start after our first message: it asks, we tell again.
  window.addEventListener("message", (e) => {
    if (e.source === window.parent && e.data?.type === "exformer:height?") {
      lastHeight = 0;
      resized();
    }
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
