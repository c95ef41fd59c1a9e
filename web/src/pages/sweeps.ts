// Sweeps: the list (#/sweeps) and one sweep (#/sweeps/ID): trials, objective over time,
// parallel coordinates of the parameters against the objective (SVG), parameter importance and
// the per-level/term diagnosis of the best trial.
import { get, post } from "../api";
import { h, replace } from "../dom";
import { relativeTime } from "../format";
import { href } from "../router";
import { card, emptyState, errorState, loading, pageHeader, stateBadge, toast } from "../components/ui";

interface Trial {
  job_id: number;
  number: number;
  state: string;
  trial_state: string | null;
  params: Record<string, number | string | boolean>;
  value: number | null;
  error: string | null;
  created_at: string;
  finished_at: string | null;
}

interface Sweep {
  id: number;
  name: string;
  state: string;
  config: { method: string; objective: string; direction: string; trials: number; parallel: number; space: Record<string, unknown> };
  best_job_id: number | null;
  best_value: number | null;
  final_job_id: number | null;
  importance: Record<string, number> | null;
  error: string | null;
  counts: Record<string, number>;
  created_at: string;
  trials: Trial[] | null;
}

interface Best {
  job_id: number;
  number: number;
  value: number;
  diagnosis: { grad: Record<string, unknown> | null; absorbed: Record<string, number> | null };
}

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 240;
const PAD = 32;

function svg(tag: string, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

function fmt(value: unknown): string {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(3);
  return value === null || value === undefined ? "–" : String(value);
}

function trialState(t: Trial): string {
  return t.trial_state && t.trial_state !== "running" ? t.trial_state : t.state;
}

function scale(values: number[]): (v: number) => number {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return (v) => (hi === lo ? 0.5 : (v - lo) / (hi - lo));
}

/** The objective of each finished trial by trial number (pruned trials at their last score). */
function objectivePlot(trials: Trial[]): SVGElement {
  const done = trials.filter((t) => t.value !== null);
  const plot = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "sweep-objective", style: "max-height:260px;width:100%", role: "img", "aria-label": "objective by trial" });
  plot.append(svg("line", { x1: PAD, y1: HEIGHT - PAD, x2: WIDTH - PAD, y2: HEIGHT - PAD, stroke: "currentColor", "stroke-opacity": 0.3 }));
  if (!done.length) return plot;
  const x = scale(trials.map((t) => t.number));
  const y = scale(done.map((t) => t.value as number));
  for (const t of done) {
    const cx = PAD + x(t.number) * (WIDTH - 2 * PAD);
    const cy = HEIGHT - PAD - y(t.value as number) * (HEIGHT - 2 * PAD);
    const fill = t.trial_state === "pruned" ? "#999" : "#2f7de1";
    plot.append(svg("circle", { cx, cy, r: 5, fill }, svg("title", {}, `#${t.number}: ${fmt(t.value)} (${trialState(t)})`)));
  }
  return plot;
}

/** Parallel coordinates: one axis per parameter and one for the objective, a line per trial. */
function parallelPlot(trials: Trial[], paths: string[]): SVGElement {
  const axes = [...paths, "objective"];
  const plot = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "sweep-parallel", style: "max-height:260px;width:100%", role: "img", "aria-label": "parallel coordinates" });
  const done = trials.filter((t) => t.value !== null);
  const xs = axes.map((_, i) => PAD + (axes.length === 1 ? 0.5 : i / (axes.length - 1)) * (WIDTH - 2 * PAD));
  const scales = axes.map((axis) => {
    const raw = done.map((t) => (axis === "objective" ? t.value : t.params[axis]));
    const numeric = raw.every((v) => typeof v === "number");
    if (numeric) return scale(raw as number[]);
    const categories = [...new Set(raw.map(String))];
    return (v: number | string) => (categories.length < 2 ? 0.5 : categories.indexOf(String(v)) / (categories.length - 1));
  }) as ((v: number | string) => number)[];
  axes.forEach((axis, i) => {
    plot.append(svg("line", { x1: xs[i], y1: PAD, x2: xs[i], y2: HEIGHT - PAD, stroke: "currentColor", "stroke-opacity": 0.4 }));
    plot.append(svg("text", { x: xs[i], y: HEIGHT - 8, "text-anchor": "middle", "font-size": 10 }, axis.replace(/^distill\./, "")));
  });
  const colour = scale(done.map((t) => t.value as number));
  for (const t of done) {
    const points = axes.map((axis, i) => {
      const v = axis === "objective" ? (t.value as number) : (t.params[axis] as number | string);
      return `${xs[i]},${HEIGHT - PAD - scales[i](v) * (HEIGHT - 2 * PAD)}`;
    });
    const hue = Math.round(220 - 180 * colour(t.value as number));
    plot.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: `hsl(${hue} 70% 45%)`, "stroke-width": 2 }, svg("title", {}, `#${t.number}: ${fmt(t.value)}`)));
  }
  return plot;
}

function importanceBars(importance: Record<string, number> | null): HTMLElement {
  if (!importance || !Object.keys(importance).length) return h("p", { class: "muted" }, "Importance needs at least two completed trials with different scores.");
  const ranked = Object.entries(importance).sort((a, b) => b[1] - a[1]);
  return h(
    "table",
    { class: "table sweep-importance" },
    h("tbody", null, ranked.map(([name, share]) => h("tr", null, h("td", null, name), h("td", null, h("div", { class: "bar", style: `width:${Math.round(share * 200)}px;background:#2f7de1;height:10px` })), h("td", null, `${Math.round(share * 100)} %`)))),
  );
}

function diagnosis(best: Best | null): HTMLElement {
  const grad = best?.diagnosis.grad;
  if (!best || !grad) return h("p", { class: "muted" }, "No gradient diagnosis for the best trial (distill.diagnose_every was 0 or no trial completed).");
  const rows = Object.entries(grad)
    .filter(([name]) => name !== "steps")
    .map(([name, stats]) => {
      const s = (stats ?? {}) as Record<string, number>;
      return h("tr", null, h("td", null, name), h("td", null, fmt(s.first)), h("td", null, fmt(s.mean)), h("td", null, fmt(s.last)));
    });
  return h(
    "table",
    { class: "table sweep-diagnosis" },
    h("thead", null, h("tr", null, h("th", null, "term"), h("th", null, "first"), h("th", null, "mean"), h("th", null, "last"))),
    h("tbody", null, rows),
  );
}

function trialTable(sweep: Sweep, trials: Trial[]): HTMLElement {
  const paths = Object.keys(sweep.config.space);
  return h(
    "table",
    { class: "table sweep-trials" },
    h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "job"), h("th", null, "state"), h("th", null, sweep.config.objective), paths.map((p) => h("th", null, p)))),
    h(
      "tbody",
      null,
      trials.map((t) =>
        h(
          "tr",
          { class: t.job_id === sweep.best_job_id ? "best" : "" },
          h("td", null, String(t.number)),
          h("td", null, h("a", { href: href(`/jobs/${t.job_id}`) }, `job ${t.job_id}`)),
          h("td", null, stateBadge(trialState(t))),
          h("td", null, fmt(t.value)),
          paths.map((p) => h("td", null, fmt(t.params[p]))),
        ),
      ),
    ),
  );
}

/** The team's sweeps. */
export function renderSweeps(main: HTMLElement): void {
  replace(main, pageHeader("Sweeps", "Searches over distillation weights; each trial is a job."), loading());
  void get<{ data: Sweep[]; count: number }>("/sweeps", { limit: 100 }).then(
    (res) => {
      const body = res.data.length
        ? h(
            "table",
            { class: "table", id: "sweep-list" },
            h("thead", null, h("tr", null, ["Sweep", "State", "Method", "Trials", "Objective", "Best", "Created"].map((c) => h("th", null, c)))),
            h(
              "tbody",
              null,
              res.data.map((s) =>
                h(
                  "tr",
                  null,
                  h("td", null, h("a", { href: href(`/sweeps/${s.id}`) }, s.name)),
                  h("td", null, stateBadge(s.state)),
                  h("td", null, s.config.method),
                  h("td", null, `${s.counts.total ?? 0} / ${s.config.trials}`),
                  h("td", null, s.config.objective),
                  h("td", null, fmt(s.best_value)),
                  h("td", null, relativeTime(s.created_at)),
                ),
              ),
            ),
          )
        : emptyState("No sweeps yet", "Start one with `distillery sweep SPEC --space SPACE.yaml`.");
      replace(main, pageHeader("Sweeps", "Searches over distillation weights; each trial is a job."), card(null, body));
    },
    (err: Error) => replace(main, errorState(err.message, () => renderSweeps(main))),
  );
}

/** One sweep; polls while it runs. */
export function renderSweep(main: HTMLElement, id: number): () => void {
  let timer: number | undefined;
  let stopped = false;
  const action = (verb: string) => () =>
    void post<Sweep>(`/sweeps/${id}/${verb}`).then(
      () => void load(),
      (err: Error) => toast(err.message, "error"),
    );
  const load = async (): Promise<void> => {
    try {
      const sweep = await get<Sweep>(`/sweeps/${id}`);
      const best = sweep.best_job_id ? await get<Best>(`/sweeps/${id}/best`).catch(() => null) : null;
      if (stopped) return;
      const trials = sweep.trials ?? [];
      const paths = Object.keys(sweep.config.space);
      const buttons = [
        sweep.state === "running" ? h("button", { class: "btn", type: "button", id: "sweep-pause", onclick: action("pause") }, "Pause") : null,
        sweep.state === "paused" ? h("button", { class: "btn", type: "button", id: "sweep-resume", onclick: action("resume") }, "Resume") : null,
        ["running", "paused"].includes(sweep.state) ? h("button", { class: "btn btn-ghost", type: "button", onclick: action("cancel") }, "Cancel") : null,
        sweep.best_job_id
          ? h("button", { class: "btn", type: "button", id: "sweep-final", onclick: () => void post<{ job_id: number }>(`/sweeps/${id}/final-run`, { split: "test" }).then((r) => toast(`Queued job ${r.job_id} on the test split`, "success"), (err: Error) => toast(err.message, "error")) }, "Run best on test")
          : null,
      ];
      const summary = `${sweep.config.method}, ${sweep.counts.total ?? 0} of ${sweep.config.trials} trials, ${sweep.config.parallel} at once; best val ${sweep.config.objective} ${fmt(sweep.best_value)}`;
      replace(
        main,
        pageHeader(h("span", null, sweep.name, " ", stateBadge(sweep.state)), summary, ...buttons),
        sweep.error ? errorState(sweep.error) : null,
        card("Trials", trials.length ? trialTable(sweep, trials) : h("p", { class: "muted" }, "No trial yet.")),
        card("Objective by trial", objectivePlot(trials)),
        card("Parameters against the objective", parallelPlot(trials, paths)),
        card("Parameter importance (fANOVA)", importanceBars(sweep.importance)),
        card(best ? `Diagnosis of the best trial (#${best.number}, job ${best.job_id})` : "Diagnosis of the best trial", diagnosis(best), best ? h("a", { href: href(`/jobs/${best.job_id}`) }, "The student and its report") : null),
      );
      if (["running", "paused"].includes(sweep.state)) timer = window.setTimeout(() => void load(), 3000);
    } catch (err) {
      if (!stopped) replace(main, errorState((err as Error).message, () => void load()));
    }
  };
  replace(main, loading());
  void load();
  return () => {
    stopped = true;
    if (timer !== undefined) window.clearTimeout(timer);
  };
}
