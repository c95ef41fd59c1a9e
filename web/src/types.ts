// Shapes of the REST API's answers (docs/contracts.md, REST API section).

export interface TeamRef {
  id: number;
  name: string;
  role: string;
}

export interface Me {
  id: number;
  email: string;
  name: string;
  teams: TeamRef[];
}

export interface ListOf<T> {
  data: T[];
  count: number;
}

export type JobState = "queued" | "running" | "succeeded" | "failed" | "canceled";

export interface Progress {
  stage?: string;
  epoch?: number;
  epochs?: number;
  step?: number;
  total_steps?: number;
  eta_seconds?: number | null;
  images_per_sec?: number | null;
  lr?: number | null;
  losses?: Record<string, number>;
}

export interface CocoMetrics {
  AP?: number;
  AP50?: number;
  AP75?: number;
  AP_small?: number;
  AP_medium?: number;
  AP_large?: number;
  per_class?: Record<string, number>;
  /** Precision at 101 recall points, IoU 0.5 (core/evaluation/coco.py `pr_curves`). */
  pr_curve?: PrCurve | null;
}

export interface PrCurve {
  iou: number;
  recall: number[];
  /** The mean over the classes with ground truth. */
  all: number[];
  per_class: Record<string, number[]>;
}

/** Cost of one model (core/evaluation/efficiency.py); older jobs carry one median, no spread. */
export interface ModelEfficiency {
  params?: number;
  gflops?: number;
  /** The median of `latency_repeats` timed runs after `latency_warmup` untimed ones. */
  latency_ms?: number;
  latency_p10_ms?: number;
  latency_p90_ms?: number;
  latency_repeats?: number;
  latency_warmup?: number;
  device?: string;
  /** The same figures for onnxruntime (CPU) running the exported model. */
  onnx_latency_ms?: number;
  onnx_latency_p10_ms?: number;
  onnx_latency_p90_ms?: number;
  onnx_latency_repeats?: number;
  onnx_latency_warmup?: number;
  onnx_device?: string;
}

/** metrics.json `evaluation`: the split, how many of its images, whole or sliced. */
export interface EvaluationMode {
  mode?: "whole" | "sliced" | string;
  split?: string;
  images?: number;
  image_size?: number;
  tile_size?: number;
  overlap?: number;
  full_image?: boolean;
  merge?: string;
}

export interface JobMetrics {
  kind?: string;
  spec_hash?: string;
  student?: CocoMetrics | null;
  teacher?: CocoMetrics | null;
  efficiency?: {
    student?: ModelEfficiency | null;
    teacher?: ModelEfficiency | null;
    ratios?: { params?: number; gflops?: number; latency?: number } | null;
  } | null;
  /** The ONNX export check: onnxruntime vs PyTorch outputs on one input. */
  export?: { onnx_max_abs_diff?: number | null } | null;
  /** How the val figures were made (core/pipeline/context.py `evaluation_mode`); `images`
   * is missing from metrics written before it (dataset.val_images is the same count). */
  evaluation?: EvaluationMode | null;
  /** What the evaluation ran on. */
  dataset?: { train_images?: number; val_images?: number; categories?: (string | number)[]; val_split?: string } | null;
  [key: string]: unknown;
}

export interface Job {
  id: number;
  name: string;
  kind: string;
  state: JobState;
  spec: JobSpec;
  spec_hash: string;
  dataset_id: number | null;
  teacher_id: number | null;
  created_by: number | null;
  creator_email: string | null;
  progress: Progress | null;
  metrics: JobMetrics | null;
  attempt: number;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  tags?: string[];
  note?: string;
}

/** The spec fields a job list shows (GET /jobs rows carry no spec). */
export interface SpecSummary {
  student_arch: string | null;
  teacher_arch: string | null;
  preset: string | null;
  lambda_kd: number | null;
  lr: number | null;
  epochs: number | null;
  image_size: number | null;
}

/** A row of GET /jobs: the job without its spec, with headline metrics only. */
export interface JobSummary {
  id: number;
  name: string;
  kind: string;
  state: JobState;
  progress: Progress | null;
  metrics: { student?: CocoMetrics | null; teacher?: CocoMetrics | null } | null;
  spec_hash: string;
  spec_summary: SpecSummary;
  dataset_id: number | null;
  teacher_id: number | null;
  created_by: number | null;
  creator_email: string | null;
  attempt: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  tags?: string[];
  note?: string;
}

/** A page of GET /jobs: `next_cursor` continues it (`?after=`), null on the last page. */
export interface JobPage extends ListOf<JobSummary> {
  next_cursor: string | null;
}

export interface SizeHistogram {
  edges: number[];
  counts: number[];
}

export interface DatasetStatistics {
  images?: number;
  annotations?: number;
  categories?: number | string[];
  boxes_per_class?: Record<string, number>;
  size_buckets?: { small?: number; medium?: number; large?: number };
  size_histogram?: SizeHistogram;
  small_threshold?: number;
  medium_threshold?: number;
  splits?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface Issue {
  file?: string | null;
  image_id?: number | string | null;
  annotation_id?: number | string | null;
  message?: string;
  [key: string]: unknown;
}

export interface Dataset {
  id: number;
  name: string;
  format: string;
  status: string;
  size_bytes?: number;
  sha256?: string;
  statistics: DatasetStatistics | null;
  errors: (Issue | string)[] | null;
  created_at: string;
  created_by?: number | null;
}

export interface Teacher {
  id: number;
  name: string;
  arch: string;
  num_classes?: number | null;
  fpn_channels: number;
  status: string;
  size_bytes?: number;
  source_job_id?: number | null;
  errors: (Issue | string)[] | null;
  info?: Record<string, unknown> | null;
  created_at: string;
  created_by?: number | null;
}

export interface Artifact {
  id?: number;
  name: string;
  kind: string;
  size_bytes?: number;
  content_type?: string;
  created_at?: string;
}

export interface JobEventRow {
  id?: number;
  level: string;
  message: string;
  created_at?: string;
}

export interface MetricPointRow {
  step: number;
  epoch?: number;
  value: number;
  /** The stage the point belongs to (teacher, distill, finetune), when the series carry it. */
  stage?: string;
  /** The step on one axis across the job's stages (the API computes it). */
  global_step?: number;
  /** Seconds since the job's first point. */
  wall_time?: number;
}

/** GET /activity: who did what in the team, newest first. */
export interface ActivityRow {
  at: string;
  action: "submitted" | "canceled" | "uploaded_dataset" | "uploaded_teacher" | "started_sweep" | string;
  user_id: number | null;
  user_email: string | null;
  subject: "job" | "dataset" | "teacher" | "sweep" | string;
  subject_id: number;
  subject_name: string;
}

/** GET /members: the team's members. */
export interface MemberRow {
  id: number;
  email: string;
  name: string;
  role: string;
}

export interface CompareResult {
  jobs: Job[];
  metrics?: unknown;
  spec_diff: { path: string; values: unknown[] }[];
}

// The job specification (core/spec.py), as the form builds it.
export interface LevelWeights {
  spatial: number;
  semantic: number;
  context: number;
}

export interface DistillSpec {
  lambda_kd: number;
  levels: Record<string, LevelWeights>;
  response: number;
  box?: number;
  head?: number;
  temperature: number;
  warmup_steps: number;
  balance_levels?: boolean;
  spatial?: Record<string, unknown>;
  semantic?: Record<string, unknown>;
  context?: Record<string, unknown>;
}

export interface JobSpec {
  kind: string;
  name?: string | null;
  data: Record<string, unknown> & { dataset_id?: number | null; image_size?: number };
  teacher?: (Record<string, unknown> & { arch?: string; teacher_id?: number | null }) | null;
  student?: (Record<string, unknown> & { arch?: string }) | null;
  distill?: DistillSpec;
  schedule?: Record<string, unknown> & { epochs?: number };
  seed?: number;
}

/** An ablation preset of core/spec.py: the default distill section with it applied. */
export interface SpecPreset {
  id: string;
  label: string;
  description: string;
  distill: DistillSpec;
}

/** GET /spec/schema: core/spec.py for the form (JSON Schema, architectures, defaults, presets). */
export interface SpecCatalog {
  json_schema: Record<string, unknown>;
  kinds: string[];
  levels: string[];
  terms: (keyof LevelWeights)[];
  architectures: { teacher: string[]; student: string[] };
  defaults: {
    data: JobSpec["data"];
    teacher: NonNullable<JobSpec["teacher"]>;
    student: NonNullable<JobSpec["student"]>;
    distill: DistillSpec;
    schedule: NonNullable<JobSpec["schedule"]>;
    seed: number;
  };
  presets: SpecPreset[];
  /** Dotted distill fields a preset sets: a section is a preset when they have its values. */
  preset_fields: string[];
}
