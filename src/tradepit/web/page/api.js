// The venue's public REST API, as any client sees it: Alpaca's key headers, JSON bodies, and
// errors as {code, message}. The key pair lives in sessionStorage: this tab only, gone when
// the tab closes.

const STORAGE_KEY = "tradepit.keys";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function savedKeys() {
  try {
    const keys = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
    return keys && keys.key_id && keys.secret_key ? keys : null;
  } catch {
    return null;
  }
}

export function saveKeys(keys) {
  sessionStorage.setItem(
    STORAGE_KEY,
    JSON.stringify({ key_id: keys.key_id, secret_key: keys.secret_key }),
  );
}

export function forgetKeys() {
  sessionStorage.removeItem(STORAGE_KEY);
}

// Called with the ApiError when a signed-in request is refused as unauthorized.
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

export async function api(method, path, { body, keys, signed = true } = {}) {
  const headers = {};
  const pair = keys ?? (signed ? savedKeys() : null);
  if (pair) {
    headers["APCA-API-KEY-ID"] = pair.key_id;
    headers["APCA-API-SECRET-KEY"] = pair.secret_key;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, 0, "the venue cannot be reached");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      data?.code ?? 0,
      data?.message ?? `the venue answered ${response.status}`,
    );
    if (response.status === 401 && pair && !keys) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path, options) => api("GET", path, options);
