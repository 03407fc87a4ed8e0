// Test support shared by packages' vitest suites (not shipped): the command a package's package.json "bin" names, as
// `pnpm build` wrote it — a missing or stale build is an error naming the fix, never rebuilt by a test.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

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
 * The absolute path of `packageDir`'s bin `name` (package.json "bin"), after checking that it exists, starts with a
 * node shebang and is newer than every source file under `src/`.
 *
 * @throws Error naming the build command of `packageName` when the bin is missing, not a node script, or stale.
 */
export function builtBin(packageDir: string, packageName: string, name: string): string {
  const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { bin: Record<string, string> };
  const bin = resolve(packageDir, manifest.bin[name]!);
  const build = `run \`pnpm --filter ${packageName} build\` first (\`pnpm test\` builds before testing)`;
  if (!existsSync(bin)) throw new Error(`${bin} is missing: these tests run the built bin that ships; ${build}`);
  if (readFileSync(bin, "utf8").split("\n", 1)[0] !== "#!/usr/bin/env node") throw new Error(`${bin} must start with a node shebang to run as \`${name}\``);
  const newest = newestSource(join(packageDir, "src"));
  if (newest.mtimeMs > statSync(bin).mtimeMs) {
    throw new Error(`${relative(packageDir, bin)} is older than ${relative(packageDir, newest.path)}: the build is stale; ${build}`);
  }
  return bin;
}
