// multipart/form-data: parsed from the exact stored bytes (GET /raw), text fields as text, files downloadable.
import { el } from "../lib/dom.js";
import { blobLink } from "../lib/download.js";
import { formatSizeKiB } from "../lib/format.js";
import { wholeBody } from "./bytes.js";
import { table, empty } from "./table.js";

export function boundaryOf(contentType) {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(String(contentType || ""));
  return m ? m[1] || m[2] : null;
}

function indexOf(hay, needle, from) {
  const first = needle[0];
  const last = hay.length - needle.length;
  outer: for (let i = hay.indexOf(first, from); i !== -1 && i <= last; i = hay.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function dispositionParams(value) {
  const params = {};
  const re = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  let m;
  while ((m = re.exec(value))) {
    const key = m[1].toLowerCase();
    params[key] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3].trim();
  }
  if (params["filename*"]) {
    const ext = /^([^']*)'[^']*'(.*)$/.exec(params["filename*"]);
    if (ext) {
      try {
        params.filename = decodeURIComponent(ext[2]);
      } catch {
        // malformed RFC 5987 value: the plain filename (if any) stays
      }
    }
  }
  return params;
}

/** Parts of a multipart body: {name, filename, contentType, headers, data: Uint8Array}. Stops at the end
 * delimiter; an unterminated last part (truncated upload) is returned with `incomplete: true`. */
export function parseMultipart(bytes, boundary) {
  const enc = new TextEncoder();
  const dec = new TextDecoder("utf-8");
  const delim = enc.encode("--" + boundary);
  const nextDelim = enc.encode("\r\n--" + boundary);
  const parts = [];
  let pos = indexOf(bytes, delim, 0);
  if (pos === -1) return parts;
  pos += delim.length;
  while (pos < bytes.length) {
    if (bytes[pos] === 0x2d && bytes[pos + 1] === 0x2d) break; // "--": the closing delimiter
    const lineEnd = indexOf(bytes, enc.encode("\r\n"), pos);
    if (lineEnd === -1) break;
    const end = indexOf(bytes, nextDelim, lineEnd);
    const stop = end === -1 ? bytes.length : end;
    let headEnd = indexOf(bytes, enc.encode("\r\n\r\n"), lineEnd);
    if (headEnd > stop) headEnd = -1; // malformed part: no blank line before the next delimiter
    const headerText = headEnd === -1 ? "" : dec.decode(bytes.subarray(lineEnd + 2, headEnd));
    const bodyStart = headEnd === -1 ? lineEnd + 2 : headEnd + 4;
    const headers = [];
    for (const line of headerText.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
    }
    const header = (n) => (headers.find(([k]) => k === n) || [])[1];
    const params = dispositionParams(header("content-disposition") || "");
    parts.push({
      name: params.name ?? "",
      filename: params.filename,
      contentType: header("content-type") || "",
      headers,
      data: bytes.subarray(Math.min(bodyStart, stop), stop),
      incomplete: end === -1,
    });
    if (end === -1) break;
    pos = end + nextDelim.length;
  }
  return parts;
}

const TEXT_LIMIT = 4096;

function textValue(data) {
  const text = new TextDecoder("utf-8").decode(data.subarray(0, TEXT_LIMIT));
  return data.length > TEXT_LIMIT ? `${text}… (${formatSizeKiB(data.length)})` : text;
}

/**
 * Gets the whole body (fetched only when the preview was truncated, remembered in `raw`: see wholeBody), then fills
 * the view. `urls` collects blob URLs so the caller can revoke them.
 */
export function multipartView(req, urls, raw) {
  const view = el("div", { class: "multipart-view" }, el("p", { class: "muted" }, "Loading the parts…"));
  const boundary = boundaryOf(req.content_type);
  if (!boundary) {
    view.replaceChildren(empty("No boundary in the Content-Type: shown as text and hex instead."));
    return view;
  }
  wholeBody(req, raw)
    .then((bytes) => {
      const parts = parseMultipart(bytes, boundary);
      if (!parts.length) {
        view.replaceChildren(empty("No parts found for this boundary."));
        return;
      }
      const rows = parts.map((part) => {
        if (part.filename === undefined) {
          return [part.name, el("span", { class: "mp-text" }, textValue(part.data)), "text", formatSizeKiB(part.data.length)];
        }
        const { url, filename } = blobLink(part.data, part.filename);
        urls.push(url);
        const link = el("a", { href: url, download: filename, class: "mp-download" }, "Download");
        return [
          part.name,
          el("span", { class: "mp-file" }, el("span", { class: "mp-filename" }, part.filename), " ", link),
          part.contentType || "(none)",
          formatSizeKiB(part.data.length) + (part.incomplete ? " (incomplete)" : ""),
        ];
      });
      view.replaceChildren(table(["Name", "Value / file", "Content type", "Size"], rows, "multipart-fields"));
    })
    .catch((err) => view.replaceChildren(empty(`Could not load the body: ${err.message}`)));
  return view;
}
