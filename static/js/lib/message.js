// Telling the user what went wrong, inline: an error's text and a message area a component owns.
import { el } from "./dom.js";

/** The message of an Error (an ApiError carries the API's own message), else the value as text. */
export function errorText(err) {
  if (err && typeof err.message === "string" && err.message) return err.message;
  return String(err);
}

/** An inline message area: show(text, kind) / clear(). role=status so assistive tech reads it. */
export function messageArea(extraClass = "") {
  const node = el("p", { class: ("hs-msg " + extraClass).trim(), role: "status", hidden: true });
  return {
    node,
    show(text, kind = "info") {
      node.textContent = text;
      node.className = ("hs-msg hs-msg-" + kind + " " + extraClass).trim();
      node.hidden = false;
    },
    clear() {
      node.textContent = "";
      node.hidden = true;
    },
  };
}
