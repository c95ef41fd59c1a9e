// What a job's model predicts: per-class AP and PR curves from metrics.json, predicted boxes.
import { LineChart, PALETTE } from "../charts";
import { h } from "../dom";
import type { Artifact, CocoMetrics, Job, PrCurve } from "../types";
import { apCell, scratchCpuRun } from "../components/metric";

/** Picture artifacts split into predicted-box pictures (names starting "boxes") and the rest. */
export function splitPictures(pictures: Artifact[]): { attention: Artifact[]; boxes: Artifact[] } {
  const isBoxes = (a: Artifact) => /^boxes/i.test(a.name.split("/").pop() ?? a.name);
  return { boxes: pictures.filter(isBoxes), attention: pictures.filter((a) => !isBoxes(a)) };
}

/** Per-class AP of the job's model (and its teacher's beside it), worst first; null without it. */
export function perClassTable(job: Job): HTMLElement | null {
  const m = job.metrics;
  const own = (m?.student ?? (job.kind === "teacher" ? m?.teacher : null)) as CocoMetrics | null | undefined;
  const teacher = (job.kind === "teacher" ? null : m?.teacher) as CocoMetrics | null | undefined;
  const classes = own?.per_class ?? {};
  const names = Object.keys(classes);
  if (!names.length) return null;
  const scratch = scratchCpuRun(job);
  names.sort((a, b) => (classes[a] ?? 0) - (classes[b] ?? 0));
  return h(
    "div",
    { class: "table-wrap" },
    h("h3", null, "AP per class"),
    h(
      "table",
      { class: "table compact", id: "per-class-ap" },
      h("thead", null, h("tr", null, h("th", null, "Class"), h("th", { class: "num" }, `${job.kind === "teacher" ? "Teacher" : "Student"} AP (%)`), teacher?.per_class ? h("th", { class: "num" }, "Teacher AP (%)") : null)),
      h(
        "tbody",
        null,
        names.map((n) =>
          h(
            "tr",
            { "data-class": n },
            h("th", { scope: "row" }, n),
            h("td", { class: "num" }, apCell(classes[n], { scratchCpu: scratch })),
            teacher?.per_class ? h("td", { class: "num" }, apCell(teacher.per_class[n])) : null,
          ),
        ),
      ),
    ),
  );
}

/** The job's own model's PR curve (the student's; a teacher job's teacher), if stored. */
export function prCurveOf(job: Job): PrCurve | null {
  const m = job.metrics;
  const own = (m?.student ?? (job.kind === "teacher" ? m?.teacher : null)) as CocoMetrics | null | undefined;
  const curve = own?.pr_curve;
  return curve && Array.isArray(curve.recall) && Array.isArray(curve.all) ? curve : null;
}

/** Precision against recall at IoU 0.5: all classes (mean) and, chosen, one class beside it. */
export function prCurveChart(curve: PrCurve): { element: HTMLElement; chart: LineChart } {
  const chart = new LineChart(`Precision–recall at IoU ${curve.iou.toFixed(2)}`, { id: "pr-curve", xLabel: "recall", yLabel: "precision", min: 0, height: 240 });
  const points = (ys: number[]) => ys.map((y, i) => ({ x: curve.recall[i], y }));
  chart.setSeries("all", points(curve.all), { color: "#0f172a", label: "all classes (mean)" });
  const classes = Object.keys(curve.per_class).sort();
  const show = (name: string) => {
    // One class at a time beside the mean: ten overlaid curves read as noise.
    for (const c of classes) {
      if (c === name) chart.setSeries(`class:${c}`, points(curve.per_class[c]), { color: PALETTE[(classes.indexOf(c) + 1) % PALETTE.length], label: c });
      else chart.removeSeries(`class:${c}`);
    }
    chart.element.dataset.prClass = name;
  };
  const select = h(
    "select",
    { id: "pr-class", "aria-label": "Class whose curve to show", onchange: (e: Event) => show((e.target as HTMLSelectElement).value) },
    h("option", { value: "" }, "All classes only"),
    classes.map((c) => h("option", { value: c }, c)),
  );
  show("");
  return {
    element: h(
      "div",
      { id: "pr-curves" },
      h("h3", null, "Precision–recall curves"),
      h("p", { class: "muted" }, "From the COCO evaluation: precision at each of 101 recall levels, IoU 0.5, every object size, the largest detection cap. The area under a class's curve is its AP50."),
      h("label", { class: "inline-label" }, "Class ", select),
      chart.element,
    ),
    chart,
  };
}
