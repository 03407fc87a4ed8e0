// `pnpm start`: serve the default model (cached, or pulled once); offline, say exactly what to do and serve the labelled demo model.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { main, mainHelp, resolveModel } from "../packages/cli/dist/index.js";

const bin = fileURLToPath(new URL("../packages/cli/dist/bin.js", import.meta.url));
const extra = process.argv.slice(2).filter((a) => a !== "--");
const ctx = { stdout: process.stdout, stderr: process.stderr, env: process.env };

function serve(args) {
  const child = spawn(process.execPath, [bin, "serve", ...args, ...extra], { stdio: "inherit" });
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      stopping = true;
      child.kill(signal);
    });
  }
  // Stopped on request (Ctrl-C, SIGTERM) after a graceful shutdown: that is success.
  child.on("exit", (code, signal) => process.exit(stopping && (code === 0 || code === 130 || signal !== null) ? 0 : (code ?? 1)));
}

if (!mainHelp().includes("  serve ")) {
  // `halo serve` (package @halo/server) is not registered in this checkout yet: show what works.
  console.error("halo: `halo serve` is not built in this checkout yet; running `halo doctor` instead.");
  process.exitCode = await main(["doctor"], ctx);
} else if (extra.some((a) => a === "--model" || a === "-m" || a === "--demo" || a.startsWith("--model="))) {
  serve([]);
} else {
  let model;
  try {
    model = await resolveModel(undefined, ctx, { progress: process.stderr.isTTY === true });
  } catch (error) {
    if (error?.code !== "CLI_NO_MODEL") throw error;
    console.error(`halo: ${error.message}`);
    console.error(
      "halo: what to do: `pnpm start --model <file>` with a model you have, or HF_ENDPOINT=<mirror> pnpm start, " +
        "or `halo pull microsoft/bitnet-b1.58-2B-4T` on a machine with network and copy ~/.cache/halo/models (or HALO_CACHE_DIR) here.",
    );
    console.error("halo: serving the DEMO model now: a tiny generated model with RANDOM weights (its answers are noise; it shows the path working).");
  }
  serve(model !== undefined ? ["--model", model] : ["--demo"]);
}
