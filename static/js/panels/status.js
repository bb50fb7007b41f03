// Relays / forwarding status strip: connected relays and forward targets, refreshed every few seconds while the
// strip is on the page (one timer, never two requests in flight).
import { getJSON } from "../lib/api.js";
import { el, clear } from "../lib/dom.js";
import { errorText } from "../lib/message.js";
import { poller, whenAttached } from "../lib/poller.js";

const REFRESH_MS = 3000;

export function statusStrip(endpointId) {
  const relays = el("span", { class: "hs-relays", dataset: { strip: "relays" } });
  const targets = el("span", { class: "hs-targets", dataset: { strip: "forwarding" } });
  const root = el("div", { class: "hs-status-strip", "aria-live": "polite" }, relays, targets);
  const id = encodeURIComponent(endpointId);

  async function load() {
    const [r, f] = await Promise.all([getJSON(`/api/endpoints/${id}/relays`), getJSON(`/api/endpoints/${id}/forwarding`)]);
    drawRelays(r.relays || []);
    drawTargets(f.targets || []);
    return true;
  }

  function drawRelays(list) {
    clear(relays);
    if (!list.length) return;
    relays.append(el("span", { class: "hs-strip-label" }, "Relays:"));
    for (const r of list) {
      relays.append(el("span", {
        class: "hs-relay " + (r.connected ? "hs-on" : "hs-off"), dataset: { relay: r.name, connected: String(!!r.connected) },
        title: r.remote ? "from " + r.remote : null,
      },
      el("span", { class: "hs-relay-name" }, r.name), " ",
      el("span", { class: "hs-relay-state" }, r.connected ? "connected" : "disconnected"), " · ",
      el("span", { class: "hs-relay-acked" }, r.acked_id ? "acked #" + r.acked_id : "nothing acked"), " · ",
      el("span", { class: "hs-relay-pending" }, (r.pending || 0) + " pending"),
      skippedNote(r.skipped, "this relay")));
    }
  }

  // Captures retention pruned (past --retention-ceiling) before the relay or target got them: never silent.
  function skippedNote(count, who) {
    if (!count) return null;
    return [" · ", el("span", {
      class: "hs-skipped hs-msg-error",
      title: `${count} capture(s) were pruned by retention before ${who} received them (--retention-ceiling)`,
    }, `skipped ${count} (pruned)`)];
  }

  function drawTargets(list) {
    clear(targets);
    if (!list.length) return;
    targets.append(el("span", { class: "hs-strip-label" }, "Forwarding:"));
    for (const t of list) {
      const failing = !!t.last_error && t.attempts > 0;
      targets.append(el("span", { class: "hs-fwd " + (failing ? "hs-off" : "hs-on"), dataset: { target: t.target } },
        el("span", { class: "hs-target" }, t.target), " · ",
        t.acked_id ? "acked #" + t.acked_id : "nothing delivered yet",
        t.pending ? " · " + t.pending + " pending" : "",
        skippedNote(t.skipped, "this target"),
        failing ? el("span", { class: "hs-fwd-error", title: t.last_error },
          ` · retrying #${t.current_request_id} (attempt ${t.attempts}): ${t.last_error}`) : null));
    }
  }

  const poll = poller(async () => {
    try {
      await load();
    } catch (err) {
      clear(relays).append(el("span", { class: "hs-msg-error" }, "status unavailable: " + errorText(err)));
    }
    return true;
  }, REFRESH_MS, () => root.isConnected);

  whenAttached(root, () => poll.kick());
  return { node: root, refresh: () => poll.kick(), stop: poll.stop };
}
