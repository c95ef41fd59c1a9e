// Chart.js, registered piece by piece so the bundle carries only what the dashboard draws.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
  type ChartDataset,
  type Plugin,
} from "chart.js";
import { h } from "./dom";
import { num } from "./format";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
);
Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
Chart.defaults.font.size = 11;
Chart.defaults.color = "#475569";

/** Colours of pyramid levels, the same on every chart: P2 (small objects) stands out. */
export const LEVEL_COLORS: Record<string, string> = {
  p2: "#dc2626",
  p3: "#ea580c",
  p4: "#2563eb",
  p5: "#7c3aed",
  p6: "#0891b2",
  p7: "#64748b",
};

/** A palette for series without a fixed colour (jobs in Compare, detection terms). */
export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#475569"];

export interface Point {
  x: number;
  y: number;
}

type LineSet = ChartDataset<"line", Point[]>;

/** Where a training stage starts on a chart's x axis, and its name (drawn as a labelled rule). */
export interface StageLabel {
  name: string;
  start: number;
}

/** Human words for the trainer's stage names. */
export function stageWord(name: string): string {
  return ({ teacher: "teacher", distill: "distill", finetune: "fine-tune", evaluate: "evaluate" } as Record<string, string>)[name] ?? name;
}

/** A live line chart keyed by series name; appends are batched to one redraw per frame. */
export class LineChart {
  readonly element: HTMLElement;
  private chart: Chart<"line", Point[]>;
  private pending = false;
  private readonly empty: HTMLElement;
  private stages: StageLabel[] = [];

  constructor(
    title: string,
    private readonly opts: { yLabel?: string; log?: boolean; xLabel?: string; height?: number; id?: string; min?: number } = {},
  ) {
    const canvas = h("canvas", { role: "img", "aria-label": title });
    this.empty = h("div", { class: "chart-empty" }, "No data yet");
    this.element = h(
      "figure",
      { class: "chart", "data-chart": opts.id ?? title },
      h("figcaption", null, title),
      h("div", { class: "chart-box", style: `height:${opts.height ?? 220}px` }, canvas, this.empty),
    );
    // Stage boundaries: a dashed rule where each later stage starts, every stage named at the top.
    const stagesPlugin: Plugin<"line"> = {
      id: "stages",
      afterDatasetsDraw: (chart) => {
        const x = chart.scales.x;
        if (!x || this.stages.length < 2 || !this.hasData()) return;
        const { ctx, chartArea } = chart;
        ctx.save();
        ctx.font = "10px system-ui, sans-serif";
        ctx.fillStyle = "#475569";
        ctx.strokeStyle = "#94a3b8";
        ctx.setLineDash([3, 3]);
        this.stages.forEach((stage, i) => {
          const at = x.getPixelForValue(i === 0 ? Math.max(stage.start, x.min) : stage.start - 0.5);
          if (at < chartArea.left - 1 || at > chartArea.right + 1) return;
          if (i > 0) {
            ctx.beginPath();
            ctx.moveTo(at, chartArea.top);
            ctx.lineTo(at, chartArea.bottom);
            ctx.stroke();
          }
          ctx.fillText(stageWord(stage.name), Math.min(at + 4, chartArea.right - 40), chartArea.top + 10);
        });
        ctx.restore();
      },
    };
    this.chart = new Chart(canvas, {
      type: "line",
      plugins: [stagesPlugin],
      data: { datasets: [] },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        maintainAspectRatio: false,
        responsive: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        // A series of one point would draw nothing without a marker.
        elements: {
          point: { radius: (ctx) => ((ctx.dataset?.data?.length ?? 0) <= 1 ? 3 : 0), hitRadius: 6 },
          line: { borderWidth: 1.6, tension: 0 },
        },
        scales: {
          x: { type: "linear", title: { display: true, text: opts.xLabel ?? "step" }, ticks: { maxTicksLimit: 8 } },
          y: {
            type: opts.log ? "logarithmic" : "linear",
            title: { display: Boolean(opts.yLabel), text: opts.yLabel ?? "" },
            ticks: { maxTicksLimit: 6, callback: (v) => num(Number(v)) },
          },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 2, padding: 8 } },
          tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${num(c.parsed.y, 4)}` } },
        },
      },
    });
  }

  /** Replaces (or creates) one series. */
  setSeries(name: string, points: Point[], style: { color?: string; dash?: number[]; label?: string } = {}): void {
    const set = this.dataset(name, style);
    set.data = points.slice();
    this.schedule();
  }

  /** Removes one series (and its legend entry); nothing when it is not drawn. */
  removeSeries(name: string): void {
    const sets = this.chart.data.datasets;
    const index = sets.findIndex((d) => (d as LineSet & { key?: string }).key === name);
    if (index < 0) return;
    sets.splice(index, 1);
    this.schedule();
  }

  /** Adds one point to a series (ignores a step it already has, so replays do not duplicate). */
  append(name: string, point: Point, style: { color?: string; dash?: number[]; label?: string } = {}): void {
    const set = this.dataset(name, style);
    const last = set.data[set.data.length - 1];
    if (last && point.x <= last.x) {
      if (point.x === last.x) last.y = point.y;
      else return;
    } else {
      set.data.push(point);
    }
    this.schedule();
  }

  /** Names the stages on the x axis (none or one: nothing drawn). */
  setStages(stages: StageLabel[]): void {
    this.stages = stages.slice();
    this.element.dataset.stages = stages.map((st) => st.name).join(",");
    this.schedule();
  }

  /** Sets the x axis title (step, epoch, wall time). */
  setXLabel(text: string): void {
    const x = this.chart.options.scales?.x;
    if (x && "title" in x && x.title) x.title.text = text;
    this.schedule();
  }

  /** Whether any series has points. */
  hasData(): boolean {
    return this.chart.data.datasets.some((d) => d.data.length > 0);
  }

  /** Frees the canvas. */
  destroy(): void {
    this.chart.destroy();
  }

  /** One value (a single point, or a flat line) gets an axis around it, not Chart.js's -1..1. */
  private fitFlatAxis(): void {
    const ys = this.chart.data.datasets.flatMap((d) => d.data.map((p) => p.y)).filter((y) => Number.isFinite(y));
    const y = this.chart.options.scales?.y;
    if (!y || this.opts.log) return;
    const floor = this.opts.min;
    if (ys.length && Math.min(...ys) === Math.max(...ys)) {
      const v = ys[0];
      const pad = Math.abs(v) * 0.25 || 1;
      y.min = floor !== undefined ? Math.max(floor, v - pad) : v - pad;
      y.max = v + pad;
    } else {
      y.min = floor;
      y.max = undefined;
    }
    const xs = this.chart.data.datasets.flatMap((d) => d.data.map((p) => p.x));
    const x = this.chart.options.scales?.x;
    if (x && xs.length && Math.min(...xs) === Math.max(...xs)) {
      x.min = Math.max(0, xs[0] - 1);
      x.max = xs[0] + 1;
    } else if (x) {
      x.min = undefined;
      x.max = undefined;
    }
  }

  private dataset(name: string, style: { color?: string; dash?: number[]; label?: string }): LineSet {
    let set = this.chart.data.datasets.find((d) => (d as LineSet & { key?: string }).key === name) as LineSet | undefined;
    if (!set) {
      const color = style.color ?? PALETTE[this.chart.data.datasets.length % PALETTE.length];
      set = {
        label: style.label ?? name,
        data: [],
        borderColor: color,
        backgroundColor: color,
        borderDash: style.dash ?? [],
      };
      (set as LineSet & { key?: string }).key = name;
      this.chart.data.datasets.push(set);
    }
    return set;
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.empty.hidden = this.hasData();
      // How many points are drawn, for tests and tools that watch the chart fill live.
      this.element.dataset.points = String(this.chart.data.datasets.reduce((n, d) => n + d.data.length, 0));
      this.fitFlatAxis();
      this.chart.update("none");
      // The values drawn (after any smoothing), for tests and tools.
      const ys = this.chart.data.datasets.flatMap((d) => d.data.map((p) => p.y)).filter((y) => Number.isFinite(y));
      if (ys.length) Object.assign(this.element.dataset, { dataMin: String(Math.min(...ys)), dataMax: String(Math.max(...ys)) });
      // The axes as drawn, for tests and tools (a single point must not read as -1..1).
      const { x, y } = this.chart.scales;
      if (y) Object.assign(this.element.dataset, { yMin: String(y.min), yMax: String(y.max) });
      if (x) Object.assign(this.element.dataset, { xMin: String(x.min), xMax: String(x.max) });
    });
  }
}

/** A bar chart (histograms, boxes per class, metric bars). */
export function barChart(
  title: string,
  labels: string[],
  datasets: { label: string; data: number[]; colors?: string[] | string }[],
  opts: { height?: number; horizontal?: boolean; yLabel?: string; xLabel?: string; id?: string; ariaLabel?: string; plugins?: Plugin<"bar">[] } = {},
): { element: HTMLElement; chart: Chart<"bar"> } {
  const canvas = h("canvas", { role: "img", "aria-label": opts.ariaLabel ?? title });
  const element = h(
    "figure",
    { class: "chart", "data-chart": opts.id ?? title },
    h("figcaption", null, title),
    h("div", { class: "chart-box", style: `height:${opts.height ?? 220}px` }, canvas),
  );
  const chart = new Chart(canvas, {
    type: "bar",
    plugins: opts.plugins ?? [],
    data: {
      labels,
      datasets: datasets.map((d, i) => ({
        label: d.label,
        data: d.data,
        backgroundColor: d.colors ?? PALETTE[i % PALETTE.length],
        borderWidth: 0,
        barPercentage: 0.95,
        categoryPercentage: datasets.length > 1 ? 0.8 : 1.0,
      })),
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      responsive: true,
      indexAxis: opts.horizontal ? "y" : "x",
      scales: {
        x: { title: { display: Boolean(opts.xLabel), text: opts.xLabel ?? "" }, ticks: { maxRotation: 0, autoSkip: true } },
        y: { title: { display: Boolean(opts.yLabel), text: opts.yLabel ?? "" }, beginAtZero: true },
      },
      plugins: { legend: { display: datasets.length > 1, position: "bottom" } },
    },
  });
  return { element, chart };
}
