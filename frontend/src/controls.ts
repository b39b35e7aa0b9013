// The page's inputs ↔ the store: each input sets its key, and each key's change is shown in
// its input(s) (after start-up, a pasted link, a model change, or the same key's other input:
// baseline and steps appear in both the Attribution and the Generation view).

import { BASELINES, type Baseline } from "./contract";
import { ROLES, freeSourceId, nextRole, promptTexts, sourceHint, takes, type AttributionMethod, type GradientMethod, type SourceInput, type Unit } from "./conversation";
import { causalLms } from "./generation";
import { gradientsModelDetails, targetControl, TARGET_PLACEHOLDER } from "./gradients";
import { modelsOf, type App, type AppStore } from "./session";
import { parseSteps, type AppState, type View } from "./state";
import { headColor } from "./transforms";
import type { Message } from "./types";

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

export interface Actions {
  run(): void; // the form's Run (Enter in the text): the current view's request
  modelChanged(): void; // a new attention model: run its attention
  downloadJson(): void;
  downloadNpz(): void;
  downloadGeneration(): void;
  methodChanged(): void; // a method switch (Attribution, Generation): ask again with it
  evaluateChanged(): void; // "measure faithfulness" turned on: ask again with `evaluate`
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

function removeButton(label: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "link remove";
  b.textContent = "×";
  b.title = label;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
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
    document.querySelectorAll<HTMLInputElement>('input[name="attr-method"]').forEach((radio) =>
      radio.addEventListener("change", () => {
        if (!radio.checked) return;
        this.set({ attrMethod: radio.value as GradientMethod });
        this.actions.methodChanged();
      }),
    );
    // "measure faithfulness": one state in both views; turning it on asks again, off only hides the curves.
    for (const id of ["evaluate", "gen-evaluate"]) {
      $(id).addEventListener("change", () => {
        const on = $<HTMLInputElement>(id).checked;
        this.set({ evaluate: on });
        if (on) this.actions.evaluateChanged();
      });
    }
    for (const id of ["eval-unit", "gen-eval-unit"]) {
      $(id).addEventListener("change", () => this.set({ evalUnit: $<HTMLSelectElement>(id).value as Unit | "" }));
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
    document.querySelectorAll<HTMLInputElement>('input[name="gen-method"]').forEach((radio) =>
      radio.addEventListener("change", () => {
        if (!radio.checked) return;
        this.set({ method: radio.value as AttributionMethod });
        this.actions.methodChanged();
      }),
    );
    $("gen-unit").addEventListener("change", () => this.set({ unit: $<HTMLSelectElement>("gen-unit").value as Unit | "" }));
    // the conversation and the sources
    $("add-turn").addEventListener("click", () => {
      const messages = s().messages;
      this.set({ messages: [...messages, { role: nextRole(messages), content: "" }] });
      $("turns").querySelector<HTMLTextAreaElement>(".turn-row:last-child textarea")?.focus();
    });
    $("turns-from-text").addEventListener("click", () => this.set({ messages: [...s().messages, { role: "user", content: s().text }] }));
    for (const id of ["clear-turns", "chat-clear-top"]) $(id).addEventListener("click", () => this.set({ messages: [] }));
    $("add-source").addEventListener("click", () => {
      const sources = s().sources;
      this.set({ sources: [...sources, { id: freeSourceId(sources), text: "" }] });
      $("source-rows").querySelector<HTMLTextAreaElement>(".source-row:last-child textarea")?.focus();
    });
  }

  private setMessage(k: number, change: Partial<Message>) {
    this.set({ messages: this.store.state.messages.map((m, j) => (j === k ? { ...m, ...change } : m)) });
  }

  private setSource(k: number, change: Partial<SourceInput>) {
    this.set({ sources: this.store.state.sources.map((x, j) => (j === k ? { ...x, ...change } : x)) });
  }

  /** One editor row per turn: its role, its content, a remove button. Rows are made when their
   * number changes, and otherwise only their values follow the state (the caret stays). */
  private syncTurns() {
    const s = this.store.state;
    const box = $("turns");
    if (box.children.length !== s.messages.length) {
      box.replaceChildren(
        ...s.messages.map((_, k) => {
          const row = document.createElement("div");
          row.className = "turn-row";
          row.dataset.turn = String(k);
          row.dataset.field = `messages[${k}]`;
          const role = document.createElement("select");
          role.className = "turn-role";
          role.setAttribute("aria-label", `turn ${k + 1}: role`);
          fillSelect(role, ROLES.map((r) => [r, r]));
          role.addEventListener("change", () => this.setMessage(k, { role: role.value as Message["role"] }));
          const content = document.createElement("textarea");
          content.className = "turn-content";
          content.rows = 2;
          content.setAttribute("aria-label", `turn ${k + 1}: content`);
          content.placeholder = "what this turn says";
          content.addEventListener("input", () => this.setMessage(k, { content: content.value }));
          content.addEventListener("keydown", (e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              this.actions.run();
            }
          });
          row.append(role, content, removeButton(`remove turn ${k + 1}`, () => this.set({ messages: this.store.state.messages.filter((_, j) => j !== k) })));
          return row;
        }),
      );
    }
    s.messages.forEach((m, k) => {
      const row = box.children[k] as HTMLElement;
      show(row.querySelector<HTMLSelectElement>("select")!, m.role);
      const content = row.querySelector<HTMLTextAreaElement>("textarea")!;
      show(content, m.content);
      content.rows = Math.min(8, Math.max(2, m.content.split("\n").length)); // a document or two in view
      row.dataset.role = m.role;
    });
    document.body.toggleAttribute("data-chat", s.messages.length > 0);
    $("turns-editor").classList.toggle("empty", !s.messages.length);
  }

  /** One editor row per source: its id, its text, whether the text occurs once in the prompt. */
  private syncSources() {
    const s = this.store.state;
    const box = $("source-rows");
    if (box.children.length !== s.sources.length) {
      box.replaceChildren(
        ...s.sources.map((_, k) => {
          const row = document.createElement("div");
          row.className = "source-row";
          row.dataset.source = String(k);
          row.dataset.field = `sources[${k}]`;
          const id = document.createElement("input");
          id.type = "text";
          id.className = "source-id";
          id.size = 8;
          id.placeholder = "id";
          id.setAttribute("aria-label", `source ${k + 1}: id`);
          id.addEventListener("input", () => this.setSource(k, { id: id.value }));
          const text = document.createElement("textarea");
          text.className = "source-text";
          text.rows = 2;
          text.placeholder = "its text, as it appears in the prompt";
          text.setAttribute("aria-label", `source ${k + 1}: text`);
          text.addEventListener("input", () => this.setSource(k, { text: text.value }));
          const hint = document.createElement("span");
          hint.className = "source-hint";
          row.append(id, text, removeButton(`remove source ${k + 1}`, () => this.set({ sources: this.store.state.sources.filter((_, j) => j !== k) })), hint);
          return row;
        }),
      );
    }
    const texts = promptTexts(s);
    s.sources.forEach((x, k) => {
      const row = box.children[k] as HTMLElement;
      show(row.querySelector<HTMLInputElement>("input")!, x.id);
      show(row.querySelector<HTMLTextAreaElement>("textarea")!, x.text);
      const hint = sourceHint(texts, x.text);
      const span = row.querySelector<HTMLElement>(".source-hint")!;
      span.textContent = hint.text;
      span.classList.toggle("ok", hint.ok);
      row.dataset.found = String(hint.ok);
    });
  }

  /** The method switches; what a method does not read (its `data-methods` do not name it) is
   * disabled, as the server would refuse it; the unit left out only for the forward-only ones. */
  private syncMethod() {
    const s = this.store.state;
    const views: [string, string, AttributionMethod][] = [["view-attribution", "attr-method", s.attrMethod], ["view-generation", "gen-method", s.method]];
    for (const [view, name, method] of views) {
      document.querySelectorAll<HTMLInputElement>(`input[name="${name}"]`).forEach((r) => (r.checked = r.value === method));
      $(view).dataset.method = method;
      document.querySelectorAll<HTMLElement>(`#${view} .method-only`).forEach((label) => {
        const on = (label.dataset.methods ?? "").split(" ").includes(method);
        label.classList.toggle("off", !on);
        label.querySelectorAll<HTMLInputElement | HTMLSelectElement>("input, select").forEach((i) => (i.disabled = !on));
      });
    }
    document.querySelectorAll<HTMLElement>("#view-generation .forward-only").forEach((label) => (label.hidden = !takes(s.method, "unit")));
    show($<HTMLSelectElement>("gen-unit"), s.unit);
    for (const id of ["evaluate", "gen-evaluate"]) $<HTMLInputElement>(id).checked = s.evaluate;
    for (const id of ["eval-unit", "gen-eval-unit"]) {
      const select = $<HTMLSelectElement>(id);
      // A classifier's units are tokens, words or sentences: a source chosen in the Generation view is not offered here.
      show(select, [...select.options].some((o) => o.value === s.evalUnit) ? s.evalUnit : "");
      if (!s.evaluate) select.disabled = true;
      else if (!select.closest(".method-only.off")) select.disabled = false;
    }
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
    this.syncMethod();
    this.syncTurns();
    this.syncSources();
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
