// What a command runs against: its output streams (so tests can run commands in-process).

/** Output streams and environment of a command run. */
export interface CommandContext {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Input for interactive commands (`halo chat`); default `process.stdin`. */
  readonly stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
}
