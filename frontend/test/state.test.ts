import { describe, expect, it } from "vitest";
import { BASELINES } from "../src/contract";
import { DEFAULTS, parseState, parseSteps, serializeState } from "../src/state";

describe("state in the URL", () => {
  it("defaults make an empty hash", () => {
    expect(serializeState(DEFAULTS)).toBe("");
    expect(parseState("")).toEqual(DEFAULTS);
  });

  it("round-trips everything a shared link needs", () => {
    const s = {
      ...DEFAULTS, view: "overview" as const, model: "minilm-attention", text: "The cat & the hat?", pair: "It sat.",
      layer: 3, heads: [0, 5], agg: "max" as const, hideSpecial: true, mask: [2], token: 2,
      gmodel: "sentiment-gradients", target: "positive", baseline: "zero" as const, steps: 64,
      rollout: true, lm: "smollm2-gradients", continuation: " Paris, the", generate: 3, foil: " London", words: true, row: 1,
    };
    expect(parseState(`#${serializeState(s)}`)).toEqual(s);
  });

  it('steps: a positive integer or "auto"; anything else falls back', () => {
    expect(parseState(serializeState({ ...DEFAULTS, steps: "auto" })).steps).toBe("auto");
    expect(parseSteps(" Auto ")).toBe("auto");
    expect(parseSteps("16")).toBe(16);
    for (const bad of ["", "0", "-3", "2.5", "autox"]) expect(parseSteps(bad)).toBeNull();
    expect(parseState("steps=0").steps).toBe(50);
  });

  it("an empty head list stays empty (not 'all')", () => {
    expect(parseState(serializeState({ ...DEFAULTS, heads: [] })).heads).toEqual([]);
  });

  it("garbage falls back to defaults", () => {
    const s = parseState("view=nope&layer=-1&heads=x,1&agg=median&baseline=evil&steps=abc&token=t");
    expect(s.view).toBe("attention");
    expect(s.layer).toBe(0);
    expect(s.heads).toEqual([1]);
    expect(s.agg).toBe("mean");
    expect(s.baseline).toBe("pad");
    expect(s.steps).toBe(50);
    expect(s.token).toBeNull();
  });

  it("takes every baseline of the contract, and a causal LM's target with its leading space", () => {
    for (const baseline of BASELINES) expect(parseState(serializeState({ ...DEFAULTS, baseline })).baseline).toBe(baseline);
    const s = { ...DEFAULTS, gmodel: "smollm2-gradients", target: " Paris" };
    expect(parseState(serializeState(s))).toEqual(s);
  });
});
