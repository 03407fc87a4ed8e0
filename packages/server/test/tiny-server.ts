// Test support: a listening server on a tiny synthetic model, and an SSE reader for raw fetch answers.
import { loadModel, type Engine } from "@halo/engine";
import { synthModel } from "@halo/h1b-format";
import { referenceBackend, wrapBackend, type Backend, type LoadedModel, type StepBatch } from "@halo/kernels";
import { createServer, type CreateServerOptions, type HaloServer } from "../src/index.js";
import type { Logger } from "../src/logger.js";

/** A running tiny server. */
export interface TinyServer {
  readonly app: HaloServer;
  readonly engine: Engine;
  readonly url: string;
  readonly logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Options of {@link startTinyServer}. */
export type TinyServerOptions = Partial<Omit<CreateServerOptions, "engine">> & { readonly contextLength?: number; readonly seed?: number };

/** Loads a tiny synthetic model (vocab 512, BitNet chat template; `parallel` KV slots, default 4) and serves it on 127.0.0.1:<free port>. */
export async function startTinyServer(options: TinyServerOptions = {}): Promise<TinyServer> {
  const parallel = options.parallel ?? 4;
  const engine = await loadModel(synthModel({ seed: options.seed ?? 3 }), {
    backend: "reference",
    contextLength: options.contextLength ?? 256,
    maxSequences: parallel,
  });
  const logs: Array<Record<string, unknown>> = [];
  const logger: Logger = { log: (level, msg, fields = {}) => logs.push({ level, msg, ...fields }) };
  // `parallel` sizes the engine (maxSequences); the server takes its parallelism from the engine.
  const { contextLength: _c, seed: _s, parallel: _p, ...rest } = options;
  const app = createServer({ modelId: "tiny", logger, ...rest, engine });
  const { url } = await app.listen(0, "127.0.0.1");
  return {
    app,
    engine,
    url,
    logs,
    async close() {
      await app.close({ graceMs: 2000 });
      engine.dispose();
    },
  };
}

/** Reads an SSE answer to the end: the `data:` payloads in order. */
export async function readSseRecords(response: Response): Promise<string[]> {
  const text = await response.text();
  const out: string[] = [];
  for (const record of text.split("\n\n")) {
    const data = record
      .split("\n")
      .filter((line) => line.startsWith("data: "))
      .map((line) => line.slice(6));
    if (data.length > 0) out.push(data.join("\n"));
  }
  return out;
}

/** POSTs JSON. */
export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
}

/**
 * The reference backend under another name, with each step going through `step` (which calls the real one through
 * `inner`): a model whose forward pass fails or returns bad logits the way a broken file or kernel would.
 */
export function referenceWithStep(name: string, step: (inner: LoadedModel, batch: StepBatch) => Promise<Float32Array>): Backend {
  // Without forward: every step, argmax included (derived on the host by forwardBatch), goes through `step`.
  return wrapBackend(referenceBackend(), { name, model: (inner) => ({ step: (batch: StepBatch) => step(inner, batch), forward: undefined }) });
}
