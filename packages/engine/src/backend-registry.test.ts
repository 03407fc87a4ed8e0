// Discovery robustness: bad manifests and packages are refused with why (never thrown, never cached),
// two copies of a package are named by path, and only the engine's own paths and HALO_BACKEND_PATH are searched.
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CONTRACT_VERSION } from "@halo/kernels";
import { backendSearchPaths, discoverBackends } from "./backend-registry.js";

const roots: string[] = [];

afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A fresh `node_modules` directory. */
function nodeModules(): string {
  const root = mkdtempSync(join(tmpdir(), "halo-discovery-"));
  roots.push(root);
  const dir = join(root, "node_modules");
  mkdirSync(join(dir, "@halo"), { recursive: true });
  return dir;
}

/** Writes `@halo/kernels-<dir>` with this package.json text and index.js. */
function writePackage(modules: string, dir: string, manifest: string, index: string): string {
  const path = join(modules, "@halo", `kernels-${dir}`);
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, "package.json"), manifest);
  writeFileSync(join(path, "index.js"), index);
  return path;
}

const MARKER = { backend: true, contractVersion: CONTRACT_VERSION };
const manifest = (dir: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ name: `@halo/kernels-${dir}`, type: "module", main: "index.js", halo: MARKER, ...extra });
const factorySource = (name: string): string =>
  `export const backendFactory = { contractVersion: ${CONTRACT_VERSION}, name: "${name}", priority: 1, description: "test", probe: async () => ({ available: true, reason: "" }), create: () => ({}) };\n`;

function refusedReason(refused: readonly { packageName: string; reason: string }[], packageName: string): string | undefined {
  return refused.find((r) => r.packageName === packageName)?.reason;
}

describe("discoverBackends refuses bad packages with why", () => {
  it("a null manifest, a string marker, an import failure, no backendFactory export and an exports map without an import entry", async () => {
    const modules = nodeModules();
    writePackage(modules, "nullman", "null", factorySource("nullman"));
    writePackage(
      modules,
      "stringy",
      JSON.stringify({ name: "@halo/kernels-stringy", type: "module", halo: { backend: "true", contractVersion: CONTRACT_VERSION } }),
      factorySource("stringy"),
    );
    writePackage(modules, "throws", manifest("throws"), 'throw new Error("boom at import");\n');
    writePackage(modules, "noexport", manifest("noexport"), "export const somethingElse = 1;\n");
    writePackage(modules, "requireonly", manifest("requireonly", { exports: { ".": { require: "./index.cjs" } } }), factorySource("requireonly"));
    writePackage(modules, "helper", JSON.stringify({ name: "@halo/kernels-helper", type: "module" }), "export {};\n");
    const { factories, refused } = await discoverBackends({ env: {}, paths: [modules], refresh: true });
    expect(factories.map((f) => f.name)).not.toEqual(expect.arrayContaining(["nullman", "stringy", "throws", "noexport", "requireonly"]));
    expect(refusedReason(refused, "@halo/kernels-nullman")).toMatch(/package\.json holds null, not an object\. Fix: reinstall/);
    expect(refusedReason(refused, "@halo/kernels-stringy")).toMatch(/"backend": "true" \}, not true/);
    expect(refusedReason(refused, "@halo/kernels-throws")).toMatch(/failed to import \(boom at import\)/);
    expect(refusedReason(refused, "@halo/kernels-noexport")).toMatch(/does not export backendFactory/);
    expect(refusedReason(refused, "@halo/kernels-requireonly")).toMatch(/"exports" has no entry for import/);
    // A package with no "halo" marker is a helper, not a refused backend.
    expect(refusedReason(refused, "@halo/kernels-helper")).toBeUndefined();
  });

  it("two copies of the same package at different paths: the second is refused naming both paths", async () => {
    const first = nodeModules();
    const second = nodeModules();
    const a = writePackage(first, "dup", manifest("dup"), factorySource("dup"));
    const b = writePackage(second, "dup", manifest("dup"), factorySource("dup"));
    const { factories, refused, packages } = await discoverBackends({ env: {}, paths: [first, second], refresh: true });
    expect(factories.filter((f) => f.name === "dup")).toHaveLength(1);
    expect(packages["dup"]).toBe("@halo/kernels-dup");
    const reason = refused.find((r) => r.packageName === "@halo/kernels-dup")?.reason;
    expect(reason).toContain(`second copy of @halo/kernels-dup: ${a} is used, ${b} is ignored`);
  });

  it("two packages claiming one name: the second is refused naming the first's package and path", async () => {
    const modules = nodeModules();
    const a = writePackage(modules, "aaa", manifest("aaa"), factorySource("same"));
    const b = writePackage(modules, "bbb", manifest("bbb"), factorySource("same"));
    const { refused } = await discoverBackends({ env: {}, paths: [modules], refresh: true });
    expect(refusedReason(refused, "@halo/kernels-bbb")).toContain(`which @halo/kernels-aaa at ${a} already provides; ${b} is ignored`);
  });

  it("answers from the cache until refresh, which finds a package installed since", async () => {
    const modules = nodeModules();
    expect((await discoverBackends({ env: {}, paths: [modules] })).factories.map((f) => f.name)).not.toContain("late");
    writePackage(modules, "late", manifest("late"), factorySource("late"));
    expect((await discoverBackends({ env: {}, paths: [modules] })).factories.map((f) => f.name)).not.toContain("late");
    expect((await discoverBackends({ env: {}, paths: [modules], refresh: true })).factories.map((f) => f.name)).toContain("late");
  });
});

describe("backendSearchPaths", () => {
  it("searches the engine's own resolution paths and HALO_BACKEND_PATH, not the current directory's", () => {
    const extra = nodeModules();
    const paths = backendSearchPaths({ env: { HALO_BACKEND_PATH: extra } });
    expect(paths.at(-1)).toBe(extra);
    // Every other path is on the engine's own module resolution paths (this file sits beside backend-registry.ts).
    // (Each once: NODE_PATH, which pnpm sets, can list a directory twice.)
    const own = [...new Set((createRequire(import.meta.url).resolve.paths("@halo/kernels") ?? []).filter((p) => existsSync(p) && statSync(p).isDirectory()))];
    expect(paths.slice(0, -1)).toEqual(own);
    // Running from inside another project changes nothing: there is no cwd to search.
    expect(backendSearchPaths({ env: {}, ...({ cwd: dirname(extra) } as object) })).toEqual(own);
    expect(backendSearchPaths({ env: {} })).toEqual(paths.slice(0, -1));
  });
});
