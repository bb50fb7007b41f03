// This request's deliveries (forward, relay, replay): a table, details with the bounded response, Retry for dead
// ones. Loaded once when the panel is built (and again by reload() after the live socket reconnected); from then on
// it follows the live socket's delivery frames, which the owner passes to upsert(). It never polls.
import { getJSON, postJSON } from "../lib/api.js";
import { el, clear } from "../lib/dom.js";
import { formatLatency } from "../lib/format.js";
import { errorText, messageArea } from "../lib/message.js";
import { headersToText } from "./util.js";

const RETRYABLE = new Set(["dead", "failed"]);

/** Whether `incoming` may replace `known`: not when it is an older version of the row (updated_at is RFC 3339 in
 * UTC with microseconds, so strings compare in time order). A load and a frame can cross, either way round. */
function newer(incoming, known) {
  return !known || String(incoming.updated_at || "") >= String(known.updated_at || "");
}

/**
 * The panel of one request (GET /api/requests/{rid} JSON). Returns {node, upsert(delivery), reload(), stop()}:
 * upsert shows a delivery of this request (others are ignored), reload fetches the list again, stop aborts a load
 * in flight (the owner calls it when the panel is replaced).
 */
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
  const open = new Set(); // delivery ids whose details are shown, kept across redraws
  const rows = new Map(); // id -> delivery; shown by id, the API's order
  let queued = [];
  let loading = null; // AbortController of the load in flight

  async function load() {
    if (loading) loading.abort();
    const mine = new AbortController();
    loading = mine;
    try {
      const data = await getJSON(`/api/requests/${req.id}/deliveries`, { signal: mine.signal });
      if (mine.signal.aborted) return;
      for (const d of data.deliveries) {
        if (newer(d, rows.get(d.id))) rows.set(d.id, d);
      }
      // A forward recorded by a frame while the list was on its way is no longer queued.
      queued = (data.queued || []).filter((q) => !hasDelivery(q));
      msg.clear();
      draw();
    } catch (err) {
      if (!mine.signal.aborted) msg.show("Could not load deliveries: " + errorText(err), "error");
    } finally {
      if (loading === mine) loading = null;
    }
  }

  function hasDelivery(q) {
    for (const d of rows.values()) if (d.kind === q.kind && d.target === q.target) return true;
    return false;
  }

  function draw() {
    clear(body);
    for (const d of [...rows.values()].sort((x, y) => x.id - y.id)) {
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
      el("td", null, formatLatency(d.latency_ms)),
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
          el("li", null, h.at, " ", h.status === null ? "" : String(h.status), " ", formatLatency(h.latency_ms), " ",
            h.error || "")))]
        : null));
  }

  async function retryDelivery(d, button) {
    button.disabled = true;
    msg.clear();
    try {
      upsert(await postJSON(`/api/deliveries/${d.id}/retry`));
    } catch (err) {
      msg.show("Retry failed: " + errorText(err), "error");
      button.disabled = false;
    }
  }

  /** Show a delivery of this request that was created or changed (an API answer or a live frame). */
  function upsert(delivery) {
    if (!delivery || delivery.request_id !== req.id) return;
    if (!newer(delivery, rows.get(delivery.id))) return;
    rows.set(delivery.id, delivery);
    queued = queued.filter((q) => q.target !== delivery.target || delivery.kind !== q.kind);
    draw();
  }

  load();
  return { node: root, upsert, reload: load, stop: () => loading && loading.abort() };
}
