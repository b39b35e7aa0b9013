import { describe, expect, it } from "vitest";
import { attentionLayers, firstLayer, parseEmbedded, toggleHead } from "../src/embed";
import type { AttentionResponse, ModelDetails, Token } from "../src/types";

const MODEL: ModelDetails = {
  name: "tiny", type: "bert", architecture: "BertForMaskedLM", kind: "bidirectional", n_layers: 4, n_heads: 2,
  vocab_size: 10, max_tokens: 128, head: "masked-lm", predictions: "masked-token", mask_token: "[MASK]", labels: null,
};
const tok = (index: number): Token => ({ index, text: `t${index}`, id: index, start: null, end: null, surface: `t${index}`, segment: 0, special: false });
// 2 layers (the model's 1 and 3) × 2 heads × 2 tokens: value k at flat position k / 16.
const VALUES = Array.from({ length: 16 }, (_, k) => k / 16);
const nested = (v: number[]) => [0, 1].map((l) => [0, 1].map((hd) => [0, 1].map((i) => [0, 1].map((j) => v[l * 8 + hd * 4 + i * 2 + j]))));
// The same values as little-endian float16, base64 (exact: k/16 is a half).
const F16 = "AAAALAAwADIANAA1ADYANwA4gDgAOYA5ADqAOgA7gDs="; // numpy: (np.arange(16) / 16).astype("<f2")

const response = (attention: AttentionResponse["attention"]): AttentionResponse => ({
  model: MODEL, tokens: [tok(0), tok(1)], attention, truncated: false, n_tokens_input: 2, n_tokens_dropped: 0,
});

describe("the embedded payload", () => {
  it("parses {kind, response}", () => {
    const r = response({ encoding: "json", shape: [2, 2, 2, 2], layers: [1, 3], heads: [0, 1], data: nested(VALUES) });
    expect(parseEmbedded(JSON.stringify({ kind: "attention", response: r })).kind).toBe("attention");
  });

  it("says what is wrong with a broken one", () => {
    expect(() => parseEmbedded("")).toThrow(/no exformer data/);
    expect(() => parseEmbedded("{")).toThrow(/not JSON/);
    expect(() => parseEmbedded("[]")).toThrow(/must be an object/);
    expect(() => parseEmbedded('{"kind": "heatmap", "response": {}}')).toThrow(/unknown kind "heatmap"/);
    expect(() => parseEmbedded('{"kind": "gradients", "response": {"tokens": []}}')).toThrow(/lacks its tokens or model/);
    expect(() => parseEmbedded(`{"kind": "attention", "response": {"tokens": [], "model": {}}}`)).toThrow(/has no attention/);
  });
});

describe("embedded attention → layers", () => {
  it("decodes json nested lists and float16-base64 alike, keyed by the model's layers", () => {
    const fromJson = attentionLayers(response({ encoding: "json", shape: [2, 2, 2, 2], layers: [1, 3], heads: [0, 1], data: nested(VALUES) }));
    const fromF16 = attentionLayers(response({
      encoding: "float16-base64", dtype: "float16", byteorder: "little", shape: [2, 2, 2, 2], layers: [1, 3], heads: [0, 1], data: F16,
    }));
    for (const a of [fromJson, fromF16]) {
      expect(a.n).toBe(2);
      expect(a.nHeads).toBe(2);
      expect([...a.layers.keys()]).toEqual([1, 3]);
      expect(Array.from(a.layers.get(3)!)).toEqual(VALUES.slice(8));
      expect(firstLayer(a)).toBe(1);
    }
  });

  it("names the model's heads when only some were asked", () => {
    const some = attentionLayers(response({ encoding: "json", shape: [1, 1, 2, 2], layers: [0], heads: [1], data: [[[[1, 0], [0, 1]]]] }));
    expect(some.nHeads).toBe(1);
    expect(some.heads).toEqual([1]);
  });

  it("refuses attention over another number of tokens", () => {
    const r = response({ encoding: "json", shape: [1, 1, 3, 3], layers: [0], heads: [0], data: [[[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]] });
    expect(() => attentionLayers(r)).toThrow(/over 3 tokens, but the response lists 2/);
  });
});

describe("head toggles", () => {
  it("turns one head off from all, and back to all (null)", () => {
    expect(toggleHead(null, 1, 3)).toEqual([0, 2]);
    expect(toggleHead([0, 2], 1, 3)).toBeNull();
    expect(toggleHead([2], 0, 3)).toEqual([0, 2]);
    expect(toggleHead([0], 0, 3)).toEqual([]);
  });
});
