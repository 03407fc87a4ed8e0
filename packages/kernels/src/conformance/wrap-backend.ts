// Wrappers that delegate to a backend and its loaded models with some calls replaced: for instrumenting backends and for tests.
import type { Backend, BackendCapabilities } from "../contract/backend.js";
import type { LoadedModel, StepBatch } from "../contract/loaded-model.js";

/**
 * Members of a {@link LoadedModel} to put in place of the delegated ones; `undefined` removes an
 * optional method.
 *
 * @example
 * ```ts
 * const stepOnly: LoadedModelOverrides = { forward: undefined };
 * ```
 */
export type LoadedModelOverrides = { [K in keyof LoadedModel]?: LoadedModel[K] | undefined };

/**
 * A {@link LoadedModel} that forwards every call to `model` (its optional contract-2 methods only
 * where `model` has them), with the members in `overrides` in their place. An override set to
 * `undefined` removes an optional method (e.g. `{ forward: undefined }`: a logits-only model).
 *
 * @example
 * ```ts
 * const counted = delegateLoadedModel(model, { step: (batch) => { steps++; return model.step(batch); } });
 * ```
 */
export function delegateLoadedModel(model: LoadedModel, overrides: LoadedModelOverrides = {}): LoadedModel {
  const base: LoadedModel = {
    get config() {
      return model.config;
    },
    get options() {
      return model.options;
    },
    allocateSequence: () => model.allocateSequence(),
    freeSequence: (slot) => model.freeSequence(slot),
    truncateSequence: (slot, length) => model.truncateSequence(slot, length),
    sequenceLength: (slot) => model.sequenceLength(slot),
    step: (batch) => model.step(batch),
    dispose: () => model.dispose(),
    ...(model.forward !== undefined ? { forward: (batch: StepBatch) => model.forward!(batch) } : {}),
    ...(model.copySequence !== undefined ? { copySequence: (from: number, to: number) => model.copySequence!(from, to) } : {}),
    ...(model.exportSequence !== undefined ? { exportSequence: (slot: number) => model.exportSequence!(slot) } : {}),
    ...(model.importSequence !== undefined
      ? { importSequence: (state: Parameters<NonNullable<LoadedModel["importSequence"]>>[0]) => model.importSequence!(state) }
      : {}),
  };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete (base as unknown as Record<string, unknown>)[key];
    else Object.defineProperty(base, key, { value, enumerable: true, configurable: true, writable: true });
  }
  return base;
}

/**
 * Options of {@link wrapBackend}.
 *
 * @example
 * ```ts
 * const options: WrapBackendOptions = { name: "traced", model: (inner) => ({ step: (b) => inner.step(b) }) };
 * ```
 */
export interface WrapBackendOptions {
  /** The wrapper's name. Default: the inner backend's. */
  readonly name?: string;
  /** Capabilities laid over the inner backend's. */
  readonly capabilities?: Partial<BackendCapabilities>;
  /** Members of each loaded model to replace (see {@link delegateLoadedModel}), given the inner model. */
  readonly model?: (inner: LoadedModel) => LoadedModelOverrides;
}

/**
 * A {@link Backend} that delegates to `inner` (probe, capabilities, estimateMemory, ops, loadModel),
 * with its name, capabilities and loaded models' members replaced as `options` says: tracing a
 * backend's steps, or a deliberately broken backend in a test of the conformance suite.
 *
 * @example
 * ```ts
 * const outputs: string[] = [];
 * const traced = wrapBackend(referenceBackend(), {
 *   name: "traced",
 *   model: (inner) => ({ forward: (batch) => (outputs.push(batch.output ?? "logits"), inner.forward!(batch)) }),
 * });
 * ```
 */
export function wrapBackend(inner: Backend, options: WrapBackendOptions = {}): Backend {
  return {
    name: options.name ?? inner.name,
    probe: () => inner.probe(),
    capabilities: () => ({ ...inner.capabilities(), ...options.capabilities }),
    ...(inner.estimateMemory !== undefined ? { estimateMemory: (config, loadOptions) => inner.estimateMemory!(config, loadOptions) } : {}),
    ...(inner.ops !== undefined ? { ops: inner.ops } : {}),
    async loadModel(weights, loadOptions) {
      const model = await inner.loadModel(weights, loadOptions);
      return delegateLoadedModel(model, options.model?.(model) ?? {});
    },
  } satisfies Backend;
}
