// Plain text, rendered in bounded chunks with "show more" so a 25 MiB body never becomes one giant text node.
import { el } from "../lib/dom.js";
import { formatSizeKiB } from "../lib/format.js";

export const TEXT_CHUNK = 256 * 1024;

export function textView(text) {
  const pre = el("pre", { class: "text-view code" });
  const more = el("button", { type: "button", class: "text-more" });
  const footer = el("div", { class: "toolbar" });
  let shown = 0;
  const step = () => {
    const next = Math.min(text.length, shown + TEXT_CHUNK);
    pre.append(text.slice(shown, next));
    shown = next;
    if (shown < text.length) {
      more.textContent = `Show more (${formatSizeKiB(text.length - shown)} of text left)`;
      footer.replaceChildren(more);
    } else {
      footer.replaceChildren();
    }
  };
  more.addEventListener("click", step);
  step();
  return el("div", { class: "text-wrap" }, pre, footer);
}
