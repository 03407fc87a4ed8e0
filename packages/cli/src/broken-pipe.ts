// Output that stops quietly when its reader goes away (`halo run … | head -c 5`): no EPIPE stack trace.
import type { EventEmitter } from "node:events";

/** True for the errors a write gets once the reading end of stdout or stderr is closed. */
export function isBrokenPipe(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "EPIPE" || code === "ERR_STREAM_DESTROYED";
}

/**
 * Makes `stream` end the process with `exit(code)` (default exit code 0, as `git log | head` does)
 * when its reader goes away, instead of crashing on an unhandled `EPIPE` 'error' event; other
 * stream errors are rethrown as before. Returns a writer whose `write` never throws for a broken
 * pipe and writes nothing after one. `isTTY` is passed through.
 *
 * @example
 * ```ts
 * const stdout = quietOnBrokenPipe(process.stdout, (code) => process.exit(code));
 * stdout.write("many lines\n");
 * ```
 */
export function quietOnBrokenPipe(
  stream: EventEmitter & { write(text: string): boolean; isTTY?: boolean },
  exit: (code: number) => void,
  code = 0,
): { write(text: string): boolean; readonly isTTY: boolean | undefined } {
  let broken = false;
  const stop = (): void => {
    if (broken) return;
    broken = true;
    exit(code);
  };
  stream.on("error", (error: unknown) => {
    if (isBrokenPipe(error)) stop();
    else throw error;
  });
  return {
    write(text: string): boolean {
      if (broken) return false;
      try {
        return stream.write(text);
      } catch (error) {
        if (!isBrokenPipe(error)) throw error;
        stop();
        return false;
      }
    },
    get isTTY(): boolean | undefined {
      return stream.isTTY;
    },
  };
}
