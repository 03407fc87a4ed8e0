// Chat templates: rendering Jinja templates with @huggingface/jinja, and the built-in BitNet and Llama-3 ones.
import { HaloError } from "@halo/errors";
import { Template } from "@huggingface/jinja";
import { TokenizerErrorCode } from "./errors.js";

/**
 * One chat message. `role` is usually `system`, `user` or `assistant`.
 *
 * @example
 * ```ts
 * const message: ChatMessage = { role: "user", content: "Hi" };
 * ```
 */
export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

/**
 * BitNet-b1.58-2B-4T's template: `Role: content<|eot_id|>` per message (role capitalised, content
 * trimmed), then `Assistant: ` with the generation prompt. No BOS: the tokenizer prepends it.
 * Source: `research/formats-and-peers.md` §1.2.
 *
 * @example
 * ```ts
 * tokenizer.applyChatTemplate(messages, { template: BITNET_CHAT_TEMPLATE });
 * ```
 */
export const BITNET_CHAT_TEMPLATE =
  "{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] | trim }}<|eot_id|>{% endfor %}" +
  "{% if add_generation_prompt %}Assistant: {% endif %}";

/**
 * Llama-3 header style: `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` per
 * message, BOS first, then the assistant header with the generation prompt.
 *
 * @example
 * ```ts
 * renderChatTemplate(LLAMA3_CHAT_TEMPLATE, [{ role: "user", content: "Hi" }], true, { bos_token: "<|begin_of_text|>" });
 * ```
 */
export const LLAMA3_CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n" +
  "{{ message['content'] | trim }}<|eot_id|>{% endfor %}" +
  "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

/** Names of the built-in templates. */
export type BuiltinChatTemplate = "bitnet" | "llama3";

/**
 * The built-in templates by name.
 *
 * @example
 * ```ts
 * const source = BUILTIN_CHAT_TEMPLATES.bitnet;
 * ```
 */
export const BUILTIN_CHAT_TEMPLATES: Readonly<Record<BuiltinChatTemplate, string>> = {
  bitnet: BITNET_CHAT_TEMPLATE,
  llama3: LLAMA3_CHAT_TEMPLATE,
};

const compiled = new Map<string, Template>();

/**
 * Renders a Jinja chat template. Variables: `messages`, `add_generation_prompt`, plus
 * `variables` (`bos_token`, `eos_token`, …). A template's `raise_exception(…)` becomes a HaloError.
 *
 * @example
 * ```ts
 * renderChatTemplate(BITNET_CHAT_TEMPLATE, [{ role: "user", content: "Hi" }], true);
 * // "User: Hi<|eot_id|>Assistant: "
 * ```
 */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  addGenerationPrompt: boolean,
  variables: Readonly<Record<string, unknown>> = {},
): string {
  let program = compiled.get(template);
  if (program === undefined) {
    try {
      program = new Template(template);
    } catch (cause) {
      throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_TEMPLATE, "chat template does not parse", {
        expected: "a Jinja template",
        actual: template.length > 80 ? `${template.slice(0, 80)}…` : template,
        hint: cause instanceof Error ? cause.message : String(cause),
        cause,
      });
    }
    if (compiled.size > 64) compiled.clear();
    compiled.set(template, program);
  }
  try {
    return program.render({
      ...variables,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: addGenerationPrompt,
    });
  } catch (cause) {
    if (cause instanceof HaloError) throw cause;
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_TEMPLATE, "chat template failed to render or refused the messages", {
      hint: cause instanceof Error ? cause.message : String(cause),
      cause,
    });
  }
}
