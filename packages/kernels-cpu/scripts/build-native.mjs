// Builds the native addon with node-gyp (2 jobs at most); uses the local Node headers when they are installed.
// Without a C++ toolchain it says so and exits 0 (halo then runs on the reference backend and says why), unless
// HALO_REQUIRE_NATIVE=1 (the test command sets it): then a missing toolchain or a failed build fails the build.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const required = process.env.HALO_REQUIRE_NATIVE === "1";

function has(command) {
  return spawnSync(command, ["--version"], { stdio: "ignore" }).status === 0;
}

const missing = [process.env.CXX ?? "c++", "make", "python3"].filter((tool) => !has(tool));
if (missing.length > 0) {
  const text =
    `@halo/kernels-cpu: native addon NOT built: ${missing.join(", ")} not found on PATH. ` +
    "halo will run on the slow TypeScript reference backend until it is built. " +
    "Install a C++ toolchain (Debian/Ubuntu: apt-get install g++ make python3, or `bash scripts/setup-system.sh --runtime` as root) " +
    "and build again.";
  console.error(text);
  process.exit(required ? 1 : 0);
}

const nodeGyp = require.resolve("node-gyp/bin/node-gyp.js");
const args = [nodeGyp, "rebuild", "-j", process.env.JOBS ?? "2"];
// Offline machines: Debian's nodejs-dev ships the headers node-gyp would otherwise download.
if (process.env.npm_config_nodedir === undefined && existsSync("/usr/include/node/node_api.h") && existsSync("/usr/include/node/common.gypi")) {
  args.push("--nodedir=/usr");
}
const result = spawnSync(process.execPath, args, { stdio: "inherit" });
process.exit(result.status ?? 1);
