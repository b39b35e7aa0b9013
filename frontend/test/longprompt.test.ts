import { describe, expect, it } from "vitest";
import raw from "./fixtures/attention.json";
import { attentionRequest, LONG_PROMPT_TOKENS, longPrompt, SPARSE_K, SPARSE_PROMPT_TOKENS } from "../src/api";
import { decodeBlock, decodeIndices, densify } from "../src/decode";
import { assemble } from "../src/load";
import { DEFAULTS } from "../src/state";
import type { AttentionResponse, PageAttentionRequest, SparseRowsBlock } from "../src/types";

// Real answers of the attention backend on MiniLM with the values the Python client decodes
// them to (scripts/fixtures.py).
type Fixture = { request: PageAttentionRequest; response: AttentionResponse & Record<string, any>; decoded: { rollout?: number[][][]; attention?: number[][][][] } };
const fixtures = raw as unknown as Record<string, Fixture>;

function expectClose(actual: ArrayLike<number>, expected: number[], tolerance = 2e-4) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(tolerance);
}

describe("rollout and the sparse encoding, decoded as the Python client does", () => {
  it("float16 rollout: one [T, T] map per layer, rows summing to 1", () => {
    const { request, response, decoded } = fixtures.rollout_f16;
    const loaded = assemble([response], request);
    expect([...loaded.rollout!.keys()]).toEqual([0, 1]);
    const n = response.tokens.length;
    loaded.rollout!.forEach((map, l) => {
      expectClose(map, decoded.rollout![l].flat());
      for (let i = 0; i < n; i++) expect(map.subarray(i * n, (i + 1) * n).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 2);
    });
    expect(loaded.aggregate).toBeNull();
    expect(loaded.sparse).toBeNull();
    expect(loaded.attention.nHeads).toBe(response.model.n_heads);
  });

  it("heads mean, top k per row (float16 values, uint16 columns): dense again with zeros", () => {
    const { request, response, decoded } = fixtures.sparse_mean_f16;
    const block = response.attention as unknown as SparseRowsBlock;
    expect(block.encoding).toBe("topk-per-row");
    const dense = densify(block);
    expectClose(dense, decoded.attention!.flat(3));
    const n = response.tokens.length;
    // k of n columns of each row were sent, the others are 0.
    for (let r = 0; r < dense.length / n; r++) expect(dense.subarray(r * n, (r + 1) * n).filter((v) => v !== 0).length).toBeLessThanOrEqual(block.k);
    const loaded = assemble([response], request);
    expect(loaded.aggregate).toBe("mean");
    expect(loaded.attention.nHeads).toBe(1);
    expect(loaded.attention.aggregate).toBe("mean");
    expect(loaded.sparse!.k).toBe(3);
    expect(loaded.sparse!.minKeptFraction).toBeLessThanOrEqual(block.min_kept_fraction);
    loaded.rollout!.forEach((map, l) => expectClose(map, decoded.rollout![l].flat()));
  });

  it("heads max as JSON rows: columns as JSON lists", () => {
    const { request, response, decoded } = fixtures.sparse_max_json;
    const block = response.attention as unknown as SparseRowsBlock;
    expect(block.columns.encoding).toBe("json");
    expect(decodeIndices(block.columns).length).toBe(block.shape.slice(0, -1).reduce((a, b) => a * b, 1) * block.k);
    expectClose(decodeBlock(block), decoded.attention!.flat(3), 6e-5); // the reference is rounded to 4 places
    const loaded = assemble([response], request);
    expect([...loaded.attention.layers.keys()]).toEqual([1]);
    expect(loaded.aggregate).toBe("max");
  });

  it("a column out of range, or a short block, is an error, not a wrong picture", () => {
    const block = structuredClone(fixtures.sparse_max_json.response.attention) as unknown as SparseRowsBlock;
    const columns = block.columns as { data: number[][][][] };
    columns.data[0][0][0][0] = 99;
    expect(() => densify(block)).toThrow(/column 99 out of range/);
    expect(() => decodeIndices({ encoding: "base64", dtype: "uint16", shape: [2], data: btoa("\x01") })).toThrow(/uint16/);
  });
});

describe("the long-prompt switch", () => {
  const text = (tokens: number) => "abcd".repeat(tokens);

  it("all heads for a short prompt; past the size their aggregate, the agg chosen", () => {
    expect(longPrompt({ text: text(LONG_PROMPT_TOKENS), pair: "", agg: "mean" })).toEqual({ estimate: LONG_PROMPT_TOKENS, heads: "all", topK: null });
    expect(longPrompt({ text: text(LONG_PROMPT_TOKENS + 1), pair: "", agg: "max" }).heads).toBe("max");
    expect(longPrompt({ text: text(LONG_PROMPT_TOKENS), pair: "x", agg: "mean" }).heads).toBe("mean"); // the pair counts too
    expect(longPrompt({ text: text(SPARSE_PROMPT_TOKENS + 1), pair: "", agg: "mean" })).toMatchObject({ heads: "mean", topK: SPARSE_K });
  });

  it("the request carries it, and rollout when the overview asks", () => {
    expect(attentionRequest({ ...DEFAULTS, text: "The cat." }, undefined)).toEqual({ text: "The cat.", heads: "all", encoding: "float16-base64" });
    expect(attentionRequest({ ...DEFAULTS, text: "The cat.", rollout: true }, undefined).rollout).toBe(true);
    const long = attentionRequest({ ...DEFAULTS, text: text(SPARSE_PROMPT_TOKENS + 1), agg: "max" }, undefined);
    expect(long).toMatchObject({ heads: "max", top_k_per_row: SPARSE_K, encoding: "float16-base64" });
  });
});
