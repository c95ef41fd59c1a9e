// An upload form with a progress bar (XHR reports upload progress; fetch does not).
import { ApiError, upload } from "../api";
import { h, replace } from "../dom";
import { bytes } from "../format";
import { progressBar } from "./ui";

/** A file upload form: extra fields, a file input, a progress bar, and errors at the field. */
export function uploadForm<T>(opts: {
  id: string;
  path: string;
  accept: string;
  fileHint: string;
  fields: HTMLElement[];
  collect: (form: FormData) => string | null;
  onDone: (row: T) => void;
}): HTMLElement {
  const fileInput = h("input", { type: "file", name: "file", accept: opts.accept, required: true, id: `${opts.id}-file` });
  const fileError = h("div", { class: "field-error", role: "alert" });
  const status = h("div", { class: "upload-status", "aria-live": "polite" });
  const submit = h("button", { class: "btn btn-primary", type: "submit" }, "Upload");
  const cancel = h("button", { class: "btn btn-ghost", type: "button", hidden: true }, "Cancel upload");
  const form = h(
    "form",
    {
      id: opts.id,
      class: "upload-form",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        form.querySelectorAll(".field-error").forEach((el) => (el.textContent = ""));
        const file = fileInput.files?.[0];
        if (!file) {
          fileError.textContent = "Choose a file to upload.";
          fileInput.focus();
          return;
        }
        const data = new FormData();
        const problem = opts.collect(data);
        if (problem) {
          replace(status, h("div", { class: "field-error" }, problem));
          return;
        }
        data.append("file", file);
        submit.disabled = true;
        cancel.hidden = false;
        replace(status, progressBar(0, { label: "Upload progress" }), h("span", { class: "muted" }, ` ${file.name}, ${bytes(file.size)}`));
        const task = upload<T>(opts.path, data, (loaded, total) => {
          replace(status, progressBar(loaded / total, { label: "Upload progress" }), h("span", { class: "muted" }, ` ${bytes(loaded)} of ${bytes(total)}`));
        });
        cancel.onclick = () => task.abort();
        try {
          const row = await task.promise;
          replace(status, h("span", { class: "good" }, "Uploaded. Validation runs on the server; this page updates when it ends."));
          form.reset();
          opts.onDone(row);
        } catch (err) {
          const apiErr = err as ApiError;
          let placed = false;
          for (const f of apiErr.fields ?? []) {
            const name = f.path.split(".").pop() ?? "";
            const slot = form.querySelector(`[data-name="${CSS.escape(name)}"] .field-error`) ?? (name === "file" ? fileError : null);
            if (slot) {
              slot.textContent = f.message;
              placed = true;
            }
          }
          replace(status, placed ? null : h("div", { class: "alert alert-error", role: "alert" }, apiErr.message));
        } finally {
          submit.disabled = false;
          cancel.hidden = true;
        }
      },
    },
    h("div", { class: "grid" }, opts.fields, h("div", { class: "field wide", "data-name": "file" }, h("label", { for: fileInput.id }, "File"), fileInput, h("div", { class: "hint" }, opts.fileHint), fileError)),
    h("div", { class: "form-actions" }, submit, cancel),
    status,
  );
  return form;
}
