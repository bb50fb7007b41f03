// Endpoint settings <dialog>: name, response, verification, re-signing, forwarding. Save sends one PATCH; API
// validation errors are shown inline. Saved secrets only ever come back masked: sending a masked value back
// keeps the stored secret (app/endpoint_settings.py parse_verify, app/delivery/resign.py parse_resign).
import { patchJSON } from "../lib/api.js";
import { el, clear } from "../lib/dom.js";
import { errorText, messageArea } from "../lib/message.js";
import { field, headersToText, textToHeaders } from "./util.js";

// docs/providers.md, "Schemes" (app/providers/config.py SCHEMES).
export const SCHEMES = ["stripe", "github", "standard-webhooks", "svix", "clerk", "resend", "shopify", "slack",
  "twilio", "square", "paddle", "linear", "gitlab", "zoom", "discord", "hmac"];
const HMAC_FIELDS = ["header", "algorithm", "encoding", "prefix", "template", "timestamp_header", "id_header"];
const URL_SCHEMES = new Set(["twilio", "square"]);

function select(name, options, value) {
  const node = el("select", { name }, options.map(([v, label]) => el("option", { value: v }, label)));
  node.value = value;
  return node;
}

/** An editable list of strings: existing items with Remove, plus an input and Add. */
function stringList(name, items, placeholder, addLabel) {
  const values = [...items];
  const list = el("ul", { class: "hs-list", dataset: { list: name } });
  const input = el("input", { name: name + "-new", placeholder, class: "hs-list-new" });
  function draw() {
    clear(list);
    values.forEach((v, i) => list.append(el("li", null, el("code", null, v),
      el("button", { type: "button", class: "hs-link hs-remove", "aria-label": "Remove " + v,
        onclick: () => { values.splice(i, 1); draw(); } }, "Remove"))));
  }
  draw();
  const add = () => {
    const v = input.value.trim();
    if (v && !values.includes(v)) values.push(v);
    input.value = "";
    draw();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      add();
    }
  });
  return {
    node: el("div", { class: "hs-list-edit" }, list,
      el("div", { class: "hs-row" }, input, el("button", { type: "button", onclick: add }, addLabel))),
    // What is in the list plus whatever was typed but not yet added: forgetting to press Add loses nothing.
    values() {
      const typed = input.value.trim();
      return typed && !values.includes(typed) ? [...values, typed] : [...values];
    },
  };
}

export function openSettings(host, endpoint, ctx, onSaved) {
  const ep = endpoint || {};
  const resp = ep.response || { status: 200, headers: [], body: null, delay: 0 };
  const verify = ep.verify || null;
  const resign = ep.resign || null;
  const pass = ep.passthrough || null;

  const name = el("input", { name: "name", value: ep.name || "" });
  const status = el("input", { name: "response-status", type: "number", min: 200, max: 599, value: resp.status });
  const respHeaders = el("textarea", { name: "response-headers", rows: 3, spellcheck: "false" });
  respHeaders.value = headersToText(resp.headers);
  const respBody = el("textarea", { name: "response-body", rows: 3, spellcheck: "false",
    placeholder: 'empty: {"ok": true, "request_id": N}' });
  respBody.value = resp.body === null || resp.body === undefined ? "" : resp.body;
  const delay = el("input", { name: "response-delay", type: "number", min: 0, max: 30, step: "any", value: resp.delay || 0 });

  const scheme = select("verify-scheme", [["", "off"], ...SCHEMES.map((s) => [s, s])], verify ? verify.scheme : "");
  const secrets = stringList("verify-secrets", verify ? verify.secrets || [] : [], "paste a secret", "Add secret");
  const tolerance = el("input", { name: "verify-tolerance", type: "number", min: 0, step: 1,
    value: verify && verify.tolerance !== null && verify.tolerance !== undefined ? verify.tolerance : "",
    placeholder: "provider default" });
  const verifyUrl = el("input", { name: "verify-url", value: (verify && verify.url) || "", placeholder: "the URL the provider calls" });
  const hmac = {
    header: el("input", { name: "hmac-header", value: (verify && verify.header) || "", placeholder: "X-Acme-Signature" }),
    algorithm: select("hmac-algorithm", [["sha256", "sha256"], ["sha1", "sha1"], ["sha512", "sha512"]], (verify && verify.algorithm) || "sha256"),
    encoding: select("hmac-encoding", [["hex", "hex"], ["base64", "base64"]], (verify && verify.encoding) || "hex"),
    prefix: el("input", { name: "hmac-prefix", value: (verify && verify.prefix) || "", placeholder: "sha256=" }),
    template: el("input", { name: "hmac-template", value: (verify && verify.template) || "{body}" }),
    timestamp_header: el("input", { name: "hmac-timestamp-header", value: (verify && verify.timestamp_header) || "" }),
    id_header: el("input", { name: "hmac-id-header", value: (verify && verify.id_header) || "" }),
  };
  const secretHint = el("small", { class: "hs-hint" });
  const hmacBox = el("fieldset", { class: "hs-sub" }, el("legend", null, "Generic HMAC"),
    field("Signature header", hmac.header), field("Algorithm", hmac.algorithm), field("Encoding", hmac.encoding),
    field("Prefix", hmac.prefix), field("Signed template ({body}, {timestamp}, {id})", hmac.template),
    field("Timestamp header", hmac.timestamp_header), field("Id header", hmac.id_header));
  const urlBox = field("Signed URL (when behind a proxy)", verifyUrl);
  const verifyDetails = el("div", null, el("div", { class: "hs-label" }, "Secrets (saved ones are shown masked and kept unless removed)"),
    secrets.node, secretHint, field("Tolerance, seconds (empty: provider default; 0: off)", tolerance), urlBox, hmacBox);
  function syncVerify() {
    const s = scheme.value;
    verifyDetails.hidden = !s;
    hmacBox.hidden = s !== "hmac";
    urlBox.hidden = !URL_SCHEMES.has(s);
    secretHint.textContent = s === "discord" ? "Discord: the application public key (64 hex characters)."
      : s === "stripe" ? "Stripe: the endpoint signing secret whsec_…" : "";
  }
  scheme.addEventListener("change", syncVerify);
  syncVerify();

  const resignScheme = select("resign-scheme", [["", "off"], ...SCHEMES.map((s) => [s, s])], resign ? resign.scheme : "");
  const resignSecret = el("input", { name: "resign-secret", value: resign ? resign.secret : "",
    placeholder: "dev secret your server verifies with", autocomplete: "off" });
  const resignNote = el("p", { class: "hs-note hs-resign-note" });
  function syncResign() {
    const on = !!resignScheme.value;
    resignSecret.disabled = !on;
    if (!on) resignNote.textContent = "Forwards and replays are sent with the provider's original signature.";
    else if (resign && resign.signs_with && resignSecret.value === resign.secret && resignScheme.value === resign.scheme) {
      resignNote.textContent = `Forwards and replays are re-signed with the ${resign.signs_with} — not the provider's secret.`;
    } else resignNote.textContent = "Forwards and replays will be re-signed with this dev secret — not the provider's secret.";
    if (resign && resign.public_key && resignScheme.value === "discord") {
      resignNote.textContent += " Public key for your dev server: " + resign.public_key;
    }
  }
  resignScheme.addEventListener("change", syncResign);
  resignSecret.addEventListener("input", syncResign);
  syncResign();

  const targets = stringList("forward-targets", ep.forward_targets || [], "http://localhost:3000/webhooks", "Add target");
  const passOn = el("input", { type: "checkbox", name: "passthrough", checked: !!pass });
  const passTimeout = el("input", { name: "passthrough-timeout", type: "number", min: 0.1, max: 30, step: "any",
    value: pass ? pass.timeout : 5 });
  const replayTarget = el("input", { name: "replay-target", value: ep.replay_target || "", placeholder: "http://localhost:3000/webhooks" });

  const msg = messageArea();
  const save = el("button", { type: "submit", class: "hs-primary" }, "Save");

  function payload() {
    const out = {};
    out.name = name.value;
    const st = Number(status.value);
    const dl = delay.value === "" ? 0 : Number(delay.value);
    out.response = {
      status: Number.isInteger(st) ? st : status.value,
      headers: textToHeaders(respHeaders.value),
      body: respBody.value === "" ? null : respBody.value,
      delay: Number.isFinite(dl) ? dl : delay.value,
    };
    if (scheme.value) {
      const v = { scheme: scheme.value, secrets: secrets.values() };
      if (tolerance.value !== "") v.tolerance = Number(tolerance.value);
      if (scheme.value === "hmac") {
        for (const key of HMAC_FIELDS) if (hmac[key].value !== "") v[key] = hmac[key].value;
      }
      if (URL_SCHEMES.has(scheme.value) && verifyUrl.value.trim()) v.url = verifyUrl.value.trim();
      out.verify = v;
    } else if (verify) out.verify = null;
    if (resignScheme.value) {
      const r = { scheme: resignScheme.value, secret: resignSecret.value.trim() };
      // A generic-hmac dev signature uses the same header/template settings as verification.
      if (resignScheme.value === "hmac") {
        for (const key of HMAC_FIELDS) if (hmac[key].value !== "") r[key] = hmac[key].value;
      }
      out.resign = r;
    } else if (resign) out.resign = null;
    const t = targets.values();
    if (t.length) out.forward_targets = t;
    else if (ep.forward_targets) out.forward_targets = null;
    if (passOn.checked) out.passthrough = { timeout: Number(passTimeout.value) || 5 };
    else if (pass) out.passthrough = null;
    if (replayTarget.value.trim()) out.replay_target = replayTarget.value.trim();
    else if (ep.replay_target) out.replay_target = null;
    return out;
  }

  const form = el("form", {
    method: "dialog", class: "hs-form",
    onsubmit: async (e) => {
      e.preventDefault();
      msg.clear();
      let body;
      try {
        body = payload();
      } catch (err) {
        msg.show(errorText(err), "error");
        return;
      }
      save.disabled = true;
      try {
        const updated = await patchJSON(`/api/endpoints/${encodeURIComponent(ep.id)}`, body);
        dialog.close();
        dialog.remove();
        onSaved(updated);
      } catch (err) {
        msg.show(errorText(err), "error");
      } finally {
        save.disabled = false;
      }
    },
  },
  el("h3", null, "Endpoint settings"),
  el("fieldset", { dataset: { section: "general" } }, el("legend", null, "Name"), field("Name", name)),
  el("fieldset", { dataset: { section: "response" } }, el("legend", null, "Response to senders"),
    el("div", { class: "hs-row" }, field("Status", status), field("Delay, seconds", delay)),
    field("Headers (one “Name: value” per line)", respHeaders), field("Body", respBody)),
  el("fieldset", { dataset: { section: "verify" } }, el("legend", null, "Signature verification"),
    field("Scheme", scheme), verifyDetails),
  el("fieldset", { dataset: { section: "resign" } }, el("legend", null, "Re-signing forwards and replays"),
    el("div", { class: "hs-row" }, field("Scheme", resignScheme), field("Dev secret", resignSecret)), resignNote),
  el("fieldset", { dataset: { section: "forwarding" } }, el("legend", null, "Forwarding"),
    el("div", { class: "hs-label" }, "Forward every capture to"), targets.node,
    el("div", { class: "hs-row" }, el("label", { class: "hs-check" }, passOn, " Passthrough: answer with the target's response"),
      field("within, seconds", passTimeout)),
    field("Replay target", replayTarget)),
  msg.node,
  el("div", { class: "hs-buttons" }, save,
    el("button", { type: "button", onclick: () => { dialog.close(); dialog.remove(); } }, "Cancel")));
  const dialog = el("dialog", { class: "hs-dialog hs-settings-dialog" }, form);
  dialog.addEventListener("cancel", () => dialog.remove());
  host.append(dialog);
  dialog.showModal();
  return dialog;
}
