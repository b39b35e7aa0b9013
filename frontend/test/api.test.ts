import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, InferenceApi, attributionRequest, httpError } from "../src/api";
import { DEFAULTS } from "../src/state";

afterEach(() => vi.unstubAllGlobals());

const json = (status: number, body: object) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

describe("errors the user sees", () => {
  it("a 4xx shows the server's message and remembers the field", async () => {
    const e = await httpError(json(400, { code: 400, type: "BadRequest", message: "text: must not be empty", field: "text" }));
    expect(e.message).toBe("400 BadRequest: text: must not be empty");
    expect([e.kind, e.status, e.field]).toEqual(["http", 400, "text"]);
  });

  it("a body that is not JSON is still shown", async () => {
    const e = await httpError(new Response("upstream timed out", { status: 504, statusText: "Gateway Timeout" }));
    expect(e.message).toBe("504 Gateway Timeout: upstream timed out");
  });

  it("nothing listening is 'unreachable', naming the URL", async () => {
    vi.stubGlobal("fetch", () => Promise.reject(new TypeError("Failed to fetch")));
    const api = new InferenceApi("http://127.0.0.1:1/");
    const e = (await api.details("m").catch((x) => x)) as ApiError;
    expect(e.kind).toBe("unreachable");
    expect(e.message).toMatch(/^Cannot reach the inference API at http:\/\/127\.0\.0\.1:1 \(Failed to fetch\)/);
  });

  it("posts JSON to /predictions/<model>", async () => {
    const seen: [string, RequestInit][] = [];
    vi.stubGlobal("fetch", (url: string, init: RequestInit) => {
      seen.push([url, init]);
      return Promise.resolve(json(200, { model: { name: "m" } }));
    });
    await new InferenceApi("http://h:8080").details("m");
    expect(seen[0][0]).toBe("http://h:8080/predictions/m");
    expect(seen[0][1].method).toBe("POST");
    expect(seen[0][1].body).toBe("{}");
  });
});

describe("npz download", () => {
  it("asks with format npz and refuses a JSON answer", async () => {
    const bodies: string[] = [];
    vi.stubGlobal("fetch", (_url: string, init: RequestInit) => {
      bodies.push(init.body as string);
      return Promise.resolve(json(200, { model: {} }));
    });
    const e = (await new InferenceApi("http://h").gradientsNpz("g", { text: "x" }).catch((x) => x)) as ApiError;
    expect(JSON.parse(bodies[0]).format).toBe("npz");
    expect(e.message).toMatch(/answered application\/json, not an \.npz/);
  });

  it("passes an npz through", async () => {
    vi.stubGlobal("fetch", () => Promise.resolve(new Response(new Uint8Array([80, 75, 3, 4]), { headers: { "Content-Type": "application/x-npz" } })));
    const blob = await new InferenceApi("http://h").gradientsNpz("g", { text: "x" });
    expect(new Uint8Array(await blob.arrayBuffer()).slice(0, 2)).toEqual(new Uint8Array([80, 75]));
  });
});

describe("loading attention", () => {
  it("splits the layers in halves while the server says 413 on attention", async () => {
    const { fetchLayers } = await import("../src/load");
    const asked: number[][] = [];
    vi.stubGlobal("fetch", (_url: string, init: RequestInit) => {
      const layers = JSON.parse(init.body as string).layers as number[];
      asked.push(layers);
      if (layers.length > 2) return Promise.resolve(json(413, { code: 413, type: "PayloadTooLarge", message: "attention: too big", field: "attention" }));
      return Promise.resolve(json(200, { layers }));
    });
    const parts = await fetchLayers(new InferenceApi("http://h"), "m", { text: "x" }, [0, 1, 2, 3, 4], new AbortController().signal);
    expect(parts.map((p: any) => p.layers)).toEqual([[0, 1], [2], [3, 4]]);
    expect(asked[0]).toEqual([0, 1, 2, 3, 4]);
  });

  it("any other error is the user's to see", async () => {
    const { fetchLayers } = await import("../src/load");
    vi.stubGlobal("fetch", () => Promise.resolve(json(400, { code: 400, type: "BadRequest", message: "text: must not be empty", field: "text" })));
    await expect(fetchLayers(new InferenceApi("http://h"), "m", { text: "" }, [0, 1], new AbortController().signal)).rejects.toThrow(/text: must not be empty/);
  });
});

describe("a request whose worker was stopped under it", () => {
  const workerDied = () => json(500, { code: 500, type: "InternalServerException", message: "Worker died." });

  const serving = (answers: (() => Response)[]) => {
    let sends = 0;
    vi.stubGlobal("fetch", () => Promise.resolve(answers[Math.min(sends++, answers.length - 1)]()));
    return () => sends;
  };

  it("is sent again, and the answer that follows is the one returned", async () => {
    const sends = serving([workerDied, () => json(200, { model: { name: "m" } })]);
    const details = await new InferenceApi("http://h:8080").details("m");
    expect(details.name).toBe("m");
    expect(sends()).toBe(2);
  });

  it("gives up after two resends with TorchServe's message", async () => {
    const sends = serving([workerDied]);
    const e = (await new InferenceApi("http://h:8080").details("m").catch((x) => x)) as ApiError;
    expect(e.message).toBe("500 InternalServerException: Worker died.");
    expect(sends()).toBe(3);
  });

  it("our handlers' own 500s and every 4xx are not sent again", async () => {
    for (const answer of [
      () => json(500, { code: 500, type: "InternalServerError", message: "internal error (ValueError)" }),
      () => json(400, { code: 400, type: "BadRequest", message: "text: must be a string", field: "text" }),
    ]) {
      const sends = serving([answer, () => json(200, { model: { name: "m" } })]);
      await expect(new InferenceApi("http://h:8080").details("m")).rejects.toBeInstanceOf(ApiError);
      expect(sends()).toBe(1);
    }
  });
});

describe("the attribution view's request", () => {
  it("the summary with the path; the pair and the target only when given (a target not trimmed, #n an id)", () => {
    const s = { ...DEFAULTS, text: "The capital of France is", steps: 16, baseline: "zero" as const };
    expect(attributionRequest(s)).toEqual({
      text: "The capital of France is", baseline: "zero", n_steps: 16, return: ["attributions", "step_sizes", "path_scores"],
    });
    expect(attributionRequest({ ...s, target: " Paris", pair: "x" })).toMatchObject({ target: " Paris", text_pair: "x" });
    expect(attributionRequest({ ...s, target: "#7042" }).target).toBe(7042);
  });
});
