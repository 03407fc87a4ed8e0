// Test support: the `halo` command as users run it — the file package.json's "bin" names (dist/bin.js, what npm
// installs as `halo`), as `pnpm build` wrote it; a missing or stale build is an error naming the fix, never rebuilt here.
import { fileURLToPath } from "node:url";
import { builtBin } from "../../../scripts/built-bin.js";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

/**
 * The shipped `halo` bin (package.json "bin".halo, dist/bin.js) after checking that it is built and newer than every
 * source file; `remove()` does nothing (the build is not the test's to delete). `tag` is kept for the callers.
 */
export function bundleBin(tag: string): { readonly bin: string; remove(): void } {
  void tag;
  return { bin: builtBin(packageDir, "@halo/cli", "halo"), remove: () => {} };
}
