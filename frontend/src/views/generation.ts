// Generation view: a causal LM's prompt and generated (or given) tokens; the attribution matrix
// as a heatmap (rows = target tokens, columns = tokens; row t has len(prompt) + t values); a
// click on a target token shades the text by its row and shows its probability, entropy,
// alternatives, foil and convergence.

import { create, format } from "d3";
import { attributionMatrix, causalLms, generationFor, hasWords, promptLength, rowValues, type Matrix } from "../generation";
import type { AppStore } from "../session";
import { attributionColor, convergence, stepsText, textColorOn, tokenLabel } from "../transforms";
import type { GenerationResponse, GenerationTarget, TokenChoice } from "../types";
import { el, legend, probabilityBars } from "./attribution";

const pct = format(".1%");
const num = format(".4~g");
const quoted = (text: string) => JSON.stringify(text);
const choiceName = (c: TokenChoice) => JSON.stringify(c.text).slice(1, -1) || c.token;

const CELL = 26; // px per heatmap cell
const ROW_LABEL = 110;
const COL_LABEL = 90;

export interface GenerationOptions {
  row: number | null; // the selected target (null: the first)
  words: boolean; // word-level values where the result has them
  hideSpecial: boolean;
}

export class GenerationView {
  constructor(
    private readonly root: HTMLElement,
    private readonly onSelect: (row: number) => void,
  ) {}

  message(text: string) {
    delete this.root.dataset.model;
    delete this.root.dataset.row;
    this.root.replaceChildren(el("p", "hint", text));
  }

  render(result: GenerationResponse, model: string, opts: GenerationOptions) {
    const n = result.targets.length;
    const row = opts.row !== null && opts.row < n ? opts.row : 0;
    const byWord = opts.words && hasWords(result);
    this.root.dataset.model = model;
    this.root.dataset.row = String(row);
    this.root.dataset.level = byWord ? "word" : "token";
    const heading = el("p", "attr-for");
    const nPrompt = promptLength(result);
    heading.append(
      el("strong", "", model),
      document.createTextNode(
        ` · ${nPrompt} prompt tokens, ${n} target token${n === 1 ? "" : "s"}` +
          (result.baseline ? ` · baseline “${result.baseline.name}”` : "") +
          (result.n_steps ? ` · ${stepsText(result)}` : "") +
          (result.targets.some((t) => t.foil) ? " · contrastive: F = p(target) − p(foil)" : ""),
      ),
    );
    const parts: HTMLElement[] = [heading];
    if (!n) {
      parts.push(el("p", "hint", "No target tokens: nothing to attribute."));
      this.root.replaceChildren(...parts);
      return;
    }
    const matrix = attributionMatrix(result, byWord);
    parts.push(this.text(result, row, byWord, opts.hideSpecial, matrix));
    if (opts.words && !byWord) parts.push(el("p", "notice", "Run again to aggregate the attributions over words."));
    const body = el("div", "gen-body");
    body.append(this.heatmap(matrix, row), this.details(result.targets[row], row));
    parts.push(body);
    this.root.replaceChildren(...parts);
  }

  /** The prompt and the targets as one line: the text before the selected target shaded by
   * its row; the targets are buttons. */
  private text(r: GenerationResponse, row: number, byWord: boolean, hideSpecial: boolean, m: Matrix): HTMLElement {
    const box = el("div", "attr-tokens-box");
    const line = el("p", "attr-tokens gen-tokens");
    const values = rowValues(r.targets[row], byWord);
    const wordOf = new Map<number, number>();
    if (byWord) r.words!.forEach((w, k) => w.tokens.forEach((i) => wordOf.set(i, k)));
    // The k-th token marked `target` is target k (the targets follow the prompt, in order).
    const targetIndex = new Map(r.tokens.filter((t) => t.target).map((t, k) => [t.index, k]));
    r.tokens.forEach((token, i) => {
      if (hideSpecial && token.special) return;
      const k = targetIndex.get(i);
      const isTarget = Boolean(token.target) && k !== undefined;
      const span = el(isTarget ? "button" : "span", `attr-token gen-token${token.special ? " special" : ""}${isTarget ? " target" : " prompt"}`, tokenLabel(token));
      span.dataset.index = String(i);
      const column = byWord ? wordOf.get(i) : i;
      const v = column !== undefined ? values[column] : undefined;
      if (isTarget) {
        (span as HTMLButtonElement).type = "button";
        span.dataset.target = String(k);
        if (k === row) span.classList.add("selected");
        if (k! > row) span.classList.add("later");
        span.addEventListener("click", () => this.onSelect(k!));
        span.title = `target ${k}: ${quoted(r.targets[k!].text)}, p = ${pct(r.targets[k!].probability)}`;
      }
      if (v !== undefined && Number.isFinite(v)) {
        const bg = attributionColor(v, m.extent);
        span.style.background = bg;
        span.style.color = textColorOn(bg);
        span.dataset.value = String(v);
        if (!isTarget) span.title = `#${i} ${token.text}\nrow ${row} (${quoted(r.targets[row].text)}): ${num(v)}`;
      }
      line.append(span, document.createTextNode(" "));
    });
    box.append(
      el("h3", "", `Attribution of ${quoted(r.targets[row].text)} (target ${row}) over the ${byWord ? "words" : "tokens"} before it`),
      el("p", "hint", "Click a generated token to see its row."),
      line,
      legend(m.extent),
    );
    return box;
  }

  /** Rows = target tokens, columns = tokens (or words); blank where a column is no input of the row. */
  private heatmap(m: Matrix, selected: number): HTMLElement {
    const width = ROW_LABEL + m.columns.length * CELL + 8;
    const height = COL_LABEL + m.rows.length * CELL + 4;
    const svg = create("svg").attr("class", "gen-heatmap").attr("width", width).attr("height", height).attr("viewBox", `0 0 ${width} ${height}`)
      .attr("data-rows", m.rows.length).attr("data-columns", m.columns.length);
    const cols = svg.append("g").attr("class", "col-labels");
    m.columns.forEach((c, j) => {
      cols.append("text")
        .attr("class", c.target ? "target" : "")
        .attr("transform", `translate(${ROW_LABEL + j * CELL + CELL / 2 + 4},${COL_LABEL - 4}) rotate(-60)`)
        .text(c.label.length > 12 ? `${c.label.slice(0, 11)}…` : c.label)
        .append("title").text(c.title);
    });
    m.rows.forEach((label, i) => {
      const g = svg.append("g").attr("class", `hm-row${i === selected ? " selected" : ""}`).attr("data-row", i)
        .attr("transform", `translate(0,${COL_LABEL + i * CELL})`).style("cursor", "pointer")
        .on("click", () => this.onSelect(i));
      g.append("text").attr("class", "row-label").attr("x", ROW_LABEL - 6).attr("y", CELL / 2).attr("dy", "0.35em").attr("text-anchor", "end")
        .text(label.length > 14 ? `${label.slice(0, 13)}…` : label);
      m.columns.forEach((c, j) => {
        const v = m.values[i * m.columns.length + j];
        const cell = g.append("rect").attr("class", Number.isFinite(v) ? "cell" : "cell none").attr("data-col", j)
          .attr("x", ROW_LABEL + j * CELL).attr("width", CELL - 1).attr("height", CELL - 1)
          .attr("fill", Number.isFinite(v) ? attributionColor(v, m.extent) : "#f2f3f5");
        cell.append("title").text(Number.isFinite(v) ? `${label} ← ${c.label}: ${num(v)}` : `${c.label} is not an input of ${label}`);
      });
    });
    const figure = el("figure", "chart-box gen-heatmap-box");
    figure.append(svg.node()!, el("figcaption", "", "rows: target tokens · columns: the tokens they are attributed to"));
    return figure;
  }

  private details(t: GenerationTarget, row: number): HTMLElement {
    const box = el("div", "gen-details target");
    box.dataset.row = String(row);
    box.append(el("h3", "", `Target ${row}: ${quoted(t.text)}`));
    const facts = el("dl");
    const add = (k: string, v: string, cls = "") => facts.append(el("dt", "", k), el("dd", cls, v));
    add("probability", pct(t.probability), "gen-probability");
    add("entropy", `${num(t.entropy)} nats`, "gen-entropy");
    add("token", `${t.token} (#${t.id})`);
    if (t.foil) add("foil", `${quoted(t.foil.text)} (${pct(t.foil.probability)})`, "gen-foil");
    add("F(x)", num(t.score));
    add("F(baseline)", num(t.baseline_score));
    box.append(facts);
    box.append(el("h3", "", "Alternatives"));
    const alternatives = probabilityBars(t.alternatives.map((a): [string, number] => [choiceName(a), a.probability]));
    alternatives.classList.add("gen-alternatives");
    box.append(alternatives);
    const c = convergence(t.convergence_delta, t.score, t.baseline_score);
    const conv = el("div", `convergence${c.large ? " warn" : ""}`);
    conv.append(
      el("strong", "", c.large ? "⚠ Large convergence delta" : "Convergence delta"),
      el("span", "", ` δ = ${num(c.delta)}, ${Number.isFinite(c.relative) ? pct(c.relative) : "∞"} of F(x) − F(x') = ${num(t.score - t.baseline_score)}.` +
        (c.large ? " Raise n_steps or try another baseline." : "")),
    );
    box.append(conv);
    return box;
  }
}

/** The app's Generation view: the selected causal LM's own result. */
export class GenerationPanel {
  readonly view: GenerationView;

  constructor(
    root: HTMLElement,
    private readonly download: HTMLButtonElement,
    private readonly store: AppStore,
  ) {
    this.view = new GenerationView(root, (row) => store.set({ row }));
    store.subscribe(["view", "lm", "generation", "row", "words", "hideSpecial", "config", "details"], () => this.draw());
  }

  draw() {
    const s = this.store.state;
    const held = generationFor(s.generation, s.lm);
    this.download.disabled = !held;
    if (s.view !== "generation") return;
    if (s.config.models.length && !causalLms(s.config, s.details, s.resultDetails).length) {
      this.view.message("No causal LM's gradients archive is served (deploy/models.txt lists none).");
    } else if (held) {
      this.view.render(held.result, held.model, { row: s.row, words: s.words, hideSpecial: s.hideSpecial });
    } else {
      this.view.message(`Type a prompt, then a continuation to explain (or a number of tokens to generate) for ${s.lm || "a causal LM"}, and Run.`);
    }
  }
}
