// This request's deliveries (forward, relay, replay): a table, details with the bounded response, Retry for dead
// ones, and a 1 s refresh while anything is pending. The poll stops when the panel leaves the page.
import { el, clear } from "../dom.js";
import { getJSON, postJSON } from "../api.js";
import { errorText, fmtLatency, headersToText, messageArea, poller, whenAttached } from "./util.js";

const POLL_MS = 1000;
const RETRYABLE = new Set(["dead", "failed"]);

export function deliveriesPanel(req) {
  const body = el("tbody");
  const msg = messageArea();
  const empty = el("p", { class: "hs-empty" }, "No deliveries yet.");
  const table = el("table", { class: "hs-deliveries", hidden: true },
    el("thead", null, el("tr", null, ["Kind", "Target", "State", "Attempts", "Response", "Latency", "Error", ""]
      .map((h) => el("th", null, h)))),
    body);
  const root = el("section", { class: "hs-panel hs-deliveries-panel", dataset: { panel: "deliveries" } },
    el("h3", null, "Deliveries"), msg.node, empty, table);
  const open = new Set(); // delivery ids whose details are shown, kept across refreshes
  let rows = new Map(); // id -> delivery
  let queued = [];

  async function load() {
    const data = await getJSON(`/api/requests/${req.id}/deliveries`);
    rows = new Map(data.deliveries.map((d) => [d.id, d]));
    queued = data.queued || [];
    draw();
    return [...rows.values()].some((d) => d.state === "pending") || queued.length > 0;
  }

  const poll = poller(async () => {
    try {
      return await load();
    } catch (err) {
      msg.show("Could not load deliveries: " + errorText(err), "error");
      return false;
    }
  }, POLL_MS, () => root.isConnected);

  function draw() {
    clear(body);
    for (const d of rows.values()) {
      body.append(row(d));
      if (open.has(d.id)) body.append(details(d));
    }
    for (const q of queued) {
      body.append(el("tr", { class: "hs-state-queued" }, el("td", null, q.kind), el("td", { class: "hs-target" }, q.target),
        el("td", null, "queued"), el("td"), el("td"), el("td"), el("td"), el("td")));
    }
    const any = rows.size + queued.length > 0;
    table.hidden = !any;
    empty.hidden = any;
  }

  function row(d) {
    const toggle = el("button", {
      type: "button", class: "hs-link", "aria-expanded": open.has(d.id) ? "true" : "false",
      onclick: () => {
        if (open.has(d.id)) open.delete(d.id);
        else open.add(d.id);
        draw();
      },
    }, open.has(d.id) ? "Hide" : "Details");
    const retry = RETRYABLE.has(d.state) && d.kind !== "relay"
      ? el("button", { type: "button", class: "hs-retry", onclick: (e) => retryDelivery(d, e.currentTarget) }, "Retry")
      : null;
    return el("tr", { class: "hs-state-" + d.state, dataset: { deliveryId: d.id, state: d.state } },
      el("td", null, d.kind, d.relay ? " (" + d.relay + ")" : ""),
      el("td", { class: "hs-target" }, d.target),
      el("td", { class: "hs-state" }, d.state),
      el("td", null, String(d.attempts)),
      el("td", { class: "hs-status" }, d.status === null || d.status === undefined ? "" : String(d.status)),
      el("td", null, fmtLatency(d.latency_ms)),
      el("td", { class: "hs-error" }, d.error || ""),
      el("td", { class: "hs-actions" }, toggle, retry));
  }

  function details(d) {
    const size = d.response_size || 0;
    const bodyNote = d.response_body_encoding === "base64" ? " (binary, shown as base64)" : "";
    const cut = d.response_truncated ? ` (first ${d.response_body.length} of ${size} bytes)` : "";
    return el("tr", { class: "hs-delivery-details", dataset: { detailsFor: d.id } }, el("td", { colspan: 8 },
      el("h4", null, "Response headers"),
      el("pre", { class: "hs-pre hs-resp-headers" }, headersToText(d.response_headers) || "(none)"),
      el("h4", null, "Response body", bodyNote, cut),
      el("pre", { class: "hs-pre hs-resp-body" }, d.response_body || "(empty)"),
      d.sent ? [el("h4", null, "Sent with edits"), el("pre", { class: "hs-pre" }, JSON.stringify(d.sent, null, 2))] : null,
      d.history && d.history.length
        ? [el("h4", null, "Attempts"), el("ol", { class: "hs-history" }, d.history.map((h) =>
          el("li", null, h.at, " ", h.status === null ? "" : String(h.status), " ", fmtLatency(h.latency_ms), " ",
            h.error || "")))]
        : null));
  }

  async function retryDelivery(d, button) {
    button.disabled = true;
    msg.clear();
    try {
      const updated = await postJSON(`/api/deliveries/${d.id}/retry`);
      add(updated);
    } catch (err) {
      msg.show("Retry failed: " + errorText(err), "error");
      button.disabled = false;
    }
  }

  /** Show a delivery we just created or changed, then keep polling if something is pending. */
  function add(delivery) {
    rows.set(delivery.id, delivery);
    queued = queued.filter((q) => q.target !== delivery.target || delivery.kind !== q.kind);
    draw();
    poll.kick();
  }

  whenAttached(root, () => poll.kick());
  return { node: root, add, stop: poll.stop, refresh: () => poll.kick() };
}
