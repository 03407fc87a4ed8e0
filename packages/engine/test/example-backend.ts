// The test backend package (./kernels-example) installed into a temporary node_modules, the way a user installs a backend.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The directory of the `@halo/kernels-example` test package. */
export const EXAMPLE_BACKEND_DIR = fileURLToPath(new URL("./kernels-example", import.meta.url));

/** Every options object the example factory's `create()` received, in order. */
export function exampleCreatedWith(): unknown[] {
  const key = Symbol.for("halo.kernels-example.createdWith");
  return ((globalThis as Record<symbol, unknown[] | undefined>)[key] ??= []);
}

/** A temporary project directory with the example backend installed. */
export interface InstalledExample {
  /** The project directory (use as a child process's cwd). */
  readonly root: string;
  /** Its `node_modules` (use as `HALO_BACKEND_PATH`). */
  readonly nodeModules: string;
  /** Removes the directory. */
  remove(): void;
}

/**
 * Creates `<tmp>/node_modules/@halo/kernels-example` as a symlink to the test package, as `npm
 * install` of a local package does. With `outdated`, also two packages built for contract 1 that
 * discovery must refuse: `kernels-old` (its package.json says 1) and `kernels-stale` (its package.json
 * says 2, its factory says 1).
 */
export function installExampleBackend(options: { outdated?: boolean } = {}): InstalledExample {
  const root = mkdtempSync(join(tmpdir(), "halo-backend-"));
  const scope = join(root, "node_modules", "@halo");
  mkdirSync(scope, { recursive: true });
  symlinkSync(EXAMPLE_BACKEND_DIR, join(scope, "kernels-example"), "dir");
  if (options.outdated === true) {
    const factory = (name: string): string =>
      `export const backendFactory = { contractVersion: 1, name: "${name}", priority: 5000, description: "contract 1", probe: async () => ({ available: true, reason: "" }), create: () => { throw new Error("must not be created"); } };\n`;
    for (const [dir, declared] of [
      ["kernels-old", 1],
      ["kernels-stale", 2],
    ] as const) {
      mkdirSync(join(scope, dir));
      writeFileSync(
        join(scope, dir, "package.json"),
        JSON.stringify({ name: `@halo/${dir}`, type: "module", main: "index.js", halo: { backend: true, contractVersion: declared } }),
      );
      writeFileSync(join(scope, dir, "index.js"), factory(dir.slice("kernels-".length)));
    }
  }
  return { root, nodeModules: join(root, "node_modules"), remove: () => rmSync(root, { recursive: true, force: true }) };
}
