// A confirmation dialog (the <dialog> element, modal): for actions that stop or destroy work.
import { h } from "../dom";

/** Asks before a consequential action; resolves true only when the user confirms. */
export function confirmDialog(opts: { title: string; message: string; confirm: string; cancel?: string; danger?: boolean }): Promise<boolean> {
  return new Promise((resolve) => {
    const yes = h("button", { class: opts.danger ? "btn btn-danger" : "btn btn-primary", type: "button", value: "yes", "data-confirm": "yes" }, opts.confirm);
    const no = h("button", { class: "btn", type: "button", value: "no", "data-confirm": "no" }, opts.cancel ?? "Keep it");
    const dialog = h(
      "dialog",
      { class: "confirm-dialog", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title" }, opts.title),
      h("p", { id: "confirm-text" }, opts.message),
      h("div", { class: "form-actions" }, no, yes),
    );
    let answered = false;
    const answer = (value: boolean) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    yes.addEventListener("click", () => answer(true));
    no.addEventListener("click", () => answer(false));
    // Escape closes a modal dialog: that is a "no".
    dialog.addEventListener("close", () => answer(false));
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) answer(false);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    // The safe choice has the focus: Enter does not destroy anything.
    no.focus();
  });
}
