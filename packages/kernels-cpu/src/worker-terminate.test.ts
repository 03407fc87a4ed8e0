// A worker_thread terminated while a native step is in flight must not take the process down (issue 5: napi_throw abort).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SCRIPT = fileURLToPath(new URL("../test/worker-terminate.mjs", import.meta.url));
const ROUNDS = 10;

describe("worker termination mid-step", () => {
  it("a terminated worker's in-flight steps neither abort this process nor disturb its own model", () => {
    // A child process stands in for "this process": an abort there is a failed assertion here, not a dead test runner.
    // The script loads the built package (dist/), as an application's worker would.
    const child = spawnSync(process.execPath, [SCRIPT, String(ROUNDS)], { encoding: "utf8", timeout: 60_000 });
    const detail = `signal ${child.signal ?? "none"}, stderr: ${child.stderr.slice(0, 2000)}`;
    expect(child.status, detail).toBe(0);
    const lastLine = child.stdout.trim().split("\n").at(-1) ?? "";
    expect(JSON.parse(lastLine)).toEqual({ alive: true, rounds: ROUNDS, same: true });
  });
});
