// @halo/h1b-format: read, validate, write and convert every ternary model file users have.
import "./codecs/plain.js";
import "./codecs/seed.js";
import "./codecs/hf-packed.js";

export { H1bErrorCode } from "./errors.js";
export type { H1bErrorCodeName } from "./errors.js";
export { fileSource, memorySource } from "./core/byte-source.js";
export type { ByteSource } from "./core/byte-source.js";
export { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from "./core/half.js";
export { TERNARY_ROLES, NORM_ROLES, ternaryShape, normLength } from "./core/model.js";
export type {
  Activation,
  ModelConfig,
  FloatDType,
  FloatTensor,
  TernaryScale,
  TernaryPacking,
  TernaryTensor,
  LayerTensors,
  TokenizerPayload,
  ModelFormat,
  ModelSource,
  HaloModel,
  TernaryRole,
  NormRole,
} from "./core/model.js";
export { validateConfig, shapeConfig } from "./core/config.js";
export type { ShapeName } from "./core/config.js";
export { floatTensor, ternaryTensor, scaleAt } from "./core/tensors.js";
export type { TensorBytes } from "./core/tensors.js";
export {
  registerTernaryCodec,
  registerFloatCodec,
  ternaryCodec,
  floatCodec,
  ternaryPackings,
  floatByteLength,
} from "./codecs/registry.js";
export type { TernaryCodec, FloatCodec, EncodeOptions } from "./codecs/registry.js";
export { synthModel } from "./synth/synth-model.js";
export type { SynthOptions } from "./synth/synth-model.js";
export {
  synthTokenizerJson,
  synthSpecialIds,
  SYNTH_SPECIAL_TOKENS,
  BITNET_CHAT_TEMPLATE,
} from "./synth/synth-tokenizer.js";
export type { SynthTokenizer } from "./synth/synth-tokenizer.js";
export { byteToUnicode, LLAMA3_SPLIT_PATTERN } from "./synth/bpe-trainer.js";
export { Rng, streamKey } from "./synth/rng.js";
export {
  haloV2Codec,
  sherryCodec,
  tq1V4Codec,
  bonsaiTq2Codec,
  bonsaiQ1Codec,
  bonsaiScales,
  BONSAI_BLOCK,
} from "./codecs/seed.js";
export { hfPackedCodec } from "./codecs/hf-packed.js";
export { SAFETENSORS_DTYPE_BYTES, isSafetensorsDType } from "./formats/safetensors/safetensors-dtype.js";
export type { SafetensorsDType } from "./formats/safetensors/safetensors-dtype.js";
export { readSafetensors, openSafetensors, MAX_SAFETENSORS_HEADER_BYTES } from "./formats/safetensors/read-safetensors.js";
export type { SafetensorsFile, SafetensorsTensorInfo } from "./formats/safetensors/read-safetensors.js";
export { writeSafetensors, safetensorsHeader, safetensorsEntryBytes } from "./formats/safetensors/write-safetensors.js";
export type { SafetensorsWriteEntry } from "./formats/safetensors/write-safetensors.js";
export { openSafetensorsModel, SAFETENSORS_INDEX_FILE, SAFETENSORS_SINGLE_FILE } from "./formats/safetensors/safetensors-index.js";
export type { SafetensorsModelFiles, SafetensorsTensorRef } from "./formats/safetensors/safetensors-index.js";
export { writeSafetensorsModel } from "./formats/safetensors/write-safetensors-sharded.js";
export type { ShardOptions } from "./formats/safetensors/write-safetensors-sharded.js";
export { HALO_MAGIC, HALO_VERSION, HALO_DEFAULT_ALIGNMENT, hasHaloMagic } from "./formats/halo/halo-layout.js";
export type {
  HaloHeader,
  HaloPreamble,
  HaloTensorEntry,
  HaloBlobEntry,
  HaloScaleEntry,
  HaloTokenizerEntry,
  HaloProvenance,
} from "./formats/halo/halo-layout.js";
export { readHalo, readHaloHeader, HALO_PROVENANCE_KEY } from "./formats/halo/read-halo.js";
export type { HaloHeaderInfo } from "./formats/halo/read-halo.js";
export { writeHalo, HALO_CONVERTER } from "./formats/halo/write-halo.js";
export type { WriteHaloOptions, HaloWriteReport, WriteProgress } from "./formats/halo/write-halo.js";
export { verifyHalo } from "./formats/halo/verify-halo.js";
export type { VerifyHaloOptions, HaloVerifyReport } from "./formats/halo/verify-halo.js";
export { HALO_FALLBACK_PACKING, HALO_REPACKED_SOURCES, HALO_INLINE_SCALE_PACKINGS } from "./formats/halo/choose-packing.js";
export type { HaloPackingOption } from "./formats/halo/choose-packing.js";
