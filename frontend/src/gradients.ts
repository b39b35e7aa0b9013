// Gradients models in the page: what the page knows of one, which target it takes, and
// whose result is on screen. Pure functions, so the Attribution view's rules are unit-tested.

import type { GradientsRequest, GradientsResponse, ModelDetails } from "./types";

/** The attention archive built from the same model dir, by deploy/models.txt's naming. */
export const twinAttentionModel = (gmodel: string) => gmodel.replace(/-gradients$/, "-attention");

/**
 * What the page knows of a gradients model. A gradients archive answers no empty request
 * (its `text` is required), so its details come from its own last result's `model` block,
 * else from its twin attention archive's details (asked at start-up with `POST {}`), else
 * nothing: never from another model.
 */
export function gradientsModelDetails(
  gmodel: string,
  attentionDetails: ReadonlyMap<string, ModelDetails>,
  fromResults: ReadonlyMap<string, ModelDetails>,
): ModelDetails | null {
  if (!gmodel) return null;
  return fromResults.get(gmodel) ?? (gmodel !== twinAttentionModel(gmodel) ? attentionDetails.get(twinAttentionModel(gmodel)) : undefined) ?? null;
}

/**
 * The target control a model takes:
 * - "label": a classifier; choose one of its labels ("" = the predicted label);
 * - "token": a causal LM; type the next token's text (" Paris", leading space and all) or #id;
 * - "free": not known yet (no twin, no result); type a label or a token, #n for an index.
 * "" always means the model's own prediction.
 */
export type TargetControl = { kind: "label"; labels: string[] } | { kind: "token" } | { kind: "free" };

export function targetControl(details: ModelDetails | null): TargetControl {
  if (details?.head === "sequence-classification" && details.labels?.length) return { kind: "label", labels: details.labels };
  if (details?.head === "causal-lm") return { kind: "token" };
  return { kind: "free" };
}

export const TARGET_PLACEHOLDER: Record<TargetControl["kind"], string> = {
  label: "predicted label",
  token: "next token or #id; empty: the model's own",
  free: "label or next token; empty: the model's own",
};

/** The request's `target` for what the control holds: undefined = the model's own prediction,
 * "#123" = index/id 123, anything else the text itself (not trimmed: " Paris" ≠ "Paris"). */
export function targetValue(target: string): GradientsRequest["target"] | undefined {
  if (!target.trim()) return undefined;
  const id = /^#(\d+)$/.exec(target.trim());
  return id ? Number(id[1]) : target;
}

/** A result and the model and request it was computed for. */
export interface HeldResult {
  model: string;
  body: GradientsRequest;
  result: GradientsResponse;
}

/** The result to show for the selected model: only its own, never the previous model's. */
export function resultFor(held: HeldResult | null, gmodel: string): HeldResult | null {
  return held && held.model === gmodel ? held : null;
}
