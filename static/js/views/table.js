// A plain name/value table; every cell is text.
import { el } from "../lib/dom.js";
import { visible } from "./json.js";

/** rows: [[cell, cell, ...]], cells are strings or nodes. */
export function table(headings, rows, className = "") {
  return el(
    "table",
    { class: ("kv " + className).trim() },
    el("thead", null, el("tr", null, headings.map((h) => el("th", null, h)))),
    el("tbody", null, rows.map((cells) => el("tr", null, cells.map((c) => el("td", null, typeof c === "string" ? visible(c) : c))))),
  );
}

export function empty(text) {
  return el("p", { class: "muted empty" }, text);
}
