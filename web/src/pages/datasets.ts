// Datasets: upload with progress, statistics (object sizes with COCO's buckets), errors by file.
import type { Chart, Plugin } from "chart.js";
import { get } from "../api";
import { barChart } from "../charts";
import { h, replace } from "../dom";
import { uploader } from "../users";
import { bytes, fullTime, relativeTime } from "../format";
import { href } from "../router";
import type { Dataset, DatasetStatistics, ListOf } from "../types";
import { issuesByFile } from "../components/issues";
import { card, emptyState, errorState, loading, pageHeader, stateBadge, toast } from "../components/ui";
import { uploadForm } from "../components/upload";
import { appendName, deleteButton, listTable, namedField, num, poll } from "../components/uploaded";

const BUCKET_COLORS = { small: "#dc2626", medium: "#ea580c", large: "#2563eb" };

/** The dataset list with its upload form; polls while a dataset is validating. */
export function renderDatasets(main: HTMLElement): () => void {
  const list = h("div", null, loading());
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 200, placeholder: "e.g. visdrone-2019" });
  const format = h("select", { name: "format" }, h("option", { value: "auto" }, "Detect (COCO or VOC)"), h("option", { value: "coco" }, "COCO"), h("option", { value: "voc" }, "Pascal VOC"));
  const nameField = namedField("Name", name, "name");
  const formatField = namedField("Format", format, "format");
  const form = uploadForm<Dataset>({
    id: "dataset-upload",
    path: "/datasets",
    accept: ".zip,.tar,.tar.gz,.tgz,application/zip,application/x-tar,application/gzip",
    fileHint: "A .zip or .tar(.gz) archive. COCO: annotations/instances_<split>.json + images/. VOC: Annotations/, JPEGImages/, ImageSets/Main/.",
    fields: [nameField, formatField],
    collect: (data) => {
      const problem = appendName(data, name, nameField, "dataset");
      if (problem) return problem;
      data.append("format", format.value);
      return null;
    },
    onDone: (row) => {
      toast(`Dataset “${row.name}” uploaded; validating…`, "success");
      lister.refresh();
    },
  });
  name.addEventListener("input", () => (nameField.querySelector(".field-error")!.textContent = ""));

  replace(main, pageHeader("Datasets", "COCO or Pascal VOC archives, validated and measured on upload."), card("Upload a dataset", form), list);

  const lister = poll({
    fetch: () => get<ListOf<Dataset>>("/datasets", { limit: 200 }),
    render: (res) => {
      if (!res.data.length) {
        replace(list, emptyState("No datasets yet", "Upload an archive above. Tip: `distillery data synthetic` makes a small-object benchmark to try."));
      } else {
        replace(
          list,
          listTable(
            "datasets-table",
            ["Name", "Status", "Format", num("Images"), num("Boxes"), num("Small"), num("Size"), "Uploaded", "By", ""],
            res.data.map((d) =>
              h(
                "tr",
                { "data-dataset-id": d.id },
                h("td", null, h("a", { href: `#/datasets/${d.id}` }, d.name)),
                h("td", null, stateBadge(d.status), d.status === "invalid" && d.errors ? h("span", { class: "muted" }, ` ${d.errors.length} errors`) : null),
                h("td", null, d.format),
                h("td", { class: "num" }, String(d.statistics?.images ?? "—")),
                h("td", { class: "num" }, String(d.statistics?.annotations ?? "—")),
                h("td", { class: "num" }, smallShare(d.statistics)),
                h("td", { class: "num" }, bytes(d.size_bytes)),
                h("td", { title: fullTime(d.created_at) }, relativeTime(d.created_at)),
                h("td", { class: "col-user" }, uploader(d.created_by)),
                h("td", null, d.status === "ready" ? h("a", { class: "btn btn-small", href: href("/new", { dataset: d.id }) }, "Use in a job") : null),
              ),
            ),
          ),
        );
      }
      return res.data.some((d) => d.status === "validating");
    },
    fail: (message, retry) => replace(list, errorState(message, retry)),
    every: 2000,
  });
  return lister.stop;
}

function smallShare(s: DatasetStatistics | null | undefined): string {
  const b = s?.size_buckets;
  if (!b) return "—";
  const total = (b.small ?? 0) + (b.medium ?? 0) + (b.large ?? 0);
  return total ? `${Math.round(((b.small ?? 0) / total) * 100)}%` : "—";
}

/** Dashed lines at COCO's small/medium thresholds on the size histogram. */
function thresholdLines(edges: number[], thresholds: number[]): Plugin<"bar"> {
  return {
    id: "thresholds",
    afterDatasetsDraw(chart: Chart<"bar">) {
      const x = chart.scales.x;
      const { top, bottom } = chart.chartArea;
      const ctx = chart.ctx;
      for (const t of thresholds) {
        const i = edges.findIndex((e) => e >= t);
        if (i <= 0 || i >= edges.length - 1) continue;
        // Between bar i-1 and bar i, moved by where t falls inside the edges.
        const left = x.getPixelForValue(i - 1);
        const right = x.getPixelForValue(i);
        const pos = (left + right) / 2 + ((t - edges[i]) / (edges[i + 1] - edges[i] || 1)) * (right - left);
        ctx.save();
        ctx.strokeStyle = "#0f172a";
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(pos, top);
        ctx.lineTo(pos, bottom);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = "#0f172a";
        ctx.fillText(`${t} px`, pos + 3, top + 10);
        ctx.restore();
      }
    },
  };
}

/** The statistics of a dataset: size buckets, size histogram, boxes per class. */
export function statisticsView(s: DatasetStatistics): HTMLElement {
  const small = s.small_threshold ?? 32;
  const medium = s.medium_threshold ?? 96;
  const b = s.size_buckets ?? {};
  const total = (b.small ?? 0) + (b.medium ?? 0) + (b.large ?? 0);
  const tile = (key: "small" | "medium" | "large", label: string, rule: string) =>
    h(
      "div",
      { class: "stat bucket", "data-bucket": key, style: `border-left-color:${BUCKET_COLORS[key]}` },
      h("div", { class: "stat-label" }, label, h("span", { class: "sub" }, ` ${rule}`)),
      h("div", { class: "stat-value" }, String(b[key] ?? 0)),
      h("div", { class: "sub" }, total ? `${(((b[key] ?? 0) / total) * 100).toFixed(1)}% of boxes` : ""),
    );
  const parts: HTMLElement[] = [
    h(
      "div",
      { class: "stats", id: "dataset-stats" },
      h("div", { class: "stat" }, h("div", { class: "stat-label" }, "Images"), h("div", { class: "stat-value" }, String(s.images ?? "—"))),
      h("div", { class: "stat" }, h("div", { class: "stat-label" }, "Boxes"), h("div", { class: "stat-value" }, String(s.annotations ?? "—"))),
      h("div", { class: "stat" }, h("div", { class: "stat-label" }, "Classes"), h("div", { class: "stat-value" }, String(Array.isArray(s.categories) ? s.categories.length : (s.categories ?? "—")))),
      tile("small", "Small", `< ${small}²`),
      tile("medium", "Medium", `${small}²–${medium}²`),
      tile("large", "Large", `≥ ${medium}²`),
    ),
  ];
  const hist = s.size_histogram;
  const charts = h("div", { class: "two-col" });
  if (hist && hist.counts?.length) {
    const labels = hist.counts.map((_, i) => `${Math.round(hist.edges[i])}–${Math.round(hist.edges[i + 1])}`);
    const colors = hist.counts.map((_, i) => {
      const mid = (hist.edges[i] + hist.edges[i + 1]) / 2;
      return mid < small ? BUCKET_COLORS.small : mid < medium ? BUCKET_COLORS.medium : BUCKET_COLORS.large;
    });
    const chart = barChart("Object size (√area, px)", labels, [{ label: "boxes", data: hist.counts, colors }], {
      id: "size-histogram",
      height: 240,
      xLabel: "√(box area) in pixels",
      yLabel: "boxes",
      ariaLabel: `Object size histogram: ${b.small ?? 0} small, ${b.medium ?? 0} medium, ${b.large ?? 0} large`,
      plugins: [thresholdLines(hist.edges, [small, medium])],
    });
    chart.element.append(
      h(
        "p",
        { class: "legend" },
        h("span", { class: "dot", style: `background:${BUCKET_COLORS.small}` }),
        "small",
        h("span", { class: "dot", style: `background:${BUCKET_COLORS.medium}` }),
        "medium",
        h("span", { class: "dot", style: `background:${BUCKET_COLORS.large}` }),
        "large (COCO's thresholds, dashed)",
      ),
    );
    charts.append(chart.element);
  }
  const perClass = Object.entries(s.boxes_per_class ?? {}).sort((a, c) => c[1] - a[1]);
  if (perClass.length) {
    const shown = perClass.slice(0, 30);
    charts.append(
      barChart(perClass.length > 30 ? "Boxes per class (top 30)" : "Boxes per class", shown.map(([k]) => k), [{ label: "boxes", data: shown.map(([, v]) => v), colors: "#475569" }], {
        id: "boxes-per-class",
        horizontal: true,
        height: Math.max(160, shown.length * 22 + 40),
      }).element,
    );
  }
  parts.push(charts);
  return h("div", null, parts);
}

/** One dataset: statistics or validation errors; polls while validating. */
export function renderDataset(main: HTMLElement, id: number): () => void {
  replace(main, loading());
  return poll({
    fetch: () => get<Dataset>(`/datasets/${id}`),
    render: (d) => {
      replace(
        main,
        pageHeader(
          h("span", null, d.name, " ", stateBadge(d.status)),
          h("span", null, `${d.format.toUpperCase()} · ${bytes(d.size_bytes)} · uploaded ${relativeTime(d.created_at)} by `, uploader(d.created_by)),
          d.status === "ready" ? h("a", { class: "btn btn-primary", href: href("/new", { dataset: d.id }) }, "Use in a job") : null,
          h("a", { class: "btn", href: href("/jobs", { dataset: d.id }) }, "Jobs on it"),
          deleteButton(`dataset “${d.name}”`, `/datasets/${d.id}`, "#/datasets"),
        ),
        d.status === "validating" ? card("Validating", loading("Unpacking and checking every image and annotation…")) : null,
        d.errors && d.errors.length ? card(d.status === "invalid" ? "Validation errors" : "Warnings", issuesByFile(d.errors)) : null,
        d.statistics ? card("Statistics", statisticsView(d.statistics)) : d.status === "ready" ? card("Statistics", h("p", { class: "muted" }, "No statistics were computed.")) : null,
      );
      return d.status === "validating";
    },
    fail: (message, retry) => replace(main, errorState(message, retry), h("a", { class: "btn", href: "#/datasets" }, "Back to datasets")),
    every: 1500,
  }).stop;
}
