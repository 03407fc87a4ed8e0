// `pnpm start`: serve the default model (cached, or pulled once); offline, say exactly what to do and serve the labelled
// demo model (halo-tiny, shipped in @halo/model-tiny).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { main, mainHelp, resolveModel } from "../packages/cli/dist/index.js";
import { TINY_MODEL } from "../packages/model-tiny/dist/index.js";

const bin = fileURLToPath(new URL("../packages/cli/dist/bin.js", import.meta.url));
const extra = process.argv.slice(2).filter((a) => a !== "--");
const ctx = { stdout: process.stdout, stderr: process.stderr, env: process.env };

// A duplicate of one Ctrl-C (the terminal's signal to the group plus pnpm forwarding it) arrives within this window.
const DUPLICATE_SIGNAL_MS = 1000;

function serve(args) {
  // `halo serve` gets its own process group: a terminal Ctrl-C reaches this script's group only, and this
  // script forwards it once, so the server never takes one Ctrl-C for the second ("cancel running requests").
  const child = spawn(process.execPath, [bin, "serve", ...args, ...extra], { stdio: "inherit", detached: true });
  let stopping = false;
  let lastSignalAt = -Infinity;
  const forward = (signal) => {
    stopping = true;
    const now = Date.now();
    // A deliberate second Ctrl-C (seconds later) still reaches the server; the same one seen twice does not.
    if (now - lastSignalAt >= DUPLICATE_SIGNAL_MS) child.kill(signal);
    lastSignalAt = now;
  };
  process.on("SIGINT", () => forward("SIGINT"));
  process.on("SIGTERM", () => forward("SIGTERM"));
  // The terminal closing: the server, outside the terminal's group, would not hear it.
  process.on("SIGHUP", () => forward("SIGTERM"));
  // However this script ends (an uncaught error included; SIGKILL cannot be caught), the server, in a group of its own, must not outlive it.
  const reap = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.on("exit", reap);
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
    console.error(
      `halo: serving the DEMO model now: ${TINY_MODEL.id}, a small ${TINY_MODEL.numLayers}-layer model trained on Python's documentation and shipped with halo, ` +
        "not microsoft/bitnet-b1.58-2B-4T: its answers are English-like Python-docs text, not a real assistant (it shows the whole path working).",
    );
  }
  serve(model !== undefined ? ["--model", model] : ["--demo"]);
}
