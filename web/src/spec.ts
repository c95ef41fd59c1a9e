// The job spec as the New job form edits it. Architectures, defaults and the ablation presets
// come from the server (GET /spec/schema, made from core/spec.py): nothing here is a copy.
import { get } from "./api";
import type { DistillSpec, JobSpec, SpecCatalog } from "./types";

let catalog: Promise<SpecCatalog> | null = null;

/** The server's spec catalog, fetched once per page load (again after a failure). */
export function loadSpecCatalog(): Promise<SpecCatalog> {
  catalog ??= get<SpecCatalog>("/spec/schema").catch((err: unknown) => {
    catalog = null;
    throw err;
  });
  return catalog;
}

/** A preset id of the catalog, or "custom" for weights no preset gives. */
export type Preset = string;

/** A deep copy of a JSON value (catalog parts are shared; the form mutates its spec). */
function copy<T>(value: T): T {
  return structuredClone(value);
}

/** The default DistillSpec of core/spec.py (every term on at every level). */
export function defaultDistill(c: SpecCatalog): DistillSpec {
  return copy(c.defaults.distill);
}

/** A new spec with core/spec.py's defaults (no dataset or teacher chosen yet). */
export function defaultSpec(c: SpecCatalog, kind: "distill" | "teacher" = "distill"): JobSpec {
  const d = c.defaults;
  return {
    kind,
    data: { ...copy(d.data), dataset_id: null },
    teacher: copy(d.teacher),
    student: kind === "distill" ? copy(d.student) : null,
    distill: copy(d.distill),
    schedule: copy(d.schedule),
    seed: d.seed,
  };
}

/** Applies a preset: every field some preset sets (`preset_fields`) takes the preset's value. */
export function applyPreset(c: SpecCatalog, d: DistillSpec, preset: string): DistillSpec {
  const source = c.presets.find((p) => p.id === preset);
  if (!source) return d;
  const out = copy(d) as unknown as Record<string, unknown>;
  for (const path of c.preset_fields) setPath(out, path, getPath(source.distill, path));
  return out as unknown as DistillSpec;
}

/** Which preset a DistillSpec is (its `preset_fields` are the preset's), or "custom". */
export function detectPreset(c: SpecCatalog, d: DistillSpec): Preset {
  const defaults = c.defaults.distill;
  const valueOf = (path: string) => getPath(d, path) ?? getPath(defaults, path);
  const match = c.presets.find((p) => c.preset_fields.every((path) => valueOf(path) === getPath(p.distill, path)));
  return match ? match.id : "custom";
}

/** Whether the weights distil anything, i.e. need a trained teacher (DistillSpec.enabled). */
export function kdEnabled(d: DistillSpec): boolean {
  const features = d.lambda_kd > 0 && Object.values(d.levels ?? {}).some((w) => w.spatial || w.semantic || w.context);
  const head = [d.response, d.box, d.head].some((w) => typeof w === "number" && w > 0);
  return features || head;
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
