// Replay: one click to the remembered target (asking for one inline when none is remembered), and an
// "Edit and replay" <dialog> prefilled from the captured request. Results become rows of the deliveries panel.
import { getJSON, postJSON } from "../lib/api.js";
import { el } from "../lib/dom.js";
import { errorText, messageArea } from "../lib/message.js";
import { field, headersToText, textToHeaders } from "./util.js";

// Errors are already shown in the panel's message area.
const ignore = () => {};

export function replayPanel(req, ctx, deliveries) {
  const msg = messageArea();
  const targetInput = el("input", {
    type: "url", class: "hs-replay-target", placeholder: "http://localhost:3000/webhooks", "aria-label": "Replay target URL",
  });
  const sendTo = el("button", { type: "button", class: "hs-replay-send", onclick: () => replay({ target: targetInput.value.trim() }, sendTo).catch(ignore) }, "Send");
  const askTarget = el("span", { class: "hs-replay-ask", hidden: true }, targetInput, sendTo);
  const targetNote = el("span", { class: "hs-replay-current" });
  const replayButton = el("button", { type: "button", class: "hs-replay", onclick: () => quickReplay() }, "Replay");
  const change = el("button", { type: "button", class: "hs-link hs-replay-change", onclick: () => showAsk() }, "change target");
  const editButton = el("button", { type: "button", class: "hs-edit-replay", onclick: () => openEditor() }, "Edit and replay");
  const root = el("section", { class: "hs-panel hs-replay-panel", dataset: { panel: "replay" } },
    el("h3", null, "Replay"),
    req.rejected
      ? el("p", { class: "hs-empty" }, "This request was rejected (body too large): there is no body to replay.")
      : el("div", { class: "hs-row" }, replayButton, targetNote, change, askTarget, editButton),
    msg.node);

  const remembered = () => (ctx.endpoint && ctx.endpoint.replay_target) || "";
  function showTarget() {
    const t = remembered();
    targetNote.textContent = t ? "to " + t : "";
    change.hidden = !t;
  }
  function showAsk() {
    askTarget.hidden = false;
    targetInput.value = remembered();
    targetInput.focus();
  }
  showTarget();

  function quickReplay() {
    if (!remembered()) {
      msg.show("No replay target yet: enter the URL to send this request to.", "info");
      showAsk();
      return;
    }
    replay({}, replayButton).catch(ignore);
  }

  async function replay(payload, button) {
    if ("target" in payload && !payload.target) {
      msg.show("Enter a target URL.", "error");
      return null;
    }
    msg.clear();
    if (button) button.disabled = true;
    try {
      const d = await postJSON(`/api/requests/${req.id}/replay`, payload);
      deliveries.upsert(d);
      report(d);
      askTarget.hidden = true;
      if (payload.target && payload.target !== remembered()) await refreshEndpoint();
      return d;
    } catch (err) {
      msg.show("Replay refused: " + errorText(err), "error");
      throw err;
    } finally {
      if (button) button.disabled = false;
    }
  }

  function report(d) {
    if (d.state === "delivered") msg.show(`Replayed to ${d.target}: ${d.status}`, "ok");
    else msg.show(`Replay to ${d.target} failed: ${d.error || (d.status ? "status " + d.status : d.state)}`, "error");
  }

  // The API remembers the last target; fetch the endpoint so the inspector (and our note) know it.
  async function refreshEndpoint() {
    try {
      const ep = await getJSON(`/api/endpoints/${encodeURIComponent(req.endpoint_id)}`);
      if (typeof ctx.setEndpoint === "function") ctx.setEndpoint(ep);
      else ctx.endpoint = ep;
    } catch {
      // Only the note is stale; the replay itself succeeded.
    }
    showTarget();
  }

  async function openEditor() {
    let full = req;
    if (req.body_truncated || req.body === undefined) {
      try {
        full = typeof ctx.loadFullBody === "function" ? await ctx.loadFullBody(req.id) : await getJSON(`/api/requests/${req.id}`);
      } catch (err) {
        msg.show("Could not load the full body: " + errorText(err), "error");
        return;
      }
    }
    const dialog = editor(full, ctx, async (payload, dialogMsg) => {
      try {
        await replay(payload, null);
        dialog.close();
        dialog.remove();
      } catch (err) {
        dialogMsg.show(errorText(err), "error");
      }
    });
    root.append(dialog);
    dialog.showModal();
  }

  return { node: root };
}

/** The edit dialog. Only fields that differ from the capture are sent, so untouched ones keep their exact bytes. */
function editor(req, ctx, submit) {
  const binary = req.body_encoding === "base64";
  const original = {
    method: req.method,
    path: req.path || "",
    query: req.query || "",
    headers: headersToText(req.headers),
    body: req.body || "",
  };
  const method = el("input", { name: "method", value: original.method, size: 8 });
  const path = el("input", { name: "path", value: original.path });
  const query = el("input", { name: "query", value: original.query });
  const headers = el("textarea", { name: "headers", rows: 8, spellcheck: "false" });
  headers.value = original.headers;
  const body = el("textarea", { name: "body", rows: 10, spellcheck: "false" });
  body.value = original.body;
  const target = el("input", {
    name: "target", type: "url", value: (ctx.endpoint && ctx.endpoint.replay_target) || "",
    placeholder: "http://localhost:3000/webhooks",
  });
  const resign = ctx.endpoint && ctx.endpoint.resign;
  const resignBox = resign ? el("input", { type: "checkbox", name: "resign", checked: true }) : null;
  const dialogMsg = messageArea();
  const sendButton = el("button", { type: "submit", class: "hs-primary" }, "Replay");
  const form = el("form", {
    method: "dialog", class: "hs-form",
    onsubmit: async (e) => {
      e.preventDefault();
      dialogMsg.clear();
      const payload = {};
      try {
        if (method.value.trim() !== original.method) payload.method = method.value.trim();
        if (path.value !== original.path) payload.path = path.value;
        if (query.value !== original.query) payload.query = query.value;
        if (headers.value !== original.headers) payload.headers = textToHeaders(headers.value);
      } catch (err) {
        dialogMsg.show(errorText(err), "error");
        return;
      }
      if (body.value !== original.body) {
        payload.body = body.value;
        if (binary) payload.body_encoding = "base64";
      }
      if (target.value.trim()) payload.target = target.value.trim();
      else if (!(ctx.endpoint && ctx.endpoint.replay_target)) {
        dialogMsg.show("Enter a target URL.", "error");
        return;
      }
      if (resignBox && !resignBox.checked) payload.resign = false;
      sendButton.disabled = true;
      try {
        await submit(payload, dialogMsg);
      } finally {
        sendButton.disabled = false;
      }
    },
  },
  el("h3", null, "Edit and replay #" + req.id),
  el("div", { class: "hs-row" }, field("Method", method), field("Path", path), field("Query", query)),
  field("Headers (one “Name: value” per line; order and duplicates kept)", headers,
    req.headers_latin1 && req.headers_latin1.length
      ? "Some header values are not UTF-8: left untouched, all headers are sent as captured; once edited, they are sent as UTF-8."
      : null),
  field(binary ? "Body (binary, base64)" : "Body", body),
  resign ? el("label", { class: "hs-check" }, resignBox,
    " Re-sign with the " + (resign.signs_with || "dev secret (" + resign.scheme + ")")) : null,
  field("Target", target),
  dialogMsg.node,
  el("div", { class: "hs-buttons" }, sendButton,
    el("button", { type: "button", onclick: () => { dialog.close(); dialog.remove(); } }, "Cancel")));
  const dialog = el("dialog", { class: "hs-dialog hs-edit-dialog" }, form);
  dialog.addEventListener("cancel", () => dialog.remove());
  return dialog;
}
