// The job's live curves and the level x term table that says which distillation term works.
import { LEVEL_COLORS, LineChart, PALETTE, type Point } from "../charts";
import { h, replace } from "../dom";
import { num } from "../format";
import { inSequence, type StageMark } from "../stages";

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

  /** Replaces every series (initial load or re-synchronisation). */
  load(series: Record<string, { step: number; value: number; stage?: string }[]>): void {
    let marks: StageMark[] = [];
    for (const [name, points] of Object.entries(series)) {
      // Stages in sequence: a fine-tune whose steps restart at 1 continues after the distillation.
      const staged = inSequence(points);
      if (staged.stages.length > marks.length) marks = staged.stages;
      const pts = staged.points.map((p) => ({ x: p.x, y: this.scale(name, p.value) }));
      const lastPoint = staged.points[staged.points.length - 1];
      if (lastPoint) this.position.set(name, { shift: lastPoint.x - lastPoint.step, last: lastPoint.step });
      this.series.set(name, pts);
      const target = this.route(name);
      if (target) target.chart.setSeries(name, pts, target.style);
    }
    this.showStages(marks);
    this.refreshVisibility();
    this.scheduleBreakdown();
  }

  /** Says where each stage starts when a job's series run in more than one. */
  private showStages(marks: StageMark[]): void {
    this.stageNote.textContent =
      marks.length > 1 ? `Stages in sequence on one step axis: ${marks.map((m) => `${m.name} from step ${m.start}`).join(", ")} (each stage's own steps restart at 1).` : "";
    this.stageNote.hidden = marks.length <= 1;
  }

  /** Adds one point of one series (live). */
  add(name: string, step: number, value: number): void {
    if (!Number.isFinite(value)) return;
    // A step lower than the last one seen starts the next stage: it continues the axis.
    const at = this.position.get(name) ?? { shift: 0, last: -Infinity };
    if (step < at.last) at.shift += at.last;
    at.last = step;
    this.position.set(name, at);
    const point = { x: step + at.shift, y: this.scale(name, value) };
    const pts = this.series.get(name) ?? [];
    const last = pts[pts.length - 1];
    if (last && last.x === step) last.y = point.y;
    else if (!last || last.x < step) pts.push(point);
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
