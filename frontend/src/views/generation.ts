// Generation view: a causal LM's prompt (a text, or a conversation as turns with their roles)
// and generated (or given) tokens; the sources as blocks shaded by their values; the
// attribution matrix as a heatmap (rows = target tokens; columns = tokens, or the units a
// forward-only method left out). A click on a target token (or on the whole answer) shades the
// prompt by its values and shows its probability, entropy, alternatives, foil and convergence.
// Integrated-gradients rows outside the request's tolerance are marked wherever they appear:
// a row 100% off is no answer (saliency has no completeness to mark). ContextCite shows its
// surrogate's held-out fit. With "measure faithfulness", the deletion and insertion curves of
// the whole answer (or of the target token clicked) against random orders (views/faithfulness.ts).

import { create, format } from "d3";
import {
  ablationMatrix,
  ATTRIBUTION_NAMES,
  conversationTurns,
  fitQuality,
  hasCompleteness,
  hasWhole,
  isAblation,
  hasBaseline,
  messageValues,
  noCompleteness,
  methodOf,
  relativeText,
  scoreName,
  selection,
  toleranceSummary,
  unitGroups,
  wholeTokenValues,
  type GenerationAnswer,
  type RowStatus,
  type Selection,
  type ToleranceSummary,
  type Turn,
  type UnitGroup,
} from "../conversation";
import { evaluationRow, rowName } from "../evaluation";
import { attributionMatrix, causalLms, generationFor, hasWords, promptLength, rowValues, type Matrix } from "../generation";
import type { AppStore } from "../session";
import { attributionColor, stepsText, textColorOn, tokenLabel } from "../transforms";
import type { AblationResponse, AblationTarget, GenerationResponse, GenerationTarget, Surrogate, TokenChoice } from "../types";
import { legend, probabilityBars } from "./attribution";
import { el } from "./dom";
import { faithfulnessBox } from "./faithfulness";

const pct = format(".1%");
const num = format(".4~g");
const quoted = (text: string) => JSON.stringify(text);
const UNLIKELY = 0.01; // a given target token below this probability is one the model would not write
const SCROLL_COLUMNS = 40; // wider heatmaps scroll sideways in their box: the caption says so
const choiceName = (c: TokenChoice) => JSON.stringify(c.text).slice(1, -1) || c.token;

const CELL = 26; // px per heatmap cell
const ROW_LABEL = 130;
const COL_LABEL = 90;

const UNIT_TITLES: Record<UnitGroup["kind"], string> = { source: "Sources", sentence: "Sentences", word: "Words", token: "Tokens" };

export interface GenerationOptions {
  row: number | null; // the selected target (null: the first)
  whole: boolean; // the whole answer's values instead of a row's
  words: boolean; // word-level values where the result has them
  hideSpecial: boolean;
  faithfulness?: boolean; // draw the answer's `evaluation` (when it has one); default on
}

/** What the text is shaded by: a value per token (or word) column, on one scale. */
interface Shading {
  values: number[] | null; // null: the answer has no per-token values (occlusion, contextcite)
  extent: number;
  byWord: boolean;
  what: string; // "row 2 (" x")", "the whole answer"
}

export class GenerationView {
  constructor(
    private readonly root: HTMLElement,
    private readonly onSelect: (row: number) => void,
    private readonly onWhole: () => void = () => {},
    private readonly onGenerateInstead: (n: number) => void = () => {},
  ) {}

  message(text: string) {
    for (const key of ["model", "row", "method", "whole", "within"]) delete this.root.dataset[key];
    this.root.replaceChildren(el("p", "hint", text));
  }

  render(result: GenerationAnswer, model: string, opts: GenerationOptions) {
    const n = result.targets.length;
    const sel = selection(result, opts.row, opts.whole);
    const ablation = isAblation(result);
    const byWord = !ablation && !sel.whole && opts.words && hasWords(result);
    const tolerance = toleranceSummary(result);
    this.root.dataset.model = model;
    this.root.dataset.row = String(sel.row);
    this.root.dataset.whole = String(sel.whole);
    this.root.dataset.method = methodOf(result);
    this.root.dataset.level = ablation ? (result as AblationResponse).unit : byWord ? "word" : "token";
    if (tolerance) this.root.dataset.within = String(tolerance.within);
    else delete this.root.dataset.within;
    const parts: HTMLElement[] = [this.heading(result, model)];
    if (!n) {
      parts.push(el("p", "hint", "No target tokens: nothing to attribute."));
      this.root.replaceChildren(...parts);
      return;
    }
    const banner = tolerance && toleranceBanner(tolerance);
    if (banner) parts.push(banner);
    const unlikely = result.generated ? [] : result.targets.filter((t) => t.probability < UNLIKELY);
    if (unlikely.length) parts.push(this.unlikely(unlikely, n));
    const matrix = ablation ? ablationMatrix(result) : attributionMatrix(result, byWord);
    const shading = this.shading(result, sel, byWord, matrix);
    parts.push(this.prompt(result, sel, shading, opts.hideSpecial, tolerance));
    if (opts.words && !ablation && !byWord && !sel.whole) parts.push(el("p", "notice", "Run again to aggregate the attributions over words."));
    const groups = unitGroups(result, sel);
    if (groups.length || (ablation && result.surrogate)) parts.push(this.units(result, sel, groups));
    const body = el("div", "gen-body");
    body.append(
      this.heatmap(matrix, sel.whole ? -1 : sel.row, tolerance, ablation ? "the units left out" : byWord ? "the words" : "the tokens"),
      sel.whole ? this.wholeDetails(result, tolerance) : ablation ? this.ablationDetails(result, sel.row) : this.details(result, sel.row, tolerance),
    );
    parts.push(body);
    if (opts.faithfulness !== false && result.evaluation) {
      // The whole answer's curves unless a target token was clicked.
      const row = evaluationRow(result.evaluation, !opts.whole && opts.row !== null ? sel.row : null);
      if (row) {
        parts.push(faithfulnessBox(result.evaluation, row, rowName(row, result.targets),
          row.target === null ? "Click a target token for its own curves." : "Σ whole answer: the whole answer's curves."));
      }
    }
    this.root.replaceChildren(...parts);
  }

  /** A given continuation the model would not write: its rows explain an answer it does not give. */
  private unlikely(targets: { text: string; probability: number }[], n: number): HTMLElement {
    const [first] = targets;
    const more = targets.length > 1 ? ` and ${targets.length - 1} more of its tokens` : "";
    const box = el("p", "gen-unlikely");
    box.append(
      el("strong", "", "The model would not write this continuation. "),
      el("span", "", `${quoted(first.text)} has p = ${pct(first.probability)}${more} (below ${pct(UNLIKELY)}): ` +
        "the rows explain an answer it does not give. "),
    );
    const b = el("button", "gen-generate-instead", `Generate ${n} token${n === 1 ? "" : "s"} instead`);
    b.type = "button";
    b.addEventListener("click", () => this.onGenerateInstead(n));
    box.append(b);
    return box;
  }

  private heading(r: GenerationAnswer, model: string): HTMLElement {
    const heading = el("p", "attr-for");
    const n = r.targets.length;
    const counts = ` · ${promptLength(r)} prompt tokens, ${n} target token${n === 1 ? "" : "s"}`;
    let how: string;
    if (isAblation(r)) {
      how = ` · ${ATTRIBUTION_NAMES[r.attribution]}: ${r.units.length} ${r.unit}${r.units.length === 1 ? "" : "s"} left out (${r.ablation})` +
        ` · ${r.forwards} prompts run · F = ${scoreName(r.score)}`;
    } else {
      const method = methodOf(r);
      how = ` · ${ATTRIBUTION_NAMES[method]}` +
        (r.baseline && hasBaseline(method) ? ` · baseline “${r.baseline.name}”` : "") +
        (r.n_steps && method === "integrated_gradients" ? ` · ${stepsText(r)}` : "") +
        (r.targets.some((t) => t.foil) ? " · contrastive: F = p(target) − p(foil)" : "");
    }
    heading.append(el("strong", "", model), document.createTextNode(counts + how));
    return heading;
  }

  private shading(r: GenerationAnswer, sel: Selection, byWord: boolean, m: Matrix): Shading {
    if (isAblation(r)) return { values: null, extent: 1, byWord: false, what: "" };
    if (sel.whole) {
      const values = wholeTokenValues(r) ?? [];
      const extent = Math.max(0, ...values.filter(Number.isFinite).map(Math.abs)) || 1e-9;
      return { values, extent, byWord: false, what: "the whole answer" };
    }
    return { values: rowValues(r.targets[sel.row], byWord), extent: m.extent, byWord, what: `${quoted(r.targets[sel.row].text)} (target ${sel.row})` };
  }

  /** The prompt and the targets: one line for a text, turns for a conversation; the text
   * before the selected target shaded by its row (or everything by the whole answer's values);
   * the targets, and the whole answer, are buttons. */
  private prompt(r: GenerationAnswer, sel: Selection, shading: Shading, hideSpecial: boolean, tolerance: ToleranceSummary | null): HTMLElement {
    const box = el("div", "attr-tokens-box");
    const wordOf = new Map<number, number>();
    if (shading.byWord) (r as GenerationResponse).words!.forEach((w, k) => w.tokens.forEach((i) => wordOf.set(i, k)));
    // The k-th token marked `target` is target k (the targets follow the prompt, in order).
    const targetIndex = new Map(r.tokens.filter((t) => t.target).map((t, k) => [t.index, k]));
    const status = new Map(tolerance?.rows.map((s) => [s.row, s]) ?? []);
    const unitOf = new Map<number, string>();
    if (isAblation(r)) r.units.forEach((u) => u.tokens.forEach((i) => unitOf.set(i, u.id)));
    const token = (i: number): HTMLElement | null => {
      const t = r.tokens[i];
      if (hideSpecial && t.special) return null;
      const k = targetIndex.get(i);
      const isTarget = Boolean(t.target) && k !== undefined;
      const classes = `attr-token gen-token${t.special ? " special" : ""}${t.template ? " template" : ""}${isTarget ? " target" : " prompt"}`;
      const span = el(isTarget ? "button" : "span", classes, tokenLabel(t));
      span.dataset.index = String(i);
      if (unitOf.has(i)) span.dataset.unit = unitOf.get(i);
      if (isTarget) {
        (span as HTMLButtonElement).type = "button";
        span.dataset.target = String(k);
        if (!sel.whole && k === sel.row) span.classList.add("selected");
        if (!sel.whole && k! > sel.row) span.classList.add("later");
        span.addEventListener("click", () => this.onSelect(k!));
        const target = r.targets[k!];
        span.title = `target ${k}: ${quoted(target.text)}, p = ${pct(target.probability)}`;
        span.dataset.hover = span.title;
        const s = status.get(k!);
        if (s?.within === false) {
          span.classList.add("off");
          span.dataset.within = "false";
          span.append(el("sup", "off-badge", `⚠ ${relativeText(s.relative)}`));
          span.title += `\nOUTSIDE the tolerance: relative δ ${relativeText(s.relative)} > ${relativeText(tolerance!.tolerance)}; not an answer`;
        } else if (s?.within) span.dataset.within = "true";
      }
      const column = shading.byWord ? wordOf.get(i) : i;
      const v = shading.values && column !== undefined ? shading.values[column] : undefined;
      // Template tokens are held fixed along the path (their 0 is no finding): muted, unshaded.
      if (v !== undefined && Number.isFinite(v) && !(t.template && !isTarget)) {
        const bg = attributionColor(v, shading.extent);
        span.style.background = bg;
        span.style.color = textColorOn(bg);
        span.dataset.value = String(v);
        if (!isTarget) span.title = `#${i} ${t.text}\n${shading.what}: ${num(v)}`;
        if (!isTarget) span.dataset.hover = span.title;
      } else if (!isTarget) {
        span.title = `#${i} ${t.text}${t.template ? "\nadded by the chat template (held fixed)" : ""}${unitOf.has(i) ? `\nin ${unitOf.get(i)}` : ""}`;
      }
      return span;
    };
    const line = (indices: number[], cls = "") => {
      const p = el("p", `attr-tokens gen-tokens${cls}`);
      for (const i of indices) {
        const span = token(i);
        if (span) p.append(span, document.createTextNode(" "));
      }
      return p;
    };
    const whole = this.wholeButton(r, sel, tolerance);
    const turns = conversationTurns(r);
    let body: HTMLElement;
    if (turns) {
      body = el("div", "gen-turns");
      const sums = messageValues(r, sel);
      for (const turn of turns) body.append(this.turn(turn, sums, line(turn.tokens), turn.answer ? whole : null));
    } else {
      body = line(r.tokens.map((t) => t.index));
      if (whole) body.append(whole);
    }
    const title = isAblation(r)
      ? `${ATTRIBUTION_NAMES[r.attribution]}: one value per ${r.unit} (below), none per token`
      : sel.whole
        ? "Attribution of the whole answer (the sum of its rows) over the prompt"
        : `Attribution of ${quoted(r.targets[sel.row].text)} (target ${sel.row}) over the ${shading.byWord ? "words" : "tokens"} before it`;
    box.append(el("h3", "", title));
    box.append(el("p", "hint", isAblation(r)
      ? `Click a generated token to see its row of ${r.unit} values; hover a ${r.unit} to see its tokens.`
      : "Click a generated token to see its row, or the whole answer for the sum of all rows."));
    const s = !sel.whole && tolerance?.rows[sel.row];
    if (s && s.within === false) {
      const warn = el("p", "gen-row-off", `⚠ Target ${sel.row} is outside the tolerance: relative δ ${relativeText(s.relative)} ` +
        `(tolerance ${relativeText(tolerance!.tolerance)}). Its values do not add up to its score change — read them as unfinished, not as an answer.`);
      box.append(warn);
    }
    box.append(body);
    if (shading.values) box.append(legend(shading.extent));
    return box;
  }

  private turn(turn: Turn, sums: Map<number | null, number> | null, tokens: HTMLElement, whole: HTMLElement | null): HTMLElement {
    const box = el("div", `gen-turn${turn.answer ? " answer" : ""}`);
    box.dataset.role = turn.role;
    box.dataset.message = turn.message === null ? "answer" : String(turn.message);
    const head = el("div", "turn-head");
    head.append(el("span", `role role-${turn.role}`, turn.answer ? `${turn.role} · the answer explained` : turn.role));
    const sum = sums?.get(turn.message);
    if (sum !== undefined && !turn.answer) {
      const v = el("span", "turn-value", `Σ ${num(sum)}`);
      v.title = "the sum of this message's token attributions (template tokens included: 0, held fixed)";
      head.append(v);
    }
    box.append(head, tokens);
    if (whole) tokens.append(whole);
    return box;
  }

  private wholeButton(r: GenerationAnswer, sel: Selection, tolerance: ToleranceSummary | null): HTMLElement | null {
    if (!hasWhole(r)) return null;
    const b = el("button", `gen-whole${sel.whole ? " selected" : ""}`, "Σ whole answer");
    b.type = "button";
    b.title = "the whole continuation's values: the sum of all its rows";
    if (tolerance && !tolerance.within) {
      b.classList.add("off");
      b.append(el("sup", "off-badge", `⚠ ${tolerance.off.length} row${tolerance.off.length === 1 ? "" : "s"} off`));
    }
    b.addEventListener("click", () => this.onWhole());
    return b;
  }

  /** Sources (or sentences, or the units left out) as blocks shaded by their values, with the
   * surrogate's fit for ContextCite. */
  private units(r: GenerationAnswer, sel: Selection, groups: UnitGroup[]): HTMLElement {
    const box = el("div", "gen-units-box");
    const of = sel.whole ? "the whole answer" : `${quoted(r.targets[sel.row].text)} (target ${sel.row})`;
    for (const g of groups) {
      const section = el("div", "gen-units");
      section.dataset.kind = g.kind;
      section.append(el("h3", "", `${UNIT_TITLES[g.kind]}: attribution to ${of}`));
      const blocks = el("div", "gen-blocks");
      for (const { unit, value } of g.units) {
        const block = el("div", `gen-source${value === null ? " none" : ""}`);
        block.dataset.id = unit.id;
        if (value !== null) {
          block.dataset.value = String(value);
          const bg = attributionColor(value, g.extent);
          block.style.background = bg;
          block.style.color = textColorOn(bg);
        }
        const head = el("div", "source-head");
        head.append(el("span", "source-id", unit.id), el("span", "source-value", value === null ? "—" : num(value)));
        block.append(head, el("p", "source-text", unit.text));
        const where = unit.segment === 1 ? "the continuation" : unit.message !== null ? `message ${unit.message}` : "the text";
        block.title = `${unit.id}: characters ${unit.start}–${unit.end} of ${where}, ${unit.tokens.length} tokens` +
          (value === null ? "\nno value in this row (after it)" : `\n${num(value)}`);
        // Hover: its tokens in the prompt.
        block.addEventListener("mouseenter", () => this.highlight(unit.tokens, true));
        block.addEventListener("mouseleave", () => this.highlight(unit.tokens, false));
        blocks.append(block);
      }
      section.append(blocks, legend(g.extent));
      box.append(section);
    }
    if (isAblation(r) && r.surrogate) box.append(surrogateBox(r.surrogate));
    return box;
  }

  private highlight(tokens: number[], on: boolean) {
    for (const i of tokens) this.root.querySelector(`.gen-token[data-index="${i}"]`)?.classList.toggle("hl", on);
  }

  /** Rows = target tokens, columns = tokens (or words, or units); blank where a column is no
   * input of the row; rows outside the tolerance marked. */
  private heatmap(m: Matrix, selected: number, tolerance: ToleranceSummary | null, columns: string): HTMLElement {
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
      const s: RowStatus | undefined = tolerance?.rows[i];
      const off = s?.within === false;
      const g = svg.append("g").attr("class", `hm-row${i === selected ? " selected" : ""}${off ? " off" : ""}`).attr("data-row", i)
        .attr("transform", `translate(0,${COL_LABEL + i * CELL})`).style("cursor", "pointer")
        .on("click", () => this.onSelect(i));
      if (s?.within !== null && s?.within !== undefined) g.attr("data-within", String(s.within));
      const short = label.length > 10 ? `${label.slice(0, 9)}…` : label;
      const text = g.append("text").attr("class", "row-label").attr("x", ROW_LABEL - 6).attr("y", CELL / 2).attr("dy", "0.35em").attr("text-anchor", "end")
        .text(off ? `⚠ ${relativeText(s!.relative)} ${short}` : short);
      text.append("title").text(s ? `${label}: relative δ ${relativeText(s.relative)}, ${off ? "OUTSIDE" : "within"} the tolerance of ${relativeText(tolerance!.tolerance)}` : label);
      m.columns.forEach((c, j) => {
        const v = m.values[i * m.columns.length + j];
        const cell = g.append("rect").attr("class", Number.isFinite(v) ? "cell" : "cell none").attr("data-col", j)
          .attr("x", ROW_LABEL + j * CELL).attr("width", CELL - 1).attr("height", CELL - 1)
          .attr("fill", Number.isFinite(v) ? attributionColor(v, m.extent) : "#f2f3f5");
        const said = Number.isFinite(v) ? `${label} ← ${c.label}: ${num(v)}` : `${c.label} is not an input of ${label}`;
        cell.attr("data-hover", said).append("title").text(said);
      });
    });
    const figure = el("figure", "chart-box gen-heatmap-box");
    const wide = m.columns.length > SCROLL_COLUMNS ? ` — ${m.columns.length} columns: scroll sideways (the bar below) for all of them` : "";
    figure.append(svg.node()!, el("figcaption", "", `rows: target tokens${tolerance?.off.length ? " (⚠: outside the tolerance)" : ""} · columns: ${columns} they are attributed to${wide}`));
    return figure;
  }

  private facts(box: HTMLElement, t: GenerationTarget | AblationTarget): (k: string, v: string, cls?: string) => void {
    const facts = el("dl");
    box.append(facts);
    const add = (k: string, v: string, cls = "") => facts.append(el("dt", "", k), el("dd", cls, v));
    add("probability", pct(t.probability), "gen-probability");
    add("entropy", `${num(t.entropy)} nats`, "gen-entropy");
    add("token", `${t.token} (#${t.id})`);
    return add;
  }

  private alternatives(box: HTMLElement, t: GenerationTarget | AblationTarget) {
    box.append(el("h3", "", "Alternatives"));
    const alternatives = probabilityBars(t.alternatives.map((a): [string, number] => [choiceName(a), a.probability]));
    alternatives.classList.add("gen-alternatives");
    box.append(alternatives);
  }

  private details(r: GenerationResponse, row: number, tolerance: ToleranceSummary | null): HTMLElement {
    const t = r.targets[row];
    const s = tolerance?.rows[row];
    const off = s?.within === false;
    const box = el("div", `gen-details target${off ? " off" : ""}`);
    box.dataset.row = String(row);
    box.append(el("h3", "", `Target ${row}: ${quoted(t.text)}`));
    const add = this.facts(box, t);
    if (t.foil) add("foil", `${quoted(t.foil.text)} (${pct(t.foil.probability)})`, "gen-foil");
    add("F(x)", num(t.score));
    const method = methodOf(r);
    if (t.baseline_score !== null && hasBaseline(method)) add("F(baseline)", num(t.baseline_score));
    if (s) add("relative δ", `${relativeText(s.relative)} (tolerance ${relativeText(tolerance!.tolerance)})`, `gen-relative${off ? " off" : ""}`);
    this.alternatives(box, t);
    if (!hasCompleteness(method) || t.convergence_delta === null || t.baseline_score === null) {
      const none = el("div", "convergence none");
      none.append(el("strong", "", `No completeness (${ATTRIBUTION_NAMES[method]})`), el("span", "", ` ${noCompleteness(method)}`));
      box.append(none);
      return box;
    }
    const change = t.score - t.baseline_score;
    const relative = s?.relative ?? (change ? Math.abs(t.convergence_delta / change) : null);
    const conv = el("div", `convergence${off ? " warn" : ""}`);
    conv.append(
      el("strong", "", off ? "⚠ Outside the tolerance" : s?.within ? "Within the tolerance" : "Convergence delta"),
      el("span", "", ` δ = ${num(t.convergence_delta)}, ${relativeText(relative)} of F(x) − F(x') = ${num(change)}.` +
        (off ? " The values miss that share of the score change: this row is no answer yet. Raise Steps (or use auto) or try another baseline." : "")),
    );
    box.append(conv);
    return box;
  }

  private ablationDetails(r: AblationResponse, row: number): HTMLElement {
    const t = r.targets[row];
    const box = el("div", "gen-details target");
    box.dataset.row = String(row);
    box.append(el("h3", "", `Target ${row}: ${quoted(t.text)}`));
    const add = this.facts(box, t);
    add(`F = ${scoreName(r.score)}`, num(t.score));
    this.alternatives(box, t);
    box.append(el("p", "hint", r.attribution === "occlusion"
      ? `Each ${r.unit}'s value: F with the whole prompt − F without that ${r.unit}.`
      : `Each ${r.unit}'s value: the surrogate's weight, the change of log p/(1−p) when the ${r.unit} is kept.`));
    return box;
  }

  /** The whole answer: its rows' completeness (integrated gradients) or what was run. */
  private wholeDetails(r: GenerationAnswer, tolerance: ToleranceSummary | null): HTMLElement {
    const box = el("div", `gen-details whole${tolerance && !tolerance.within ? " off" : ""}`);
    box.append(el("h3", "", `The whole answer: ${quoted(r.continuation)}`));
    const facts = el("dl");
    const add = (k: string, v: string, cls = "") => facts.append(el("dt", "", k), el("dd", cls, v));
    add("target tokens", String(r.targets.length));
    if (isAblation(r)) {
      add("prompts run", String(r.forwards));
      add(`${r.unit}s left out`, String(r.units.length));
      box.append(facts, el("p", "hint gen-unit-said", r.attribution === "occlusion"
        ? `Each ${r.unit}'s value for the whole answer: log p(answer) with the whole prompt − log p(answer) without that ${r.unit} (not F = ${scoreName(r.score)}, which is each token's).`
        : `Each ${r.unit}'s value for the whole answer: the surrogate's weight, the change of log p/(1−p) of the answer when the ${r.unit} is kept.`));
      return box;
    }
    if (tolerance) add("rows within", `${tolerance.rows.length - tolerance.off.length} of ${tolerance.rows.length} (tolerance ${relativeText(tolerance.tolerance)})`, "gen-rows-within");
    box.append(facts, el("p", "hint gen-unit-said", `Each token's value for the whole answer: the sum of the rows' values (F = Σ ${scoreName(r.score)} over the target tokens).`));
    if (tolerance) {
      const table = el("table", "gen-rows");
      table.append(el("caption", "", "Each row's relative δ"));
      for (const s of tolerance.rows) {
        const tr = el("tr", s.within === false ? "off" : "");
        tr.dataset.row = String(s.row);
        tr.append(el("td", "", quoted(s.text)), el("td", "num", relativeText(s.relative)), el("td", "", s.within === false ? "⚠ outside" : s.within ? "within" : "—"));
        tr.addEventListener("click", () => this.onSelect(s.row));
        table.append(tr);
      }
      box.append(table);
    }
    return box;
  }
}

/** The banner over an integrated-gradients answer: how many rows are complete. */
function toleranceBanner(t: ToleranceSummary): HTMLElement | null {
  const n = t.rows.length;
  if (!t.off.length) {
    if (t.rows.some((s) => s.within === null)) return null; // an answer that does not say
    return el("p", "gen-tolerance ok", `All ${n} row${n === 1 ? "" : "s"} within the tolerance (relative δ ≤ ${relativeText(t.tolerance)}).`);
  }
  const box = el("div", "gen-tolerance warn");
  box.setAttribute("role", "alert");
  box.append(
    el("strong", "", `⚠ ${t.off.length} of ${n} row${n === 1 ? "" : "s"} outside the tolerance`),
    el("span", "", ` (relative δ > ${relativeText(t.tolerance)}; the worst ${relativeText(t.worst)}): ` +
      "their attributions do not add up to their score change, so they are unfinished, not an answer. More steps or auto may " +
      "finish them, at a cost the estimate shows; AttnLRP, gradient × input and saliency answer with one backward per token, " +
      "occlusion and ContextCite by sentence or source (which measured most faithful by source: docs, Benchmarks)."),
  );
  return box;
}

/** ContextCite: how the surrogate was made and how well it predicts masks it was not fit on. */
function surrogateBox(s: Surrogate): HTMLElement {
  const quality = fitQuality(s.fit);
  const box = el("div", `gen-surrogate${quality === "good" ? "" : " warn"}`);
  box.dataset.quality = quality;
  box.append(el("h3", "", "Surrogate fit (on held-out masks)"));
  const facts = el("dl");
  const add = (k: string, v: string, cls: string) => facts.append(el("dt", "", k), el("dd", cls, v));
  const value = (v: number | null) => (v === null ? "undefined" : format(".3f")(v));
  add("R²", value(s.fit.r2), "gen-r2");
  add("Spearman ρ", value(s.fit.spearman), "gen-spearman");
  add("mean |error|", s.fit.mean_absolute_error === null ? "—" : num(s.fit.mean_absolute_error), "gen-mae");
  add("ablations", `${s.n_ablations} fit + ${s.n_holdout} held out`, "gen-ablations");
  add("distinct prompts", String(s.n_distinct_prompts), "gen-distinct");
  add("keep probability", String(s.keep_probability), "gen-keep");
  add("Lasso α", String(s.lasso_alpha), "gen-alpha");
  add("intercept", num(s.intercept), "gen-intercept");
  box.append(facts);
  const notes: string[] = [];
  if (quality === "weak") notes.push("⚠ Weak fit: the weights predict held-out ablations poorly; read them with care.");
  if (quality === "unknown") notes.push("⚠ The fit is undefined on the held-out masks (too few of them, or all alike).");
  if (s.n_distinct_prompts < s.n_ablations + s.n_holdout) {
    notes.push(`The ${s.n_ablations + s.n_holdout} masks make only ${s.n_distinct_prompts} distinct prompts (few units): each ran once.`);
  }
  for (const note of notes) box.append(el("p", note.startsWith("⚠") ? "notice" : "hint", note));
  return box;
}

/** The app's Generation view: the selected causal LM's own result. */
export class GenerationPanel {
  readonly view: GenerationView;

  constructor(
    root: HTMLElement,
    private readonly download: HTMLButtonElement,
    private readonly store: AppStore,
    generateInstead: (n: number) => void = () => {},
  ) {
    this.view = new GenerationView(root, (row) => store.set({ row, whole: false }), () => store.set({ whole: true }), generateInstead);
    store.subscribe(["view", "lm", "generation", "row", "whole", "words", "hideSpecial", "config", "details", "evaluate"], () => this.draw());
  }

  draw() {
    const s = this.store.state;
    const held = generationFor(s.generation, s.lm);
    this.download.disabled = !held;
    if (s.view !== "generation") return;
    if (s.config.models.length && !causalLms(s.config, s.details, s.resultDetails).length) {
      this.view.message("No causal LM's gradients archive is served (deploy/models.txt lists none).");
    } else if (held) {
      this.view.render(held.result, held.model, { row: s.row, whole: s.whole, words: s.words, hideSpecial: s.hideSpecial, faithfulness: s.evaluate });
    } else {
      this.view.message(`Type a prompt (or a conversation), then a continuation to explain (or a number of tokens to generate) for ${s.lm || "a causal LM"}, and Run.`);
    }
  }
}
