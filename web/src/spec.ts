// The job spec as the New job form edits it: defaults and ablation presets of core/spec.py.
import type { DistillSpec, JobSpec, LevelWeights } from "./types";

export const LEVELS = ["p2", "p3", "p4", "p5"] as const;
export const TERMS = ["spatial", "semantic", "context"] as const;

export const TEACHER_ARCHS = [
  "retinanet_resnet50_fpn",
  "retinanet_resnet18_fpn",
  "fcos_resnet50_fpn",
  "fcos_resnet18_fpn",
  "torchvision_retinanet_resnet50_fpn",
  "torchvision_retinanet_resnet50_fpn_v2",
  "torchvision_fcos_resnet50_fpn",
  "torchvision_fasterrcnn_resnet50_fpn",
  "torchvision_fasterrcnn_resnet50_fpn_v2",
];

export const STUDENT_ARCHS = [
  "retinanet_mobilenet_v2_fpn",
  "retinanet_shufflenet_v2_fpn",
  "retinanet_mobilenet_v3_fpn",
  "fcos_mobilenet_v2_fpn",
  "fcos_shufflenet_v2_fpn",
  "fcos_mobilenet_v3_fpn",
];

export type Preset = "no_kd" | "response" | "pkd" | "single_level" | "hierarchical" | "custom";

/** core/spec.py DEFAULT_LAMBDA_KD and PKD_LAMBDA_KD. */
export const DEFAULT_LAMBDA_KD = 0.001;
export const PKD_LAMBDA_KD = 3;

export const PRESETS: { id: Exclude<Preset, "custom">; label: string; text: string }[] = [
  { id: "no_kd", label: "No KD", text: "Baseline: the student learns from labels only." },
  { id: "response", label: "Response KD", text: "KD on the classification logits (LD / CrossKD normalisation: by the positive anchors, with temperature)." },
  { id: "pkd", label: "PKD", text: "Pearson-correlation feature imitation on every cell of P2–P5 through a learned adapter (PKD, NeurIPS 2022)." },
  { id: "single_level", label: "Single-level", text: "Feature KD at P3 only (all three terms)." },
  { id: "hierarchical", label: "Hierarchical", text: "Spatial, semantic and context KD at every level P2–P5 (the paper's method)." },
];

/** The default DistillSpec (every term on at every level, as core/spec.py). */
export function defaultDistill(): DistillSpec {
  const levels: Record<string, LevelWeights> = {};
  for (const l of LEVELS) levels[l] = { spatial: 1, semantic: 1, context: 1 };
  return {
    lambda_kd: DEFAULT_LAMBDA_KD,
    levels,
    response: 0,
    temperature: 2,
    warmup_steps: 0,
    balance_levels: true,
    spatial: { fg_weight: 1, bg_weight: 0.5, adapter: "fitted", masked: true, scale_aware: true, normalize: true },
    semantic: { p: 2, channel: false },
    context: { global_context: true, relation: true, relation_grid: 4 },
  };
}

/** A new spec with the form's defaults: quick enough to try, the paper's method on. */
export function defaultSpec(kind: "distill" | "teacher" = "distill"): JobSpec {
  return {
    kind,
    data: { dataset_id: null, image_size: 160, batch_size: 8, augment: { hflip: true, color_jitter: 0, copy_paste: false } },
    teacher: { arch: "retinanet_resnet50_fpn", teacher_id: null, fpn_channels: 256 },
    student: kind === "distill" ? { arch: "retinanet_mobilenet_v2_fpn", fpn_channels: 96 } : null,
    distill: defaultDistill(),
    schedule: {
      epochs: 12,
      optimizer: "adamw",
      lr: 0.001,
      weight_decay: 0.0001,
      lr_schedule: "cosine",
      warmup_steps: 50,
      max_steps_per_epoch: null,
      eval_every: 1,
      finetune_epochs: 0,
      device: "auto",
      amp: true,
    },
    seed: 0,
  };
}

const ZERO: LevelWeights = { spatial: 0, semantic: 0, context: 0 };
const ONE: LevelWeights = { spatial: 1, semantic: 1, context: 1 };

function nonZero(w: LevelWeights | undefined): boolean {
  return Boolean(w && (w.spatial || w.semantic || w.context));
}

/** Applies one of the paper's ablation presets to a DistillSpec (as core.spec.ablation_distill). */
export function applyPreset(d: DistillSpec, preset: Exclude<Preset, "custom">): DistillSpec {
  const out: DistillSpec = { ...d, levels: { ...d.levels } };
  if (preset !== "pkd" && detectPreset(d) === "pkd") {
    // Leaving PKD: back to the default spatial options and level balance.
    const base = defaultDistill();
    out.spatial = base.spatial;
    out.balance_levels = base.balance_levels;
    for (const l of LEVELS) out.levels[l] = { ...base.levels[l] };
    out.lambda_kd = base.lambda_kd;
  }
  if (preset === "no_kd") {
    for (const l of LEVELS) out.levels[l] = { ...ZERO };
    out.response = 0;
    out.lambda_kd = 0;
  } else if (preset === "response") {
    for (const l of LEVELS) out.levels[l] = { ...ZERO };
    out.response = d.response > 0 ? d.response : 1;
    out.lambda_kd = out.lambda_kd || DEFAULT_LAMBDA_KD;
  } else if (preset === "pkd") {
    for (const l of LEVELS) out.levels[l] = { spatial: 1, semantic: 0, context: 0 };
    out.response = 0;
    out.lambda_kd = PKD_LAMBDA_KD;
    out.balance_levels = false;
    out.spatial = { ...(d.spatial ?? {}), adapter: "learned", masked: false, normalize: true };
  } else if (preset === "single_level") {
    const p3 = nonZero(out.levels.p3) ? out.levels.p3 : ONE;
    for (const l of LEVELS) out.levels[l] = l === "p3" ? { ...p3 } : { ...ZERO };
    out.response = 0;
    out.lambda_kd = out.lambda_kd || DEFAULT_LAMBDA_KD;
  } else {
    for (const l of LEVELS) out.levels[l] = nonZero(out.levels[l]) ? { ...out.levels[l] } : { ...ONE };
    out.response = 0;
    out.lambda_kd = out.lambda_kd || DEFAULT_LAMBDA_KD;
  }
  return out;
}

/** Which preset a DistillSpec is (or "custom"). */
export function detectPreset(d: DistillSpec): Preset {
  const on = LEVELS.filter((l) => nonZero(d.levels[l]));
  if (d.lambda_kd === 0 || (!on.length && !d.response)) return "no_kd";
  if (!on.length && d.response > 0) return "response";
  if (d.response > 0) return "custom";
  if (d.spatial?.adapter === "learned" && d.spatial?.masked === false && on.length === LEVELS.length && LEVELS.every((l) => !d.levels[l].semantic && !d.levels[l].context)) return "pkd";
  if (on.length === 1 && on[0] === "p3") return "single_level";
  if (on.length === LEVELS.length) return "hierarchical";
  return "custom";
}

/** Reads a dotted path ("schedule.epochs") of an object. */
export function getPath(obj: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), obj);
}

/** Writes a dotted path, creating objects on the way. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let o: Record<string, unknown> = obj;
  for (const k of keys.slice(0, -1)) {
    if (!o[k] || typeof o[k] !== "object") o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]] = value;
}
