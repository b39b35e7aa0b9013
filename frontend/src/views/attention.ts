// exBERT-style attention view: tokens on the left attend to tokens on the right; one SVG
// curve per (from, to) pair whose opacity is the weight, coloured by the strongest head.

import { select, type Selection } from "d3";
import {
  aggregateHeads,
  attentionEdges,
  curvePath,
  edgeOpacity,
  headColor,
  tokenLabel,
  visibleTokens,
  type Aggregation,
  type AttentionLayers,
  type Edge,
} from "../transforms";
import { longPromptNote, selectedHeads, type AppStore } from "../session";
import type { AttentionResponse, Token } from "../types";

export interface AttentionOptions {
  layer: number;
  heads: number[];
  agg: Aggregation;
  hideSpecial: boolean;
  selected: number | null;
}

// Below this a curve is invisible at its own opacity; leaving it out keeps the DOM to a few
// thousand paths for 128 tokens (16,384 pairs).
export const MIN_WEIGHT = 0.01;

const ROW = 20; // px per token row
const TOP = 30; // room for the column titles
const LABEL_W = 150; // each token column
const GAP = 230; // between the columns, where the curves run
const MAX_LABEL = 16;

const short = (s: string) => (s.length > MAX_LABEL ? `${s.slice(0, MAX_LABEL - 1)}…` : s);

export class AttentionView {
  private svg: Selection<SVGSVGElement, unknown, null, undefined>;
  private edges: Selection<SVGPathElement, Edge, SVGGElement, unknown> | null = null;
  lastRenderMs = 0;

  constructor(
    root: HTMLElement,
    private readonly onTokenClick: (index: number) => void,
  ) {
    this.svg = select(root).append("svg").attr("class", "attention-svg").attr("role", "img");
  }

  /** Draw one layer; returns the milliseconds spent (aggregation + DOM), also on `data-render-ms`. */
  render(tokens: Token[], attention: AttentionLayers, opts: AttentionOptions): number {
    const started = performance.now();
    const layer = attention.layers.get(opts.layer);
    const visible = visibleTokens(tokens, opts.hideSpecial);
    const y = new Map(visible.map((index, row) => [index, TOP + row * ROW + ROW / 2]));
    const x0 = LABEL_W + 6;
    const x1 = LABEL_W + GAP - 6;
    const width = 2 * LABEL_W + GAP;
    this.svg
      .attr("viewBox", `0 0 ${width} ${TOP + visible.length * ROW + 8}`)
      .attr("width", width)
      .attr("height", TOP + visible.length * ROW + 8)
      .attr("aria-label", `attention of layer ${opts.layer}`);
    this.svg.selectAll("*").remove();
    this.svg.classed("focus", false);

    const titles = this.svg.append("g").attr("class", "titles");
    titles.append("text").attr("x", LABEL_W).attr("y", 16).attr("text-anchor", "end").text("from ▸");
    titles.append("text").attr("x", LABEL_W + GAP).attr("y", 16).text("▸ attends to");

    const edges: Edge[] = [];
    if (layer && opts.heads.length) {
      const agg = aggregateHeads(layer, attention.n, opts.heads, opts.agg);
      edges.push(...attentionEdges(agg, attention.n, visible, MIN_WEIGHT));
    }
    this.edges = this.svg
      .append("g")
      .attr("class", "edges")
      .selectAll<SVGPathElement, Edge>("path")
      .data(edges)
      .join("path")
      .attr("class", "edge")
      .attr("d", (e) => curvePath(x0, y.get(e.from)!, x1, y.get(e.to)!))
      .attr("stroke", (e) => headColor(e.head, attention.nHeads))
      .attr("stroke-opacity", (e) => edgeOpacity(e.weight));

    const shown = visible.map((i) => tokens[i]);
    this.column(shown, y, "left", LABEL_W, opts.selected);
    this.column(shown, y, "right", LABEL_W + GAP, opts.selected);

    this.lastRenderMs = performance.now() - started;
    this.svg.attr("data-render-ms", this.lastRenderMs.toFixed(1)).attr("data-edges", edges.length);
    return this.lastRenderMs;
  }

  private column(tokens: Token[], y: Map<number, number>, side: "left" | "right", x: number, selected: number | null) {
    const g = this.svg
      .append("g")
      .attr("class", `tokens ${side}`)
      .selectAll<SVGGElement, Token>("g")
      .data(tokens)
      .join("g")
      .attr("class", (t) =>
        ["token", t.special ? "special" : "", t.masked ? "masked" : "", t.segment === 1 ? "pair" : "", t.index === selected ? "selected" : ""]
          .filter(Boolean)
          .join(" "),
      )
      .attr("data-index", (t) => t.index)
      .attr("transform", (t) => `translate(${x},${y.get(t.index)})`)
      .on("mouseenter", (_event, t) => this.isolate(t.index, side))
      .on("mouseleave", () => this.isolate(null, side))
      .on("click", (_event, t) => this.onTokenClick(t.index));
    g.append("rect")
      .attr("x", side === "left" ? -LABEL_W + 4 : 0)
      .attr("y", -ROW / 2 + 1)
      .attr("width", LABEL_W - 4)
      .attr("height", ROW - 2)
      .attr("rx", 3);
    g.append("text")
      .attr("x", side === "left" ? -4 : 4)
      .attr("dy", "0.35em")
      .attr("text-anchor", side === "left" ? "end" : "start")
      .text((t) => short(tokenLabel(t)));
    g.append("title").text((t) => `#${t.index} ${t.text}${t.masked ? " (masked)" : ""}`);
  }

  /**
   * Hovering a token shows only its edges: outgoing on the left, incoming on the right,
   * rescaled so its strongest edge is opaque (much weight may sit on hidden special tokens).
   */
  private isolate(index: number | null, side: "left" | "right") {
    this.svg.classed("focus", index !== null);
    this.svg.selectAll<SVGGElement, Token>("g.token").classed("hover", (t) => t.index === index);
    if (!this.edges) return;
    const end = (e: Edge) => (side === "left" ? e.from : e.to);
    const on = index === null ? null : this.edges.filter((e) => end(e) === index);
    this.edges.classed("on", false).style("stroke-opacity", null);
    if (!on || on.empty()) return;
    const strongest = Math.max(...on.data().map((e) => e.weight));
    on.classed("on", true).style("stroke-opacity", (e) => edgeOpacity(e.weight / strongest));
  }
}

/** The line above the curves: tokens, layer, heads shown, prediction, truncation. */
export function attentionNotes(r: AttentionResponse, layer: number, nHeads: number, agg: Aggregation, combined?: string): string {
  const heads = combined ? `${combined} of all ${r.model.n_heads} heads (combined on the server)` : `${nHeads} of ${r.model.n_heads} heads (${agg})`;
  const notes = [`${r.tokens.length} tokens · layer ${layer} · ${heads}`];
  if (r.prediction) {
    notes.push(`predicted ${r.prediction.label} (${(r.prediction.probabilities[r.prediction.label] * 100).toFixed(1)}%)`);
  }
  if (r.truncated) notes.push(`truncated: ${r.n_tokens_dropped} of ${r.n_tokens_input} tokens dropped`);
  return notes.join(" · ");
}

/** The app's attention view: redrawn when the attention or what selects from it changes. */
export class AttentionPanel {
  readonly view: AttentionView;

  constructor(
    graph: HTMLElement,
    private readonly notes: HTMLElement,
    private readonly store: AppStore,
    onTokenClick: (index: number) => void,
  ) {
    this.view = new AttentionView(graph, onTokenClick);
    store.subscribe(["view", "loaded", "layer", "heads", "agg", "hideSpecial", "token"], () => this.draw());
    // Only the hint follows the text (a redraw per keystroke would be wasted).
    store.subscribe(["text"], (s) => {
      if (!s.loaded) this.draw();
    });
  }

  draw() {
    const s = this.store.state;
    if (s.view !== "attention") return;
    if (!s.loaded) {
      this.notes.textContent = s.text ? "" : "Type a text and press Run.";
      return;
    }
    const { response, attention } = s.loaded;
    // Heads combined on the server (a long prompt): its one map, whatever heads are toggled.
    const heads = attention.aggregate ? [0] : selectedHeads(s, attention.nHeads);
    this.view.render(response.tokens, attention, { layer: s.layer, heads, agg: s.agg, hideSpecial: s.hideSpecial, selected: s.token });
    const long = longPromptNote(s.loaded);
    this.notes.textContent = attentionNotes(response, s.layer, heads.length, s.agg, attention.aggregate);
    this.notes.classList.toggle("long-note", Boolean(long));
    if (long) this.notes.textContent += ` · ${long}`;
  }
}
