// Test support: the `halo` command as users run it — the file package.json's "bin" names (dist/bin.js, what npm
// installs as `halo`), as `pnpm build` wrote it; a missing or stale build is an error naming the fix, never rebuilt here.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

/** The newest source file the build bundles (tests and test support excluded), by modification time. */
function newestSource(folder: string): { path: string; mtimeMs: number } {
  let newest = { path: folder, mtimeMs: 0 };
  for (const entry of readdirSync(folder, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".ts") || /\.test(-support)?\.ts$/.test(entry.name)) continue;
    const path = join(entry.parentPath, entry.name);
    const { mtimeMs } = statSync(path);
    if (mtimeMs > newest.mtimeMs) newest = { path, mtimeMs };
  }
  return newest;
}

/**
 * The shipped `halo` bin (package.json "bin".halo, dist/bin.js) after checking that it is built and newer than every
 * source file; `remove()` does nothing (the build is not the test's to delete). `tag` is kept for the callers.
 */
export function bundleBin(tag: string): { readonly bin: string; remove(): void } {
  void tag;
  const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { bin: { halo: string } };
  const bin = resolve(packageDir, manifest.bin.halo);
  const build = "run `pnpm --filter @halo/cli build` first (`pnpm test` builds before testing)";
  if (!existsSync(bin)) throw new Error(`${bin} is missing: the CLI tests run the built bin that ships; ${build}`);
  if (readFileSync(bin, "utf8").split("\n", 1)[0] !== "#!/usr/bin/env node") throw new Error(`${bin} does not start with a node shebang`);
  const newest = newestSource(join(packageDir, "src"));
  if (newest.mtimeMs > statSync(bin).mtimeMs) {
    throw new Error(`${relative(packageDir, bin)} is older than ${relative(packageDir, newest.path)}: the build is stale; ${build}`);
  }
  return { bin, remove: () => {} };
}
