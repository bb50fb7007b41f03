// Detail pane of the inspector: overview, query, headers and body views of one request.
// Placeholder until the body views land; the signature below is the contract inspector.js relies on.
import { el, clear } from "./dom.js";

/**
 * Fill `container` with every view of `req` (GET /api/requests/{rid}?max_body=N; body may be truncated,
 * see req.body_truncated). ctx: see static/js/context.md.
 */
export function renderDetail(container, req, ctx) {
  clear(container);
  container.append(el("h2", null, req.method, " ", req.path || "/"));
}
