// worker-terminate.mjs: a worker starts native steps and is terminated mid-step; this process must survive and step its own model.
// Run by src/worker-terminate.test.ts in a child process (an abort there fails the test instead of killing vitest).
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { createBackend } from "../dist/index.js";
import { synthModel } from "@halo/h1b-format";

const PROMPT = 192;

async function loadAndStep(threads) {
  const model = await createBackend({ threads }).loadModel(synthModel({ shape: "tiny", seed: 3 }), { contextLength: 256 });
  const slot = model.allocateSequence();
  const tokens = Int32Array.from({ length: PROMPT }, (_, i) => (i * 7 + 3) % 200);
  const batch = {
    tokens,
    positions: Int32Array.from({ length: PROMPT }, (_, i) => i),
    slots: new Int32Array(PROMPT).fill(slot),
    logitRows: Int32Array.of(PROMPT - 1),
  };
  // Each step prefills the slot from position 0 again.
  const run = () => {
    model.truncateSequence(slot, 0);
    return model.step(batch);
  };
  return { model, run };
}

if (!isMainThread) {
  const { run } = await loadAndStep(workerData.threads);
  // Keep a step in flight back to back until the parent terminates this thread.
  for (;;) {
    const pending = run();
    parentPort.postMessage("stepping");
    await pending;
  }
} else {
  const rounds = Number(process.argv[2] ?? 6);
  const { model, run } = await loadAndStep(2);
  const before = await run();
  for (let round = 0; round < rounds; round++) {
    const worker = new Worker(new URL(import.meta.url), { workerData: { threads: round % 2 === 0 ? 2 : 1 } });
    const stepping = new Promise((resolve, reject) => {
      let seen = 0;
      worker.on("message", (m) => {
        if (m === "stepping" && ++seen === 1 + (round % 3)) resolve();
      });
      worker.on("error", reject);
      worker.on("exit", (code) => reject(new Error(`worker exited early with ${code}`)));
    });
    await stepping;
    // Terminate at varying points inside a step: right away, or after a few ms.
    if (round % 3 !== 0) await new Promise((r) => setTimeout(r, round));
    await worker.terminate();
  }
  const after = await run();
  const same = before.length === after.length && before.every((v, i) => Object.is(v, after[i]));
  model.dispose();
  console.log(JSON.stringify({ alive: true, rounds, same }));
}
