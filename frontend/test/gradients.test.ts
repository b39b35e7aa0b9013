import { describe, expect, it } from "vitest";
import { gradientsModelDetails, resultFor, targetControl, targetValue, type HeldResult } from "../src/gradients";
import type { GradientsResponse, ModelDetails } from "../src/types";

// The model blocks the served archives answer to `POST {}` (deploy/models.txt's defaults).
const base = { type: "", architecture: "", n_layers: 2, n_heads: 2, vocab_size: 10, max_tokens: 512, mask_token: null };
const SENTIMENT: ModelDetails = {
  ...base, name: "sentiment", kind: "bidirectional", head: "sequence-classification", predictions: null, labels: ["negative", "positive"],
};
const SMOLLM2: ModelDetails = {
  ...base, name: "smollm2", kind: "autoregressive", head: "causal-lm", predictions: "next-token", labels: null,
};
const MINILM: ModelDetails = {
  ...base, name: "minilm", kind: "bidirectional", head: null, predictions: null, mask_token: "[MASK]", labels: null,
};
const attention = new Map([
  ["minilm-attention", MINILM],
  ["smollm2-attention", SMOLLM2],
  ["sentiment-attention", SENTIMENT],
]);
const none = new Map<string, ModelDetails>();

const controlFor = (gmodel: string, details = attention, fromResults = none) =>
  targetControl(gradientsModelDetails(gmodel, details, fromResults));

describe("the target a gradients model is offered", () => {
  it("a classifier offers its labels", () => {
    expect(controlFor("sentiment-gradients")).toEqual({ kind: "label", labels: ["negative", "positive"] });
  });

  it("a causal LM takes a typed next token, not another model's labels", () => {
    expect(controlFor("smollm2-gradients")).toEqual({ kind: "token" });
  });

  it("a model the page knows nothing of gets free text, not sentiment's labels", () => {
    expect(controlFor("other-gradients")).toEqual({ kind: "free" });
    expect(controlFor("smollm2-gradients", new Map([["sentiment-attention", SENTIMENT]]))).toEqual({ kind: "free" });
  });

  it("the model's own result says best what it is", () => {
    const learned = new Map([["other-gradients", SMOLLM2]]);
    expect(controlFor("other-gradients", attention, learned)).toEqual({ kind: "token" });
    expect(controlFor("sentiment-gradients", attention, new Map([["sentiment-gradients", { ...SENTIMENT, labels: ["a", "b", "c"] }]])))
      .toEqual({ kind: "label", labels: ["a", "b", "c"] });
  });

  it("a model without a classification or causal-LM head gets free text (the server says why not)", () => {
    expect(targetControl(MINILM)).toEqual({ kind: "free" });
    expect(targetControl(null)).toEqual({ kind: "free" });
  });
});

describe("the target sent", () => {
  it("empty means the model's own prediction: no target", () => {
    expect(targetValue("")).toBeUndefined();
    expect(targetValue("   ")).toBeUndefined();
  });

  it("a token's text goes as typed, leading space and all", () => {
    expect(targetValue(" Paris")).toBe(" Paris");
    expect(targetValue("positive")).toBe("positive");
    expect(targetValue("42")).toBe("42"); // a digit token's text, not an id
  });

  it("#n is a token id or class index", () => {
    expect(targetValue("#7042")).toBe(7042);
    expect(targetValue(" #1 ")).toBe(1);
    expect(targetValue("#x")).toBe("#x");
  });
});

describe("the result on screen", () => {
  const held = (model: string): HeldResult => ({ model, body: { text: "t" }, result: { model: SENTIMENT } as GradientsResponse });

  it("is the selected model's own", () => {
    const h = held("sentiment-gradients");
    expect(resultFor(h, "sentiment-gradients")).toBe(h);
  });

  it("is never the previous model's, after switching model", () => {
    expect(resultFor(held("sentiment-gradients"), "smollm2-gradients")).toBeNull();
    expect(resultFor(null, "smollm2-gradients")).toBeNull();
  });
});
