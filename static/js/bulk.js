// "Replay shown…": replays what the current filters show (POST /api/endpoints/{id}/replay), oldest first.
// An in-page <dialog> like the others; the target defaults to the endpoint's remembered replay target.
import { getJSON, postJSON } from "./lib/api.js";
import { el } from "./lib/dom.js";

const MAX = 500;

/** Open the dialog. params: the list filters (URLSearchParams); shown: rows the list currently shows. */
export function openBulkReplay(ctx, params, shown) {
  const target = el("input", { type: "url", name: "bulk-target", required: true, placeholder: "http://localhost:3000/webhooks",
    value: (ctx.endpoint && ctx.endpoint.replay_target) || "" });
  const limit = el("input", { type: "number", name: "bulk-limit", min: 1, max: MAX,
    value: String(Math.min(Math.max(shown, 1), 100)) });
  const message = el("p", { class: "hs-error", role: "alert" });
  const described = describe(params);
  const submit = el("button", { type: "submit", class: "primary" }, "Replay");
  const form = el("form", { method: "dialog", class: "hs-form" },
    el("h2", null, "Replay shown requests"),
    el("p", null, `The newest requests matching ${described} are sent to the target, oldest first, each once. `,
      "Every one becomes a delivery of its request."),
    el("div", { class: "hs-row" },
      el("label", { class: "hs-field" }, "Target", target),
      el("label", { class: "hs-field" }, `How many (at most ${MAX})`, limit)),
    message,
    el("div", { class: "hs-row" }, submit,
      el("button", { type: "button", onclick: () => close() }, "Cancel")));
  const dialog = el("dialog", { class: "hs-dialog bulk-replay-dialog" }, form);
  const close = () => {
    if (dialog.open) dialog.close();
    dialog.remove();
  };
  dialog.addEventListener("cancel", () => dialog.remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    const n = Number(limit.value);
    if (!Number.isInteger(n) || n < 1 || n > MAX) {
      message.textContent = `Give a number from 1 to ${MAX}.`;
      return;
    }
    submit.disabled = true;
    try {
      const result = await postJSON(`/api/endpoints/${encodeURIComponent(ctx.endpointId)}/replay`,
        { ...payloadOf(params), target: target.value.trim(), limit: n });
      const deliveries = (result && result.deliveries) || [];
      const ok = deliveries.filter((d) => d.state === "delivered").length;
      close();
      ctx.toast(`Replayed ${deliveries.length} request(s): ${ok} delivered, ${deliveries.length - ok} not.`,
        deliveries.length === ok ? "info" : "error");
      // The target is now remembered, and the open request may have a new delivery.
      getJSON(`/api/endpoints/${encodeURIComponent(ctx.endpointId)}`).then((ep) => ctx.setEndpoint(ep)).catch(() => {});
      ctx.refreshSelected().catch(() => {});
    } catch (err) {
      message.textContent = err.message || String(err);
      submit.disabled = false;
    }
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  target.focus();
  return dialog;
}

/** The list filters as the bulk-replay body. */
export function payloadOf(params) {
  const body = {};
  if (params.get("method")) body.method = params.get("method");
  if (params.get("q")) body.q = params.get("q");
  if (params.get("verification")) body.verification = params.get("verification");
  if (params.get("duplicate") === "true") body.duplicate = true;
  return body;
}

function describe(params) {
  const parts = [];
  if (params.get("method")) parts.push(`method ${params.get("method")}`);
  if (params.get("q")) parts.push(`"${params.get("q")}"`);
  if (params.get("verification")) parts.push(`signature ${params.get("verification")}`);
  if (params.get("duplicate") === "true") parts.push("duplicates only");
  return parts.length ? "the filters (" + parts.join(", ") + ")" : "no filter (all requests)";
}
