// Small shared pieces: state badges, progress bars, empty and error states, buttons.
import { h } from "../dom";
import { duration } from "../format";
import type { Job, JobSummary } from "../types";

const STATE_WORDS: Record<string, string> = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  canceled: "Canceled",
  validating: "Validating",
  ready: "Ready",
  invalid: "Invalid",
};

/** A coloured badge for a job, dataset or teacher state. */
export function stateBadge(state: string): HTMLElement {
  return h("span", { class: `badge state-${state}`, "data-state": state }, STATE_WORDS[state] ?? state);
}

/** The fraction of a job done, 0..1, from its progress. */
export function jobFraction(job: Pick<Job | JobSummary, "state" | "progress">): number {
  if (job.state === "succeeded") return 1;
  const p = job.progress;
  if (!p) return 0;
  if (p.total_steps && p.step !== undefined) return Math.max(0, Math.min(1, p.step / p.total_steps));
  if (p.epochs && p.epoch !== undefined) return Math.max(0, Math.min(1, p.epoch / p.epochs));
  return 0;
}

/** A labelled progress bar (role=progressbar) with the percentage and optional ETA. */
export function progressBar(
  fraction: number,
  opts: { eta?: number | null; label?: string; stopped?: boolean; note?: string } = {},
): HTMLElement {
  const pct = Math.round(fraction * 100);
  return h(
    "div",
    { class: "progress-wrap" },
    h(
      "div",
      {
        class: "progress",
        role: "progressbar",
        "aria-valuemin": 0,
        "aria-valuemax": 100,
        "aria-valuenow": pct,
        "aria-label": opts.label ?? "Progress",
        "data-progress": pct,
      },
      h("div", { class: opts.stopped ? "progress-fill stopped" : "progress-fill", style: `width:${pct}%` }),
    ),
    h(
      "span",
      { class: "progress-text" },
      `${pct}%`,
      opts.note
        ? h("span", { class: "eta" }, ` · ${opts.note}`)
        : opts.eta !== undefined && opts.eta !== null
          ? h("span", { class: "eta" }, ` · ETA ${duration(opts.eta)}`)
          : null,
    ),
  );
}

/** A friendly empty state with an optional action. */
export function emptyState(title: string, text: string, action?: HTMLElement): HTMLElement {
  return h("div", { class: "empty", role: "status" }, h("h3", null, title), h("p", null, text), action ?? null);
}

/** An error box that says what went wrong and offers a retry when given. */
export function errorState(message: string, retry?: () => void): HTMLElement {
  return h(
    "div",
    { class: "alert alert-error", role: "alert" },
    h("strong", null, "Something went wrong. "),
    message,
    retry ? h("button", { class: "btn btn-small", type: "button", onclick: retry }, "Try again") : null,
  );
}

/** A loading placeholder. */
export function loading(text = "Loading…"): HTMLElement {
  return h("div", { class: "loading", role: "status", "aria-live": "polite" }, h("span", { class: "spinner" }), text);
}

/** A transient notice at the bottom of the screen. */
export function toast(message: string, kind: "info" | "error" | "success" = "info"): void {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div", { id: "toasts", class: "toasts", "aria-live": "polite" });
    document.body.appendChild(host);
  }
  const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  host.appendChild(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

/** A page header: title, subtitle and actions on the right. */
export function pageHeader(title: string | Node, subtitle?: string | Node | null, ...actions: (Node | null)[]): HTMLElement {
  return h(
    "div",
    { class: "page-header" },
    h("div", null, h("h1", null, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    h("div", { class: "actions" }, ...actions),
  );
}

/** A titled card section. */
export function card(title: string | null, ...children: (Node | string | null)[]): HTMLElement {
  return h("section", { class: "card" }, title ? h("h2", null, title) : null, ...children);
}
