// A table of fields for a record the API returns free-form (teacher info, dataset statistics):
// nested objects become dotted rows, AP figures take the dashboard's one unit, nothing is JSON.
import { h } from "../dom";
import { ap, apReason, num } from "../format";

const AP_KEY = /^AP(50|75|_small|_medium|_large)?$/;

/** "num_classes" -> "Num classes", "source_job_id" -> "Source job". */
export function fieldLabel(key: string): string {
  const words: Record<string, string> = { num_classes: "Classes", params: "Parameters", gflops: "GFLOPs", latency_ms: "Latency (ms)", spec_hash: "Spec hash", source_job_id: "Source job" };
  if (words[key]) return words[key];
  if (AP_KEY.test(key)) return key.replace("_", " ");
  const text = key.replace(/_id$/, "").replace(/[_-]+/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function value(key: string, v: unknown): HTMLElement | string {
  if (v === null || v === undefined || v === "") return h("span", { class: "muted" }, "—");
  if (typeof v === "number" && AP_KEY.test(key)) {
    const why = apReason(v);
    return h("span", { class: "ap", "data-ap": String(v), title: why ?? null }, ap(v));
  }
  if (typeof v === "number") return h("span", { title: String(v) }, num(v, 4));
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) return v.every((x) => typeof x !== "object") ? v.join(", ") : `${v.length} items`;
  return String(v);
}

/** Rows of `[dotted path, leaf value]` (objects flattened, at most `depth` levels). */
export function flattenFields(record: Record<string, unknown>, prefix = "", depth = 3): [string, string, unknown][] {
  const out: [string, string, unknown][] = [];
  for (const [key, v] of Object.entries(record)) {
    const path = prefix ? `${prefix} · ${fieldLabel(key)}` : fieldLabel(key);
    if (v && typeof v === "object" && !Array.isArray(v) && depth > 0) out.push(...flattenFields(v as Record<string, unknown>, path, depth - 1));
    else out.push([path, key, v]);
  }
  return out;
}

/** A two-column table of a record's fields; `skip` drops keys shown elsewhere. */
export function fieldTable(id: string, record: Record<string, unknown>, skip: string[] = []): HTMLElement {
  const shown = Object.fromEntries(Object.entries(record).filter(([k]) => !skip.includes(k)));
  return h(
    "table",
    { class: "table fields-table", id },
    h("tbody", null, flattenFields(shown).map(([label, key, v]) => h("tr", { "data-field": key }, h("th", { scope: "row" }, label), h("td", null, value(key, v))))),
  );
}
