// The Host allow-list: a DNS-rebinding guard for servers that run without API keys.
import { isIP } from "node:net";

/** Decides whether a request's `Host` header names this server. */
export type HostCheck = (host: string | undefined, localAddress: string | undefined) => boolean;

/** The host name of a `Host` header value, lower case, without port, brackets or trailing dot; null when malformed. */
export function hostNameOf(header: string): string | null {
  let name: string;
  if (header.startsWith("[")) {
    const close = header.indexOf("]");
    if (close < 0) return null;
    const rest = header.slice(close + 1);
    if (rest !== "" && !/^:[0-9]{1,5}$/.test(rest)) return null;
    name = header.slice(1, close);
    return isIP(name) === 6 ? name.toLowerCase() : null;
  }
  const colon = header.lastIndexOf(":");
  if (colon >= 0) {
    if (!/^[0-9]{1,5}$/.test(header.slice(colon + 1))) return null;
    name = header.slice(0, colon);
  } else name = header;
  name = name.toLowerCase().replace(/\.$/, "");
  if (name.length === 0 || !/^[a-z0-9._-]+$/.test(name)) return null;
  return name;
}

function bareAddress(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith("::ffff:") && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}

function isLoopback(name: string): boolean {
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  const bare = bareAddress(name);
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare === "::1";
}

/**
 * Builds the Host check of a server. A `Host` passes when it names a loopback address
 * (`localhost`, `*.localhost`, `127.0.0.0/8`, `::1`), is the very address the request arrived at
 * (the socket's local address: the bound address, or the interface reached when bound to
 * `0.0.0.0`), or matches `allowedHosts`: an exact name, a `.example.com` entry for that name and its
 * subdomains, or `*` for any. A request without `Host` (HTTP/1.0 tools) passes: browsers always
 * send one. A web page that rebinds its own name to 127.0.0.1 still sends that name as `Host`,
 * so it is refused; the server cannot be driven from a visitor's browser by name.
 *
 * @example
 * ```ts
 * const allowed = createHostCheck(["halo.example.com"]);
 * allowed("localhost:8080", "127.0.0.1");          // true
 * allowed("halo.example.com", "127.0.0.1");        // true (reverse proxy)
 * allowed("attacker.example:8080", "127.0.0.1");   // false
 * ```
 */
export function createHostCheck(allowedHosts: readonly string[]): HostCheck {
  const any = allowedHosts.includes("*");
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const entry of allowedHosts) {
    const name = entry.toLowerCase().replace(/\.$/, "");
    if (name.startsWith(".")) {
      suffixes.push(name);
      exact.add(name.slice(1));
    } else if (name !== "*") exact.add(hostNameOf(name) ?? name);
  }
  return (host, localAddress) => {
    if (any || host === undefined) return true;
    const name = hostNameOf(host);
    if (name === null) return false;
    if (isLoopback(name) || exact.has(name) || suffixes.some((suffix) => name.endsWith(suffix))) return true;
    return localAddress !== undefined && bareAddress(name) === bareAddress(localAddress);
  };
}
