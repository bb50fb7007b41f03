// Helpers only the panels use: "Name: value" header lines and labelled form rows.
// (Their stylesheet, /static/css/panels.css, is linked by templates/base.html.)
import { el } from "../lib/dom.js";

/** [[name, value], ...] -> "name: value" lines; order and duplicates kept. */
export function headersToText(headers) {
  return (headers || []).map(([name, value]) => name + ": " + value).join("\n");
}

/** The inverse of headersToText. Throws Error with a message naming the bad line. */
export function textToHeaders(text) {
  const out = [];
  const lines = String(text).split(/\r?\n/);
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`header line ${i + 1} is not "Name: value"`);
    out.push([line.slice(0, colon).trim(), line.slice(colon + 1).replace(/^[ \t]+/, "")]);
  });
  return out;
}

/** A labelled form row: label text + control (+ optional hint). */
export function field(labelText, control, hint = null) {
  return el("label", { class: "hs-field" }, el("span", { class: "hs-label" }, labelText), control,
    hint ? el("small", { class: "hs-hint" }, hint) : null);
}
