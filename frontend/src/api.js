// Talking to the astroloc API (same origin): JSON in and out, the API key, errors as messages.

const KEY_STORAGE = "astroloc.apiKey";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

// FastAPI answers {"detail": "..."} or {"detail": [{"loc": [...], "msg": "..."}, ...]}.
export function describeError(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        const where = (e.loc || []).filter((p) => p !== "body" && p !== "form").join(".");
        return where ? `${where}: ${e.msg}` : e.msg;
      })
      .join("; ");
  }
  return `HTTP ${status}`;
}

function keyMessage(message) {
  return apiKey() ? `wrong API key: ${message}` : `an API key is needed: ${message}`;
}

// fetch + JSON; throws ApiError(status, message) on a non-2xx answer or an unreachable service.
export async function request(path, { method = "GET", body, json, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  const key = apiKey();
  if (key && !("X-API-Key" in headers)) init.headers["X-API-Key"] = key;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `the service does not answer (${error.message})`);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    let message = describeError(response.status, parsed);
    throw new ApiError(response.status, response.status === 401 ? keyMessage(message) : message);
  }
  return { status: response.status, body: parsed };
}

export async function getJSON(path, options) {
  return (await request(path, options)).body;
}

// An image or document the service guards with the key: fetched with the header, handed out as
// a blob: URL (an <img src> or a link cannot send headers). The caller revokes it.
export async function fetchObjectUrl(path) {
  const headers = {};
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(path, { headers });
  } catch (error) {
    throw new ApiError(0, `the service does not answer (${error.message})`);
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    const message = describeError(response.status, body);
    throw new ApiError(response.status, response.status === 401 ? keyMessage(message) : message);
  }
  return URL.createObjectURL(await response.blob());
}
