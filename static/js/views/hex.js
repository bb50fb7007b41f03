// Hex dump: offset, 16 bytes in hex, ASCII. One 64 KiB page at a time, whatever the body size.
import { el } from "../lib/dom.js";
import { formatSizeKiB } from "../lib/format.js";

export const HEX_PAGE = 64 * 1024;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function hexLines(bytes, start, end) {
  const lines = [];
  for (let off = start; off < end; off += 16) {
    let hex = "";
    let ascii = "";
    for (let j = 0; j < 16; j++) {
      const idx = off + j;
      if (idx < end) {
        const b = bytes[idx];
        hex += HEX[b] + " ";
        ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
      } else {
        hex += "   ";
      }
      if (j === 7) hex += " ";
    }
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hex} |${ascii}|`);
  }
  return lines.join("\n");
}

export function hexView(bytes) {
  const pre = el("pre", { class: "hex-view code" });
  const note = el("span", { class: "muted hex-range" });
  const prev = el("button", { type: "button", class: "hex-prev" }, "◂ Previous 64 KiB");
  const next = el("button", { type: "button", class: "hex-next" }, "Next 64 KiB ▸");
  let page = 0;
  const pages = Math.max(1, Math.ceil(bytes.length / HEX_PAGE));
  const show = () => {
    const start = page * HEX_PAGE;
    const end = Math.min(bytes.length, start + HEX_PAGE);
    pre.textContent = hexLines(bytes, start, end);
    note.textContent =
      pages > 1 ? `bytes ${start}–${end - 1} of ${bytes.length} (${formatSizeKiB(bytes.length)}), 64 KiB per page` : "";
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  };
  prev.addEventListener("click", () => {
    page = Math.max(0, page - 1);
    show();
  });
  next.addEventListener("click", () => {
    page = Math.min(pages - 1, page + 1);
    show();
  });
  show();
  return el("div", { class: "hex-wrap" }, pages > 1 ? el("div", { class: "toolbar" }, prev, next, note) : null, pre);
}
