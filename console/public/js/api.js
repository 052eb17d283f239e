// The API client. The session (access and refresh tokens) lives in this module's memory only:
// never in localStorage, sessionStorage or cookies, so a reload or a closed tab signs out.
// Refresh tokens rotate and a reused one revokes its family, so one refresh runs at a time.

let session = null; // { access, refresh, refreshAt (ms), user }
let refreshing = null;
const listeners = new Set();

/** An API error carrying the problem+json body. */
export class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || `HTTP ${problem.status}`);
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
  }
}

/** Called with no argument when the session ends (sign-out, expiry, revocation). */
export function onSignedOut(fn) {
  listeners.add(fn);
}

export function currentUser() {
  return session?.user ?? null;
}

function adopt(body) {
  const lifetime = Number(body.expires_in ?? 900) * 1000;
  session = {
    access: body.access_token,
    refresh: body.refresh_token,
    // refresh a little before the end: 30 s, or a quarter of a short lifetime
    refreshAt: Date.now() + lifetime - Math.min(30_000, lifetime / 4),
    user: body.user,
  };
}

function end() {
  const had = session !== null;
  session = null;
  if (had) for (const fn of listeners) fn();
}

async function parse(res) {
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") ?? "";
  const body = type.includes("json") ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    const problem = body && typeof body === "object" ? body : { status: res.status, title: res.statusText, detail: String(body ?? "") };
    problem.status ??= res.status;
    throw new ApiError(problem);
  }
  return body;
}

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  return parse(res);
}

/** Signs in; only administrators may use the console. */
export async function login(email, password) {
  const body = await post("/v1/auth/login", { email, password });
  if (body.user?.role !== "admin") {
    // end the session we just opened: it is of no use here
    await post("/v1/auth/logout", { refresh_token: body.refresh_token }).catch(() => {});
    throw new ApiError({ status: 403, code: "forbidden", title: "Forbidden", detail: "this account is not an administrator" });
  }
  adopt(body);
  return body.user;
}

/** Signs out (the refresh token's family is revoked on the server). */
export async function logout() {
  const refresh = session?.refresh;
  end();
  if (refresh) await post("/v1/auth/logout", { refresh_token: refresh }).catch(() => {});
}

async function refresh() {
  if (!session) throw new ApiError({ status: 401, code: "unauthorized", title: "Unauthorized", detail: "signed out" });
  refreshing ??= (async () => {
    try {
      adopt(await post("/v1/auth/refresh", { refresh_token: session.refresh }));
    } catch (e) {
      end();
      throw e;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/**
 * Calls the API with the session's bearer token, refreshing it shortly before it expires and
 * once after a 401. `opts.raw` returns the Response (for downloads).
 */
export async function api(method, path, body, opts = {}) {
  if (refreshing) await refreshing;
  if (!session) throw new ApiError({ status: 401, code: "unauthorized", title: "Unauthorized", detail: "signed out" });
  if (Date.now() >= session.refreshAt) await refresh();
  const send = () =>
    fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${session.access}`,
        accept: "application/json",
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      credentials: "omit",
      cache: "no-store",
    });
  let res = await send();
  if (res.status === 401 && session) {
    await refresh();
    res = await send();
  }
  if (res.status === 401) end();
  if (opts.raw && res.ok) return res;
  return parse(res);
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
