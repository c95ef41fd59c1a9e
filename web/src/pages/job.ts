// One job: live progress and curves, student beside teacher, efficiency, pictures, spec, logs.
import { ApiError, artifactPath, del, downloadFile, fetchBlob, get, post } from "../api";
import { barChart, type LineChart } from "../charts";
import { h, replace } from "../dom";
import { apDelta, archLabel, bytes, duration, evaluatedOn, fullTime, hasSpread, jobDuration, latencyFigure, latencyText, num, relativeTime } from "../format";
import { href, navigate } from "../router";
import { loadSpecCatalog } from "../spec";
import { filledSpec } from "../specfill";
import { streamEvents } from "../sse";
import type { Artifact, CocoMetrics, Job, JobEventRow, ListOf, MetricPointRow, ModelEfficiency, Progress, SpecCatalog } from "../types";
import { confirmDialog } from "../components/dialog";
import { zoomable } from "../components/lightbox";
import { apCell, scratchCpuRun, scratchNote } from "../components/metric";
import { card, errorState, jobFraction, loading, pageHeader, progressBar, stateBadge, toast } from "../components/ui";
import { annotationsCard } from "./jobnotes";
import { perClassTable, prCurveChart, prCurveOf, splitPictures } from "./predictions";
import { errorHeadline, explainError } from "../words";
import { JobCurves } from "./jobcurves";
import { loadLookups } from "./lookups";

const METRIC_ROWS: [keyof CocoMetrics, string][] = [
  ["AP", "AP"],
  ["AP50", "AP50"],
  ["AP75", "AP75"],
  ["AP_small", "AP small"],
  ["AP_medium", "AP medium"],
  ["AP_large", "AP large"],
];

const DOWNLOADS: [string, string][] = [
  ["student_safetensors", "Student (safetensors)"],
  ["student_onnx", "Student (ONNX)"],
  ["student_onnx_detections", "Student (ONNX with post-processing)"],
  ["teacher_safetensors", "Teacher (safetensors)"],
  ["report", "Report"],
  ["metrics", "Metrics (JSON)"],
];

function isActive(job: Job): boolean {
  return job.state === "queued" || job.state === "running";
}

function totalLoss(p: Progress): string {
  const losses = p.losses ?? {};
  if (losses["loss/total"] !== undefined) return num(losses["loss/total"], 4);
  // The terms are already weighted: their sum is the loss the optimiser sees.
  const terms = Object.entries(losses).filter(([k]) => k.startsWith("det/") || k.startsWith("kd/"));
  return terms.length ? num(terms.reduce((s, [, v]) => s + v, 0), 4) : "—";
}

function progressCard(job: Job): HTMLElement {
  const p: Progress = job.progress ?? {};
  const stat = (label: string, value: string) => h("div", { class: "stat" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value));
  if (job.state === "queued") {
    return card("Progress", h("p", { class: "muted", id: "job-progress-text" }, "Waiting for a worker to take this job…"), progressBar(0, { label: "Job progress" }));
  }
  return card(
    "Progress",
    progressBar(jobFraction(job), {
      eta: job.state === "running" ? p.eta_seconds : null,
      note: job.state === "running" && jobFraction(job) >= 1 ? "training done; exporting and evaluating" : undefined,
      label: "Job progress",
      stopped: job.state === "failed" || job.state === "canceled",
    }),
    h(
      "div",
      { class: "stats", id: "job-progress-text" },
      stat("Stage", p.stage ?? "—"),
      stat("Epoch", p.epochs ? `${p.epoch ?? 0} / ${p.epochs}` : "—"),
      stat("Step", p.total_steps ? `${p.step ?? 0} / ${p.total_steps}` : String(p.step ?? "—")),
      stat("ETA", job.state === "running" ? duration(p.eta_seconds) : "—"),
      stat("Throughput", p.images_per_sec ? `${num(p.images_per_sec)} img/s` : "—"),
      stat("Learning rate", p.lr !== undefined && p.lr !== null ? num(p.lr) : "—"),
      stat("Total loss", totalLoss(p)),
    ),
  );
}

function errorCard(job: Job): HTMLElement | null {
  if (job.state !== "failed" && !(job.state === "canceled" && job.error)) return null;
  const raw = job.error ?? "The job failed without a message.";
  const words = explainError(raw);
  return h(
    "section",
    { class: "card alert alert-error", role: "alert", id: "job-error" },
    h("h2", null, job.state === "canceled" ? "Canceled" : "This job failed"),
    words ? h("p", null, words) : null,
    h("p", null, h("strong", null, "Message: "), errorHeadline(raw)),
    raw.includes("\n") ? h("details", null, h("summary", null, "Full error"), h("pre", { class: "code" }, raw)) : null,
    h("p", { class: "muted" }, `Attempt ${job.attempt}. `, "Retry starts it again from its last checkpoint."),
  );
}

/** "Evaluated on val · 500 images (letterboxed to 160 px; trained on 2000 images).", from
 * metrics.json's evaluation record; the count only where the metrics carry it. */
function evaluatedOnNote(job: Job): HTMLElement | null {
  const on = evaluatedOn(job);
  if (!on) return null;
  const e = job.metrics?.evaluation;
  const how =
    on.sliced && e?.tile_size !== undefined
      ? `sliced inference on the full images, tiles of ${e.tile_size} px, overlap ${e.overlap ?? "—"}`
      : e?.image_size !== undefined
        ? `letterboxed to ${e.image_size} px`
        : null;
  const trained = job.metrics?.dataset?.train_images;
  const details = [how, trained !== undefined ? `trained on ${trained} images` : null].filter((d) => d !== null);
  return h(
    "p",
    { class: "muted", id: "evaluated-on" },
    "Evaluated on ",
    h("strong", { class: "eval-caption", "data-split": on.split, "data-images": on.images }, on.caption),
    details.length ? ` (${details.join("; ")}).` : ".",
  );
}

function metricsCard(job: Job): HTMLElement {
  const m = job.metrics;
  const student = (m?.student ?? (job.kind === "teacher" ? m?.teacher : null)) as CocoMetrics | null | undefined;
  const teacher = (job.kind === "teacher" ? null : m?.teacher) as CocoMetrics | null | undefined;
  if (!student) {
    return card("Metrics", h("p", { class: "muted" }, isActive(job) ? "COCO metrics appear here when the evaluation finishes." : "No metrics were recorded for this job."));
  }
  const scratch = scratchCpuRun(job);
  const own = job.kind === "teacher" ? "Teacher" : "Student";
  const rows = METRIC_ROWS.map(([key, label]) => {
    const s = student[key] as number | undefined;
    const t = teacher?.[key] as number | undefined;
    const valid = (v: number | undefined) => v !== undefined && v !== null && v >= 0;
    const diff = valid(s) && valid(t) ? ((s as number) - (t as number)) * 100 : null;
    const kept = valid(s) && valid(t) && (t as number) > 0 ? ((s as number) / (t as number)) * 100 : null;
    return h(
      "tr",
      { class: key === "AP_small" ? "highlight" : "", "data-metric": key },
      h("th", { scope: "row" }, label, key === "AP_small" ? h("span", { class: "tag" }, "small objects") : null),
      h("td", { class: "num strong" }, apCell(s, { scratchCpu: scratch })),
      teacher ? h("td", { class: "num" }, apCell(t)) : null,
      teacher ? h("td", { class: `num ${diff === null ? "" : diff >= 0 ? "good" : "bad"}` }, diff === null ? "—" : apDelta(diff)) : null,
      teacher ? h("td", { class: "num" }, kept === null ? "—" : `${kept.toFixed(0)}% of teacher`) : null,
    );
  });
  const lowShown = METRIC_ROWS.some(([k]) => {
    const v = student[k] as number | undefined;
    return scratch && typeof v === "number" && v >= 0 && v < 0.01;
  });
  const table = h(
    "table",
    { class: "table metrics-table", id: "metrics-table" },
    h(
      "thead",
      null,
      h("tr", null, h("th", null, "COCO metric (AP, %)"), h("th", { class: "num" }, own), teacher ? [h("th", { class: "num" }, "Teacher"), h("th", { class: "num" }, "Δ"), h("th", { class: "num" }, "Kept")] : null),
    ),
    h("tbody", null, rows),
  );
  const sizes: [keyof CocoMetrics, string][] = [["AP_small", "small"], ["AP_medium", "medium"], ["AP_large", "large"]];
  const bars = barChart(
    "AP by object size (%)",
    sizes.map(([, l]) => l),
    [
      { label: own, data: sizes.map(([k]) => Math.max(0, ((student[k] as number) ?? 0) * 100)), colors: "#2563eb" },
      ...(teacher ? [{ label: "Teacher", data: sizes.map(([k]) => Math.max(0, ((teacher[k] as number) ?? 0) * 100)), colors: "#94a3b8" }] : []),
    ],
    { height: 200, id: "ap-by-size", yLabel: "AP (%)" },
  );
  return card(
    "Metrics",
    evaluatedOnNote(job),
    h("div", { class: "two-col" }, h("div", { class: "table-wrap" }, table, lowShown ? scratchNote() : null), bars.element),
    h("p", { class: "muted" }, "n/a: no object of this size in the evaluated images (COCO reports -1)."),
  );
}

/** A latency cell: "median ± spread (p10–p90, n, device)", or "spread not measured". */
function latencyOf(e: ModelEfficiency | null | undefined, onnx = false): HTMLElement | string {
  const f = latencyFigure(e as Record<string, unknown> | null | undefined, onnx);
  if (!f) return "—";
  return h("span", { class: "latency", "data-spread": hasSpread(f) ? "measured" : "none", title: hasSpread(f) ? `p10 ${num(f.p10)} ms, p90 ${num(f.p90)} ms` : "one median figure: its spread was not measured" }, latencyText(f));
}

function efficiencyCard(job: Job): HTMLElement | null {
  const e = job.metrics?.efficiency;
  if (!e || !e.student) return null;
  const s = e.student;
  const t = e.teacher ?? null;
  const r = e.ratios ?? null;
  // The API's ratios are student ÷ teacher; people read "6× fewer" more easily than "0.17".
  const ratio = (v: number | undefined | null, word: string, more: string) =>
    v ? (v < 1 ? `${(1 / v).toFixed(1)}× ${word}` : h("span", { class: v > 1 ? "bad" : "" }, `${v.toFixed(2)}× the teacher's${v > 1 ? ` (${more})` : ""}`)) : "—";
  const row = (label: string, sv: string | HTMLElement, tv: string | HTMLElement, rv: string | HTMLElement, id: string) =>
    h("tr", { "data-row": id }, h("th", { scope: "row" }, label), h("td", { class: "num strong" }, sv), t ? h("td", { class: "num" }, tv) : null, t ? h("td", { class: "num" }, rv) : null);
  const diff = job.metrics?.export?.onnx_max_abs_diff;
  const parity =
    diff === undefined || diff === null
      ? null
      : h(
          "p",
          { id: "onnx-parity", class: diff <= 1e-3 ? "good" : "bad" },
          `ONNX parity: onnxruntime vs PyTorch max |difference| ${diff.toExponential(1)} — `,
          diff <= 1e-3 ? "the exported model computes what PyTorch does." : "larger than 1e-3: check the export before deploying it.",
        );
  const costlier = r?.gflops !== undefined && r?.gflops !== null && r.gflops > 1;
  return card(
    "Efficiency",
    costlier ? h("p", { class: "alert alert-warn", id: "costlier-student" }, "This student needs more compute (GFLOPs) than its teacher: it is not a smaller model.") : null,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "efficiency-table" },
        h("thead", null, h("tr", null, h("th", null, ""), h("th", { class: "num" }, job.kind === "teacher" ? "Model" : "Student"), t ? [h("th", { class: "num" }, "Teacher"), h("th", { class: "num" }, "Student vs teacher")] : null)),
        h(
          "tbody",
          null,
          row("Parameters", num(s.params), num(t?.params), ratio(r?.params, "fewer", "more parameters"), "params"),
          row("GFLOPs", num(s.gflops), num(t?.gflops), ratio(r?.gflops, "less compute", "more compute"), "gflops"),
          row("Latency, PyTorch", latencyOf(s), latencyOf(t), ratio(r?.latency, "faster", "slower"), "latency"),
          s.onnx_latency_ms !== undefined ? row("Latency, ONNX Runtime", latencyOf(s, true), latencyOf(t, true), "—", "onnx-latency") : null,
        ),
      ),
    ),
    h(
      "p",
      { class: "muted" },
      `Batch 1 at the training image size. Latency is the median of timed runs after a warm-up, ± half the range from the 10th to the 90th percentile, with the number of runs and the device; a figure without a spread is one median from an older job. Timings on a busy machine move: read overlapping ranges as equal.`,
    ),
    parity,
  );
}

function specCard(job: Job, catalog: SpecCatalog | null): HTMLElement {
  // Fields the stored spec leaves out read as core/spec.py's defaults (the served catalog).
  const spec = catalog ? filledSpec(job.spec, catalog) : job.spec;
  const d = job.kind === "teacher" ? undefined : spec.distill;
  const levels = d?.levels ?? {};
  const summary = h(
    "dl",
    { class: "kv" },
    h("dt", null, "Teacher"),
    h("dd", null, archLabel(spec.teacher?.arch), spec.teacher?.teacher_id ? ` (teacher #${spec.teacher.teacher_id})` : ""),
    job.kind !== "teacher" ? [h("dt", null, "Student"), h("dd", null, archLabel(spec.student?.arch))] : null,
    h("dt", null, "Image size"),
    h("dd", null, String(spec.data?.image_size ?? "—")),
    h("dt", null, "Epochs"),
    h("dd", null, String(spec.schedule?.epochs ?? "—")),
    d ? [h("dt", null, "λ KD"), h("dd", null, String(d.lambda_kd)), h("dt", null, "Response KD"), h("dd", null, String(d.response))] : null,
    h("dt", null, "Spec hash"),
    h("dd", null, h("code", { id: "spec-hash", title: "the stored spec_hash: the one report.md and metrics.json carry" }, job.spec_hash || "—")),
  );
  const weights = Object.keys(levels).length
    ? h(
        "table",
        { class: "table compact" },
        h("thead", null, h("tr", null, h("th", null, "Level"), h("th", { class: "num" }, "spatial α"), h("th", { class: "num" }, "semantic β"), h("th", { class: "num" }, "context γ"))),
        h(
          "tbody",
          null,
          Object.entries(levels).map(([l, w]) => h("tr", null, h("th", null, l.toUpperCase()), h("td", { class: "num" }, String(w.spatial)), h("td", { class: "num" }, String(w.semantic)), h("td", { class: "num" }, String(w.context)))),
        ),
      )
    : null;
  const json = JSON.stringify(job.spec, null, 2);
  return card(
    "Spec",
    catalog ? h("p", { class: "muted" }, "Fields the stored spec leaves out are shown with core/spec.py's defaults.") : null,
    h("div", { class: "two-col" }, summary, weights),
    h(
      "details",
      null,
      h("summary", null, "Stored spec (JSON)"),
      h("button", { class: "btn btn-small", type: "button", onclick: () => void navigator.clipboard?.writeText(json).then(() => toast("Spec copied")) }, "Copy"),
      h("pre", { class: "code", id: "spec-json" }, json),
    ),
  );
}

function logLine(e: JobEventRow): HTMLElement {
  return h(
    "li",
    { class: `log log-${e.level}` },
    h("time", { title: fullTime(e.created_at) }, e.created_at ? new Date(e.created_at).toLocaleTimeString() : ""),
    h("span", { class: "level" }, e.level),
    h("span", { class: "msg" }, e.message),
  );
}

/** The job page; returns its cleanup (closes the live stream, frees charts and pictures). */
export function renderJob(main: HTMLElement, jobId: number): () => void {
  const abort = new AbortController();
  let streamAbort = new AbortController();
  let liveOn = false;
  abort.signal.addEventListener("abort", () => streamAbort.abort());
  let datasetLink: HTMLElement | null = null;
  const urls: string[] = [];
  let job: Job | null = null;
  let curves: JobCurves | null = null;
  let catalog: SpecCatalog | null = null;
  let pollTimer: number | undefined;
  let streamLive = false;
  replace(main, loading());

  const header = h("div");
  const progressHost = h("div", { id: "job-progress" });
  const errorHost = h("div");
  const downloadsHost = h("div");
  const metricsHost = h("div", { id: "job-metrics" });
  const efficiencyHost = h("div", { id: "job-efficiency" });
  const picturesHost = h("div", { id: "job-pictures" });
  const specHost = h("div", { id: "job-spec" });
  const notesHost = h("div", { id: "job-notes" });
  const predictionsHost = h("div", { id: "job-predictions" });
  const logList = h("ol", { class: "logs", id: "job-logs", "aria-live": "polite" });
  const liveDot = h("span", { class: "live" });
  const seenLogs = new Set<string>();

  const addLog = (e: JobEventRow) => {
    const key = e.id !== undefined ? `id:${e.id}` : `${e.created_at}|${e.message}`;
    if (seenLogs.has(key)) return;
    seenLogs.add(key);
    logList.querySelector(".empty-log")?.remove();
    logList.appendChild(logLine(e));
  };

  const act = async (label: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      toast(label, "success");
      await reload();
    } catch (err) {
      toast(err instanceof ApiError ? err.message : String(err), "error");
    }
  };

  // The header's models, from the filled spec: a stored spec may leave the architectures out.
  const models = (j: Job) => {
    const spec = catalog ? filledSpec(j.spec, catalog) : j.spec;
    const teacherArch = spec?.teacher?.arch;
    if (j.kind === "teacher") return archLabel(teacherArch);
    return `${archLabel(teacherArch)} → ${archLabel(spec?.student?.arch)}`;
  };

  const renderHeader = () => {
    if (!job) return;
    const j = job;
    const actions: (HTMLElement | null)[] = [
      liveDot,
      isActive(j)
        ? h(
            "button",
            {
              class: "btn btn-danger",
              type: "button",
              id: "cancel-job",
              onclick: async () => {
                const sure = await confirmDialog({
                  title: `Cancel job #${j.id}?`,
                  message: j.state === "running" ? "The worker stops it at its next step; what it trained so far is kept as a checkpoint, and Retry resumes from it." : "It leaves the queue before it starts.",
                  confirm: "Cancel the job",
                  cancel: "Keep it running",
                  danger: true,
                });
                if (sure) await act("Cancel requested", () => post(`/jobs/${j.id}/cancel`));
              },
            },
            "Cancel",
          )
        : null,
      j.state === "failed" || j.state === "canceled" ? h("button", { class: "btn", type: "button", id: "retry-job", onclick: () => void act("Job queued again", () => post(`/jobs/${j.id}/retry`)) }, "Retry") : null,
      h("a", { class: "btn", href: href("/new", { from: j.id }) }, "Clone"),
      h("a", { class: "btn", href: href("/compare", { jobs: j.id }) }, "Compare…"),
      !isActive(j)
        ? h(
            "button",
            {
              class: "btn btn-ghost",
              type: "button",
              id: "delete-job",
              onclick: async () => {
                const sure = await confirmDialog({
                  title: `Delete job #${j.id}?`,
                  message: "Its metrics, logs and files (weights, report, pictures) go with it. This cannot be undone.",
                  confirm: "Delete the job",
                  danger: true,
                });
                if (sure) void del(`/jobs/${j.id}`).then(() => navigate("#/jobs"), (err: Error) => toast(err.message, "error"));
              },
            },
            "Delete",
          )
        : null,
    ];
    replace(
      header,
      pageHeader(
        h("span", null, h("span", { class: "muted" }, `#${j.id} `), j.name || `${j.kind} job`, " ", stateBadge(j.state)),
        h(
          "span",
          null,
          `${j.kind} · ${models(j)} · run by ${j.creator_email ?? "—"} · created ${relativeTime(j.created_at)} · ${jobDuration(j)}`,
          datasetLink ? [" · dataset ", datasetLink] : null,
        ),
        ...actions,
      ),
    );
  };

  const renderState = () => {
    if (!job) return;
    document.title = `#${job.id} ${job.name || job.kind} · ${job.state} · Distillery`;
    if (!isActive(job)) liveDot.textContent = "";
    renderHeader();
    replace(progressHost, isActive(job) || job.progress ? progressCard(job) : null);
    replace(errorHost, errorCard(job));
    replace(metricsHost, metricsCard(job));
    replace(efficiencyHost, efficiencyCard(job));
    replace(specHost, specCard(job, catalog));
    // Once: a live refresh must not wipe a note being typed.
    if (!notesHost.firstChild) {
      replace(
        notesHost,
        annotationsCard(job, (updated) => {
          if (job) job = { ...job, tags: updated.tags, note: updated.note };
        }),
      );
    }
  };

  const loadArtifacts = async () => {
    if (!job || isActive(job)) {
      replace(downloadsHost);
      replace(picturesHost);
      return;
    }
    let artifacts: Artifact[] = [];
    try {
      artifacts = (await get<ListOf<Artifact>>(`/jobs/${jobId}/artifacts`)).data;
    } catch (err) {
      replace(downloadsHost, errorState((err as Error).message));
      return;
    }
    const byKind = new Map<string, Artifact[]>();
    for (const a of artifacts) byKind.set(a.kind, [...(byKind.get(a.kind) ?? []), a]);
    const button = (a: Artifact, label: string) =>
      h(
        "button",
        {
          class: "btn",
          type: "button",
          "data-artifact": a.name,
          "data-kind": a.kind,
          onclick: async (e: Event) => {
            const btn = e.currentTarget as HTMLButtonElement;
            btn.disabled = true;
            try {
              await downloadFile(artifactPath(jobId, a.name), a.name.split("/").pop() ?? a.name);
            } catch (err) {
              toast((err as Error).message, "error");
            } finally {
              btn.disabled = false;
            }
          },
        },
        "⬇ ",
        label,
        h("span", { class: "muted" }, ` ${bytes(a.size_bytes)}`),
      );
    const main = DOWNLOADS.flatMap(([kind, label]) => (byKind.get(kind) ?? []).map((a) => button(a, label)));
    const others = artifacts.filter((a) => !DOWNLOADS.some(([k]) => k === a.kind) && a.kind !== "picture");
    replace(
      downloadsHost,
      artifacts.length
        ? card(
            "Downloads",
            h("div", { class: "button-row", id: "downloads" }, main),
            others.length ? h("details", null, h("summary", null, `Other files (${others.length})`), h("div", { class: "button-row" }, others.map((a) => button(a, a.name)))) : null,
          )
        : job.state === "succeeded"
          ? card("Downloads", h("p", { class: "muted" }, "This job stored no files."))
          : null,
    );
    const { attention, boxes } = splitPictures(byKind.get("picture") ?? []);
    const picture = (pic: Artifact, label: string) => {
      const caption = (pic.name.split("/").pop() ?? pic.name).replace(/\.(png|jpg)$/i, "").replace(/[_-]+/g, " ");
      const img = h("img", { alt: `${label} ${caption}` });
      fetchBlob(artifactPath(jobId, pic.name)).then(
        (blob) => {
          const url = URL.createObjectURL(blob);
          urls.push(url);
          img.src = url;
        },
        () => img.replaceWith(h("div", { class: "muted" }, "Picture unavailable")),
      );
      return h("figure", { class: "picture", "data-picture": pic.name }, zoomable(img, `${label}: ${caption}`), h("figcaption", null, caption));
    };
    replace(predictionsHost, predictionsCard(job, boxes.map((p) => picture(p, "Predicted boxes"))));
    if (!attention.length) {
      replace(picturesHost, job.state === "succeeded" && job.kind !== "teacher" ? card("Attention: teacher vs student", h("p", { class: "muted" }, "No attention pictures were produced for this job.")) : null);
      return;
    }
    replace(
      picturesHost,
      card(
        "Attention: teacher vs student",
        h(
          "p",
          { class: "muted", id: "attention-caption" },
          "Grad-CAM on validation images with small objects: the colour runs from blue (little influence on the top detections' score) through green and yellow to red (strong influence). Ground-truth boxes are green, the explained detections white. Click a picture to enlarge it; Escape closes it.",
        ),
        h("div", { class: "pictures" }, attention.map((p) => picture(p, "Attention map"))),
      ),
    );
  };

  let prChart: LineChart | null = null;
  const predictionsCard = (j: Job, pictures: HTMLElement[]): HTMLElement | null => {
    const table = perClassTable(j);
    prChart?.destroy();
    prChart = null;
    const curve = prCurveOf(j);
    const pr = curve ? prCurveChart(curve) : null;
    prChart = pr?.chart ?? null;
    if (!table && !pr && !pictures.length) return null;
    return card(
      "Predictions",
      table,
      pr?.element ?? null,
      pictures.length
        ? h(
            "div",
            null,
            h("h3", null, "Predicted boxes on validation images"),
            h("p", { class: "muted" }, "Green: true positives; red: false positives; amber: objects missed (the teacher on the left where it is shown). Click to enlarge."),
            h("div", { class: "pictures", id: "box-pictures" }, pictures),
          )
        : h("p", { class: "muted" }, "No predicted-box pictures were stored for this job."),
    );
  };

  const loadSeries = async () => {
    if (!curves) return;
    try {
      const res = await get<{ series: Record<string, MetricPointRow[]> }>(`/jobs/${jobId}/metrics`);
      curves.load(res.series ?? {});
    } catch {
      // Curves stay as they are; the next reload tries again.
    }
  };

  const loadLogs = async () => {
    try {
      const res = await get<ListOf<JobEventRow>>(`/jobs/${jobId}/logs`, { limit: 500 });
      res.data.forEach(addLog);
      if (!logList.children.length) logList.appendChild(h("li", { class: "empty-log muted" }, "No log lines yet."));
    } catch (err) {
      if (!logList.children.length) logList.appendChild(h("li", { class: "muted" }, (err as Error).message));
    }
  };

  async function reload(): Promise<void> {
    const wasActive = job ? isActive(job) : true;
    job = await get<Job>(`/jobs/${jobId}`);
    renderState();
    if (wasActive && !isActive(job)) {
      await Promise.all([loadArtifacts(), loadSeries(), loadLogs()]);
    } else if (!wasActive && isActive(job)) {
      // Retried: follow the new attempt live.
      await loadArtifacts();
      startLive();
    }
  }

  const onEvent = (type: string, data: unknown) => {
    if (!job) return;
    const d = (data ?? {}) as Record<string, unknown>;
    if (type === "progress") {
      const prog = ((d.progress as Progress | undefined) ?? (d as Progress)) as Progress;
      job = { ...job, progress: prog, state: job.state === "queued" ? "running" : job.state };
      replace(progressHost, progressCard(job));
      // Step 0 is "not started yet": nothing to plot.
      if (prog.step && prog.losses) {
        for (const [name, value] of Object.entries(prog.losses)) curves?.add(name, prog.step, value, prog.stage);
        if (prog.lr !== undefined && prog.lr !== null) curves?.add("lr", prog.step, prog.lr, prog.stage);
        if (prog.images_per_sec) curves?.add("throughput", prog.step, prog.images_per_sec, prog.stage);
      }
    } else if (type === "metric") {
      const points = Array.isArray(d.points) ? (d.points as Record<string, unknown>[]) : Array.isArray(data) ? (data as Record<string, unknown>[]) : [d];
      for (const p of points) {
        const step = Number(p.step ?? 0);
        const stage = typeof p.stage === "string" ? p.stage : null;
        if (typeof p.name === "string" && typeof p.value === "number") {
          curves?.add(p.name, step, p.value, stage);
        } else {
          const values = (p.values ?? p.metrics ?? {}) as Record<string, number>;
          for (const [name, value] of Object.entries(values)) curves?.add(name, step, value, stage);
        }
      }
    } else if (type === "log") {
      addLog(d as unknown as JobEventRow);
    } else if (type === "state") {
      const state = String(d.state ?? "");
      // The stream ends after a terminal state; do not reconnect to it.
      if (["succeeded", "failed", "canceled", "deleted"].includes(state)) {
        streamAbort.abort();
        liveOn = false;
        window.clearTimeout(pollTimer);
      }
      // A Retry clicked before this terminal frame arrived found the old stream still on and
      // started none; follow the job again if it is active once more.
      void reload().then(() => startLive(), () => undefined);
    }
  };

  function startLive(): void {
    if (!job || !isActive(job) || liveOn || abort.signal.aborted) return;
    liveOn = true;
    streamAbort = new AbortController();
    void streamEvents(`/jobs/${jobId}/events`, (e) => onEvent(e.type, e.data), streamAbort.signal, {
      onReconnect: () => void reload().catch(() => undefined),
      onStatus: (live) => {
        streamLive = live;
        liveDot.textContent = live ? "● Live" : "○ Reconnecting…";
        liveDot.className = live ? "live on" : "live off";
      },
    });
    // A slow safety net: the row is the source of truth, so re-read it now and then.
    const poll = async () => {
      if (abort.signal.aborted) return;
      try {
        if (job && isActive(job)) await reload();
      } catch {
        // Transient; the next poll retries.
      }
      if (job && isActive(job)) pollTimer = window.setTimeout(() => void poll(), streamLive ? 10_000 : 3000);
      else {
        liveDot.textContent = "";
        streamAbort.abort();
        liveOn = false;
      }
    };
    pollTimer = window.setTimeout(() => void poll(), 3000);
  }

  (async () => {
    try {
      job = await get<Job>(`/jobs/${jobId}`);
    } catch (err) {
      replace(
        main,
        err instanceof ApiError && err.status === 404
          ? h("div", { class: "empty" }, h("h3", null, `Job #${jobId} was not found in this team.`), h("a", { class: "btn", href: "#/jobs" }, "Back to jobs"))
          : errorState((err as Error).message, () => navigate(`#/jobs/${jobId}`)),
      );
      return;
    }
    curves = new JobCurves();
    const lookups = loadLookups();
    replace(
      main,
      header,
      progressHost,
      errorHost,
      downloadsHost,
      notesHost,
      metricsHost,
      predictionsHost,
      efficiencyHost,
      card("Training curves", h("p", { class: "muted" }, "Each distillation term per pyramid level: P2 (stride 4) carries the small objects."), curves.element),
      card("Where the distillation works", curves.breakdown),
      picturesHost,
      specHost,
      card("Logs", logList),
    );
    renderState();
    void loadSpecCatalog().then(
      (c) => {
        catalog = c;
        renderHeader();
        if (job) replace(specHost, specCard(job, catalog));
      },
      () => undefined,
    );
    void lookups.then((l) => {
      const ds = job?.dataset_id ? l.datasets.get(job.dataset_id) : undefined;
      if (ds) {
        datasetLink = h("a", { href: `#/datasets/${ds.id}` }, ds.name);
        renderHeader();
      }
    });
    await Promise.all([loadSeries(), loadLogs(), loadArtifacts()]);
    startLive();
  })();

  return () => {
    abort.abort();
    window.clearTimeout(pollTimer);
    curves?.destroy();
    prChart?.destroy();
    urls.forEach((u) => URL.revokeObjectURL(u));
  };
}
