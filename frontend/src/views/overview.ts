// Model overview (bertviz's "model view"): every layer × head as a small heatmap; clicking
// one focuses that layer and head in the attention view.

import { headColor, heatmapPixels, visibleTokens, type AttentionLayers } from "../transforms";
import { longPromptNote, selectedHeads, type AppStore } from "../session";
import type { Token } from "../types";

const CELL = 64;
const ROLLOUT_COLOR = "#1d2430"; // px per thumbnail, whatever the token count (canvas scales it)

export class OverviewView {
  constructor(
    private readonly root: HTMLElement,
    private readonly onPick: (layer: number, head: number) => void,
  ) {}

  /** Draw the grid; layers not loaded yet get an empty cell (see main.ts for lazy loading). */
  render(
    tokens: Token[], attention: AttentionLayers, nLayers: number, hideSpecial: boolean, current: { layer: number; heads: number[] },
    rollout: Map<number, Float32Array> | null = null,
  ) {
    const visible = visibleTokens(tokens, hideSpecial);
    const m = visible.length;
    const grid = document.createElement("div");
    grid.className = "overview-grid";
    grid.style.setProperty("--heads", String(attention.nHeads + (rollout ? 1 : 0)));
    grid.append(cornerCell());
    const headName = (h: number) => (attention.aggregate ? `${attention.aggregate} of heads` : `H${attention.heads?.[h] ?? h}`);
    for (let h = 0; h < attention.nHeads; h++) grid.append(label(headName(h), "col", headColor(h, attention.nHeads)));
    if (rollout) grid.append(label("rollout", "col", ROLLOUT_COLOR));
    for (let l = 0; l < nLayers; l++) {
      grid.append(label(`L${l}`, "row"));
      const layer = attention.layers.get(l);
      for (let h = 0; h < attention.nHeads; h++) {
        const canvas = thumbnail(m, l);
        canvas.dataset.head = String(attention.heads?.[h] ?? h);
        canvas.title = `layer ${l}, head ${attention.heads?.[h] ?? h}`;
        if (l === current.layer && current.heads.includes(h)) canvas.classList.add("current");
        if (layer && m) {
          const slice = layer.subarray(h * attention.n * attention.n, (h + 1) * attention.n * attention.n);
          const pixels = heatmapPixels(slice, attention.n, visible, headColor(h, attention.nHeads));
          canvas.getContext("2d")!.putImageData(new ImageData(pixels as Uint8ClampedArray<ArrayBuffer>, m, m), 0, 0);
        } else {
          canvas.classList.add("pending");
        }
        canvas.addEventListener("click", () => this.onPick(l, h));
        grid.append(canvas);
      }
      if (rollout) grid.append(rolloutCell(rollout.get(l), l, attention.n, visible));
    }
    this.root.replaceChildren(grid);
  }

  message(text: string) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = text;
    this.root.replaceChildren(p);
  }
}

/** Layer l's rolled-out attention: how much of each input token (column) reaches each token
 * (row) after layer l. */
function rolloutCell(map: Float32Array | undefined, l: number, n: number, visible: number[]): HTMLCanvasElement {
  const m = visible.length;
  const canvas = thumbnail(m, l);
  canvas.classList.add("rollout");
  canvas.title = `rollout after layer ${l}`;
  if (map && m) {
    const pixels = heatmapPixels(map, n, visible, ROLLOUT_COLOR);
    canvas.getContext("2d")!.putImageData(new ImageData(pixels as Uint8ClampedArray<ArrayBuffer>, m, m), 0, 0);
  } else {
    canvas.classList.add("pending");
  }
  return canvas;
}

/** An m × m map drawn at CELL px, for layer l. */
function thumbnail(m: number, l: number): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, m);
  canvas.height = Math.max(1, m);
  canvas.style.width = canvas.style.height = `${CELL}px`;
  canvas.className = "thumb";
  // Crisp pixels when enlarging a short text's map; smoothing when shrinking a long one.
  canvas.style.imageRendering = m < CELL ? "pixelated" : "auto";
  canvas.dataset.layer = String(l);
  return canvas;
}

function label(text: string, kind: "row" | "col", color?: string): HTMLElement {
  const el = document.createElement("span");
  el.className = `grid-label ${kind}`;
  el.textContent = text;
  if (color) el.style.borderBottomColor = color;
  return el;
}

function cornerCell(): HTMLElement {
  const el = document.createElement("span");
  el.className = "grid-label corner";
  return el;
}

/** The app's model overview: redrawn when the attention, the focus or the special tokens change. */
export class OverviewPanel {
  readonly view: OverviewView;

  constructor(
    root: HTMLElement,
    private readonly note: HTMLElement,
    private readonly store: AppStore,
    onPick: (layer: number, head: number) => void,
  ) {
    this.view = new OverviewView(root, onPick);
    store.subscribe(["view", "loaded", "layer", "heads", "hideSpecial", "rollout"], () => this.draw());
  }

  draw() {
    const s = this.store.state;
    if (s.view !== "overview") return;
    if (!s.loaded) {
      this.view.message("Run a text first: the overview shows its attention.");
      return;
    }
    const { response, attention, model, rollout } = s.loaded;
    const heads = attention.aggregate ? [0] : selectedHeads(s, attention.nHeads);
    this.view.render(response.tokens, attention, model.n_layers, s.hideSpecial, { layer: s.layer, heads }, s.rollout ? rollout : null);
    this.note.textContent = s.rollout && !rollout ? "Asking for the rollout…" : longPromptNote(s.loaded);
  }
}
