// Compare: overlaid curves, a metrics table with the best per column marked, the spec differences.
import { get } from "../api";
import { LineChart, PALETTE } from "../charts";
import { h, replace } from "../dom";
import { ap, apReason, archLabel, evaluatedOn, hasSpread, latenciesOverlap, latencyFigure, num, type LatencyFigure } from "../format";
import { href, navigate } from "../router";
import { loadSpecCatalog } from "../spec";
import { realDifferences } from "../specfill";
import { ema } from "../smoothing";
import { inSequence } from "../stages";
import type { CompareResult, Job, JobPage, JobSummary, MetricPointRow, ModelEfficiency, SpecCatalog } from "../types";
import { scratchCpuRun } from "../components/metric";
import { card, emptyState, errorState, loading, pageHeader, stateBadge } from "../components/ui";

/** A lead in AP smaller than this (0.5 point) is within what a re-run or another val sample moves. */
export const AP_NOISE = 0.005;

const METRIC_ORDER = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "params", "gflops", "latency_ms", "onnx_latency_ms", "latency"];
// Parameters, compute, latency and student/teacher ratios: smaller is better.
const LOWER_IS_BETTER = /params|gflops|latency|ratios|loss/i;

function leaf(name: string): string {
  return name.split("/").pop() ?? name;
}

function isApMetric(name: string): boolean {
  return /^AP/.test(leaf(name));
}

function metricLabel(name: string, full = false): string {
  const n = leaf(name);
  const words: Record<string, string> = { latency_ms: "Latency, PyTorch", onnx_latency_ms: "Latency, ONNX Runtime", gflops: "GFLOPs", params: "Params", latency: "Latency" };
  const label = words[n] ?? n.replace("_", " ");
  if (!full) return label;
  const prefix = name.split("/").slice(0, -1).join(" ").replace("efficiency ", "");
  return prefix ? `${prefix} ${label}` : label;
}

function jobLabel(job: Job | JobSummary): string {
  return `#${job.id} ${job.name || job.kind}`;
}

function picker(selected: number[]): HTMLElement {
  const host = h("div", null, loading());
  const chosen = new Set(selected);
  void get<JobPage>("/jobs", { limit: 50 }).then(
    (res) => {
      if (!res.data.length) {
        replace(host, emptyState("No jobs to compare", "Run two jobs on the same dataset, then compare them here."));
        return;
      }
      const apply = h("button", { class: "btn btn-primary", type: "button", id: "compare-apply", onclick: () => navigate(href("/compare", { jobs: [...chosen].sort((a, b) => a - b).join(",") })) }, "Compare");
      const update = () => (apply.disabled = chosen.size < 2);
      update();
      replace(
        host,
        h(
          "ul",
          { class: "pick-list", id: "compare-picker" },
          res.data.map((j) =>
            h(
              "li",
              null,
              h(
                "label",
                null,
                h("input", {
                  type: "checkbox",
                  value: j.id,
                  checked: chosen.has(j.id),
                  onchange: (e: Event) => {
                    if ((e.target as HTMLInputElement).checked) chosen.add(j.id);
                    else chosen.delete(j.id);
                    update();
                  },
                }),
                " ",
                jobLabel(j),
                " ",
                stateBadge(j.state),
                h("span", { class: "muted" }, ` ${archLabel(j.spec_summary.student_arch ?? j.spec_summary.teacher_arch)}`),
              ),
            ),
          ),
        ),
        h("div", { class: "form-actions" }, apply),
      );
    },
    (err: Error) => replace(host, errorState(err.message)),
  );
  return host;
}

/** The compare page; returns its cleanup (frees charts). */
export function renderCompare(main: HTMLElement, query: URLSearchParams): () => void {
  const ids = (query.get("jobs") ?? "")
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
  const charts: LineChart[] = [];
  if (ids.length < 2) {
    replace(main, pageHeader("Compare", "Pick two or more jobs: curves overlaid, metrics side by side, and what differs in their specs."), card("Choose jobs", picker(ids)));
    return () => undefined;
  }
  replace(main, loading());
  void (async () => {
    let result: CompareResult;
    try {
      result = await get<CompareResult>("/compare", { jobs: ids.join(",") });
    } catch (err) {
      replace(main, pageHeader("Compare"), errorState((err as Error).message), card("Choose jobs", picker(ids)));
      return;
    }
    const jobs = result.jobs;
    const colors = jobs.map((_, i) => PALETTE[i % PALETTE.length]);

    // Metrics: the API's table (name -> one value per job), in a familiar order.
    const metrics = (result.metrics ?? {}) as Record<string, (number | string | null)[]>;
    const order = (a: string, b: string) => {
      const ia = METRIC_ORDER.indexOf(leaf(a));
      const ib = METRIC_ORDER.indexOf(leaf(b));
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    };
    const all = Object.keys(metrics);
    // The student's figures first (what a comparison is for); teachers and ratios below.
    const primary = all.filter((n) => n.startsWith("student/") || n.startsWith("efficiency/student/") || !n.includes("/")).sort(order);
    const secondary = all.filter((n) => !primary.includes(n)).sort((a, b) => a.localeCompare(b));
    // A star only where the lead exceeds the noise: parameters and GFLOPs are exact; AP must
    // lead by more than AP_NOISE; latency only when the p10–p90 ranges do not overlap.
    const latencyOfCell = (name: string, i: number): LatencyFigure | null => {
      const m = /^efficiency\/(student|teacher)\/(onnx_)?latency_ms$/.exec(name);
      if (!m) return null;
      const e = jobs[i].metrics?.efficiency?.[m[1] as "student" | "teacher"] as ModelEfficiency | null | undefined;
      return latencyFigure(e as Record<string, unknown> | null | undefined, Boolean(m[2]));
    };
    const best = new Map<string, number>();
    for (const name of all) {
      if (/ratios|^teacher\/|efficiency\/teacher/.test(name)) continue; // shared teachers, derived ratios: nothing to rank
      const values = metrics[name].map((v) => (typeof v === "number" && Number.isFinite(v) && !(isApMetric(name) && v < 0) ? v : null));
      const valid = values.map((v, i) => ({ v, i })).filter((x): x is { v: number; i: number } => x.v !== null);
      if (valid.length < 2) continue;
      const lower = LOWER_IS_BETTER.test(name);
      valid.sort((a, b) => (lower ? a.v - b.v : b.v - a.v));
      const [first, second] = valid;
      const lead = Math.abs(first.v - second.v);
      if (lead === 0) continue;
      if (isApMetric(name) && lead <= AP_NOISE) continue;
      if (/latency/.test(name)) {
        // Every other job's range must lie clear of the fastest one's, not only the runner-up's.
        const fastest = latencyOfCell(name, first.i);
        if (!hasSpread(fastest) || valid.slice(1).some((o) => latenciesOverlap(fastest, latencyOfCell(name, o.i)))) continue;
      }
      best.set(name, first.v);
    }
    const scratch = jobs.map((j) => scratchCpuRun(j));
    const fmt = (name: string, v: number | string | null, i: number): string | HTMLElement => {
      if (typeof v !== "number") return v === null ? "—" : String(v);
      if (isApMetric(name)) return ap(v);
      const f = latencyOfCell(name, i);
      if (f) {
        // Median ± half the p10–p90 range, with the runs and device beneath in small type.
        const head = hasSpread(f) ? `${num(f.median)} ± ${num((f.p90 - f.p10) / 2, 2)} ms` : `${num(f.median)} ms`;
        const sub = hasSpread(f) ? `n = ${f.repeats ?? "?"}${f.device ? `, ${f.device}` : ""}` : "spread not measured";
        return h("span", { class: "latency", "data-spread": hasSpread(f) ? "measured" : "none" }, head, h("span", { class: "sub latency-sub" }, sub));
      }
      return num(v);
    };
    // Which split and how many images each job's AP comes from ("val · 40 images").
    const evaluations = jobs.map((j) => evaluatedOn(j));
    const evalCell = (i: number) => {
      const on = evaluations[i];
      return on
        ? h("td", { class: "eval-caption", "data-split": on.split, "data-images": on.images }, on.caption)
        : h("td", { class: "eval-caption muted", title: "this job's metrics do not say" }, "—");
    };
    const captions = new Set(evaluations.filter((e) => e !== null).map((e) => e.caption));
    const evalWarning =
      captions.size > 1
        ? h("p", { class: "alert alert-warn", id: "compare-evaluations-differ" }, "These jobs were evaluated on different splits, numbers of images or with and without slicing: their AP figures are not directly comparable.")
        : null;
    const why = (name: string, v: number | string | null, i: number) => (isApMetric(name) && typeof v === "number" ? apReason(v, { scratchCpu: scratch[i] }) : null);
    const table = (names: string[], id: string, full: boolean) =>
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table compare-metrics", id },
          h("thead", null, h("tr", null, h("th", null, "Job"), h("th", { title: "the split and the number of its images the figures come from" }, "Evaluated on"), names.map((n) => h("th", { class: `num${/AP_small/.test(n) ? " highlight" : ""}`, title: n, "data-metric": n }, metricLabel(n, full))))),
          h(
            "tbody",
            null,
            jobs.map((j, i) =>
              h(
                "tr",
                { "data-job-id": j.id },
                h("th", { scope: "row" }, h("span", { class: "dot", style: `background:${colors[i]}` }), h("a", { href: `#/jobs/${j.id}` }, jobLabel(j))),
                evalCell(i),
                names.map((n) => {
                  const v = metrics[n][i];
                  const isBest = best.has(n) && typeof v === "number" && v === best.get(n);
                  const reason = why(n, v, i);
                  return h(
                    "td",
                    { class: `num${isBest ? " best" : ""}`, "data-best": isBest ? "true" : null, title: isBest ? "best in this column, by more than the noise" : reason },
                    isApMetric(n) ? h("span", { class: "ap", "data-ap": typeof v === "number" ? v : "" }, fmt(n, v, i)) : fmt(n, v, i),
                    reason && typeof v === "number" && v >= 0 ? h("sup", { class: "why", title: reason }, "†") : null,
                    isBest ? h("span", { class: "best-mark", "aria-label": "best" }, " ★") : null,
                  );
                }),
              ),
            ),
          ),
        ),
      );
    const metricsTable = all.length
      ? h(
          "div",
          null,
          table(primary, "compare-metrics", false),
          secondary.length ? h("details", null, h("summary", null, "Teachers, efficiency ratios and other figures"), table(secondary, "compare-metrics-more", true)) : null,
        )
      : h("p", { class: "muted" }, "None of these jobs has metrics yet.");

    // The real differences: canonical specs with core/spec.py's defaults filled (server's catalog).
    let catalog: SpecCatalog | null = null;
    try {
      catalog = await loadSpecCatalog();
    } catch {
      catalog = null;
    }
    const diff = catalog ? realDifferences(jobs.map((j) => j.spec), catalog) : (result.spec_diff ?? []);
    const hashes = h(
      "p",
      { class: "muted", id: "spec-hashes" },
      "Spec hashes (as stored, the ones report.md and metrics.json carry): ",
      jobs.map((j, i) => [i ? " · " : "", `#${j.id} `, h("code", { "data-job-id": j.id }, j.spec_hash || "—")]),
    );
    const diffTable = diff.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "table spec-diff", id: "spec-diff" },
            h("thead", null, h("tr", null, h("th", null, "Spec field"), jobs.map((j, i) => h("th", null, h("span", { class: "dot", style: `background:${colors[i]}` }), `#${j.id}`)))),
            h(
              "tbody",
              null,
              diff.map((d) => h("tr", { "data-path": d.path }, h("th", { scope: "row" }, h("code", null, d.path)), d.values.map((v) => h("td", null, v === null || v === undefined ? h("span", { class: "muted" }, "—") : typeof v === "object" ? JSON.stringify(v) : String(v))))),
            ),
          ),
        )
      : h("p", { class: "muted" }, "The specs are identical once defaults are filled in (names aside).");

    // Curves: every series the jobs share, one small chart each, smoothed, by step/epoch/time.
    const series = await Promise.all(
      jobs.map((j) => get<{ series: Record<string, MetricPointRow[]> }>(`/jobs/${j.id}/metrics`).then((r) => r.series ?? {}, () => ({}) as Record<string, MetricPointRow[]>)),
    );
    const curvesCard = curveGrid(jobs, series, colors, charts, query);
    replace(
      main,
      pageHeader("Compare", `${jobs.length} jobs`, h("a", { class: "btn", href: "#/compare" }, "Choose other jobs")),
      card(
        "Metrics",
        h(
          "p",
          { class: "muted" },
          "The student's COCO AP (%) and cost, with the split and number of images each job was evaluated on. ★ marks the best value in a column only where it leads by more than the noise: any difference in parameters or GFLOPs, more than 0.5 AP points, latency only when its p10–p90 range lies clear of every other job's (a median without a spread gets no star). Latency: median ± half the p10–p90 range (runs, device). † AP from a run trained from scratch for a few CPU minutes, or n/a: no object of this size.",
        ),
        evalWarning,
        metricsTable,
      ),
      curvesCard,
      card("What differs in the specs", hashes, diffTable),
    );
  })();
  return () => charts.forEach((c) => c.destroy());
}

type XAxis = "step" | "epoch" | "time";

const X_LABELS: Record<XAxis, string> = { step: "step (all stages in sequence)", epoch: "epoch (all stages in sequence)", time: "wall time (s)" };

/** A series' points as (x, value) on the chosen axis: global step, epoch or seconds. */
function alongAxis(points: MetricPointRow[], axis: XAxis): { x: number; value: number }[] {
  if (axis === "time") return points.filter((p) => typeof p.wall_time === "number").map((p) => ({ x: p.wall_time as number, value: p.value })).sort((a, b) => a.x - b.x);
  if (axis === "step") {
    if (points.length && points.every((p) => typeof p.global_step === "number")) return points.map((p) => ({ x: p.global_step as number, value: p.value })).sort((a, b) => a.x - b.x);
    // Points stored without a stage: a restarted step starts the next stage.
    return inSequence(points.map((p) => ({ step: p.step, value: p.value }))).points.map((p) => ({ x: p.x, value: p.value }));
  }
  // Epochs restart with each stage too: each stage continues after the previous one's last.
  const byStage = new Map<string, MetricPointRow[]>();
  for (const p of points) byStage.set(p.stage ?? "", [...(byStage.get(p.stage ?? "") ?? []), p]);
  const order = [...byStage.keys()].sort((a, b) => Math.min(...byStage.get(a)!.map((p) => p.global_step ?? 0)) - Math.min(...byStage.get(b)!.map((p) => p.global_step ?? 0)));
  const out: { x: number; value: number }[] = [];
  let offset = 0;
  for (const stage of order) {
    const pts = byStage.get(stage)!;
    for (const p of pts) out.push({ x: (p.epoch ?? 0) + offset, value: p.value });
    offset += Math.max(...pts.map((p) => p.epoch ?? 0));
  }
  return out.sort((a, b) => a.x - b.x);
}

/** Every scalar series the jobs share as a grid of small charts, with an EMA slider and the x axis. */
function curveGrid(
  jobs: Job[],
  series: Record<string, MetricPointRow[]>[],
  colors: string[],
  charts: LineChart[],
  query: URLSearchParams,
): HTMLElement {
  // COCO's -1 ("no object of this size") is no point on a curve: such a series is left out.
  const usable = (name: string, p: MetricPointRow) => !(name.startsWith("eval/") && p.value < 0);
  const withPoints = series.map((s) => new Set(Object.keys(s).filter((n) => (s[n] ?? []).some((p) => usable(n, p)))));
  const union = [...new Set(withPoints.flatMap((s) => [...s]))].sort();
  const shared = union.filter((n) => withPoints.every((s) => s.has(n)));
  const names = shared.length ? shared : union;
  if (!names.length) return card("Curves", h("p", { class: "muted" }, "No curves recorded yet."));
  let weight = Math.min(Math.max(Number(query.get("smoothing") ?? 0.6), 0), 0.99);
  if (!Number.isFinite(weight)) weight = 0.6;
  let axis: XAxis = (["step", "epoch", "time"] as XAxis[]).includes(query.get("x") as XAxis) ? (query.get("x") as XAxis) : "step";
  const grid = h("div", { class: "chart-grid compare-grid", id: "compare-grid" });
  const made = names.map((name) => {
    const chart = new LineChart(name, { id: `cmp:${name}`, height: 170, xLabel: X_LABELS[axis] });
    charts.push(chart);
    grid.append(chart.element);
    return { name, chart };
  });
  const draw = () => {
    grid.dataset.smoothing = String(weight);
    grid.dataset.x = axis;
    for (const { name, chart } of made) {
      chart.setXLabel(X_LABELS[axis]);
      jobs.forEach((j, i) => {
        const pts = alongAxis((series[i][name] ?? []).filter((p) => usable(name, p)), axis);
        const scale = name.startsWith("eval/") ? 100 : 1;
        const ys = ema(pts.map((p) => p.value * scale), weight);
        chart.setSeries(`job-${j.id}`, pts.map((p, k) => ({ x: p.x, y: ys[k] })), { color: colors[i], label: `#${j.id}` });
      });
    }
  };
  const value = h("output", { id: "compare-smoothing-value", for: "compare-smoothing" }, weight.toFixed(2));
  const slider = h("input", {
    type: "range",
    id: "compare-smoothing",
    min: "0",
    max: "0.99",
    step: "0.01",
    value: String(weight),
    "aria-label": "Smoothing (exponential moving average weight)",
    oninput: (e: Event) => {
      weight = Number((e.target as HTMLInputElement).value);
      value.textContent = weight.toFixed(2);
      draw();
    },
  });
  const axisSelect = h(
    "select",
    {
      id: "compare-xaxis",
      "aria-label": "Horizontal axis",
      onchange: (e: Event) => {
        axis = (e.target as HTMLSelectElement).value as XAxis;
        draw();
      },
    },
    (["step", "epoch", "time"] as XAxis[]).map((a) => h("option", { value: a, selected: a === axis }, a === "time" ? "wall time" : a)),
  );
  draw();
  return card(
    "Curves",
    h(
      "div",
      { class: "filters compare-controls" },
      h("label", { class: "inline-label" }, "Smoothing ", slider, " ", value),
      h("label", { class: "inline-label" }, "x axis ", axisSelect),
    ),
    h(
      "p",
      { class: "muted", id: "compare-grid-note" },
      `${names.length} series${shared.length ? " every job has" : " (no series is common to all these jobs: each shown where it exists)"}, one chart each; smoothing is TensorBoard's exponential moving average (0: the raw values). AP in %.`,
    ),
    grid,
  );
}
