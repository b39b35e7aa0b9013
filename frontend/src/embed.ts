// The standalone page's data: one response embedded in the document by exformer.client.views
// (`<script type="application/json" id="exformer-data">{"kind": …, "response": …}</script>`).
// No DOM and no requests here, so it is unit-tested in Node (test/embed.test.ts).

import { decodeBlock } from "./decode";
import { splitLayers, type AttentionLayers } from "./transforms";
import type { AttentionBlock, AttentionResponse, GradientsResponse } from "./types";

export type Embedded =
  | { kind: "attention"; response: AttentionResponse }
  | { kind: "gradients"; response: GradientsResponse };

export const EMBED_KINDS = ["attention", "gradients"] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The embedded JSON → a payload, checked enough that a broken file says what is wrong. */
export function parseEmbedded(text: string | null | undefined): Embedded {
  if (!text || !text.trim()) throw new Error("no exformer data in this page (an empty #exformer-data script)");
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch (error) {
    throw new Error(`the exformer data is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(payload)) throw new Error("the exformer data must be an object {kind, response}");
  const { kind, response } = payload;
  if (!EMBED_KINDS.includes(kind as Embedded["kind"])) {
    throw new Error(`unknown kind ${JSON.stringify(kind)}: expected "attention" or "gradients"`);
  }
  if (!isObject(response) || !Array.isArray(response.tokens) || !isObject(response.model)) {
    throw new Error(`the ${kind} response lacks its tokens or model`);
  }
  if (kind === "attention" && !isObject(response.attention)) {
    throw new Error("the attention response has no attention (was it asked with layers or heads that returned none?)");
  }
  return payload as Embedded;
}

/**
 * One response's attention ("json" nested lists or "float16-base64") → per-layer maps keyed
 * by the model's layer numbers. `heads` names the model's head behind each index of the data
 * (a response asked for some heads holds only those).
 */
export function attentionLayers(response: AttentionResponse): AttentionLayers {
  // Dense or top-k rows, every head or their aggregate ("mean"/"max": one map per layer).
  const a = (response as unknown as { attention?: AttentionBlock | null }).attention;
  if (!a) throw new Error("the attention response has no attention");
  const layers = splitLayers(decodeBlock(a), a.shape, a.layers);
  const n = a.shape[2];
  if (n !== response.tokens.length) {
    throw new Error(`attention over ${n} tokens, but the response lists ${response.tokens.length}`);
  }
  return a.aggregate ? { n, nHeads: a.shape[1], layers, aggregate: a.aggregate } : { n, nHeads: a.shape[1], layers, heads: a.heads };
}

/** Toggle head `h` (an index into the data) in a selection; null means all of `nHeads`. */
export function toggleHead(selected: number[] | null, h: number, nHeads: number): number[] | null {
  const on = selected ?? Array.from({ length: nHeads }, (_, k) => k);
  const next = on.includes(h) ? on.filter((k) => k !== h) : [...on, h].sort((a, b) => a - b);
  return next.length === nHeads ? null : next;
}

/** The layer shown first: the first one the response holds. */
export function firstLayer(attention: AttentionLayers): number {
  return Math.min(...attention.layers.keys());
}
