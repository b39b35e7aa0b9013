// The predictions panel beside the attention curves: the selected token's top-k guesses
// (masked LMs at the token, causal LMs after it), or what a click would do.

import type { AppStore } from "../session";
import { tokenLabel } from "../transforms";
import type { ModelDetails, Token } from "../types";

/**
 * The side panel: top-k guesses for the selected token, or what a click would do. `offline`
 * (the standalone page, no server): a click only selects a token and shows its predictions.
 */
export function renderPredictions(
  panel: HTMLElement, model: ModelDetails, tokens: Token[], selected: number | null, masked: number[], offline = false,
) {
  panel.replaceChildren();
  const h = document.createElement("h3");
  const note = document.createElement("p");
  note.className = "hint";
  panel.append(h, note);
  const kind = model.predictions;
  const token = selected !== null ? tokens[selected] : undefined;
  if (!token) {
    h.textContent = "Predictions";
    note.textContent = offline
      ? kind === "next-token"
        ? "Click a token to see the model's next-token predictions after it."
        : kind
          ? "Click a token to see the model's predictions at it."
          : `${model.name} has no LM head: nothing to predict.`
      : model.mask_token
      ? `Click a token to replace it with ${model.mask_token} and run again.` +
        (kind ? "" : ` ${model.name} is a bare encoder (no LM head): masking changes the attention, but there are no predictions.`)
      : kind === "next-token"
        ? "Click a token to see the model's next-token predictions after it."
        : `${model.name} has neither a mask token nor an LM head: nothing to predict.`;
  } else {
    const label = tokenLabel(token);
    h.textContent = kind === "next-token" ? `Next token after “${label}”` : `Predictions at “${label}”`;
    note.textContent = token.masked
      ? `Masked with ${model.mask_token}${offline ? "." : "; click it again to unmask."}`
      : kind === "next-token"
        ? `Position ${token.index}: what the model expects to follow.`
        : `Position ${token.index}.`;
    if (!token.predictions) {
      const none = document.createElement("p");
      none.className = "no-predictions";
      none.textContent = `${model.name} has no LM head, so it makes no predictions.`;
      panel.append(none);
    } else {
      const list = document.createElement("ol");
      list.className = "predictions";
      for (const p of token.predictions) {
        const li = document.createElement("li");
        const word = document.createElement("span");
        word.className = "word";
        word.textContent = JSON.stringify(p.text).slice(1, -1) || p.token;
        word.title = `${p.token} (id ${p.id})`;
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.style.setProperty("--w", `${(p.prob * 100).toFixed(1)}%`);
        const prob = document.createElement("span");
        prob.className = "prob";
        prob.textContent = `${(p.prob * 100).toFixed(1)}%`;
        li.append(word, bar, prob);
        list.append(li);
      }
      panel.append(list);
    }
  }
  if (masked.length && !offline) {
    const clear = document.createElement("button");
    clear.type = "button";
    clear.id = "unmask";
    clear.className = "secondary";
    clear.textContent = `Unmask all (${masked.length})`;
    panel.append(clear);
  }
}


/** The panel of the app: redrawn when the attention, the selected token or the mask change;
 * its "Unmask all" button clears the mask (the app runs the attention again). */
export class PredictionsView {
  constructor(
    private readonly panel: HTMLElement,
    private readonly store: AppStore,
    onUnmask: () => void,
  ) {
    panel.addEventListener("click", (e) => {
      if ((e.target as HTMLElement).id === "unmask") onUnmask();
    });
    store.subscribe(["view", "loaded", "token", "mask"], () => this.draw());
  }

  draw() {
    const s = this.store.state;
    if (s.view !== "attention" || !s.loaded) return;
    renderPredictions(this.panel, s.loaded.model, s.loaded.response.tokens, s.token, s.mask);
  }
}
