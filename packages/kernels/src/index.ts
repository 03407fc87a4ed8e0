// @halo/kernels: the backend contract, the TypeScript reference backend that defines the numerics, and the conformance suite.
export { KernelsErrorCode } from "./errors.js";
export type { KernelsErrorCodeName } from "./errors.js";

export type {
  ModelWeights,
  WeightsConfig,
  WeightsFloatTensor,
  WeightsTernaryTensor,
  WeightsTernaryScale,
  WeightsLayer,
  WeightsFileRange,
} from "./contract/weights.js";
export type {
  Backend,
  BackendFactory,
  BackendProbe,
  BackendMemory,
  BackendCapabilities,
  MemoryEstimate,
  LoadOptions,
  LoadProgress,
  KvDtype,
  ActivationQuant,
} from "./contract/backend.js";
export type { PackingCodec, PackingEncodeOptions } from "./contract/packing.js";
export { rowPackingCodec } from "./contract/row-packing.js";
export type { RowPackingLayout } from "./contract/row-packing.js";
export { CONTRACT_VERSION, KV_DTYPES, ACTIVATION_QUANTS } from "./contract/backend.js";
export { STEP_OUTPUTS } from "./contract/loaded-model.js";
export { checkBackendOptions } from "./contract/backend-options.js";
export type { LoadedModel, StepBatch, StepOutput, StepResult, SequenceState, ResolvedLoadOptions } from "./contract/loaded-model.js";
export { forwardBatch, argmaxRows, topKRows, deriveOutputs } from "./contract/forward.js";
export { nativeScales, fuseScales } from "./contract/native-scales.js";
export type { NativeScales } from "./contract/native-scales.js";
export type { KernelOps, AttentionInput, QuantizedActivations, MaybePromise } from "./contract/kernel-ops.js";
export { validateLoad, resolveLoadOptions } from "./contract/validate-load.js";
export { validateSequenceState } from "./contract/validate-sequence-state.js";
export { validateBatch, validateOutputs, requireLogitsOnly } from "./contract/validate-batch.js";
export type { BatchLimits } from "./contract/validate-batch.js";

export { referenceBackend, referenceBackendFactory } from "./reference/reference-backend.js";
export type { ReferenceBackendOptions } from "./reference/reference-backend.js";
export type { RopeAngleMode } from "./reference/rope.js";
export { referenceOps, decodeTernary } from "./reference/reference-ops.js";
export { roundHalfEven, roundToF16 } from "./reference/rounding.js";
export { quantizePerToken, quantizeQ8K, PER_TOKEN_ABSMAX_FLOOR, Q8K_BLOCK } from "./reference/quantize.js";

export { conformanceChecks, runConformance, defaultConformanceModels } from "./conformance/run-conformance.js";
export type { ConformanceOptions, ConformanceHarness, ConformanceTestContext } from "./conformance/run-conformance.js";
export type { ConformanceCheck, ConformanceSkip } from "./conformance/op-checks.js";
export { opChecks } from "./conformance/op-checks.js";
export { modelChecks, greedyRun, argmax, sequenceBatch } from "./conformance/model-checks.js";
export { capabilityChecks } from "./conformance/capability-checks.js";
export { checkKvHandoff } from "./conformance/kv-handoff.js";
export type { KvHandoffOptions, KvHandoffResult } from "./conformance/kv-handoff.js";
export type { ConformanceTestModel, ModelCheckOptions } from "./conformance/model-checks.js";
export { delegateLoadedModel, wrapBackend } from "./conformance/wrap-backend.js";
export type { WrapBackendOptions, LoadedModelOverrides } from "./conformance/wrap-backend.js";
export { conformanceModel, floatTensorOf, ternaryTensorOf } from "./conformance/test-model.js";
export type { ConformanceModelOptions } from "./conformance/test-model.js";
export { TOLERANCES } from "./conformance/tolerances.js";
export type { ToleranceName } from "./conformance/tolerances.js";
export { SeededRandom } from "./conformance/seeded-random.js";
