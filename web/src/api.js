// REST calls and the token. The token lives in sessionStorage only (this tab), taken from the
// address's fragment (`#token=...`, what `make ui` prints) or the token form.
const KEY = "cc.token";

export const apiBase = () => (typeof window.CC_API_BASE === "string" ? window.CC_API_BASE.replace(/\/$/, "") : "");

export function wsUrl(token) {
  const base = apiBase() || window.location.origin;
  const url = new URL("/ws", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", token);
  url.searchParams.set("batch", "1");
  return url.toString();
}

/** Takes `#token=` from the address (then removes it from the bar and history) into sessionStorage. */
export function adoptTokenFromUrl() {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash) return;
  const params = new URLSearchParams(hash);
  const token = params.get("token");
  if (!token) return;
  setToken(token);
  params.delete("token");
  const rest = params.toString();
  const { pathname, search } = window.location;
  window.history.replaceState(null, "", `${pathname}${search}${rest ? `#${rest}` : ""}`);
}

export const getToken = () => {
  try { return window.sessionStorage.getItem(KEY) || ""; } catch { return ""; }
};
export function setToken(token) {
  try {
    if (token) window.sessionStorage.setItem(KEY, token.trim());
    else window.sessionStorage.removeItem(KEY);
  } catch { /* storage refused (privacy mode): the token lasts as long as the page */ }
}

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(`${status} ${path}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }
}

const listeners = new Set();
/** Called with every 401/403, so the page can say what is wrong with the token. */
export const onAuthProblem = (fn) => listeners.add(fn);

export async function api(path, { method = "GET", body, params } = {}) {
  const url = new URL(path, apiBase() || window.location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Authorization: `Bearer ${getToken()}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    // no-store: the routes send max-age up to 300 s; the page wants what the API knows now.
    res = await fetch(url, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, `the sidecar did not answer (${err.message})`, path);
  }
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    const detail = data && typeof data === "object" && data.detail !== undefined
      ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))
      : res.statusText || String(data);
    const error = new ApiError(res.status, detail, path);
    if (res.status === 401 || res.status === 403) for (const fn of listeners) fn(error);
    throw error;
  }
  return data;
}
