// Talking to the static server (/config.json) and to TorchServe's inference API.
// Every failure becomes an ApiError whose message says what to do about it.

import type {
  AppConfig,
  AttentionRequest,
  AttentionResponse,
  ErrorResponse,
  GradientsRequest,
  GradientsResponse,
  ModelDetails,
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

  attention(model: string, body: AttentionRequest, signal?: AbortSignal): Promise<AttentionResponse> {
    return this.post(model, body, signal);
  }

  gradients(model: string, body: GradientsRequest, signal?: AbortSignal): Promise<GradientsResponse> {
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
