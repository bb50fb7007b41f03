// Small helpers shared by the panels: error text, "Name: value" header lines, masked hints.
// (Their stylesheet, /static/css/panels.css, is linked by templates/base.html.)
import { el } from "../dom.js";

export function errorText(err) {
  if (err && typeof err.message === "string" && err.message) return err.message;
  return String(err);
}

/** An inline message area: show(text, kind) / clear(). role=status so assistive tech reads it. */
export function messageArea(extraClass = "") {
  const node = el("p", { class: ("hs-msg " + extraClass).trim(), role: "status", hidden: true });
  return {
    node,
    show(text, kind = "info") {
      node.textContent = text;
      node.className = ("hs-msg hs-msg-" + kind + " " + extraClass).trim();
      node.hidden = false;
    },
    clear() {
      node.textContent = "";
      node.hidden = true;
    },
  };
}

/** [[name, value], ...] -> "name: value" lines; order and duplicates kept. */
export function headersToText(headers) {
  return (headers || []).map(([name, value]) => name + ": " + value).join("\n");
}

/** The inverse of headersToText. Throws Error with a message naming the bad line. */
export function textToHeaders(text) {
  const out = [];
  const lines = String(text).split(/\r?\n/);
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`header line ${i + 1} is not "Name: value"`);
    out.push([line.slice(0, colon).trim(), line.slice(colon + 1).replace(/^[ \t]+/, "")]);
  });
  return out;
}

export function fmtLatency(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 10 ? ms.toFixed(1) + " ms" : Math.round(ms) + " ms";
}

/** A labelled form row: label text + control (+ optional hint). */
export function field(labelText, control, hint = null) {
  return el("label", { class: "hs-field" }, el("span", { class: "hs-label" }, labelText), control,
    hint ? el("small", { class: "hs-hint" }, hint) : null);
}

/**
 * A self-rescheduling poll: run() then wait `interval` ms, never two in flight, stopped for good by stop()
 * or once `alive()` says the panel left the page (so a deselected request leaks no timer).
 */
export function poller(run, interval, alive) {
  let timer = null;
  let stopped = false;
  let busy = false;
  let rerun = false;
  const tick = async () => {
    timer = null;
    if (stopped || !alive()) return stop();
    if (busy) {
      rerun = true; // asked again while a poll is in flight: poll once more right after it
      return;
    }
    busy = true;
    let again = false;
    try {
      again = await run();
    } catch {
      again = true;
    } finally {
      busy = false;
    }
    if (stopped || !alive()) return stop();
    if (rerun) {
      rerun = false;
      tick();
    } else if (again) timer = setTimeout(tick, interval);
  };
  function stop() {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }
  return {
    stop,
    // Poll now (and keep polling while run() returns true); a no-op while a poll is in flight.
    kick() {
      if (stopped) return;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      tick();
    },
    get active() {
      return timer !== null || busy;
    },
  };
}

/** Call start() once `node` is in the document (the caller usually inserts it right after building it). */
export function whenAttached(node, start, tries = 40) {
  if (node.isConnected) return void start();
  if (tries > 0) setTimeout(() => whenAttached(node, start, tries - 1), tries > 30 ? 0 : 50);
}
