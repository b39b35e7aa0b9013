// The wire contract of exformer-serve (handlers/exformer/attention.py, gradients.py), typed.

export type Handler = "attention" | "gradients";

/** /config.json, written by scripts/serve_frontend.py from deploy/models.txt. */
export interface AppConfig {
  inference: string;
  models: { name: string; handler: Handler }[];
}

/** The contract's `model` block (LoadedModel.details()). */
export interface ModelDetails {
  name: string;
  type: string;
  architecture: string;
  kind: "bidirectional" | "autoregressive";
  n_layers: number;
  n_heads: number;
  vocab_size: number;
  max_tokens: number;
  head: string | null;
  predictions: "masked-token" | "next-token" | null;
  mask_token: string | null;
  labels: string[] | null;
}

export interface Prediction {
  token: string;
  text: string;
  id: number;
  prob: number;
}

export interface Token {
  index: number;
  text: string;
  id: number;
  start: number | null;
  end: number | null;
  surface: string | null;
  segment: 0 | 1 | null;
  special: boolean;
  masked?: boolean;
  predictions?: Prediction[] | null;
}

export interface EncodedArray {
  encoding: "json" | "float16-base64";
  shape: number[];
  data: unknown; // nested number lists (json) or a base64 string (float16-base64)
}

export interface AttentionResponse {
  model: ModelDetails;
  tokens: Token[];
  attention: EncodedArray & { layers: number[]; heads: number[] };
  truncated: boolean;
  n_tokens_input: number;
  n_tokens_dropped: number;
  prediction?: ClassPrediction;
}

export interface ClassPrediction {
  label: string;
  probabilities: Record<string, number>;
}

export interface GradientsResponse {
  model: ModelDetails;
  tokens: Token[];
  truncated: boolean;
  n_tokens_input: number;
  n_tokens_dropped: number;
  prediction: ClassPrediction | { next_tokens: Prediction[] };
  score: string;
  target: { index: number; label?: string; token?: string; text?: string; score: number };
  baseline: { name: string; specials: string; seed: number | null; score: number };
  method: string;
  n_steps: number;
  convergence_delta: number;
  attributions?: { raw: number[]; normalized: number[] };
  alphas?: number[];
  step_sizes?: number[];
  path_scores?: number[];
  gradient_norms?: number[];
}

/** A 4xx/5xx body: {"code", "type", "message", "field"} (field only on our own 4xx). */
export interface ErrorBody {
  code: number;
  type: string;
  message: string;
  field?: string;
}
