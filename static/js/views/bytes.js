// Body bytes and text of a request JSON (GET /api/requests/{rid}), and what kind of body it looks like.
import { fetchRawBytes } from "../lib/download.js";

export function bodyBytes(req) {
  if (req.body === undefined || req.body === null) return new Uint8Array(0);
  if (req.body_encoding === "base64") {
    const bin = atob(req.body);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  return new TextEncoder().encode(req.body);
}

/** The body as text: exact when it is UTF-8, else decoded with replacement characters. */
export function bodyText(req) {
  if (req.body === undefined || req.body === null) return "";
  if (req.body_encoding === "base64") return new TextDecoder("utf-8").decode(bodyBytes(req));
  return req.body;
}

/**
 * The exact whole body: from the request JSON when it holds all of it, else fetched from /raw. `raw` is the
 * caller's one-entry memory ({rid, bytes}: the inspector's state.detail.raw), so copy body, copy as curl and the
 * multipart view of one request fetch it once, and a big body is dropped once another request's is fetched.
 */
export async function wholeBody(req, raw) {
  if (!req.body_truncated) return bodyBytes(req);
  if (raw.rid !== req.id) Object.assign(raw, { rid: req.id, bytes: fetchRawBytes(req.id) });
  const pending = raw.bytes;
  try {
    return await pending;
  } catch (err) {
    if (raw.bytes === pending) Object.assign(raw, { rid: null, bytes: null }); // a failed fetch is not remembered
    throw err;
  }
}

export function mediaType(req) {
  return String(req.content_type || "").split(";")[0].trim().toLowerCase();
}

/** "json" | "form" | "multipart" | "xml" | "image" | "text" | "binary" | "empty": by content type, then sniffing. */
export function bodyKind(req) {
  if (req.rejected || !req.body_size) return "empty";
  const type = mediaType(req);
  if (type.startsWith("image/")) return "image";
  if (type === "multipart/form-data") return "multipart";
  if (type === "application/x-www-form-urlencoded") return "form";
  if (type === "application/json" || type.endsWith("+json") || type === "text/json") return "json";
  if (type.endsWith("/xml") || type.endsWith("+xml")) return "xml";
  if (req.body_encoding === "base64") return "binary";
  const head = String(req.body || "").slice(0, 64).trimStart();
  if (head.startsWith("{") || head.startsWith("[")) return "json";
  if (head.startsWith("<?xml")) return "xml";
  return "text";
}
