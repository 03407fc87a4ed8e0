// Writes prebuilds/<platform>-<arch>/node.napi[.glibc].node from the Release build (`pnpm build`), stripped, and
// checks it loads. node-gyp-build picks it before any local build, so an npm install needs no compiler. Fails
// (non-zero) when there is no build to take or the copy does not load: a tarball must never ship without it.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(root, "build", "Release", "halo_cpu.node");
if (!existsSync(built)) {
  console.error(`make-prebuilds: ${built} is missing: run \`corepack pnpm --filter @halo/kernels-cpu build\` first (needs g++, make, python3).`);
  process.exit(1);
}
// glibc builds are tagged so node-gyp-build does not offer them on musl (Alpine), where they cannot link.
const musl = process.platform === "linux" && !process.report?.getReport?.().header?.glibcVersionRuntime;
const tags = process.platform === "linux" ? (musl ? "napi.musl" : "napi.glibc") : "napi";
const dir = join(root, "prebuilds", `${process.platform}-${process.arch}`);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const target = join(dir, `node.${tags}.node`);
copyFileSync(built, target);
const strip = spawnSync("strip", ["--strip-unneeded", target], { stdio: "inherit" });
if (strip.error !== undefined) console.warn("make-prebuilds: `strip` not found; the prebuild keeps its symbols");
const loaded = spawnSync(process.execPath, ["-e", "const b = require(process.argv[1]); if (typeof b.NativeModel !== 'function') process.exit(3)", target], {
  stdio: "inherit",
});
if (loaded.status !== 0) {
  console.error(`make-prebuilds: ${target} does not load (exit ${loaded.status})`);
  process.exit(1);
}
console.log(`make-prebuilds: ${target} (${(statSync(target).size / 1024).toFixed(0)} KiB)`);
