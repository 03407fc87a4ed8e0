// `halo doctor` lists the backends that are installed, found as loadModel finds them: a backend package
// named by HALO_BACKEND_PATH shows up with its probe, with no CLI edit; one in the current directory is never imported.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installExampleBackend, type InstalledExample } from "../../../engine/test/example-backend.js";
import type { DoctorReport } from "./doctor.js";
import { bundleBin } from "../../test/built-bin.js";

let built: ReturnType<typeof bundleBin>;
let bin: string;
let project: InstalledExample;
let elsewhere: string;

beforeAll(() => {
  // The command as users run it: bin.ts bundled on its own, run in a child process.
  built = bundleBin("doctor-test");
  bin = built.bin;
  project = installExampleBackend({ outdated: true });
  elsewhere = mkdtempSync(join(tmpdir(), "halo-doctor-elsewhere-"));
}, 120_000);

afterAll(() => {
  built.remove();
  project.remove();
  rmSync(elsewhere, { recursive: true, force: true });
});

function doctor(args: readonly string[], cwd: string, env: Record<string, string> = {}): string {
  const base = { ...process.env };
  delete base["HALO_BACKEND_PATH"];
  delete base["HALO_HIP_DEVICE"];
  return execFileSync(process.execPath, [bin, "doctor", ...args], { cwd, env: { ...base, ...env }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("halo doctor and installed backend packages", () => {
  it("lists a backend package on HALO_BACKEND_PATH with its probe, above cpu and reference; refused packages with why", () => {
    const withPath = { HALO_BACKEND_PATH: project.nodeModules };
    const report = JSON.parse(doctor(["--json"], elsewhere, withPath)) as DoctorReport;
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
    expect(report.backendSearchPaths).toContain(project.nodeModules);
    expect(report.refusedBackends.map((r) => r.packageName).sort()).toEqual(["@halo/kernels-old", "@halo/kernels-stale"]);
    expect(report.refusedBackends.find((r) => r.packageName === "@halo/kernels-old")!.reason).toMatch(
      /declares backend contract 1 in package\.json; this engine speaks 2/,
    );
    // What a backend says about this machine (the cpu backend's kernel path included) is its probe's details, printed as given.
    expect(Object.keys(report.cpu).sort()).toEqual(["cores", "model", "simd"]);

    const text = doctor([], elsewhere, withPath);
    expect(text).toMatch(
      /\n {2}example +yes {2}example kernels \(reference numerics\)\n {8,}@halo\/kernels-example; priority 1000; device example-0; kernelPath reference; device memory /,
    );
    expect(text).toMatch(/\nrefused\n {2}@halo\/kernels-\w+ +.*contract 1/);
    for (const b of report.backends) for (const [key, value] of Object.entries(b.details)) expect(text).toContain(`${key} ${value}`);
  });

  it("never imports a backend package from the directory it runs in (an untrusted checkout)", () => {
    // A project whose node_modules holds a backend package that leaves a mark when imported.
    const checkout = mkdtempSync(join(tmpdir(), "halo-doctor-checkout-"));
    try {
      const pkg = join(checkout, "node_modules", "@halo", "kernels-planted");
      mkdirSync(pkg, { recursive: true });
      const mark = join(checkout, "imported");
      writeFileSync(
        join(pkg, "package.json"),
        JSON.stringify({ name: "@halo/kernels-planted", type: "module", main: "index.js", halo: { backend: true, contractVersion: 2 } }),
      );
      writeFileSync(
        join(pkg, "index.js"),
        `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(mark)}, "imported");\n` +
          `export const backendFactory = { contractVersion: 2, name: "planted", priority: 9999, description: "planted", probe: async () => ({ available: true, reason: "planted" }), create: () => { throw new Error("planted"); } };\n`,
      );
      const report = JSON.parse(doctor(["--json"], checkout)) as DoctorReport;
      expect(existsSync(mark), "halo doctor imported a package from its working directory").toBe(false);
      expect(report.backends.map((b) => b.name)).not.toContain("planted");
      expect(report.refusedBackends.map((r) => r.packageName)).not.toContain("@halo/kernels-planted");
      expect(report.backendSearchPaths).not.toContain(join(checkout, "node_modules"));
      // The same package named on purpose is found (and imported): the test can fail.
      const named = JSON.parse(doctor(["--json"], checkout, { HALO_BACKEND_PATH: join(checkout, "node_modules") })) as DoctorReport;
      expect(named.backends.map((b) => b.name)).toContain("planted");
      expect(existsSync(mark)).toBe(true);
    } finally {
      rmSync(checkout, { recursive: true, force: true });
    }
  });

  it("finds it through HALO_BACKEND_PATH from any directory, and not without", () => {
    const without = JSON.parse(doctor(["--json"], elsewhere)) as DoctorReport;
    expect(without.backends.map((b) => b.name)).not.toContain("example");
    const withPath = JSON.parse(doctor(["--json"], elsewhere, { HALO_BACKEND_PATH: project.nodeModules })) as DoctorReport;
    expect(withPath.backends.map((b) => b.name)).toContain("example");
  });

  it("lists the GPU backend installed with the CLI (hip, above cpu) with its probe: why it cannot run here, or the emulator when chosen", () => {
    const report = JSON.parse(doctor(["--json"], elsewhere)) as DoctorReport;
    const names = report.backends.map((b) => b.name);
    const hip = report.backends.find((b) => b.name === "hip");
    expect(hip, `backends found: ${names.join(", ")}`).toMatchObject({ package: "@halo/kernels-hip", priority: 200 });
    expect(names.indexOf("hip")).toBeLessThan(names.indexOf("reference"));
    if (names.includes("cpu")) expect(names.indexOf("hip")).toBeLessThan(names.indexOf("cpu"));
    if (!hip!.available) {
      // No GPU here: the line says which part is missing (the addon, the runtime library, a device, code for its arch).
      expect(hip!.detail).toMatch(/addon|runtime|driver|no GPU|device|architecture/i);
      expect(hip!.details["device"]).toBe("auto");
    } else {
      expect(hip!.details["kind"]).toMatch(/^(hip|cuda)$/);
    }
    const text = doctor([], elsewhere);
    expect(text).toContain(`\n  hip        ${hip!.available ? "yes" : "no "}  ${hip!.detail}\n`);
    const emulated = (JSON.parse(doctor(["--json"], elsewhere, { HALO_HIP_DEVICE: "emulator" })) as DoctorReport).backends.find((b) => b.name === "hip")!;
    if (/addon/.test(emulated.detail)) {
      expect(process.env.HALO_REQUIRE_NATIVE, `the hip addon is missing: ${emulated.detail}`).not.toBe("1");
    } else {
      expect(emulated).toMatchObject({ available: true, details: { device: "emulator", kind: "emulator" } });
      expect(emulated.detail).toMatch(/emulator/i);
    }
  });

  it("reports a backend whose probe says it cannot run here, with its reason", () => {
    const report = JSON.parse(
      doctor(["--json"], elsewhere, { HALO_BACKEND_PATH: project.nodeModules, HALO_EXAMPLE_UNAVAILABLE: "no example-0" }),
    ) as DoctorReport;
    expect(report.backends.find((b) => b.name === "example")).toMatchObject({
      available: false,
      detail: "example device missing (no example-0)",
      memory: null,
    });
  });
});
