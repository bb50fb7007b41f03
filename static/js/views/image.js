// Image preview from our own /raw URL (img-src 'self'). An SVG in <img> runs no script and loads nothing.
import { el } from "../lib/dom.js";

export function imageView(req) {
  const info = el("p", { class: "muted image-info" }, "Loading…");
  const img = el("img", { class: "image-preview", src: `/api/requests/${encodeURIComponent(req.id)}/raw`, alt: "captured image" });
  img.addEventListener("load", () => {
    info.textContent = `${img.naturalWidth} × ${img.naturalHeight} px`;
  });
  img.addEventListener("error", () => {
    info.textContent = "This body cannot be shown as an image (see Hex).";
    img.classList.add("broken");
  });
  return el("div", { class: "image-view" }, img, info);
}
