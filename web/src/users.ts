// Who made a row: the API gives datasets and teachers a `created_by` id; a job list filtered by
// that user names them (`creator_email`). Looked up once per id per page load.
import { get } from "./api";
import { h } from "./dom";
import { currentUser } from "./session";
import type { JobPage } from "./types";

const known = new Map<number, Promise<string | null>>();

/** Remembers an id's e-mail seen elsewhere (a job row), so no lookup is needed. */
export function rememberUser(id: number | null | undefined, email: string | null | undefined): void {
  if (id !== null && id !== undefined && email && !known.has(id)) known.set(id, Promise.resolve(email));
}

/** The e-mail of user `id`, from one of their jobs (null when they ran none in this team). */
export function userEmail(id: number): Promise<string | null> {
  let found = known.get(id);
  if (!found) {
    found = get<JobPage>("/jobs", { created_by: id, limit: 1 }).then(
      (page) => page.data[0]?.creator_email ?? null,
      () => null,
    );
    known.set(id, found);
  }
  return found;
}

/** An element naming the uploader: "you", their e-mail, or "user #7"; "—" without one. */
export function uploader(id: number | null | undefined): HTMLElement {
  const el = h("span", { class: "uploader", "data-user-id": id ?? "" }, "—");
  if (id === null || id === undefined) return el;
  const me = currentUser();
  if (me && me.id === id) {
    el.textContent = `you (${me.email})`;
    return el;
  }
  el.textContent = `user #${id}`;
  void userEmail(id).then((email) => {
    if (email) el.textContent = email;
  });
  return el;
}
