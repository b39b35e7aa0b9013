import { describe, expect, it } from "vitest";
import {
  aggregateHeads,
  attentionEdges,
  attributionColor,
  attributionExtent,
  convergence,
  stepsText,
  curvePath,
  headColor,
  heatmapPixels,
  pathSeries,
  splitLayers,
  textColorOn,
  tokenLabel,
  visibleTokens,
} from "../src/transforms";
import type { Token } from "../src/types";

// One layer, 2 heads, 3 tokens: head 0 attends to itself, head 1 to token 0.
const HEAD0 = [1, 0, 0, 0, 1, 0, 0, 0, 1];
const HEAD1 = [1, 0, 0, 1, 0, 0, 0.5, 0, 0.5];
const LAYER = Float32Array.from([...HEAD0, ...HEAD1]);

const tok = (index: number, text: string, special = false, surface: string | null = text): Token => ({
  index, text, id: index, start: null, end: null, surface: special ? null : surface, segment: special ? null : 0, special,
});
const TOKENS = [tok(0, "[CLS]", true), tok(1, "cat"), tok(2, "[SEP]", true)];

describe("attention → curves", () => {
  it("splits [layers, heads, n, n] into per-layer views", () => {
    const values = Float32Array.from({ length: 2 * 2 * 3 * 3 }, (_, k) => k);
    const layers = splitLayers(values, [2, 2, 3, 3], [4, 7]);
    expect([...layers.keys()]).toEqual([4, 7]);
    expect(layers.get(7)![0]).toBe(18);
    expect(() => splitLayers(values, [2, 2, 3, 3], [0])).toThrow(/does not match/);
  });

  it("mean over the selected heads", () => {
    const { weights } = aggregateHeads(LAYER, 3, [0, 1], "mean");
    expect(Array.from(weights)).toEqual([1, 0, 0, 0.5, 0.5, 0, 0.25, 0, 0.75]);
  });

  it("max over the selected heads, with the head that gave it", () => {
    const { weights, dominant } = aggregateHeads(LAYER, 3, [0, 1], "max");
    expect(Array.from(weights)).toEqual([1, 0, 0, 1, 1, 0, 0.5, 0, 1]);
    expect(dominant[3]).toBe(1); // token 1 → token 0: head 1
    expect(dominant[4]).toBe(0); // token 1 → itself: head 0
  });

  it("one selected head is that head; none gives nothing", () => {
    expect(Array.from(aggregateHeads(LAYER, 3, [1], "mean").weights)).toEqual(HEAD1);
    expect(Array.from(aggregateHeads(LAYER, 3, [], "max").weights)).toEqual(Array(9).fill(0));
  });

  it("edges: only visible tokens, at or above the threshold, heaviest drawn last", () => {
    const agg = aggregateHeads(LAYER, 3, [0, 1], "mean");
    const edges = attentionEdges(agg, 3, [0, 1, 2], 0.3);
    expect(edges.map((e) => [e.from, e.to, e.weight])).toEqual([[1, 0, 0.5], [1, 1, 0.5], [2, 2, 0.75], [0, 0, 1]]);
    const noSpecials = attentionEdges(agg, 3, visibleTokens(TOKENS, true), 0);
    expect(noSpecials.map((e) => [e.from, e.to])).toEqual([[1, 1]]);
  });

  it("curves are horizontal at both ends", () => {
    expect(curvePath(0, 10, 100, 50)).toBe("M0,10C50,10 50,50 100,50");
  });

  it("hiding special tokens keeps the others' indices", () => {
    expect(visibleTokens(TOKENS, false)).toEqual([0, 1, 2]);
    expect(visibleTokens(TOKENS, true)).toEqual([1]);
  });

  it("labels: the surface text, else the tokenizer's string made readable", () => {
    expect(tokenLabel(tok(1, "##ing", false, "ing"))).toBe("ing");
    expect(tokenLabel(tok(0, "[CLS]", true))).toBe("[CLS]");
    expect(tokenLabel({ ...tok(1, "Ġcat"), surface: " " })).toBe("␣cat");
  });

  it("head colours are distinct and stable", () => {
    const colours = Array.from({ length: 12 }, (_, h) => headColor(h, 12));
    expect(new Set(colours).size).toBe(12);
    expect(headColor(3, 12)).toBe(colours[3]);
  });

  it("thumbnail pixels: white at 0, the head colour at 1", () => {
    const px = heatmapPixels(Float32Array.from(HEAD0), 3, [0, 1], "#ff0000");
    expect(px.length).toBe(2 * 2 * 4);
    expect(Array.from(px.slice(0, 4))).toEqual([255, 0, 0, 255]); // (0,0) = 1
    expect(Array.from(px.slice(4, 8))).toEqual([255, 255, 255, 255]); // (0,1) = 0
  });
});

describe("attributions → colours", () => {
  it("a symmetric extent from the largest magnitude, never zero", () => {
    expect(attributionExtent([0.2, -0.7, 0.1])).toBe(0.7);
    expect(attributionExtent([0, 0])).toBeGreaterThan(0);
  });

  it("negative red, zero white, positive blue, clamped beyond the extent", () => {
    expect(attributionColor(0, 1)).toBe("#ffffff");
    expect(attributionColor(-1, 1)).toBe("#c0392b");
    expect(attributionColor(1, 1)).toBe("#1f6fb2");
    expect(attributionColor(5, 1)).toBe("#1f6fb2");
    const half = attributionColor(0.5, 1);
    expect(half).not.toBe("#ffffff");
    expect(half).not.toBe("#1f6fb2");
  });

  it("text stays readable on its shade", () => {
    expect(textColorOn("#ffffff")).toBe("#111");
    expect(textColorOn("#1f6fb2")).toBe("#fff");
  });

  it('steps text: the rule, and with "auto" whether the tolerance was reached', () => {
    expect(stepsText({ n_steps: 50, method: "gausslegendre", tolerance: null, converged: null })).toBe("50 steps (gausslegendre)");
    expect(stepsText({ n_steps: 31, method: "fejer", tolerance: 0.01, converged: true })).toBe("31 steps (fejer), auto: within 1%");
    expect(stepsText({ n_steps: 500, method: "gausskronrod", tolerance: 0.001, converged: false }))
      .toBe("500 steps (gausskronrod), auto: NOT within 0.1% (max_n_steps reached)");
  });

  it("convergence: a delta over 5% of F(x) − F(x') is large", () => {
    expect(convergence(0.01, 0.9, 0.1).large).toBe(false); // 1.25%
    const bad = convergence(-0.08, 0.9, 0.1); // 10%
    expect(bad.large).toBe(true);
    expect(bad.relative).toBeCloseTo(0.1);
    expect(convergence(0, 0.5, 0.5).large).toBe(false);
  });

  it("path series are sorted by alpha (Gauss-Legendre nodes come in any order)", () => {
    expect(pathSeries([0.9, 0.1, 0.5], [3, 1, 2])).toEqual([
      { alpha: 0.1, value: 1 },
      { alpha: 0.5, value: 2 },
      { alpha: 0.9, value: 3 },
    ]);
    expect(() => pathSeries([0.1], [])).toThrow(/1 alphas but 0 values/);
  });
});
