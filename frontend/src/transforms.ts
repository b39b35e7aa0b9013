// Pure data transforms: attention → curves and heatmaps, attributions → colours, path series.
// No DOM here, so all of it is unit-tested in Node (test/transforms.test.ts).

import { color as parseColor, hsl, interpolateRgb, rgb, scaleDiverging } from "d3";
import type { PathResponse, Token } from "./types";

// --- attention --------------------------------------------------------------------------

export type Aggregation = "mean" | "max";

/** Attention of one text, one Float32Array per layer: [heads, n, n], row i attends to column j. */
export interface AttentionLayers {
  n: number;
  nHeads: number;
  layers: Map<number, Float32Array>;
  /** The model's head number behind each head index of the data, when only some were asked. */
  heads?: number[];
  /** Set when the heads were combined on the server ("mean"/"max"): one map per layer. */
  aggregate?: string;
}

/** Split the contract's [layers, heads, n, n] block into per-layer views (no copy). */
export function splitLayers(values: Float32Array, shape: number[], layers: number[]): Map<number, Float32Array> {
  const [nLayers, nHeads, n, n2] = shape;
  if (shape.length !== 4 || n !== n2 || nLayers !== layers.length) {
    throw new Error(`attention of shape [${shape}] does not match ${layers.length} layer(s) of square maps`);
  }
  const size = nHeads * n * n;
  const out = new Map<number, Float32Array>();
  layers.forEach((layer, k) => out.set(layer, values.subarray(k * size, (k + 1) * size)));
  return out;
}

export interface Aggregated {
  weights: Float32Array; // [n, n] mean or max over the selected heads
  dominant: Int16Array; // [n, n] the selected head with the largest weight (for colour)
}

/** Combine the selected heads of one layer into one [n, n] map. */
export function aggregateHeads(layer: Float32Array, n: number, heads: number[], how: Aggregation): Aggregated {
  const nn = n * n;
  const weights = new Float32Array(nn);
  const dominant = new Int16Array(nn).fill(-1);
  const best = new Float32Array(nn).fill(-Infinity);
  for (const h of heads) {
    const base = h * nn;
    for (let k = 0; k < nn; k++) {
      const w = layer[base + k];
      if (w > best[k]) {
        best[k] = w;
        dominant[k] = h;
      }
      if (how === "mean") weights[k] += w;
    }
  }
  if (how === "max") weights.set(heads.length ? best : weights);
  else if (heads.length) for (let k = 0; k < nn; k++) weights[k] /= heads.length;
  return { weights, dominant };
}

export interface Edge {
  from: number; // token index (query, left column)
  to: number; // token index (key, right column)
  weight: number;
  head: number; // dominant head, for its colour
}

/** Edges between visible tokens at or above `minWeight`, heaviest last (drawn on top). */
export function attentionEdges(agg: Aggregated, n: number, visible: number[], minWeight: number): Edge[] {
  const edges: Edge[] = [];
  for (const i of visible) {
    for (const j of visible) {
      const w = agg.weights[i * n + j];
      if (w >= minWeight) edges.push({ from: i, to: j, weight: w, head: agg.dominant[i * n + j] });
    }
  }
  return edges.sort((a, b) => a.weight - b.weight);
}

/** An S-curve from (x0, y0) to (x1, y1): horizontal at both ends, like exBERT's. */
export function curvePath(x0: number, y0: number, x1: number, y1: number): string {
  const mx = (x0 + x1) / 2;
  return `M${x0},${y0}C${mx},${y0} ${mx},${y1} ${x1},${y1}`;
}

/** Curve opacity: the weight itself, clamped (max-aggregation can only be ≤ 1 anyway). */
export function edgeOpacity(weight: number): number {
  return Math.max(0, Math.min(1, weight));
}

/** Token indices to show: all, or all but the special ones ([CLS], <s>, ...). */
export function visibleTokens(tokens: Token[], hideSpecial: boolean): number[] {
  return tokens.filter((t) => !(hideSpecial && t.special)).map((t) => t.index);
}

/** A readable label: the text as typed where we know it, else the tokenizer's string. */
export function tokenLabel(token: Token): string {
  const surface = token.surface?.trim();
  if (surface) return surface;
  return token.text.replace(/^Ġ/, "␣").replace(/Ċ/g, "↵").replace(/^▁/, "") || token.text;
}

/**
 * Distinct, evenly spaced hues at one fixed lightness (dark enough to read as a faint curve
 * on white); the same head keeps its colour in every view.
 */
export function headColor(head: number, nHeads: number): string {
  return hsl((360 * head) / Math.max(1, nHeads), 0.75, 0.45).formatHex();
}

/**
 * One thumbnail's RGBA pixels (visible × visible) for ImageData: `rgbColor` blended over
 * white by sqrt(weight), so the long tail of small weights still shows.
 */
export function heatmapPixels(layerHead: Float32Array, n: number, visible: number[], rgbColor: string): Uint8ClampedArray {
  const c = rgb(rgbColor);
  const m = visible.length;
  const px = new Uint8ClampedArray(m * m * 4);
  let p = 0;
  for (const i of visible) {
    for (const j of visible) {
      const a = Math.sqrt(Math.max(0, Math.min(1, layerHead[i * n + j])));
      px[p++] = 255 + (c.r - 255) * a;
      px[p++] = 255 + (c.g - 255) * a;
      px[p++] = 255 + (c.b - 255) * a;
      px[p++] = 255;
    }
  }
  return px;
}

// --- attributions -----------------------------------------------------------------------

/** Symmetric domain for a diverging scale: the largest |value| (never 0, to avoid NaN). */
export function attributionExtent(values: number[]): number {
  const m = Math.max(0, ...values.map((v) => (Number.isFinite(v) ? Math.abs(v) : 0)));
  return m > 0 ? m : 1e-9;
}

// Negative → red, 0 → white, positive → blue; captum's convention uses red/green, but
// red/blue stays readable for red-green colour blindness.
const NEGATIVE = "#c0392b";
const POSITIVE = "#1f6fb2";
const interpolateAttribution = (t: number) =>
  t < 0.5 ? interpolateRgb(NEGATIVE, "#ffffff")(t * 2) : interpolateRgb("#ffffff", POSITIVE)((t - 0.5) * 2);

/** value in [-extent, extent] → CSS colour on the diverging scale. */
export function attributionColor(value: number, extent: number): string {
  const scale = scaleDiverging(interpolateAttribution).domain([-extent, 0, extent]).clamp(true);
  return rgb(scale(value)).formatHex();
}

/** Black or white text, whichever reads better on `background`. */
export function textColorOn(background: string): string {
  const c = parseColor(background);
  if (!c) return "#111";
  return hsl(c).l > 0.55 ? "#111" : "#fff";
}

export interface ConvergenceCheck {
  delta: number;
  change: number; // |F(x) − F(x')|: what the attributions should sum to
  relative: number; // |delta| / change
  large: boolean;
}

/**
 * Completeness says Σ attributions = F(x) − F(x'); `convergence_delta` is the miss. Over
 * `tolerance` of |F(x) − F(x')| the integral is too coarse: more n_steps, or another baseline.
 */
export function convergence(delta: number, targetScore: number, baselineScore: number, tolerance = 0.05): ConvergenceCheck {
  const change = Math.abs(targetScore - baselineScore);
  const relative = change > 0 ? Math.abs(delta) / change : Math.abs(delta) > 0 ? Infinity : 0;
  return { delta, change, relative, large: Math.abs(delta) > tolerance * change + 1e-6 };
}

/** "50 steps (gausslegendre)"; with n_steps "auto" also whether the tolerance was reached. */
export function stepsText(r: Pick<PathResponse, "n_steps" | "method" | "tolerance" | "converged">): string {
  const base = `${r.n_steps} steps (${r.method})`;
  if (r.converged === null || r.converged === undefined) return base;
  const tolerance = `${+((r.tolerance ?? 0) * 100).toPrecision(3)}%`;
  return r.converged ? `${base}, auto: within ${tolerance}` : `${base}, auto: NOT within ${tolerance} (max_n_steps reached)`;
}

export interface PathPoint {
  alpha: number;
  value: number;
}

/** (alpha, value) pairs in alpha order: Gauss-Legendre nodes are not evenly spaced. */
export function pathSeries(alphas: number[], values: number[]): PathPoint[] {
  if (alphas.length !== values.length) {
    throw new Error(`${alphas.length} alphas but ${values.length} values`);
  }
  return alphas.map((alpha, k) => ({ alpha, value: values[k] })).sort((a, b) => a.alpha - b.alpha);
}
