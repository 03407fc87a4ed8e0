// A stderr progress bar that appears only after a second, only on a TTY (or when forced), and never on stdout.

/** Where and whether to draw. */
export interface ProgressOptions {
  /** Draw even when stderr is not a TTY (one line per update, at most once a second). */
  readonly force: boolean;
  /** Stream to draw on. Default `process.stderr`. */
  readonly stream?: NodeJS.WriteStream;
  /** Milliseconds before the bar may first appear. Default 1000. */
  readonly delayMs?: number;
}

/** A progress bar for one long operation; call {@link ProgressBar.update} often and {@link ProgressBar.done} once. */
export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly enabled: boolean;
  private readonly started = performance.now();
  private readonly delayMs: number;
  private lastDraw = 0;
  private drawn = false;
  private sized = false;

  constructor(
    private readonly label: string,
    options: ProgressOptions,
  ) {
    this.stream = options.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.enabled = this.tty || options.force;
    this.delayMs = options.delayMs ?? 1000;
  }

  /** Reports `done` of `total` units (bytes). */
  update(done: number, total: number): void {
    if (!this.enabled) return;
    this.sized = true;
    const now = performance.now();
    if (now - this.started < this.delayMs) return;
    if (now - this.lastDraw < (this.tty ? 100 : 1000) && done < total) return;
    this.lastDraw = now;
    this.drawn = true;
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const seconds = (now - this.started) / 1000;
    const rate = done / 1e6 / Math.max(seconds, 1e-3);
    const text = `${this.label} ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)} ${rate.toFixed(0)} MB/s`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round(fraction * width);
      this.stream.write(`\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${text}\x1b[K`);
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  /**
   * Shows elapsed time for work whose size is unknown (writers without a progress callback).
   * Ignored once {@link update} has drawn a real bar.
   */
  pulse(): void {
    if (!this.enabled || this.sized) return;
    const now = performance.now();
    if (now - this.started < this.delayMs || now - this.lastDraw < (this.tty ? 100 : 1000)) return;
    this.lastDraw = now;
    this.drawn = true;
    const text = `${this.label} … ${((now - this.started) / 1000).toFixed(0)} s`;
    this.stream.write(this.tty ? `\r${text}\x1b[K` : `${text}\n`);
  }

  /** Clears the bar (TTY) so the command's own output starts on a clean line. */
  done(): void {
    if (this.drawn && this.tty) this.stream.write("\r\x1b[K");
  }
}

/** `1.23 GB`-style sizes (decimal units). */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(2)} ${units[unit]}`;
}
