// Server load benchmark: aggregate tok/s with 1, 4, 8, 16 concurrent streams and time to first token under load.
//
//   node bench/server-load.mjs                                   # tiny synthetic model (random weights), reference backend
//   node bench/server-load.mjs --model bitnet-2b.halo --backend cpu [--threads 2] [--max-tokens 64]
//
// The server (@halo/server from packages/server/dist) runs in a worker thread, as it would in its own process:
// the clients (node:http, one connection each, loopback) never share its event loop. For each concurrency c:
//   1. c streaming /v1/completions requests start together (greedy, ignore_eos, max_tokens N, distinct prompts);
//      aggregate tok/s = all completion tokens / wall time from the first request to the last [DONE];
//      TTFT = request sent → first content chunk, over the c clients (median and max).
//   2. while c other streams are decoding (each past its first token), one probe request is sent: its TTFT is
//      "time to first token under load" (the server has c + 1 slots, so the probe never waits in the queue).
// Build first: pnpm --filter @halo/server build (and @halo/engine, and @halo/h1b-format for the tiny model).
import { request } from "node:http";
import { once } from "node:events";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { parseArgs } from "node:util";

const root = new URL("../", import.meta.url);

if (!isMainThread) {
  const { model, backend, parallel, contextLength, threads } = workerData;
  const server = await import(new URL("packages/server/dist/index.js", root).href);
  let source = model;
  if (source === null) {
    const { synthModel } = await import(new URL("packages/h1b-format/dist/index.js", root).href);
    source = synthModel({ shape: "tiny", seed: 1 });
  }
  // The native backend is imported here by path: @halo/engine resolves "cpu" from its own package, where
  // @halo/kernels-cpu is not a dependency in the workspace.
  let chosen = backend;
  if (backend === "cpu") {
    const cpu = await import(new URL("packages/kernels-cpu/dist/index.js", root).href);
    chosen = cpu.createBackend(threads !== null ? { threads } : {});
  }
  const { loadModel } = await import(new URL("packages/engine/dist/index.js", root).href);
  const engine = await loadModel(source, {
    backend: chosen,
    maxSequences: parallel,
    ...(contextLength !== null ? { contextLength } : {}),
    ...(threads !== null ? { threads } : {}),
  });
  const app = server.createServer({ engine, parallel, maxQueue: 0, logger: server.silentLogger, modelId: "bench", requestTimeoutMs: 3_600_000 });
  const { url } = await app.listen(0, "127.0.0.1");
  parentPort.postMessage({ type: "ready", url, backend: engine.backend, contextLength: engine.contextLength, loadMs: engine.loadMs, config: engine.config });
  parentPort.on("message", async (message) => {
    if (message.type === "close") {
      await app.close({ graceMs: 1000 });
      engine.dispose();
      parentPort.postMessage({ type: "closed" });
    }
  });
} else {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      backend: { type: "string" },
      concurrency: { type: "string", default: "1,4,8,16" },
      "max-tokens": { type: "string", default: "64" },
      "context-length": { type: "string" },
      threads: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const levels = values.concurrency.split(",").map(Number);
  const maxTokens = Number(values["max-tokens"]);
  const model = values.model ?? null;
  const backend = values.backend ?? (model === null ? "reference" : "auto");
  const parallel = Math.max(...levels) + 1;
  const worker = new Worker(new URL(import.meta.url), {
    workerData: {
      model,
      backend,
      parallel,
      contextLength: values["context-length"] !== undefined ? Number(values["context-length"]) : model === null ? 512 : 2048,
      threads: values.threads !== undefined ? Number(values.threads) : null,
    },
  });
  const [ready] = await once(worker, "message");
  const { port } = new URL(ready.url);
  const label = model === null ? "tiny synthetic model (random weights; vocab 512, 2 layers, hidden 256)" : model;

  /** One streaming completion on its own connection; resolves with its timings and token count. */
  function stream(prompt) {
    return new Promise((resolve, reject) => {
      const sent = performance.now();
      let firstAt = 0;
      let tokens = 0;
      let buffer = "";
      let done = false;
      const req = request(
        { host: "127.0.0.1", port, path: "/v1/completions", method: "POST", agent: false, headers: { "content-type": "application/json" } },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
          res.setEncoding("utf8");
          res.on("data", (chunk) => {
            buffer += chunk;
            let cut;
            while ((cut = buffer.indexOf("\n\n")) >= 0) {
              const record = buffer.slice(0, cut);
              buffer = buffer.slice(cut + 2);
              if (!record.startsWith("data: ")) continue; // keep-alive comments
              const data = record.slice(6);
              if (data === "[DONE]") {
                done = true;
                continue;
              }
              const parsed = JSON.parse(data);
              if (parsed.error) reject(new Error(parsed.error.message));
              if (parsed.usage) tokens = parsed.usage.completion_tokens;
              else if (firstAt === 0 && parsed.choices?.[0]?.text) firstAt = performance.now();
            }
          });
          res.on("end", () => (done ? resolve({ sent, firstAt, end: performance.now(), tokens }) : reject(new Error("stream ended without [DONE]"))));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }));
    });
  }

  const prompt = (i) => `Request ${i}: explain in plain words why ternary weights make matrix multiplication cheap.`;
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  await stream(prompt(-1)); // warm-up (JIT, first allocations)
  const rows = [];
  for (const c of levels) {
    // 1. c streams starting together
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: c }, (_, i) => stream(prompt(i))));
    const wall = (Math.max(...results.map((r) => r.end)) - started) / 1000;
    const tokens = results.reduce((sum, r) => sum + r.tokens, 0);
    const ttfts = results.map((r) => r.firstAt - r.sent);
    // 2. a probe while c streams decode
    let probeTtft = null;
    if (c > 0) {
      const background = Array.from({ length: c }, (_, i) => stream(prompt(100 + i)));
      await new Promise((resolve) => setTimeout(resolve, 50));
      // wait until the background streams are decoding: poll /health for c active
      for (;;) {
        const health = await fetch(`${ready.url}/health`).then((r) => r.json());
        if (health.active >= c) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const probe = await stream(prompt(999));
      probeTtft = probe.firstAt - probe.sent;
      await Promise.all(background);
    }
    rows.push({
      concurrency: c,
      tokens,
      wallSeconds: wall,
      aggregateTokensPerSecond: tokens / wall,
      perStreamTokensPerSecond: tokens / wall / c,
      ttftMedianMs: median(ttfts),
      ttftMaxMs: Math.max(...ttfts),
      probeTtftUnderLoadMs: probeTtft,
    });
    const row = rows.at(-1);
    if (!values.json) {
      console.error(
        `c=${c}: ${tokens} tokens in ${wall.toFixed(2)} s → ${row.aggregateTokensPerSecond.toFixed(1)} tok/s aggregate ` +
          `(${row.perStreamTokensPerSecond.toFixed(1)} per stream); TTFT median ${row.ttftMedianMs.toFixed(0)} ms, max ${row.ttftMaxMs.toFixed(0)} ms; ` +
          `probe TTFT with ${c} streams decoding ${probeTtft.toFixed(0)} ms`,
      );
    }
  }
  worker.postMessage({ type: "close" });
  await once(worker, "message");
  await worker.terminate();

  const report = {
    date: new Date().toISOString(),
    model: label,
    backend: ready.backend,
    contextLength: ready.contextLength,
    maxTokens,
    node: process.version,
    rows,
  };
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else {
    console.log(`\nModel: ${label}; backend ${ready.backend}; ${maxTokens} tokens per stream, greedy; server parallel ${parallel}.\n`);
    console.log(
      "| concurrent streams | aggregate tok/s | tok/s per stream | TTFT median (max), all starting together | TTFT of one more request while they decode |",
    );
    console.log("|---:|---:|---:|---:|---:|");
    for (const r of rows) {
      console.log(
        `| ${r.concurrency} | ${r.aggregateTokensPerSecond.toFixed(1)} | ${r.perStreamTokensPerSecond.toFixed(1)} | ${r.ttftMedianMs.toFixed(0)} ms (${r.ttftMaxMs.toFixed(0)} ms) | ${r.probeTtftUnderLoadMs.toFixed(0)} ms |`,
      );
    }
  }
}
