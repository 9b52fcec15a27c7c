// The public API, as the app calls it: one place that adds credentials and reads errors.
// Credentials: a share token (from the link's fragment) goes in Authorization: Bearer; otherwise the
// session cookie set by POST /auth/login, with its CSRF token on every state-changing call. Nothing
// patient-related is kept in storage: only the CSRF token, in sessionStorage (gone with the tab).

export const DICOMWEB = "/dicom-web";
const CSRF_KEY = "lightbox.csrf";
const auth = { bearer: null, csrf: sessionStorage.getItem(CSRF_KEY) };

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function useShareToken(token) {
  auth.bearer = token;
}

export function isShare() {
  return auth.bearer !== null;
}

export function signedIn() {
  return auth.csrf !== null;
}

/** The headers a request needs; ``write`` adds the CSRF token of a cookie session. */
export function credentialHeaders(write) {
  const headers = {};
  if (auth.bearer) headers.Authorization = `Bearer ${auth.bearer}`;
  else if (write && auth.csrf) headers["X-CSRF-Token"] = auth.csrf;
  return headers;
}

export async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.error === "string") return body.error;
    if (typeof body.message === "string") return body.message;
  } catch {
    // not JSON: fall through to the status line
  }
  return `${response.status} ${response.statusText}`.trim();
}

export async function call(path, { method = "GET", body, accept = "application/json" } = {}) {
  const headers = { Accept: accept, ...credentialHeaders(method !== "GET") };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (!response.ok) throw new ApiError(response.status, await errorText(response));
  return response;
}

export async function getJson(path) {
  const response = await call(path, { accept: "application/dicom+json, application/json" });
  return response.status === 204 ? [] : response.json();
}

/** An image fetched with the credentials (never a token in a URL), as a blob: URL for an <img>. */
export async function imageUrl(path, accept = "image/png") {
  const response = await call(path, { accept });
  return URL.createObjectURL(await response.blob());
}

export async function login(username, password) {
  const response = await call("/auth/login", { method: "POST", body: { username, password } });
  const body = await response.json();
  auth.csrf = body.csrf_token;
  sessionStorage.setItem(CSRF_KEY, auth.csrf);
}

export async function logout() {
  try {
    await call("/auth/logout", { method: "POST" });
  } finally {
    auth.csrf = null;
    sessionStorage.removeItem(CSRF_KEY);
  }
}

/** Who the credentials name ({username, role}), or null when the service wants a sign-in. */
export async function whoAmI() {
  try {
    return await (await call("/auth/me")).json();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}
