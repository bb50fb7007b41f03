// Signature helper: why a request's signature is valid or invalid. Received vs expected signature, the exact
// signed string, the (masked) secret used and the verdict's reason, fetched when the section is opened.
import { getJSON } from "../lib/api.js";
import { el, clear, append } from "../lib/dom.js";
import { errorText } from "../lib/message.js";

export function signaturePanel(req, ctx) {
  const verdict = (req.verification && req.verification.status) || "unconfigured";
  if (!(ctx.endpoint && ctx.endpoint.verify) || verdict === "unconfigured") return null;
  const content = el("div", { class: "hs-signature-body" }, "Loading…");
  const summary = el("summary", null, verdict === "invalid" ? "Signature: why invalid?" : "Signature: why valid?");
  const root = el("details", { class: "hs-panel hs-signature-panel", dataset: { panel: "signature" } }, summary, content);
  let loaded = false;
  root.addEventListener("toggle", async () => {
    if (!root.open || loaded) return;
    loaded = true;
    try {
      show(await getJSON(`/api/requests/${req.id}/signature`));
    } catch (err) {
      loaded = false;
      clear(content).append(el("p", { class: "hs-msg hs-msg-error" }, errorText(err)));
    }
  });

  function show(h) {
    const v = h.verification || {};
    const rows = [
      ["Verdict", (v.status || "") + (v.reason ? " — " + v.reason : "")],
      ["Scheme", h.scheme],
      ["Signature header", h.signature_header],
      ["Secret used", h.secret_hint || "(none)"],
      ["Timestamp", h.timestamp === null || h.timestamp === undefined ? "" : String(h.timestamp)],
    ];
    append(clear(content), [
      el("dl", { class: "hs-kv" }, rows.filter(([, value]) => value).map(([k, value]) => [el("dt", null, k), el("dd", null, value)])),
      el("h4", null, "Received"),
      h.received && h.received.length
        ? el("ul", { class: "hs-sig-received" }, h.received.map((r) => el("li", null, el("code", null, r))))
        : el("p", { class: "hs-empty" }, "No signature received."),
      el("h4", null, "Expected"),
      h.expected ? el("p", null, el("code", { class: "hs-sig-expected" }, h.expected))
        : el("p", { class: "hs-empty" }, "Not computable for this scheme."),
      el("h4", null, "Signed string (exact bytes"
        + (h.signed_string && h.signed_string.includes("\\x") ? ", non-UTF-8 bytes shown as \\x.." : "") + ")"),
      h.signed_string === null || h.signed_string === undefined
        ? el("p", { class: "hs-empty" }, "None for this scheme.")
        : el("pre", { class: "hs-pre hs-sig-string" }, h.signed_string),
      h.notes && h.notes.length ? el("ul", { class: "hs-notes" }, h.notes.map((n) => el("li", null, n))) : null,
    ]);
  }
  return { node: root };
}
