// The request overview: what arrived, when, from where, and how hookscope judged it.
import { requestBadges } from "../badges.js";
import { el } from "../lib/dom.js";
import { formatSizeKiB, relativeTimeLong } from "../lib/format.js";

export function fullPath(req) {
  return (req.path || "/") + (req.query ? "?" + req.query : "");
}

function badges(req) {
  try {
    return requestBadges(req) || [];
  } catch {
    return []; // a badge bug must not take the detail pane down
  }
}

function row(label, ...value) {
  return [el("dt", null, label), el("dd", null, ...value)];
}

export function overview(req, ctx) {
  const abs = req.received_at ? new Date(req.received_at) : null;
  const items = [
    row("Method", el("span", { class: "method" }, req.method)),
    row("Path", el("code", { class: "full-path" }, fullPath(req))),
    row(
      "Received",
      el("time", { datetime: req.received_at || "" }, abs && !Number.isNaN(abs.getTime()) ? abs.toLocaleString() : String(req.received_at || "")),
      " ",
      el("span", { class: "muted rel-time" }, req.received_at ? `(${relativeTimeLong(req.received_at)})` : ""),
    ),
    row("Size", `${formatSizeKiB(req.body_size)} (${req.body_size} bytes)`),
    row("Content type", req.content_type ? el("code", null, req.content_type) : el("span", { class: "muted" }, "none")),
    row("Client", req.client || "unknown"),
    row("HTTP version", req.http_version || "?"),
    row("Request id", String(req.id)),
  ];
  if (req.rejected) {
    items.push(row("Rejected", el("span", { class: "rejected-flag" }, `${req.rejected}: answered 413, the body was not stored`)));
  }
  if (req.provider || req.event_type || req.event_id) {
    items.push(row("Event", [req.provider, req.event_type, req.event_id].filter(Boolean).join(" · ")));
  }
  if (req.verification && req.verification.status && req.verification.status !== "unconfigured") {
    items.push(row("Signature", `${req.verification.status}${req.verification.reason ? ": " + req.verification.reason : ""}`));
  }
  if (req.duplicate_of !== null && req.duplicate_of !== undefined) {
    const link = el("a", { href: "#", class: "duplicate-link" }, `request #${req.duplicate_of}`);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      ctx.select(req.duplicate_of);
    });
    items.push(row("Duplicate of", link));
  }
  const badgeNodes = badges(req);
  return el(
    "div",
    { class: "detail-overview" },
    badgeNodes.length ? el("div", { class: "badges" }, badgeNodes) : null,
    el("dl", { class: "overview-grid" }, items),
  );
}
