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
  Float16Attention,
  GradientsRequest,
  GradientsResponse,
  JsonArray,
  JsonAttention,
  Method,
  ModelDetails,
  ModelDetailsResponse,
  ModelHead,
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
