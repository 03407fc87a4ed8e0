// @halo/server: an OpenAI-compatible HTTP server for halo with live stats, a chat page, limits and many users at once.
export { createServer } from "./create-server.js";
export type { CreateServerOptions, HaloServer, ServerStats, ServerKvUsage, ServerSpeculativeStats, ListenAddress } from "./create-server.js";
export { CONTEXT_DROPPED_HEADER } from "./chat-context.js";
export type { ServerContextShift, ContextReport } from "./chat-context.js";
export { createJsonLogger, silentLogger } from "./logger.js";
export type { Logger, LogLevel } from "./logger.js";
export { readApiKeyFile, parseKeyList, createApiKeyCheck } from "./api-keys.js";
export { createCorsPolicy } from "./cors.js";
export type { CorsDecision } from "./cors.js";
export { toOpenAiError } from "./openai-error.js";
export type { OpenAiErrorBody, OpenAiErrorAnswer } from "./openai-error.js";
export type { SpeculativeReport } from "./openai-shapes.js";
export { parseChatRequest, parseCompletionRequest } from "./parse-request.js";
export type { ParsedChatRequest, ParsedCompletionRequest, ParsedRequest, ParsedCommon } from "./parse-request.js";
export { ServerErrorCode, SERVER_ERROR_HTTP } from "./errors.js";
export type { ServerErrorCodeName, HttpErrorKind } from "./errors.js";
