// The dashboard's entry: the shell (header, navigation, team switcher) and the router.
import "./style.css";
import { get, setUnauthorizedHandler } from "./api";
import { h, replace } from "./dom";
import { currentRoute, navigate } from "./router";
import { currentUser, getTeamId, getToken, setCurrentUser, setTeamId, signOut } from "./session";
import type { Me } from "./types";
import { errorState, loading } from "./components/ui";
import { renderLogin } from "./pages/login";
import { renderJobs } from "./pages/jobs";
import { renderJob } from "./pages/job";
import { renderNewJob } from "./pages/newjob";
import { renderDatasets, renderDataset } from "./pages/datasets";
import { renderTeachers, renderTeacher } from "./pages/teachers";
import { renderCompare } from "./pages/compare";
import { renderSweep, renderSweeps } from "./pages/sweeps";
import { renderActivity } from "./pages/activity";

/** What a page returns: an optional cleanup run when the user leaves it. */
export type Cleanup = (() => void) | void;

const app = document.getElementById("app") as HTMLElement;
let cleanup: Cleanup;

const NAV: [string, string][] = [
  ["jobs", "Jobs"],
  ["new", "New job"],
  ["datasets", "Datasets"],
  ["teachers", "Teachers"],
  ["compare", "Compare"],
  ["sweeps", "Sweeps"],
  ["activity", "Activity"],
];

function shell(me: Me, active: string): HTMLElement {
  const team = getTeamId();
  const switcher = h(
    "select",
    {
      id: "team-switcher",
      "aria-label": "Team",
      onchange: (e: Event) => {
        setTeamId(Number((e.target as HTMLSelectElement).value));
        // Another team's rows must not linger: go back to its job list.
        navigate("#/jobs");
        void route();
      },
    },
    me.teams.map((t) => h("option", { value: t.id, selected: t.id === team }, `${t.name}${t.role ? ` (${t.role})` : ""}`)),
  );
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/jobs" }, h("span", { class: "logo", "aria-hidden": "true" }), "Distillery"),
    h(
      "nav",
      { class: "nav", "aria-label": "Main" },
      NAV.map(([path, label]) =>
        h("a", { href: `#/${path}`, class: active === path ? "active" : "", "aria-current": active === path ? "page" : null }, label),
      ),
    ),
    h(
      "div",
      { class: "user" },
      h("label", { class: "team-label", for: "team-switcher" }, "Team"),
      switcher,
      h("span", { class: "user-email", title: me.email }, me.name || me.email),
      h(
        "button",
        {
          class: "btn btn-ghost btn-small",
          type: "button",
          onclick: () => {
            signOut();
            navigate("#/login");
          },
        },
        "Sign out",
      ),
    ),
  );
}

async function ensureUser(): Promise<Me | null> {
  const cached = currentUser();
  if (cached) return cached;
  if (!getToken()) return null;
  const me = await get<Me>("/me");
  setCurrentUser(me);
  return me;
}

async function route(): Promise<void> {
  if (typeof cleanup === "function") cleanup();
  cleanup = undefined;
  const r = currentRoute();
  const section = r.path[0] ?? "jobs";
  if (section === "login" || !getToken()) {
    document.title = "Sign in · Distillery";
    replace(app, renderLogin());
    return;
  }
  let me: Me | null;
  try {
    replace(app, loading());
    me = await ensureUser();
  } catch (err) {
    replace(app, errorState((err as Error).message, () => void route()));
    return;
  }
  if (!me) {
    replace(app, renderLogin());
    return;
  }
  const titles: Record<string, string> = { jobs: "Jobs", new: "New job", datasets: "Datasets", teachers: "Teachers", compare: "Compare", sweeps: "Sweeps", activity: "Activity" };
  document.title = `${titles[section] ?? "Distillery"} · Distillery`;
  const main = h("main", { id: "main", tabindex: "-1" });
  replace(app, shell(me, section === "new" ? "new" : section), main);
  const id = r.path[1] ? Number(r.path[1]) : null;
  switch (section) {
    case "jobs":
      cleanup = id ? renderJob(main, id) : renderJobs(main, r.query);
      break;
    case "new":
      cleanup = renderNewJob(main, r.query);
      break;
    case "datasets":
      cleanup = id ? renderDataset(main, id) : renderDatasets(main);
      break;
    case "teachers":
      cleanup = id ? renderTeacher(main, id) : renderTeachers(main);
      break;
    case "compare":
      cleanup = renderCompare(main, r.query);
      break;
    case "sweeps":
      cleanup = id ? renderSweep(main, id) : renderSweeps(main);
      break;
    case "activity":
      cleanup = renderActivity(main, r.query);
      break;
    default:
      navigate("#/jobs", true);
  }
}

setUnauthorizedHandler(() => {
  signOut();
  if (currentRoute().path[0] !== "login") navigate("#/login");
});

document.querySelector(".skip-link")?.addEventListener("click", (e) => {
  // The skip link must not change the hash (the router owns it).
  e.preventDefault();
  document.getElementById("main")?.focus();
});

window.addEventListener("hashchange", () => void route());
void route();
