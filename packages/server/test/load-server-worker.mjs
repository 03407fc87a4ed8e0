// Test support: a tiny-model server in its own thread (as in production, clients do not share its event loop).
// Answers messages: "stats" → server and engine stats; "heap" → heapUsed after a forced GC; "close" → graceful close.
import { parentPort, workerData } from "node:worker_threads";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");
const dist = new URL("../dist/index.js", import.meta.url);
if (!existsSync(fileURLToPath(dist))) throw new Error("packages/server/dist is missing: run `pnpm --filter @halo/server build` first");
const { createServer, silentLogger } = await import(dist.href);
const { loadModel } = await import("@halo/engine");
const { synthModel } = await import("@halo/h1b-format");

const { parallel, maxQueue, contextLength = 256 } = workerData;
const engine = await loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength, maxSequences: parallel });
const app = createServer({ engine, parallel, maxQueue, logger: silentLogger, modelId: "tiny" });
const { url } = await app.listen(0, "127.0.0.1");
parentPort.postMessage({ type: "ready", url });
parentPort.on("message", async (message) => {
  if (message.type === "stats") parentPort.postMessage({ type: "stats", stats: app.stats(), engine: engine.stats() });
  else if (message.type === "heap") {
    gc();
    parentPort.postMessage({ type: "heap", heapUsed: process.memoryUsage().heapUsed });
  } else if (message.type === "close") {
    await app.close({ graceMs: 2000 });
    engine.dispose();
    parentPort.postMessage({ type: "closed" });
  }
});
