// Copy as curl: a pure function from a captured request to a POSIX-shell command that re-sends it byte for byte.
//
// What makes it exact (checked against the real curl binary in tests/ui/test_curl.py):
// - `--path-as-is` keeps `/../` and `-g` stops curl globbing `[]{}`; the raw path and query (percent-encoding
//   kept) are appended to the endpoint's ingest URL.
// - Every captured header is passed with -H in captured order, duplicates included. curl puts a custom header in
//   place of its own (Content-Length, User-Agent, Accept, Content-Type) and does not add the default, so the
//   order is kept. Defaults the capture did not have are suppressed with `-H 'Name:'`. An empty value is sent
//   with `-H 'Name;'` (curl's spelling; `Name:` would remove the header).
// - Header values whose bytes were not UTF-8 (headers_latin1) are written with bash's $'\xHH' quoting so the
//   original bytes are sent, not their UTF-8 re-encoding.
// - A UTF-8 body without control characters goes inline with --data-binary (--data-raw when it starts with `@`,
//   which --data-binary would read as a file name). Any other body is piped from `printf` with octal escapes.
//   A body larger than the inline limit (or not loaded) is piped from hookscope's own /raw URL.
// Limits: curl always sends Host first and lowercase names arrive lowercase anyway (the server lowercases them);
// a chunked capture is re-sent with Content-Length (Transfer-Encoding is dropped, the body is the de-chunked
// bytes); HTTP/2-only details are not reproduced; a body of a 413-rejected request was never stored, so it is
// sent without one.

const DEFAULT_INLINE_LIMIT = 256 * 1024;

/** POSIX single-quoting: the only character that needs care inside '...' is ' itself. */
export function shellQuote(s) {
  return "'" + String(s).replaceAll("'", "'\\''") + "'";
}

/** bash/zsh ANSI-C quoting for strings whose chars are bytes (latin-1 decoded). */
function ansiQuoteBytes(s) {
  let out = "$'";
  for (const ch of String(s)) {
    const c = ch.codePointAt(0);
    if (ch === "\\") out += "\\\\";
    else if (ch === "'") out += "\\'";
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else if (c <= 0xff) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch; // not a latin-1 byte: cannot happen for headers_latin1, keep it rather than lose it
  }
  return out + "'";
}

/** printf format string producing exactly `bytes` (octal escapes for everything but safe printable ASCII). */
export function printfFormat(bytes) {
  const parts = [];
  for (const b of bytes) {
    if (b === 0x25) parts.push("%%");
    else if (b === 0x5c) parts.push("\\\\");
    else if (b === 0x27) parts.push("\\047");
    else if (b >= 0x20 && b < 0x7f) parts.push(String.fromCharCode(b));
    else parts.push("\\" + b.toString(8).padStart(3, "0"));
  }
  return "'" + parts.join("") + "'";
}

function utf8Text(bytes) {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

// Tab and newline are safe in single quotes when pasted; other control characters (CR, NUL, ESC...) are not.
const UNSAFE_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/;

/**
 * toCurl(req, bodyBytes, ingestUrl, {rawUrl, inlineLimit}) -> command text.
 * req: GET /api/requests/{rid} JSON. bodyBytes: Uint8Array of the whole body, or null when it is not loaded
 * (then the body is piped from rawUrl). ingestUrl: the endpoint's ingest URL (no trailing slash).
 */
export function toCurl(req, bodyBytes, ingestUrl, options = {}) {
  const inlineLimit = options.inlineLimit ?? DEFAULT_INLINE_LIMIT;
  const rawUrl = options.rawUrl ?? `/api/requests/${req.id}/raw`;
  const headers = req.headers || [];
  const latin1 = new Set(req.headers_latin1 || []);
  const method = String(req.method || "GET");
  const stored = !req.rejected && (req.body_size || 0) > 0;
  const names = new Set(headers.map(([n]) => String(n).toLowerCase()));
  const chunked = headers.some(
    ([n, v]) => String(n).toLowerCase() === "transfer-encoding" && /chunked/i.test(String(v))
  );

  const lines = [];
  let prefix = "";
  let bodyArgs = [];
  if (stored) {
    const inline = bodyBytes && bodyBytes.length === req.body_size && bodyBytes.length <= inlineLimit;
    if (inline) {
      const text = utf8Text(bodyBytes);
      if (text !== null && !UNSAFE_CONTROL.test(text)) {
        bodyArgs = [text.startsWith("@") ? "--data-raw" : "--data-binary", shellQuote(text)];
      } else {
        prefix = `printf ${printfFormat(bodyBytes)} | `;
        bodyArgs = ["--data-binary", "@-"];
      }
    } else {
      const absolute = rawUrl.startsWith("/") ? new URL(rawUrl, ingestUrl).href : rawUrl;
      lines.push(`# The body (${req.body_size} bytes) is read from hookscope; add -H 'Authorization: Bearer <token>'`);
      lines.push("# to the first curl if your hookscope needs a token.");
      prefix = `curl -sS --fail ${shellQuote(absolute)} | `;
      bodyArgs = ["--data-binary", "@-"];
    }
  }

  const first = [prefix + "curl", "--path-as-is", "-g"];
  if (req.http_version === "1.0") first.push("--http1.0");
  if (method === "HEAD" && !stored) first.push("--head");
  else if (!(method === "POST" && stored) && !(method === "GET" && !stored)) first.push("-X", shellQuote(method));
  const url = ingestUrl + (req.path || "") + (req.query ? "?" + req.query : "");
  first.push(shellQuote(url));

  const args = [];
  headers.forEach(([name, value], i) => {
    const lower = String(name).toLowerCase();
    if (lower === "transfer-encoding" && chunked) return;
    if (lower === "content-length" && (chunked || req.rejected)) return;
    const header = value === "" ? `${name};` : `${name}: ${value}`;
    args.push("-H " + (latin1.has(i) ? ansiQuoteBytes(header) : shellQuote(header)));
  });
  // curl's own defaults, removed when the capture did not have them.
  if (!names.has("user-agent")) args.push("-H 'User-Agent:'");
  if (!names.has("accept")) args.push("-H 'Accept:'");
  if (stored && !names.has("content-type")) args.push("-H 'Content-Type:'");
  if (stored && !names.has("expect")) args.push("-H 'Expect:'");
  if (bodyArgs.length) args.push(bodyArgs.join(" "));

  lines.push([first.join(" "), ...args].join(" \\\n  "));
  return lines.join("\n") + "\n";
}
