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

/**
 * The URL of a spawned `halo serve`'s "ready on" line on its stdout; rejects after `timeoutMs`, or when the process
 * exits first (with what it wrote to stderr, when `stderr()` is given).
 */
export function childReadyUrl(
  child: { readonly stdout: NodeJS.ReadableStream; once(event: "exit", listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown },
  timeoutMs: number,
  stderr: () => string = () => "",
): Promise<string> {
  let stdout = "";
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not get ready: ${stdout} ${stderr()}`)), timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      const ready = /ready on (http:\/\/[^ ]+)/.exec(stdout);
      if (ready !== null) {
        clearTimeout(timer);
        resolve(ready[1]!);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before it was ready: ${stderr()}`));
    });
  });
}
