// Pieces the dataset and teacher pages share: polling while validating, form fields the upload
// form can place errors on, the list table and the delete button.
import { del } from "../api";
import { field, h } from "../dom";
import type { Child } from "../dom";
import { navigate } from "../router";
import { confirmDialog } from "./dialog";
import { toast } from "./ui";

/** A form field tagged with the API's field name, so upload errors land at it. */
export function namedField(label: string, control: HTMLElement, name: string, hint?: string): HTMLElement {
  const f = field(label, control, { hint });
  f.setAttribute("data-name", name);
  return f;
}

/** Appends the trimmed name to `data`; when it is blank, marks `nameField` and says why instead. */
export function appendName(data: FormData, input: HTMLInputElement, nameField: HTMLElement, what: string): string | null {
  const name = input.value.trim();
  if (!name) {
    nameField.querySelector(".field-error")!.textContent = `Give the ${what} a name.`;
    return "Some fields need attention.";
  }
  data.append("name", name);
  return null;
}

/** Fetches and renders now, and again every `every` ms while `render` answers true. */
export function poll<T>(opts: {
  fetch: () => Promise<T>;
  render: (value: T) => boolean;
  fail: (message: string, retry: () => void) => void;
  every: number;
}): { refresh: () => void; stop: () => void } {
  let timer: number | undefined;
  let stopped = false;
  const refresh = async (): Promise<void> => {
    window.clearTimeout(timer);
    try {
      const value = await opts.fetch();
      if (stopped) return;
      if (opts.render(value)) timer = window.setTimeout(() => void refresh(), opts.every);
    } catch (err) {
      if (!stopped) opts.fail((err as Error).message, () => void refresh());
    }
  };
  void refresh();
  return {
    refresh: () => void refresh(),
    stop: () => {
      stopped = true;
      window.clearTimeout(timer);
    },
  };
}

/** A right-aligned (numeric) column header for `listTable`. */
export function num(label: string): { num: string } {
  return { num: label };
}

/** A scrollable table with one header row and the given body rows. */
export function listTable(id: string, headers: (string | { num: string })[], rows: Child[]): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table", id },
      h("thead", null, h("tr", null, headers.map((c) => (typeof c === "string" ? h("th", null, c) : h("th", { class: "num" }, c.num))))),
      h("tbody", null, rows),
    ),
  );
}

/** A "Delete" button: asks first, deletes at `path`, then goes to `back` (errors as a toast). */
export function deleteButton(what: string, path: string, back: string): HTMLElement {
  return h(
    "button",
    {
      class: "btn btn-ghost",
      type: "button",
      "data-action": "delete",
      onclick: async () => {
        const sure = await confirmDialog({ title: `Delete ${what}?`, message: "Its file goes with it. This cannot be undone.", confirm: "Delete", danger: true });
        if (sure) void del(path).then(() => navigate(back), (e: Error) => toast(e.message, "error"));
      },
    },
    "Delete",
  );
}
