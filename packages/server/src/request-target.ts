// The one place a request line's target becomes a route path: no URL parser, nothing that can throw on client bytes.
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "./errors.js";

/** The routable part of a request target. */
export interface RequestTarget {
  /** The path exactly as sent, without query or fragment (`//x/metrics` stays `//x/metrics`). */
  readonly path: string;
  /** The query string without `?`, or "". */
  readonly query: string;
}

const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/**
 * Splits a request target (`req.url`) into path and query. Origin-form (`/v1/models?x`) keeps its
 * path as sent: no dot-segment removal, no `//` collapsing, no percent-decoding, so one string is
 * routed and logged and nothing re-parses it into another route (WHATWG `new URL("//x/metrics",
 * base)` would read `x` as a host and route `/metrics`). Absolute-form (`http://host/path`, which
 * RFC 9112 §3.2.2 obliges servers to accept) routes its path; `*` (for `OPTIONS *`) is kept as is.
 * Anything else throws `SERVER_BAD_REQUEST` (HTTP 400). Never throws anything else.
 *
 * @example
 * ```ts
 * parseRequestTarget("/v1/models?limit=1"); // { path: "/v1/models", query: "limit=1" }
 * parseRequestTarget("//x/metrics");        // { path: "//x/metrics", query: "" } → 404, not /metrics
 * parseRequestTarget("http://a:99999/");    // { path: "/", query: "" }
 * ```
 */
export function parseRequestTarget(raw: string | undefined): RequestTarget {
  let target = raw ?? "/";
  if (target === "*") return { path: "*", query: "" };
  if (!target.startsWith("/")) {
    const authority = ABSOLUTE_FORM.exec(target);
    if (authority === null) {
      throw new HaloError(ServerErrorCode.SERVER_BAD_REQUEST, "the request target is not a path", {
        expected: "a path starting with / (or an absolute http:// URL)",
        actual: target.length > 64 ? `${target.slice(0, 64)}…` : target,
      });
    }
    target = target.slice(authority[0].length);
    if (!target.startsWith("/")) target = `/${target}`;
  }
  const hash = target.indexOf("#");
  if (hash >= 0) target = target.slice(0, hash);
  const question = target.indexOf("?");
  return question < 0 ? { path: target, query: "" } : { path: target.slice(0, question), query: target.slice(question + 1) };
}

/**
 * Percent-decodes one path segment; a malformed escape (`%E0`, `%zz`) is a 400 naming `field`,
 * never an exception escaping as a 500.
 *
 * @example
 * ```ts
 * decodePathSegment("halo%2Ddemo", "model"); // "halo-demo"
 * decodePathSegment("%E0", "model");         // throws SERVER_BAD_REQUEST
 * ```
 */
export function decodePathSegment(segment: string, field: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HaloError(ServerErrorCode.SERVER_BAD_REQUEST, `the path segment for '${field}' has a malformed percent-escape`, {
      field,
      expected: "percent-escapes of complete UTF-8 sequences (%XX)",
      actual: segment.length > 64 ? `${segment.slice(0, 64)}…` : segment,
      hint: "Encode the value with encodeURIComponent",
    });
  }
}
