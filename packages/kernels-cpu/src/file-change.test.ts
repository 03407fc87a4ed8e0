// A model file that changes under a loaded model (truncated, rewritten in place) stops the model with
// KERNELS_CPU_MODEL_FILE_CHANGED instead of a SIGBUS or swapped weights; replacing it by rename changes nothing.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const SCRIPT = fileURLToPath(new URL("../test/file-change.mjs", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "halo-file-change-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Outcome {
  readonly ok: boolean;
  readonly code?: string;
  readonly message?: string;
  readonly logits0?: number;
}

interface Report {
  readonly mappedBytes: number;
  readonly before: Outcome;
  readonly after: readonly Outcome[];
  readonly same: boolean;
}

/** Runs one scenario in a child process (a SIGBUS there is a failed assertion here) and returns its report. */
function scenario(mode: "truncate" | "shrink" | "overwrite" | "rename" | "during"): Report {
  const child = spawnSync(process.execPath, [SCRIPT, mode, dir], { encoding: "utf8", timeout: 60_000 });
  const detail = `exit ${child.status}, signal ${child.signal ?? "none"}, stderr: ${child.stderr.slice(0, 2000)}`;
  expect(child.signal, detail).toBeNull();
  expect(child.status, detail).toBe(0);
  const report = JSON.parse(child.stdout.trim().split("\n").at(-1) ?? "") as Report;
  // The scenarios mean something only if the weights really are borrowed from the file.
  expect(report.mappedBytes).toBeGreaterThan(0);
  expect(report.before.ok).toBe(true);
  return report;
}

function expectStopped(report: Report, path: string, what: RegExp): void {
  for (const outcome of report.after) {
    expect(outcome.ok).toBe(false);
    expect(outcome.code).toBe("KERNELS_CPU_MODEL_FILE_CHANGED");
    expect(outcome.message).toContain(path);
    expect(outcome.message).toMatch(what);
    expect(outcome.message).toMatch(/can no longer be trusted/);
    expect(outcome.message).toContain("mv new.halo model.halo");
  }
}

describe("a model file that changes under a loaded model", () => {
  it("truncated to 0 bytes: the next step and every later one reject with KERNELS_CPU_MODEL_FILE_CHANGED, the process lives", () => {
    expectStopped(scenario("truncate"), join(dir, "truncate.halo"), /size \d+ → 0 bytes/);
  });

  it("shrunk to half: rejects the same way", () => {
    expectStopped(scenario("shrink"), join(dir, "shrink.halo"), /size (\d+) → \d+ bytes/);
  });

  it("rewritten in place with other bytes of the same size: rejects (never steps on swapped weights)", () => {
    expectStopped(scenario("overwrite"), join(dir, "overwrite.halo"), /modified \S+ → \S+/);
  });

  it("truncated while a step reads it: that step and every later one reject, the process lives", () => {
    expectStopped(scenario("during"), join(dir, "during.halo"), /size \d+ → 0 bytes/);
  });

  it("replaced by renaming another file over it: keeps stepping with unchanged logits", () => {
    const report = scenario("rename");
    expect(report.after.map((o) => o.ok)).toEqual([true, true]);
    expect(report.same).toBe(true);
  });
});
