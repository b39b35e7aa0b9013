// The shareable state of a view, kept in the URL hash (#view=attention&model=...&text=...),
// so a reload or a pasted link shows the same thing. Defaults are left out of the URL.

import { BASELINES, type Baseline } from "./contract";
import { ATTRIBUTIONS, GRADIENT_ATTRIBUTIONS, ROLES, UNITS, type AttributionMethod, type GradientMethod, type SourceInput, type Unit } from "./conversation";
import type { Message } from "./types";
import type { Aggregation } from "./transforms";

export type View = "attention" | "overview" | "attribution" | "generation";
export const VIEWS: View[] = ["attention", "overview", "attribution", "generation"];

export interface AppState {
  view: View;
  model: string; // attention model ("" = the first served)
  text: string;
  pair: string; // text_pair; "" = none
  layer: number;
  heads: number[] | null; // null = all heads
  agg: Aggregation;
  hideSpecial: boolean;
  mask: number[]; // token indices sent as "mask"
  token: number | null; // selected token (predictions panel)
  gmodel: string; // gradients model
  target: string; // label / next token (text or #id); "" = the model's own prediction
  baseline: Baseline; // one of the contract's (src/contract.ts BASELINES)
  steps: number | "auto"; // path points, or "auto": refined until the tolerance holds
  rollout: boolean; // model overview: the rolled-out attention too
  attrMethod: GradientMethod; // attribution: integrated gradients, gradient × input or saliency
  evaluate: boolean; // attribution and generation: "measure faithfulness" (the request's `evaluate`)
  evalUnit: Unit | ""; // what the evaluation removes ("" = the server's default: the method's own unit, tokens for gradients)
  lm: string; // generation: a causal LM's gradients model
  continuation: string; // generation: the continuation explained (when generate is 0)
  generate: number; // generation: tokens to generate greedily; 0 = explain `continuation`
  foil: string; // generation: a contrast token ("" = none)
  words: boolean; // generation: aggregate attributions over words
  row: number | null; // generation: the selected target token
  whole: boolean; // generation: the whole answer's values shown instead of a row's
  method: AttributionMethod; // generation: any of the five methods
  unit: Unit | ""; // generation, occlusion/contextcite: what is left out ("" = the server's default)
  messages: Message[]; // generation: a conversation (the prompt instead of `text` when not empty)
  sources: SourceInput[]; // generation: named spans of the prompt (RAG documents)
}

export const DEFAULTS: AppState = {
  view: "attention",
  model: "",
  text: "",
  pair: "",
  layer: 0,
  heads: null,
  agg: "mean",
  hideSpecial: false,
  mask: [],
  token: null,
  gmodel: "",
  target: "",
  baseline: "pad",
  steps: 50,
  rollout: false,
  attrMethod: "integrated_gradients",
  evaluate: false,
  evalUnit: "",
  lm: "",
  continuation: "",
  generate: 0,
  foil: "",
  words: false,
  row: null,
  whole: false,
  method: "integrated_gradients",
  unit: "",
  messages: [],
  sources: [],
};

function intList(value: string): number[] {
  return value
    .split(",")
    .filter((s) => /^\d+$/.test(s.trim()))
    .map((s) => Number(s));
}

function nonNegativeInt(value: string | null, fallback: number): number {
  return value !== null && /^\d+$/.test(value) ? Number(value) : fallback;
}

const optionalIndex = (value: string | null) => (value !== null && /^\d+$/.test(value) ? Number(value) : null);

/** `value` when it is one of `values` (an enum of the contract), else undefined. */
function oneOf<T extends string>(values: readonly T[], value: string | null): T | undefined {
  return values.find((v) => v === value);
}

/** Hash (with or without '#') → state; anything unparsable falls back to its default. */
export function parseState(hash: string): AppState {
  const p = new URLSearchParams(hash.replace(/^#/, ""));
  const get = (key: string) => p.get(key);
  const view = get("view") as View;
  const heads = get("heads");
  const token = get("token");
  return {
    view: VIEWS.includes(view) ? view : DEFAULTS.view,
    model: get("model") ?? DEFAULTS.model,
    text: get("text") ?? DEFAULTS.text,
    pair: get("pair") ?? DEFAULTS.pair,
    layer: nonNegativeInt(get("layer"), DEFAULTS.layer),
    heads: heads === null || heads === "all" ? null : intList(heads),
    agg: get("agg") === "max" ? "max" : "mean",
    hideSpecial: get("special") === "hide",
    mask: intList(get("mask") ?? ""),
    token: optionalIndex(token),
    gmodel: get("gmodel") ?? DEFAULTS.gmodel,
    target: get("target") ?? DEFAULTS.target,
    baseline: oneOf(BASELINES, get("baseline")) ?? DEFAULTS.baseline,
    steps: parseSteps(get("steps") ?? "") ?? DEFAULTS.steps,
    rollout: get("rollout") === "on",
    attrMethod: oneOf(GRADIENT_ATTRIBUTIONS, get("am")) ?? DEFAULTS.attrMethod,
    evaluate: get("eval") === "on",
    evalUnit: oneOf(UNITS, get("evalunit")) ?? DEFAULTS.evalUnit,
    lm: get("lm") ?? DEFAULTS.lm,
    continuation: get("cont") ?? DEFAULTS.continuation,
    generate: nonNegativeInt(get("gen"), DEFAULTS.generate),
    foil: get("foil") ?? DEFAULTS.foil,
    words: get("words") === "on",
    row: optionalIndex(get("row")),
    whole: get("whole") === "on",
    method: oneOf(ATTRIBUTIONS, get("attr")) ?? DEFAULTS.method,
    unit: oneOf(UNITS, get("unit")) ?? DEFAULTS.unit,
    messages: parseMessages(get("msgs")),
    sources: parseSources(get("src")),
  };
}

/** JSON from the URL, or undefined when it is not JSON. */
function json(value: string | null): unknown {
  if (value === null) return undefined;
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}

const pairs = (value: string | null): unknown[][] =>
  (Array.isArray(json(value)) ? (json(value) as unknown[]) : []).filter(
    (p): p is unknown[] => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === "string"),
  );

/** The URL's conversation: [[role, content], …]; a turn of another role, or anything else, is dropped. */
export function parseMessages(value: string | null): Message[] {
  return pairs(value)
    .filter(([role]) => ROLES.includes(role as Message["role"]))
    .map(([role, content]) => ({ role: role as Message["role"], content: content as string }));
}

/** The URL's sources: [[id, text], …]. */
export function parseSources(value: string | null): SourceInput[] {
  return pairs(value).map(([id, text]) => ({ id: id as string, text: text as string }));
}

/** "auto", or a positive integer, from an input or the URL; null for anything else. */
export function parseSteps(value: string): number | "auto" | null {
  const v = value.trim();
  if (v.toLowerCase() === "auto") return "auto";
  const n = Number(v);
  return v !== "" && Number.isInteger(n) && n > 0 ? n : null;
}

/** The keys of AppState (what the URL holds), for subscribing to all of them. */
export const STATE_KEYS = Object.keys(DEFAULTS) as (keyof AppState)[];

/** State → hash (no '#'), defaults omitted so links stay short. */
export function serializeState(s: AppState): string {
  const p = new URLSearchParams();
  const put = (key: string, value: string, fallback: string) => {
    if (value !== fallback) p.set(key, value);
  };
  put("view", s.view, DEFAULTS.view);
  put("model", s.model, DEFAULTS.model);
  put("text", s.text, DEFAULTS.text);
  put("pair", s.pair, DEFAULTS.pair);
  put("layer", String(s.layer), String(DEFAULTS.layer));
  put("heads", s.heads === null ? "all" : s.heads.join(","), "all");
  put("agg", s.agg, DEFAULTS.agg);
  put("special", s.hideSpecial ? "hide" : "show", "show");
  put("mask", s.mask.join(","), "");
  put("token", s.token === null ? "" : String(s.token), "");
  put("gmodel", s.gmodel, DEFAULTS.gmodel);
  put("target", s.target, DEFAULTS.target);
  put("baseline", s.baseline, DEFAULTS.baseline);
  put("steps", String(s.steps), String(DEFAULTS.steps));
  put("rollout", s.rollout ? "on" : "off", "off");
  put("am", s.attrMethod, DEFAULTS.attrMethod);
  put("eval", s.evaluate ? "on" : "off", "off");
  put("evalunit", s.evalUnit, DEFAULTS.evalUnit);
  put("lm", s.lm, DEFAULTS.lm);
  put("cont", s.continuation, DEFAULTS.continuation);
  put("gen", String(s.generate), String(DEFAULTS.generate));
  put("foil", s.foil, DEFAULTS.foil);
  put("words", s.words ? "on" : "off", "off");
  put("row", s.row === null ? "" : String(s.row), "");
  put("whole", s.whole ? "on" : "off", "off");
  put("attr", s.method, DEFAULTS.method);
  put("unit", s.unit, DEFAULTS.unit);
  put("msgs", s.messages.length ? JSON.stringify(s.messages.map((m) => [m.role, m.content])) : "", "");
  put("src", s.sources.length ? JSON.stringify(s.sources.map((x) => [x.id, x.text])) : "", "");
  return p.toString();
}

/** Replace (not push) the URL: every slider move is no history entry of its own. */
export function writeUrl(s: AppState): void {
  const hash = serializeState(s);
  const url = `${location.pathname}${location.search}${hash ? `#${hash}` : ""}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(null, "", url);
}
