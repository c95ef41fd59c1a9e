// Jobs: the team's history, newest first, filtered, searchable, paginated and live.
import { get } from "../api";
import { h, replace } from "../dom";
import { ap, archLabel, fullTime, jobDuration, relativeTime, studentMetrics } from "../format";
import { href, navigate } from "../router";
import { currentUser } from "../session";
import type { JobPage, JobSummary } from "../types";
import { emptyState, errorState, jobFraction, pageHeader, progressBar, stateBadge } from "../components/ui";
import { loadLookups, type Lookups } from "./lookups";

const PAGE_SIZE = 20;
const POLL_MS = 2000;

function jobRow(job: JobSummary, lookups: Lookups, selected: Set<number>, onSelect: () => void): HTMLTableRowElement {
  const m = studentMetrics(job);
  const dataset = job.dataset_id !== null ? lookups.datasets.get(job.dataset_id) : undefined;
  const teacher = job.teacher_id !== null ? lookups.teachers.get(job.teacher_id) : undefined;
  const running = job.state === "running" || job.state === "queued";
  const check = h("input", {
    type: "checkbox",
    "aria-label": `Select job ${job.id} to compare`,
    checked: selected.has(job.id),
    onchange: (e: Event) => {
      if ((e.target as HTMLInputElement).checked) selected.add(job.id);
      else selected.delete(job.id);
      onSelect();
    },
  });
  return h(
    "tr",
    { "data-job-id": job.id, "data-state": job.state },
    h("td", { class: "col-check" }, check),
    h(
      "td",
      { class: "col-name" },
      h("a", { href: `#/jobs/${job.id}` }, h("span", { class: "muted" }, `#${job.id} `), job.name || `${job.kind} job`),
      h("div", { class: "sub" }, job.kind),
    ),
    h("td", null, stateBadge(job.state)),
    h(
      "td",
      { class: "col-progress" },
      running
        ? progressBar(jobFraction(job), {
            eta: job.state === "running" ? job.progress?.eta_seconds : null,
            // Training done, the job still runs: export and evaluation.
            note: job.state === "running" && jobFraction(job) >= 1 ? "evaluating" : undefined,
            label: `Progress of job ${job.id}`,
          })
        : h("span", { class: "muted" }, jobDuration(job)),
    ),
    h("td", { class: "col-dataset" }, dataset ? h("a", { href: `#/datasets/${dataset.id}` }, dataset.name) : job.dataset_id ? `#${job.dataset_id}` : "—"),
    h("td", { class: "col-teacher" }, teacher ? teacher.name : archLabel(job.spec_summary.teacher_arch)),
    h("td", { class: "col-student" }, archLabel(job.spec_summary.student_arch)),
    h("td", { class: "col-user", title: job.creator_email ?? "" }, h("span", { class: "ellipsis" }, job.creator_email ?? "—")),
    h("td", { class: "col-created", title: fullTime(job.created_at) }, relativeTime(job.created_at)),
    h("td", { class: "num col-ap" }, ap(m?.AP)),
    h("td", { class: "num col-aps" }, ap(m?.AP_small)),
  );
}

/** The jobs page; returns its cleanup (stops polling). */
export function renderJobs(main: HTMLElement, query: URLSearchParams): () => void {
  const state = query.get("state") ?? "";
  const kind = query.get("kind") ?? "";
  const datasetId = query.get("dataset") ?? "";
  const mine = query.get("mine") === "1";
  const q = query.get("q") ?? "";
  const page = Math.max(1, Number(query.get("page") ?? "1") || 1);
  const selected = new Set<number>();
  let timer: number | undefined;
  let stopped = false;
  let lookups: Lookups = { datasets: new Map(), teachers: new Map() };
  const rows = new Map<number, { sig: string; row: HTMLTableRowElement }>();
  let lastJobs: JobSummary[] = [];

  const go = (changes: Record<string, string | number | null>) => {
    const next = { state, kind, dataset: datasetId, mine: mine ? "1" : "", q, page: String(page), ...changes };
    if (!("page" in changes)) next.page = "1";
    navigate(href("/jobs", { ...next, page: next.page === "1" ? null : next.page }), true);
  };

  const compareBtn = h(
    "button",
    {
      class: "btn",
      type: "button",
      id: "compare-selected",
      disabled: true,
      onclick: () => navigate(href("/compare", { jobs: [...selected].sort((a, b) => a - b).join(",") })),
    },
    "Compare selected",
  );
  const updateCompare = () => {
    compareBtn.disabled = selected.size < 2;
    compareBtn.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  };

  let searchTimer: number | undefined;
  const search = h("input", {
    type: "search",
    id: "job-search",
    placeholder: "Search by job name…",
    "aria-label": "Search jobs",
    value: q,
    oninput: (e: Event) => {
      window.clearTimeout(searchTimer);
      const value = (e.target as HTMLInputElement).value;
      searchTimer = window.setTimeout(() => go({ q: value }), 350);
    },
  });
  const select = (id: string, label: string, value: string, options: [string, string][], key: string) =>
    h(
      "select",
      { id, "aria-label": label, onchange: (e: Event) => go({ [key]: (e.target as HTMLSelectElement).value }) },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
    );
  const datasetSelect = select("filter-dataset", "Dataset", datasetId, [["", "All datasets"]], "dataset");
  const filters = h(
    "div",
    { class: "filters", role: "search" },
    search,
    select(
      "filter-state",
      "State",
      state,
      [["", "All states"], ["queued", "Queued"], ["running", "Running"], ["succeeded", "Succeeded"], ["failed", "Failed"], ["canceled", "Canceled"]],
      "state",
    ),
    select("filter-kind", "Kind", kind, [["", "All kinds"], ["distill", "Distill"], ["teacher", "Teacher"], ["evaluate", "Evaluate"]], "kind"),
    datasetSelect,
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", id: "filter-mine", checked: mine, onchange: (e: Event) => go({ mine: (e.target as HTMLInputElement).checked ? "1" : "" }) }),
      " Only mine",
    ),
  );

  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "table jobs-table", id: "jobs-table" },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { class: "col-check" }, h("span", { class: "sr-only" }, "Select")),
        h("th", null, "Job"),
        h("th", null, "State"),
        h("th", { class: "col-progress" }, "Progress / duration"),
        h("th", { class: "col-dataset" }, "Dataset"),
        h("th", { class: "col-teacher" }, "Teacher"),
        h("th", { class: "col-student" }, "Student"),
        h("th", { class: "col-user" }, "Run by"),
        h("th", { class: "col-created" }, "Created"),
        h("th", { class: "num col-ap", title: "COCO AP (×100)" }, "AP"),
        h("th", { class: "num col-aps", title: "COCO AP on small objects (×100)" }, "AP", h("sub", null, "S")),
      ),
    ),
    tbody,
  );
  const body = h("div", { class: "table-wrap" }, table);
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const live = h("span", { class: "live", "aria-live": "off" });
  const message = h("div");

  replace(
    main,
    pageHeader("Jobs", "The team's history, newest first. Updates live.", live, compareBtn, h("a", { class: "btn btn-primary", href: "#/new" }, "New job")),
    filters,
    message,
    body,
    pager,
  );

  const renderPager = (count: number) => {
    const pages = Math.max(1, Math.ceil(count / PAGE_SIZE));
    const from = count ? (page - 1) * PAGE_SIZE + 1 : 0;
    const to = Math.min(count, page * PAGE_SIZE);
    replace(
      pager,
      h("span", { class: "muted", id: "jobs-count" }, `${from}–${to} of ${count}`),
      h("button", { class: "btn btn-small", type: "button", disabled: page <= 1, onclick: () => go({ page: page - 1 }) }, "‹ Newer"),
      h("span", null, `Page ${page} of ${pages}`),
      h("button", { class: "btn btn-small", type: "button", disabled: page >= pages, onclick: () => go({ page: page + 1 }) }, "Older ›"),
    );
  };

  const renderRows = (jobs: JobSummary[]) => {
    const seen = new Set<number>();
    const ordered: HTMLTableRowElement[] = [];
    for (const job of jobs) {
      seen.add(job.id);
      // Keep unchanged rows as they are so focus and checkboxes survive a refresh.
      const sig = JSON.stringify([job.state, job.progress, job.metrics, job.name, job.finished_at, lookups.datasets.size, lookups.teachers.size]);
      const existing = rows.get(job.id);
      if (existing && existing.sig === sig) {
        ordered.push(existing.row);
      } else {
        const row = jobRow(job, lookups, selected, updateCompare);
        rows.set(job.id, { sig, row });
        ordered.push(row);
      }
    }
    for (const id of [...rows.keys()]) if (!seen.has(id)) rows.delete(id);
    ordered.forEach((row, i) => {
      if (tbody.children[i] !== row) tbody.insertBefore(row, tbody.children[i] ?? null);
    });
    while (tbody.children.length > ordered.length) tbody.lastElementChild?.remove();
  };

  const refresh = async () => {
    const me = currentUser();
    try {
      const result = await get<JobPage>("/jobs", {
        state,
        kind,
        dataset_id: datasetId,
        created_by: mine && me ? me.id : null,
        q,
        limit: PAGE_SIZE,
        offset: (page - 1) * PAGE_SIZE,
      });
      if (stopped) return;
      replace(message);
      if (!result.data.length) {
        table.hidden = true;
        replace(
          message,
          state || kind || datasetId || mine || q
            ? emptyState("No jobs match", "Try other filters or clear the search.", h("a", { class: "btn", href: "#/jobs" }, "Clear filters"))
            : emptyState("No jobs yet", "Upload a dataset and a teacher, then start your first distillation.", h("a", { class: "btn btn-primary", href: "#/new" }, "New job")),
        );
      } else {
        table.hidden = false;
        lastJobs = result.data;
        renderRows(result.data);
      }
      renderPager(result.count);
      live.textContent = `● Live · ${new Date().toLocaleTimeString()}`;
      live.className = "live on";
    } catch (err) {
      if (stopped) return;
      live.textContent = "○ Offline";
      live.className = "live off";
      if (!rows.size) replace(message, errorState((err as Error).message, () => void refresh()));
    }
    // A hidden tab asks less often; the list catches up as soon as it is looked at again.
    if (!stopped) timer = window.setTimeout(() => void refresh(), document.hidden ? POLL_MS * 5 : POLL_MS);
  };

  void loadLookups().then((l) => {
    lookups = l;
    for (const d of l.datasets.values()) {
      datasetSelect.appendChild(h("option", { value: d.id, selected: String(d.id) === datasetId }, d.name));
    }
    if (lastJobs.length) renderRows(lastJobs);
  });
  void refresh();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
    window.clearTimeout(searchTimer);
  };
}
