// Attention for one text, fetched as float16 and kept per layer. All layers come in one
// response when the server's response limit allows; else in halves, quarters, ...

import { ApiError, type InferenceApi } from "./api";
import { decodeArray } from "./decode";
import { splitLayers, type AttentionLayers } from "./transforms";
import type { AttentionRequest, AttentionResponse } from "./types";

export interface LoadedAttention {
  response: AttentionResponse; // tokens and model details (its attention: the first part)
  attention: AttentionLayers;
  body: AttentionRequest; // what was asked: text, pair, mask
}

const tooLarge = (error: unknown) => error instanceof ApiError && error.status === 413 && error.field === "attention";

/**
 * `layers` in as few requests as fit: a 413 on "attention" (e.g. SmolLM2's 30 × 9 maps at
 * 512 tokens) splits the list in two. Each request is one forward pass on the server, so
 * two halves cost far less than one request per layer.
 */
export async function fetchLayers(
  api: InferenceApi, model: string, body: AttentionRequest, layers: number[], signal: AbortSignal,
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

export async function loadAttention(
  api: InferenceApi, model: string, body: AttentionRequest, nLayers: number, signal: AbortSignal,
): Promise<LoadedAttention> {
  const all = Array.from({ length: nLayers }, (_, l) => l);
  const parts = await fetchLayers(api, model, body, all, signal);
  const layers = new Map<number, Float32Array>();
  for (const part of parts) {
    splitLayers(decodeArray(part.attention), part.attention.shape, part.attention.layers).forEach((v, l) => layers.set(l, v));
  }
  const response = parts[0];
  return { response, body, attention: { n: response.tokens.length, nHeads: response.attention.shape[1], layers } };
}
