// Explaining a causal LM's generation: whose result is shown, and the attribution matrix of its answer (row t: target token t over the prompt and the t targets
// before it). Pure functions, unit-tested on answers of the real backend (test/fixtures).

import { gradientsModelDetails } from "./gradients";
import type { AblationResponse, AppConfig, GenerationRequest, GenerationResponse, GenerationTarget, ModelDetails } from "./types";

/** What a continuation request answers: a gradient method's rows, or a forward-only method's units. */
export type GenerationAnswer = GenerationResponse | AblationResponse;

/**
 * The gradients models that explain generations: causal LMs. A model whose details are not
 * known yet (no twin attention archive, no result) is offered too: its answer will tell.
 */
export function causalLms(
  config: AppConfig,
  attentionDetails: ReadonlyMap<string, ModelDetails>,
  fromResults: ReadonlyMap<string, ModelDetails>,
): string[] {
  return config.models
    .filter((m) => m.handler === "gradients")
    .map((m) => m.name)
    .filter((name) => {
      const d = gradientsModelDetails(name, attentionDetails, fromResults);
      return !d || d.head === "causal-lm";
    });
}

/** A result (integrated gradients', or a forward-only method's) and the model and request it
 * was computed for. */
export interface HeldGeneration {
  model: string;
  body: GenerationRequest;
  result: GenerationAnswer;
}

/** The result to show for the selected model: only its own. */
export function generationFor(held: HeldGeneration | null, lm: string): HeldGeneration | null {
  return held && held.model === lm ? held : null;
}

export interface Column {
  label: string; // the token's (or word's) text
  title: string; // its tooltip
  target: boolean; // a generated (target) token, or a word holding one
}

/** The attribution matrix: rows = target tokens, columns = tokens (or words); NaN where a
 * column is not an input of the row (the target itself and later ones). */
export interface Matrix {
  rows: string[];
  columns: Column[];
  values: Float64Array; // [rows × columns], row-major
  extent: number; // the largest |value|, for one colour scale over all rows
}

const quoted = (text: string) => JSON.stringify(text).slice(1, -1);

/** Row t's values (normalized): one per preceding token, or per word with `words`. */
export function rowValues(target: GenerationTarget, words: boolean): number[] {
  if (words && target.word_attributions) return target.word_attributions.normalized;
  return target.attributions?.normalized ?? [];
}

/** Whether `result` carries word-level values (it was asked with `aggregate: "word"`). */
export const hasWords = (result: GenerationResponse) => Boolean(result.words?.length && result.targets.every((t) => t.word_attributions));

export function attributionMatrix(result: GenerationResponse, words: boolean): Matrix {
  const byWord = words && hasWords(result);
  const columns: Column[] = byWord
    ? result.words!.map((w) => ({
        label: w.text,
        title: `${quoted(w.text)} (tokens ${w.tokens.join(", ")})`,
        target: w.tokens.some((i) => result.tokens[i]?.target),
      }))
    : result.tokens.map((t) => ({ label: visibleToken(t), title: `#${t.index} ${quoted(t.surface ?? t.text)} (${t.text})`, target: Boolean(t.target) }));
  const values = new Float64Array(result.targets.length * columns.length).fill(NaN);
  let extent = 0;
  result.targets.forEach((target, r) => {
    rowValues(target, byWord).forEach((v, c) => {
      if (c >= columns.length) return;
      values[r * columns.length + c] = v;
      if (Number.isFinite(v)) extent = Math.max(extent, Math.abs(v));
    });
  });
  return { rows: result.targets.map((t) => quoted(t.text)), columns, values, extent: extent || 1e-9 };
}

/** A token as a heatmap label: its text with a leading space as ␣, line breaks as ↵, tabs as ⇥
 * (byte-level BPE's Ġ and Ċ too, for tokens with no surface, such as a chat template's). */
export function visibleToken(t: { surface?: string | null; text: string }): string {
  const raw = t.surface ?? t.text.replace(/Ġ/g, " ").replace(/Ċ/g, "\n").replace(/ĉ/g, "\t");
  const shown = raw.replace(/\r?\n/g, "↵").replace(/\t/g, "⇥").replace(/^ /, "␣");
  return shown || t.text;
}

/** The prompt's token count: row t has promptLength + t values. */
export const promptLength = (result: { tokens: { target: boolean }[] }) => result.tokens.filter((t) => !t.target).length;

/** The prompt token with the largest attribution in row t (what "leads" the row). */
export function leadingToken(result: GenerationResponse, t: number): { index: number; value: number } | null {
  const values = result.targets[t]?.attributions?.normalized ?? [];
  let best: { index: number; value: number } | null = null;
  values.forEach((value, index) => {
    if (!best || value > best.value) best = { index, value };
  });
  return best;
}
