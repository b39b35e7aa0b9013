// Attention for one text, fetched as float16 and kept per layer. All layers come in one
// response when the server's response limit allows; else in halves, quarters, ... With the
// long-prompt switch (api.ts) the heads come aggregated on the server and, past a larger size,
// as the top k of each row; rollout, when asked, comes with the same layers.

import { ApiError, type InferenceApi } from "./api";
import { decodeBlock } from "./decode";
import { splitLayers, type AttentionLayers } from "./transforms";
import type { AttentionBlock, AttentionResponse, PageAttentionRequest, RolloutBlock } from "./types";

export interface LoadedAttention {
  response: AttentionResponse; // tokens and model details (its attention: the first part)
  attention: AttentionLayers;
  body: PageAttentionRequest; // what was asked: text, pair, mask, heads, rollout, top_k_per_row
  rollout: Map<number, Float32Array> | null; // layer → [n, n] rolled-out attention, when asked
  aggregate: "mean" | "max" | null; // heads aggregated on the server: one map per layer
  sparse: { k: number; minKeptFraction: number } | null; // top-k per row: the least mass a row kept
}

const tooLarge = (error: unknown) => error instanceof ApiError && error.status === 413 && error.field === "attention";

/** The blocks of a response, whatever version of the contract typed it. */
const blocks = (r: AttentionResponse) => r as unknown as { attention?: AttentionBlock | null; rollout?: RolloutBlock | null };

/**
 * `layers` in as few requests as fit: a 413 on "attention" (e.g. SmolLM2's 30 × 9 maps at
 * 512 tokens) splits the list in two. Each request is one forward pass on the server, so
 * two halves cost far less than one request per layer.
 */
export async function fetchLayers(
  api: InferenceApi, model: string, body: PageAttentionRequest, layers: number[], signal: AbortSignal,
): Promise<AttentionResponse[]> {
  try {
    return [await api.attention(model, { ...body, layers }, signal)];
  } catch (error) {
    if (!tooLarge(error) || layers.length < 2) throw error;
    const half = Math.ceil(layers.length / 2);
    const first = await fetchLayers(api, model, body, layers.slice(0, half), signal);
    return [...first, ...(await fetchLayers(api, model, body, layers.slice(half), signal))];
  }
}

/** Responses (one per layer range) → per-layer attention and rollout. */
export function assemble(parts: AttentionResponse[], body: PageAttentionRequest): LoadedAttention {
  const layers = new Map<number, Float32Array>();
  let rollout: Map<number, Float32Array> | null = null;
  let minKept = Infinity;
  let k = 0;
  const first = blocks(parts[0]).attention;
  if (!first) throw new ApiError("invalid", "the attention response holds no attention");
  for (const part of parts) {
    const { attention, rollout: rolled } = blocks(part);
    if (!attention) throw new ApiError("invalid", "the attention response holds no attention");
    splitLayers(decodeBlock(attention), attention.shape, attention.layers).forEach((v, l) => layers.set(l, v));
    if (attention.encoding === "topk-per-row") {
      minKept = Math.min(minKept, attention.min_kept_fraction);
      k = attention.k;
    }
    if (rolled) {
      rollout ??= new Map();
      const [nLayers, n] = rolled.shape;
      const values = decodeBlock(rolled);
      if (nLayers !== rolled.layers.length) throw new Error(`rollout of shape [${rolled.shape}] for ${rolled.layers.length} layers`);
      rolled.layers.forEach((l, i) => rollout!.set(l, values.subarray(i * n * n, (i + 1) * n * n)));
      if (rolled.encoding === "topk-per-row") minKept = Math.min(minKept, rolled.min_kept_fraction);
    }
  }
  const response = parts[0];
  const aggregate = first.aggregate ?? null;
  return {
    response,
    body,
    attention: {
      n: response.tokens.length,
      nHeads: first.shape[1],
      layers,
      // An aggregate's one map stands for every head: no head number of its own.
      heads: aggregate ? undefined : first.heads.length === first.shape[1] ? first.heads : undefined,
      aggregate: aggregate ?? undefined,
    },
    rollout,
    aggregate,
    sparse: k ? { k, minKeptFraction: minKept } : null,
  };
}

export async function loadAttention(
  api: InferenceApi, model: string, body: PageAttentionRequest, nLayers: number, signal: AbortSignal,
): Promise<LoadedAttention> {
  const all = Array.from({ length: nLayers }, (_, l) => l);
  return assemble(await fetchLayers(api, model, body, all, signal), body);
}
