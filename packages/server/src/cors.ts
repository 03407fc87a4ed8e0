// CORS allow-list: which browser origins may call the API, and the headers they get.

/** What to do with a request's `Origin`. */
export interface CorsDecision {
  /** False: a browser page from a foreign origin; answer 403. */
  readonly allowed: boolean;
  /** Headers to add to the answer (empty for same-origin and non-browser requests). */
  readonly headers: Readonly<Record<string, string>>;
}

function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*");
  return new RegExp(`^${escaped}$`, "i");
}

/**
 * Builds the CORS policy of a server. Requests without `Origin` (curl, SDKs) and same-origin
 * requests (the server's own chat page: Origin's host equals the `Host` header) always pass and get
 * no CORS headers. Other origins pass only when they match an entry of `allowList`: an exact origin
 * (`https://app.example`), a pattern with `*` (`http://localhost:*`, `chrome-extension://*`) or `*`
 * for any. A foreign origin that matches nothing is refused, so a random web page cannot drive a
 * local server from a visitor's browser.
 *
 * @example
 * ```ts
 * const cors = createCorsPolicy(["http://localhost:*"]);
 * cors("http://localhost:3000", "127.0.0.1:8080").allowed; // true
 * cors("https://evil.example", "127.0.0.1:8080").allowed;  // false
 * ```
 */
export function createCorsPolicy(allowList: readonly string[]): (origin: string | undefined, host: string | undefined) => CorsDecision {
  const any = allowList.includes("*");
  const patterns = allowList.filter((entry) => entry !== "*").map(patternToRegExp);
  const none: CorsDecision = { allowed: true, headers: {} };
  return (origin, host) => {
    if (origin === undefined) return none;
    if (host !== undefined && sameOrigin(origin, host)) return none;
    if (any || patterns.some((pattern) => pattern.test(origin))) {
      return {
        allowed: true,
        headers: {
          "access-control-allow-origin": origin,
          "access-control-expose-headers": "x-request-id, retry-after, x-halo-context-dropped, x-halo-ignored-fields",
          vary: "Origin",
        },
      };
    }
    return { allowed: false, headers: {} };
  };
}

function sameOrigin(origin: string, host: string): boolean {
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Headers of a successful preflight (`OPTIONS`) answer, added to the decision's headers. The
 * headers the browser asks for (`Access-Control-Request-Headers`) are allowed as asked: the
 * origin is already trusted, and SDKs send many custom headers.
 *
 * @example
 * ```ts
 * res.writeHead(204, { ...decision.headers, ...preflightHeaders(req.headers["access-control-request-headers"]) });
 * ```
 */
export function preflightHeaders(requested: string | undefined): Record<string, string> {
  return {
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers": requested !== undefined && /^[A-Za-z0-9\-_, ]*$/.test(requested) ? requested : "authorization, content-type, x-request-id",
    "access-control-max-age": "600",
  };
}
