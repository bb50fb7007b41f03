// The request list: one <li data-id data-seq> per summary, newest first (highest position, seq, at the top: seq is
// capture order within the endpoint, which ids need not follow on every backend), capped at ROW_CAP rows in the DOM.
// Rows are found by request id (selection, deletes, verdicts) and ordered by seq.
// Live rows are queued and inserted once per animation frame (one layout per frame however fast they come).
// Every inserted live row dispatches a `hookscope:row` CustomEvent on document ({id, at}) for benchmarks.
import { requestBadges } from "./badges.js";
import { el, clear } from "./lib/dom.js";
import { formatSizeKB, relativeTime, absoluteTime } from "./lib/format.js";

/** Rows kept in the DOM. Older ones are dropped as new ones arrive; "load older" fetches them again. */
export const ROW_CAP = 1000;
const FRESH_MS = 2500;

export class RequestList {
  constructor(listEl, { onSelect, onChange }) {
    this.listEl = listEl;
    this.onSelect = onSelect;
    this.onChange = onChange || (() => {});
    this.rows = new Map(); // id -> {summary, node}
    this.pending = [];
    this.scheduled = false;
    this.selectedId = null;
    this.trimmed = false; // rows were dropped from the bottom by the cap
    listEl.addEventListener("click", (e) => {
      const row = e.target.closest("li.row");
      if (row && listEl.contains(row)) this.onSelect(Number(row.dataset.id));
    });
    setInterval(() => this.refreshTimes(), 15000);
  }

  get size() {
    return this.rows.size;
  }

  has(id) {
    return this.rows.has(id);
  }

  ids() {
    return Array.from(this.listEl.children, (n) => Number(n.dataset.id));
  }

  /** The lowest seq shown (where "load older" continues: the list API's `before`), or null. */
  lowestSeq() {
    const last = this.listEl.lastElementChild;
    return last ? Number(last.dataset.seq) : null;
  }

  highestSeq() {
    const first = this.listEl.firstElementChild;
    return first ? Number(first.dataset.seq) : null;
  }

  summary(id) {
    const row = this.rows.get(id);
    return row ? row.summary : null;
  }

  /** Live rows: highlighted, inserted on the next frame. */
  addLive(summaries) {
    for (const s of summaries) this.pending.push(s);
    if (this.scheduled) return;
    this.scheduled = true;
    // Hidden tabs get no animation frames; a timer still lets rows (and the unread count) land.
    if (document.visibilityState === "hidden") setTimeout(() => this.flush(), 0);
    else requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.scheduled = false;
    if (!this.pending.length) return;
    const batch = this.pending.sort((a, b) => b.seq - a.seq);
    this.pending = [];
    const fresh = [];
    const top = this.highestSeq();
    const head = document.createDocumentFragment();
    for (const s of batch) {
      if (this.rows.has(s.id)) continue;
      const node = this.build(s, true);
      this.rows.set(s.id, { summary: s, node });
      if (top === null || s.seq > top) head.appendChild(node);
      else this.insertSorted(node, s.seq);
      fresh.push(s.id);
    }
    this.listEl.insertBefore(head, this.listEl.firstChild);
    if (fresh.length) {
      const nodes = fresh.map((id) => this.rows.get(id).node);
      setTimeout(() => {
        for (const node of nodes) node.classList.remove("fresh");
      }, FRESH_MS);
    }
    const at = performance.timeOrigin + performance.now();
    for (const id of fresh) document.dispatchEvent(new CustomEvent("hookscope:row", { detail: { id, at } }));
    this.trim();
    this.onChange(fresh.length);
  }

  /** Rows from the list API (initial page, "load older", filter changes): not highlighted, inserted now. */
  addPage(summaries) {
    const frag = document.createDocumentFragment();
    const low = this.lowestSeq();
    let added = 0;
    for (const s of summaries) {
      if (this.rows.has(s.id)) continue;
      const node = this.build(s, false);
      this.rows.set(s.id, { summary: s, node });
      if (low === null || s.seq < low) frag.appendChild(node);
      else this.insertSorted(node, s.seq);
      added += 1;
    }
    this.listEl.appendChild(frag);
    this.onChange(0);
    return added;
  }

  insertSorted(node, seq) {
    for (const child of this.listEl.children) {
      if (Number(child.dataset.seq) < seq) {
        this.listEl.insertBefore(node, child);
        return;
      }
    }
    this.listEl.appendChild(node);
  }

  trim() {
    while (this.rows.size > ROW_CAP) {
      const last = this.listEl.lastElementChild;
      if (!last) break;
      const id = Number(last.dataset.id);
      if (id === this.selectedId && last.previousElementSibling) {
        // Keep the selected row; drop the one above it instead.
        const prev = last.previousElementSibling;
        this.rows.delete(Number(prev.dataset.id));
        prev.remove();
      } else {
        this.rows.delete(id);
        last.remove();
      }
      this.trimmed = true;
    }
  }

  remove(id) {
    const row = this.rows.get(id);
    if (!row) return;
    row.node.remove();
    this.rows.delete(id);
    if (this.selectedId === id) this.selectedId = null;
    this.onChange(0);
  }

  clear() {
    clear(this.listEl);
    this.rows.clear();
    this.pending = [];
    this.selectedId = null;
    this.trimmed = false;
    this.onChange(0);
  }

  /** Re-checked signature verdicts ([{id, verification}]): the rows shown (or about to be) get their new badges. */
  updateVerdicts(verdicts) {
    const byId = new Map(verdicts.map((v) => [v.id, v.verification]));
    this.pending = this.pending.map((s) => (byId.has(s.id) ? { ...s, verification: byId.get(s.id) } : s));
    for (const [id, verification] of byId) {
      const row = this.rows.get(id);
      if (!row) continue;
      row.summary = { ...row.summary, verification };
      const old = row.node.querySelector(".badges");
      const fresh = this.badges(row.summary);
      if (old && fresh) old.replaceWith(fresh);
      else if (old) old.remove();
      else if (fresh) row.node.querySelector(".path").after(fresh);
    }
  }

  markSelected(id) {
    if (this.selectedId !== null) {
      const prev = this.rows.get(this.selectedId);
      if (prev) {
        prev.node.classList.remove("selected");
        prev.node.setAttribute("aria-selected", "false");
      }
    }
    this.selectedId = id;
    const row = this.rows.get(id);
    if (row) {
      row.node.classList.add("selected");
      row.node.classList.remove("fresh");
      row.node.setAttribute("aria-selected", "true");
      row.node.scrollIntoView({ block: "nearest" });
    }
  }

  /** The id `delta` rows below (+1) or above (-1) the selection; the first row when nothing is selected. */
  neighbour(delta) {
    const current = this.selectedId !== null ? this.rows.get(this.selectedId) : null;
    if (!current) {
      const first = this.listEl.firstElementChild;
      return first ? Number(first.dataset.id) : null;
    }
    const next = delta > 0 ? current.node.nextElementSibling : current.node.previousElementSibling;
    return next ? Number(next.dataset.id) : null;
  }

  /** The row's badges (<span class="badges">), or null when it has none. */
  badges(s) {
    let badges = [];
    try {
      badges = requestBadges(s) || [];
    } catch (err) {
      console.warn("requestBadges failed", err);
    }
    return badges.length ? el("span", { class: "badges" }, badges) : null;
  }

  build(s, fresh) {
    const path = (s.path || "/") + (s.query ? "?" + s.query : "");
    const absolute = absoluteTime(s.received_at);
    const time = el("time", { class: "rel", datetime: s.received_at, title: absolute }, relativeTime(s.received_at));
    return el("li", {
      class: fresh ? "row fresh" : "row",
      dataset: { id: s.id, seq: s.seq },
      role: "option",
      "aria-selected": "false",
    },
    el("span", { class: "method", dataset: { method: s.method } }, s.method),
    el("span", { class: "path", title: path }, path),
    this.badges(s),
    el("span", { class: "meta" },
      time,
      el("span", { class: "abs" }, absolute),
      el("span", { class: "size" }, s.rejected ? "rejected" : formatSizeKB(s.body_size)),
      s.content_type ? el("span", { class: "ctype", title: s.content_type }, s.content_type) : null,
      s.client ? el("span", { class: "client" }, s.client) : null,
    ));
  }

  refreshTimes() {
    const now = Date.now();
    for (const t of this.listEl.querySelectorAll("time.rel")) t.textContent = relativeTime(t.dateTime, now);
  }
}
