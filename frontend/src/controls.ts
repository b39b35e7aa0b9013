// The page's inputs ↔ the store: each input sets its key, and each key's change is shown in
// its input(s) (after start-up, a pasted link, a model change, or the same key's other input:
// baseline and steps appear in both the Attribution and the Generation view).

import { BASELINES, type Baseline } from "./contract";
import { causalLms } from "./generation";
import { gradientsModelDetails, targetControl, TARGET_PLACEHOLDER } from "./gradients";
import { modelsOf, type App, type AppStore } from "./session";
import { parseSteps, type AppState, type View } from "./state";
import { headColor } from "./transforms";

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export interface Actions {
  run(): void; // the form's Run (Enter in the text): the current view's request
  modelChanged(): void; // a new attention model: run its attention
  downloadJson(): void;
  downloadNpz(): void;
  downloadGeneration(): void;
}

export function fillSelect(select: HTMLSelectElement, options: [string, string][]) {
  const same = select.options.length === options.length && options.every(([v, t], k) => select.options[k].value === v && select.options[k].text === t);
  if (same) return;
  select.replaceChildren(
    ...options.map(([value, text]) => {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = text;
      return o;
    }),
  );
}

/** Set an input's value only when it differs (else the caret jumps while typing). */
function show(input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, value: string) {
  if (input.value !== value) input.value = value;
}

const positiveInt = (value: string) => {
  const v = Number(value);
  return Number.isInteger(v) && v > 0 ? v : null;
};

export class Controls {
  constructor(
    private readonly store: AppStore,
    private readonly actions: Actions,
  ) {
    this.bind();
    fillSelect($("baseline"), BASELINES.map((b) => [b, b]));
    fillSelect($("gen-baseline"), BASELINES.map((b) => [b, b]));
    store.subscribe(null, () => this.sync());
    store.subscribe(["model", "details"], (s) => this.clampToModel(s));
    this.sync();
  }

  private set(change: Partial<App>) {
    this.store.set(change);
  }

  private bind() {
    const s = () => this.store.state;
    document.querySelectorAll<HTMLButtonElement>(".tabs button").forEach((b) =>
      b.addEventListener("click", () => this.set({ view: b.dataset.view as View })),
    );
    $("input").addEventListener("submit", (event) => {
      event.preventDefault();
      this.actions.run();
    });
    $("text").addEventListener("input", () => this.set({ text: $<HTMLTextAreaElement>("text").value }));
    $("pair").addEventListener("input", () => this.set({ pair: $<HTMLTextAreaElement>("pair").value }));
    $("text").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        this.actions.run();
      }
    });
    $("hide-special").addEventListener("change", () => this.set({ hideSpecial: $<HTMLInputElement>("hide-special").checked }));
    // attention and overview
    $("model").addEventListener("change", () => {
      this.set({ model: $<HTMLSelectElement>("model").value, mask: [], token: null, heads: null });
      if (s().text.trim()) this.actions.modelChanged();
    });
    $("layer").addEventListener("change", () => this.set({ layer: Number($<HTMLSelectElement>("layer").value) }));
    $("agg").addEventListener("change", () => this.set({ agg: $<HTMLSelectElement>("agg").value as AppState["agg"] }));
    $("heads-all").addEventListener("click", () => this.setHeads(null));
    $("heads-none").addEventListener("click", () => this.setHeads([]));
    $("rollout").addEventListener("change", () => this.set({ rollout: $<HTMLInputElement>("rollout").checked }));
    // attribution
    $("gmodel").addEventListener("change", () =>
      // The previous model's result: never shown as this one's.
      this.set({ gmodel: $<HTMLSelectElement>("gmodel").value, target: "", gradients: null }),
    );
    $("target-select").addEventListener("change", () => this.set({ target: $<HTMLSelectElement>("target-select").value }));
    // Not trimmed: a causal LM's next token is often " Paris", leading space and all.
    $("target-text").addEventListener("input", () => {
      const value = $<HTMLInputElement>("target-text").value;
      this.set({ target: value.trim() ? value : "" });
    });
    for (const id of ["baseline", "gen-baseline"]) {
      $(id).addEventListener("change", () => this.set({ baseline: $<HTMLSelectElement>(id).value as Baseline }));
    }
    // No client-side clamp: the server's own message names the limit (n_steps: 1..max_n_steps).
    for (const id of ["steps", "gen-steps"]) {
      $(id).addEventListener("input", () => {
        const v = parseSteps($<HTMLInputElement>(id).value);
        if (v !== null) this.set({ steps: v });
      });
    }
    $("download-json").addEventListener("click", () => this.actions.downloadJson());
    $("download-npz").addEventListener("click", () => this.actions.downloadNpz());
    // generation
    $("lm").addEventListener("change", () => this.set({ lm: $<HTMLSelectElement>("lm").value, generation: null, row: null }));
    // Not trimmed either: " Paris" is one token, "Paris" another.
    $("continuation").addEventListener("input", () => this.set({ continuation: $<HTMLInputElement>("continuation").value }));
    $("generate").addEventListener("input", () => {
      const raw = $<HTMLInputElement>("generate").value.trim();
      const v = raw === "" ? 0 : positiveInt(raw);
      if (v !== null) this.set({ generate: v });
    });
    $("foil").addEventListener("input", () => this.set({ foil: $<HTMLInputElement>("foil").value }));
    $("words").addEventListener("change", () => this.set({ words: $<HTMLInputElement>("words").checked }));
    $("gen-download-json").addEventListener("click", () => this.actions.downloadGeneration());
  }

  private setHeads(heads: number[] | null) {
    const d = this.store.state.details.get(this.store.state.model);
    if (d && heads && heads.length === d.n_heads) heads = null;
    this.set({ heads });
  }

  /** A layer or heads the (new) model does not have fall back to ones it has. */
  private clampToModel(s: App) {
    const d = s.details.get(s.model);
    if (!d) return;
    const change: Partial<App> = {};
    if (s.layer >= d.n_layers) change.layer = d.n_layers - 1;
    if (s.heads) change.heads = s.heads.filter((h) => h < d.n_heads);
    this.set(change);
  }

  /** State → every input. */
  sync() {
    const s = this.store.state;
    for (const v of ["attention", "overview", "attribution", "generation"] as View[]) $(`view-${v}`).hidden = v !== s.view;
    document.body.dataset.view = s.view; // the generation view takes no sentence pair (style.css)
    document.querySelectorAll<HTMLButtonElement>(".tabs button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === s.view)));
    show($<HTMLTextAreaElement>("text"), s.text);
    show($<HTMLTextAreaElement>("pair"), s.pair);
    $<HTMLInputElement>("hide-special").checked = s.hideSpecial;
    const attention = modelsOf(s.config, "attention");
    fillSelect($("model"), attention.map((m) => [m, m]));
    fillSelect($("gmodel"), modelsOf(s.config, "gradients").map((m) => [m, m]));
    const lms = causalLms(s.config, s.details, s.resultDetails);
    fillSelect($("lm"), lms.map((m) => [m, m]));
    show($<HTMLSelectElement>("model"), s.model);
    show($<HTMLSelectElement>("agg"), s.agg);
    show($<HTMLSelectElement>("gmodel"), s.gmodel);
    show($<HTMLSelectElement>("lm"), s.lm);
    for (const id of ["baseline", "gen-baseline"]) show($<HTMLSelectElement>(id), s.baseline);
    for (const id of ["steps", "gen-steps"]) if (parseSteps($<HTMLInputElement>(id).value) !== s.steps) show($<HTMLInputElement>(id), String(s.steps));
    $<HTMLInputElement>("rollout").checked = s.rollout;
    show($<HTMLInputElement>("continuation"), s.continuation);
    if (($<HTMLInputElement>("generate").value.trim() === "" ? 0 : Number($<HTMLInputElement>("generate").value)) !== s.generate) {
      show($<HTMLInputElement>("generate"), s.generate ? String(s.generate) : "");
    }
    show($<HTMLInputElement>("foil"), s.foil);
    $<HTMLInputElement>("words").checked = s.words;
    const d = s.details.get(s.model);
    if (d) {
      fillSelect($("layer"), Array.from({ length: d.n_layers }, (_, l) => [String(l), String(l)]));
      show($<HTMLSelectElement>("layer"), String(s.layer));
    }
    this.drawHeadToggles();
    this.syncTargets();
  }

  private drawHeadToggles() {
    const s = this.store.state;
    const d = s.details.get(s.model);
    const box = $("heads");
    // A long prompt's heads come combined on the server: nothing to toggle.
    box.parentElement!.classList.toggle("aggregated", Boolean(s.loaded?.aggregate));
    if (!d) {
      box.replaceChildren();
      return;
    }
    const key = JSON.stringify([d.name, d.n_heads]);
    if (box.dataset.key !== key) {
      box.dataset.key = key;
      box.replaceChildren(
        ...Array.from({ length: d.n_heads }, (_, h) => {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "head";
          b.textContent = String(h);
          b.dataset.head = String(h);
          b.style.setProperty("--c", headColor(h, d.n_heads));
          b.title = `head ${h}`;
          b.addEventListener("click", () => {
            const on = this.store.state.heads ?? Array.from({ length: d.n_heads }, (_, k) => k);
            this.setHeads(on.includes(h) ? on.filter((k) => k !== h) : [...on, h].sort((a, b2) => a - b2));
          });
          return b;
        }),
      );
    }
    box.querySelectorAll<HTMLButtonElement>("button.head").forEach((b) => {
      const h = Number(b.dataset.head);
      b.setAttribute("aria-pressed", String(s.heads === null || s.heads.includes(h)));
    });
  }

  /** The target control follows the selected gradients model: its labels (classifier), a next
   * token typed as text or #id (causal LM), or free text while its details are unknown. */
  private syncTargets() {
    const s = this.store.state;
    const control = targetControl(gradientsModelDetails(s.gmodel, s.details, s.resultDetails));
    const select = $<HTMLSelectElement>("target-select");
    const text = $<HTMLInputElement>("target-text");
    select.hidden = control.kind !== "label";
    text.hidden = control.kind === "label";
    text.placeholder = TARGET_PLACEHOLDER[control.kind];
    $("view-attribution").dataset.target = control.kind;
    if (control.kind === "label") {
      fillSelect(select, [["", TARGET_PLACEHOLDER.label], ...control.labels.map((l): [string, string] => [l, l])]);
      show(select, control.labels.includes(s.target) ? s.target : "");
    } else {
      select.replaceChildren();
      // Shown as typed: the state holds "" for a blank entry, which must not wipe the spaces.
      if (text.value.trim() ? text.value !== s.target : s.target) text.value = s.target;
    }
  }
}
