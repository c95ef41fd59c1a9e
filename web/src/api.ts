// The REST client: bearer token, team header, and errors that name their field.
import { getTeamId, getToken } from "./session";

export const API_BASE = "/api/v1";

/** One validation problem, located by the dotted path of the field (e.g. `schedule.epochs`). */
export interface FieldError {
  path: string;
  message: string;
}

/** An HTTP error with the server's words and, for 422, the fields at fault. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fields: FieldError[] = [],
    readonly detail: unknown = null,
  ) {
    super(message);
  }
}

let onUnauthorized: () => void = () => undefined;

/** Sets what happens on 401 (the app sends the user to the sign-in page). */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

/** The headers every request carries: token and team. */
export function authHeaders(): Record<string, string> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token) {
    headers.Authorization = `Bearer ${token}`;
  }
  const team = getTeamId();
  if (team !== null) {
    headers["X-Team-Id"] = String(team);
  }
  return headers;
}

type Query = Record<string, string | number | boolean | null | undefined>;

/** `/api/v1` + path + the non-empty query parameters. */
export function apiUrl(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") {
      params.set(key, String(value));
    }
  }
  const qs = params.toString();
  return `${API_BASE}${path}${qs ? `?${qs}` : ""}`;
}

// FastAPI's 422 `loc` is ["body", "spec", "schedule", "epochs"]; the form knows "schedule.epochs".
function locToPath(loc: unknown[]): string {
  const parts = loc.map(String).filter((p) => p !== "body");
  if (parts[0] === "spec") {
    parts.shift();
  }
  return parts.join(".");
}

/** Turns any error body (FastAPI detail string, list, or object) into an ApiError. */
export function errorFromBody(status: number, body: unknown): ApiError {
  const detail = (body as { detail?: unknown } | null)?.detail ?? body;
  if (Array.isArray(detail)) {
    const fields = detail.map((d: { loc?: unknown[]; msg?: string; message?: string; field?: string }) => ({
      path: d.field ?? locToPath(d.loc ?? []),
      message: (d.msg ?? d.message ?? "invalid").replace(/^Value error, /, ""),
    }));
    const summary = fields.map((f) => (f.path ? `${f.path}: ${f.message}` : f.message)).join("; ");
    return new ApiError(status, summary || "The request was not valid.", fields, detail);
  }
  if (detail && typeof detail === "object") {
    const d = detail as { message?: string; field?: string; errors?: unknown[] };
    const fields = d.field ? [{ path: d.field, message: d.message ?? "invalid" }] : [];
    return new ApiError(status, d.message ?? JSON.stringify(detail), fields, detail);
  }
  if (typeof detail === "string" && detail) {
    return new ApiError(status, detail, [], detail);
  }
  return new ApiError(status, statusWords(status), [], detail);
}

function statusWords(status: number): string {
  if (status === 0) return "The server could not be reached. Is it running?";
  if (status === 401) return "Your session has expired; please sign in again.";
  if (status === 403) return "You do not have permission to do this in this team.";
  if (status === 404) return "Not found in this team.";
  if (status === 413) return "The file is larger than the server accepts.";
  if (status >= 500) return `The server had a problem (HTTP ${status}). Try again, or ask an admin to check its log.`;
  return `The request failed (HTTP ${status}).`;
}

/** Performs a request and parses JSON; throws ApiError with the server's message. */
export async function request<T>(
  method: string,
  path: string,
  opts: { query?: Query; body?: unknown; signal?: AbortSignal; quiet401?: boolean } = {},
): Promise<T> {
  const headers = authHeaders();
  let body: BodyInit | undefined;
  if (opts.body instanceof FormData) {
    body = opts.body;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let response: Response;
  try {
    response = await fetch(apiUrl(path, opts.query), { method, headers, body, signal: opts.signal });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, statusWords(0));
  }
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !opts.quiet401 && !path.startsWith("/auth/")) {
      onUnauthorized();
    }
    throw errorFromBody(response.status, parsed);
  }
  return parsed as T;
}

/** GET shorthand. */
export function get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
  return request<T>("GET", path, { query, signal });
}

/** POST shorthand. */
export function post<T>(path: string, body?: unknown): Promise<T> {
  return request<T>("POST", path, { body });
}

/** PATCH shorthand (a JSON body). */
export function patch<T>(path: string, body: unknown): Promise<T> {
  return request<T>("PATCH", path, { body });
}

/** DELETE shorthand. */
export function del<T>(path: string): Promise<T> {
  return request<T>("DELETE", path);
}

/** Uploads a multipart form with progress (fetch cannot report upload progress; XHR can). */
export function upload<T>(
  path: string,
  form: FormData,
  onProgress: (loaded: number, total: number) => void,
): { promise: Promise<T>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<T>((resolve, reject) => {
    xhr.open("POST", apiUrl(path));
    for (const [key, value] of Object.entries(authHeaders())) {
      xhr.setRequestHeader(key, value);
    }
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => {
      let parsed: unknown = null;
      try {
        parsed = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        parsed = xhr.responseText;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(parsed as T);
      } else {
        if (xhr.status === 401) onUnauthorized();
        reject(errorFromBody(xhr.status, parsed));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, statusWords(0)));
    xhr.onabort = () => reject(new ApiError(0, "Upload canceled."));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

/** A short-lived credential for one URL (`?ticket=`): an event stream or a download. */
export interface TicketResponse {
  ticket: string;
  expires_in: number;
}

/** Fetches a file with the auth headers and returns it as a Blob (an <a href> cannot send a token). */
export async function fetchBlob(path: string): Promise<Blob> {
  let response: Response;
  try {
    response = await fetch(apiUrl(path), { headers: authHeaders() });
  } catch {
    throw new ApiError(0, statusWords(0));
  }
  if (!response.ok) {
    let parsed: unknown = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    throw errorFromBody(response.status, parsed);
  }
  return response.blob();
}

/** Downloads a file and hands it to the browser under `filename`. */
export async function downloadFile(path: string, filename: string): Promise<void> {
  let url: string;
  let revoke = false;
  try {
    // Through fetch: the token stays in a header, out of URLs and access logs.
    url = URL.createObjectURL(await fetchBlob(path));
    revoke = true;
  } catch (err) {
    if (err instanceof ApiError && err.status !== 0) throw err;
    // A presigned redirect to S3 cannot be read by fetch without CORS on the bucket: let the
    // browser follow it itself, with a one-minute ticket for this one file (never the token).
    const { ticket } = await post<TicketResponse>(`${path}/ticket`);
    url = apiUrl(path, { ticket });
  }
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  // Give the browser time to start the download before the URL is revoked.
  if (revoke) setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The download path of a job's artifact (names may hold folders: `pictures/a.png`). */
export function artifactPath(jobId: number, name: string): string {
  return `/jobs/${jobId}/artifacts/${name.split("/").map(encodeURIComponent).join("/")}`;
}
