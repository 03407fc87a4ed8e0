import { describe, expect, it } from "vitest";
import { formatBytes, formatDuration, progressLine, ProgressBar } from "./progress-bar.js";

describe("progress bar", () => {
  it("formats bytes, durations and the line with speed and ETA", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(1.25 * 1024 ** 3)).toBe("1.3 GiB");
    expect(formatDuration(102)).toBe("1:42");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatDuration(Infinity)).toBe("--:--");
    // 512 MiB of 1 GiB after 10 s, all fetched now: 51.2 MiB/s, 10 s left.
    expect(progressLine("model.safetensors", 512 * 2 ** 20, 2 ** 30, 512 * 2 ** 20, 10)).toBe("model.safetensors  50% 512.0 MiB/1.0 GiB 51.2 MiB/s ETA 0:10");
    // Resumed: speed counts only this run's bytes.
    expect(progressLine("f", 900, 1000, 100, 1)).toBe("f  90% 900 B/1000 B 100 B/s ETA 0:01");
    expect(progressLine("f", 10, undefined, 10, 1)).toBe("f    ? 10 B/? 10 B/s ETA --:--");
  });

  it("draws on the stream only when enabled, and ends the line", () => {
    const out: string[] = [];
    const off = new ProgressBar("x", { write: (t: string) => out.push(t) }, false);
    off.update(1, 2, 1);
    off.finish();
    expect(out).toEqual([]);
    const on = new ProgressBar("x", { write: (t: string) => out.push(t) }, true);
    on.update(1, 2, 1);
    on.update(2, 2, 2);
    on.finish();
    expect(out[0]).toMatch(/^\rx {2}50% /);
    expect(out.at(-2)).toMatch(/^\rx 100% 2 B\/2 B/);
    expect(out.at(-1)).toBe("\n");
  });
});
