// Clipboard and file helpers: copy text, blob: download links, the exact stored bytes of a body.

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
