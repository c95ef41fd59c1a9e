// Validation errors of an upload, listed by file.
import { h } from "../dom";
import type { Issue } from "../types";

/** Errors grouped by file, each with its image / annotation id and what is wrong. */
export function issuesByFile(errors: (Issue | string)[]): HTMLElement {
  const groups = new Map<string, Issue[]>();
  for (const raw of errors) {
    const issue: Issue = typeof raw === "string" ? { message: raw } : raw;
    const file = issue.file || "(whole upload)";
    groups.set(file, [...(groups.get(file) ?? []), issue]);
  }
  return h(
    "div",
    { class: "issues", id: "validation-errors" },
    h("p", null, h("strong", null, `${errors.length} problem${errors.length === 1 ? "" : "s"} found`), ` in ${groups.size} file${groups.size === 1 ? "" : "s"}. Fix them and upload again.`),
    [...groups.entries()].map(([file, list]) =>
      h(
        "details",
        { class: "issue-file", open: groups.size <= 5 },
        h("summary", null, h("code", null, file), h("span", { class: "count" }, ` ${list.length}`)),
        h(
          "ul",
          null,
          list.slice(0, 200).map((i) =>
            h(
              "li",
              null,
              i.image_id !== undefined && i.image_id !== null ? h("span", { class: "tag" }, `image ${i.image_id}`) : null,
              i.annotation_id !== undefined && i.annotation_id !== null ? h("span", { class: "tag" }, `annotation ${i.annotation_id}`) : null,
              " ",
              i.message ?? JSON.stringify(i),
            ),
          ),
          list.length > 200 ? h("li", { class: "muted" }, `… and ${list.length - 200} more`) : null,
        ),
      ),
    ),
  );
}
