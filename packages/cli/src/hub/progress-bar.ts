// A one-line download progress bar on stderr: percent, bytes, speed and ETA, redrawn at most 10 times a second.

/** Formats a byte count with binary units (`1.2 GiB`). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** Formats seconds as `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * The text of one progress line.
 *
 * @example
 * ```ts
 * progressLine("model.safetensors", 512 << 20, 1024 << 20, 50 << 20, 10); // "model.safetensors  50% 512.0 MiB/1.0 GiB 5.0 MiB/s ETA 1:42"
 * ```
 */
export function progressLine(label: string, done: number, total: number | undefined, fetched: number, seconds: number): string {
  const speed = seconds > 0 ? fetched / seconds : 0;
  const pct = total !== undefined && total > 0 ? `${String(Math.floor((done / total) * 100)).padStart(3)}%` : "   ?";
  const eta = total !== undefined && speed > 0 ? formatDuration((total - done) / speed) : "--:--";
  return `${label} ${pct} ${formatBytes(done)}/${total !== undefined ? formatBytes(total) : "?"} ${formatBytes(speed)}/s ETA ${eta}`;
}

/** A progress bar for one file; draws nothing unless enabled. */
export class ProgressBar {
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly label: string,
    private readonly out: { write(text: string): unknown },
    private readonly enabled: boolean,
  ) {}

  /** Updates the bar (throttled). */
  update(done: number, total: number | undefined, fetched: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && (total === undefined || done < total)) return;
    this.lastDraw = now;
    this.drawn = true;
    this.out.write(`\r${progressLine(this.label, done, total, fetched, (now - this.started) / 1000)}\x1b[K`);
  }

  /** Ends the line. */
  finish(): void {
    if (this.drawn) this.out.write("\n");
    this.drawn = false;
  }
}
