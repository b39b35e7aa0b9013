import { describe, expect, it } from "vitest";
import raw from "./fixtures/rag.json";
import { generationRequest } from "../src/api";
import {
  ablationMatrix,
  conversationTurns,
  fitQuality,
  freeSourceId,
  hasWhole,
  isAblation,
  messageValues,
  methodOf,
  nextRole,
  occurrences,
  promptTexts,
  relativeText,
  selection,
  sourceHint,
  toleranceSummary,
  unitGroups,
  wholeTokenValues,
} from "../src/conversation";
import { DEFAULTS, parseState, serializeState, type AppState } from "../src/state";
import type { AblationResponse, GenerationRequest, GenerationResponse } from "../src/types";

// Real answers of the chat/RAG backend on SmolLM2-135M-Instruct (test/fixtures/rag.py): a system
// message, a user message with two documents and a question, the answer " It was completed in
// 1889." as the continuation, the documents as sources A and B.
const fixtures = raw as unknown as {
  occlusion: { request: GenerationRequest; response: AblationResponse };
  contextcite: { request: GenerationRequest; response: AblationResponse };
  integrated_gradients: { request: GenerationRequest; response: GenerationResponse };
};
const occlusion = fixtures.occlusion.response;
const contextcite = fixtures.contextcite.response;
const ig = fixtures.integrated_gradients.response;
const request = fixtures.integrated_gradients.request;
const DOC_A = request.sources![0].text!;
const DOC_B = request.sources![1].text!;

/** The page's state that asks for the fixtures' requests. */
const inputs: AppState = {
  ...DEFAULTS,
  view: "generation",
  messages: request.messages!,
  continuation: request.continuation!,
  sources: [{ id: "A", text: DOC_A }, { id: "B", text: DOC_B }],
  steps: 4,
};

describe("the request the Generation view sends for a conversation with sources", () => {
  it("is what the fixtures were asked with, under each method", () => {
    expect(generationRequest(inputs)).toEqual(fixtures.integrated_gradients.request);
    expect(generationRequest({ ...inputs, method: "occlusion" })).toEqual(fixtures.occlusion.request);
    expect(generationRequest({ ...inputs, method: "contextcite" })).toEqual(fixtures.contextcite.request);
  });

  it("the conversation replaces the text; the text is not sent beside it", () => {
    const body = generationRequest({ ...inputs, text: "ignored while there are turns" });
    expect(body.text).toBeUndefined();
    expect(body.messages).toEqual([
      { role: "system", content: "Answer from the documents." },
      { role: "user", content: expect.stringContaining("Document A: ") },
    ]);
    expect(generationRequest({ ...inputs, messages: [], text: "Hi" }).text).toBe("Hi");
  });

  it("forward-only methods send none of integrated gradients' fields, and the unit only when chosen", () => {
    const asked = { ...inputs, foil: " London", words: true, steps: "auto" as const };
    for (const method of ["occlusion", "contextcite"] as const) {
      const body = generationRequest({ ...asked, method });
      expect(body.attribution).toBe(method);
      for (const key of ["baseline", "n_steps", "foil", "aggregate", "unit"] as const) expect(body[key]).toBeUndefined();
      expect(generationRequest({ ...asked, method, unit: "sentence" }).unit).toBe("sentence");
    }
    // Integrated gradients: not named (the default), with its own fields.
    const body = generationRequest(asked);
    expect(body.attribution).toBeUndefined();
    expect([body.n_steps, body.foil, body.aggregate, body.unit]).toEqual(["auto", " London", "word", undefined]);
  });

  it("sources: blank rows dropped, a half-filled one sent (the server names it)", () => {
    const body = generationRequest({ ...inputs, sources: [{ id: "", text: "" }, { id: "A", text: DOC_A }, { id: "", text: DOC_B }] });
    expect(body.sources).toEqual([{ id: "A", text: DOC_A }, { id: "", text: DOC_B }]);
    expect(generationRequest({ ...inputs, sources: [{ id: " ", text: "" }] }).sources).toBeUndefined();
  });
});

describe("the conversation, the method and the sources in the URL", () => {
  it("round-trip", () => {
    const s = { ...inputs, method: "contextcite" as const, unit: "source" as const, whole: true };
    expect(parseState(`#${serializeState(s)}`)).toEqual(s);
  });

  it("garbage falls back: unknown roles, methods and units are dropped", () => {
    const s = parseState(`attr=shap&unit=page&msgs=${encodeURIComponent('[["robot","x"],["user","Hi"],3,["user"]]')}&src=nope&whole=yes`);
    expect([s.method, s.unit, s.whole]).toEqual(["integrated_gradients", "", false]);
    expect(s.messages).toEqual([{ role: "user", content: "Hi" }]);
    expect(s.sources).toEqual([]);
  });
});

describe("editing: where a source is found, the next turn and source id", () => {
  const texts = promptTexts(inputs);

  it("looks in each message (or the text)", () => {
    expect(texts).toEqual(inputs.messages.map((m) => m.content));
    expect(promptTexts({ text: "plain", messages: [] })).toEqual(["plain"]);
  });

  it("a source must occur exactly once", () => {
    expect(occurrences(texts, DOC_A)).toBe(1);
    expect(occurrences(texts, "It was completed in")).toBe(2);
    expect(occurrences(texts, "aa")).toBe(0);
    expect(occurrences(["aaa"], "aa")).toBe(2); // overlapping: still not unique
    expect(occurrences(texts, "")).toBe(0);
    expect(sourceHint(texts, DOC_B)).toEqual({ ok: true, text: "found once in the prompt" });
    expect(sourceHint(texts, "It was completed in").ok).toBe(false);
    expect(sourceHint(texts, "The Louvre").text).toBe("not found in the prompt");
  });

  it("system first, then user and assistant in turn; ids A, B … skip those taken", () => {
    expect(nextRole([])).toBe("system");
    expect(nextRole([{ role: "system", content: "" }])).toBe("user");
    expect(nextRole([{ role: "user", content: "" }])).toBe("assistant");
    expect(nextRole([{ role: "assistant", content: "" }])).toBe("user");
    expect(freeSourceId([])).toBe("A");
    expect(freeSourceId([{ id: "A", text: "" }, { id: "C", text: "" }])).toBe("B");
  });
});

describe("the turns of a real answer", () => {
  it("system, user, then the answer; every token in exactly one turn, in order", () => {
    for (const r of [ig, occlusion, contextcite]) {
      const turns = conversationTurns(r)!;
      expect(turns.map((t) => [t.role, t.message, t.answer])).toEqual([["system", 0, false], ["user", 1, false], ["assistant", null, true]]);
      expect(turns.flatMap((t) => t.tokens)).toEqual(r.tokens.map((t) => t.index));
      expect(turns[0].tokens).toEqual(r.messages![0].tokens);
      expect(turns[1].tokens).toEqual(r.messages![1].tokens);
      // The answer: the generation prompt's template tokens, then every target.
      const answer = turns[2].tokens.map((i) => r.tokens[i]);
      expect(answer.filter((t) => t.target).length).toBe(r.targets.length);
      expect(answer.filter((t) => !t.target).every((t) => t.template)).toBe(true);
      expect(turns[1].content).toContain("Question: When was the Eiffel Tower completed?");
    }
  });

  it("a plain text prompt has no turns", () => {
    expect(conversationTurns({ ...ig, messages: null })).toBeNull();
  });

  it("template tokens are marked, and integrated gradients hold them fixed (0)", () => {
    const template = ig.tokens.filter((t) => t.template && !t.target);
    expect(template.length).toBe(14);
    const whole = wholeTokenValues(ig)!;
    expect(whole.length).toBe(ig.tokens.length);
    for (const t of template) expect(whole[t.index]).toBe(0);
  });
});

describe("sources shaded by their values", () => {
  it("integrated gradients: a row's source sums, or the whole answer's", () => {
    const [row] = unitGroups(ig, selection(ig, 3, false));
    expect(row.kind).toBe("source");
    expect(row.units.map((u) => [u.unit.id, u.unit.text])).toEqual([["A", DOC_A], ["B", DOC_B]]);
    expect(row.units.map((u) => u.value)).toEqual(ig.targets[3].source_attributions!.map((s) => s.attribution));
    expect(row.extent).toBe(Math.max(...row.units.map((u) => Math.abs(u.value!))));
    const [whole] = unitGroups(ig, selection(ig, 3, true));
    expect(whole.units.map((u) => u.value)).toEqual(ig.continuation_attributions!.sources!.map((s) => s.attribution));
  });

  it("a row's source sum is the sum of its tokens' raw values", () => {
    const t = ig.targets[5];
    for (const source of ig.sources!) {
      const sum = source.tokens.reduce((a, i) => a + t.attributions!.raw[i], 0);
      expect(t.source_attributions!.find((s) => s.id === source.id)!.attribution).toBeCloseTo(sum, 6);
    }
  });

  it("occlusion and contextcite: the units left out, per row and for the whole answer; no per-token values", () => {
    for (const r of [occlusion, contextcite]) {
      expect(isAblation(r)).toBe(true);
      expect(r.unit).toBe("source");
      const [row] = unitGroups(r, selection(r, 0, false));
      expect(row.units.map((u) => [u.unit.id, u.value])).toEqual(r.targets[0].attributions.map((a) => [a.id, a.attribution]));
      const [whole] = unitGroups(r, selection(r, 0, true));
      expect(whole.units.map((u) => [u.unit.id, u.value])).toEqual(r.continuation_attributions.map((a) => [a.id, a.attribution]));
      expect(wholeTokenValues(r)).toBeNull();
      expect(messageValues(r, selection(r, 0, false))).toBeNull();
    }
    expect([methodOf(occlusion), methodOf(contextcite), methodOf(ig)]).toEqual(["occlusion", "contextcite", "integrated_gradients"]);
    expect(isAblation(ig)).toBe(false);
  });

  it("the document with the answer counts more for the whole answer, under every method", () => {
    for (const r of [occlusion, contextcite]) {
      const [whole] = unitGroups(r, selection(r, 0, true));
      expect(whole.units[0].value!).toBeGreaterThan(whole.units[1].value!);
    }
    const [whole] = unitGroups(ig, selection(ig, 0, true));
    expect(whole.units[0].value!).toBeGreaterThan(whole.units[1].value!);
  });

  it("integrated gradients: each message's sum", () => {
    const sums = messageValues(ig, selection(ig, 0, true))!;
    expect([...sums.keys()]).toEqual([0, 1, null]);
    expect(sums.get(1)).toBe(ig.continuation_attributions!.messages![1].attribution);
    expect(messageValues(ig, selection(ig, 2, false))!.get(0)).toBe(ig.targets[2].message_attributions![0].attribution);
  });

  it("selection: a row in range, whole only where the answer has it", () => {
    expect(selection(ig, 99, false)).toEqual({ row: 0, whole: false });
    expect(selection(ig, null, true)).toEqual({ row: 0, whole: true });
    // nothing chosen yet: an answer with sources opens on the whole answer (which document?), others on the first row
    expect(selection(ig, null, false)).toEqual({ row: 0, whole: true });
    expect(selection(occlusion, null, false)).toEqual({ row: 0, whole: true });
    expect(selection({ ...ig, sources: null }, null, false)).toEqual({ row: 0, whole: false });
    expect(selection(ig, 1, false)).toEqual({ row: 1, whole: false });
    expect(selection({ ...ig, continuation_attributions: null }, 2, true)).toEqual({ row: 2, whole: false });
    expect(hasWhole(occlusion)).toBe(true);
  });
});

describe("rows outside the tolerance", () => {
  it("4 steps leave every row of the real answer outside 1%, and the page says by how much", () => {
    const t = toleranceSummary(ig)!;
    expect(t.tolerance).toBe(0.01);
    expect(t.within).toBe(false);
    expect(t.off.map((s) => s.row)).toEqual(ig.targets.map((_, k) => k));
    expect(t.worst).toBe(Math.max(...ig.targets.map((x) => x.relative_delta!)));
    expect(t.worst!).toBeGreaterThan(1); // a row more than 100% off
    for (const s of t.rows) {
      const row = ig.targets[s.row];
      expect(s.relative).toBeCloseTo(Math.abs(row.convergence_delta! / (row.score - row.baseline_score!)), 6);
    }
  });

  it("rows within, and answers that do not say", () => {
    const within = { ...ig, within_tolerance: true, targets: ig.targets.map((x) => ({ ...x, within_tolerance: true, relative_delta: 0.001 })) };
    expect(toleranceSummary(within)).toMatchObject({ within: true, off: [], worst: null });
    const mixed = { ...within, within_tolerance: false, targets: within.targets.map((x, k) => (k === 1 ? { ...x, within_tolerance: false, relative_delta: 0.5 } : x)) };
    expect(toleranceSummary(mixed)).toMatchObject({ within: false, worst: 0.5, off: [{ row: 1, relative: 0.5, within: false }] });
    const old = { ...ig, within_tolerance: undefined as unknown as boolean, targets: ig.targets.map(({ within_tolerance: _, relative_delta: __, ...x }) => x) };
    const summary = toleranceSummary(old as unknown as GenerationResponse)!;
    expect(summary.off).toEqual([]);
    expect(summary.rows.every((s) => s.within === null && s.relative === null)).toBe(true);
    expect(toleranceSummary(occlusion)).toBeNull();
  });

  it("relative δ as written on the page", () => {
    expect(relativeText(16.00944)).toBe("1,601%");
    expect(relativeText(0.6015)).toBe("60%");
    expect(relativeText(0.01)).toBe("1%");
    expect(relativeText(0.0123)).toBe("1.2%");
    expect(relativeText(null)).toBe("—");
    expect(relativeText(Infinity)).toBe("∞");
  });
});

describe("forward-only answers: the matrix and the surrogate", () => {
  it("rows = targets, columns = units, every value there", () => {
    const m = ablationMatrix(occlusion);
    expect(m.rows.length).toBe(occlusion.targets.length);
    expect(m.columns.map((c) => c.label)).toEqual(["A", "B"]);
    occlusion.targets.forEach((t, r) => {
      expect(Array.from(m.values.subarray(r * 2, r * 2 + 2))).toEqual(t.attributions.map((a) => a.attribution));
    });
    expect(m.extent).toBe(Math.max(...occlusion.targets.flatMap((t) => t.attributions.map((a) => Math.abs(a.attribution)))));
  });

  it("ContextCite's fit on held-out masks; occlusion has none", () => {
    const s = contextcite.surrogate!;
    expect([s.n_ablations, s.n_holdout, s.n_distinct_prompts]).toEqual([64, 16, 4]); // two sources: 2² prompts
    expect(s.fit.r2).not.toBeNull();
    expect(fitQuality(s.fit)).toBe("good");
    expect(fitQuality({ ...s.fit, r2: 0.1 })).toBe("weak");
    expect(fitQuality({ ...s.fit, spearman: null })).toBe("unknown");
    expect(occlusion.surrogate ?? null).toBeNull();
  });
});
