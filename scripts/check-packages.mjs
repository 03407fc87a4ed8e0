// Runs publint and @arethetypeswrong/cli (ESM-only profile: the packages are ESM by design) on every package, and
// checks that every repository path the READMEs and docs/ name exists (check-doc-paths.mjs).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { missingDocPaths } from "./check-doc-paths.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const binDir = join(root, "node_modules", ".bin");
let failed = 0;
for (const name of readdirSync(join(root, "packages"))) {
  const dir = join(root, "packages", name);
  if (!existsSync(join(dir, "package.json")) || JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).private === true) continue;
  for (const [tool, args] of [
    ["publint", ["--strict"]],
    ["attw", ["--pack", ".", "--profile", "esm-only", "--format", "table-flipped"]],
  ]) {
    const result = spawnSync(join(binDir, tool), args, { cwd: dir, encoding: "utf8" });
    const ok = result.status === 0;
    if (!ok) failed++;
    console.log(`${ok ? "ok  " : "FAIL"} ${tool.padEnd(8)} packages/${name}`);
    if (!ok) console.log(`${result.stdout}${result.stderr}`);
  }
}
const missing = missingDocPaths();
console.log(`${missing.length === 0 ? "ok  " : "FAIL"} doc paths every path named in README.md, docs/ and packages/*/README.md exists`);
for (const line of missing) console.log(`     missing: ${line}`);
if (missing.length > 0) failed++;
if (failed > 0) {
  console.error(`check-packages: ${failed} check(s) failed`);
  process.exit(1);
}
