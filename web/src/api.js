// Calls to the gateway. The session cookie (HttpOnly) goes along by itself; every call that
// changes something carries x-kinedge-console, without which the gateway accepts the cookie
// for reads only. A call refused for want of a session sends the page to the login.

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

function toLogin(status, type) {
  const auth = /Authentication|Signature|UnrecognizedClient|security token/i;
  if ((status === 401 || status === 403) && auth.test(type || "")) {
    location.assign("login");
    return true;
  }
  return false;
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const type = (body && (body.__type || body.error)) || "";
    const message = (body && (body.message || body.Message)) || text || response.statusText;
    if (toLogin(response.status, `${type} ${message}`)) throw new ApiError(response.status, "not logged in", type);
    throw new ApiError(response.status, `${message} (${response.status})`, type);
  }
  return body;
}

/** GET a JSON endpoint of the gateway (path from the root: "/deliveries"). */
export async function get(path) {
  return answer(await fetch(path, { headers: { accept: "application/json" } }));
}

/** POST/DELETE to a JSON endpoint. */
export async function send(method, path, body) {
  const headers = { "x-kinedge-console": "1" };
  if (body !== undefined) headers["content-type"] = "application/json";
  return answer(
    await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }),
  );
}

/** One Kinesis API operation (POST / with X-Amz-Target), as the AWS SDKs send it. */
export async function kinesis(operation, body = {}) {
  return answer(
    await fetch("/", {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": `Kinesis_20131202.${operation}`,
        "x-kinedge-console": "1",
      },
      body: JSON.stringify(body),
    }),
  );
}
