// Writes what the package tarball ships prebuilt: prebuilds/<platform>-<arch>/node.napi[.glibc].node from the Release
// build (`pnpm build`), stripped and checked to load, and the GPU code objects prebuilds/gpu/* (with their
// manifest.json) from scripts/build-kernels.mjs, which must succeed here (HALO_REQUIRE_GPU_BUILD=1). node-gyp-build
// picks the addon before any local build, so an npm install needs no compiler and no GPU SDK. Fails (non-zero) when
// either part is missing: a tarball must never ship without them.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(root, "build", "Release", "halo_hip.node");
if (!existsSync(built)) {
  console.error(`make-prebuilds: ${built} is missing: run \`corepack pnpm --filter @halo/kernels-hip build\` first (needs g++, make, python3).`);
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
const loaded = spawnSync(
  process.execPath,
  ["-e", "const b = require(process.argv[1]); if (typeof b.GpuModel !== 'function' || typeof b.probe !== 'function') process.exit(3)", target],
  { stdio: "inherit" },
);
if (loaded.status !== 0) {
  console.error(`make-prebuilds: ${target} does not load (exit ${loaded.status})`);
  process.exit(1);
}
console.log(`make-prebuilds: ${target} (${(statSync(target).size / 1024).toFixed(0)} KiB)`);

// The GPU code objects: built from source here (clang-19 for the gfx targets, nvcc for sm_XX), checked for spills.
// build-kernels.mjs compiles only the targets whose sources, flags or compiler changed since prebuilds/gpu/manifest.json
// was written (normally by the build step), so a pack after a build, or a second pack, only re-checks them (< 1 s).
const kernels = join(root, "scripts", "build-kernels.mjs");
if (!existsSync(kernels)) {
  console.error(`make-prebuilds: ${kernels} is missing; the tarball cannot ship without GPU code objects.`);
  process.exit(1);
}
const gpu = spawnSync(process.execPath, [kernels], { cwd: root, stdio: "inherit", env: { ...process.env, HALO_REQUIRE_GPU_BUILD: "1" } });
const gpuDir = join(root, "prebuilds", "gpu");
if (gpu.status !== 0 || !existsSync(join(gpuDir, "manifest.json"))) {
  console.error(
    `make-prebuilds: scripts/build-kernels.mjs failed (exit ${gpu.status}) or wrote no ${join(gpuDir, "manifest.json")}; ` +
      "install clang-19, lld-19 and llvm-19 (Debian: apt-get install clang-19 lld-19 llvm-19) and the CUDA toolkit (nvcc), then run it again.",
  );
  process.exit(1);
}
const objects = readdirSync(gpuDir).filter((name) => /^halo_kernels\..+\.(hsaco|cubin|ptx)$/.test(name));
console.log(`make-prebuilds: ${gpuDir}: ${objects.length} code objects (${objects.join(", ")})`);
