// Generated from docs/schema/exformer-v1.schema.json by `npm run types` (frontend/scripts/contract-types.mjs).
// Do not edit: change exformer/contract/, run `python -m exformer.contract.schema`, then `cd frontend && npm run types`.

/**
 * The wire contract (v1) of exformer-serve, generated from exformer.contract.
 */
export interface ExformerContract {
  AttentionRequest?: AttentionRequest;
  AttentionResponse?: AttentionResponse;
  ErrorResponse?: ErrorResponse;
  GenerationResponse?: GenerationResponse;
  GradientsRequest?: GradientsRequest;
  GradientsResponse?: GradientsResponse;
  ModelDetailsResponse?: ModelDetailsResponse;
  PathResponse?: PathResponse;
  SparseRows?: SparseRows;
}
/**
 * `POST /predictions/<model>-attention`. An empty body asks for the model's details only.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "AttentionRequest".
 */
export interface AttentionRequest {
  /**
   * json: exact float32 numbers; float16-base64: 4.4-4.9x smaller (measured at 16 and 128 tokens).
   */
  encoding?: AttentionEncoding;
  /**
   * Heads to return: "all", indices, or "mean" / "max": one map per layer, that aggregate of every head (the head axis has size 1); a head-count times smaller, for long prompts.
   */
  heads?: ("all" | "mean" | "max") | number[];
  /**
   * Layers to return: "all" or indices.
   */
  layers?: "all" | number[];
  /**
   * Token indices to replace by the mask token before the forward.
   */
  mask?: number[] | null;
  /**
   * true: add `rollout` (Abnar & Zuidema 2020) for the requested layers; "only": rollout without `attention`.
   */
  rollout?: boolean | "only";
  /**
   * The text to explain; omit (with every other field) for the model's details.
   */
  text?: string;
  /**
   * A second segment (sentence pairs).
   */
  text_pair?: string | null;
  /**
   * Predictions per token (masked/causal LMs); default: the archive's (5).
   */
  top_k?: number | null;
  /**
   * Sparse answer: of every row of every T×T matrix (attention, rollout) only the k largest values and their columns, with each row's kept and remaining mass; values in `encoding`. For 1-2k-token prompts.
   */
  top_k_per_row?: number | null;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "AttentionResponse".
 */
export interface AttentionResponse {
  /**
   * [layers, heads, tokens, tokens]: attention from each token (row) to each token (column); absent with "rollout": "only".
   */
  attention?: JsonAttention | Float16Attention | SparseAttention | null;
  model: ModelDetails;
  n_tokens_dropped: number;
  /**
   * Tokens before truncation.
   */
  n_tokens_input: number;
  /**
   * Classifiers only.
   */
  prediction?: ClassPrediction | null;
  /**
   * [layers, T, T]: R_l = Ã_l · R_(l-1), Ã_l = rows-normalised (0.5 · mean over heads of A_l + 0.5 · I), R_(-1) = I (Abnar & Zuidema 2020): how much input token j (column) reaches token i (row) after layer l. Present when asked (rollout: true or "only").
   */
  rollout?: JsonRollout | Float16Rollout | SparseRollout | null;
  tokens: Token[];
  /**
   * True when the input was cut to the model's max_tokens.
   */
  truncated: boolean;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "JsonAttention".
 */
export interface JsonAttention extends JsonArray {
  /**
   * Set when `heads` was asked as "mean" or "max": the head axis (size 1) holds that aggregate over the heads listed in `heads` (every head).
   */
  aggregate?: ("mean" | "max") | null;
  heads: number[];
  layers: number[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "JsonArray".
 */
export interface JsonArray {
  /**
   * Nested lists of float32 values, `shape` deep.
   */
  data: unknown[];
  encoding: "json";
  shape: number[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Float16Attention".
 */
export interface Float16Attention extends Float16Array {
  /**
   * Set when `heads` was asked as "mean" or "max": the head axis (size 1) holds that aggregate over the heads listed in `heads` (every head).
   */
  aggregate?: ("mean" | "max") | null;
  heads: number[];
  layers: number[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Float16Array".
 */
export interface Float16Array {
  byteorder: "little";
  /**
   * base64 of the little-endian float16 values, row-major.
   */
  data: string;
  dtype: "float16";
  encoding: "float16-base64";
  shape: number[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "SparseAttention".
 */
export interface SparseAttention extends SparseRows {
  /**
   * Set when `heads` was asked as "mean" or "max": the head axis (size 1) holds that aggregate over the heads listed in `heads` (every head).
   */
  aggregate?: ("mean" | "max") | null;
  heads: number[];
  layers: number[];
}
/**
 * A stack of T×T matrices sent as the k largest values of every row (`top_k_per_row`).
 *
 * Nothing is dropped silently: `kept` + `rest` is each row's whole sum (1 for an attention or
 * rollout row), and `min_kept_fraction` is the least any row kept. Dense again: zeros, then
 * `dense[..., i, columns[..., i, j]] = values[..., i, j]`.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "SparseRows".
 */
export interface SparseRows {
  /**
   * [..., T, k]: the column (token attended to) of each value; base64 uint16/uint32 with float16-base64.
   */
  columns: JsonIndexArray | Base64IndexArray;
  encoding: "topk-per-row";
  /**
   * Values per row: top_k_per_row, at most T.
   */
  k: number;
  /**
   * [..., T]: Σ values of each row.
   */
  kept: JsonArray | Float16Array;
  /**
   * min over rows of kept / (kept + rest).
   */
  min_kept_fraction: number;
  /**
   * [..., T]: each row's sum minus `kept`, the mass not sent.
   */
  rest: JsonArray | Float16Array;
  /**
   * The dense shape [..., T, T].
   */
  shape: number[];
  /**
   * [..., T, k], largest first, in the request's encoding.
   */
  values: JsonArray | Float16Array;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "JsonIndexArray".
 */
export interface JsonIndexArray {
  /**
   * Nested lists of integers, `shape` deep.
   */
  data: unknown[];
  encoding: "json";
  shape: number[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Base64IndexArray".
 */
export interface Base64IndexArray {
  byteorder: "little";
  /**
   * base64 of the little-endian unsigned integers, row-major.
   */
  data: string;
  dtype: "uint16" | "uint32";
  encoding: "base64";
  shape: number[];
}
/**
 * The `model` block of every response (and the whole answer to an empty attention body).
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "ModelDetails".
 */
export interface ModelDetails {
  architecture: string;
  head: ModelHead | null;
  kind: "bidirectional" | "autoregressive";
  labels: string[] | null;
  mask_token: string | null;
  max_tokens: number;
  n_heads: number;
  n_layers: number;
  name: string;
  predictions: ("masked-token" | "next-token") | null;
  type: string;
  vocab_size: number;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "ClassPrediction".
 */
export interface ClassPrediction {
  label: string;
  probabilities: {
    [k: string]: number;
  };
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "JsonRollout".
 */
export interface JsonRollout extends JsonArray {
  /**
   * The model's layer index of each returned map.
   */
  layers: number[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Float16Rollout".
 */
export interface Float16Rollout extends Float16Array {
  /**
   * The model's layer index of each returned map.
   */
  layers: number[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "SparseRollout".
 */
export interface SparseRollout extends SparseRows {
  /**
   * The model's layer index of each returned map.
   */
  layers: number[];
}
/**
 * One token: what the tokenizer made of the input, and where it came from.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Token".
 */
export interface Token {
  end: number | null;
  id: number;
  index: number;
  /**
   * Attention only: replaced by the mask token.
   */
  masked?: boolean | null;
  /**
   * Attention only: top-k tokens at this position (masked LM) or after it (causal LM).
   */
  predictions?: TokenPrediction[] | null;
  /**
   * 0: text, 1: text_pair, null: special token.
   */
  segment: (0 | 1) | null;
  special: boolean;
  /**
   * Character offset in its segment's text; null for special tokens.
   */
  start: number | null;
  /**
   * The characters of the input it covers.
   */
  surface: string | null;
  /**
   * The tokenizer's token string.
   */
  text: string;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "TokenPrediction".
 */
export interface TokenPrediction {
  id: number;
  prob: number;
  text: string;
  token: string;
}
/**
 * Every 4xx/5xx we answer. `field` names what was wrong (4xx).
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "ErrorResponse".
 */
export interface ErrorResponse {
  code: number;
  field?: string | null;
  message: string;
  type: string;
}
/**
 * The JSON summary of a continuation/generate request: one attribution row per target token.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GenerationResponse".
 */
export interface GenerationResponse extends PathResponse {
  baseline: GenerationBaseline;
  /**
   * The continuation explained (given, or generated).
   */
  continuation: string;
  /**
   * Whether F is a difference against foils.
   */
  contrastive: boolean;
  generated: boolean;
  /**
   * [targets, n_steps, tokens, hidden], when asked.
   */
  intermediate_gradients?: JsonArray | null;
  targets: GenerationTarget[];
  tokens: GenerationToken[];
  /**
   * `aggregate: "word"`: the words of the prompt, then of the continuation.
   */
  words?: Word[] | null;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GenerationBaseline".
 */
export interface GenerationBaseline {
  /**
   * Whether earlier target tokens start from the baseline.
   */
  continuation: "replace" | "keep";
  name: Baseline;
  seed: number | null;
  specials: BaselineSpecials;
}
/**
 * One target token: what the model made of its prefix, and the prefix's attributions.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GenerationTarget".
 */
export interface GenerationTarget {
  /**
   * The top-k next tokens at the input (the archive's default_top_k).
   */
  alternatives: TokenChoice[];
  /**
   * One value per preceding token: len(prompt) + t values for the t-th target.
   */
  attributions?: Attributions | null;
  /**
   * F_t(x').
   */
  baseline_score: number;
  /**
   * Σ attributions − (F_t(x) − F_t(x')).
   */
  convergence_delta: number;
  /**
   * Entropy of that next-token distribution, in nats.
   */
  entropy: number;
  foil: TokenChoice | null;
  id: number;
  /**
   * F_t at each path point.
   */
  path_scores?: number[] | null;
  /**
   * Index into `tokens`.
   */
  position: number;
  /**
   * p(y_t | prompt, y_<t) at the input.
   */
  probability: number;
  /**
   * F_t(x): the score attributed.
   */
  score: number;
  text: string;
  token: string;
  /**
   * `aggregate: "word"`: per word that the row covers (a word partly inside sums its included tokens).
   */
  word_attributions?: Attributions | null;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "TokenChoice".
 */
export interface TokenChoice {
  id: number;
  /**
   * p(token | prefix) at the input.
   */
  probability: number;
  /**
   * The token decoded.
   */
  text: string;
  /**
   * The tokenizer's token string.
   */
  token: string;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Attributions".
 */
export interface Attributions {
  /**
   * raw / its L2 norm.
   */
  normalized: number[];
  /**
   * Per token: the integrated gradients summed over the hidden size.
   */
  raw: number[];
}
/**
 * A prompt token, or (`target: true`) a token of the continuation; a target token's start/end
 * are offsets in the continuation and its segment is 1.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GenerationToken".
 */
export interface GenerationToken extends Token {
  target: boolean;
}
/**
 * A whitespace-separated word of one segment, and the tokens that make it up (from the offsets).
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Word".
 */
export interface Word {
  end: number;
  /**
   * Classifier: 0 text, 1 text_pair. Generation: 0 prompt, 1 continuation.
   */
  segment: 0 | 1;
  /**
   * Character offset in its segment's text (the prompt, or the continuation).
   */
  start: number;
  text: string;
  /**
   * Indices into `tokens`.
   */
  tokens: number[];
}
/**
 * What every gradients answer says of its path: the model, F, the rule and what computed it.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "PathResponse".
 */
export interface PathResponse {
  alphas?: number[] | null;
  /**
   * n_steps "auto": whether |convergence_delta| <= tolerance x |F(x) - F(x')| (and the local error estimate) was reached within max_n_steps, for every target of a continuation; null for a fixed n_steps.
   */
  converged?: boolean | null;
  /**
   * What computed the gradients (bfloat16: autocast).
   */
  dtype: "float32" | "bfloat16";
  /**
   * [n_steps, tokens, hidden] path points, when asked.
   */
  intermediates?: JsonArray | null;
  method: Method;
  model: ModelDetails;
  /**
   * Points of the rule used; with "auto", as many as the refinement kept.
   */
  n_steps: number;
  n_tokens_dropped: number;
  /**
   * Tokens before truncation.
   */
  n_tokens_input: number;
  score: Score;
  step_sizes?: number[] | null;
  /**
   * n_steps "auto": the relative convergence delta asked for; null for a fixed n_steps.
   */
  tolerance?: number | null;
  /**
   * True when the input was cut to the model's max_tokens.
   */
  truncated: boolean;
}
/**
 * `POST /predictions/<model>-gradients` (and `/explanations/<model>-gradients`).
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GradientsRequest".
 */
export interface GradientsRequest {
  /**
   * "word": also sum the attributions over each word's tokens (whitespace-separated, from the tokenizer's offsets); the token values stay.
   */
  aggregate?: "token" | "word";
  /**
   * Where the path starts; default "pad" ("zero" without a pad token).
   */
  baseline?: Baseline;
  /**
   * "keep" special tokens in the baseline (only content is explained); "replace": the old server.
   */
  baseline_specials?: BaselineSpecials;
  /**
   * Causal LM: the text that follows `text` (tokenized without special tokens); every one of its tokens is a target, attributed to the prompt and the earlier target tokens.
   */
  continuation?: string;
  /**
   * With continuation/generate: "replace": earlier target tokens start from the baseline like the prompt; "keep": they stay themselves along the path (captum's LLMGradientAttribution), so only the prompt is explained.
   */
  continuation_baseline?: "replace" | "keep";
  /**
   * Contrastive targets (with continuation/generate): one token (text or id) for every target, or one per target token; F = p(target) - p(foil) (logit difference with score "logit" or "log_probability").
   */
  foil?: number | string | (number | string)[];
  /**
   * json summary, npz (numpy), or torch-gzip (the old server's file).
   */
  format?: GradientsFormat;
  generate?: Generate;
  /**
   * n_steps "auto": the most gradients to compute (default and ceiling: the archive's max_n_steps).
   */
  max_n_steps?: number | null;
  /**
   * captum's approximation method; with n_steps "auto": "fejer" (the default there) or "gausskronrod" (the default with continuation/generate).
   */
  method?: Method;
  /**
   * Points along the path (at most the archive's max_n_steps), or "auto": refine until |convergence_delta| <= tolerance x |F(x) - F(x')|.
   */
  n_steps?: number | "auto";
  /**
   * What to return; default by format (json: the summary).
   */
  return?: Returned[] | null;
  /**
   * F: softmax probability of the target, or its raw logit (the old server).
   */
  score?: Score;
  /**
   * Seed of the rand-norm / rand-unif baselines.
   */
  seed?: number;
  /**
   * Classifier: class index or label. Causal LM: next token (text of one token, or id). Default: the model's own prediction.
   */
  target?: number | string | null;
  /**
   * The text to explain ("sequence" is accepted, the old server's name); omit (with every other field) for the model's details.
   */
  text?: string;
  /**
   * A second segment (sentence pairs).
   */
  text_pair?: string | null;
  /**
   * n_steps "auto": the relative convergence delta to reach, 0 < tolerance < 1 (default 0.01).
   */
  tolerance?: number | null;
}
/**
 * `generate`: greedy decoding of the continuation to explain.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Generate".
 */
export interface Generate {
  /**
   * Tokens to generate (at most the archive's max_new_tokens).
   */
  max_new_tokens: number;
}
/**
 * The JSON summary (`format: json`, and the `summary` entry of an npz).
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GradientsResponse".
 */
export interface GradientsResponse extends PathResponse {
  attributions?: Attributions | null;
  baseline: BaselineUsed;
  /**
   * Σ attributions − (F(x) − F(x')): the quadrature's error.
   */
  convergence_delta: number;
  /**
   * ‖∂F/∂x‖ at each path point.
   */
  gradient_norms?: number[] | null;
  /**
   * [n_steps, tokens, hidden], when asked in `return`.
   */
  intermediate_gradients?: JsonArray | null;
  /**
   * F at each path point.
   */
  path_scores?: number[] | null;
  prediction: ClassPrediction | NextTokenPrediction;
  target: Target;
  tokens: Token[];
  /**
   * `aggregate: "word"`: per word, the sum over its tokens.
   */
  word_attributions?: Attributions | null;
  /**
   * `aggregate: "word"`: the words of the text.
   */
  words?: Word[] | null;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "BaselineUsed".
 */
export interface BaselineUsed {
  name: Baseline;
  /**
   * F(x'): the score at the baseline.
   */
  score: number;
  seed: number | null;
  specials: BaselineSpecials;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "NextTokenPrediction".
 */
export interface NextTokenPrediction {
  next_tokens: TokenPrediction[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Target".
 */
export interface Target {
  index: number;
  label?: string | null;
  /**
   * F(x): the score attributed, at the input.
   */
  score: number;
  text?: string | null;
  token?: string | null;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "ModelDetailsResponse".
 */
export interface ModelDetailsResponse {
  model: ModelDetails;
}

// --- enums as run-time lists (from the same schema) ---

/** #/$defs/GradientsRequest/properties/baseline */
export const BASELINES = ["zero", "pad", "unk", "mask", "period", "rand-norm", "rand-unif"] as const;
export type Baseline = (typeof BASELINES)[number];

/** #/$defs/GradientsRequest/properties/baseline_specials */
export const BASELINE_SPECIALS = ["keep", "replace"] as const;
export type BaselineSpecials = (typeof BASELINE_SPECIALS)[number];

/** #/$defs/GradientsRequest/properties/method */
export const METHODS = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "fejer", "gausskronrod"] as const;
export type Method = (typeof METHODS)[number];

/** #/$defs/GradientsRequest/properties/score */
export const SCORES = ["probability", "logit", "log_probability"] as const;
export type Score = (typeof SCORES)[number];

/** #/$defs/GradientsRequest/properties/return/anyOf/0/items */
export const RETURNS = ["attributions", "intermediate_gradients", "step_sizes", "intermediates", "path_scores"] as const;
export type Returned = (typeof RETURNS)[number];

/** #/$defs/GradientsRequest/properties/format */
export const FORMATS = ["json", "npz", "torch-gzip"] as const;
export type GradientsFormat = (typeof FORMATS)[number];

/** #/$defs/AttentionRequest/properties/encoding */
export const ENCODINGS = ["json", "float16-base64"] as const;
export type AttentionEncoding = (typeof ENCODINGS)[number];

/** #/$defs/ModelDetails/properties/head */
export const HEADS = ["masked-lm", "causal-lm", "sequence-classification"] as const;
export type ModelHead = (typeof HEADS)[number];
