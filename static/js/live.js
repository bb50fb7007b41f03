// The inspector's live connection (protocol: app/live.py). Reconnects with backoff (250 ms doubling to 5 s),
// always resuming after the highest id seen, so a restart or eviction shows every request exactly once.

const MIN_DELAY = 250;
const MAX_DELAY = 5000;
const PING_EVERY = 25000;

export class LiveConnection {
  /**
   * handlers: onRequests(summaries), onState("connecting" | "live" | "reconnecting"), onReset(),
   *   onDeleted(ids), onCleared()
   */
  constructor(endpointId, after, handlers) {
    this.endpointId = endpointId;
    this.after = after;
    this.handlers = handlers;
    this.delay = MIN_DELAY;
    this.socket = null;
    this.timer = null;
    this.pinger = null;
    this.stopped = false;
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
        this.helloId = typeof frame.last_id === "number" ? frame.last_id : null;
        if (this.after === null) this.after = this.helloId;
        break;
      case "reset":
        // The server's ids went backwards (database replaced): resume from where the server now stands.
        this.after = this.helloId ?? 0;
        this.handlers.onReset();
        break;
      case "requests": {
        const fresh = [];
        for (const r of frame.requests || []) {
          if (typeof r.id !== "number") continue;
          fresh.push(r);
          if (this.after === null || r.id > this.after) this.after = r.id;
        }
        if (fresh.length) this.handlers.onRequests(fresh);
        break;
      }
      case "deleted":
        // Another page (or the API) deleted rows of this endpoint.
        if (this.handlers.onDeleted) this.handlers.onDeleted((frame.ids || []).filter((id) => typeof id === "number"));
        break;
      case "cleared":
        if (this.handlers.onCleared) this.handlers.onCleared();
        break;
      case "synced":
        if (typeof frame.last_id === "number" && (this.after === null || frame.last_id > this.after)) {
          this.after = frame.last_id;
        }
        this.delay = MIN_DELAY;
        this.handlers.onState("live");
        break;
      default:
        break;
    }
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }
}
