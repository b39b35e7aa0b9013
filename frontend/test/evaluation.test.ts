import { describe, expect, it } from "vitest";
import raw from "./fixtures/evaluation.json";
import { attributionRequest, generationRequest, type GenerationInputs } from "../src/api";
import { hasCompleteness, toleranceSummary, type GenerationAnswer } from "../src/conversation";
import {
  curvesExtent,
  evaluateBody,
  evaluationRow,
  faithfulnessCurves,
  faithfulnessFacts,
  isContinuationEvaluation,
  rowName,
  winRateText,
} from "../src/evaluation";
import { DEFAULTS, parseState, serializeState, type AppState } from "../src/state";
import type { Evaluation, GenerationRequest, GenerationResponse, GradientsRequest, GradientsResponse } from "../src/types";

// Real answers with `evaluate` (test/fixtures/evaluation.py): the sentiment classifier under
// saliency by word (10 random orders) and under integrated gradients without random orders;
// SmolLM2's " Paris, the" under gradient × input by word (rows: 3 target tokens, then the whole answer).
const fixtures = raw as unknown as {
  saliency_word: { request: GradientsRequest; response: GradientsResponse };
  ig_no_random: { request: GradientsRequest; response: GradientsResponse };
  gxi_word: { request: GenerationRequest; response: GenerationResponse };
};
const saliency = fixtures.saliency_word.response;
const noRandom = fixtures.ig_no_random.response;
const gxi = fixtures.gxi_word.response;
const close = (a: number[], b: number[]) => a.forEach((v, k) => expect(v).toBeCloseTo(b[k], 12));

describe("the request's evaluate", () => {
  it("is sent only with the toggle on, with the unit only when one is chosen", () => {
    expect(evaluateBody({ evaluate: false, evalUnit: "word" })).toBeUndefined();
    expect(evaluateBody({ evaluate: true, evalUnit: "" })).toEqual({});
    expect(evaluateBody({ evaluate: true, evalUnit: "sentence" })).toEqual({ unit: "sentence" });
  });

  const state = (change: Partial<AppState>): AppState => ({ ...DEFAULTS, text: "A dull film.", ...change });

  it("the Attribution view sends each method only the fields it reads", () => {
    expect(attributionRequest(state({}))).toEqual({ text: "A dull film.", baseline: "pad", n_steps: 50, return: ["attributions", "step_sizes", "path_scores"] });
    expect(attributionRequest(state({ attrMethod: "gradient_x_input", baseline: "zero" }))).toEqual({ text: "A dull film.", attribution: "gradient_x_input", baseline: "zero" });
    expect(attributionRequest(state({ attrMethod: "saliency", target: "negative" }))).toEqual({ text: "A dull film.", attribution: "saliency", target: "negative" });
  });

  it("the Attribution view adds evaluate; a classifier is never asked for sources", () => {
    expect(attributionRequest(state({ attrMethod: "saliency", evaluate: true, evalUnit: "word" })).evaluate).toEqual({ unit: "word" });
    expect(attributionRequest(state({ evaluate: true, evalUnit: "source" })).evaluate).toEqual({});
    expect(attributionRequest(state({ evaluate: false, evalUnit: "word" })).evaluate).toBeUndefined();
  });

  const inputs = (change: Partial<GenerationInputs>): GenerationInputs => ({
    text: "The capital of France is", continuation: " Paris, the", generate: 0, foil: "", words: false, baseline: "pad", steps: 8,
    method: "integrated_gradients", unit: "", messages: [], sources: [], evaluate: false, evalUnit: "", ...change,
  });

  it("the Generation view: gradient × input takes a baseline, not steps; saliency neither", () => {
    expect(generationRequest(inputs({ method: "gradient_x_input", foil: " London", words: true }))).toEqual({
      text: "The capital of France is", continuation: " Paris, the", attribution: "gradient_x_input", baseline: "pad", foil: " London", aggregate: "word",
    });
    expect(generationRequest(inputs({ method: "saliency" }))).toEqual({ text: "The capital of France is", continuation: " Paris, the", attribution: "saliency" });
  });

  it("the Generation view evaluates a forward-only method on its own unit", () => {
    expect(generationRequest(inputs({ method: "gradient_x_input", evaluate: true, evalUnit: "word" })).evaluate).toEqual({ unit: "word" });
    const occlusion = generationRequest(inputs({ method: "occlusion", unit: "sentence", evaluate: true, evalUnit: "word" }));
    expect(occlusion).toMatchObject({ attribution: "occlusion", unit: "sentence", evaluate: {} });
  });

  it("the fixtures' requests are what the page sends for them", () => {
    expect(generationRequest(inputs({ method: "gradient_x_input", evaluate: true, evalUnit: "word" }))).toEqual({
      ...fixtures.gxi_word.request, baseline: "pad", evaluate: { unit: "word" }, // the fixture asks 8 random orders
    } as GenerationRequest & { evaluate: object });
  });
});

describe("the row shown", () => {
  it("a classifier's one row", () => {
    const e = saliency.evaluation!;
    expect(isContinuationEvaluation(e)).toBe(false);
    expect(evaluationRow(e)).toBe(e.rows[0]);
    expect(evaluationRow(e)!.target).toBe(saliency.target.index);
    expect(rowName(evaluationRow(e)!, null, "negative")).toBe("negative");
  });

  it("a continuation: the whole answer by default, a target token's row when one is clicked", () => {
    const e = gxi.evaluation!;
    expect(isContinuationEvaluation(e)).toBe(true);
    expect(e.rows.map((r) => r.target)).toEqual([0, 1, 2, null]);
    expect(evaluationRow(e)!.target).toBeNull();
    expect(evaluationRow(e, 1)).toBe(e.rows[1]);
    expect(evaluationRow(e, 7)!.target).toBeNull(); // no such row: the whole answer
    expect(rowName(e.rows[3], gxi.targets)).toBe("the whole answer");
    expect(rowName(e.rows[1], gxi.targets)).toBe(`target 1 (${JSON.stringify(gxi.targets[1].text)})`);
  });
});

describe("the curves drawn", () => {
  it("deletion and insertion at the fractions of units, starting from F(x) and from nothing kept", () => {
    const e = saliency.evaluation!;
    const row = evaluationRow(e)!;
    const [deletion, insertion] = faithfulnessCurves(e, row);
    expect(e.unit).toBe("word");
    expect(deletion.explanation.map((p) => p.fraction)).toEqual(e.fractions);
    expect(deletion.explanation.map((p) => p.count)).toEqual(e.counts);
    expect(deletion.explanation.map((p) => p.value)).toEqual(row.deletion);
    expect(insertion.explanation.map((p) => p.value)).toEqual(row.insertion);
    expect(deletion.explanation[0].value).toBeCloseTo(saliency.target.score, 5); // nothing removed: F(x)
    expect(insertion.explanation.at(-1)!.value).toBeCloseTo(saliency.target.score, 5); // everything kept
    expect(e.fractions[0]).toBe(0);
    expect(e.fractions.at(-1)).toBe(1);
  });

  it("the random orders' mean curve and a band of ± one standard deviation around it", () => {
    const e = saliency.evaluation!;
    const row = evaluationRow(e)!;
    const [deletion, insertion] = faithfulnessCurves(e, row);
    expect(deletion.random!.map((p) => p.value)).toEqual(row.random!.deletion);
    close(deletion.band!.map((b) => b.high - b.low), row.random!.deletion_std.map((s) => 2 * s));
    close(deletion.band!.map((b) => (b.high + b.low) / 2), row.random!.deletion);
    close(insertion.band!.map((b) => b.low), row.random!.insertion.map((m, k) => m - row.random!.insertion_std[k]));
    // all removed or none: every order agrees, so the band closes at both ends
    expect(deletion.band![0].high - deletion.band![0].low).toBeLessThan(1e-9);
    expect(deletion.band!.at(-1)!.high - deletion.band!.at(-1)!.low).toBeLessThan(1e-9);
    const [lo, hi] = curvesExtent([deletion, insertion]);
    for (const b of [...deletion.band!, ...insertion.band!]) expect(lo <= b.low && b.high <= hi).toBe(true);
    for (const p of [...deletion.explanation, ...insertion.explanation]) expect(lo <= p.value && p.value <= hi).toBe(true);
  });

  it("the areas and win rates as the answer says them", () => {
    const e = saliency.evaluation!;
    const row = evaluationRow(e)!;
    const [deletion, insertion] = faithfulnessCurves(e, row);
    expect([deletion.aopc, insertion.aopc]).toEqual([row.deletion_aopc, row.insertion_aopc]);
    expect([deletion.winRate, insertion.winRate]).toEqual([row.win_rate.deletion, row.win_rate.insertion]);
    expect(deletion.randomAopc).toEqual(row.random!.deletion_aopc);
    const facts = faithfulnessFacts(e, row);
    expect(facts.map((f) => f.key)).toEqual(["deletion_aopc", "insertion_aopc", "comprehensiveness", "sufficiency"]);
    expect(facts[0].text).toBe(`${row.deletion_aopc.toFixed(3)} (random ${row.random!.deletion_aopc.mean.toFixed(3)} ± ${row.random!.deletion_aopc.std.toFixed(3)})`);
    expect(facts[0].win).toBe(winRateText(row.win_rate.deletion, 10));
    expect(facts[3]).toMatchObject({ label: `sufficiency (top ${e.top_k})`, better: "lower", win: null });
  });

  it("without random orders: no mean curve, no band, no win rate", () => {
    const e = noRandom.evaluation!;
    const [deletion, insertion] = faithfulnessCurves(e, evaluationRow(e)!);
    expect(e.unit).toBe("token");
    expect([deletion.random, deletion.band, deletion.winRate, insertion.randomAopc]).toEqual([null, null, null, null]);
    expect(faithfulnessFacts(e, evaluationRow(e)!)[0].win).toBe("no random orders to compare with");
    expect(faithfulnessFacts(e, evaluationRow(e)!)[0].text).toBe(e.rows[0].deletion_aopc.toFixed(3));
  });

  it("an answer without the spread (an older server) draws the mean without a band", () => {
    const e = structuredClone(saliency.evaluation!) as Evaluation;
    const random = e.rows[0].random as unknown as Record<string, unknown>;
    delete random.deletion_std;
    delete random.insertion_std;
    const [deletion] = faithfulnessCurves(e, e.rows[0]);
    expect(deletion.random).not.toBeNull();
    expect(deletion.band).toBeNull();
  });

  it("a continuation's whole answer: its own curves", () => {
    const e = gxi.evaluation!;
    const whole = evaluationRow(e)!;
    const [deletion] = faithfulnessCurves(e, whole);
    expect(deletion.explanation.map((p) => p.value)).toEqual(whole.deletion);
    expect(deletion.explanation.length).toBe(e.counts.length);
    // the whole answer's F is log p(continuation): the sum of the rows' log-probabilities, not their probabilities
    expect(deletion.explanation[0].value).toBeLessThan(0);
  });

  it("win rates written out", () => {
    expect(winRateText(0.7, 10)).toBe("beats 70% of 10 random orders");
    expect(winRateText(1, 1)).toBe("beats 100% of 1 random order");
    expect(winRateText(null, 0)).toBe("no random orders to compare with");
  });
});

describe("saliency: no completeness", () => {
  it("its answers carry no convergence delta, and no row is judged against a tolerance", () => {
    expect(saliency.attribution).toBe("saliency");
    expect(saliency.convergence_delta).toBeNull();
    expect(hasCompleteness("saliency")).toBe(false);
    expect(hasCompleteness("gradient_x_input")).toBe(true);
    const asSaliency = { ...gxi, attribution: "saliency" } as GenerationAnswer;
    expect(toleranceSummary(asSaliency)).toBeNull();
    expect(toleranceSummary(gxi)).not.toBeNull();
  });
});

describe("the URL", () => {
  it("keeps the Attribution view's method, the toggle and its unit", () => {
    const s: AppState = { ...DEFAULTS, view: "attribution", attrMethod: "saliency", evaluate: true, evalUnit: "word" };
    const hash = serializeState(s);
    expect(hash).toContain("am=saliency");
    expect(hash).toContain("eval=on");
    expect(hash).toContain("evalunit=word");
    expect(parseState(hash)).toEqual(s);
    expect(serializeState(DEFAULTS)).toBe("");
    expect(parseState("am=occlusion&evalunit=paragraph")).toMatchObject({ attrMethod: "integrated_gradients", evalUnit: "" });
  });
});
