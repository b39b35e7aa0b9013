// Attribution view: a gradient method's values per token on a diverging scale (integrated
// gradients, gradient × input, saliency), the prediction, the convergence check (none for
// saliency), the path (target score and gradient norm along alpha), and with "measure
// faithfulness" the deletion and insertion curves against random orders (views/faithfulness.ts).

import { axisBottom, axisLeft, create, extent, format, line, scaleLinear } from "d3";
import {
  attributionColor,
  attributionExtent,
  convergence,
  pathSeries,
  stepsText,
  textColorOn,
  tokenLabel,
  type PathPoint,
} from "../transforms";
import { ATTRIBUTION_NAMES, hasBaseline, hasCompleteness, noCompleteness, type GradientMethod } from "../conversation";
import { evaluationRow } from "../evaluation";
import { resultFor } from "../gradients";
import { modelsOf, type AppStore } from "../session";
import type { GradientsResponse, TokenPrediction } from "../types";
import { el } from "./dom";
import { faithfulnessBox } from "./faithfulness";

const pct = format(".1%");
const num = format(".4~g");


export class AttributionView {
  constructor(private readonly root: HTMLElement) {}

  message(text: string) {
    delete this.root.dataset.model;
    delete this.root.dataset.target;
    this.root.replaceChildren(el("p", "hint", text));
  }

  /** `model`: the gradients archive the result came from, named above it (and in data-model);
   * `faithfulness`: draw its `evaluation` (when it has one). */
  render(result: GradientsResponse, hideSpecial: boolean, model: string, faithfulness = true) {
    const method = methodOf(result);
    this.root.dataset.model = model;
    this.root.dataset.target = targetName(result);
    this.root.dataset.method = method;
    const heading = el("p", "attr-for");
    heading.append(el("strong", "", model), document.createTextNode(` · ${ATTRIBUTION_NAMES[method]} · attributions for target ${targetName(result)}`));
    const parts: HTMLElement[] = [heading, this.summary(result)];
    if (result.attributions) parts.push(this.tokens(result, hideSpecial));
    parts.push(this.convergence(result));
    const row = result.evaluation && evaluationRow(result.evaluation);
    if (faithfulness && result.evaluation && row) parts.push(faithfulnessBox(result.evaluation, row, `target ${targetName(result)}`));
    // A path of one point (gradient × input, saliency: the input itself) is no chart.
    if (result.alphas && result.path_scores && result.alphas.length > 1) parts.push(this.charts(result));
    if (result.truncated) {
      parts.push(el("p", "notice", `Input truncated: ${result.n_tokens_dropped} of ${result.n_tokens_input} tokens dropped.`));
    }
    this.root.replaceChildren(...parts);
  }

  private summary(r: GradientsResponse): HTMLElement {
    const box = el("div", "attr-summary");
    const pred = el("div", "prediction");
    pred.append(el("h3", "", "label" in r.prediction ? "Prediction" : "Next-token prediction"));
    if ("label" in r.prediction) {
      pred.append(el("p", "predicted-label", r.prediction.label));
      pred.append(probabilityBars(Object.entries(r.prediction.probabilities)));
    } else {
      pred.append(probabilityBars(r.prediction.next_tokens.map((p: TokenPrediction) => [JSON.stringify(p.text).slice(1, -1), p.prob])));
    }
    const target = el("div", "target");
    target.append(el("h3", "", "Attributed"));
    const facts = el("dl");
    const add = (k: string, v: string) => facts.append(el("dt", "", k), el("dd", "", v));
    add("target", `${targetName(r)} (#${r.target.index})`);
    add(`F(x) = ${r.score}`, num(r.target.score));
    const method = methodOf(r);
    if (r.baseline && hasBaseline(method)) add(`F(baseline “${r.baseline.name}”)`, num(r.baseline.score)); // saliency and AttnLRP: none
    add(method === "integrated_gradients" ? "steps" : "method", method === "integrated_gradients" ? stepsText(r) : METHOD_NOTES[method]);
    target.append(facts);
    box.append(pred, target);
    return box;
  }

  private tokens(r: GradientsResponse, hideSpecial: boolean): HTMLElement {
    const box = el("div", "attr-tokens-box");
    const values = r.attributions!.normalized;
    const m = attributionExtent(values);
    const line = el("p", "attr-tokens");
    for (const t of r.tokens) {
      if (hideSpecial && t.special) continue;
      const v = values[t.index];
      const span = el("span", `attr-token${t.special ? " special" : ""}`, tokenLabel(t));
      const bg = attributionColor(v, m);
      span.style.background = bg;
      span.style.color = textColorOn(bg);
      span.dataset.value = String(v);
      span.title = `#${t.index} ${t.text}\nnormalized ${num(v)}\nraw ${num(r.attributions!.raw[t.index])}`;
      span.dataset.hover = span.title;
      line.append(span, document.createTextNode(" "));
    }
    box.append(el("h3", "", "Attribution per token"), line, legend(m));
    return box;
  }

  private convergence(r: GradientsResponse): HTMLElement {
    const method = methodOf(r);
    if (!hasCompleteness(method) || r.convergence_delta === null || r.baseline === null) {
      const box = el("div", "convergence none");
      box.append(el("strong", "", `No completeness (${ATTRIBUTION_NAMES[method]})`), el("span", "", ` ${noCompleteness(method)}`));
      return box;
    }
    const c = convergence(r.convergence_delta, r.target.score, r.baseline.score);
    const box = el("div", `convergence${c.large ? " warn" : ""}`);
    const rel = Number.isFinite(c.relative) ? pct(c.relative) : "∞";
    const advice = method === "gradient_x_input"
      ? " Gradient × input is integrated gradients with one point: for values that add up, use integrated gradients."
      : " The attributions do not add up to the change in score: raise n_steps or try another baseline.";
    box.append(
      el("strong", "", c.large ? "⚠ Large convergence delta" : "Convergence delta"),
      el("span", "", ` δ = ${num(c.delta)}, ${rel} of F(x) − F(x') = ${num(r.target.score - r.baseline.score)}.` + (c.large ? advice : "")),
    );
    return box;
  }

  private charts(r: GradientsResponse): HTMLElement {
    const box = el("div", "charts");
    box.append(
      chart("path-chart", `${r.score} of the target along the path`, pathSeries(r.alphas!, r.path_scores!), "F"),
    );
    if (r.gradient_norms) {
      box.append(chart("norm-chart", "gradient norm per step", pathSeries(r.alphas!, r.gradient_norms), "‖∂F/∂x‖"));
    }
    return box;
  }
}

/** The method that answered (an answer without `attribution` is integrated gradients'). */
export const methodOf = (r: Pick<GradientsResponse, "attribution">): GradientMethod => r.attribution ?? "integrated_gradients";

const METHOD_NOTES: Record<Exclude<GradientMethod, "integrated_gradients">, string> = {
  gradient_x_input: "gradient × input: ∂F/∂x at the input × (input − baseline), one backward",
  saliency: "saliency: ‖∂F/∂x‖ per token at the input, one backward",
  attnlrp: "AttnLRP: relevance of the logit, layer by layer (LRP rules), one backward; not conservative",
};

/** A classifier's label; a next token quoted, so " Paris" shows its leading space. */
export function targetName(r: GradientsResponse): string {
  const text = r.target.text ?? r.target.token;
  return r.target.label ?? (text != null ? JSON.stringify(text) : `#${r.target.index}`);
}

export function probabilityBars(rows: [string, number][]): HTMLElement {
  const list = el("ul", "prob-bars");
  for (const [name, p] of rows) {
    const li = el("li");
    const bar = el("span", "bar");
    bar.style.setProperty("--w", `${(p * 100).toFixed(1)}%`);
    li.append(el("span", "word", name), bar, el("span", "prob", pct(p)));
    list.append(li);
  }
  return list;
}

/** A horizontal colour bar −m … 0 … +m: what the token shades mean. */
export function legend(m: number): HTMLElement {
  const width = 240;
  const svg = create("svg").attr("class", "legend").attr("width", width + 40).attr("height", 38);
  const gradient = svg.append("defs").append("linearGradient").attr("id", "attr-gradient");
  for (let k = 0; k <= 10; k++) {
    gradient.append("stop").attr("offset", `${k * 10}%`).attr("stop-color", attributionColor(-m + (2 * m * k) / 10, m));
  }
  const g = svg.append("g").attr("transform", "translate(20,4)");
  g.append("rect").attr("width", width).attr("height", 12).attr("fill", "url(#attr-gradient)").attr("stroke", "#ccc");
  const x = scaleLinear().domain([-m, m]).range([0, width]);
  // Sums in score units can be tiny (a source's share of p = 1e-7): no ticks all "0".
  g.append("g").attr("transform", "translate(0,12)").call(axisBottom(x).ticks(5).tickFormat(format(m >= 0.05 ? ".2~f" : ".1~e")));
  const wrap = el("div", "legend-box");
  const scale = el("span", "legend-scale", `full colour at ±${format(".3~g")(m)}, the largest |value| shown: a colour compares values within this view, not across views`);
  wrap.append(el("span", "legend-end", "against target"), svg.node()!, el("span", "legend-end", "for target"), scale);
  wrap.dataset.extent = String(m);
  return wrap;
}

function chart(id: string, title: string, points: PathPoint[], yLabel: string): HTMLElement {
  const W = 360, H = 180, M = { top: 10, right: 12, bottom: 34, left: 52 };
  const x = scaleLinear().domain([0, 1]).range([M.left, W - M.right]);
  const [lo, hi] = extent(points, (p) => p.value) as [number, number];
  const pad = hi > lo ? 0 : Math.abs(hi) * 0.1 || 1;
  const y = scaleLinear().domain([lo - pad, hi + pad]).nice().range([H - M.bottom, M.top]);
  const svg = create("svg").attr("id", id).attr("class", "chart").attr("viewBox", `0 0 ${W} ${H}`).attr("width", W).attr("height", H);
  svg.append("g").attr("transform", `translate(0,${H - M.bottom})`).call(axisBottom(x).ticks(5));
  svg.append("g").attr("transform", `translate(${M.left},0)`).call(axisLeft(y).ticks(5)) // d3 picks the precision the range needs;
  svg.append("text").attr("class", "axis-label").attr("x", (M.left + W - M.right) / 2).attr("y", H - 4).attr("text-anchor", "middle").text("α (baseline → input)");
  svg.append("text").attr("class", "axis-label").attr("transform", `translate(12,${(H - M.bottom) / 2}) rotate(-90)`).attr("text-anchor", "middle").text(yLabel);
  const path = line<PathPoint>().x((p) => x(p.alpha)).y((p) => y(p.value));
  svg.append("path").attr("class", "series").attr("d", path(points));
  svg.append("g").selectAll("circle").data(points).join("circle").attr("cx", (p) => x(p.alpha)).attr("cy", (p) => y(p.value)).attr("r", 2.2)
    .append("title").text((p) => `α = ${num(p.alpha)}: ${num(p.value)}`);
  const figure = el("figure", "chart-box");
  figure.append(svg.node()!, el("figcaption", "", title));
  return figure;
}

/** The app's attribution view: the selected model's own result (never another model's), and
 * downloads offered only while there is one. */
export class AttributionPanel {
  readonly view: AttributionView;

  constructor(
    root: HTMLElement,
    private readonly downloads: HTMLButtonElement[],
    private readonly store: AppStore,
  ) {
    this.view = new AttributionView(root);
    store.subscribe(["view", "gmodel", "gradients", "hideSpecial", "config", "evaluate"], () => this.draw());
  }

  draw() {
    const s = this.store.state;
    const held = resultFor(s.gradients, s.gmodel);
    for (const b of this.downloads) b.disabled = !held;
    if (s.view !== "attribution") return;
    if (!modelsOf(s.config, "gradients").length && s.config.models.length) {
      this.view.message("No gradients model is served (deploy/models.txt lists none).");
    } else if (held) {
      this.view.render(held.result, s.hideSpecial, held.model, s.evaluate);
    } else {
      this.view.message(`Choose a target, baseline and steps for ${s.gmodel || "a model"}, then Run.`);
    }
  }
}
