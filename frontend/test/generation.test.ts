import { describe, expect, it } from "vitest";
import raw from "./fixtures/generation.json";
import { generationRequest } from "../src/api";
import { attributionMatrix, causalLms, generationFor, hasWords, leadingToken, promptLength, rowValues, visibleToken } from "../src/generation";
import { DEFAULTS } from "../src/state";
import type { AppConfig, GenerationRequest, GenerationResponse, ModelDetails } from "../src/types";

// Real answers of the generation backend on SmolLM2 (scripts/generation-fixture.py).
const fixtures = raw as unknown as Record<
  string,
  { request: GenerationRequest; response: GenerationResponse }
>;
const plain = fixtures.continuation.response;
const contrastive = fixtures.foil_words.response;
const generated = fixtures.generate.response;

describe("the request the Generation view sends", () => {
  const inputs = { ...DEFAULTS, text: "The capital of France is", continuation: " Paris, the", steps: 8 };

  it("a continuation, as typed (leading space kept), with the baseline and steps", () => {
    expect(generationRequest(inputs)).toEqual({ text: "The capital of France is", continuation: " Paris, the", baseline: "pad", n_steps: 8 });
  });

  it("generate N instead of the continuation; a foil and words only when asked", () => {
    expect(generationRequest({ ...inputs, generate: 3, foil: " London", words: true })).toEqual({
      text: "The capital of France is", generate: { max_new_tokens: 3 }, foil: " London", aggregate: "word", baseline: "pad", n_steps: 8,
    });
    expect(generationRequest({ ...inputs, foil: "#4528" }).foil).toBe(4528);
    expect(generationRequest({ ...inputs, foil: "   " }).foil).toBeUndefined();
  });

  it("the fixtures were asked with what the view sends for the same inputs", () => {
    const { request } = fixtures.foil_words;
    const sent = generationRequest({ ...inputs, foil: " London", words: true });
    for (const key of ["text", "continuation", "foil", "aggregate", "n_steps"] as const) expect(sent[key]).toEqual(request[key]);
  });
});

describe("the attribution matrix of a real answer", () => {
  it("rows = target tokens, columns = tokens; row t has len(prompt) + t values", () => {
    const m = attributionMatrix(plain, false);
    const n = promptLength(plain);
    expect(n).toBe(5); // "The capital of France is"
    expect(m.rows).toEqual(plain.targets.map((t) => JSON.stringify(t.text).slice(1, -1)));
    expect(m.rows).toEqual([" Paris", ",", " the"]);
    expect(m.columns.length).toBe(plain.tokens.length);
    m.rows.forEach((_, t) => {
      const row = Array.from(m.values.subarray(t * m.columns.length, (t + 1) * m.columns.length));
      expect(row.filter(Number.isFinite).length).toBe(n + t);
      expect(row.slice(0, n + t).every(Number.isFinite)).toBe(true);
      expect(row.slice(n + t).every(Number.isNaN)).toBe(true);
    });
    expect(m.columns.map((c) => c.target)).toEqual(plain.tokens.map((t) => Boolean(t.target)));
  });

  it("one colour scale for the whole matrix: the largest |value| of any row", () => {
    const m = attributionMatrix(plain, false);
    const all = plain.targets.flatMap((t) => t.attributions!.normalized.map(Math.abs));
    expect(m.extent).toBeCloseTo(Math.max(...all), 12);
  });

  it("words: columns are the answer's words, each row's word values in order", () => {
    expect(hasWords(contrastive)).toBe(true);
    expect(hasWords(plain)).toBe(false);
    const m = attributionMatrix(contrastive, true);
    expect(m.columns.map((c) => c.label)).toEqual(contrastive.words!.map((w) => w.text));
    contrastive.targets.forEach((t, r) => {
      const row = Array.from(m.values.subarray(r * m.columns.length, (r + 1) * m.columns.length));
      expect(row.filter(Number.isFinite)).toEqual(t.word_attributions!.normalized.map((v) => expect.closeTo(v, 12)));
    });
    // Asked for words but the answer has none: tokens, as sent.
    expect(attributionMatrix(plain, true).columns.length).toBe(plain.tokens.length);
    expect(rowValues(plain.targets[0], true)).toBe(plain.targets[0].attributions!.normalized);
  });

  it("a foil's answer names it, and F is p(target) − p(foil)", () => {
    for (const t of contrastive.targets) {
      expect(t.foil?.text).toBe(" London");
      expect(t.score).toBeCloseTo(t.probability - t.foil!.probability, 5);
    }
    expect(plain.targets.every((t) => t.foil === null)).toBe(true);
  });

  it("generated tokens are targets too; the leading prompt token of each row is found", () => {
    expect(generated.targets.length).toBe(3);
    expect(generated.tokens.filter((t) => t.target).length).toBe(3);
    const lead = leadingToken(plain, 0)!;
    const row = plain.targets[0].attributions!.normalized;
    expect(lead.value).toBe(Math.max(...row));
    expect(lead.index).toBe(row.indexOf(lead.value));
  });
});

describe("which gradients models explain generations", () => {
  const base = { type: "", architecture: "", n_layers: 2, n_heads: 2, vocab_size: 10, max_tokens: 512, mask_token: null };
  const smollm2: ModelDetails = { ...base, name: "smollm2", kind: "autoregressive", head: "causal-lm", predictions: "next-token", labels: null };
  const sentiment: ModelDetails = { ...base, name: "sentiment", kind: "bidirectional", head: "sequence-classification", predictions: null, labels: ["negative", "positive"] };
  const config: AppConfig = {
    inference: "",
    models: [
      { name: "sentiment-attention", handler: "attention" },
      { name: "sentiment-gradients", handler: "gradients" },
      { name: "smollm2-attention", handler: "attention" },
      { name: "smollm2-gradients", handler: "gradients" },
      { name: "other-gradients", handler: "gradients" },
    ],
  };
  const details = new Map([["sentiment-attention", sentiment], ["smollm2-attention", smollm2]]);

  it("causal LMs, and those not known yet; never a classifier", () => {
    expect(causalLms(config, details, new Map())).toEqual(["smollm2-gradients", "other-gradients"]);
    expect(causalLms(config, details, new Map([["other-gradients", sentiment]]))).toEqual(["smollm2-gradients"]);
  });

  it("a result is shown only under the model that computed it", () => {
    const held = { model: "smollm2-gradients", body: fixtures.continuation.request, result: plain };
    expect(generationFor(held, "smollm2-gradients")).toBe(held);
    expect(generationFor(held, "other-gradients")).toBeNull();
    expect(generationFor(null, "smollm2-gradients")).toBeNull();
  });
});

describe("heatmap labels", () => {
  it("show spaces, line breaks and tabs as marks, template tokens included", () => {
    expect(visibleToken({ surface: " Paris", text: "ĠParis" })).toBe("␣Paris");
    expect(visibleToken({ surface: "\n", text: "Ċ" })).toBe("↵");
    expect(visibleToken({ surface: null, text: "ĊĊ" })).toBe("↵↵");
    expect(visibleToken({ surface: null, text: "<|im_start|>" })).toBe("<|im_start|>");
    expect(visibleToken({ surface: "\t", text: "ĉ" })).toBe("⇥");
  });
});
