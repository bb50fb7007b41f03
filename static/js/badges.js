// Badges for a request summary: provider, event type, verification verdict, duplicate, rejected. Text only.
// A leaf module: the list rows and the detail overview both show them.
import { el } from "./lib/dom.js";

function badge(kind, text, title = null) {
  return el("span", { class: "hs-badge hs-badge-" + kind, dataset: { badge: kind }, title }, text);
}

export function requestBadges(summary) {
  const s = summary || {};
  const out = [];
  if (s.provider) out.push(badge("provider", s.provider));
  if (s.event_type) out.push(badge("event", s.event_type, s.event_id ? "event id " + s.event_id : null));
  const v = s.verification || {};
  if (v.status === "valid") out.push(badge("valid", "✓ valid", v.reason || "signature valid"));
  else if (v.status === "invalid") out.push(badge("invalid", "✗ invalid", v.reason || "signature invalid"));
  if (s.duplicate_of) {
    out.push(badge("duplicate", "duplicate of #" + s.duplicate_of,
      s.event_id ? "same event id as request #" + s.duplicate_of + ": " + s.event_id : null));
  }
  if (s.rejected) out.push(badge("rejected", "413 rejected", s.rejected === "body_too_large" ? "body too large" : s.rejected));
  return out;
}
