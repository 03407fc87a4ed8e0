// Test support shared by packages' vitest suites (not shipped): a python3 that imports torch and numpy, for the tests
// that cross-check halo against PyTorch. Without one they skip with the fix, except where HALO_REQUIRE_TORCH=1 (the
// test command sets it): there the test fails with it.
import { spawnSync } from "node:child_process";
import { expect } from "vitest";

/** What installs torch here (Debian's packages, as scripts/setup-system.sh does). */
export const TORCH_INSTALL = "apt-get install -y python3-torch python3-numpy libopenblas0-pthread (scripts/setup-system.sh does), or set HALO_PYTHON";

/** The first python with torch and numpy importable ($HALO_PYTHON, /usr/bin/python3, python3), or null. */
function pythonWithTorch(): string | null {
  for (const candidate of [process.env["HALO_PYTHON"], "/usr/bin/python3", "python3"]) {
    if (candidate === undefined) continue;
    const probe = spawnSync(candidate, ["-c", "import torch, numpy"], { encoding: "utf8" });
    if (probe.status === 0) return candidate;
  }
  return null;
}

const python = pythonWithTorch();
const torchRequired = process.env["HALO_REQUIRE_TORCH"] === "1";

/**
 * Call once at a test file's top: warns, naming `what` and the fix, when torch is missing and not required (the
 * tests will skip), so the skip has its reason in the run's output.
 */
export function announceTorchSkip(what: string): void {
  if (python === null && !torchRequired) console.warn(`${what} skipped: no python3 with torch and numpy (${TORCH_INSTALL})`);
}

/** The python to run, or: the test skipped (no torch), or failed with the fix (no torch and HALO_REQUIRE_TORCH=1). */
export function requireTorch(context: { skip: () => void }): string {
  if (python === null) {
    if (torchRequired)
      expect.fail(`HALO_REQUIRE_TORCH=1 but no python3 imports torch and numpy (tried $HALO_PYTHON, /usr/bin/python3, python3). Fix: ${TORCH_INSTALL}`);
    context.skip();
  }
  return python!;
}
