// Everything the inspector page remembers between events, in one object. The entry module (inspector.js) creates
// it once and passes it explicitly; no module keeps page state of its own. Components (the list, the filters, the
// live connection, the panels) own their internals; this holds what ties them together.

/**
 * @typedef {"connecting" | "live" | "reconnecting" | "gone"} ConnState
 *   what the live socket last reported ("gone": the endpoint was deleted)
 */

/** A fresh state for one inspector page. */
export function createState() {
  return {
    /** The endpoint JSON as last fetched or announced (GET /api/endpoints/{id}); ctx.endpoint reads it. */
    endpoint: null,
    /** @type {ConnState} */
    conn: "connecting",
    /** Live rows are held instead of shown while paused. */
    paused: false,
    /** Summaries that arrived while paused, shown on resume ("N new"). */
    held: [],
    /** Rows that arrived while the tab was hidden or unfocused: the "(N)" in the title. */
    unread: 0,
    /** The last list page said there are older rows ("Load older requests"). */
    hasMore: false,
    /**
     * Aborted when the list is reloaded (filters changed, reset, verdicts re-checked): every fetch that fills the
     * current list (its first page, older pages, the text-filter check of live rows) listens to it, so nothing
     * fetched for an old list lands in a new one. Null before the first load.
     * @type {AbortController | null}
     */
    listScope: null,
    /**
     * Aborted when another request is selected or the detail is emptied: the fetch of the selected request listens
     * to it, so a slow answer never overwrites a newer selection.
     * @type {AbortController | null}
     */
    selection: null,
    /** "cleared" frames received: a clear from this page only empties the list itself if none came meanwhile. */
    clearFramesSeen: 0,
    /** What the detail pane keeps across re-renders (passed to renderDetail, see static/js/context.md). */
    detail: {
      /** The body tab the user picked, for the request `rid` (kept when it is re-rendered, e.g. "load full body"). */
      tab: { rid: null, name: null },
      /** The last whole body fetched from /raw (one entry: a big body is dropped once another one is fetched). */
      raw: { rid: null, bytes: null },
    },
    /** Handle of the detail now shown (renderDetail): shows re-checked verdicts. */
    detailView: null,
    /** Handle of the per-request panels now shown (renderRequestPanels), which receives delivery and verdict frames. */
    requestPanels: null,
    /** Handle of the endpoint panels (mountEndpointPanels). */
    endpointPanels: null,
  };
}
