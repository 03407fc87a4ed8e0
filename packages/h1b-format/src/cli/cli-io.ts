// What every h1b command gets: output sinks, global flags and a usage-error helper.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import { ProgressBar } from "./progress.js";
import type { TernaryCodecs } from "../codecs/registry.js";

/** Output and global flags of one CLI run (injectable for tests). */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** `--json`: machine-readable stdout. */
  readonly json: boolean;
  /** `--progress`: draw progress even when stderr is not a TTY. */
  readonly progress: boolean;
  /** `--verbose`: stack traces on errors. */
  readonly verbose: boolean;
  /** Codecs of backend layouts the caller passed ({@link RunCliOptions}); empty for the `h1b` binary. */
  readonly codecs: TernaryCodecs;
}

/**
 * Options of `runCli` for a program that embeds the h1b commands (`halo inspect|convert|verify`).
 *
 * @example
 * ```ts
 * await runCli(["convert", "m.gguf", "-o", "m.halo"], sinks, { codecs: backendFactory.packings });
 * ```
 */
export interface RunCliOptions {
  /**
   * Codecs of backend layouts (e.g. the installed backends' `BackendFactory.packings`, best
   * backend's first): `convert` stores the first when `--packing` is `auto` (default) and accepts
   * their names in `--packing`; every command opens files with them. The `h1b` binary passes none:
   * it sees no backends, so it writes and decodes format packings only. Default none.
   */
  readonly codecs?: TernaryCodecs;
}

/** A progress bar honouring `--progress` and `--json`. */
export function progressBar(io: CliIo, label: string): ProgressBar {
  return new ProgressBar(label, { force: io.progress });
}

/** A usage error (exit status 2): a wrong or missing argument. */
export function usageError(summary: string, details: { field?: string; expected?: unknown; actual?: unknown } = {}): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, summary, { ...details, hint: "Run `h1b --help` for usage and examples" });
}
