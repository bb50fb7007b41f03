// JSON API calls from the pages. Same origin, so the session cookie (or no auth on loopback) applies.
// Every call takes an optional AbortSignal: whoever owns the result (a list load, a selection, a panel) aborts it
// when the result is no longer wanted, and the call then rejects with the fetch's AbortError.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, url, body, signal) {
  const init = { method, headers: { accept: "application/json" }, credentials: "same-origin", signal };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(response.status, err.code || "http_" + response.status, err.message || response.statusText);
  }
  return data;
}

export const getJSON = (url, { signal } = {}) => call("GET", url, undefined, signal);
export const postJSON = (url, body, { signal } = {}) => call("POST", url, body === undefined ? {} : body, signal);
export const patchJSON = (url, body, { signal } = {}) => call("PATCH", url, body, signal);
export const del = (url, { signal } = {}) => call("DELETE", url, undefined, signal);
