// What every h1b command gets: output sinks, global flags and a usage-error helper.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
import { ProgressBar } from "./progress.js";

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
}

/** A progress bar honouring `--progress` and `--json`. */
export function progressBar(io: CliIo, label: string): ProgressBar {
  return new ProgressBar(label, { force: io.progress });
}

/** A usage error (exit status 2): a wrong or missing argument. */
export function usageError(summary: string, details: { field?: string; expected?: unknown; actual?: unknown } = {}): HaloError {
  return new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, summary, { ...details, hint: "Run `h1b --help` for usage and examples" });
}
