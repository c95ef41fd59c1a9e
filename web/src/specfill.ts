// A stored spec as core/spec.py reads it: the sections a kind uses, every absent field taken from
// the served defaults (GET /spec/schema). Compare diffs these, so defaults never show as changes.
import type { JobSpec, SpecCatalog } from "./types";

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** `value` with every key of `defaults` it lacks filled in, recursively (a new object). */
export function withDefaults(value: unknown, defaults: unknown): unknown {
  if (!isObject(defaults)) return value === undefined ? structuredClone(defaults) : value;
  if (value !== undefined && !isObject(value)) return value;
  const out: Json = {};
  const given = (value ?? {}) as Json;
  for (const key of new Set([...Object.keys(defaults), ...Object.keys(given)])) {
    // A level map (distill.levels) lists its levels: fill each level, add none the spec left out.
    if (key === "levels" && isObject(given.levels)) {
      const levelDefault = Object.values(defaults.levels as Json)[0];
      out.levels = Object.fromEntries(Object.entries(given.levels).map(([l, w]) => [l, withDefaults(w, (defaults.levels as Json)[l] ?? levelDefault)]));
      continue;
    }
    out[key] = key in defaults ? withDefaults(given[key], defaults[key]) : given[key];
  }
  return out;
}

/** The sections a job kind uses (core/spec.py): a teacher job trains no student and distils nothing. */
function sectionsOf(kind: string): (keyof SpecCatalog["defaults"])[] {
  if (kind === "teacher") return ["data", "teacher", "schedule", "seed"];
  return ["data", "teacher", "student", "distill", "schedule", "seed"];
}

/** The canonical, complete spec of a stored one: its kind's sections with defaults filled. */
export function filledSpec(spec: JobSpec | null | undefined, catalog: SpecCatalog): JobSpec {
  const raw = (spec ?? { kind: "distill", data: {} }) as unknown as Json;
  const kind = String(raw.kind ?? "distill");
  const out: Json = { kind };
  for (const section of sectionsOf(kind)) {
    if (section === "student" && raw.student === null) continue;
    out[section] = withDefaults(raw[section], catalog.defaults[section]);
  }
  for (const [key, v] of Object.entries(raw)) if (!(key in out) && key !== "name") out[key] = v;
  return out as unknown as JobSpec;
}

/** Leaves of a nested object as dotted paths (lists are leaves). */
export function leaves(value: unknown, prefix = ""): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (isObject(value) && Object.keys(value).length) {
    for (const [k, v] of Object.entries(value)) for (const [p, leaf] of leaves(v, prefix ? `${prefix}.${k}` : k)) out.set(p, leaf);
  } else if (prefix) {
    out.set(prefix, value);
  }
  return out;
}

/** The dotted fields whose values really differ between the filled specs, with each one's value. */
export function realDifferences(specs: (JobSpec | null | undefined)[], catalog: SpecCatalog): { path: string; values: unknown[] }[] {
  const flat = specs.map((s) => leaves(filledSpec(s, catalog)));
  const paths = [...new Set(flat.flatMap((f) => [...f.keys()]))];
  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  return paths
    .filter((path) => path !== "name")
    .map((path) => ({ path, values: flat.map((f) => f.get(path) ?? null) }))
    .filter((d) => d.values.some((v) => !same(v, d.values[0])));
}
