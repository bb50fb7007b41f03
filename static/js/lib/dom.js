// Text-only DOM building. Captured data is attacker-controlled: it only ever reaches the page through
// textContent or attribute values set here, never through innerHTML. Every module builds nodes with `el`.

/**
 * el("div", {class: "row", dataset: {id: 3}, onclick: fn}, "text", childNode, [more, children])
 * Strings become text nodes; null/undefined/false children are skipped; arrays are flattened.
 */
export function el(tag, attrs = null, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) {
        // Handlers are functions only: an "on..." attribute from a string would be inline script (the CSP blocks
        // it too, but it must never be written in the first place).
        if (typeof value === "function") node.addEventListener(key.slice(2), value);
      }
      else if (key === "text") node.textContent = String(value);
      else if (key === "href" || key === "src") node.setAttribute(key, safeUrl(value));
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// Links we build point at our own API or blob: URLs; anything else (javascript:, data:) is refused.
export function safeUrl(value) {
  const s = String(value);
  if (s.startsWith("/") && !s.startsWith("//")) return s;
  if (s.startsWith("blob:") || s.startsWith("#")) return s;
  if (s.startsWith(location.origin + "/")) return s;
  return "#";
}
