// "measure faithfulness": the request's `evaluate` block, and the answer's `evaluation` as the
// page draws it — the deletion and insertion curves of the explanation's order beside the mean
// of the random orders and its band, the areas (AOPC), ERASER's two numbers and the win rates.
// Pure functions, unit-tested on real answers (test/fixtures/evaluation.json).

import type { Unit } from "./conversation";
import type { Evaluate, Evaluation, EvaluationRow, Spread } from "./types";

/** The request's `evaluate`: none unless the toggle is on; the unit only when one is chosen
 * ("" = the server's default: the method's own unit, tokens for a gradient method). */
export function evaluateBody(s: { evaluate: boolean; evalUnit: Unit | "" }): Evaluate | undefined {
  if (!s.evaluate) return undefined;
  return s.evalUnit ? { unit: s.evalUnit } : {};
}

/** The row shown: a classifier's one row; a continuation's whole answer (`target: null`) by
 * default, or the row of target token `target` when one is asked for and the answer has it. */
export function evaluationRow(e: Evaluation, target: number | null = null): EvaluationRow | null {
  if (!e.rows.length) return null;
  const own = target === null ? undefined : e.rows.find((r) => r.target === target);
  return own ?? e.rows.find((r) => r.target === null) ?? e.rows[0];
}

/** Whether the answer evaluates a continuation (its rows: target tokens, then the whole answer). */
export const isContinuationEvaluation = (e: Evaluation) => e.rows.some((r) => r.target === null);

export type CurveKind = "deletion" | "insertion";

export interface CurvePoint {
  fraction: number; // of the units removed (deletion) or kept (insertion)
  count: number; // units removed or kept
  value: number; // F of that version of the input
}

export interface BandPoint {
  fraction: number;
  low: number; // the random orders' mean − one standard deviation
  high: number; // … + one standard deviation
}

export interface FaithfulnessCurve {
  kind: CurveKind;
  explanation: CurvePoint[]; // the explanation's order, most important unit first
  random: CurvePoint[] | null; // the mean over the random orders (null: none asked)
  band: BandPoint[] | null; // mean ± std at each point (null: no random orders, or a server without the spread)
  aopc: number; // the explanation's area over (deletion) / under (insertion) the curve
  randomAopc: Spread | null;
  winRate: number | null; // share of random orders whose area the explanation beats (ties half)
}

const points = (e: Evaluation, values: number[]): CurvePoint[] =>
  values.map((value, k) => ({ fraction: e.fractions[k], count: e.counts[k], value }));

function curve(e: Evaluation, row: EvaluationRow, kind: CurveKind): FaithfulnessCurve {
  const random = row.random;
  const mean = random?.[kind] ?? null;
  const std = random?.[`${kind}_std`] ?? null; // absent from an answer of an older server
  return {
    kind,
    explanation: points(e, row[kind]),
    random: mean ? points(e, mean) : null,
    band: mean && std && std.length === mean.length
      ? mean.map((m, k) => ({ fraction: e.fractions[k], low: m - std[k], high: m + std[k] }))
      : null,
    aopc: row[`${kind}_aopc`],
    randomAopc: random?.[`${kind}_aopc`] ?? null,
    winRate: row.win_rate[kind],
  };
}

/** The two curves of a row: deletion (the top units removed), insertion (only the top units kept). */
export function faithfulnessCurves(e: Evaluation, row: EvaluationRow): [FaithfulnessCurve, FaithfulnessCurve] {
  return [curve(e, row, "deletion"), curve(e, row, "insertion")];
}

/** One y range for both charts: every curve, band included, so they compare at a glance. */
export function curvesExtent(curves: FaithfulnessCurve[]): [number, number] {
  const values = curves.flatMap((c) => [
    ...c.explanation.map((p) => p.value),
    ...(c.random ?? []).map((p) => p.value),
    ...(c.band ?? []).flatMap((b) => [b.low, b.high]),
  ]).filter(Number.isFinite);
  if (!values.length) return [0, 1];
  const lo = Math.min(...values), hi = Math.max(...values);
  const pad = hi > lo ? 0 : Math.abs(hi) * 0.1 || 1;
  return [lo - pad, hi + pad];
}

const fixed = (v: number) => (Math.abs(v) >= 0.001 || v === 0 ? v.toFixed(3) : v.toExponential(2));
const percent = (v: number) => `${Math.round(v * 100)}%`;

/** "beats 80% of 10 random orders"; without random orders, says so. */
export function winRateText(rate: number | null, orders: number): string {
  if (rate === null || !orders) return "no random orders to compare with";
  return `beats ${percent(rate)} of ${orders} random order${orders === 1 ? "" : "s"}`;
}

/** "0.459 (random 0.223 ± 0.069)": a number beside the random orders' mean and std. */
export function againstRandom(value: number, random: Spread | null): string {
  return random ? `${fixed(value)} (random ${fixed(random.mean)} ± ${fixed(random.std)})` : fixed(value);
}

/** What each number of a row says, in the page's words (rendered as a list beside the charts). */
export interface FaithfulnessFact {
  key: "deletion_aopc" | "insertion_aopc" | "comprehensiveness" | "sufficiency";
  label: string;
  text: string;
  better: "higher" | "lower";
  win: string | null; // the win rate said (the areas only)
}

export function faithfulnessFacts(e: Evaluation, row: EvaluationRow): FaithfulnessFact[] {
  const r = row.random;
  return [
    { key: "deletion_aopc", label: "deletion AOPC", text: againstRandom(row.deletion_aopc, r?.deletion_aopc ?? null), better: "higher",
      win: winRateText(row.win_rate.deletion, e.random_orders) },
    { key: "insertion_aopc", label: "insertion AOPC", text: againstRandom(row.insertion_aopc, r?.insertion_aopc ?? null), better: "higher",
      win: winRateText(row.win_rate.insertion, e.random_orders) },
    { key: "comprehensiveness", label: `comprehensiveness (top ${e.top_k})`, text: againstRandom(row.comprehensiveness, r?.comprehensiveness ?? null),
      better: "higher", win: null },
    { key: "sufficiency", label: `sufficiency (top ${e.top_k})`, text: againstRandom(row.sufficiency, r?.sufficiency ?? null), better: "lower", win: null },
  ];
}

/** Which F the row measures, in words: the whole answer, a target token, or a class. */
export function rowName(row: EvaluationRow, targets: { text: string }[] | null, label: string | null = null): string {
  if (row.target === null) return "the whole answer";
  if (targets) return `target ${row.target} (${JSON.stringify(targets[row.target]?.text ?? "")})`;
  return label ?? `class ${row.target}`;
}

/** The plural of a unit as the axes say it. */
export const unitsWord = (unit: Unit, n = 2) => (n === 1 ? unit : `${unit}s`);
