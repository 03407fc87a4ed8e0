// @halo/tokenizer: Llama-3 byte-level BPE identical to Hugging Face tokenizers, chat templates, streaming decode.
export { CHAT_ENCODE_OPTIONS, Tokenizer } from "./tokenizer.js";
export type { TokenizerLoadOptions, EncodeOptions, DecodeOptions, ChatTemplateOptions } from "./tokenizer.js";
export { StreamDecoder } from "./stream-decoder.js";
export type { StreamDecoderOptions } from "./stream-decoder.js";
export {
  BITNET_CHAT_TEMPLATE,
  LLAMA3_CHAT_TEMPLATE,
  PLAIN_CHAT_TEMPLATE,
  BUILTIN_CHAT_TEMPLATES,
  BUILTIN_CHAT_TEMPLATE_NAMES,
  isBuiltinChatTemplate,
  checkChatTemplate,
  renderChatTemplate,
} from "./chat-template.js";
export type { ChatMessage, BuiltinChatTemplate } from "./chat-template.js";
export type { PreTokenizerChoice } from "./load-binary-payloads.js";
export type { TokenizerPayload, HfJsonPayload, GgufTokenizerPayload, HtokPayload } from "./payload.js";
export { LLAMA3_SPLIT_PATTERN, GPT2_SPLIT_PATTERN, onigToJsRegExp } from "./onig-regex.js";
export { TokenizerErrorCode } from "./errors.js";
export type { TokenizerErrorCodeName } from "./errors.js";
