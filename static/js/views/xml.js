// XML pretty-printing: DOMParser reads the text, and we serialise its nodes back as indented TEXT. Parsed nodes
// never enter the page (an XML document can carry XHTML with scripts and event handlers).
import { el } from "../lib/dom.js";

const INDENT = "  ";
const INLINE_TEXT = 80;

function escText(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function escAttr(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;");
}

/** Tokens [[className, text]] of the pretty-printed document, or null when the text is not well-formed XML. */
export function prettyXmlTokens(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  if (doc.getElementsByTagName("parsererror").length) return null;
  const out = [];
  const push = (cls, s) => out.push([cls, s]);
  const decl = /^\s*(<\?xml[^?]*\?>)/.exec(text);
  if (decl) push("x-pi", decl[1] + "\n");
  const walk = (node, depth) => {
    const pad = INDENT.repeat(depth);
    switch (node.nodeType) {
      case Node.ELEMENT_NODE: {
        push("", pad);
        push("x-punct", "<");
        push("x-tag", node.nodeName);
        for (const attr of node.attributes) {
          push("", " ");
          push("x-attr", attr.name);
          push("x-punct", '="');
          push("x-val", escAttr(attr.value));
          push("x-punct", '"');
        }
        const kids = [...node.childNodes].filter(
          (k) => !(k.nodeType === Node.TEXT_NODE && k.nodeValue.trim() === ""),
        );
        if (!kids.length) {
          push("x-punct", "/>");
          push("", "\n");
          return;
        }
        push("x-punct", ">");
        const only = kids.length === 1 && kids[0].nodeType === Node.TEXT_NODE ? kids[0].nodeValue.trim() : null;
        if (only !== null && only.length <= INLINE_TEXT && !only.includes("\n")) {
          push("x-text", escText(only));
        } else {
          push("", "\n");
          for (const kid of kids) walk(kid, depth + 1);
          push("", pad);
        }
        push("x-punct", "</");
        push("x-tag", node.nodeName);
        push("x-punct", ">");
        push("", "\n");
        return;
      }
      case Node.TEXT_NODE:
        push("", pad);
        push("x-text", escText(node.nodeValue.trim()));
        push("", "\n");
        return;
      case Node.CDATA_SECTION_NODE:
        push("", pad);
        push("x-cdata", `<![CDATA[${node.nodeValue}]]>`);
        push("", "\n");
        return;
      case Node.COMMENT_NODE:
        push("", pad);
        push("x-comment", `<!--${node.nodeValue}-->`);
        push("", "\n");
        return;
      case Node.PROCESSING_INSTRUCTION_NODE:
        push("", pad);
        push("x-pi", `<?${node.target} ${node.data}?>`);
        push("", "\n");
        return;
      case Node.DOCUMENT_TYPE_NODE:
        push("x-pi", `<!DOCTYPE ${node.name}${node.publicId ? ` PUBLIC "${node.publicId}"` : ""}${node.systemId ? ` "${node.systemId}"` : ""}>\n`);
        return;
      default:
        return;
    }
  };
  for (const kid of doc.childNodes) walk(kid, 0);
  return out;
}

/** The pretty view, or null when the text does not parse (the caller falls back to plain text). */
export function xmlView(text) {
  let tokens = null;
  try {
    tokens = prettyXmlTokens(text);
  } catch {
    tokens = null; // pathological nesting: plain text is still available
  }
  if (!tokens) return null;
  // Adjacent tokens of one class are merged: fewer nodes for big documents.
  const pre = el("pre", { class: "xml-view code" });
  let cls = null;
  let buf = "";
  const flush = () => {
    if (buf) pre.append(cls ? el("span", { class: cls }, buf) : buf);
    buf = "";
  };
  for (const [c, s] of tokens) {
    if (c !== cls) {
      flush();
      cls = c;
    }
    buf += s;
  }
  flush();
  return pre;
}
