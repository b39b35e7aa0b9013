// The page's one store: the shareable state (state.ts, kept in the URL) and what this session
// fetched (config, model details, the results on screen). Views subscribe to the keys they draw.

import type { HeldGeneration } from "./generation";
import type { HeldResult } from "./gradients";
import type { LoadedAttention } from "./load";
import { DEFAULTS, parseState, STATE_KEYS, type AppState } from "./state";
import { Store } from "./store";
import type { AppConfig, Handler, ModelDetails } from "./types";

/** The attention on screen, and what it was computed for (another key means a new run). */
export interface Loaded extends LoadedAttention {
  key: string; // the request's inputs (main.ts inputKey)
  text: string; // the text's: another one means other token indices
  model: ModelDetails;
}

export interface SessionData {
  config: AppConfig;
  details: ReadonlyMap<string, ModelDetails>; // attention models' details, asked at start
  resultDetails: ReadonlyMap<string, ModelDetails>; // gradients model → the `model` block of its last result
  loaded: Loaded | null;
  gradients: HeldResult | null; // the last attribution, for the model it was computed for
  generation: HeldGeneration | null; // the last explained generation, likewise
}

export type App = AppState & SessionData;
export type AppStore = Store<App>;

export const EMPTY_SESSION: SessionData = {
  config: { inference: "", models: [] },
  details: new Map(),
  resultDetails: new Map(),
  loaded: null,
  gradients: null,
  generation: null,
};

export function createAppStore(hash: string): AppStore {
  return new Store<App>({ ...DEFAULTS, ...parseState(hash), ...EMPTY_SESSION });
}

/** The URL's part of the state. */
export function urlState(s: App): AppState {
  return Object.fromEntries(STATE_KEYS.map((k) => [k, s[k]])) as unknown as AppState;
}

/** A copy of `map` with one entry set: the store notices a new map, not a mutated one. */
export function withEntry<K, V>(map: ReadonlyMap<K, V>, key: K, value: V): Map<K, V> {
  return new Map(map).set(key, value);
}

export const modelsOf = (config: AppConfig, handler: Handler) => config.models.filter((m) => m.handler === handler).map((m) => m.name);

/** The heads shown: the selected ones, or all. */
export const selectedHeads = (s: Pick<AppState, "heads">, nHeads: number) => s.heads ?? Array.from({ length: nHeads }, (_, h) => h);

/** What the page says when the long-prompt switch (api.ts longPrompt) changed what it asked. */
export function longPromptNote(loaded: Loaded): string {
  const n = loaded.response.tokens.length;
  const parts: string[] = [];
  if (loaded.aggregate) {
    parts.push(`Long prompt (${n} tokens): the heads come combined on the server (heads: "${loaded.aggregate}"), one map per layer`);
  }
  if (loaded.sparse) {
    const kept = (loaded.sparse.minKeptFraction * 100).toFixed(1);
    parts.push(`${parts.length ? "and" : `Long prompt (${n} tokens):`} only the ${loaded.sparse.k} largest weights of each row (top_k_per_row), every row keeping at least ${kept}% of its weight`);
  }
  return parts.length ? `${parts.join(" ")}.` : "";
}
