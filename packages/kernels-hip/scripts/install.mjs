// `npm install` / `npm rebuild` step of @halo/kernels-hip: use the prebuilt addon when one loads on this machine, else
// build it from source; when that is impossible (no compiler), say so and exit 0 — the backend then reports itself
// unavailable with the reason, and halo says which backend runs instead and how to fix it. Never fails the install.
// The GPU code objects (prebuilds/gpu/*) ship in the tarball and are never built here: they need clang-19 / nvcc.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const fromSource = process.env.npm_config_build_from_source === "true" || process.env.HALO_BUILD_FROM_SOURCE === "1";

// A checkout of the halo repository (sources present): `pnpm build` compiles the addon, nothing to do at install.
if (existsSync(join(root, "src")) && existsSync(join(root, "native")) && !fromSource) process.exit(0);

function loads(path) {
  const probe = spawnSync(process.execPath, ["-e", "require(process.argv[1])", path], { stdio: "ignore" });
  return probe.status === 0;
}

if (!fromSource) {
  try {
    const found = require("node-gyp-build").path(root);
    // Checked in a child process: an addon that does not link here must not be taken for working.
    if (loads(found)) process.exit(0);
    console.warn(`@halo/kernels-hip: the prebuilt addon ${found} does not load on this machine; building from source.`);
  } catch {
    // no prebuild for this platform: build from source below
  }
}

const nodeGyp =
  process.env.npm_config_node_gyp ??
  (() => {
    try {
      return require.resolve("node-gyp/bin/node-gyp.js");
    } catch {
      return undefined;
    }
  })();
const args = ["rebuild"];
if (process.env.npm_config_nodedir === undefined && existsSync("/usr/include/node/node_api.h") && existsSync("/usr/include/node/common.gypi")) {
  args.push("--nodedir=/usr");
}
const built =
  nodeGyp !== undefined
    ? spawnSync(process.execPath, [nodeGyp, ...args], { cwd: root, stdio: "inherit" })
    : spawnSync("node-gyp", args, { cwd: root, stdio: "inherit" });
if (built.status === 0) process.exit(0);
console.warn(
  `@halo/kernels-hip: no prebuilt addon for ${process.platform}-${process.arch} loads here and building from source failed ` +
    "(it needs a C++17 compiler, make and python3; no GPU SDK). The hip backend stays unavailable and halo says so. " +
    "Fix: install a C++ toolchain (Debian/Ubuntu: apt-get install g++ make python3), then `npm rebuild @halo/kernels-hip`.",
);
process.exit(0);
