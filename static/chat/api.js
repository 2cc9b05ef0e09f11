// JSON calls to the site's API (docs/api.md) with the session cookie and the CSRF token.
// Every failure becomes an ApiError carrying the API's {code, message, field}.

export class ApiError extends Error {
  constructor({ status = 0, code = "error", message = "Something went wrong.", field = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

export function jsonHeaders(method, extra = {}) {
  const headers = { Accept: "application/json", ...extra };
  if (method !== "GET" && method !== "HEAD") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRFToken"] = csrfToken();
  }
  return headers;
}

/** The ApiError a non-2xx response describes (its JSON error body, else its status). */
export async function errorFrom(response) {
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  let error = null;
  try {
    error = (await response.json())?.error ?? null;
  } catch {
    // Not JSON (a proxy's HTML page): fall through to the status.
  }
  if (response.status === 401 || (response.status === 403 && error?.code === "not_authenticated")) {
    return new ApiError({ status: response.status, code: "not_authenticated", message: "Your session has ended. Log in again." });
  }
  return new ApiError({
    status: response.status,
    code: error?.code ?? `http_${response.status}`,
    message: error?.message ?? `The server answered ${response.status} ${response.statusText}.`.trim(),
    field: error?.field ?? null,
    retryAfter,
  });
}

export function networkError() {
  return new ApiError({ code: "network", message: "The server cannot be reached. Check your connection and try again." });
}

/** Call the API; resolves to the parsed JSON body (null for 204), rejects with ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: jsonHeaders(method),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw networkError();
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

/** Human wording for an error code, shown above the server's own message. */
const TITLES = {
  rate_limited: "Rate limited",
  quota_exceeded: "Usage limit reached",
  scope_not_allowed: "This key may not do that",
  model_not_allowed: "This key may not use that model",
  throttled: "Rate limited",
  loading: "The model is still loading",
  unavailable: "The model is unavailable",
  provider_busy: "The model is busy",
  provider_error: "The model provider failed",
  upstream_error: "The model provider failed",
  upstream_bad_response: "The model provider failed",
  upstream_disconnected: "The model provider failed",
  upstream_auth: "The model provider refused the site's credentials",
  upstream_not_found: "The model provider does not know this model",
  upstream_overloaded: "The model provider is overloaded",
  upstream_rate_limited: "The model provider is rate limiting the site",
  upstream_rejected: "The model provider refused the request",
  upstream_timeout: "The model provider did not answer in time",
  upstream_unreachable: "The model provider cannot be reached",
  model_not_found: "No such model",
  model_not_active: "That model is not active",
  prompt_too_long: "The message is too long",
  busy: "An answer is already being written",
  disconnected: "Disconnected",
  network: "Offline",
  not_authenticated: "Signed out",
  not_found: "Not found",
  invalid: "Check the request",
  too_large: "The message is too large",
  server_error: "Server error",
};

export function errorTitle(error) {
  if (TITLES[error.code]) return TITLES[error.code];
  if (error.code?.startsWith("upstream_")) return TITLES.provider_error;
  if (error.status === 429) return TITLES.rate_limited;
  if (error.status === 503) return TITLES.unavailable;
  if (error.status >= 500) return TITLES.server_error;
  return "Something went wrong";
}
