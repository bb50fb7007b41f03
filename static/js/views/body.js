// The body section: tabs of views chosen by content type and sniffing, each rendered only when first shown.
import { el } from "../lib/dom.js";
import { formatSizeKiB } from "../lib/format.js";
import { bodyBytes, bodyKind, bodyText } from "./bytes.js";
import { formView } from "./form.js";
import { hexView } from "./hex.js";
import { imageView } from "./image.js";
import { JsonSyntaxError, jsonTree, parseJson } from "./json.js";
import { multipartView } from "./multipart.js";
import { empty } from "./table.js";
import { textView } from "./text.js";
import { xmlView } from "./xml.js";

const TABS = {
  json: ["json", "text", "hex"],
  form: ["form", "text", "hex"],
  multipart: ["multipart", "text", "hex"],
  xml: ["xml", "text", "hex"],
  image: ["image", "hex"],
  text: ["text", "hex"],
  binary: ["hex", "text"],
};
const LABELS = { json: "JSON", form: "Form", multipart: "Multipart", xml: "XML", image: "Image", text: "Text", hex: "Hex" };
// Structured views of bigger bodies would block the page while parsing: text and hex stay available.
const TREE_LIMIT = 8 * 1024 * 1024;

export function bodyTabsFor(req) {
  return TABS[bodyKind(req)] || [];
}

function fallback(message, text) {
  return el("div", null, el("p", { class: "muted view-note" }, message), textView(text));
}

function renderView(name, req, memo, urls, raw) {
  const text = () => (memo.text ??= bodyText(req));
  const bytes = () => (memo.bytes ??= bodyBytes(req));
  switch (name) {
    case "json": {
      if (text().length > TREE_LIMIT) return fallback("Too large for a tree: shown as text.", text());
      try {
        return jsonTree(parseJson(text()));
      } catch (err) {
        const why = err instanceof JsonSyntaxError ? err.message : "too deeply nested";
        const hint = req.body_truncated ? " (this is a truncated preview: load the full body)" : "";
        return fallback(`Not valid JSON: ${why}${hint}.`, text());
      }
    }
    case "form":
      return formView(text());
    case "multipart":
      return multipartView(req, urls, raw);
    case "xml": {
      const view = text().length > TREE_LIMIT ? null : xmlView(text());
      if (view) return view;
      const hint = req.body_truncated ? " (this is a truncated preview: load the full body)" : "";
      return fallback(`Not well-formed XML${hint}: shown as text.`, text());
    }
    case "image":
      return imageView(req);
    case "text":
      return textView(text());
    case "hex":
      return hexView(bytes());
    default:
      return empty("Unknown view.");
  }
}

/**
 * Tabs + panel. `initial` picks a tab when it exists; onTab(name) reports the user's choice; `urls` collects blob:
 * URLs to revoke; `raw` is the one-entry whole-body memory views that need every byte share (see wholeBody).
 */
export function bodyViews(req, { initial, onTab, urls, raw }) {
  const tabs = bodyTabsFor(req);
  if (!tabs.length) {
    if (req.rejected) return empty(`No body: it was larger than the limit and was not stored (${formatSizeKiB(req.body_size)} announced).`);
    return empty("No body.");
  }
  const memo = {};
  const panels = {};
  const panelHost = el("div", { class: "body-panel" });
  const buttons = tabs.map((name) =>
    el("button", { type: "button", role: "tab", class: "body-tab", dataset: { view: name }, "aria-selected": "false" }, LABELS[name]),
  );
  const show = (name) => {
    if (!panels[name]) panels[name] = el("div", { class: `view view-${name}`, role: "tabpanel" }, renderView(name, req, memo, urls, raw));
    panelHost.replaceChildren(panels[name]);
    for (const b of buttons) {
      const selected = b.dataset.view === name;
      b.setAttribute("aria-selected", String(selected));
      b.classList.toggle("active", selected);
    }
  };
  for (const b of buttons) {
    b.addEventListener("click", () => {
      show(b.dataset.view);
      if (onTab) onTab(b.dataset.view);
    });
  }
  show(tabs.includes(initial) ? initial : tabs[0]);
  return el("div", { class: "body-views" }, el("div", { class: "body-tabs", role: "tablist" }, buttons), panelHost);
}
