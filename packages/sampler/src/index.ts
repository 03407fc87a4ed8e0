// @halo/sampler: logits processors, a seeded sampler chain, greedy decoding and logprobs.
export { SamplerErrorCode } from "./errors.js";
export type { SamplerErrorCodeName } from "./errors.js";
export { createRng } from "./rng.js";
export type { Rng, SeededRng } from "./rng.js";
export { createSamplerScratch } from "./scratch.js";
export type { SamplerScratch } from "./scratch.js";
export { FLOAT32_MAX } from "./float-limits.js";
export { sanitizeLogits } from "./sanitize.js";
export { argmax } from "./greedy.js";
export { applyTemperature } from "./temperature.js";
export { applyTopK } from "./top-k.js";
export { applyTopP } from "./top-p.js";
export { applyMinP } from "./min-p.js";
export { applyRepetitionPenalty, DEFAULT_REPEAT_LAST_N } from "./repetition-penalty.js";
export { applyPresenceFrequencyPenalty } from "./presence-frequency-penalty.js";
export { applyLogitBias, compileLogitBias } from "./logit-bias.js";
export type { LogitBiasInput } from "./logit-bias.js";
export { softmax, logSumExp, drawToken } from "./softmax.js";
export { computeLogprobs } from "./logprobs.js";
export type { TokenLogprob, TokenLogprobs } from "./logprobs.js";
export { MAX_LOGIT_BIAS, MAX_TOP_LOGPROBS } from "./validate.js";
export { SamplerChain, createSampler, resolveSamplerOptions, SAMPLER_STAGE_ORDER, SAMPLER_OPTION_KEYS } from "./sampler-chain.js";
export type {
  SamplerOptions,
  SamplerContext,
  SampleResult,
  ResolvedSamplerOptions,
  SamplerStage,
} from "./sampler-chain.js";
