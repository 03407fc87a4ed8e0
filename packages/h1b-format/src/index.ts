// @halo/h1b-format: read, validate, write and convert every ternary model file users have.
import "./codecs/plain.js";
import "./codecs/seed.js";
import "./codecs/hf-packed.js";
import "./codecs/ggml.js";

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
  TensorFileRange,
  TernaryScale,
  TernaryPacking,
  TernaryTensor,
  LayerTensors,
  TokenizerPayload,
  ModelFormat,
  ModelSource,
  HaloModel,
  StoredChecksum,
  TernaryRole,
  NormRole,
} from "./core/model.js";
export { CONFIG_LIMITS, validateConfig, shapeConfig } from "./core/config.js";
export type { ShapeName } from "./core/config.js";
export { verifyModelWeights, changedFile, firstNonFinite, crc32Combine, defaultCacheDir } from "./core/verify-weights.js";
export { modelCacheDir, VERIFIED_DIR_NAME } from "./core/cache-dir.js";
export type { VerifyWeightsOptions, WeightsVerifyReport, VerifiedFile } from "./core/verify-weights.js";
export { floatTensor, ternaryTensor, scaleAt } from "./core/tensors.js";
export type { TensorBytes } from "./core/tensors.js";
export { ternaryCodec, findTernaryCodec, checkCodecs, floatCodec, ternaryPackings, floatByteLength } from "./codecs/registry.js";
export type { TernaryCodec, TernaryCodecs, FloatCodec, EncodeOptions } from "./codecs/registry.js";
export { synthModel } from "./synth/synth-model.js";
export type { SynthOptions } from "./synth/synth-model.js";
export { synthTokenizerJson, synthSpecialIds, synthAddedTokens, SYNTH_SPECIAL_TOKENS, BITNET_CHAT_TEMPLATE } from "./synth/synth-tokenizer.js";
export { llama3TokenizerJson } from "./core/llama3-tokenizer-json.js";
export type { AddedTokenJson } from "./core/llama3-tokenizer-json.js";
export type { SynthTokenizer } from "./synth/synth-tokenizer.js";
export { byteToUnicode, LLAMA3_SPLIT_PATTERN } from "./synth/bpe-trainer.js";
export { Rng, streamKey } from "./synth/rng.js";
export { haloV2Codec, sherryCodec, tq1V4Codec, bonsaiTq2Codec, bonsaiQ1Codec, bonsaiScales, BONSAI_BLOCK } from "./codecs/seed.js";
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
export type { HaloHeaderInfo, ReadHaloOptions } from "./formats/halo/read-halo.js";
export { writeHalo, HALO_CONVERTER } from "./formats/halo/write-halo.js";
export type { WriteHaloOptions, HaloWriteReport, WriteProgress } from "./formats/halo/write-halo.js";
export { verifyHalo } from "./formats/halo/verify-halo.js";
export type { VerifyHaloOptions, HaloVerifyReport } from "./formats/halo/verify-halo.js";
export { HALO_DEFAULT_PACKING, HALO_FALLBACK_PACKING, HALO_INLINE_SCALE_PACKINGS } from "./formats/halo/choose-packing.js";
export type { HaloPackingOption } from "./formats/halo/choose-packing.js";
export {
  tq1_0Codec,
  tq2_0Codec,
  i2sCodec,
  q8_0Codec,
  q4_kCodec,
  q6_kCodec,
  blockScales,
  tqBlockScales,
  i2sScale,
  QK_K,
  TQ1_0_BLOCK_BYTES,
  TQ2_0_BLOCK_BYTES,
  I2_S_BLOCK,
  I2_S_TAIL_BYTES,
} from "./codecs/ggml.js";
export { readGguf, GGUF_TERNARY_NAMES, GGUF_NORM_NAMES } from "./formats/gguf/read-gguf.js";
export { readGgufHeader } from "./formats/gguf/gguf-header.js";
export type { GgufHeader, GgufEntry, GgufTensorInfo, GgufValue } from "./formats/gguf/gguf-header.js";
export { GGUF_MAGIC, GGUF_DEFAULT_ALIGNMENT, GgufValueType, GGML_TYPES, GGML_TYPE_ID, ggmlTensorBytes } from "./formats/gguf/gguf-types.js";
export type { GgmlType, GgmlHaloType, GgufValueTypeId } from "./formats/gguf/gguf-types.js";
export { encodeGgufHeader } from "./formats/gguf/gguf-encode.js";
export type { GgufWriteValue, GgufWriteTensorInfo } from "./formats/gguf/gguf-encode.js";
export { writeGguf } from "./formats/gguf/write-gguf.js";
export type { WriteGgufOptions, GgufWriteReport } from "./formats/gguf/write-gguf.js";
export { toGgufTokenizer, toHfTokenizerJson, toHtokTokenizer, GGUF_TOKEN_TYPE } from "./core/tokenizer-payload.js";
export type { GgufTokenizerPayload, HfTokenizerPayload, HtokTokenizerPayload, HtokConversion, HfTokenizerOptions } from "./core/tokenizer-payload.js";
export { readH1b, readH1bHeader } from "./formats/h1b/read-h1b.js";
export type { ReadH1bOptions, H1bHeader } from "./formats/h1b/read-h1b.js";
export { writeH1b, encodeH1b } from "./formats/h1b/write-h1b.js";
export type { WriteH1bOptions, WriteH1bSummary } from "./formats/h1b/write-h1b.js";
export { H1bFlag, h1bWeightFormat } from "./formats/h1b/h1b-layout.js";
export type { H1bWeightFormat } from "./formats/h1b/h1b-layout.js";
export { readHtok, writeHtok, htokToTokenizerPayload } from "./formats/h1b/htok.js";
export type { HtokData } from "./formats/h1b/htok.js";
export { readMedusa, writeMedusa, encodeMedusa, MEDUSA_SEED_HIDDEN } from "./formats/h1b/medusa.js";
export type { MedusaHeads, MedusaHead, MedusaData, ReadMedusaOptions } from "./formats/h1b/medusa.js";
export { readHfSnapshot, readHfSnapshotSync, HF_TERNARISATION_NOTE } from "./formats/hf/read-hf-snapshot.js";
export { writeHfSnapshot, writeHfSnapshotSync } from "./formats/hf/write-hf-snapshot.js";
export type { WriteHfOptions, HfWriteResult } from "./formats/hf/write-hf-snapshot.js";
export { parseHfConfig, toHfConfig, toHfGenerationConfig } from "./formats/hf/hf-config.js";
export type { HfVariant } from "./formats/hf/hf-config.js";
export { HF_EMBEDDING, HF_OUTPUT_NORM, HF_LM_HEAD, HF_TERNARY_MODULES, HF_NORM_MODULES, hfLayerTensor } from "./formats/hf/hf-tensor-names.js";
export { ABSMEAN_MIN_SCALE, HF_SCALE_REL_TOLERANCE, AbsSum, absmeanParams, ternarizeInto, masterMagnitude } from "./formats/hf/absmean-ternarize.js";
export type { AbsmeanParams } from "./formats/hf/absmean-ternarize.js";
export { masterTernaryTensor } from "./formats/hf/master-ternary-tensor.js";
export { openModel, sniffFormat, readTokenizerFile, ACCEPTED_FORMATS } from "./open.js";
export type { OpenModelOptions, SniffResult } from "./open.js";
export { convertModel, CONVERT_FORMATS } from "./convert.js";
export { runCli } from "./cli/run-cli.js";
export { describeModel } from "./cli/describe-model.js";
export type { ModelSummary, TensorSummary } from "./cli/describe-model.js";
export type { CliIo, RunCliOptions } from "./cli/cli-io.js";
export type { ConvertFormat, ConvertOptions, ConvertReport } from "./convert.js";
