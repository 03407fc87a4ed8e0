// The progress bar draws only after its delay, only on a TTY unless forced, and clears itself.
import { describe, expect, it } from "vitest";
import { ProgressBar, formatBytes } from "./progress.js";

function sink(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = "";
  const stream = { isTTY, write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

describe("ProgressBar", () => {
  it("stays silent before its delay and off a TTY unless forced", () => {
    const quiet = sink(true);
    new ProgressBar("x", { force: false, stream: quiet.stream, delayMs: 60_000 }).update(5, 10);
    expect(quiet.text()).toBe("");
    const pipe = sink(false);
    new ProgressBar("x", { force: false, stream: pipe.stream, delayMs: 0 }).update(5, 10);
    expect(pipe.text()).toBe("");
  });

  it("draws a bar with percentage on a TTY and clears it when done", () => {
    const tty = sink(true);
    const bar = new ProgressBar("writing", { force: false, stream: tty.stream, delayMs: 0 });
    bar.update(500_000_000, 1_000_000_000);
    expect(tty.text()).toMatch(/^\r\[#{12}-{12}\] writing {2}50% 500.00 MB\/1.00 GB/);
    bar.done();
    expect(tty.text().endsWith("\r\x1b[K")).toBe(true);
  });

  it("prints plain lines when forced off a TTY", () => {
    const pipe = sink(false);
    new ProgressBar("verifying", { force: true, stream: pipe.stream, delayMs: 0 }).update(10, 10);
    expect(pipe.text()).toMatch(/^verifying 100% 10 B\/10 B .*\n$/);
  });

  it("pulses elapsed time for work of unknown size, until a real bar takes over", async () => {
    const tty = sink(true);
    const bar = new ProgressBar("writing h1b", { force: false, stream: tty.stream, delayMs: 0 });
    bar.pulse();
    expect(tty.text()).toMatch(/^\rwriting h1b … 0 s/);
    const pipe = sink(false);
    const sized = new ProgressBar("writing", { force: true, stream: pipe.stream, delayMs: 0 });
    sized.update(1, 2);
    const before = pipe.text();
    await new Promise((resolve) => setTimeout(resolve, 1100)); // past the once-a-second throttle
    sized.pulse();
    expect(pipe.text()).toBe(before);
    const unsized = new ProgressBar("writing", { force: true, stream: pipe.stream, delayMs: 0 });
    unsized.pulse();
    expect(pipe.text()).toMatch(/writing … 0 s\n$/);
  });

  it("formats sizes in decimal units", () => {
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1_840_384_052)).toBe("1.84 GB");
  });
});
