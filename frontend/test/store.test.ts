import { describe, expect, it } from "vitest";
import { createAppStore, urlState, withEntry } from "../src/session";
import { DEFAULTS, serializeState } from "../src/state";
import { sameValue, Store } from "../src/store";

interface S {
  a: number;
  b: string;
  list: number[];
}

const make = () => new Store<S>({ a: 0, b: "", list: [] });

/** Every notification a store makes: [listener, changed keys]. */
function record(store: Store<S>) {
  const log: string[] = [];
  const listen = (name: string, keys: (keyof S)[] | null) =>
    store.subscribe(keys, (_s, changed) => log.push(`${name}:${[...changed].sort().join(",")}`));
  return { log, listen };
}

describe("the store", () => {
  it("tells a listener only of the keys it subscribed to", () => {
    const store = make();
    const { log, listen } = record(store);
    listen("a", ["a"]);
    listen("b", ["b"]);
    listen("all", null);
    store.set({ a: 1 });
    store.set({ b: "x" });
    expect(log).toEqual(["a:a", "all:a", "b:b", "all:b"]);
    expect(store.state).toEqual({ a: 1, b: "x", list: [] });
  });

  it("a value set again is no change, arrays compared by their items", () => {
    const store = make();
    const { log, listen } = record(store);
    listen("all", null);
    store.set({ a: 0, list: [] });
    store.set({ list: [1, 2] });
    store.set({ list: [1, 2] });
    store.set({ list: [2, 1] });
    expect(log).toEqual(["all:list", "all:list"]);
  });

  it("several keys in one set() are one notification", () => {
    const store = make();
    const { log, listen } = record(store);
    listen("a", ["a"]);
    listen("ab", ["a", "b"]);
    store.set({ a: 1, b: "y" });
    expect(log).toEqual(["a:a,b", "ab:a,b"]);
  });

  it("batch() tells each listener once, with every key changed", () => {
    const store = make();
    const { log, listen } = record(store);
    listen("all", null);
    store.batch(() => {
      store.set({ a: 1 });
      store.set({ b: "z" });
      store.set({ a: 2 });
    });
    expect(log).toEqual(["all:a,b"]);
    expect(store.state.a).toBe(2);
  });

  it("a set() made by a listener is told after the current round, in order", () => {
    const store = make();
    const seen: string[] = [];
    store.subscribe(["a"], (s) => {
      seen.push(`first sees a=${s.a}`);
      if (s.a === 1) store.set({ b: "from listener" });
    });
    store.subscribe(["a"], (s) => seen.push(`second sees a=${s.a} b=${s.b}`));
    store.subscribe(["b"], (s) => seen.push(`b-listener sees ${s.b}`));
    store.set({ a: 1 });
    // The second listener of "a" is told of a=1 before anyone hears of b: no listener is
    // called in the middle of another's round.
    expect(seen).toEqual(["first sees a=1", "second sees a=1 b=from listener", "b-listener sees from listener"]);
  });

  it("unsubscribing stops the notifications", () => {
    const store = make();
    const { log, listen } = record(store);
    const stop = listen("a", ["a"]);
    store.set({ a: 1 });
    stop();
    store.set({ a: 2 });
    expect(log).toEqual(["a:a"]);
  });

  it("the state is replaced, never mutated: an earlier snapshot stays as it was", () => {
    const store = make();
    const before = store.state;
    store.set({ a: 5 });
    expect(before.a).toBe(0);
    expect(store.state).not.toBe(before);
  });

  it("sameValue: identity for objects, items for arrays, NaN equals NaN", () => {
    expect(sameValue(NaN, NaN)).toBe(true);
    expect(sameValue([1, 2], [1, 2])).toBe(true);
    expect(sameValue([1], [1, 2])).toBe(false);
    expect(sameValue({}, {})).toBe(false);
    expect(sameValue(null, null)).toBe(true);
    expect(sameValue(null, [])).toBe(false);
  });
});

describe("the app's store", () => {
  it("starts from the URL, and its URL part serializes as the hash did", () => {
    const hash = "view=generation&text=The+capital+of+France+is&steps=8&lm=smollm2-gradients&cont=+Paris&foil=+London&row=0";
    const store = createAppStore(`#${hash}`);
    expect(store.state.view).toBe("generation");
    expect(store.state.continuation).toBe(" Paris");
    expect(store.state.loaded).toBeNull();
    expect(serializeState(urlState(store.state))).toBe(hash);
    expect(Object.keys(urlState(store.state)).sort()).toEqual(Object.keys(DEFAULTS).sort());
  });

  it("a model's details added as a new map reach the details' listeners", () => {
    const store = createAppStore("");
    const seen: number[] = [];
    store.subscribe(["details"], (s) => seen.push(s.details.size));
    const d = { name: "m" } as never;
    store.set({ details: withEntry(store.state.details, "m-attention", d) });
    store.set({ details: withEntry(store.state.details, "n-attention", d) });
    expect(seen).toEqual([1, 2]);
  });
});
