// Home page: create an endpoint in one click, list endpoints with request counts and last activity.
import { getJSON, postJSON } from "./lib/api.js";
import { el, clear } from "./lib/dom.js";
import { relativeTime, absoluteTime } from "./lib/format.js";

const $ = (id) => document.getElementById(id);

// inspect_url is absolute (public URL); navigate by its path so a misconfigured base can never send us elsewhere.
function localPath(url) {
  try {
    const u = new URL(url, location.origin);
    return u.pathname;
  } catch {
    return "/";
  }
}

function showError(message) {
  const p = $("home-error");
  p.textContent = message;
  p.hidden = false;
}

async function create() {
  const button = $("create-endpoint");
  button.disabled = true;
  try {
    const ep = await postJSON("/api/endpoints", {});
    location.assign(localPath(ep.inspect_url || `/e/${encodeURIComponent(ep.id)}`));
  } catch (err) {
    showError(`Could not create an endpoint: ${err.message}`);
    button.disabled = false;
  }
}

function row(ep) {
  const count = ep.request_count === 1 ? "1 request" : `${ep.request_count} requests`;
  const last = ep.last_request_at
    ? el("time", { datetime: ep.last_request_at, title: absoluteTime(ep.last_request_at) },
      "last " + relativeTime(ep.last_request_at))
    : el("span", { class: "muted" }, "no requests yet");
  return el("li", { class: "endpoint", dataset: { id: ep.id } },
    el("a", { class: "endpoint-link", href: `/e/${encodeURIComponent(ep.id)}` }, ep.name || ep.id),
    ep.name ? el("span", { class: "endpoint-id muted" }, ep.id) : null,
    el("span", { class: "endpoint-count" }, count),
    el("span", { class: "endpoint-last" }, last),
  );
}

async function load() {
  try {
    const data = await getJSON("/api/endpoints");
    const listEl = clear($("endpoint-list"));
    for (const ep of data.endpoints) listEl.appendChild(row(ep));
    $("endpoints-empty").hidden = data.endpoints.length > 0;
  } catch (err) {
    showError(`Could not load endpoints: ${err.message}`);
  }
}

$("create-endpoint").addEventListener("click", create);
load();
