// @halo/kernels-cpu: the native CPU backend (C++ SIMD kernels chosen at run time, persistent thread pool).
export { createBackend, SPARSE_DOWN_MAX_DENSITY } from "./cpu-backend.js";
export { backendFactory } from "./cpu-factory.js";
export { cpuPacking, haloI2x256RowBytes, HALO_I2X256_BLOCK, HALO_I2X256_BLOCK_BYTES } from "./packing.js";
export type { CpuBackendOptions, CpuLmHead } from "./cpu-backend.js";
export { CpuLoadedModel } from "./cpu-loaded-model.js";
export type { CpuModelInfo, CpuSparseDownInfo } from "./cpu-loaded-model.js";
export { KernelsCpuErrorCode } from "./errors.js";
export type { KernelsCpuErrorCodeName } from "./errors.js";
export { availableIsas } from "./available-isas.js";
export { measureReadBandwidth } from "./bandwidth.js";
export type { ReadBandwidthOptions } from "./bandwidth.js";
export type { CpuIsa } from "./native-binding.js";
