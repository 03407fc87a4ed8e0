// Structured JSON logs: one object per line, with a time, a level, a message and the request id.

/** Severity of a log record. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** A structured logger. Fields are merged into the JSON record. */
export interface Logger {
  log(level: LogLevel, msg: string, fields?: Readonly<Record<string, unknown>>): void;
}

const LEVELS: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * A logger that writes one JSON object per line (`{"time","level","msg",...fields}`) to `stream`,
 * dropping records below `level`.
 *
 * @example
 * ```ts
 * const logger = createJsonLogger(process.stderr, "info");
 * logger.log("info", "request-end", { requestId: "abc", status: 200, durationMs: 12.5 });
 * // {"time":"2026-01-01T00:00:00.000Z","level":"info","msg":"request-end","requestId":"abc","status":200,"durationMs":12.5}
 * ```
 */
export function createJsonLogger(stream: { write(text: string): unknown }, level: LogLevel = "info"): Logger {
  const threshold = LEVELS[level];
  return {
    log(recordLevel, msg, fields = {}) {
      if (LEVELS[recordLevel] < threshold) return;
      stream.write(`${JSON.stringify({ time: new Date().toISOString(), level: recordLevel, msg, ...fields })}\n`);
    },
  };
}

/**
 * A logger that drops everything (for tests and embedding).
 *
 * @example
 * ```ts
 * createServer({ engine, logger: silentLogger });
 * ```
 */
export const silentLogger: Logger = { log() {} };
