// The columns a job list can show, which of them the server sorts by, and saved views.
import { h } from "../dom";
import { archLabel, fullTime, jobDuration, num, relativeTime, studentMetrics } from "../format";
import type { JobSummary, SpecSummary } from "../types";
import { jobFraction, progressBar, stateBadge } from "../components/ui";
import { apCell } from "../components/metric";
import { tagPill } from "./jobnotes";
import type { Lookups } from "./lookups";

/** One column: its header, cell, the server's sort key (none: not sortable) and class. */
export interface Column {
  id: string;
  label: string;
  title?: string;
  sort?: string;
  numeric?: boolean;
  cell: (job: JobSummary, lookups: Lookups) => HTMLElement | string;
}

const METRICS = ["AP", "AP_small", "AP_medium", "AP_large"] as const;
const SPEC_FIELDS: [keyof SpecSummary, string][] = [
  ["preset", "Preset"],
  ["lambda_kd", "λ KD"],
  ["lr", "Learning rate"],
  ["epochs", "Epochs"],
  ["image_size", "Image size"],
  ["teacher_arch", "Teacher arch"],
  ["student_arch", "Student arch"],
];

function progressCell(job: JobSummary): HTMLElement {
  const running = job.state === "running" || job.state === "queued";
  return running
    ? progressBar(jobFraction(job), {
        eta: job.state === "running" ? job.progress?.eta_seconds : null,
        // Training done, the job still runs: export and evaluation.
        note: job.state === "running" && jobFraction(job) >= 1 ? "evaluating" : undefined,
        label: `Progress of job ${job.id}`,
      })
    : h("span", { class: "muted" }, jobDuration(job));
}

function metricLabel(m: string): string {
  return m === "AP" ? "AP" : `AP ${m.slice(3)}`;
}

/** Every column the table offers, in display order. */
export const COLUMNS: Column[] = [
  {
    id: "job",
    label: "Job",
    sort: "name",
    cell: (job) =>
      h(
        "div",
        null,
        h("a", { href: `#/jobs/${job.id}` }, h("span", { class: "muted" }, `#${job.id} `), job.name || `${job.kind} job`),
        h("div", { class: "sub" }, job.kind, (job.tags ?? []).length ? h("span", { class: "pills" }, (job.tags ?? []).map((t) => tagPill(t))) : null),
      ),
  },
  { id: "state", label: "State", sort: "state", cell: (job) => stateBadge(job.state) },
  { id: "progress", label: "Progress / duration", cell: (job) => progressCell(job) },
  {
    id: "dataset",
    label: "Dataset",
    cell: (job, l) => {
      const d = job.dataset_id !== null ? l.datasets.get(job.dataset_id) : undefined;
      return d ? h("a", { href: `#/datasets/${d.id}` }, d.name) : job.dataset_id ? `#${job.dataset_id}` : "—";
    },
  },
  {
    id: "teacher",
    label: "Teacher",
    cell: (job, l) => {
      const t = job.teacher_id !== null ? l.teachers.get(job.teacher_id) : undefined;
      return t ? t.name : archLabel(job.spec_summary.teacher_arch);
    },
  },
  { id: "student", label: "Student", cell: (job) => archLabel(job.spec_summary.student_arch) },
  { id: "user", label: "Run by", cell: (job) => h("span", { class: "ellipsis", title: job.creator_email ?? "" }, job.creator_email ?? "—") },
  { id: "created", label: "Created", sort: "created_at", cell: (job) => h("span", { title: fullTime(job.created_at) }, relativeTime(job.created_at)) },
  { id: "finished", label: "Finished", sort: "finished_at", cell: (job) => h("span", { title: fullTime(job.finished_at) }, relativeTime(job.finished_at)) },
  ...METRICS.map(
    (m): Column => ({
      id: m === "AP" ? "ap" : m === "AP_small" ? "aps" : m.toLowerCase(),
      label: `${metricLabel(m)} (%)`,
      title: `COCO ${metricLabel(m)} of the student (a teacher job: its own), in percent`,
      sort: `metric:${m}`,
      numeric: true,
      cell: (job) => apCell(studentMetrics(job)?.[m]),
    }),
  ),
  {
    id: "teacher_ap_small",
    label: "Teacher AP small (%)",
    numeric: true,
    cell: (job) => apCell(job.kind === "teacher" ? undefined : job.metrics?.teacher?.AP_small),
  },
  ...SPEC_FIELDS.map(
    ([key, label]): Column => ({
      id: `spec_${key}`,
      label,
      numeric: key !== "preset" && !key.endsWith("arch"),
      cell: (job) => {
        const v = job.spec_summary[key];
        if (v === null || v === undefined) return "—";
        return typeof v === "number" ? num(v) : key.endsWith("arch") ? archLabel(String(v)) : String(v);
      },
    }),
  ),
  { id: "note", label: "Note", cell: (job) => h("span", { class: "ellipsis note", title: job.note ?? "" }, job.note || "") },
];

/** The columns shown when no view chose others (the table as it always was). */
export const DEFAULT_COLUMNS = ["job", "state", "progress", "dataset", "teacher", "student", "user", "created", "ap", "aps"];

/** Metrics the list filters by on the server (`min_ap_small=` ...). */
export const FILTER_METRICS = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"];

/** A saved view: the columns, the sort and the filters (the list's query string). */
export interface SavedView {
  name: string;
  columns: string[];
  query: string;
}

/** Saved views are kept in this browser (localStorage), per user. */
function viewsKey(userId: number | null): string {
  return `distillery.views.${userId ?? "anonymous"}`;
}

/** The user's saved views. */
export function loadViews(userId: number | null): SavedView[] {
  try {
    const raw = JSON.parse(localStorage.getItem(viewsKey(userId)) ?? "[]") as unknown;
    return Array.isArray(raw) ? (raw as SavedView[]).filter((v) => v && typeof v.name === "string" && Array.isArray(v.columns)) : [];
  } catch {
    return [];
  }
}

/** Saves (or replaces, by name) one view. */
export function saveView(userId: number | null, view: SavedView): void {
  const views = loadViews(userId).filter((v) => v.name !== view.name);
  localStorage.setItem(viewsKey(userId), JSON.stringify([...views, view]));
}

/** Forgets one view. */
export function deleteView(userId: number | null, name: string): void {
  localStorage.setItem(viewsKey(userId), JSON.stringify(loadViews(userId).filter((v) => v.name !== name)));
}
