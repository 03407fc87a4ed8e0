// @halo/model-tiny: halo-tiny, a small trained ternary model shipped as files, and the paths to them.
export { ModelTinyErrorCode } from "./errors.js";
export type { ModelTinyErrorCodeName } from "./errors.js";
export { tinyModelPath, tinyDraftModelPath, tinyMedusaPath, TINY_MODEL, tinyModelFiles } from "./tiny-model.js";
export type { TinyModelInfo, TinyModelFiles } from "./tiny-model.js";
