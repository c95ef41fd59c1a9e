// Team history: who submitted, canceled or uploaded what, and when; filtered by user.
import { get } from "../api";
import { h, replace } from "../dom";
import { fullTime, relativeTime } from "../format";
import { href, navigate } from "../router";
import { currentUser } from "../session";
import type { ActivityRow, ListOf, MemberRow } from "../types";
import { card, emptyState, errorState, loading, pageHeader } from "../components/ui";

const ACTION_WORDS: Record<string, string> = {
  submitted: "submitted job",
  canceled: "canceled job",
  uploaded_dataset: "uploaded dataset",
  uploaded_teacher: "uploaded teacher",
  started_sweep: "started sweep",
};

const SUBJECT_PATHS: Record<string, string> = { job: "jobs", dataset: "datasets", teacher: "teachers", sweep: "sweeps" };

/** The activity page (`#/activity?user=7`). */
export function renderActivity(main: HTMLElement, query: URLSearchParams): () => void {
  const user = query.get("user") ?? "";
  const me = currentUser();
  const host = h("div", { id: "activity" }, loading());
  const select = h(
    "select",
    {
      id: "activity-user",
      "aria-label": "Whose activity",
      onchange: (e: Event) => navigate(href("/activity", { user: (e.target as HTMLSelectElement).value }), true),
    },
    h("option", { value: "" }, "Everyone"),
    user ? h("option", { value: user, selected: true }, me && String(me.id) === user ? `Me (${me.email})` : `user #${user}`) : null,
  );
  replace(
    main,
    pageHeader("Activity", "Who submitted, canceled or uploaded what in this team, newest first."),
    card(null, h("div", { class: "filters" }, h("label", { class: "inline-label", for: "activity-user" }, "By "), select), host),
  );
  const who = (row: ActivityRow) => (row.user_id !== null && me && row.user_id === me.id ? "you" : (row.user_email ?? (row.user_id !== null ? `user #${row.user_id}` : "someone (account removed)")));
  const subject = (row: ActivityRow) => {
    const path = SUBJECT_PATHS[row.subject];
    const text = `#${row.subject_id}${row.subject_name ? ` ${row.subject_name}` : ""}`;
    return path ? h("a", { href: `#/${path}/${row.subject_id}` }, text) : text;
  };
  void get<ListOf<MemberRow>>("/members").then(
    (res) => {
      for (const m of res.data) {
        const label = me && m.id === me.id ? `Me (${m.email})` : m.email;
        const option = [...select.options].find((o) => o.value === String(m.id));
        if (option) option.textContent = label;
        else select.appendChild(h("option", { value: m.id, selected: String(m.id) === user }, label));
      }
    },
    () => undefined,
  );
  void get<ListOf<ActivityRow>>("/activity", { user: user || null, limit: 100 }).then(
    (res) => {
      if (!res.data.length) {
        replace(host, emptyState("Nothing yet", user ? "This member has not submitted, canceled or uploaded anything here yet." : "Jobs submitted, canceled and uploads appear here."));
        return;
      }
      replace(
        host,
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "table", id: "activity-table" },
            h("thead", null, h("tr", null, h("th", null, "When"), h("th", null, "Who"), h("th", null, "What"), h("th", null, ""))),
            h(
              "tbody",
              null,
              res.data.map((row) =>
                h(
                  "tr",
                  { "data-action": row.action, "data-subject": `${row.subject}:${row.subject_id}` },
                  h("td", { title: fullTime(row.at) }, relativeTime(row.at)),
                  h("td", { class: "col-user", "data-user-id": row.user_id ?? "" }, who(row)),
                  h("td", null, ACTION_WORDS[row.action] ?? row.action.replace(/_/g, " ")),
                  h("td", null, subject(row)),
                ),
              ),
            ),
          ),
        ),
      );
    },
    (err: Error) => replace(host, errorState(err.message)),
  );
  return () => undefined;
}
