// Progress (spinner + elapsed seconds + cancel) and the error banner, shared by all views.

import { ApiError } from "./api";

export class Status {
  private timer: number | undefined;
  private controller: AbortController | null = null;

  constructor(
    private readonly busy: HTMLElement, // #busy: spinner, label, seconds, cancel button
    private readonly error: HTMLElement, // #error: the banner
  ) {
    busy.querySelector("button")?.addEventListener("click", () => this.controller?.abort());
    error.querySelector("button")?.addEventListener("click", () => this.clearError());
  }

  /**
   * Run `work` with a spinner and a seconds counter; a newer call cancels the older one
   * (its result would be stale). Errors land in the banner; the result, or null, returns.
   */
  async track<T>(label: string, work: (signal: AbortSignal) => Promise<T>): Promise<T | null> {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.clearError();
    const started = performance.now();
    const seconds = this.busy.querySelector<HTMLElement>(".seconds")!;
    this.busy.querySelector<HTMLElement>(".label")!.textContent = label;
    seconds.textContent = "0 s";
    this.busy.hidden = false;
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => {
      seconds.textContent = `${Math.floor((performance.now() - started) / 1000)} s`;
    }, 250);
    try {
      return await work(controller.signal);
    } catch (error) {
      if (!controller.signal.aborted) this.showError(error);
      return null;
    } finally {
      if (this.controller === controller) {
        window.clearInterval(this.timer);
        this.busy.hidden = true;
        this.controller = null;
      }
    }
  }

  showError(error: unknown): void {
    const e = error instanceof ApiError ? error : new ApiError("invalid", String((error as Error)?.message ?? error));
    this.error.dataset.kind = e.kind;
    this.error.dataset.status = e.status ? String(e.status) : "";
    this.error.querySelector(".message")!.textContent = e.message;
    this.error.hidden = false;
    document.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
    // Point at the input the server complained about, where there is one.
    if (e.field) document.querySelector(`[data-field="${CSS.escape(e.field)}"]`)?.classList.add("invalid");
  }

  clearError(): void {
    this.error.hidden = true;
    document.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  }
}
