// Refreshing a component while it is on the page: a poll that never runs twice at once and ends with its node.

/**
 * A self-rescheduling poll: run() then wait `interval` ms, never two in flight, stopped for good by stop()
 * or once `alive()` says the component left the page (so a removed component leaks no timer).
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
