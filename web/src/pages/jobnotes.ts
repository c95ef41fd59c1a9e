// A job's tags and note: shown on its page, edited in place, saved with PATCH /jobs/{id}.
import { ApiError, patch } from "../api";
import { h, replace } from "../dom";
import type { Job } from "../types";
import { card, toast } from "../components/ui";

/** What the server accepts as a tag (api/schemas.py TAG_PATTERN). */
export const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9_.:+-]*$/;

/** A tag as a small pill; `onRemove` adds a remove button. */
export function tagPill(tag: string, onRemove?: () => void): HTMLElement {
  return h(
    "span",
    { class: "pill", "data-tag": tag },
    tag,
    onRemove ? h("button", { class: "pill-x", type: "button", "aria-label": `Remove tag ${tag}`, onclick: onRemove }, "×") : null,
  );
}

/** The tags and note card of a job page; `onSaved` gets the job as the server stored it. */
export function annotationsCard(job: Job, onSaved: (job: Job) => void): HTMLElement {
  let tags = [...(job.tags ?? [])];
  let note = job.note ?? "";
  const list = h("div", { class: "pills", id: "job-tags" });
  const error = h("div", { class: "field-error", role: "alert", id: "tag-error" });
  const save = async (changes: { tags?: string[]; note?: string }, done: string) => {
    try {
      const updated = await patch<Job>(`/jobs/${job.id}`, changes);
      tags = [...(updated.tags ?? [])];
      note = updated.note ?? "";
      draw();
      onSaved(updated);
      toast(done, "success");
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : String(err);
    }
  };
  const input = h("input", { type: "text", id: "tag-input", maxlength: 40, placeholder: "add a tag, e.g. baseline", "aria-label": "New tag", "aria-describedby": "tag-error" });
  const add = () => {
    const tag = input.value.trim();
    error.textContent = "";
    if (!tag) return;
    if (!TAG_RE.test(tag)) {
      error.textContent = "A tag is letters, digits and _ . : + - (no spaces), starting with a letter or digit.";
      return;
    }
    input.value = "";
    if (!tags.includes(tag)) void save({ tags: [...tags, tag] }, `Tag “${tag}” added`);
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      add();
    }
  });
  const noteBox = h("textarea", { id: "job-note", rows: 2, maxlength: 4000, placeholder: "A note for the team: what this run tried, what to look at…", "aria-label": "Note" });
  noteBox.value = note;
  const draw = () => {
    replace(list, tags.length ? tags.map((t) => tagPill(t, () => void save({ tags: tags.filter((x) => x !== t) }, `Tag “${t}” removed`))) : h("span", { class: "muted" }, "No tags yet."));
  };
  draw();
  return card(
    "Tags and note",
    h("div", { class: "tag-row" }, list, h("div", { class: "tag-add" }, input, h("button", { class: "btn btn-small", type: "button", id: "tag-add", onclick: add }, "Add tag"))),
    error,
    noteBox,
    h("div", { class: "form-actions" }, h("button", { class: "btn btn-small", type: "button", id: "note-save", onclick: () => void save({ note: noteBox.value }, "Note saved") }, "Save note")),
  );
}
