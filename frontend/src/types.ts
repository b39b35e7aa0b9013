// Types of the page. The wire contract itself is generated (src/contract.ts, `npm run types`,
// from docs/schema/exformer-v1.schema.json): re-exported here, never written out again.

import type { Float16Attention, JsonArray } from "./contract";

export type {
  AttentionEncoding,
  AttentionRequest,
  AttentionResponse,
  Baseline,
  ClassPrediction,
  ErrorResponse,
  Evaluate,
  Evaluation,
  EvaluationRow,
  Float16Attention,
  GradientsRequest,
  GradientsResponse,
  JsonArray,
  JsonAttention,
  Method,
  ModelDetails,
  ModelDetailsResponse,
  PathResponse,
  ModelHead,
  RandomOrders,
  Spread,
  WinRate,
  NextTokenPrediction,
  Returned,
  Target,
  Token,
  TokenPrediction,
} from "./contract";

export type Handler = "attention" | "gradients";

/** /config.json, written by scripts/serve_frontend.py from deploy/models.txt (not the wire contract). */
export interface AppConfig {
  inference: string;
  models: { name: string; handler: Handler }[];
}

/** What decode.ts reads of any encoded tensor of the contract (attention, intermediates). */
export type EncodedArray = JsonArray | Pick<Float16Attention, "encoding" | "shape" | "data">;

// --- explaining a generation (issue 14): the contract's own ------------------------------------

export type {
  AblationResponse,
  AblationTarget,
  Attributions,
  ContinuationAttributions,
  Generate,
  GenerationBaseline,
  GenerationResponse,
  GenerationTarget,
  GenerationToken,
  Message,
  MessageAttribution,
  MessageUsed,
  Source,
  Surrogate,
  SurrogateFit,
  TextUnit,
  TokenChoice,
  UnitAttribution,
  Word,
} from "./contract";

/** A generation request: the gradients request with `continuation` or `generate`, and a prompt
 * (`text`, or a conversation as `messages`). */
export type GenerationRequest = import("./contract").GradientsRequest;

// --- long prompts and rollout (issue 14) -------------------------------------------------------
// What the page reads of the rollout branch's attention additions (heads "mean"/"max",
// top_k_per_row, rollout), written structurally so that the generated types fit them.

/** Integer arrays of the sparse encoding: JSON lists, or base64 little-endian uint16/uint32. */
export type IndexArray =
  | { encoding: "json"; shape: number[]; data: unknown[] }
  | { encoding: "base64"; dtype: "uint16" | "uint32"; byteorder?: "little"; shape: number[]; data: string };

/** A stack of T×T matrices as the k largest values of each row (`top_k_per_row`). */
export interface SparseRowsBlock {
  encoding: "topk-per-row";
  shape: number[]; // the dense shape [..., T, T]
  k: number;
  values: EncodedArray; // [..., T, k]
  columns: IndexArray; // [..., T, k]
  kept: EncodedArray; // [..., T]
  rest: EncodedArray; // [..., T]
  min_kept_fraction: number;
}

/** An attention block: dense (json, float16) or sparse; `aggregate` when heads were asked as "mean"/"max". */
export type AttentionBlock = (EncodedArray | SparseRowsBlock) & { layers: number[]; heads: number[]; aggregate?: "mean" | "max" | null };
/** The rollout block: [layers, T, T]. */
export type RolloutBlock = (EncodedArray | SparseRowsBlock) & { layers: number[] };

export type HeadsParam = "all" | "mean" | "max" | number[];

/** The attention request with the long-prompt and rollout fields. */
export type PageAttentionRequest = Omit<import("./contract").AttentionRequest, "heads"> & {
  heads?: HeadsParam;
  rollout?: boolean | "only";
  top_k_per_row?: number | null;
};
