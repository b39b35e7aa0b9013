// "measure faithfulness": an answer's `evaluation` beside its explanation. Two charts (d3):
// deletion (x = the fraction of units removed, most important first; y = F) and insertion
// (x = the fraction kept), each with the explanation's curve, the random orders' mean curve and
// a band of ± one standard deviation around it; the areas (AOPC) against random, the win rates,
// ERASER's comprehensiveness and sufficiency, and a legend saying what each line is.

import { area, axisBottom, axisLeft, create, format, line, scaleLinear } from "d3";
import {
  curvesExtent,
  faithfulnessCurves,
  faithfulnessFacts,
  unitsWord,
  type BandPoint,
  type CurvePoint,
  type FaithfulnessCurve,
} from "../evaluation";
import type { Evaluation, EvaluationRow } from "../types";
import { el } from "./dom";

const num = format(".4~g");
const pct = format(".0%");

const AXIS: Record<FaithfulnessCurve["kind"], { title: string; x: (unit: string) => string; hint: string }> = {
  deletion: {
    title: "Deletion",
    x: (unit) => `fraction of ${unit} removed, most important first`,
    hint: "the faster F falls, the more the top units mattered (AOPC: the mean drop)",
  },
  insertion: {
    title: "Insertion",
    x: (unit) => `fraction of ${unit} kept, most important first`,
    hint: "the faster F rises, the more the top units suffice (AOPC: the mean rise)",
  },
};

/**
 * The faithfulness box of one row of `e`. `what` names the row ("the whole answer", a label);
 * `note` says how to pick another row (the Generation view).
 */
export function faithfulnessBox(e: Evaluation, row: EvaluationRow, what: string, note = ""): HTMLElement {
  const box = el("div", "faithfulness");
  box.dataset.unit = e.unit;
  box.dataset.row = row.target === null ? "whole" : String(row.target);
  box.dataset.winDeletion = String(row.win_rate.deletion);
  box.dataset.winInsertion = String(row.win_rate.insertion);
  const units = unitsWord(e.unit, e.n_units);
  box.append(el("h3", "", `Faithfulness of the attribution to ${what}`));
  box.append(el("p", "hint",
    `Removing the ${e.n_units} ${units} in the explanation's order (${e.ablation === "remove" ? "the text taken out" : `replaced by “${e.baseline}”`}) ` +
    `and keeping only the top ones, against ${e.random_orders} random order${e.random_orders === 1 ? "" : "s"} of the same ${units}; ` +
    `F = ${e.score}; ${e.forwards} inputs run.${note ? ` ${note}` : ""}`));
  const curves = faithfulnessCurves(e, row);
  const y = curvesExtent(curves);
  box.append(legendRow(e.random_orders, curves.some((c) => c.band)));
  const charts = el("div", "charts faith-charts");
  for (const c of curves) charts.append(chart(c, y, unitsWord(e.unit)));
  box.append(charts, facts(e, row));
  return box;
}

/** What each line of the charts is. */
function legendRow(orders: number, band: boolean): HTMLElement {
  const legend = el("div", "faith-legend");
  const item = (cls: string, text: string) => {
    const span = el("span", "faith-key");
    span.append(el("span", `swatch ${cls}`), document.createTextNode(text));
    legend.append(span);
  };
  item("explanation", "the explanation's order (its most important unit first)");
  if (orders) {
    item("random", `mean of ${orders} random order${orders === 1 ? "" : "s"}`);
    if (band) item("band", "± one standard deviation of the random orders");
  }
  return legend;
}

function chart(c: FaithfulnessCurve, domain: [number, number], unit: string): HTMLElement {
  const W = 370, H = 200, M = { top: 10, right: 22, bottom: 36, left: 52 };
  const x = scaleLinear().domain([0, 1]).range([M.left, W - M.right]);
  const y = scaleLinear().domain(domain).nice().range([H - M.bottom, M.top]);
  const svg = create("svg").attr("id", `${c.kind}-chart`).attr("class", `chart faith-chart ${c.kind}`)
    .attr("viewBox", `0 0 ${W} ${H}`).attr("width", W).attr("height", H);
  svg.append("g").attr("transform", `translate(0,${H - M.bottom})`).call(axisBottom(x).ticks(5).tickFormat(pct));
  svg.append("g").attr("transform", `translate(${M.left},0)`).call(axisLeft(y).ticks(5));
  svg.append("text").attr("class", "axis-label").attr("x", (M.left + W - M.right) / 2).attr("y", H - 4).attr("text-anchor", "middle")
    .text(AXIS[c.kind].x(unit));
  svg.append("text").attr("class", "axis-label").attr("transform", `translate(12,${(H - M.bottom) / 2}) rotate(-90)`).attr("text-anchor", "middle").text("F");
  if (c.band) {
    const band = area<BandPoint>().x((p) => x(p.fraction)).y0((p) => y(p.low)).y1((p) => y(p.high));
    svg.append("path").attr("class", "random-band").attr("d", band(c.band));
  }
  const path = line<CurvePoint>().x((p) => x(p.fraction)).y((p) => y(p.value));
  if (c.random) svg.append("path").attr("class", "random-mean").attr("d", path(c.random));
  svg.append("path").attr("class", "series explanation").attr("d", path(c.explanation));
  svg.append("g").attr("class", "points").selectAll("circle").data(c.explanation).join("circle")
    .attr("cx", (p) => x(p.fraction)).attr("cy", (p) => y(p.value)).attr("r", 2.6)
    .append("title").text((p) => `${p.count} ${unit} ${c.kind === "deletion" ? "removed" : "kept"} (${pct(p.fraction)}): F = ${num(p.value)}`);
  const figure = el("figure", "chart-box faith-chart-box");
  figure.dataset.kind = c.kind;
  const caption = el("figcaption");
  caption.append(el("strong", "", `${AXIS[c.kind].title}: `), document.createTextNode(AXIS[c.kind].hint));
  figure.append(svg.node()!, caption);
  return figure;
}

/** The numbers written out: each area against random and its win rate; ERASER's two. */
function facts(e: Evaluation, row: EvaluationRow): HTMLElement {
  const dl = el("dl", "faith-facts");
  for (const f of faithfulnessFacts(e, row)) {
    const dt = el("dt", "", f.label);
    dt.title = `${f.better} is better`;
    const dd = el("dd", `faith-${f.key.replace("_", "-")}`, f.text);
    if (f.win) dd.append(el("span", `faith-win faith-win-${f.key.split("_")[0]}`, ` · ${f.win}`));
    dl.append(dt, dd);
  }
  return dl;
}
