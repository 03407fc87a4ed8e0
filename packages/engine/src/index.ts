// @halo/engine: open any ternary model file, pick a backend, stream tokens.
export { loadModel, LOAD_MODEL_OPTION_KEYS, checkBackendChoice, installedPackings } from "./load-model.js";
export type { LoadModelOptions, LoadModelProgress, BackendChoice, BackendChoiceCheck, BackendOptions, SkippedBackend } from "./load-model.js";
export { discoverBackends, backendSearchPaths, factoryProblem, isBackendFactory } from "./backend-registry.js";
export type { BackendDiscovery, RefusedBackend, DiscoverBackendsOptions } from "./backend-registry.js";
// The contract's lists and types an app needs to pick options, re-exported so it need not depend on @halo/kernels.
export { KV_DTYPES, CONTRACT_VERSION, referenceBackendFactory } from "@halo/kernels";
export type { KvDtype, Backend, BackendFactory, BackendProbe, BackendMemory, MemoryEstimate, PackingCodec } from "@halo/kernels";
export { Engine, DEFAULT_MAX_TOKENS, prefillChunkOf } from "./engine.js";
export type { EngineStats, KvUsage } from "./engine.js";
export { chooseChatTemplate, rendersEveryMessage, PLAIN_TURN_STOP } from "./chat-template-choice.js";
export type { ChatTemplateChoice, ChatTemplateOrigin, ChatTemplateModel } from "./chat-template-choice.js";
export { BUILTIN_CHAT_TEMPLATE_NAMES, CHAT_ENCODE_OPTIONS } from "@halo/tokenizer";
export type { BuiltinChatTemplate } from "@halo/tokenizer";
export { GENERATE_OPTION_KEYS, GENERATE_REQUEST_KEYS, CHAT_OPTION_KEYS } from "./generate-options.js";
export type { GenerateOptions, GenerateRequest, ChatOptions, ChatMessage } from "./generate-options.js";
export type { GenerateEvent, RequestStartEvent, TokenDeltaEvent, RequestEndEvent, FinishReason, Usage, Timings, SpeculativeCounts } from "./events.js";
export type { SpeculativeEngineStats } from "./speculation.js";
// Speculative decoding's options and drafter names, re-exported so an app need not depend on @halo/speculative.
export { DRAFTER_KINDS } from "@halo/speculative";
export type { SpeculativeOptions, SpeculativeRequestOptions, SpeculativePolicy, DrafterKind } from "@halo/speculative";
export { Session } from "./session.js";
export { fitChatToContext, fitChatToContextAsync, answerRoom, CONTEXT_SHIFT_POLICIES } from "./context-shift.js";
export type { ContextShiftPolicy, ContextShiftFunction, ContextShiftInfo, ContextFit, FitChatOptions, FitChatAsyncOptions } from "./context-shift.js";
export type { SessionOptions } from "./session.js";
export { tokenNll } from "./perplexity.js";
export type { PerplexityOptions, PerplexityResult } from "./perplexity.js";
export type { EmbedOptions, EmbedResult } from "./embedding.js";
export type { SchedulerStats, PrefixCacheStats } from "./scheduler.js";
export { EngineErrorCode } from "./errors.js";
export type { EngineErrorCodeName } from "./errors.js";
