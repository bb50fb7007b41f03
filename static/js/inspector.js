// Entry module of the inspector page (/e/{id}): wires the list, filters, live connection, keyboard and the
// detail/panel modules of the other parts (contract: static/js/context.md).
import { openBulkReplay } from "./bulk.js";
import { el, clear } from "./dom.js";
import { getJSON, del, ApiError } from "./api.js";
import { RequestList } from "./list.js";
import { Filters } from "./filters.js";
import { LiveConnection } from "./live.js";
import { bindKeys } from "./keys.js";
import { confirmAction } from "./confirm.js";
import { copyText } from "./download.js";
import { renderDetail } from "./detail.js";
import { renderRequestPanels, mountEndpointPanels } from "./panels/index.js";

const PAGE = 100;
const PREVIEW = 262144;

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

let live = null;
let connState = "connecting";
let paused = false;
let heldWhilePaused = [];
let unread = 0;
let hasMore = false;
let listGeneration = 0;
let selectToken = 0;

const list = new RequestList($("request-list"), { onSelect: (id) => select(id), onChange: listChanged });
const filters = new Filters(() => reloadList());

// ctx: see static/js/context.md -------------------------------------------------------------------------------
const ctx = {
  endpoint: null,
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
  const previous = ctx.endpoint;
  ctx.endpoint = endpoint;
  // New secrets recompute every stored verdict on the server: the list's badges must follow.
  if (previous && JSON.stringify(previous.verify ?? null) !== JSON.stringify(endpoint.verify ?? null)) {
    reloadList().catch(() => {});
  }
  $("ep-name").textContent = endpoint.name || endpoint.id;
  document.title = baseTitle.replace(/·.*$/, "· " + (endpoint.name || endpoint.id));
  updateTitle();
}

// title and unread ------------------------------------------------------------------------------------------
function attended() {
  return document.visibilityState === "visible" && document.hasFocus();
}

function updateTitle() {
  const plain = document.title.replace(/^\(\d+\) /, "");
  document.title = unread > 0 ? `(${unread}) ${plain}` : plain;
}

function seen() {
  if (unread === 0) return;
  unread = 0;
  updateTitle();
}

window.addEventListener("focus", seen);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") seen();
});

// connection state --------------------------------------------------------------------------------------------
function showConn() {
  const state = paused && connState === "live" ? "paused" : connState;
  connEl.dataset.state = state;
  connEl.textContent = state === "gone" ? "endpoint deleted" : state;
}

function setConn(state) {
  connState = state;
  showConn();
}

// list loading ------------------------------------------------------------------------------------------------
function listChanged() {
  const empty = list.size === 0;
  $("list-empty").hidden = !empty;
  $("list-empty").textContent = filters.active() ? "No requests match the filters." : "Waiting for requests…";
  $("row-count").textContent = empty ? "" : `${list.size} shown`;
  loadMoreBtn.hidden = !(hasMore || list.trimmed);
}

async function fetchPage(before) {
  const params = filters.params();
  params.set("limit", String(PAGE));
  if (before !== null && before !== undefined) params.set("before", String(before));
  return getJSON(`${apiBase}/requests?${params}`);
}

async function reloadList() {
  const generation = ++listGeneration;
  try {
    const page = await fetchPage(null);
    if (generation !== listGeneration) return null;
    const keep = list.selectedId;
    list.clear();
    hasMore = page.has_more;
    list.addPage(page.requests);
    if (keep !== null && list.has(keep)) list.markSelected(keep);
    else if (keep !== null) list.selectedId = keep;
    return page; // list.addPage ran listChanged (onChange) with hasMore already set
  } catch (err) {
    if (generation === listGeneration) toast(`Could not load requests: ${err.message}`, "error");
    return null;
  }
}

async function loadOlder() {
  const low = list.lowestId();
  if (low === null) return;
  loadMoreBtn.disabled = true;
  const generation = listGeneration;
  try {
    const page = await fetchPage(low);
    if (generation !== listGeneration) return;
    hasMore = page.has_more;
    list.trimmed = false;
    list.addPage(page.requests); // runs listChanged (onChange)
  } catch (err) {
    toast(`Could not load older requests: ${err.message}`, "error");
  } finally {
    loadMoreBtn.disabled = false;
  }
}

// live --------------------------------------------------------------------------------------------------------
function onLive(summaries) {
  if (paused) {
    heldWhilePaused.push(...summaries);
    newCountBtn.textContent = `${heldWhilePaused.length} new`;
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
    const generation = listGeneration;
    const ids = rows.map((r) => r.id);
    const low = Math.min(...ids);
    const high = Math.max(...ids);
    const params = filters.params();
    params.set("after", String(low - 1));
    params.set("limit", "500");
    try {
      const page = await getJSON(`${apiBase}/requests?${params}`);
      if (generation !== listGeneration) return;
      rows = page.requests.filter((r) => r.id <= high);
    } catch {
      return;
    }
    if (!rows.length) return;
  }
  if (!attended()) {
    unread += rows.length;
    updateTitle();
  }
  list.addLive(rows);
}

function setPaused(value) {
  paused = value;
  pauseBtn.textContent = paused ? "Resume" : "Pause";
  pauseBtn.setAttribute("aria-pressed", String(paused));
  if (!paused) {
    const held = heldWhilePaused;
    heldWhilePaused = [];
    newCountBtn.hidden = true;
    if (held.length) deliver(held);
  }
  showConn();
}

// selection and detail ------------------------------------------------------------------------------------------
async function select(id) {
  if (id === null || id === undefined || Number.isNaN(id)) return;
  list.markSelected(id);
  document.body.classList.add("show-detail");
  const token = ++selectToken;
  try {
    const req = await getJSON(`/api/requests/${encodeURIComponent(id)}?max_body=${PREVIEW}`);
    if (token !== selectToken) return;
    detailMain.dataset.requestId = String(id);
    try {
      renderDetail(detailMain, req, ctx);
    } catch (err) {
      console.error("renderDetail failed", err);
      clear(detailMain).appendChild(el("p", { class: "error" }, "Could not show this request."));
    }
    try {
      renderRequestPanels(detailForwarding, req, ctx);
    } catch (err) {
      console.error("renderRequestPanels failed", err);
    }
  } catch (err) {
    if (token !== selectToken) return;
    if (err instanceof ApiError && err.status === 404) {
      list.remove(id);
      showPlaceholder("That request no longer exists.");
    } else {
      toast(`Could not load request ${id}: ${err.message}`, "error");
    }
  }
}

function showPlaceholder(text) {
  selectToken += 1;
  delete detailMain.dataset.requestId;
  clear(detailMain).appendChild(el("p", { class: "placeholder muted" }, text));
  clear(detailForwarding);
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
  dropRows([rid], "Request deleted.");
}

// Rows deleted here, or elsewhere (another tab, the API: those arrive over the live socket).
function dropRows(ids, note) {
  const gone = new Set(ids);
  heldWhilePaused = heldWhilePaused.filter((r) => !gone.has(r.id));
  newCountBtn.textContent = `${heldWhilePaused.length} new`;
  newCountBtn.hidden = heldWhilePaused.length === 0;
  const selectedGone = list.selectedId !== null && gone.has(list.selectedId);
  for (const id of ids) list.remove(id);
  listChanged();
  if (selectedGone) showPlaceholder(note);
}

let clearsAnnounced = 0; // "cleared" frames received over the live socket

function onClearedFrame() {
  clearsAnnounced += 1;
  showCleared();
}

function showCleared() {
  list.clear();
  heldWhilePaused = [];
  newCountBtn.hidden = true;
  hasMore = false;
  listChanged();
  showPlaceholder("All requests deleted.");
}

async function clearAll() {
  const ok = await confirmAction("Delete every request captured by this endpoint? This cannot be undone.",
    "Delete all");
  if (!ok) return;
  try {
    const announcedBefore = clearsAnnounced;
    const result = await del(`${apiBase}/requests`);
    // The socket usually announces the clear before this answer arrives, and requests captured after it may be
    // on screen by now: clearing again would drop them. Clear here only if the announcement has not come.
    if (clearsAnnounced === announcedBefore) showCleared();
    toast(`Deleted ${result ? result.deleted : 0} requests.`);
  } catch (err) {
    toast(`Could not clear: ${err.message}`, "error");
  }
}

// wiring ------------------------------------------------------------------------------------------------------
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
  wireCopy();
  pauseBtn.addEventListener("click", () => setPaused(!paused));
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
    setEndpoint(endpoint);
    try {
      mountEndpointPanels($("endpoint-panels"), endpoint, ctx);
    } catch (err) {
      console.error("mountEndpointPanels failed", err);
    }
  }).catch((err) => toast(`Could not load the endpoint: ${err.message}`, "error"));
  const page = await reloadList();
  // Resume after the newest row shown; if the list could not load, start at the server's newest id.
  const top = page ? (page.requests.length ? page.requests[0].id : 0) : null;
  live = new LiveConnection(endpointId, top, {
    onRequests: onLive,
    onState: setConn,
    onReset: () => reloadList(),
    onDeleted: (ids) => dropRows(ids, "This request was deleted."),
    onCleared: onClearedFrame,
  });
  live.start();
  await endpointLoad;
}

start();
