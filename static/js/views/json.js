// Pretty JSON: our own parser (keeps duplicate keys and the exact text of numbers, which JSON.parse would
// merge or round: 12345678901234567890 stays as sent) and a lazily rendered, collapsible tree.
import { el } from "../lib/dom.js";

const MAX_DEPTH = 1000;
const PAGE = 200; // children rendered per step; a 100,000-element array costs 200 nodes until asked
const EXPAND_ALL_BUDGET = 5000;

export class JsonSyntaxError extends Error {}

/** Parse JSON text into {k: "object"|"array"|"string"|"number"|"bool"|"null", ...}. Throws JsonSyntaxError. */
export function parseJson(text) {
  let i = 0;
  const n = text.length;
  const fail = (what) => {
    throw new JsonSyntaxError(`${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else break;
    }
  };
  const str = () => {
    const start = i;
    i++; // opening quote
    let escaped = false;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 34) break;
      if (c === 92) {
        escaped = true;
        i += 2;
        continue;
      }
      if (c < 32) fail("control character in string");
      i++;
    }
    if (i >= n) fail("unterminated string");
    i++;
    const raw = text.slice(start, i);
    if (!escaped) return raw.slice(1, -1);
    try {
      return JSON.parse(raw);
    } catch {
      fail("bad escape in string");
    }
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (depth) => {
    if (depth > MAX_DEPTH) fail("nesting too deep");
    ws();
    if (i >= n) fail("unexpected end");
    const c = text[i];
    if (c === "{") {
      i++;
      const entries = [];
      ws();
      if (text[i] === "}") {
        i++;
        return { k: "object", entries };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = str();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        entries.push([key, value(depth + 1)]);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return { k: "object", entries };
        } else fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items = [];
      ws();
      if (text[i] === "]") {
        i++;
        return { k: "array", items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return { k: "array", items };
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return { k: "string", v: str() };
    if (text.startsWith("true", i)) {
      i += 4;
      return { k: "bool", v: true };
    }
    if (text.startsWith("false", i)) {
      i += 5;
      return { k: "bool", v: false };
    }
    if (text.startsWith("null", i)) {
      i += 4;
      return { k: "null" };
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail("unexpected character");
    i += m[0].length;
    return { k: "number", raw: m[0] };
  };
  const root = value(0);
  ws();
  if (i < n) fail("trailing characters");
  return root;
}

// Bidi overrides and invisible characters can make a value read differently than it is: show them escaped.
const TRICKY = /[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;
export function visible(s) {
  return s.replace(TRICKY, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
}

function quoted(s) {
  return visible(JSON.stringify(s));
}

const LONG_STRING = 2000;

function scalar(node) {
  if (node.k === "string") {
    const text = quoted(node.v);
    if (text.length <= LONG_STRING) return el("span", { class: "j-str" }, text);
    const span = el("span", { class: "j-str" }, text.slice(0, LONG_STRING));
    const more = el("button", { class: "j-more link", type: "button" }, `… ${text.length - LONG_STRING} more characters`);
    more.addEventListener("click", () => {
      span.textContent = text;
      more.remove();
    });
    return [span, more];
  }
  if (node.k === "number") return el("span", { class: "j-num" }, node.raw);
  if (node.k === "bool") return el("span", { class: "j-bool" }, String(node.v));
  return el("span", { class: "j-null" }, "null");
}

function childCount(node) {
  return node.k === "object" ? node.entries.length : node.items.length;
}

function childAt(node, idx) {
  return node.k === "object" ? node.entries[idx] : [idx, node.items[idx]];
}

/** One tree row. `label` is a key (object member), an index (array) or null (root). */
function renderNode(node, label, isKey, depth, autoDepth) {
  const keyPart =
    label === null
      ? null
      : [el("span", { class: isKey ? "j-key" : "j-index" }, isKey ? quoted(label) : String(label)), el("span", { class: "j-punct" }, ": ")];
  if (node.k !== "object" && node.k !== "array") {
    return el("div", { class: "j-node" }, el("span", { class: "j-toggle-space" }), keyPart, scalar(node));
  }
  const count = childCount(node);
  const [open, close] = node.k === "object" ? ["{", "}"] : ["[", "]"];
  const summary = el("span", { class: "j-summary" }, node.k === "object" ? ` ${count} ${count === 1 ? "key" : "keys"} ` : ` ${count} ${count === 1 ? "item" : "items"} `);
  if (count === 0) {
    return el("div", { class: "j-node" }, el("span", { class: "j-toggle-space" }), keyPart, el("span", { class: "j-punct" }, open + close));
  }
  const children = el("div", { class: "j-children" });
  const toggle = el("button", { class: "j-toggle", type: "button", "aria-expanded": "false", title: "expand / collapse" }, "▸");
  const line = el("div", { class: "j-line" }, toggle, keyPart, el("span", { class: "j-punct" }, open), summary);
  const closing = el("div", { class: "j-close j-punct" }, close);
  const wrap = el("div", { class: "j-node j-collapsible collapsed" }, line, children, closing);
  let rendered = 0;
  let moreButton = null;
  const renderMore = (budget) => {
    const stop = Math.min(count, rendered + Math.max(1, Math.min(PAGE, budget ?? PAGE)));
    const frag = document.createDocumentFragment();
    for (; rendered < stop; rendered++) {
      const [k, child] = childAt(node, rendered);
      frag.append(renderNode(child, k, node.k === "object", depth + 1, autoDepth));
    }
    if (moreButton) moreButton.remove();
    moreButton = null;
    if (rendered < count) {
      moreButton = el("button", { class: "j-more link", type: "button" }, `show ${Math.min(PAGE, count - rendered)} more of ${count - rendered} remaining`);
      moreButton.addEventListener("click", () => renderMore());
      frag.append(moreButton);
    }
    children.append(frag);
    return stop;
  };
  const setOpen = (isOpen) => {
    if (isOpen && rendered === 0) renderMore();
    wrap.classList.toggle("collapsed", !isOpen);
    toggle.textContent = isOpen ? "▾" : "▸";
    toggle.setAttribute("aria-expanded", String(isOpen));
  };
  toggle.addEventListener("click", () => setOpen(wrap.classList.contains("collapsed")));
  summary.addEventListener("click", () => setOpen(true));
  // expand-all walks this hook instead of re-parsing: it renders (bounded by a budget) and opens.
  wrap._jsonExpand = (budget) => {
    if (rendered === 0) budget.left -= renderMore(budget.left);
    setOpen(true);
  };
  if (depth < autoDepth) setOpen(true);
  return wrap;
}

/** The tree view with expand all / collapse all. */
export function jsonTree(root) {
  const tree = el("div", { class: "json-tree" }, renderNode(root, null, false, 0, 2));
  const note = el("span", { class: "muted j-note" });
  const expandAll = el("button", { type: "button", class: "j-expand-all" }, "Expand all");
  const collapseAll = el("button", { type: "button", class: "j-collapse-all" }, "Collapse all");
  expandAll.addEventListener("click", () => {
    const budget = { left: EXPAND_ALL_BUDGET };
    // breadth-first so the top of a huge document opens first and the budget stops the rest
    const queue = [tree.firstElementChild];
    for (let head = 0; head < queue.length && budget.left > 0; head++) {
      const node = queue[head];
      if (!node.classList.contains("j-collapsible")) continue;
      node._jsonExpand(budget);
      for (const child of node.querySelector(":scope > .j-children").children) {
        if (child.classList.contains("j-collapsible")) queue.push(child);
      }
    }
    note.textContent = budget.left <= 0 ? ` opened the first ${EXPAND_ALL_BUDGET} nodes; open deeper ones by hand` : "";
  });
  collapseAll.addEventListener("click", () => {
    for (const node of tree.querySelectorAll(".j-collapsible:not(.collapsed)")) {
      node.classList.add("collapsed");
      const toggle = node.querySelector(":scope > .j-line > .j-toggle");
      toggle.textContent = "▸";
      toggle.setAttribute("aria-expanded", "false");
    }
    note.textContent = "";
  });
  return el("div", { class: "json-view" }, el("div", { class: "toolbar" }, expandAll, collapseAll, note), tree);
}
