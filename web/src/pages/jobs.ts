// Jobs: the team's run table. Columns to choose, sorted and filtered on the server (metric
// ranges, tag, user), saved views, paginated and live.
import { get } from "../api";
import { h, replace } from "../dom";
import { href, navigate } from "../router";
import { currentUser } from "../session";
import type { JobPage, JobSummary, ListOf, MemberRow } from "../types";
import { rememberUser } from "../users";
import { emptyState, errorState, pageHeader, toast } from "../components/ui";
import { COLUMNS, DEFAULT_COLUMNS, FILTER_METRICS, deleteView, loadViews, saveView, type Column } from "./jobcolumns";
import { loadLookups, type Lookups } from "./lookups";

const PAGE_SIZE = 20;
const POLL_MS = 2000;
/** Query keys the list keeps in its URL (a saved view stores them). */
const LIST_KEYS = ["state", "kind", "dataset", "mine", "user", "q", "sort", "tag", "metric", "min", "max", "cols"];

function jobRow(job: JobSummary, columns: Column[], lookups: Lookups, selected: Set<number>, onSelect: () => void): HTMLTableRowElement {
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
    columns.map((c) => h("td", { class: `col-${c.id}${c.id === "job" ? " col-name" : ""}${c.numeric ? " num" : ""}` }, c.cell(job, lookups))),
  );
}

/** A fraction (metrics.json's scale) of a percent the user typed; null when blank or not a number. */
function fraction(percent: string): number | null {
  if (!percent.trim()) return null;
  const v = Number(percent);
  return Number.isFinite(v) ? Math.max(0, Math.min(100, v)) / 100 : null;
}

/** The jobs page; returns its cleanup (stops polling). */
export function renderJobs(main: HTMLElement, query: URLSearchParams): () => void {
  const state = query.get("state") ?? "";
  const kind = query.get("kind") ?? "";
  const datasetId = query.get("dataset") ?? "";
  const mine = query.get("mine") === "1";
  const user = query.get("user") ?? "";
  const q = query.get("q") ?? "";
  const sort = query.get("sort") ?? "";
  const tag = query.get("tag") ?? "";
  const metric = FILTER_METRICS.includes(query.get("metric") ?? "") ? (query.get("metric") as string) : "AP_small";
  const min = query.get("min") ?? "";
  const max = query.get("max") ?? "";
  const colIds = (query.get("cols") ?? "").split(",").filter((id) => COLUMNS.some((c) => c.id === id));
  const columns = (colIds.length ? colIds : DEFAULT_COLUMNS).map((id) => COLUMNS.find((c) => c.id === id) as Column);
  const page = Math.max(1, Number(query.get("page") ?? "1") || 1);
  const me = currentUser();
  const selected = new Set<number>();
  let timer: number | undefined;
  let stopped = false;
  let lookups: Lookups = { datasets: new Map(), teachers: new Map() };
  const rows = new Map<number, { sig: string; row: HTMLTableRowElement }>();
  let lastJobs: JobSummary[] = [];
  const users = new Map<number, string>();

  const current = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const key of LIST_KEYS) {
      const v = query.get(key);
      if (v) out[key] = v;
    }
    return out;
  };
  const go = (changes: Record<string, string | number | null>) => {
    const next: Record<string, string | null> = { ...current(), page: String(page) };
    for (const [k, v] of Object.entries(changes)) next[k] = v === null || v === "" ? null : String(v);
    if (!("page" in changes)) next.page = null;
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
  const typed = (id: string, label: string, value: string, key: string, placeholder: string, type = "search") =>
    h("input", {
      type,
      id,
      placeholder,
      "aria-label": label,
      value,
      oninput: (e: Event) => {
        window.clearTimeout(searchTimer);
        const v = (e.target as HTMLInputElement).value;
        searchTimer = window.setTimeout(() => go({ [key]: v }), 450);
      },
    });
  const select = (id: string, label: string, value: string, options: [string, string][], key: string) =>
    h(
      "select",
      { id, "aria-label": label, onchange: (e: Event) => go({ [key]: (e.target as HTMLSelectElement).value }) },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
    );
  const datasetSelect = select("filter-dataset", "Dataset", datasetId, [["", "All datasets"]], "dataset");
  const userSelect = select("filter-user", "Run by", user, [["", "Everyone"], ...(me ? ([[String(me.id), `Me (${me.email})`]] as [string, string][]) : [])], "user");
  const metricSelect = select("filter-metric", "Metric to filter by", metric, FILTER_METRICS.map((m) => [m, m.replace("_", " ")]), "metric");
  const filters = h(
    "div",
    { class: "filters", role: "search" },
    typed("job-search", "Search jobs", q, "q", "Search by job name…"),
    select(
      "filter-state",
      "State",
      state,
      [["", "All states"], ["queued", "Queued"], ["running", "Running"], ["succeeded", "Succeeded"], ["failed", "Failed"], ["canceled", "Canceled"]],
      "state",
    ),
    select("filter-kind", "Kind", kind, [["", "All kinds"], ["distill", "Distill"], ["teacher", "Teacher"], ["evaluate", "Evaluate"]], "kind"),
    datasetSelect,
    userSelect,
    typed("filter-tag", "Tag", tag, "tag", "tag…"),
    h(
      "span",
      { class: "metric-filter" },
      metricSelect,
      h("label", { for: "filter-min" }, " ≥ "),
      typed("filter-min", "Minimum, percent", min, "min", "min %", "number"),
      h("label", { for: "filter-max" }, " ≤ "),
      typed("filter-max", "Maximum, percent", max, "max", "max %", "number"),
    ),
  );

  // Columns to show.
  const chooser = h(
    "details",
    { class: "column-chooser", id: "column-chooser" },
    h("summary", { class: "btn btn-small" }, "Columns"),
    h(
      "div",
      { class: "chooser-list" },
      COLUMNS.map((c) =>
        h(
          "label",
          { class: "check" },
          h("input", {
            type: "checkbox",
            "data-column": c.id,
            checked: columns.includes(c),
            onchange: (e: Event) => {
              const on = (e.target as HTMLInputElement).checked;
              const ids = columns.map((x) => x.id).filter((id) => id !== c.id);
              const next = on ? COLUMNS.map((x) => x.id).filter((id) => ids.includes(id) || id === c.id) : ids;
              go({ cols: next.join(",") === DEFAULT_COLUMNS.join(",") ? null : next.join(",") });
            },
          }),
          ` ${c.label}`,
        ),
      ),
    ),
  );

  // Saved views: columns + sort + filters, kept in this browser per user.
  const views = loadViews(me?.id ?? null);
  const viewSelect = h(
    "select",
    {
      id: "saved-views",
      "aria-label": "Saved views",
      onchange: (e: Event) => {
        const view = views.find((v) => v.name === (e.target as HTMLSelectElement).value);
        if (view) navigate(`#/jobs${view.query ? `?${view.query}` : ""}`, true);
      },
    },
    h("option", { value: "" }, views.length ? "Saved views…" : "No saved views"),
    views.map((v) => h("option", { value: v.name }, v.name)),
  );
  const saveBtn = h(
    "button",
    {
      class: "btn btn-small",
      type: "button",
      id: "save-view",
      onclick: () => {
        const name = window.prompt("Name this view (columns, sort and filters):")?.trim();
        if (!name) return;
        const params = new URLSearchParams(current());
        if (!params.get("cols")) params.set("cols", columns.map((c) => c.id).join(","));
        saveView(me?.id ?? null, { name, columns: columns.map((c) => c.id), query: params.toString() });
        toast(`View “${name}” saved in this browser`, "success");
        go({});
      },
    },
    "Save view",
  );
  const forgetBtn = views.length
    ? h(
        "button",
        {
          class: "btn btn-small btn-ghost",
          type: "button",
          id: "delete-view",
          onclick: () => {
            const name = viewSelect.value;
            if (!name) return toast("Choose a saved view to delete first.");
            deleteView(me?.id ?? null, name);
            go({});
          },
        },
        "Delete view",
      )
    : null;
  const toolbar = h("div", { class: "table-tools" }, chooser, viewSelect, saveBtn, forgetBtn, h("span", { class: "muted" }, "Views are kept in this browser."));

  const sortKey = sort.replace(/^-/, "");
  const descending = sort ? sort.startsWith("-") : true;
  const header = (c: Column) => {
    const cls = `col-${c.id}${c.id === "job" ? " col-name" : ""}${c.numeric ? " num" : ""}`;
    if (!c.sort) return h("th", { class: cls, title: c.title ?? null }, c.label);
    const active = (sortKey || "created_at") === c.sort;
    const ariaSort = active ? (descending ? "descending" : "ascending") : "none";
    return h(
      "th",
      { class: `${cls} sortable`, "aria-sort": ariaSort, title: c.title ?? null, "data-sort": c.sort },
      h(
        "button",
        {
          class: "sort-btn",
          type: "button",
          onclick: () => {
            // First click: the natural order (highest AP, newest, A→Z), then the other way.
            const natural = c.sort === "name" || c.sort === "state" ? "" : "-";
            const flip = natural === "-" ? "" : "-";
            const next = active && (descending ? "-" : "") === natural ? `${flip}${c.sort}` : `${natural}${c.sort}`;
            go({ sort: next === "-created_at" ? null : next });
          },
        },
        c.label,
        h("span", { class: "sort-mark", "aria-hidden": "true" }, active ? (descending ? " ▼" : " ▲") : " ↕"),
      ),
    );
  };

  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "table jobs-table", id: "jobs-table" },
    h("thead", null, h("tr", null, h("th", { class: "col-check" }, h("span", { class: "sr-only" }, "Select")), columns.map(header))),
    tbody,
  );
  const body = h("div", { class: "table-wrap" }, table);
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const live = h("span", { class: "live", "aria-live": "off" });
  const message = h("div");

  replace(
    main,
    pageHeader("Jobs", "The team's run table: sort by a column, filter by a metric range, choose columns, save views. Updates live.", live, compareBtn, h("a", { class: "btn btn-primary", href: "#/new" }, "New job")),
    filters,
    toolbar,
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
      h("button", { class: "btn btn-small", type: "button", disabled: page <= 1, onclick: () => go({ page: page - 1 }) }, "‹ Previous"),
      h("span", null, `Page ${page} of ${pages}`),
      h("button", { class: "btn btn-small", type: "button", disabled: page >= pages, onclick: () => go({ page: page + 1 }) }, "Next ›"),
    );
  };

  const noteUsers = (jobs: JobSummary[]) => {
    let added = false;
    for (const j of jobs) {
      rememberUser(j.created_by, j.creator_email);
      if (j.created_by !== null && j.creator_email && !users.has(j.created_by) && j.created_by !== me?.id) {
        users.set(j.created_by, j.creator_email);
        const option = [...userSelect.options].find((o) => o.value === String(j.created_by));
        if (option) option.textContent = j.creator_email;
        else userSelect.appendChild(h("option", { value: j.created_by, selected: String(j.created_by) === user }, j.creator_email));
        added = true;
      }
    }
    return added;
  };

  const renderRows = (jobs: JobSummary[]) => {
    const seen = new Set<number>();
    const ordered: HTMLTableRowElement[] = [];
    for (const job of jobs) {
      seen.add(job.id);
      // Keep unchanged rows as they are so focus and checkboxes survive a refresh.
      const sig = JSON.stringify([job.state, job.progress, job.metrics, job.name, job.finished_at, job.tags, job.note, lookups.datasets.size, lookups.teachers.size]);
      const existing = rows.get(job.id);
      if (existing && existing.sig === sig) {
        ordered.push(existing.row);
      } else {
        const row = jobRow(job, columns, lookups, selected, updateCompare);
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

  const bounds = (): Record<string, number | null> => {
    const key = metric.toLowerCase();
    return { [`min_${key}`]: fraction(min), [`max_${key}`]: fraction(max) };
  };

  const refresh = async () => {
    try {
      const result = await get<JobPage>("/jobs", {
        state,
        kind,
        dataset_id: datasetId,
        created_by: user || (mine && me ? me.id : null),
        q,
        tag,
        sort,
        ...bounds(),
        limit: PAGE_SIZE,
        offset: (page - 1) * PAGE_SIZE,
      });
      if (stopped) return;
      replace(message);
      noteUsers(result.data);
      if (!result.data.length) {
        table.hidden = true;
        replace(
          message,
          state || kind || datasetId || mine || q || user || tag || min || max
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
  // Someone filtered by a user not on this page yet: name them in the select.
  if (user && !(me && String(me.id) === user)) {
    userSelect.appendChild(h("option", { value: user, selected: true }, `user #${user}`));
  }
  // Every member of the team can be picked, not only those on this page of jobs.
  void get<ListOf<MemberRow>>("/members").then(
    (res) => {
      for (const m of res.data) {
        rememberUser(m.id, m.email);
        if (me && m.id === me.id) continue;
        users.set(m.id, m.email);
        const option = [...userSelect.options].find((o) => o.value === String(m.id));
        if (option) option.textContent = m.email;
        else userSelect.appendChild(h("option", { value: m.id, selected: String(m.id) === user }, m.email));
      }
    },
    () => undefined,
  );
  void refresh();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
    window.clearTimeout(searchTimer);
  };
}
