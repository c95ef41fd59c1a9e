// A tiny element builder: the dashboard's pages are plain DOM, no framework.

export type Child = Node | string | number | null | undefined | false | Child[];
export type Attrs = Record<string, unknown>;

const BOOLEAN_PROPS = new Set(["disabled", "checked", "selected", "hidden", "required", "multiple", "readOnly"]);

/** Creates an element with attributes, event handlers (`onclick`, ...) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) {
        continue;
      }
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value as EventListener);
      } else if (key === "class") {
        el.className = String(value);
      } else if (key === "value") {
        (el as HTMLInputElement).value = String(value);
      } else if (BOOLEAN_PROPS.has(key)) {
        (el as unknown as Record<string, boolean>)[key] = Boolean(value);
      } else if (value === true) {
        el.setAttribute(key, "");
      } else {
        el.setAttribute(key, String(value));
      }
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nested arrays, strings, nodes; falsy values skipped). */
export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(parent, child);
    } else if (child instanceof Node) {
      parent.appendChild(child);
    } else {
      parent.appendChild(document.createTextNode(String(child)));
    }
  }
}

/** Replaces all children of `parent`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** A labelled form field: label above the control, hint and error below (error by aria). */
export function field(
  label: string,
  control: HTMLElement,
  opts: { hint?: string; path?: string; wide?: boolean } = {},
): HTMLElement {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const error = h("div", { class: "field-error", id: `${id}-err`, role: "alert" });
  control.setAttribute("aria-describedby", `${id}-err`);
  return h(
    "div",
    { class: opts.wide ? "field wide" : "field", "data-path": opts.path },
    h("label", { for: id }, label),
    control,
    opts.hint ? h("div", { class: "hint" }, opts.hint) : null,
    error,
  );
}
