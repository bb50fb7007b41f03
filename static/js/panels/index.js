// Provider and forwarding panels of the inspector: entry points called by inspector.js (static/js/context.md).
// Each piece lives in its own module; this one wires them and owns the per-container lifetimes.
import { el, clear } from "../dom.js";
import { requestBadges as badges } from "./badges.js";
import { deliveriesPanel } from "./deliveries.js";
import { replayPanel } from "./replay.js";
import { signaturePanel } from "./signature.js";
import { openSettings } from "./settings.js";
import { statusStrip } from "./status.js";

// container -> stop() of what was mounted there last, so re-rendering never leaves a poll behind.
const mounted = new WeakMap();

function unmount(container) {
  const stop = mounted.get(container);
  if (stop) stop();
  mounted.delete(container);
}

/** Badges for a request summary (provider, event type, verification verdict, duplicate): an array of nodes. */
export function requestBadges(summary) {
  return badges(summary);
}

/** Per-request panels under the detail views: deliveries, replay / edit-and-replay, signature helper. */
export function renderRequestPanels(container, req, ctx) {
  unmount(container);
  clear(container);
  if (!req) return;
  const deliveries = deliveriesPanel(req);
  const replay = replayPanel(req, ctx, deliveries);
  const signature = signaturePanel(req, ctx);
  container.append(el("div", { class: "hs-request-panels", dataset: { requestId: req.id } },
    signature ? signature.node : null, replay.node, deliveries.node));
  mounted.set(container, deliveries.stop);
}

/** Endpoint-level panels in the inspector header: settings (response, verify, resign, forwarding), relays. */
export function mountEndpointPanels(container, endpoint, ctx) {
  unmount(container);
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
  mounted.set(container, strip.stop);
}
