// AP figures as the dashboard shows them everywhere: percent, one decimal, and why when empty.
import { h } from "../dom";
import { ap, apReason } from "../format";
import type { Job } from "../types";

/** An AP figure as an element: "12.3 %" (`data-ap` holds the raw fraction) with its reason. */
export function apCell(value: number | null | undefined, opts: { scratchCpu?: boolean } = {}): HTMLElement {
  const why = apReason(value, opts);
  const text = ap(value);
  const low = why !== null && value !== null && value !== undefined && value >= 0;
  return h(
    "span",
    { class: low ? "ap ap-low" : "ap", "data-ap": value ?? "", title: why },
    text,
    low ? h("sup", { class: "why", "aria-hidden": "true" }, "†") : null,
  );
}

/** Whether a job trained its model from scratch, on a CPU, at a few-minute scale (its spec). */
export function scratchCpuRun(job: Pick<Job, "kind" | "spec" | "metrics">): boolean {
  const spec = job.spec;
  const model = job.kind === "teacher" ? spec?.teacher : spec?.student;
  if (!model || model.pretrained_backbone) return false;
  const schedule = (spec?.schedule ?? {}) as Record<string, unknown>;
  const eff = job.metrics?.efficiency?.student ?? job.metrics?.efficiency?.teacher;
  const onCpu = schedule.device === "cpu" || /cpu/i.test(String(eff?.device ?? "")) || (!eff && schedule.device !== "cuda");
  const short = typeof schedule.max_steps_per_epoch === "number" || Number(schedule.epochs ?? 12) <= 5;
  return onCpu && short;
}

/** The note printed under a table whose AP figures are marked †. */
export function scratchNote(): HTMLElement {
  return h("p", { class: "muted ap-note" }, "† trained from scratch for a few CPU minutes: AP below 1 % is expected there, not a result.");
}
