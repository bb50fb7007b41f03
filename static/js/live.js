// The inspector's live connection (protocol: docs/events.md, app/web/live.py). Reconnects with backoff (250 ms
// doubling to 5 s), always resuming after the highest position (seq) seen, so a restart or eviction shows every
// request exactly once. It only parses and dispatches frames: what they do to the page is the handlers' business.

const MIN_DELAY = 250;
const MAX_DELAY = 5000;
const PING_EVERY = 25000;

export class LiveConnection {
  /**
   * handlers (all but onRequests and onState optional):
   *   onRequests(summaries)                 new requests, ascending seqs
   *   onState("live" | "reconnecting" | "gone")  "gone": the endpoint was deleted; the connection stays closed
   *   onReset()                             the server's seqs went backwards: reload the list
   *   onResynced()                          synced again after a reconnect: frames may have been missed meanwhile
   *   onDeleted(ids, reason)                rows removed elsewhere; reason "deleted" | "pruned"
   *   onCleared()                           every row removed elsewhere
   *   onDelivery(delivery)                  a delivery was recorded (GET /api/requests/{rid}/deliveries item)
   *   onVerdicts([{id, verification}])      stored signature verdicts were re-checked
   *   onEndpoint(endpoint)                  the endpoint's settings changed (GET /api/endpoints/{id} shape)
   */
  /** after: the highest seq already shown (null: start at the server's last seq). */
  constructor(endpointId, after, handlers) {
    this.endpointId = endpointId;
    this.after = after;
    this.handlers = handlers;
    this.delay = MIN_DELAY;
    this.socket = null;
    this.timer = null;
    this.pinger = null;
    this.stopped = false;
    this.synced = false; // a "synced" frame arrived on some connection: the next one is a resync
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/api/endpoints/${encodeURIComponent(this.endpointId)}/live` +
      (this.after === null || this.after === undefined ? "" : `?after=${this.after}`);
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: "ping" }), PING_EVERY);
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      clearInterval(this.pinger);
      this.socket = null;
      if (this.stopped) return;
      if (event.code === 4404) {
        // The endpoint is gone (deleted while we were away, or announced by an endpoint_deleted frame).
        this.stopped = true;
        this.handlers.onState("gone");
        return;
      }
      this.handlers.onState("reconnecting");
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, MAX_DELAY);
    });
  }

  onFrame(frame) {
    switch (frame.type) {
      case "hello":
        this.helloSeq = typeof frame.last_id === "number" ? frame.last_id : null;
        if (this.after === null) this.after = this.helloSeq;
        break;
      case "reset":
        // The server's seqs went backwards (database replaced): resume from where the server now stands.
        this.after = this.helloSeq ?? 0;
        this.handlers.onReset();
        break;
      case "requests": {
        const fresh = [];
        for (const r of frame.requests || []) {
          if (typeof r.id !== "number" || typeof r.seq !== "number") continue;
          fresh.push(r);
          if (this.after === null || r.seq > this.after) this.after = r.seq;
        }
        if (fresh.length) this.handlers.onRequests(fresh);
        break;
      }
      case "deleted":
        // Another page or the API deleted rows of this endpoint, or retention pruned them.
        this.handlers.onDeleted?.((frame.ids || []).filter((id) => typeof id === "number"),
          frame.reason === "pruned" ? "pruned" : "deleted");
        break;
      case "cleared":
        this.handlers.onCleared?.();
        break;
      case "delivery":
        if (frame.delivery && typeof frame.delivery.id === "number") this.handlers.onDelivery?.(frame.delivery);
        break;
      case "verdicts": {
        const verdicts = (frame.verdicts || []).filter((v) => typeof v.id === "number" && v.verification);
        if (verdicts.length) this.handlers.onVerdicts?.(verdicts);
        break;
      }
      case "endpoint":
        if (frame.endpoint && typeof frame.endpoint.id === "string") this.handlers.onEndpoint?.(frame.endpoint);
        break;
      case "endpoint_deleted":
        // The server closes with 4404 next; whatever the close looks like, there is nothing to reconnect to.
        this.stopped = true;
        this.handlers.onState("gone");
        break;
      case "synced": {
        if (typeof frame.last_id === "number" && (this.after === null || frame.last_id > this.after)) {
          this.after = frame.last_id;
        }
        this.delay = MIN_DELAY;
        const again = this.synced;
        this.synced = true;
        this.handlers.onState("live");
        if (again) this.handlers.onResynced?.();
        break;
      }
      default:
        break;
    }
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }
}
