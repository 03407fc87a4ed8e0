// HaloError: the single error base of halo; every package throws it with a stable code.

/** Typed details carried by a {@link HaloError}. All fields are optional. */
export interface HaloErrorDetails {
  /** The file (or directory, or URL) the problem was found in. */
  readonly path?: string;
  /** Byte offset in `path` where the problem was found. */
  readonly offset?: number;
  /** The field, option or parameter at fault (`"cfg.hidden_size"`, `"temperature"`). */
  readonly field?: string;
  /** What was expected, in words or as a value. */
  readonly expected?: unknown;
  /** What was found instead. */
  readonly actual?: unknown;
  /** What the user can do about it. Appended to the message. */
  readonly hint?: string;
  /** HTTP status for errors that cross the server boundary. */
  readonly status?: number;
  /** The underlying error. */
  readonly cause?: unknown;
}

function describe(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "bigint") return `${value}n`;
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

/** Builds the one-line message: summary, location, expected/actual, hint. */
export function formatHaloMessage(summary: string, details: HaloErrorDetails): string {
  const parts: string[] = [summary];
  const where: string[] = [];
  if (details.path !== undefined) where.push(details.path);
  if (details.offset !== undefined) where.push(`offset ${details.offset}`);
  if (details.field !== undefined) where.push(`field ${details.field}`);
  if (where.length > 0) parts[0] = `${summary} (${where.join(", ")})`;
  if (details.expected !== undefined) parts.push(`expected ${describe(details.expected)}`);
  if (details.actual !== undefined) parts.push(`found ${describe(details.actual)}`);
  let message = parts.join("; ");
  if (details.hint !== undefined) message += `. ${details.hint}`;
  return message;
}

/**
 * The base class of every error halo throws on purpose.
 *
 * `code` is stable across releases and documented in `docs/errors.md`; match on it, not on the
 * message. The message says what was expected, what was found and what to do.
 *
 * @example
 * ```ts
 * try { await loadModel("model.h1b"); }
 * catch (error) {
 *   if (isHaloError(error) && error.code === "H1B_TRUNCATED") console.error(error.message);
 * }
 * ```
 */
export class HaloError extends Error {
  /** Stable machine-readable code such as `H1B_BAD_MAGIC`. */
  readonly code: string;
  /** File, directory or URL at fault, when known. */
  readonly path: string | undefined;
  /** Byte offset at fault, when known. */
  readonly offset: number | undefined;
  /** Field or option at fault, when known. */
  readonly field: string | undefined;
  /** Expected value or description. */
  readonly expected: unknown;
  /** Actual value found. */
  readonly actual: unknown;
  /** HTTP status for server-facing errors (default 500 when absent). */
  readonly status: number | undefined;

  constructor(code: string, summary: string, details: HaloErrorDetails = {}) {
    super(formatHaloMessage(summary, details), details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "HaloError";
    this.code = code;
    this.path = details.path;
    this.offset = details.offset;
    this.field = details.field;
    this.expected = details.expected;
    this.actual = details.actual;
    this.status = details.status;
  }

  /** A plain JSON form (for logs and `--json` output). */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, code: this.code, message: this.message };
    if (this.path !== undefined) out["path"] = this.path;
    if (this.offset !== undefined) out["offset"] = this.offset;
    if (this.field !== undefined) out["field"] = this.field;
    if (this.expected !== undefined) out["expected"] = this.expected;
    if (this.actual !== undefined) out["actual"] = this.actual;
    if (this.status !== undefined) out["status"] = this.status;
    return out;
  }
}

/**
 * True when `value` is a {@link HaloError}, also across duplicated copies of this package
 * (checks the `name` and `code` shape, not only the prototype chain).
 */
export function isHaloError(value: unknown): value is HaloError {
  if (value instanceof HaloError) return true;
  return (
    typeof value === "object" && value !== null && (value as { name?: unknown }).name === "HaloError" && typeof (value as { code?: unknown }).code === "string"
  );
}
