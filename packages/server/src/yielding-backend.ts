// A backend wrapper that gives the event loop a turn before every step, so a synchronous backend cannot starve HTTP.
import type { Backend, LoadedModel, StepBatch } from "@halo/kernels";

/**
 * Wraps `backend` so each `step` first yields to the event loop (`setImmediate`). The reference
 * backend computes a step synchronously and the engine's scheduler awaits it in a microtask
 * chain, so without this a whole generation runs without one I/O turn: SSE chunks are not
 * flushed until the end, new requests cannot join between steps, disconnects and timers go
 * unnoticed. Native backends that step on a worker thread (`@halo/kernels-cpu`) do not need it;
 * wrapping them costs one event-loop turn (microseconds) per step.
 *
 * Performance notes: tiny model (vocab 512, 2 layers), 150 greedy tokens through the server:
 * unwrapped, the 150 SSE chunks reached the client in 2 socket reads 1.5 s after the request;
 * wrapped, one read per token, first token after ~20 ms, same total time within noise.
 *
 * @example
 * ```ts
 * import { referenceBackend } from "@halo/kernels";
 * const engine = await loadModel(path, { backend: yieldingBackend(referenceBackend()) });
 * ```
 */
export function yieldingBackend(backend: Backend): Backend {
  return {
    name: backend.name,
    probe: () => backend.probe(),
    capabilities: () => backend.capabilities(),
    loadModel: async (weights, options) => new YieldingModel(await backend.loadModel(weights, options)),
    ...(backend.ops !== undefined ? { ops: backend.ops } : {}),
  };
}

class YieldingModel implements LoadedModel {
  constructor(private readonly inner: LoadedModel) {}

  get config(): LoadedModel["config"] {
    return this.inner.config;
  }

  get options(): LoadedModel["options"] {
    return this.inner.options;
  }

  allocateSequence(): number {
    return this.inner.allocateSequence();
  }

  freeSequence(slot: number): void {
    this.inner.freeSequence(slot);
  }

  truncateSequence(slot: number, length: number): void {
    this.inner.truncateSequence(slot, length);
  }

  sequenceLength(slot: number): number {
    return this.inner.sequenceLength(slot);
  }

  async step(batch: StepBatch): Promise<Float32Array> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return this.inner.step(batch);
  }

  dispose(): void {
    this.inner.dispose();
  }
}
