// loadServingEngine: kept for compatibility; loadModel serves as well (the scheduler yields between steps).
import { loadModel, type Engine, type LoadModelOptions } from "@halo/engine";

/**
 * Loads a model for serving. Since the engine's scheduler yields to the event loop before every step (so HTTP, timers
 * and aborts are served between steps whatever the backend), this is `loadModel` itself; it stays exported so existing
 * callers keep working. `"auto"` tries the native `cpu` backend first and falls back to the reference backend, listing
 * why in `engine.skippedBackends` (show it: the fallback is far slower).
 *
 * @deprecated Call `loadModel` from `@halo/engine`.
 * @example
 * ```ts
 * const engine = await loadServingEngine("model.halo", { backend: "auto", maxSequences: 8, contextLength: 4096 });
 * const app = createServer({ engine, parallel: 8, disposeEngineOnClose: true });
 * ```
 */
export async function loadServingEngine(source: Parameters<typeof loadModel>[0], options: LoadModelOptions = {}): Promise<Engine> {
  return loadModel(source, options);
}
