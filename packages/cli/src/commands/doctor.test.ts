// `halo doctor` lists the backends that are installed, found as loadModel finds them: a backend package
// installed into a project (or named by HALO_BACKEND_PATH) shows up with its probe, with no CLI edit.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installExampleBackend, type InstalledExample } from "../../../engine/test/example-backend.js";
import type { DoctorReport } from "./doctor.js";

const packageDir = fileURLToPath(new URL("../..", import.meta.url));
let out: string;
let bin: string;
let project: InstalledExample;
let elsewhere: string;

beforeAll(() => {
  // The command as users run it: bin.ts bundled on its own, run in a child process whose cwd is the project.
  out = join(packageDir, "node_modules", ".cache", `halo-doctor-test-${process.pid}`);
  execFileSync(
    join(packageDir, "../../node_modules/.bin/tsup"),
    ["src/bin.ts", "--no-config", "--format", "esm", "--target", "node20", "--platform", "node", "--out-dir", out],
    {
      cwd: packageDir,
      stdio: "pipe",
    },
  );
  bin = join(out, "bin.js");
  project = installExampleBackend({ outdated: true });
  elsewhere = mkdtempSync(join(tmpdir(), "halo-doctor-elsewhere-"));
}, 120_000);

afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  project.remove();
  rmSync(elsewhere, { recursive: true, force: true });
});

function doctor(args: readonly string[], cwd: string, env: Record<string, string> = {}): string {
  const base = { ...process.env };
  delete base["HALO_BACKEND_PATH"];
  return execFileSync(process.execPath, [bin, "doctor", ...args], { cwd, env: { ...base, ...env }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("halo doctor and installed backend packages", () => {
  it("lists a backend package installed in the project it runs in, with its probe, above cpu and reference; refused packages with why", () => {
    const report = JSON.parse(doctor(["--json"], project.root)) as DoctorReport;
    const example = report.backends.find((b) => b.name === "example");
    expect(example).toEqual({
      name: "example",
      package: "@halo/kernels-example",
      priority: 1000,
      description: "test backend: the reference kernels under another name",
      available: true,
      detail: "example kernels (reference numerics)",
      details: { device: "example-0", kernelPath: "reference" },
      memory: { kind: "device", totalBytes: 2 ** 40, freeBytes: 2 ** 40 },
    });
    expect(report.backends[0]!.name).toBe("example");
    expect(report.backends.at(-1)!.name).toBe("reference");
    expect(report.backendSearchPaths).toContain(join(project.root, "node_modules"));
    expect(report.refusedBackends.map((r) => r.packageName).sort()).toEqual(["@halo/kernels-old", "@halo/kernels-stale"]);
    expect(report.refusedBackends.find((r) => r.packageName === "@halo/kernels-old")!.reason).toMatch(
      /declares backend contract 1 in package\.json; this engine speaks 2/,
    );
    // The CPU kernel path comes from the cpu backend's own probe, when it is installed and runs.
    const cpu = report.backends.find((b) => b.name === "cpu");
    expect(report.cpu.kernelPath).toBe(cpu?.available === true ? cpu.details["kernelPath"] : null);

    const text = doctor([], project.root);
    expect(text).toMatch(
      /\n {2}example +yes {2}example kernels \(reference numerics\)\n {8,}@halo\/kernels-example; priority 1000; device example-0; kernelPath reference; device memory /,
    );
    expect(text).toMatch(/\nrefused\n {2}@halo\/kernels-\w+ +.*contract 1/);
  });

  it("finds it through HALO_BACKEND_PATH from any directory, and not without", () => {
    const without = JSON.parse(doctor(["--json"], elsewhere)) as DoctorReport;
    expect(without.backends.map((b) => b.name)).not.toContain("example");
    const withPath = JSON.parse(doctor(["--json"], elsewhere, { HALO_BACKEND_PATH: project.nodeModules })) as DoctorReport;
    expect(withPath.backends.map((b) => b.name)).toContain("example");
  });

  it("reports a backend whose probe says it cannot run here, with its reason", () => {
    const report = JSON.parse(doctor(["--json"], project.root, { HALO_EXAMPLE_UNAVAILABLE: "no example-0" })) as DoctorReport;
    expect(report.backends.find((b) => b.name === "example")).toMatchObject({
      available: false,
      detail: "example device missing (no example-0)",
      memory: null,
    });
  });
});
