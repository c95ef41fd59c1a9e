// Metric series in stage order on one global step axis. A series whose points carry a stage is
// ordered by stage; one without (the API orders points by step) shows a restart as a step seen
// again: its n-th occurrence belongs to the n-th stage. Each stage continues after the last.

/** The order stages of a job run in (core/pipeline). */
export const STAGE_ORDER = ["teacher", "distill", "finetune"];

export interface StagedPoint {
  /** The step on one axis across stages. */
  x: number;
  /** The stage's own step. */
  step: number;
  value: number;
  stage: number;
  stageName: string | null;
}

/** Where each stage starts on the global axis (for captions): `[{name, start}]`. */
export interface StageMark {
  name: string;
  start: number;
}

/** A series' points in sequence: stage by stage, each after the previous one's last step. */
export function inSequence(points: { step: number; value: number; stage?: string }[]): { points: StagedPoint[]; stages: StageMark[] } {
  const staged = points.map((p, i) => ({ ...p, i }));
  const named = staged.some((p) => p.stage);
  const index = new Map<string, number>();
  const seen = new Map<number, number>();
  const rank = (name: string) => {
    const known = STAGE_ORDER.indexOf(name);
    return known >= 0 ? known : STAGE_ORDER.length + name.charCodeAt(0);
  };
  const stageOf = staged.map((p) => {
    if (named) return p.stage ?? "";
    const n = seen.get(p.step) ?? 0;
    seen.set(p.step, n + 1);
    return String(n);
  });
  const names = [...new Set(stageOf)].sort((a, b) => (named ? rank(a) - rank(b) : Number(a) - Number(b)));
  names.forEach((n, k) => index.set(n, k));
  const groups: StagedPoint[][] = names.map(() => []);
  staged.forEach((p, i) => {
    const k = index.get(stageOf[i]) ?? 0;
    groups[k].push({ x: p.step, step: p.step, value: p.value, stage: k, stageName: named ? stageOf[i] : null });
  });
  const out: StagedPoint[] = [];
  const stages: StageMark[] = [];
  let offset = 0;
  groups.forEach((g, k) => {
    g.sort((a, b) => a.step - b.step);
    if (!g.length) return;
    const first = g[0].step;
    const shift = k === 0 ? 0 : offset - first + 1;
    for (const p of g) out.push({ ...p, x: p.step + shift });
    stages.push({ name: named ? names[k] : `stage ${k + 1}`, start: g[0].step + shift });
    offset = g[g.length - 1].step + shift;
  });
  return { points: out, stages };
}
