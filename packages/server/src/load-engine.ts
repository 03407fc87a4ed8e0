// loadServingEngine: loadModel for a server (the scheduler already yields between steps; the wrapper adds one more turn).
import { loadModel, type Engine, type LoadModelOptions } from "@halo/engine";
import { isHaloError } from "@halo/errors";
import { referenceBackend } from "@halo/kernels";
import { yieldingBackend } from "./yielding-backend.js";

/**
 * Loads a model for serving: like `loadModel`, except that synchronous backends (the TypeScript
 * `reference` backend, or a Backend object) are wrapped with {@link yieldingBackend}. The engine's
 * scheduler already yields to the event loop before every step, so `loadModel` alone keeps HTTP
 * flowing between steps too; the wrapper only adds one more event-loop turn per step. `"auto"` tries
 * the native `cpu` backend first and falls back to the wrapped reference backend. A quantised
 * `lmHead` goes straight to `loadModel` (only native backends take it).
 *
 * @example
 * ```ts
 * const engine = await loadServingEngine("model.halo", { backend: "auto", maxSequences: 8, contextLength: 4096 });
 * const app = createServer({ engine, parallel: 8, disposeEngineOnClose: true });
 * ```
 */
export async function loadServingEngine(source: Parameters<typeof loadModel>[0], options: LoadModelOptions = {}): Promise<Engine> {
  const wanted = options.backend ?? "auto";
  // A quantised LM head needs a native backend (their steps already run off the event loop); loadModel says why the
  // reference backend cannot take it.
  if (options.lmHead !== undefined && options.lmHead !== "f16") return loadModel(source, options);
  if (typeof wanted === "object") return loadModel(source, { ...options, backend: yieldingBackend(wanted) });
  if (wanted === "reference") return loadModel(source, { ...options, backend: yieldingBackend(referenceBackend()) });
  if (wanted !== "auto") return loadModel(source, options);
  try {
    return await loadModel(source, { ...options, backend: "cpu" });
  } catch (error) {
    if (isHaloError(error) && error.code === "ENGINE_NO_BACKEND") {
      return loadModel(source, { ...options, backend: yieldingBackend(referenceBackend()) });
    }
    throw error;
  }
}
