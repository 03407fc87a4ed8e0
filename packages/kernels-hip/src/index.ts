// @halo/kernels-hip: the GPU backend (AMD through HIP, NVIDIA through CUDA, a CPU emulator for tests) with halo-g2 weights.
export { createBackend, estimateHipMemory } from "./hip-backend.js";
export type { HipBackendOptions, HipMemoryEstimateOptions } from "./hip-backend.js";
export { backendFactory } from "./hip-factory.js";
export { gpuPacking, haloG2RowBytes, HALO_G2_CHUNK, HALO_G2_CHUNK_BYTES } from "./gpu-packing.js";
export { HipLoadedModel } from "./hip-loaded-model.js";
export type { HipModelInfo } from "./hip-loaded-model.js";
export { KernelsHipErrorCode } from "./errors.js";
export type { KernelsHipErrorCodeName } from "./errors.js";
export type { HipDevice } from "./native-binding.js";
