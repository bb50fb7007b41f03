// Provider and forwarding panels of the inspector. Placeholder until they land; signatures are the contract.

/** Badges for a request summary (provider, event type, verification verdict, duplicate): an array of nodes. */
export function requestBadges(summary) {
  return [];
}

/** Per-request panels under the detail views: deliveries, replay / edit-and-replay, signature helper. */
export function renderRequestPanels(container, req, ctx) {}

/** Endpoint-level panels in the inspector header: settings (response, verify, resign, forwarding), relays. */
export function mountEndpointPanels(container, endpoint, ctx) {}
