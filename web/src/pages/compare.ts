// Compare: overlaid curves, a metrics table with the best per column marked, the spec differences.
import { get } from "../api";
import { LineChart, PALETTE } from "../charts";
import { h, replace } from "../dom";
import { ap, apReason, archLabel, num } from "../format";
import { href, navigate } from "../router";
import { loadSpecCatalog } from "../spec";
import { realDifferences } from "../specfill";
import { inSequence } from "../stages";
import type { CompareResult, Job, JobPage, JobSummary, MetricPointRow, ModelEfficiency, SpecCatalog } from "../types";
import { scratchCpuRun } from "../components/metric";
import { card, emptyState, errorState, loading, pageHeader, stateBadge } from "../components/ui";

/** A lead in AP smaller than this (0.5 point) is within what a re-run or another val sample moves. */
export const AP_NOISE = 0.005;

const METRIC_ORDER = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "params", "gflops", "latency_ms", "latency"];
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
  const words: Record<string, string> = { latency_ms: "Latency (ms)", gflops: "GFLOPs", params: "Params", latency: "Latency" };
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
    // lead by more than AP_NOISE; latency only with a stored spread that does not overlap.
    const spreadOf = (name: string, i: number): number | null => {
      const m = /^efficiency\/(student|teacher)\/latency_ms$/.exec(name);
      if (!m) return null;
      const e = jobs[i].metrics?.efficiency?.[m[1] as "student" | "teacher"] as ModelEfficiency | null | undefined;
      const s = e?.latency_ms_iqr ?? e?.latency_ms_std;
      return typeof s === "number" && Number.isFinite(s) ? s : null;
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
        const a = spreadOf(name, first.i);
        const b = spreadOf(name, second.i);
        if (a === null || b === null || lead <= a + b) continue;
      }
      best.set(name, first.v);
    }
    const scratch = jobs.map((j) => scratchCpuRun(j));
    const fmt = (name: string, v: number | string | null) => (typeof v === "number" ? (isApMetric(name) ? ap(v) : num(v)) : v === null ? "—" : String(v));
    const why = (name: string, v: number | string | null, i: number) => (isApMetric(name) && typeof v === "number" ? apReason(v, { scratchCpu: scratch[i] }) : null);
    const table = (names: string[], id: string, full: boolean) =>
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table compare-metrics", id },
          h("thead", null, h("tr", null, h("th", null, "Job"), names.map((n) => h("th", { class: `num${/AP_small/.test(n) ? " highlight" : ""}`, title: n, "data-metric": n }, metricLabel(n, full))))),
          h(
            "tbody",
            null,
            jobs.map((j, i) =>
              h(
                "tr",
                { "data-job-id": j.id },
                h("th", { scope: "row" }, h("span", { class: "dot", style: `background:${colors[i]}` }), h("a", { href: `#/jobs/${j.id}` }, jobLabel(j))),
                names.map((n) => {
                  const v = metrics[n][i];
                  const isBest = best.has(n) && typeof v === "number" && v === best.get(n);
                  const reason = why(n, v, i);
                  return h(
                    "td",
                    { class: `num${isBest ? " best" : ""}`, "data-best": isBest ? "true" : null, title: isBest ? "best in this column, by more than the noise" : reason },
                    isApMetric(n) ? h("span", { class: "ap", "data-ap": typeof v === "number" ? v : "" }, fmt(n, v)) : fmt(n, v),
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

    // Curves: every job's series, one chosen series per chart.
    const series = await Promise.all(
      jobs.map((j) => get<{ series: Record<string, MetricPointRow[]> }>(`/jobs/${j.id}/metrics`).then((r) => r.series ?? {}, () => ({}) as Record<string, MetricPointRow[]>)),
    );
    const allNames = [...new Set(series.flatMap((s) => Object.keys(s)))].sort();
    const chartBlock = (initial: string, id: string) => {
      const chart = new LineChart("", { id });
      charts.push(chart);
      const draw = (name: string) => {
        jobs.forEach((j, i) => {
          const pts = inSequence(series[i][name] ?? []).points.map((p) => ({ x: p.x, y: name.startsWith("eval/") ? p.value * 100 : p.value }));
          chart.setSeries(`job-${j.id}`, pts, { color: colors[i], label: jobLabel(j) });
        });
      };
      const select = h(
        "select",
        { "aria-label": "Series to plot", onchange: (e: Event) => draw((e.target as HTMLSelectElement).value) },
        allNames.map((n) => h("option", { value: n, selected: n === initial }, n)),
      );
      draw(initial);
      return h("div", null, select, chart.element);
    };
    const firstSeries = allNames.includes("loss/total") ? "loss/total" : (allNames[0] ?? "loss/total");
    const secondSeries = allNames.find((n) => n === "eval/AP_small") ?? allNames.find((n) => n.startsWith("kd/")) ?? allNames.find((n) => n.startsWith("det/")) ?? firstSeries;

    replace(
      main,
      pageHeader("Compare", `${jobs.length} jobs`, h("a", { class: "btn", href: "#/compare" }, "Choose other jobs")),
      card(
        "Metrics",
        h(
          "p",
          { class: "muted" },
          "The student's COCO AP (%) and cost. ★ marks the best value in a column only where it leads by more than the noise: any difference in parameters or GFLOPs, more than 0.5 AP points, latency only when its stored spread does not overlap (one median figure gets no star). † AP from a run trained from scratch for a few CPU minutes, or n/a: no object of this size.",
        ),
        metricsTable,
      ),
      card("Curves", allNames.length ? h("div", { class: "chart-grid" }, chartBlock(firstSeries, "compare-a"), chartBlock(secondSeries, "compare-b")) : h("p", { class: "muted" }, "No curves recorded yet.")),
      card("What differs in the specs", hashes, diffTable),
    );
  })();
  return () => charts.forEach((c) => c.destroy());
}
