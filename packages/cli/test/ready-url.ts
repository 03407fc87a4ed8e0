// Waits for `halo serve`'s "ready on <url>" line in captured stdout (tests run the command in-process).

/** The URL of the first "ready on" line written to `out`; throws after `timeoutMs` without one. */
export async function readyUrl(out: readonly string[], timeoutMs = 20_000): Promise<string> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const line = out.find((l) => l.includes("ready on "));
    if (line !== undefined) return /ready on (http:\/\/[^ ]+)/.exec(line)![1]!;
    if (performance.now() > end) throw new Error(`serve did not get ready: ${out.join("")}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
