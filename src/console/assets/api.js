// api.js: the console's only way to the gateway: the credential API (/admin/v1/) with the
// operator token in an Authorization header, and the admin listener's /metrics. The token lives
// in sessionStorage (this tab only, gone when it closes), never in a cookie.

const KEY = "portcullis.console.token";
const TIMEOUT_MS = 10000;

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

// A refused or failed call: status 0 = the gateway did not answer.
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body || {};
  }
  get code() {
    return this.body.error || "";
  }
  get field() {
    return this.body.field;
  }
  get fix() {
    return this.body.fix || "";
  }
}

function describe(status, body) {
  if (status === 0) {
    return "The admin API did not answer. Is the gateway running, and is this its admin listener?";
  }
  if (status === 404 && body && body.error === "not found") {
    return "The credential API is off on this gateway: configure [[admin.tokens]] and reload.";
  }
  if (status === 401) return "The token was not accepted: it is not one of [[admin.tokens]].";
  if (status === 403) return "This token is read-only (scope \"read\"): changes need a \"write\" token.";
  if (body && body.message) return body.message;
  return `The admin API answered ${status}.`;
}

async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal,
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, null);
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  if (resp.status !== 204) {
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const api = {
  get: (path) => send("GET", path),
  post: (path, body) => send("POST", path, body),
  patch: (path, body) => send("PATCH", path, body),
  del: (path) => send("DELETE", path),
};

// The path of one application: /admin/v1/clients/ID or /admin/v1/apps/ID.
export function itemPath(kind, id) {
  return `/admin/v1/${kind === "app" ? "apps" : "clients"}/${encodeURIComponent(id)}`;
}

// A query string from an object, skipping empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// The Prometheus text of /metrics (no token: the admin listener serves it openly).
export async function metricsText() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const resp = await fetch("/metrics", { signal: ctl.signal, credentials: "omit", cache: "no-store" });
    if (!resp.ok) throw new ApiError(resp.status, null);
    return await resp.text();
  } catch (e) {
    throw e instanceof ApiError ? e : new ApiError(0, null);
  } finally {
    clearTimeout(timer);
  }
}
