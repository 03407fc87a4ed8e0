// Test support: the `halo` command as users run it — src/bin.ts bundled on its own by tsup, for child processes.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

/**
 * Bundles src/bin.ts into `node_modules/.cache/halo-<tag>-<pid>/bin.js` and returns its path, with `remove()` to
 * delete the bundle afterwards.
 */
export function bundleBin(tag: string): { readonly bin: string; remove(): void } {
  const out = join(packageDir, "node_modules", ".cache", `halo-${tag}-${process.pid}`);
  execFileSync(
    join(packageDir, "../../node_modules/.bin/tsup"),
    ["src/bin.ts", "--no-config", "--format", "esm", "--target", "node20", "--platform", "node", "--out-dir", out],
    { cwd: packageDir, stdio: "pipe" },
  );
  return { bin: join(out, "bin.js"), remove: () => rmSync(out, { recursive: true, force: true }) };
}
