// A lightbox: a picture at full size over the page; click or Escape closes it.
import { h } from "../dom";

/** Shows `src` enlarged with its caption; Escape, the close button or a click closes it. */
export function openLightbox(src: string, caption: string): void {
  document.getElementById("lightbox")?.remove();
  const close = h("button", { class: "btn btn-small lightbox-close", type: "button", "aria-label": "Close" }, "✕");
  const box = h(
    "dialog",
    { class: "lightbox", id: "lightbox", "aria-label": caption },
    h("figure", null, h("img", { src, alt: caption }), h("figcaption", null, caption)),
    close,
  );
  const done = () => {
    if (box.open) box.close();
    box.remove();
  };
  close.addEventListener("click", done);
  box.addEventListener("click", done);
  box.addEventListener("close", done);
  document.body.appendChild(box);
  box.showModal();
}

/** A picture thumbnail that opens the lightbox on click (or Enter). */
export function zoomable(img: HTMLImageElement, caption: string): HTMLElement {
  const button = h("button", { class: "zoom", type: "button", title: "Click to enlarge", "aria-label": `Enlarge: ${caption}` }, img);
  button.addEventListener("click", () => {
    if (img.src) openLightbox(img.src, caption);
  });
  return button;
}
