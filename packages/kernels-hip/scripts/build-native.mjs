// Builds the native addon (build/Release/halo_hip.node) with node-gyp, 2 jobs at most; uses the local Node headers when
// they are installed. The addon links no GPU library (HIP and CUDA are dlopen'ed at run time), so a C++17 toolchain is
// all it needs. Without one it says what to install and exits 0 (halo then runs on another backend and says why),
// unless HALO_REQUIRE_NATIVE=1 (the test command sets it): then a missing toolchain or a failed build fails the build.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const required = process.env.HALO_REQUIRE_NATIVE === "1";

function has(command) {
  return spawnSync(command, ["--version"], { stdio: "ignore" }).status === 0;
}

const missing = [process.env.CXX ?? "c++", "make", "python3"].filter((tool) => !has(tool));
if (missing.length > 0) {
  console.error(
    `@halo/kernels-hip: native addon NOT built: ${missing.join(", ")} not found on PATH. ` +
      "The hip backend stays unavailable (halo says so and runs on the cpu or reference backend) until it is built. " +
      "Install a C++ toolchain (Debian/Ubuntu: apt-get install g++ make python3, or `bash scripts/setup-system.sh --runtime` as root) " +
      "and build again.",
  );
  process.exit(required ? 1 : 0);
}

const nodeGyp = require.resolve("node-gyp/bin/node-gyp.js");
const args = [nodeGyp, "rebuild", "-j", process.env.JOBS ?? "2"];
// Offline machines: Debian's nodejs-dev ships the headers node-gyp would otherwise download.
if (process.env.npm_config_nodedir === undefined && existsSync("/usr/include/node/node_api.h") && existsSync("/usr/include/node/common.gypi")) {
  args.push("--nodedir=/usr");
}
const result = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" });
if (result.status !== 0 && !required) {
  console.error("@halo/kernels-hip: the native addon build failed (above); the hip backend stays unavailable until it builds.");
}
process.exit(result.status ?? 1);
