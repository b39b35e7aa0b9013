// Conversations, sources and the five attribution methods of the Generation view: what a
// chat/RAG answer holds (turns, sources, units, the surrogate's fit, which rows are within the
// tolerance), read from the answer. Pure functions, unit-tested on real answers (test/fixtures/rag.json).

import type { GenerationAnswer, Matrix } from "./generation";
import type {
  AblationResponse,
  GenerationTarget,
  Message,
  SurrogateFit,
  TextUnit,
  UnitAttribution,
} from "./types";

export type { GenerationAnswer };

export const ATTRIBUTIONS = ["integrated_gradients", "gradient_x_input", "saliency", "attnlrp", "occlusion", "contextcite"] as const;
export type AttributionMethod = (typeof ATTRIBUTIONS)[number];
/** The gradient methods: any target (a classifier's, a next token, a continuation's rows). */
export const GRADIENT_ATTRIBUTIONS = ["integrated_gradients", "gradient_x_input", "saliency", "attnlrp"] as const satisfies readonly AttributionMethod[];
export type GradientMethod = (typeof GRADIENT_ATTRIBUTIONS)[number];
export const ATTRIBUTION_NAMES: Record<AttributionMethod, string> = {
  integrated_gradients: "integrated gradients",
  gradient_x_input: "gradient × input",
  saliency: "saliency",
  attnlrp: "AttnLRP",
  occlusion: "occlusion",
  contextcite: "ContextCite",
};

/** The fields of the page's forms each method reads (the contract's METHOD_OPTIONS, in part):
 * the server refuses the others, so the page neither sends nor offers them. */
export const METHOD_FIELDS: Record<AttributionMethod, readonly ("baseline" | "n_steps" | "foil" | "aggregate" | "unit")[]> = {
  integrated_gradients: ["baseline", "n_steps", "foil", "aggregate"],
  gradient_x_input: ["baseline", "foil", "aggregate"],
  saliency: ["foil", "aggregate"],
  attnlrp: ["foil", "aggregate"],
  occlusion: ["unit"],
  contextcite: ["unit"],
};

export const takes = (method: AttributionMethod, field: (typeof METHOD_FIELDS)[AttributionMethod][number]) => METHOD_FIELDS[method].includes(field);

/** Whether the method's answers have a completeness check (a convergence delta): saliency's and
 * AttnLRP's do not (a gradient norm; relevance the softmax rule does not conserve). */
export const hasCompleteness = (method: AttributionMethod) => method !== "saliency" && method !== "attnlrp";
/** Why a method's answer has no convergence delta to judge (what the page says instead). */
export const noCompleteness = (method: AttributionMethod) =>
  method === "attnlrp"
    ? "AttnLRP's relevance is not conserved (its softmax rule): the values need not add up to the logit, so there is no convergence delta to judge; measure faithfulness instead."
    : "A gradient's norm per token: nothing to add up to F(x) − F(x'), so no convergence delta to judge.";
/** Whether the method explains from a baseline the page offers: AttnLRP's is fixed (x − 0), saliency has none. */
export const hasBaseline = (method: AttributionMethod) => method === "integrated_gradients" || method === "gradient_x_input";

/** What occlusion/contextcite leave out ("" in the page: the server's default). */
export const UNITS = ["token", "word", "sentence", "source"] as const;
export type Unit = (typeof UNITS)[number];

export const ROLES = ["system", "user", "assistant"] as const;
export type Role = Message["role"];

/** A source as the page asks for it: an id and characters found exactly once in the prompt. */
export interface SourceInput {
  id: string;
  text: string;
}

/** Either answer of the generation request: integrated gradients', or a forward-only method's. */

export const isAblation = (r: GenerationAnswer): r is AblationResponse => r.attribution === "occlusion" || r.attribution === "contextcite";

export const methodOf = (r: GenerationAnswer): AttributionMethod => r.attribution ?? "integrated_gradients";

// --- the prompt as the page holds it ---------------------------------------------------------

/** The texts a source is looked for in: each message's content, or the text. */
export function promptTexts(s: { text: string; messages: Message[] }): string[] {
  return s.messages.length ? s.messages.map((m) => m.content) : [s.text];
}

/** How many times `needle` occurs in the texts (overlapping occurrences too: the server wants
 * exactly one). An empty needle occurs nowhere. */
export function occurrences(texts: string[], needle: string): number {
  if (!needle) return 0;
  let n = 0;
  for (const text of texts) {
    for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) n++;
  }
  return n;
}

/** What the page says of a source's text: found once (what the server needs), or not. */
export function sourceHint(texts: string[], needle: string): { ok: boolean; text: string } {
  if (!needle) return { ok: false, text: "paste its text, as it appears in the prompt" };
  const n = occurrences(texts, needle);
  if (n === 1) return { ok: true, text: "found once in the prompt" };
  return { ok: false, text: n ? `found ${n} times in the prompt: it must be found once` : "not found in the prompt" };
}

/** The role of a new turn: system first, then user and assistant in turn. */
export function nextRole(messages: Message[]): Role {
  const last = messages.at(-1)?.role;
  return last === undefined ? "system" : last === "user" ? "assistant" : "user";
}

/** A new source's id: the first free one of A, B, C … Z, then S27, S28 … */
export function freeSourceId(sources: SourceInput[]): string {
  const taken = new Set(sources.map((x) => x.id));
  for (let k = 0; ; k++) {
    const id = k < 26 ? String.fromCharCode(65 + k) : `S${k + 1}`;
    if (!taken.has(id)) return id;
  }
}

// --- the answer: turns, units, values ----------------------------------------------------------

/** One turn of the conversation as the answer tokenized it: a message (its own tokens and the
 * template's of its turn), or the answer (the generation prompt's template tokens, then the
 * continuation's). */
export interface Turn {
  message: number | null; // index into `messages`; null: the answer
  role: Role;
  content: string | null; // the message's text; null for the answer
  tokens: number[]; // indices into `tokens`, in order
  answer: boolean;
}

/** The turns of a conversation's answer; null for a plain text prompt. */
export function conversationTurns(r: GenerationAnswer): Turn[] | null {
  if (!r.messages?.length) return null;
  const turns: Turn[] = r.messages.map((m, k) => ({ message: k, role: m.role, content: m.content, tokens: [], answer: false }));
  const answer: Turn = { message: null, role: "assistant", content: null, tokens: [], answer: true };
  for (const t of r.tokens) {
    const k = t.message;
    if (!t.target && k !== null && k !== undefined && turns[k]) turns[k].tokens.push(t.index);
    else answer.tokens.push(t.index);
  }
  return [...turns, answer];
}

/** What is shaded: target row `row`, or (whole) the whole continuation's values. */
export interface Selection {
  row: number;
  whole: boolean;
}

/** Whether the answer carries the whole continuation's values (a "whole answer" to select). */
export const hasWhole = (r: GenerationAnswer) => Boolean(r.continuation_attributions);

/** The selection the page can show: a row in range (else the first), whole only where there is one. */
export function selection(r: GenerationAnswer, row: number | null, whole: boolean): Selection {
  const n = r.targets.length;
  // Nothing chosen yet and the answer has sources: the whole answer first, since "which document
  // did the answer come from" is asked of the answer, not of its first token.
  const first = row === null && (isAblation(r) ? r.unit === "source" : Boolean(r.sources?.length));
  return { row: row !== null && row < n ? row : 0, whole: (whole || first) && hasWhole(r) };
}

/** Integrated gradients' per-token values of the whole continuation (normalized); null for
 * a forward-only method, which has none. */
export function wholeTokenValues(r: GenerationAnswer): number[] | null {
  if (isAblation(r)) return null;
  return r.continuation_attributions?.attributions.normalized ?? null;
}

export interface UnitValue {
  unit: TextUnit;
  value: number | null; // null: no value for it in this selection (a row before the unit)
}

/** Named spans shaded by their values: the sources (or sentences) of an integrated-gradients
 * answer, or the units a forward-only method left out. */
export interface UnitGroup {
  kind: "source" | "sentence" | "word" | "token";
  units: UnitValue[];
  extent: number; // the largest |value|, for the group's colour scale
}

function group(kind: UnitGroup["kind"], units: TextUnit[], values: UnitAttribution[] | null | undefined): UnitGroup {
  const byId = new Map((values ?? []).map((v) => [v.id, v.attribution]));
  const out = units.map((unit) => ({ unit, value: byId.get(unit.id) ?? null }));
  const extent = Math.max(0, ...out.map((u) => (u.value !== null && Number.isFinite(u.value) ? Math.abs(u.value) : 0)));
  return { kind, units: out, extent: extent || 1e-9 };
}

export function unitGroups(r: GenerationAnswer, sel: Selection): UnitGroup[] {
  if (isAblation(r)) {
    const values = sel.whole ? r.continuation_attributions : r.targets[sel.row]?.attributions;
    return r.units.length ? [group(r.unit, r.units, values)] : [];
  }
  const t: GenerationTarget | undefined = r.targets[sel.row];
  const whole = r.continuation_attributions;
  const groups: UnitGroup[] = [];
  if (r.sources?.length) groups.push(group("source", r.sources, sel.whole ? whole?.sources : t?.source_attributions));
  // Sentences of the prompt only (the continuation's are targets, not inputs to shade).
  const sentences = r.sentences?.filter((s) => s.segment === 0) ?? [];
  if (sentences.length) groups.push(group("sentence", sentences, sel.whole ? whole?.sentences : t?.sentence_attributions));
  return groups;
}

/** Integrated gradients: each message's sum (index → value; null: the generation prompt). */
export function messageValues(r: GenerationAnswer, sel: Selection): Map<number | null, number> | null {
  if (isAblation(r)) return null;
  const values = sel.whole ? r.continuation_attributions?.messages : r.targets[sel.row]?.message_attributions;
  return values ? new Map(values.map((m) => [m.message, m.attribution])) : null;
}

// --- completeness of integrated-gradients rows ---------------------------------------------------

/** The default of the request's `tolerance` (what `within_tolerance` is measured against). */
export const DEFAULT_TOLERANCE = 0.01;

export interface RowStatus {
  row: number;
  text: string;
  relative: number | null; // |δ| / |F(x) − F(x')|; null when the scores are equal
  within: boolean | null; // null: the answer does not say (an older server)
}

export interface ToleranceSummary {
  tolerance: number;
  rows: RowStatus[];
  off: RowStatus[]; // the rows outside the tolerance
  worst: number | null; // the largest relative δ of those
  within: boolean; // every row within (the answer's own `within_tolerance` where it says)
}

/** Which rows of a gradient answer can be read as complete; null for a forward-only method
 * (no path, no δ) and for saliency (a gradient norm: nothing to add up). */
export function toleranceSummary(r: GenerationAnswer): ToleranceSummary | null {
  if (isAblation(r) || !hasCompleteness(methodOf(r))) return null; // saliency: no δ to judge
  const rows = r.targets.map((t, row) => ({
    row,
    text: t.text,
    relative: t.relative_delta ?? null,
    within: typeof t.within_tolerance === "boolean" ? t.within_tolerance : null,
  }));
  const off = rows.filter((s) => s.within === false);
  const worst = off.reduce<number | null>((m, s) => (s.relative === null ? m : Math.max(m ?? 0, s.relative)), null);
  const within = typeof r.within_tolerance === "boolean" ? r.within_tolerance && !off.length : !off.length;
  return { tolerance: r.tolerance ?? DEFAULT_TOLERANCE, rows, off, worst, within };
}

/** A relative δ as the page writes it: "1.2%", "1,601%"; "—" when undefined. */
export function relativeText(relative: number | null | undefined): string {
  if (relative === null || relative === undefined || Number.isNaN(relative)) return "—";
  if (!Number.isFinite(relative)) return "∞";
  const percent = relative * 100;
  return `${percent >= 100 ? Math.round(percent).toLocaleString("en-US") : +percent.toPrecision(2)}%`;
}

// --- forward-only answers ------------------------------------------------------------------------

/** Occlusion/contextcite: rows = target tokens, columns = the units left out (no per-token values). */
export function ablationMatrix(r: AblationResponse): Matrix {
  const columns = r.units.map((u) => ({ label: u.id, title: `${u.id}: ${JSON.stringify(u.text)}`, target: u.segment === 1 }));
  const values = new Float64Array(r.targets.length * columns.length).fill(NaN);
  const index = new Map(r.units.map((u, c) => [u.id, c]));
  let extent = 0;
  r.targets.forEach((t, row) => {
    for (const a of t.attributions) {
      const c = index.get(a.id);
      if (c === undefined) continue;
      values[row * columns.length + c] = a.attribution;
      if (Number.isFinite(a.attribution)) extent = Math.max(extent, Math.abs(a.attribution));
    }
  });
  return { rows: r.targets.map((t) => JSON.stringify(t.text).slice(1, -1)), columns, values, extent: extent || 1e-9 };
}

/** How far the ContextCite surrogate can be trusted, from its held-out fit. */
export function fitQuality(fit: SurrogateFit): "good" | "weak" | "unknown" {
  if (fit.r2 === null || fit.spearman === null) return "unknown";
  return fit.r2 >= 0.5 && fit.spearman >= 0.5 ? "good" : "weak";
}

/** What F_t is in an answer's `score`, in words. */
export function scoreName(score: string): string {
  return (
    { probability: "p", logit: "logit", log_probability: "log p", logit_probability: "log p/(1−p)" } as Record<string, string>
  )[score] ?? score;
}
