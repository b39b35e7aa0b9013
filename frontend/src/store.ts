// A small state store: one object, changed with set(), and listeners that subscribe to the
// keys they draw. Views redraw when, and only when, what they show changed; the URL writer
// is one more subscriber. Synchronous, no framework: a set() made by a listener is queued and
// notified after the current round, so every listener sees the changes in the order made.

export type Listener<S> = (state: Readonly<S>, changed: ReadonlySet<keyof S>) => void;

interface Subscription<S> {
  keys: ReadonlySet<keyof S> | null; // null: every key
  fn: Listener<S>;
}

/** Equal for the store's purposes: the same value, or arrays of the same items (a head
 * list set again with the same heads is no change). Other objects compare by identity. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
  return false;
}

export class Store<S extends object> {
  private current: S;
  private subscriptions: Subscription<S>[] = [];
  private queue: Set<keyof S>[] = [];
  private notifying = false;
  private batching: Set<keyof S> | null = null;

  constructor(initial: S) {
    this.current = { ...initial };
  }

  get state(): Readonly<S> {
    return this.current;
  }

  /** Change some keys; listeners of the keys that really changed are told (once each). */
  set(change: Partial<S>): void {
    const changed = new Set<keyof S>();
    for (const key of Object.keys(change) as (keyof S)[]) {
      if (!sameValue(this.current[key], change[key])) changed.add(key);
    }
    if (!changed.size) return;
    this.current = { ...this.current, ...change };
    if (this.batching) {
      changed.forEach((k) => this.batching!.add(k));
      return;
    }
    this.queue.push(changed);
    this.flush();
  }

  /** Several set()s told as one change (e.g. a pasted link: every key at once). */
  batch(work: () => void): void {
    if (this.batching) return work();
    const changed = new Set<keyof S>();
    this.batching = changed;
    try {
      work();
    } finally {
      this.batching = null;
    }
    if (changed.size) {
      this.queue.push(changed);
      this.flush();
    }
  }

  /** Call `fn` after every change of one of `keys` (null: of any key); returns the unsubscribe. */
  subscribe(keys: readonly (keyof S)[] | null, fn: Listener<S>): () => void {
    const subscription: Subscription<S> = { keys: keys ? new Set(keys) : null, fn };
    this.subscriptions.push(subscription);
    return () => {
      this.subscriptions = this.subscriptions.filter((s) => s !== subscription);
    };
  }

  private flush(): void {
    if (this.notifying) return; // the running flush takes it from the queue
    this.notifying = true;
    try {
      for (let changed = this.queue.shift(); changed; changed = this.queue.shift()) {
        for (const s of [...this.subscriptions]) {
          if (!s.keys || [...changed].some((k) => s.keys!.has(k))) s.fn(this.current, changed);
        }
      }
    } finally {
      this.notifying = false;
      this.queue = [];
    }
  }
}
