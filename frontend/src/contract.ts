// Generated from docs/schema/exformer-v1.schema.json by `npm run types` (frontend/scripts/contract-types.mjs).
// Do not edit: change exformer/contract/, run `python -m exformer.contract.schema`, then `cd frontend && npm run types`.

/**
 * The wire contract (v1) of exformer-serve, generated from exformer.contract.
 */
export interface ExformerContract {
  AblationResponse?: AblationResponse;
  AttentionRequest?: AttentionRequest;
  AttentionResponse?: AttentionResponse;
  CostEstimate?: CostEstimate;
  ErrorResponse?: ErrorResponse;
  GenerationResponse?: GenerationResponse;
  GradientsRequest?: GradientsRequest;
  GradientsResponse?: GradientsResponse;
  ModelDetailsResponse?: ModelDetailsResponse;
  PathResponse?: PathResponse;
  SparseRows?: SparseRows;
}
/**
 * The answer of a forward-only method (occlusion, contextcite): one value per unit, per target
 * token and for the whole continuation.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "AblationResponse".
 */
export interface AblationResponse {
  /**
   * "remove": the unit's text taken out (and the whitespace before it); "baseline": its tokens replaced by the baseline token.
   */
  ablation: "remove" | "baseline";
  attribution: "occlusion" | "contextcite";
  /**
   * ablation "baseline": the token that replaced them.
   */
  baseline: Baseline | null;
  continuation: string;
  /**
   * The whole answer: occlusion: the change of log p(continuation); contextcite: the surrogate of the continuation's log p/(1-p).
   */
  continuation_attributions: UnitAttribution[];
  /**
   * `evaluate`: the explanation's faithfulness, measured.
   */
  evaluation?: Evaluation | null;
  /**
   * Prompts the model ran (distinct versions, the whole prompt included).
   */
  forwards: number;
  generated: boolean;
  messages?: MessageUsed[] | null;
  model: ModelDetails;
  n_tokens_dropped: number;
  /**
   * Tokens before truncation.
   */
  n_tokens_input: number;
  /**
   * F_t: occlusion uses the request's score; contextcite log p/(1-p) (ContextCite's).
   */
  score: "probability" | "logit" | "log_probability" | "logit_probability";
  /**
   * contextcite only.
   */
  surrogate?: Surrogate | null;
  targets: AblationTarget[];
  tokens: GenerationToken[];
  /**
   * True when the input was cut to the model's max_tokens.
   */
  truncated: boolean;
  unit: "token" | "word" | "sentence" | "source";
  /**
   * What was left out, one at a time (occlusion) or at random (contextcite).
   */
  units: TextUnit[];
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "UnitAttribution".
 */
export interface UnitAttribution {
  attribution: number;
  /**
   * The unit's (source's, sentence's) id.
   */
  id: string;
}
/**
 * The answer's `evaluation` block.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Evaluation".
 */
export interface Evaluation {
  /**
   * "remove": the unit's text taken out and the input tokenized again; "baseline": its tokens replaced by the baseline token.
   */
  ablation: "remove" | "baseline";
  /**
   * ablation "baseline": the token that replaced them.
   */
  baseline: Baseline | null;
  /**
   * Units removed (deletion) or kept (insertion) at each curve point.
   */
  counts: number[];
  /**
   * Distinct inputs the model ran (sets that make the same input run once).
   */
  forwards: number;
  /**
   * counts / n_units.
   */
  fractions: number[];
  /**
   * Units the input has.
   */
  n_units: number;
  random_orders: number;
  rows: EvaluationRow[];
  /**
   * F of the target rows (the whole continuation's row: log p(continuation), or its log p/(1−p) with logit_probability).
   */
  score: "probability" | "logit" | "log_probability" | "logit_probability";
  seed: number;
  steps: number;
  top_fraction: number;
  /**
   * Units ERASER's comprehensiveness removes and sufficiency keeps.
   */
  top_k: number;
  /**
   * What was removed.
   */
  unit: "token" | "word" | "sentence" | "source";
  /**
   * Distinct sets of removed units scored (shared by every row and order).
   */
  versions: number;
}
/**
 * One score F the explanation explains, measured on versions of the input.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "EvaluationRow".
 */
export interface EvaluationRow {
  /**
   * ERASER: F(x) − F(x without the top k units); higher is better.
   */
  comprehensiveness: number;
  /**
   * F with the explanation's top j units removed, j = `counts` (the first point is F of the whole input).
   */
  deletion: number[];
  /**
   * Mean over the counts after 0 of F(x) − deletion; higher is better.
   */
  deletion_aopc: number;
  /**
   * F with only the top j units kept (the first point: none kept, the last: the whole input).
   */
  insertion: number[];
  /**
   * Mean over the counts after 0 of insertion − F(nothing kept); higher is better.
   */
  insertion_aopc: number;
  /**
   * The same over random orders; null without random orders.
   */
  random: RandomOrders | null;
  /**
   * ERASER: F(x) − F(only the top k units kept); lower is better.
   */
  sufficiency: number;
  /**
   * Which F: the position of the target token in `targets` (a continuation) or the class index (a classifier); null: the whole continuation.
   */
  target: number | null;
  win_rate: WinRate;
}
/**
 * The four numbers over the random orders, and their mean curves.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "RandomOrders".
 */
export interface RandomOrders {
  comprehensiveness: Spread;
  /**
   * The mean deletion curve, at `fractions`.
   */
  deletion: number[];
  deletion_aopc: Spread;
  /**
   * The deletion curves' population standard deviation over the random orders, at `fractions` (a band around the mean curve).
   */
  deletion_std: number[];
  /**
   * The mean insertion curve, at `fractions`.
   */
  insertion: number[];
  insertion_aopc: Spread;
  /**
   * The same for the insertion curves.
   */
  insertion_std: number[];
  sufficiency: Spread;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Spread".
 */
export interface Spread {
  /**
   * Over the random orders.
   */
  mean: number;
  /**
   * Population standard deviation over the random orders.
   */
  std: number;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "WinRate".
 */
export interface WinRate {
  /**
   * Share of random orders whose deletion AOPC is below the explanation's (ties count half); null without random orders.
   */
  deletion: number | null;
  /**
   * The same for the insertion AOPC.
   */
  insertion: number | null;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "MessageUsed".
 */
export interface MessageUsed {
  content: string;
  role: "system" | "user" | "assistant";
  /**
   * Indices into `tokens`: the message's own tokens, then the template's of its turn.
   */
  tokens: number[];
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
 * contextcite: how the linear surrogate was made, and how well it predicts masks it was not fit on.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Surrogate".
 */
export interface Surrogate {
  fit: SurrogateFit;
  /**
   * The whole answer's predicted output with every unit left out.
   */
  intercept: number;
  keep_probability: number;
  lasso_alpha: number;
  /**
   * Masks the surrogate was fit on.
   */
  n_ablations: number;
  /**
   * Different prompts among all masks (each ran once).
   */
  n_distinct_prompts: number;
  /**
   * Further masks it was tested on.
   */
  n_holdout: number;
  /**
   * Mask k is numpy.random.RandomState(seed + k).choice([False, True], p=[1-p, p]).
   */
  seed: number;
}
/**
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "SurrogateFit".
 */
export interface SurrogateFit {
  mean_absolute_error: number | null;
  /**
   * R² of the surrogate's predictions on the held-out masks.
   */
  r2: number | null;
  /**
   * Spearman's ρ between predicted and actual outputs on the held-out masks (ContextCite's LDS); null when undefined.
   */
  spearman: number | null;
}
/**
 * One target token: its score after the whole prompt, and each unit's attribution.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "AblationTarget".
 */
export interface AblationTarget {
  /**
   * The top-k next tokens at the input (the archive's default_top_k).
   */
  alternatives: TokenChoice[];
  /**
   * occlusion: F_t(prompt) − F_t(prompt without the unit). contextcite: the surrogate's weight (the change of log p/(1−p) when the unit is kept).
   */
  attributions: UnitAttribution[];
  /**
   * Entropy of that next-token distribution, in nats.
   */
  entropy: number;
  id: number;
  /**
   * Index into `tokens`.
   */
  position: number;
  /**
   * p(y_t | prompt, y_<t) at the input.
   */
  probability: number;
  /**
   * F_t after the whole prompt (in `score`).
   */
  score: number;
  text: string;
  token: string;
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
 * A prompt token, or (`target: true`) a token of the continuation; a target token's start/end
 * are offsets in the continuation and its segment is 1.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GenerationToken".
 */
export interface GenerationToken extends Token {
  /**
   * With `messages`: the message it belongs to (null: the generation prompt); start/end are offsets in that message's content.
   */
  message?: number | null;
  /**
   * With `messages`: its message's role.
   */
  role?: ("system" | "user" | "assistant") | null;
  target: boolean;
  /**
   * With `messages`: added by the chat template (role markers, separators); held fixed along the path like special tokens.
   */
  template?: boolean | null;
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
 * A sentence, a source, a word or a token of the prompt (or a sentence of the continuation):
 * what a value is summed over, or what a forward-only method leaves out.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "TextUnit".
 */
export interface TextUnit {
  end: number;
  /**
   * A source's own id; "s0", "s1" … for sentences, "w0" … words, "t<index>" tokens.
   */
  id: string;
  /**
   * With `messages`: the message whose content holds it (offsets are in it).
   */
  message: number | null;
  /**
   * 0: the prompt, 1: the continuation.
   */
  segment: 0 | 1;
  /**
   * Character offset in its text: the message's content, `text`, or the continuation.
   */
  start: number;
  text: string;
  /**
   * Indices into `tokens` of the tokens whose first visible character it holds.
   */
  tokens: number[];
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
 * `dry_run: true`: what the request would run and cost on this worker, without running it.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "CostEstimate".
 */
export interface CostEstimate {
  attribution: "integrated_gradients" | "gradient_x_input" | "saliency" | "attnlrp" | "occlusion" | "contextcite";
  /**
   * Backward passes (one per target per path point; 0 for forward-only methods).
   */
  backwards: number;
  /**
   * Cheaper requests, with their estimated seconds.
   */
  cheaper: string[];
  dry_run?: true;
  /**
   * Parameters + activations kept for the backward + gradients held.
   */
  estimated_peak_bytes: number;
  /**
   * From this worker's measured speed (see `measured_from`).
   */
  estimated_seconds: number;
  /**
   * Sequences run forward (path points, or versions of the prompt).
   */
  forwards: number;
  /**
   * The archive's limit (a request estimated over it is refused).
   */
  max_estimated_seconds: number;
  /**
   * What the speed estimate rests on.
   */
  measured_from: string;
  /**
   * The continuation's tokens (generate: max_new_tokens, at most).
   */
  n_tokens_continuation: number;
  n_tokens_prompt: number;
  /**
   * Token positions computed in all forwards.
   */
  positions: number;
  /**
   * n_steps "auto", generate, occlusion or contextcite: the figures are for the most it may run (forward-only: every ablated prompt as long as the whole, none alike).
   */
  upper_bound: boolean;
  /**
   * Whether it would run: refused only when over the limit even at the fastest this worker has run requests of its kind.
   */
  within_limits: boolean;
}
/**
 * Every 4xx/5xx we answer. `field` names what was wrong (4xx).
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "ErrorResponse".
 */
export interface ErrorResponse {
  /**
   * Timeout (503): requests that would take less.
   */
  cheaper?: string[] | null;
  code: number;
  /**
   * Timeout (503): the worker's deadline (the archive's deadline_seconds).
   */
  deadline_seconds?: number | null;
  /**
   * A request refused for its cost: what it would have cost.
   */
  estimate?: CostEstimate | null;
  field?: string | null;
  message: string;
  /**
   * Timeout (503): how far the request got.
   */
  progress?: string | null;
  /**
   * Timeout (503): the seconds the request ran before it stopped.
   */
  seconds?: number | null;
  type: string;
}
/**
 * The JSON summary of a continuation/generate request: one attribution row per target token.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GenerationResponse".
 */
export interface GenerationResponse extends PathResponse {
  /**
   * The method that answered.
   */
  attribution?: "integrated_gradients" | "gradient_x_input" | "saliency" | "attnlrp";
  /**
   * null for saliency and attnlrp: no baseline.
   */
  baseline: GenerationBaseline | null;
  /**
   * The continuation explained (given, or generated).
   */
  continuation: string;
  /**
   * The whole continuation's attributions (when attributions are returned).
   */
  continuation_attributions?: ContinuationAttributions | null;
  /**
   * Whether F is a difference against foils.
   */
  contrastive: boolean;
  /**
   * `evaluate`: the explanation's faithfulness, measured.
   */
  evaluation?: Evaluation | null;
  generated: boolean;
  /**
   * [targets, n_steps, tokens, hidden], when asked.
   */
  intermediate_gradients?: JsonArray | null;
  /**
   * With `messages`: the conversation and its tokens.
   */
  messages?: MessageUsed[] | null;
  /**
   * `aggregate: "sentence"`: the prompt's and the continuation's sentences.
   */
  sentences?: TextUnit[] | null;
  /**
   * With `sources`: each source where it was found.
   */
  sources?: TextUnit[] | null;
  targets: GenerationTarget[];
  tokens: GenerationToken[];
  /**
   * Every row within the tolerance (null for saliency).
   */
  within_tolerance: boolean | null;
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
 * The whole continuation's: F = Σ_t F_t, so each value is the sum of the rows' values.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "ContinuationAttributions".
 */
export interface ContinuationAttributions {
  attributions: Attributions;
  /**
   * `rows: "whole"`: Σ attributions − (Σ_t F_t(x) − Σ_t F_t(x')) (null without completeness, and with rows "each", where each row has its own).
   */
  convergence_delta?: number | null;
  messages?: MessageAttribution[] | null;
  /**
   * `rows: "whole"`: |convergence_delta| / |the change|.
   */
  relative_delta?: number | null;
  sentences?: UnitAttribution[] | null;
  sources?: UnitAttribution[] | null;
  /**
   * `rows: "whole"`: relative_delta <= tolerance.
   */
  within_tolerance?: boolean | null;
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
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "MessageAttribution".
 */
export interface MessageAttribution {
  /**
   * The sum over the message's tokens, the template's included (0 when held fixed).
   */
  attribution: number;
  /**
   * Index into `messages`; null: the generation prompt the template adds.
   */
  message: number | null;
  role: "system" | "user" | "assistant";
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
   * F_t(x') (null for saliency and attnlrp: no baseline).
   */
  baseline_score: number | null;
  /**
   * Σ attributions − (F_t(x) − F_t(x')) (null for saliency).
   */
  convergence_delta: number | null;
  /**
   * Entropy of that next-token distribution, in nats.
   */
  entropy: number;
  foil: TokenChoice | null;
  id: number;
  /**
   * With `messages`: per message, the sum over its tokens.
   */
  message_attributions?: MessageAttribution[] | null;
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
   * |convergence_delta| / |score − baseline_score|: the share of the score change the row misses (null when the two scores are equal).
   */
  relative_delta: number | null;
  /**
   * F_t(x): the score attributed.
   */
  score: number;
  /**
   * `aggregate: "sentence"`: per sentence the row covers, the sum over its tokens.
   */
  sentence_attributions?: UnitAttribution[] | null;
  /**
   * With `sources`: per source, the sum over its tokens.
   */
  source_attributions?: UnitAttribution[] | null;
  text: string;
  token: string;
  /**
   * relative_delta <= tolerance: whether the row can be read as complete (null for saliency).
   */
  within_tolerance: boolean | null;
  /**
   * `aggregate: "word"`: per word that the row covers (a word partly inside sums its included tokens).
   */
  word_attributions?: Attributions | null;
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
   * With `messages`: the message (of segment 0) whose content holds it.
   */
  message?: number | null;
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
   * occlusion/contextcite: "remove" the unit from the text (re-tokenized, as ContextCite) or replace its tokens by the "baseline" token.
   */
  ablation?: "remove" | "baseline";
  /**
   * "word" / "sentence": also sum the attributions over each word's or sentence's tokens (from the tokenizer's offsets; the rules: docs/api/generations.md); the token values stay.
   */
  aggregate?: "token" | "word" | "sentence";
  /**
   * The method: "integrated_gradients"; "gradient_x_input" (the embedding gradient at the input times input minus baseline: one forward and one backward per target); "saliency" (that gradient's norm per token); "attnlrp" (AttnLRP: relevance from one forward and one backward per target, not conservative; LRP is patented, free for personal and scientific use); "occlusion" (leave one unit out, one forward each) or "contextcite" (random ablations and a Lasso surrogate): forward-only, causal LM continuations only. Which other fields each reads: docs/api/methods.md.
   */
  attribution?: "integrated_gradients" | "gradient_x_input" | "saliency" | "attnlrp" | "occlusion" | "contextcite";
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
   * With continuation/generate: "keep": earlier target tokens stay themselves along the path (captum's LLMGradientAttribution), so each row explains its token by the prompt, as occlusion and ContextCite do; "replace": they start from the baseline like the prompt (docs/api/chat.md: why keep is the default).
   */
  continuation_baseline?: BaselineSpecials;
  /**
   * Answer with what the request would cost (forwards, backwards, tokens, estimated seconds and peak memory) instead of running it.
   */
  dry_run?: boolean;
  /**
   * What the gradients are computed in (default: the archive's dtype setting, float32 unless it says bfloat16); "bfloat16" where the worker computes bf16 natively, faster and less faithful (the answer's convergence delta shows how much).
   */
  dtype?: "float32" | "bfloat16";
  evaluate?: Evaluate;
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
   * contextcite: chance that a unit is kept in a mask, 0 < p < 1 (default 0.5).
   */
  keep_probability?: number;
  /**
   * n_steps "auto": the most gradients to compute (default and ceiling: the archive's max_n_steps).
   */
  max_n_steps?: number | null;
  /**
   * Chat models: the conversation instead of `text`, rendered by the tokenizer's chat template with the generation prompt; needs continuation (the assistant's reply) or generate.
   *
   * @maxItems 256
   */
  messages?: Message[];
  /**
   * captum's approximation method; with n_steps "auto": "fejer" (the default there) or "gausskronrod" (the default with continuation/generate).
   */
  method?: Method;
  /**
   * contextcite: random masks the surrogate is fit on (default 64; with n_holdout at most the archive's max_ablations).
   */
  n_ablations?: number;
  /**
   * contextcite: further masks the surrogate's fit is measured on (default 16; with n_ablations at most the archive's max_ablations).
   */
  n_holdout?: number;
  /**
   * Points along the path (at most the archive's max_n_steps), or "auto": refine until |convergence_delta| <= tolerance x |F(x) - F(x')|.
   */
  n_steps?: number | "auto";
  /**
   * What to return; default by format (json: the summary).
   */
  return?: Returned[] | null;
  /**
   * With continuation/generate, gradient methods: "each": a row per target token, and the whole answer as their sum; "whole": the whole answer alone, F = the sum of the targets' scores (with score "log_probability": log p of the continuation), one backward per path point instead of one per target.
   */
  rows?: "each" | "whole";
  /**
   * F: softmax probability of the target, or its raw logit (the old server).
   */
  score?: Score;
  /**
   * Seed of the rand-norm / rand-unif baselines.
   */
  seed?: number;
  /**
   * Causal LM: named spans of the prompt ({"id", "message", "start", "end"}, or {"id", "text"} found exactly once), e.g. the retrieved documents of a RAG prompt; answers sum per source.
   *
   * @maxItems 256
   */
  sources?: Source[];
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
   * The relative convergence delta to reach with n_steps "auto"; with a continuation also what a row must be within to be marked complete (`within_tolerance`); 0 < tolerance < 1 (default 0.01).
   */
  tolerance?: number | null;
  /**
   * occlusion/contextcite: what is left out: token, word, sentence or source (default: "source" with sources, else "sentence").
   */
  unit?: "token" | "word" | "sentence" | "source";
}
/**
 * `evaluate`: measure the explanation's faithfulness by removing its units in its order
 * (deletion), adding them back (insertion) and against random orders of the same units.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Evaluate".
 */
export interface Evaluate {
  /**
   * Random orders of the units the explanation is compared with (0: none).
   */
  random_orders?: number;
  /**
   * Random order k is numpy.random.default_rng((seed, k)).permutation(units).
   */
  seed?: number;
  /**
   * Points of each curve after the first, at the fractions 1/steps, …, 1 of the units (rounded to unit counts; equal counts once).
   */
  steps?: number;
  /**
   * ERASER's top k: this fraction of the units, rounded, at least one.
   */
  top_fraction?: number;
  /**
   * What is removed: token, word, sentence or source (default: the method's own unit; token for gradient methods). A gradient method's token values are summed per unit.
   */
  unit?: ("token" | "word" | "sentence" | "source") | null;
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
 * One turn of a conversation, rendered by the tokenizer's chat template.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Message".
 */
export interface Message {
  /**
   * What was written; attributions go to its tokens.
   */
  content: string;
  role: "system" | "user" | "assistant";
}
/**
 * A named span of the prompt, e.g. one retrieved document: characters [start, end) of message
 * `message` (or of `text`), or a `text` found exactly once in the prompt.
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "Source".
 */
export interface Source {
  /**
   * One past the last character.
   */
  end?: number | null;
  /**
   * The name answers carry for it (a document id, a URL).
   */
  id: string;
  /**
   * Index into `messages` (with start/end); leave out with `text`.
   */
  message?: number | null;
  /**
   * First character, in its message's content (or in `text`).
   */
  start?: number | null;
  /**
   * Instead of start/end: characters found exactly once in the prompt.
   */
  text?: string | null;
}
/**
 * The JSON summary (`format: json`, and the `summary` entry of an npz).
 *
 * This interface was referenced by `ExformerContract`'s JSON-Schema
 * via the `definition` "GradientsResponse".
 */
export interface GradientsResponse extends PathResponse {
  /**
   * The method that answered.
   */
  attribution?: "integrated_gradients" | "gradient_x_input" | "saliency" | "attnlrp";
  attributions?: Attributions | null;
  /**
   * null for saliency and attnlrp, which start from no baseline.
   */
  baseline: BaselineUsed | null;
  /**
   * Σ attributions − (F(x) − F(x')): the quadrature's error (null for saliency, which has no completeness).
   */
  convergence_delta: number | null;
  /**
   * `evaluate`: the explanation's faithfulness, measured.
   */
  evaluation?: Evaluation | null;
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
