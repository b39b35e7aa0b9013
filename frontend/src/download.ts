// Downloads of the result on screen: JSON as shown, or the full tensors as .npz (a second
// request). Save a Blob as a file: the browser's own download, no server round trip.

import type { InferenceApi } from "./api";
import type { HeldGeneration } from "./generation";
import type { HeldResult } from "./gradients";
import type { Status } from "./status";

export function saveBlob(blob: Blob, filename: string): void {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000); // after the download has started
}

type Held = HeldResult | HeldGeneration;

/** `<model>-<baseline>-<steps>`: which result a file holds. */
export const fileStem = (held: Held) => `${held.model}-${held.body.baseline ?? "default"}-${held.body.n_steps ?? "default"}`;

export function downloadJson(held: Held | null): void {
  if (!held) return;
  saveBlob(new Blob([JSON.stringify(held.result, null, 2)], { type: "application/json" }), `${fileStem(held)}.json`);
}

/** The full tensors (intermediate gradients too) come from a second request in "npz" format. */
export async function downloadNpz(api: InferenceApi, status: Status, held: HeldResult | null): Promise<void> {
  if (!held) return;
  const { return: _summaryOnly, ...body } = held.body; // npz defaults to every tensor
  const blob = await status.track(`Fetching .npz from ${held.model}`, (signal) => api.gradientsNpz(held.model, body, signal));
  if (blob) saveBlob(blob, `${fileStem(held)}.npz`);
}
