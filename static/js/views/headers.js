// Headers (in order, duplicates kept, latin-1 ones marked) and query parameters (decoded, and raw).
import { el } from "../lib/dom.js";
import { decodePairs } from "./form.js";
import { visible } from "./json.js";
import { table, empty } from "./table.js";

export function headersView(req) {
  const headers = req.headers || [];
  if (!headers.length) return empty("No headers.");
  const latin1 = new Set(req.headers_latin1 || []);
  const rows = headers.map(([name, value], i) => [
    String(i + 1),
    name,
    el(
      "span",
      null,
      visible(value),
      latin1.has(i)
        ? el("span", { class: "mark latin1", title: "These bytes were not UTF-8: shown decoded as ISO-8859-1" }, " latin-1")
        : null,
    ),
  ]);
  return table(["#", "Name", "Value"], rows, "headers-table");
}

export function queryView(req) {
  if (!req.query) return empty("No query string.");
  const pairs = decodePairs(req.query);
  return el(
    "div",
    { class: "query-view" },
    pairs.length ? table(["Name", "Value"], pairs, "query-table") : null,
    el("p", { class: "raw-query" }, el("span", { class: "muted" }, "raw: "), el("code", null, req.query)),
  );
}
