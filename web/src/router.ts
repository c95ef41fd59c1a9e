// Hash routing: #/jobs, #/jobs/12, #/new, #/datasets, #/datasets/3, #/teachers, #/compare?jobs=1,2.

export interface Route {
  path: string[];
  query: URLSearchParams;
}

/** The current route parsed from location.hash. */
export function currentRoute(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart = ""] = raw.split("?", 2);
  const path = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { path, query: new URLSearchParams(queryPart) };
}

/** A hash link for a path and optional query. */
export function href(path: string, query?: Record<string, string | number | undefined | null>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const qs = params.toString().replace(/%2C/g, ",");
  return `#${path}${qs ? `?${qs}` : ""}`;
}

/** Navigates to a hash link; `replace` keeps the history entry (for filter changes). */
export function navigate(link: string, replace = false): void {
  if (replace) {
    history.replaceState(null, "", link);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = link.replace(/^#/, "");
  }
}
