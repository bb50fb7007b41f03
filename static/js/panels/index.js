// Provider and forwarding panels of the inspector: entry points called by inspector.js (static/js/context.md).
// Each piece lives in its own module; this one wires them and hands the caller a handle to what it mounted, so
// the caller owns every panel's lifetime (and feeds it the live frames that concern it).
import { el, clear } from "../lib/dom.js";
import { deliveriesPanel } from "./deliveries.js";
import { replayPanel } from "./replay.js";
import { signaturePanel } from "./signature.js";
import { openSettings } from "./settings.js";
import { statusStrip } from "./status.js";

/**
 * Per-request panels under the detail views: deliveries, replay / edit-and-replay, signature helper.
 * Returns null when there is no request (the container is emptied), else a handle:
 *   requestId; delivery(d): a delivery frame (ignored unless it is this request's); verdicts([{id, verification}]):
 *   a verdicts frame (the signature helper follows this request's verdict); reload(): fetch the deliveries again
 *   (after the live socket reconnected); stop(): abort what is in flight (before the panels are replaced).
 */
export function renderRequestPanels(container, req, ctx) {
  clear(container);
  if (!req) return null;
  let shown = req;
  const deliveries = deliveriesPanel(req);
  const replay = replayPanel(req, ctx, deliveries);
  let signature = signaturePanel(req, ctx);
  const root = el("div", { class: "hs-request-panels", dataset: { requestId: req.id } },
    signature ? signature.node : null, replay.node, deliveries.node);
  container.append(root);

  function verdicts(list) {
    const mine = (list || []).find((v) => v.id === shown.id);
    if (!mine) return;
    shown = { ...shown, verification: mine.verification };
    const next = signaturePanel(shown, ctx);
    if (signature && next && signature.node.open) next.node.open = true; // keep it open: it loads the new verdict
    if (signature) signature.node.remove();
    if (next) root.prepend(next.node); // the helper is always the first panel
    signature = next;
  }

  return {
    requestId: req.id,
    delivery: (d) => deliveries.upsert(d),
    verdicts,
    reload: () => deliveries.reload(),
    stop: () => deliveries.stop(),
  };
}

/**
 * Endpoint-level panels in the inspector header: settings (response, verify, resign, forwarding), relays.
 * Returns a handle: refresh() re-reads the relays and forwarding strip; stop() ends its refresh timer.
 */
export function mountEndpointPanels(container, endpoint, ctx) {
  clear(container);
  const strip = statusStrip(endpoint.id);
  const settings = el("button", {
    type: "button", class: "hs-settings-button",
    onclick: () => {
      const before = ctx.endpoint || endpoint;
      openSettings(container, before, ctx, (updated) => {
        if (typeof ctx.setEndpoint === "function") ctx.setEndpoint(updated);
        else ctx.endpoint = updated;
        if (typeof ctx.toast === "function") ctx.toast("Settings saved");
        strip.refresh();
        // The server re-checked stored verdicts; the selected request's panels (signature helper) follow.
        if (JSON.stringify(before.verify) !== JSON.stringify(updated.verify) && typeof ctx.refreshSelected === "function") {
          Promise.resolve(ctx.refreshSelected()).catch(() => {});
        }
      });
    },
  }, "Settings");
  container.append(el("div", { class: "hs-endpoint-panels" }, settings, strip.node));
  return { refresh: strip.refresh, stop: strip.stop };
}
