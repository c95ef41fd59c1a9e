// What a job's model predicts: per-class AP from metrics.json and the predicted-box pictures.
import { h } from "../dom";
import type { Artifact, CocoMetrics, Job } from "../types";
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
