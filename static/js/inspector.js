// Entry module of the inspector page (/e/{id}): creates the page's one state object (inspector/state.js), builds the
// list, filters and live connection, and hands the detail and panel modules their `ctx` (static/js/context.md).
// Nothing here lives at module level but constants: startInspector() owns everything it creates.
import { openBulkReplay } from "./bulk.js";
import { renderDetail } from "./detail.js";
import { Filters } from "./filters.js";
import { createState } from "./inspector/state.js";
import { getJSON, del, ApiError } from "./lib/api.js";
import { confirmAction } from "./lib/confirm.js";
import { el, clear } from "./lib/dom.js";
import { copyText } from "./lib/download.js";
import { bindKeys } from "./lib/keys.js";
import { RequestList } from "./list.js";
import { LiveConnection } from "./live.js";
import { renderRequestPanels, mountEndpointPanels } from "./panels/index.js";

const PAGE = 100;
const PREVIEW = 262144;
const REMOVED_NOTE = {
  deleted: "This request was deleted.",
  pruned: "This request was removed by retention (the endpoint keeps only its newest requests).",
};

function startInspector() {
  const $ = (id) => document.getElementById(id);
  const endpointId = document.body.dataset.endpointId;
  const apiBase = `/api/endpoints/${encodeURIComponent(endpointId)}`;
  const baseTitle = document.title;

  const detailMain = $("detail-main");
  const detailForwarding = $("detail-forwarding");
  const connEl = $("conn");
  const pauseBtn = $("pause");
  const newCountBtn = $("new-count");
  const loadMoreBtn = $("load-more");

  const state = createState();
  const list = new RequestList($("request-list"), { onSelect: (id) => select(id), onChange: listChanged });
  const filters = new Filters(() => reloadList());

  // ctx: see static/js/context.md -----------------------------------------------------------------------------
  const ctx = {
    get endpoint() {
      return state.endpoint;
    },
    endpointId,
    previewLimit: PREVIEW,
    loadFullBody: (rid) => getJSON(`/api/requests/${encodeURIComponent(rid)}`),
    deleteRequest: (rid) => deleteRequest(rid),
    select: (rid) => select(Number(rid)),
    refreshSelected: () => (list.selectedId !== null ? select(list.selectedId) : Promise.resolve()),
    setEndpoint: (endpoint) => setEndpoint(endpoint),
    toast,
  };

  function toast(message, kind = "info") {
    const note = el("div", { class: `toast toast-${kind === "error" ? "error" : "info"}` }, String(message));
    $("toasts").appendChild(note);
    setTimeout(() => note.remove(), kind === "error" ? 6000 : 3500);
  }

  function setEndpoint(endpoint) {
    const previous = state.endpoint;
    state.endpoint = endpoint;
    // New secrets recompute every stored verdict on the server: the list's badges must follow.
    if (previous && JSON.stringify(previous.verify ?? null) !== JSON.stringify(endpoint.verify ?? null)) {
      reloadList().catch(() => {});
    }
    $("ep-name").textContent = endpoint.name || endpoint.id;
    document.title = baseTitle.replace(/·.*$/, "· " + (endpoint.name || endpoint.id));
    updateTitle();
  }

  // title and unread ----------------------------------------------------------------------------------------
  function attended() {
    return document.visibilityState === "visible" && document.hasFocus();
  }

  function updateTitle() {
    const plain = document.title.replace(/^\(\d+\) /, "");
    document.title = state.unread > 0 ? `(${state.unread}) ${plain}` : plain;
  }

  function seen() {
    if (state.unread === 0) return;
    state.unread = 0;
    updateTitle();
  }

  // connection state ----------------------------------------------------------------------------------------
  function showConn() {
    const shown = state.paused && state.conn === "live" ? "paused" : state.conn;
    connEl.dataset.state = shown;
    connEl.textContent = shown === "gone" ? "endpoint deleted" : shown;
  }

  function setConn(conn) {
    state.conn = conn;
    showConn();
    if (conn === "gone") showGone();
  }

  // The live socket said the endpoint was deleted (a frame, or close code 4404): say so where it cannot be missed,
  // and stop what would keep asking the server about it.
  function showGone() {
    if ($("endpoint-gone")) return;
    if (state.endpointPanels) state.endpointPanels.stop();
    document.querySelector("main.inspector").prepend(el("p", { id: "endpoint-gone", class: "gone-banner", role: "alert" },
      "This endpoint was deleted: it captures nothing more, and its requests are gone from the server. ",
      el("a", { href: "/" }, "Back to your endpoints")));
  }

  // list loading --------------------------------------------------------------------------------------------
  function listChanged() {
    const empty = list.size === 0;
    $("list-empty").hidden = !empty;
    $("list-empty").textContent = filters.active() ? "No requests match the filters." : "Waiting for requests…";
    $("row-count").textContent = empty ? "" : `${list.size} shown`;
    loadMoreBtn.hidden = !(state.hasMore || list.trimmed);
  }

  async function fetchPage(before, signal) {
    const params = filters.params();
    params.set("limit", String(PAGE));
    if (before !== null && before !== undefined) params.set("before", String(before));
    return getJSON(`${apiBase}/requests?${params}`, { signal });
  }

  async function reloadList() {
    if (state.listScope) state.listScope.abort();
    const scope = new AbortController();
    state.listScope = scope;
    try {
      const page = await fetchPage(null, scope.signal);
      if (scope.signal.aborted) return null;
      const keep = list.selectedId;
      list.clear();
      state.hasMore = page.has_more;
      list.addPage(page.requests);
      if (keep !== null && list.has(keep)) list.markSelected(keep);
      else if (keep !== null) list.selectedId = keep;
      return page; // list.addPage ran listChanged (onChange) with hasMore already set
    } catch (err) {
      if (!scope.signal.aborted) toast(`Could not load requests: ${err.message}`, "error");
      return null;
    }
  }

  async function loadOlder() {
    const low = list.lowestSeq();
    if (low === null || !state.listScope) return;
    const { signal } = state.listScope;
    loadMoreBtn.disabled = true;
    try {
      const page = await fetchPage(low, signal);
      if (signal.aborted) return;
      state.hasMore = page.has_more;
      list.trimmed = false;
      list.addPage(page.requests); // runs listChanged (onChange)
    } catch (err) {
      if (!signal.aborted) toast(`Could not load older requests: ${err.message}`, "error");
    } finally {
      loadMoreBtn.disabled = false;
    }
  }

  // live: requests ------------------------------------------------------------------------------------------
  function onLive(summaries) {
    if (state.paused) {
      state.held.push(...summaries);
      newCountBtn.textContent = `${state.held.length} new`;
      newCountBtn.hidden = false;
      return;
    }
    deliver(summaries);
  }

  async function deliver(summaries) {
    let rows = summaries.filter((s) => filters.matchesLocally(s));
    if (!rows.length) return;
    if (filters.text) {
      // Text search covers headers and bodies, which summaries do not carry: ask the server which ones match.
      if (!state.listScope) return;
      const { signal } = state.listScope;
      // The list API's bounds are positions (seq) in the endpoint.
      const seqs = rows.map((r) => r.seq);
      const low = Math.min(...seqs);
      const high = Math.max(...seqs);
      const params = filters.params();
      params.set("after", String(low - 1));
      params.set("limit", "500");
      try {
        const page = await getJSON(`${apiBase}/requests?${params}`, { signal });
        if (signal.aborted) return;
        rows = page.requests.filter((r) => r.seq <= high);
      } catch {
        return;
      }
      if (!rows.length) return;
    }
    if (!attended()) {
      state.unread += rows.length;
      updateTitle();
    }
    list.addLive(rows);
  }

  function setPaused(value) {
    state.paused = value;
    pauseBtn.textContent = state.paused ? "Resume" : "Pause";
    pauseBtn.setAttribute("aria-pressed", String(state.paused));
    if (!state.paused) {
      const held = state.held;
      state.held = [];
      newCountBtn.hidden = true;
      if (held.length) deliver(held);
    }
    showConn();
  }

  // live: everything else -----------------------------------------------------------------------------------
  function onDelivery(delivery) {
    if (state.requestPanels) state.requestPanels.delivery(delivery);
  }

  function onVerdicts(verdicts) {
    const byId = new Map(verdicts.map((v) => [v.id, v.verification]));
    state.held = state.held.map((s) => (byId.has(s.id) ? { ...s, verification: byId.get(s.id) } : s));
    list.updateVerdicts(verdicts);
    if (state.detailView && byId.has(state.detailView.requestId)) {
      state.detailView.verdict(byId.get(state.detailView.requestId));
    }
    if (state.requestPanels) state.requestPanels.verdicts(verdicts);
    // With a signature filter the verdict decides which rows belong in the list: the server re-applies it.
    if (filters.params().has("verification")) reloadList().catch(() => {});
  }

  function onEndpoint(endpoint) {
    setEndpoint(endpoint);
    if (state.endpointPanels) state.endpointPanels.refresh(); // forward targets may have changed
  }

  // A reconnect may have missed delivery frames: the open deliveries panel reads its list again.
  function onResynced() {
    if (state.requestPanels) state.requestPanels.reload();
  }

  // selection and detail ------------------------------------------------------------------------------------
  async function select(id) {
    if (id === null || id === undefined || Number.isNaN(id)) return;
    list.markSelected(id);
    document.body.classList.add("show-detail");
    if (state.selection) state.selection.abort();
    const selection = new AbortController();
    state.selection = selection;
    try {
      const req = await getJSON(`/api/requests/${encodeURIComponent(id)}?max_body=${PREVIEW}`,
        { signal: selection.signal });
      if (selection.signal.aborted) return;
      detailMain.dataset.requestId = String(id);
      try {
        state.detailView = renderDetail(detailMain, req, ctx, state.detail);
      } catch (err) {
        console.error("renderDetail failed", err);
        state.detailView = null;
        clear(detailMain).appendChild(el("p", { class: "error" }, "Could not show this request."));
      }
      showRequestPanels(req);
    } catch (err) {
      if (selection.signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) {
        list.remove(id);
        showPlaceholder("That request no longer exists.");
      } else {
        toast(`Could not load request ${id}: ${err.message}`, "error");
      }
    }
  }

  function showRequestPanels(req) {
    if (state.requestPanels) state.requestPanels.stop();
    state.requestPanels = null;
    try {
      state.requestPanels = renderRequestPanels(detailForwarding, req, ctx);
    } catch (err) {
      console.error("renderRequestPanels failed", err);
    }
  }

  function showPlaceholder(text) {
    if (state.selection) state.selection.abort();
    state.selection = null;
    state.detailView = null;
    delete detailMain.dataset.requestId;
    clear(detailMain).appendChild(el("p", { class: "placeholder muted" }, text));
    showRequestPanels(null);
    document.body.classList.remove("show-detail");
  }

  async function deleteRequest(rid) {
    try {
      await del(`/api/requests/${encodeURIComponent(rid)}`);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) {
        toast(`Could not delete: ${err.message}`, "error");
        throw err;
      }
    }
    dropRows([rid], REMOVED_NOTE.deleted);
  }

  // Rows deleted here, or elsewhere (another tab, the API, retention: those arrive over the live socket).
  function dropRows(ids, note) {
    const gone = new Set(ids);
    state.held = state.held.filter((r) => !gone.has(r.id));
    newCountBtn.textContent = `${state.held.length} new`;
    newCountBtn.hidden = state.held.length === 0;
    const selectedGone = list.selectedId !== null && gone.has(list.selectedId);
    for (const id of ids) list.remove(id);
    listChanged();
    if (selectedGone) showPlaceholder(note);
  }

  function onClearedFrame() {
    state.clearFramesSeen += 1;
    showCleared();
  }

  function showCleared() {
    list.clear();
    state.held = [];
    newCountBtn.hidden = true;
    state.hasMore = false;
    listChanged();
    showPlaceholder("All requests deleted.");
  }

  async function clearAll() {
    const ok = await confirmAction("Delete every request captured by this endpoint? This cannot be undone.",
      "Delete all");
    if (!ok) return;
    try {
      const seenBefore = state.clearFramesSeen;
      const result = await del(`${apiBase}/requests`);
      // The socket usually announces the clear before this answer arrives, and requests captured after it may be
      // on screen by now: clearing again would drop them. Clear here only if the announcement has not come.
      if (state.clearFramesSeen === seenBefore) showCleared();
      toast(`Deleted ${result ? result.deleted : 0} requests.`);
    } catch (err) {
      toast(`Could not clear: ${err.message}`, "error");
    }
  }

  // wiring --------------------------------------------------------------------------------------------------
  function wireCopy() {
    for (const button of document.querySelectorAll("button[data-copy]")) {
      button.addEventListener("click", async () => {
        const source = document.getElementById(button.dataset.copy);
        const text = source ? source.textContent : "";
        if (await copyText(text)) {
          toast("Copied.");
        } else {
          const range = document.createRange();
          range.selectNodeContents(source);
          const selection = getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          toast("Press Ctrl+C to copy the selected text.");
        }
      });
    }
  }

  function wire() {
    window.addEventListener("focus", seen);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") seen();
    });
    wireCopy();
    pauseBtn.addEventListener("click", () => setPaused(!state.paused));
    newCountBtn.addEventListener("click", () => setPaused(false));
    loadMoreBtn.addEventListener("click", loadOlder);
    $("clear-all").addEventListener("click", clearAll);
    $("replay-shown").addEventListener("click", () => openBulkReplay(ctx, filters.params(), list.size));
    $("back").addEventListener("click", () => document.body.classList.remove("show-detail"));
    bindKeys({
      next: () => select(list.neighbour(1)),
      previous: () => select(list.neighbour(-1)),
      search: () => $("f-q").focus(),
      escape: () => {
        if (document.body.classList.contains("show-detail") && matchMedia("(max-width: 760px)").matches) {
          document.body.classList.remove("show-detail");
        }
      },
    });
  }

  async function start() {
    wire();
    const endpointLoad = getJSON(apiBase).then((endpoint) => {
      // An endpoint frame that came first is at least as new as this answer: keep it.
      if (state.endpoint === null) setEndpoint(endpoint);
      try {
        state.endpointPanels = mountEndpointPanels($("endpoint-panels"), state.endpoint, ctx);
      } catch (err) {
        console.error("mountEndpointPanels failed", err);
      }
    }).catch((err) => toast(`Could not load the endpoint: ${err.message}`, "error"));
    const page = await reloadList();
    // Resume after the newest row shown (its seq); if the list could not load, start at the server's last seq.
    const top = page ? (page.requests.length ? page.requests[0].seq : 0) : null;
    // Lives as long as the page: it stops itself only when the endpoint is deleted.
    const live = new LiveConnection(endpointId, top, {
      onRequests: onLive,
      onState: setConn,
      onReset: () => reloadList(),
      onResynced,
      onDeleted: (ids, reason) => dropRows(ids, REMOVED_NOTE[reason] || REMOVED_NOTE.deleted),
      onCleared: onClearedFrame,
      onDelivery,
      onVerdicts,
      onEndpoint,
    });
    live.start();
    await endpointLoad;
  }

  return start();
}

startInspector();
