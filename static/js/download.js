// Clipboard and file helpers for the detail pane.
import { bodyBytes } from "./views/bytes.js";

/** Copy text; falls back to a hidden textarea + execCommand where the async clipboard is unavailable
 * (insecure origin, missing permission). Resolves true when something was copied. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // permission refused or document not focused: try the legacy path below
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "clipboard-fallback";
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** A download link for bytes. Always application/octet-stream: a blob: URL shares our origin, so a captured
 * text/html part opened as a page would run in it; octet-stream only ever downloads. */
export function blobLink(bytes, filename) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  return { url, filename: safeFilename(filename) };
}

/** Path separators and control characters out; browsers sanitise too, this keeps the shown name honest. */
export function safeFilename(name) {
  const cleaned = String(name || "").replace(/[\u0000-\u001f\u007f/\\]/g, "_").trim();
  return cleaned.slice(0, 200) || "file.bin";
}

/** Fetch the exact stored body bytes. */
export async function fetchRawBytes(rid) {
  const response = await fetch(`/api/requests/${encodeURIComponent(rid)}/raw`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`raw body: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// The last whole body fetched from /raw: copy body, copy as curl and the multipart view of one request share it
// (one entry, so a big body is not kept once another request is opened).
let lastRaw = { rid: null, bytes: null };

/** The exact whole body: from the request JSON when it holds all of it, else fetched once from /raw. */
export async function wholeBody(req) {
  if (!req.body_truncated) return bodyBytes(req);
  if (lastRaw.rid !== req.id) lastRaw = { rid: req.id, bytes: fetchRawBytes(req.id) };
  const pending = lastRaw.bytes;
  try {
    return await pending;
  } catch (err) {
    if (lastRaw.bytes === pending) lastRaw = { rid: null, bytes: null };  // a failed fetch is not remembered
    throw err;
  }
}
