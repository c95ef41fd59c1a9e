// The job's live curves and the level x term table that says which distillation term works.
import { LEVEL_COLORS, LineChart, PALETTE, stageWord, type Point } from "../charts";
import { h, replace } from "../dom";
import { num } from "../format";
import { inSequence, type StageMark } from "../stages";
import type { MetricPointRow } from "../types";

const TERMS = ["spatial", "semantic", "context"] as const;
const LEVELS = ["p2", "p3", "p4", "p5", "p6", "p7"];

/** All series of a job by name, and the charts they are drawn on. */
export class JobCurves {
  readonly element: HTMLElement;
  readonly breakdown: HTMLElement;
  private readonly series = new Map<string, Point[]>();
  private readonly charts: Record<string, LineChart>;
  private readonly optional: string[] = ["spatial", "semantic", "context", "response", "eval"];
  private breakdownPending = false;
  /** Per series: the last step seen and the shift its current stage has on the global axis. */
  private readonly position = new Map<string, { shift: number; last: number }>();
  private readonly stageNote: HTMLElement = h("p", { class: "muted", id: "stage-note" });

  constructor() {
    this.charts = {
      total: new LineChart("Total loss", { id: "loss-total" }),
      det: new LineChart("Detection loss (ground truth)", { id: "loss-det" }),
      spatial: new LineChart("KD spatial (feature imitation) per level", { id: "kd-spatial" }),
      semantic: new LineChart("KD semantic (attention) per level", { id: "kd-semantic" }),
      context: new LineChart("KD context (global + relation) per level", { id: "kd-context" }),
      response: new LineChart("KD response (logits)", { id: "kd-response" }),
      lr: new LineChart("Learning rate", { id: "lr" }),
      throughput: new LineChart("Throughput", { id: "throughput", yLabel: "images/s" }),
      eval: new LineChart("Validation AP during training (%)", { id: "eval", yLabel: "AP (%)", min: 0 }),
    };
    this.element = h("div", null, this.stageNote, h("div", { class: "chart-grid", id: "curves" }, Object.values(this.charts).map((c) => c.element)));
    this.breakdown = h("div", { id: "kd-breakdown" });
    this.refreshVisibility();
  }

  /** Per stage: its shift onto the global step axis (global step − the stage's own step). */
  private readonly stageShift = new Map<string, number>();
  private marks: StageMark[] = [];
  private maxX = 0;

  /** Replaces every series (initial load or re-synchronisation). */
  load(series: Record<string, MetricPointRow[]>): void {
    // The API places each point stored with its stage on the job's global step axis (stages in
    // the order they ran); older points are put in sequence here (a restarted step starts a stage).
    const starts = new Map<string, number>();
    for (const [name, points] of Object.entries(series)) {
      const global = points.length > 0 && points.every((p) => typeof p.global_step === "number");
      const staged = global
        ? points.map((p) => ({ x: p.global_step ?? p.step, step: p.step, value: p.value, stage: p.stage ?? "" }))
        : inSequence(points.map((p) => ({ step: p.step, value: p.value }))).points.map((p) => ({ x: p.x, step: p.step, value: p.value, stage: `stage ${p.stage + 1}` }));
      staged.sort((a, b) => a.x - b.x);
      for (const p of staged) {
        if (!p.stage) continue;
        starts.set(p.stage, Math.min(starts.get(p.stage) ?? Infinity, p.x));
        this.stageShift.set(p.stage, p.x - p.step);
      }
      const pts = staged.map((p) => ({ x: p.x, y: this.scale(name, p.value) }));
      const lastPoint = staged[staged.length - 1];
      if (lastPoint) {
        this.position.set(name, { shift: lastPoint.x - lastPoint.step, last: lastPoint.step });
        this.maxX = Math.max(this.maxX, lastPoint.x);
      }
      this.series.set(name, pts);
      const target = this.route(name);
      if (target) target.chart.setSeries(name, pts, target.style);
    }
    this.marks = [...starts].map(([name, start]) => ({ name, start })).sort((a, b) => a.start - b.start);
    this.showStages();
    this.refreshVisibility();
    this.scheduleBreakdown();
  }

  /** The stages in sequence: named on every chart, and said in words above them. */
  private showStages(): void {
    const marks = this.marks;
    for (const chart of Object.values(this.charts)) chart.setStages(marks);
    this.stageNote.textContent =
      marks.length > 1
        ? `Stages in sequence on one step axis: ${marks.map((m) => `${stageWord(m.name)} from step ${m.start}`).join(", ")} (each stage's own steps restart at 1).`
        : "";
    this.stageNote.hidden = marks.length <= 1;
    this.stageNote.dataset.stages = marks.map((m) => m.name).join(",");
  }

  /** Adds one point of one series (live); `stage` is the trainer's stage when known. */
  add(name: string, step: number, value: number, stage?: string | null): void {
    if (!Number.isFinite(value)) return;
    let x: number;
    if (stage) {
      // A stage seen for the first time continues the axis after everything drawn so far.
      let shift = this.stageShift.get(stage);
      if (shift === undefined) {
        shift = this.maxX > 0 ? this.maxX - step + 1 : 0;
        this.stageShift.set(stage, shift);
        this.marks = [...this.marks, { name: stage, start: step + shift }];
        this.showStages();
      }
      x = step + shift;
    } else {
      // A step lower than the last one seen starts the next stage: it continues the axis.
      const at = this.position.get(name) ?? { shift: 0, last: -Infinity };
      if (step < at.last) at.shift += at.last;
      at.last = step;
      this.position.set(name, at);
      x = step + at.shift;
    }
    this.maxX = Math.max(this.maxX, x);
    const point = { x, y: this.scale(name, value) };
    const pts = this.series.get(name) ?? [];
    const last = pts[pts.length - 1];
    if (last && last.x === x) last.y = point.y;
    else if (!last || last.x < x) pts.push(point);
    this.series.set(name, pts);
    const target = this.route(name);
    if (target) target.chart.append(name, point, target.style);
    this.refreshVisibility();
    this.scheduleBreakdown();
  }

  /** Names of the series seen so far. */
  names(): string[] {
    return [...this.series.keys()];
  }

  /** Frees the charts. */
  destroy(): void {
    Object.values(this.charts).forEach((c) => c.destroy());
  }

  private scale(name: string, value: number): number {
    return name.startsWith("eval/") ? value * 100 : value;
  }

  private route(name: string): { chart: LineChart; style: { color?: string; label?: string; dash?: number[] } } | null {
    if (name === "loss/total") return { chart: this.charts.total, style: { color: "#0f172a", label: "total" } };
    if (name === "lr") return { chart: this.charts.lr, style: { color: "#0891b2", label: "lr" } };
    if (name === "throughput") return { chart: this.charts.throughput, style: { color: "#16a34a", label: "images/s" } };
    if (name === "kd/response") return { chart: this.charts.response, style: { color: "#9333ea", label: "response" } };
    const [family, term, level] = name.split("/");
    if (family === "det") {
      const idx = ["classification", "bbox_regression", "bbox_ctrness"].indexOf(term);
      return { chart: this.charts.det, style: { color: PALETTE[idx >= 0 ? idx : 5], label: term } };
    }
    if (family === "kd" && (TERMS as readonly string[]).includes(term)) {
      return { chart: this.charts[term], style: { color: LEVEL_COLORS[level] ?? "#64748b", label: (level ?? term).toUpperCase() } };
    }
    if (family === "eval") {
      const idx = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"].indexOf(term);
      return { chart: this.charts.eval, style: { color: PALETTE[idx >= 0 ? idx : 6], label: term, dash: term === "AP_small" ? [] : [4, 3] } };
    }
    return null;
  }

  private refreshVisibility(): void {
    for (const key of this.optional) {
      this.charts[key].element.hidden = !this.charts[key].hasData() && !this.hasPrefix(key);
    }
  }

  private hasPrefix(key: string): boolean {
    const prefix = key === "eval" ? "eval/" : key === "response" ? "kd/response" : `kd/${key}/`;
    return [...this.series.keys()].some((n) => n.startsWith(prefix));
  }

  private scheduleBreakdown(): void {
    if (this.breakdownPending) return;
    this.breakdownPending = true;
    setTimeout(() => {
      this.breakdownPending = false;
      this.renderBreakdown();
    }, 500);
  }

  /** The mean of each KD term per level over the last quarter of training, and its share. */
  private renderBreakdown(): void {
    const recent = (pts: Point[]) => {
      if (!pts.length) return null;
      const tail = pts.slice(Math.floor(pts.length * 0.75));
      return tail.reduce((s, p) => s + p.y, 0) / tail.length;
    };
    const cells = new Map<string, number>();
    const levels = new Set<string>();
    for (const [name, pts] of this.series) {
      const [family, term, level] = name.split("/");
      if (family !== "kd" || !level || !(TERMS as readonly string[]).includes(term)) continue;
      const v = recent(pts);
      if (v === null) continue;
      cells.set(`${term}/${level}`, v);
      levels.add(level);
    }
    const response = recent(this.series.get("kd/response") ?? []);
    const total = [...cells.values()].reduce((s, v) => s + v, 0) + (response ?? 0);
    if (!cells.size && response === null) {
      replace(
        this.breakdown,
        h("p", { class: "muted" }, "No distillation terms in this job (detection loss only), or none reported yet."),
      );
      return;
    }
    const levelList = LEVELS.filter((l) => levels.has(l));
    const shade = (v: number) => `background: rgba(37, 99, 235, ${total > 0 ? Math.min(0.85, (v / total) * 1.6).toFixed(2) : 0})`;
    const cell = (v: number | undefined) =>
      v === undefined
        ? h("td", { class: "num muted" }, "off")
        : h(
            "td",
            { class: "num heat", style: shade(v), title: `${num(v, 4)} (${total > 0 ? ((v / total) * 100).toFixed(1) : 0}% of KD)` },
            num(v, 3),
            h("span", { class: "share" }, `${total > 0 ? ((v / total) * 100).toFixed(0) : 0}%`),
          );
    let best = "";
    let bestValue = -Infinity;
    for (const [key, v] of cells) {
      if (v > bestValue) {
        bestValue = v;
        best = key;
      }
    }
    const levelTotals = levelList.map((l) => TERMS.reduce((s, t) => s + (cells.get(`${t}/${l}`) ?? 0), 0));
    replace(
      this.breakdown,
      h(
        "p",
        { class: "muted" },
        "Weighted loss of each term at each pyramid level, averaged over the last quarter of the steps seen; the share is of the whole KD loss. ",
        best ? h("strong", null, `Largest: ${best.split("/")[0]} at ${best.split("/")[1].toUpperCase()}.`) : null,
      ),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table heatmap", id: "kd-matrix" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", null, "Level"),
              TERMS.map((t) => h("th", { class: "num" }, t)),
              h("th", { class: "num" }, "level total"),
            ),
          ),
          h(
            "tbody",
            null,
            levelList.map((l, i) =>
              h(
                "tr",
                null,
                h("th", { scope: "row" }, h("span", { class: "dot", style: `background:${LEVEL_COLORS[l]}` }), l.toUpperCase(), l === "p2" ? h("span", { class: "sub" }, " small objects") : null),
                TERMS.map((t) => cell(cells.get(`${t}/${l}`))),
                cell(levelTotals[i]),
              ),
            ),
            response !== null ? h("tr", null, h("th", { scope: "row" }, "response (logits)"), h("td", { colspan: 3 }), cell(response)) : null,
          ),
        ),
      ),
    );
  }
}
