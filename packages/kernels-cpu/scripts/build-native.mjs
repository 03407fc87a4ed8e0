// Builds the native addon with node-gyp (2 jobs at most); uses the local Node headers when they are installed.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const nodeGyp = require.resolve("node-gyp/bin/node-gyp.js");
const args = [nodeGyp, "rebuild", "-j", process.env.JOBS ?? "2"];
// Offline machines: Debian's nodejs-dev ships the headers node-gyp would otherwise download.
if (process.env.npm_config_nodedir === undefined && existsSync("/usr/include/node/node_api.h") && existsSync("/usr/include/node/common.gypi")) {
  args.push("--nodedir=/usr");
}
const result = spawnSync(process.execPath, args, { stdio: "inherit" });
process.exit(result.status ?? 1);
