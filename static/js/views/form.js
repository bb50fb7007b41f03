// application/x-www-form-urlencoded bodies (and query strings): decoded name/value pairs in order.
import { el } from "../lib/dom.js";
import { table, empty } from "./table.js";

/** [[name, value]] decoded the way servers decode forms (+ is a space, bad %-escapes kept as they are). */
export function decodePairs(raw) {
  return [...new URLSearchParams(String(raw || "").replace(/^\?/, ""))];
}

export function formView(text) {
  const pairs = decodePairs(text);
  if (!pairs.length) return empty("No fields.");
  return el("div", { class: "form-view" }, table(["Name", "Value"], pairs, "form-fields"));
}
