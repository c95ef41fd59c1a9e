// Numbers, times and sizes as a person reads them.
import type { CocoMetrics, Job, JobSummary } from "./types";

/** "3 min ago", "2 h ago", or a date for older times. */
export function relativeTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const then = new Date(iso).getTime();
  const seconds = Math.round((Date.now() - then) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

/** A full local timestamp for tooltips. */
export function fullTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "";
}

/** "1 h 04 min", "3 min 20 s", "12 s". */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** How long a job ran (or has been running). */
export function jobDuration(job: Pick<Job | JobSummary, "started_at" | "finished_at">): string {
  if (!job.started_at) return "—";
  const end = job.finished_at ? new Date(job.finished_at).getTime() : Date.now();
  return duration((end - new Date(job.started_at).getTime()) / 1000);
}

/** Bytes as KB / MB / GB. */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** The one unit of every AP figure the dashboard shows: percent, one decimal. */
export const AP_UNIT = "%";

/** COCO AP (a fraction 0..1; -1 for "no object of this size") as "12.3 %"; "n/a" for -1. */
export function ap(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (value < 0) return "n/a";
  return `${(value * 100).toFixed(1)} ${AP_UNIT}`;
}

/** An AP difference in percentage points: "+1.2 pt". */
export function apDelta(points: number): string {
  return `${points >= 0 ? "+" : ""}${points.toFixed(1)} pt`;
}

/** Why an AP figure is empty or not to be read as a result (null when it is an ordinary one). */
export function apReason(value: number | null | undefined, opts: { scratchCpu?: boolean } = {}): string | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return "not evaluated";
  if (value < 0) return "no object of this size in the evaluated images (COCO reports -1)";
  if (opts.scratchCpu && value < 0.01) return "trained from scratch for a few CPU minutes: an AP this low is expected, not a result";
  return null;
}

/** A latency measurement of one runtime: median, p10–p90 spread, repeats and device. */
export interface LatencyFigure {
  median: number;
  p10: number | null;
  p90: number | null;
  repeats: number | null;
  device: string | null;
}

/** The PyTorch (or, with `onnx`, the ONNX Runtime) latency of an efficiency record. */
export function latencyFigure(
  e: { [key: string]: unknown } | null | undefined,
  onnx = false,
): LatencyFigure | null {
  if (!e) return null;
  const p = onnx ? "onnx_" : "";
  const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const median = n(e[`${p}latency_ms`]);
  if (median === null) return null;
  const device = typeof e[onnx ? "onnx_device" : "device"] === "string" ? String(e[onnx ? "onnx_device" : "device"]) : onnx ? "cpu (onnxruntime)" : null;
  return { median, p10: n(e[`${p}latency_p10_ms`]), p90: n(e[`${p}latency_p90_ms`]), repeats: n(e[`${p}latency_repeats`]), device };
}

/** Whether a figure has a measured spread (p10 and p90); older jobs stored one median only. */
export function hasSpread(f: LatencyFigure | null): f is LatencyFigure & { p10: number; p90: number } {
  return f !== null && f.p10 !== null && f.p90 !== null;
}

/** Whether two latencies' p10–p90 ranges overlap (or either lacks a spread): no ranking then. */
export function latenciesOverlap(a: LatencyFigure | null, b: LatencyFigure | null): boolean {
  if (!hasSpread(a) || !hasSpread(b)) return true;
  return a.p10 <= b.p90 && b.p10 <= a.p90;
}

/** "12.3 ms ± 0.6 (p10–p90, n = 10, cpu (2 threads))", or "12.3 ms (spread not measured, cpu)". */
export function latencyText(f: LatencyFigure | null): string {
  if (!f) return "—";
  const device = f.device ? `, ${f.device}` : "";
  if (!hasSpread(f)) return `${num(f.median)} ms (spread not measured${device})`;
  const half = (f.p90 - f.p10) / 2;
  const n = f.repeats !== null ? `, n = ${f.repeats}` : "";
  return `${num(f.median)} ms ± ${num(half, 2)} (p10–p90${n}${device})`;
}

/** A compact number: 8.7 M, 12.3 k, 0.0012. */
export function num(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)} k`;
  if (abs === 0) return "0";
  if (abs < 1e-3) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

/** A model's student metrics wherever the job keeps them. */
export function studentMetrics(job: Job | JobSummary): CocoMetrics | null {
  const m = job.metrics as (JobSummary["metrics"] & { AP?: unknown; kind?: unknown }) | null;
  if (!m) return null;
  if (m.student && typeof m.student === "object") return m.student;
  if (typeof m.AP === "number") return m as CocoMetrics;
  const teacherJob = job.kind === "teacher" || m.kind === "teacher";
  if (teacherJob && m.teacher && typeof m.teacher === "object") return m.teacher;
  return null;
}

/** Short architecture names for tables: "retinanet_mobilenet_v2_fpn" -> "RetinaNet MobileNetV2". */
export function archLabel(arch: string | null | undefined): string {
  if (!arch) return "—";
  const names: Record<string, string> = {
    retinanet: "RetinaNet",
    fcos: "FCOS",
    fasterrcnn: "Faster R-CNN",
    resnet50: "R50",
    resnet18: "R18",
    mobilenet: "MobileNet",
    shufflenet: "ShuffleNet",
  };
  const parts = arch.replace(/^torchvision_/, "").replace(/_fpn$/, "").split("_");
  const out: string[] = [];
  for (let i = 0; i < parts.length; i += 1) {
    const part = parts[i];
    if ((part === "mobilenet" || part === "shufflenet") && parts[i + 1]) {
      out.push(`${names[part]}${parts[i + 1].toUpperCase()}`);
      i += 1;
    } else {
      out.push(names[part] ?? part);
    }
  }
  return out.join(" ") + (arch.startsWith("torchvision_") ? " (tv)" : "");
}

/** The split and how many of its images a job's AP comes from. */
export interface EvaluatedOn {
  split: string;
  images: number | null;
  sliced: boolean;
  /** "val · 40 images" ("val · 40 images · sliced"); the count only where the metrics have it. */
  caption: string;
}

/** From metrics.json's `evaluation`; in older metrics the count is `dataset.val_images` (the
 * same number) and the split the spec's `data.val_split` (core/spec.py's default "val" where
 * the spec leaves it out). Null when the metrics say nothing of the evaluated images. */
export function evaluatedOn(job: Pick<Job, "metrics" | "spec">): EvaluatedOn | null {
  const m = job.metrics;
  const e = m?.evaluation ?? null;
  const count = [e?.images, m?.dataset?.val_images].find((v) => typeof v === "number" && Number.isInteger(v));
  const images = count ?? null;
  if (!e && images === null) return null;
  const specSplit = job.spec?.data?.val_split;
  const split = typeof e?.split === "string" && e.split ? e.split : typeof specSplit === "string" && specSplit ? specSplit : "val";
  const sliced = e?.mode === "sliced";
  const parts = [split, images === null ? null : `${images} ${images === 1 ? "image" : "images"}`, sliced ? "sliced" : null];
  return { split, images, sliced, caption: parts.filter((p) => p !== null).join(" · ") };
}
