// Detail pane of the inspector: overview, query, headers and body views of one request, plus its actions
// (load full body, download, copy body, copy as curl, delete). Everything captured is shown as text via el().
import { toCurl } from "./curl.js";
import { el, clear } from "./lib/dom.js";
import { copyText } from "./lib/download.js";
import { formatSizeKiB } from "./lib/format.js";
import { bodyViews } from "./views/body.js";
import { wholeBody } from "./views/bytes.js";
import { headersView, queryView } from "./views/headers.js";
import { fullPath, overview } from "./views/overview.js";

// Bodies up to this size go into the curl command inline; bigger ones are piped from hookscope's /raw URL.
const CURL_INLINE_LIMIT = 256 * 1024;

function notify(ctx, message, kind = "info") {
  if (ctx && typeof ctx.toast === "function") ctx.toast(message, kind);
}

function section(title, className, ...content) {
  return el("section", { class: `detail-section ${className}` }, el("h3", null, title), ...content);
}

function ingestUrl(req, ctx) {
  const url = ctx && ctx.endpoint && ctx.endpoint.ingest_url;
  return url || `${location.origin}/h/${req.endpoint_id}`;
}

function deleteControl(req, ctx) {
  const button = el("button", { type: "button", class: "danger delete-request" }, "Delete");
  const bar = el("span", { class: "confirm-bar" });
  const reset = () => bar.replaceChildren(button);
  button.addEventListener("click", () => {
    // An in-page confirmation: native confirm() dialogs are what the XSS tests watch for.
    const yes = el("button", { type: "button", class: "danger confirm-delete" }, "Delete it");
    const no = el("button", { type: "button", class: "cancel-delete" }, "Cancel");
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await ctx.deleteRequest(req.id);
      } catch (err) {
        notify(ctx, `Could not delete: ${err.message}`, "error");
        reset();
      }
    });
    no.addEventListener("click", reset);
    bar.replaceChildren(el("span", { class: "confirm-text" }, `Delete request #${req.id}? `), yes, no);
    no.focus();
  });
  reset();
  return bar;
}

function bodyActions(req, ctx, container, memory) {
  const actions = el("div", { class: "toolbar body-actions" });
  const curlBox = el("div", { class: "curl-box hidden" });
  if (req.body_truncated) {
    const size = `showing first ${formatSizeKiB(ctx.previewLimit || req.body?.length || 0)} of ${formatSizeKiB(req.body_size)}`;
    const load = el("button", { type: "button", class: "load-full" }, "Load full body");
    load.addEventListener("click", async () => {
      load.disabled = true;
      load.textContent = "Loading…";
      try {
        const full = await ctx.loadFullBody(req.id);
        if (container.isConnected && container.dataset.rid === String(req.id)) renderDetail(container, full, ctx, memory);
      } catch (err) {
        notify(ctx, `Could not load the body: ${err.message}`, "error");
        load.disabled = false;
        load.textContent = "Load full body";
      }
    });
    actions.append(el("span", { class: "muted preview-note" }, size), load);
  }
  const stored = !req.rejected && req.body_size > 0;
  if (stored) {
    actions.append(
      el("a", { class: "button download-raw", href: `/api/requests/${encodeURIComponent(req.id)}/raw?download=1`, download: "" }, "Download"),
    );
    const copyBody = el("button", { type: "button", class: "copy-body" }, "Copy body");
    copyBody.addEventListener("click", async () => {
      try {
        const bytes = await wholeBody(req, memory.raw);
        let text;
        let how = "";
        try {
          text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          let bin = "";
          for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
          text = btoa(bin);
          how = " as base64 (not UTF-8)";
        }
        notify(ctx, (await copyText(text)) ? `Body copied${how}.` : "Copying was refused by the browser.");
      } catch (err) {
        notify(ctx, `Could not copy: ${err.message}`, "error");
      }
    });
    actions.append(copyBody);
  }
  const copyCurl = el("button", { type: "button", class: "copy-curl" }, "Copy as curl");
  copyCurl.addEventListener("click", async () => {
    try {
      const inline = stored && req.body_size <= CURL_INLINE_LIMIT ? await wholeBody(req, memory.raw) : null;
      const command = toCurl(req, inline, ingestUrl(req, ctx), {
        rawUrl: `${location.origin}/api/requests/${req.id}/raw`,
        inlineLimit: CURL_INLINE_LIMIT,
      });
      const area = el("textarea", { class: "curl-command code", readonly: true, rows: "8", spellcheck: "false" });
      area.value = command;
      curlBox.replaceChildren(area);
      curlBox.classList.remove("hidden");
      notify(ctx, (await copyText(command)) ? "curl command copied." : "Select the command below to copy it.");
    } catch (err) {
      notify(ctx, `Could not build the curl command: ${err.message}`, "error");
    }
  });
  actions.append(copyCurl);
  return [actions, curlBox];
}

/**
 * Fill `container` with every view of `req` (GET /api/requests/{rid}?max_body=N; body may be truncated,
 * see req.body_truncated). ctx and `memory` (what the pane keeps across renders, the inspector's state.detail):
 * see static/js/context.md. Returns a handle: verdict(verification) shows a re-checked signature verdict.
 */
export function renderDetail(container, req, ctx, memory) {
  for (const url of container._detailBlobUrls || []) URL.revokeObjectURL(url);
  const urls = [];
  container._detailBlobUrls = urls;
  clear(container);
  container.dataset.rid = String(req.id);
  if (memory.tab.rid !== req.id) Object.assign(memory.tab, { rid: req.id, name: null });
  const head = el(
    "header",
    { class: "detail-head" },
    el("h2", { class: "detail-title" }, el("span", { class: "method" }, req.method), " ", el("span", { class: "path" }, fullPath(req))),
    el("div", { class: "detail-actions" }, deleteControl(req, ctx)),
  );
  const [actions, curlBox] = bodyActions(req, ctx, container, memory);
  const body = bodyViews(req, {
    initial: memory.tab.name,
    onTab: (name) => Object.assign(memory.tab, { rid: req.id, name }),
    urls,
    raw: memory.raw,
  });
  container.append(
    el(
      "article",
      { class: "detail", dataset: { rid: req.id } },
      head,
      overview(req, ctx),
      section("Query parameters", "detail-query", queryView(req)),
      section(`Headers (${(req.headers || []).length})`, "detail-headers", headersView(req)),
      section(`Body (${formatSizeKiB(req.body_size)})`, "detail-body", actions, curlBox, body),
    ),
  );
  return {
    requestId: req.id,
    // Looked up when called: "load full body" re-renders the container with a new handle the caller never sees.
    verdict(verification) {
      if (container.dataset.rid !== String(req.id)) return;
      const shown = container.querySelector(".detail-overview");
      if (shown) shown.replaceWith(overview({ ...req, verification }, ctx));
    },
  };
}
