// Talking to the static server (/config.json) and to TorchServe's inference API.
// Every failure becomes an ApiError whose message says what to do about it.

import { takes, type GenerationAnswer } from "./conversation";
import { evaluateBody } from "./evaluation";
import type { AppState } from "./state";
import { targetValue } from "./gradients";
import type {
  AppConfig,
  GenerationRequest,
  AttentionResponse,
  ErrorResponse,
  GradientsRequest,
  GradientsResponse,
  ModelDetails,
  PageAttentionRequest,
} from "./types";

export type ErrorKind = "unreachable" | "http" | "aborted" | "invalid";

export class ApiError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly status?: number,
    readonly type?: string,
    readonly field?: string,
    readonly detail?: string, // the server's own message
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** A 4xx/5xx response → ApiError with the server's own message (our handlers name the field). */
export async function httpError(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  let body: Partial<ErrorResponse> = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { message: text.trim().slice(0, 300) || response.statusText };
  }
  const type = body.type ?? response.statusText;
  const message = `${response.status} ${type}: ${body.message ?? "no message"}`;
  return new ApiError("http", message, response.status, type, body.field ?? undefined, body.message);
}

/** TorchServe's own 500 when the worker running a request was stopped (scale-down, crash);
 * our handlers never send it. */
export const WORKER_LOST = "Worker died.";
const WORKER_LOST_RESENDS = 2;

export const isWorkerLost = (error: ApiError) =>
  error.status === 500 && error.type === "InternalServerException" && error.detail === WORKER_LOST;

export async function loadConfig(url = "config.json"): Promise<AppConfig> {
  let response: Response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch {
    throw new ApiError("unreachable", `Cannot load ${url}: the static server is not answering.`);
  }
  if (!response.ok) {
    throw new ApiError(
      "http",
      `Cannot load ${url} (${response.status}): serve this page with scripts/serve_frontend.py (bin/serve does), which writes it.`,
      response.status,
    );
  }
  const config = (await response.json()) as AppConfig;
  if (typeof config.inference !== "string" || !Array.isArray(config.models)) {
    throw new ApiError("invalid", `${url} must be {"inference": "<url>", "models": [{"name", "handler"}]}`);
  }
  return config;
}

export class InferenceApi {
  constructor(readonly base: string) {
    this.base = base.replace(/\/+$/, "");
  }

  /** POST /predictions/<model>; JSON back, or the raw blob (npz). A request whose worker
   * was stopped under it (scale-down, crash) is sent again: explanations are pure functions. */
  async post(model: string, body: object, signal?: AbortSignal, as: "json" | "blob" = "json"): Promise<any> {
    const url = `${this.base}/predictions/${encodeURIComponent(model)}`;
    let response: Response;
    for (let sends = 1; ; sends++) {
      response = await this.send(url, body, signal);
      if (response.ok) break;
      const error = await httpError(response);
      if (!(isWorkerLost(error) && sends <= WORKER_LOST_RESENDS)) throw error;
    }
    try {
      return as === "blob" ? await response.blob() : await response.json();
    } catch (error) {
      if (signal?.aborted) throw new ApiError("aborted", "Cancelled.");
      throw new ApiError("invalid", `${model} answered with an unreadable body: ${(error as Error).message}`);
    }
  }

  private async send(url: string, body: object, signal?: AbortSignal): Promise<Response> {
    try {
      return await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (signal?.aborted) throw new ApiError("aborted", "Cancelled.");
      // fetch gives a bare TypeError for both "nothing listens" and "CORS refused".
      throw new ApiError(
        "unreachable",
        `Cannot reach the inference API at ${this.base} (${(error as Error).message}). ` +
          `Is TorchServe running (bin/serve)? Its cors_allowed_origin must be ${globalThis.location?.origin ?? "this page's origin"}.`,
      );
    }
  }

  /** An empty body asks an attention model for its details only. */
  async details(model: string, signal?: AbortSignal): Promise<ModelDetails> {
    const out = await this.post(model, {}, signal);
    if (!out?.model) throw new ApiError("invalid", `${model} returned no "model" details for an empty request`);
    return out.model as ModelDetails;
  }

  attention(model: string, body: PageAttentionRequest, signal?: AbortSignal): Promise<AttentionResponse> {
    return this.post(model, body, signal);
  }

  gradients(model: string, body: GradientsRequest, signal?: AbortSignal): Promise<GradientsResponse> {
    return this.post(model, body, signal);
  }

  generation(model: string, body: GenerationRequest, signal?: AbortSignal): Promise<GenerationAnswer> {
    return this.post(model, body, signal);
  }

  async gradientsNpz(model: string, body: GradientsRequest, signal?: AbortSignal): Promise<Blob> {
    const blob: Blob = await this.post(model, { ...body, format: "npz" }, signal, "blob");
    // Never save a JSON body under an .npz name.
    if (blob.type.includes("json")) {
      throw new ApiError("invalid", `${model} answered ${blob.type}, not an .npz, to "format": "npz"`);
    }
    return blob;
  }
}

// --- the request each view sends, from the page's state ------------------------------------------

/**
 * The long-prompt switch. Whole-model attention grows with tokens² × heads × layers (SmolLM2's
 * 30 × 9 maps at 1,500 tokens: ~1.2 GB as float32), so past LONG_PROMPT_TOKENS the page asks for
 * the heads combined on the server (`heads`: the "Heads combined by" choice, mean or max: one
 * map per layer), and past SPARSE_PROMPT_TOKENS only the SPARSE_K largest weights of each row
 * (`top_k_per_row`; the curves below MIN_WEIGHT are not drawn anyway). The token count is not
 * known before the request, so it is estimated from the characters (~4 per token in English
 * for BPE and WordPiece alike); the page says which applied.
 */
export const LONG_PROMPT_TOKENS = 400;
export const SPARSE_PROMPT_TOKENS = 800;
export const SPARSE_K = 32;
export const CHARS_PER_TOKEN = 4;

export interface LongPrompt {
  estimate: number; // tokens, estimated from the characters
  heads: "all" | "mean" | "max";
  topK: number | null;
}

export function longPrompt(s: Pick<AppState, "text" | "pair" | "agg">): LongPrompt {
  const estimate = Math.ceil((s.text.length + s.pair.length) / CHARS_PER_TOKEN);
  return {
    estimate,
    heads: estimate > LONG_PROMPT_TOKENS ? s.agg : "all",
    topK: estimate > SPARSE_PROMPT_TOKENS ? SPARSE_K : null,
  };
}

/** The attention view's request: every layer, float16, every head (or, for a long prompt,
 * their aggregate, and the top k of each row); rollout when the overview shows it. An empty
 * text goes to the server too: its 400 names the field, one source of truth. */
export function attentionRequest(s: AppState, details: ModelDetails | undefined): PageAttentionRequest {
  const long = longPrompt(s);
  const body: PageAttentionRequest = { text: s.text, heads: long.heads, encoding: "float16-base64" };
  if (long.topK) body.top_k_per_row = long.topK;
  if (s.pair.trim()) body.text_pair = s.pair;
  if (s.mask.length && details?.mask_token) body.mask = s.mask;
  if (s.rollout) body.rollout = true;
  return body;
}

/** The attribution view's request: integrated gradients (the default, not named) with the
 * summary and the path; gradient × input with its baseline; saliency with neither (the server
 * refuses what a method does not read). `evaluate` when "measure faithfulness" is on. */
export function attributionRequest(s: AppState): GradientsRequest {
  const body: GradientsRequest = { text: s.text };
  if (s.attrMethod !== "integrated_gradients") body.attribution = s.attrMethod;
  if (takes(s.attrMethod, "baseline")) body.baseline = s.baseline;
  if (takes(s.attrMethod, "n_steps")) {
    body.n_steps = s.steps;
    body.return = ["attributions", "step_sizes", "path_scores"];
  }
  if (s.pair.trim()) body.text_pair = s.pair;
  const target = targetValue(s.target);
  if (target !== undefined) body.target = target;
  // A classifier's units are tokens, words or sentences ("source" is a prompt's, chosen in the Generation view).
  const evaluate = evaluateBody({ evaluate: s.evaluate, evalUnit: s.evalUnit === "source" ? "" : s.evalUnit });
  if (evaluate) body.evaluate = evaluate;
  return body;
}

export type GenerationInputs = Pick<
  AppState,
  "text" | "continuation" | "generate" | "foil" | "words" | "baseline" | "steps" | "method" | "unit" | "messages" | "sources" | "evaluate" | "evalUnit"
>;

/** "#123" → token id 123; other text as typed (not trimmed: " London" ≠ "London"). */
export function tokenValue(value: string): string | number {
  const id = /^#(\d+)$/.exec(value.trim());
  return id ? Number(id[1]) : value;
}

/**
 * The request for `inputs`. The prompt is the conversation when it has turns, else the text;
 * sources go as {id, text} (a row left blank is dropped). Integrated gradients (the default,
 * not named) take the baseline, steps, a foil when one is typed and `aggregate` for words;
 * gradient × input the same without steps, saliency without a baseline either; occlusion and
 * contextcite take none of those (the server refuses them), only `unit` when one is chosen.
 * "measure faithfulness" adds `evaluate` (a forward-only method is evaluated on its own unit).
 * An empty continuation is sent as it is (the server's 400 names the field: one source of truth).
 */
export function generationRequest(inputs: GenerationInputs): GenerationRequest {
  const body: GenerationRequest = inputs.messages.length
    ? { messages: inputs.messages.map((m) => ({ role: m.role, content: m.content })) }
    : { text: inputs.text };
  if (inputs.generate > 0) body.generate = { max_new_tokens: inputs.generate };
  else body.continuation = inputs.continuation;
  const sources = inputs.sources.filter((s) => s.id.trim() || s.text.trim());
  if (sources.length) body.sources = sources.map((s) => ({ id: s.id, text: s.text }));
  const method = inputs.method;
  if (method !== "integrated_gradients") body.attribution = method;
  if (takes(method, "baseline")) body.baseline = inputs.baseline;
  if (takes(method, "n_steps")) body.n_steps = inputs.steps;
  if (takes(method, "foil") && inputs.foil.trim()) body.foil = tokenValue(inputs.foil);
  if (takes(method, "aggregate") && inputs.words) body.aggregate = "word";
  if (takes(method, "unit") && inputs.unit) body.unit = inputs.unit;
  const evaluate = evaluateBody({ ...inputs, evalUnit: takes(method, "unit") ? "" : inputs.evalUnit });
  if (evaluate) body.evaluate = evaluate;
  return body;
}
