// Chat templates: rendering Jinja templates with @huggingface/jinja, and the built-in BitNet, Llama-3 and plain ones.
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

/**
 * The fallback for models whose file carries no template and whose vocabulary implies none:
 * `role: content` per message (content trimmed) ended by the tokenizer's EOS token when it has
 * one, a newline between turns, then `assistant: ` with the generation prompt. Ending turns with
 * EOS makes the model's own end-of-text token end its answer.
 *
 * @example
 * ```ts
 * renderChatTemplate(PLAIN_CHAT_TEMPLATE, [{ role: "user", content: "Hi" }], true, { eos_token: "</s>" });
 * // "user: Hi</s>\nassistant: "
 * ```
 */
export const PLAIN_CHAT_TEMPLATE =
  "{% for message in messages %}{{ message['role'] }}: {{ message['content'] | trim }}" +
  "{% if eos_token is defined %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}assistant: {% endif %}";

/**
 * Names of the built-in templates: `bitnet` (BitNet-b1.58-2B-4T), `llama3` (Llama-3 headers) and
 * `plain` (the fallback).
 *
 * @example
 * ```ts
 * BUILTIN_CHAT_TEMPLATE_NAMES.includes("plain"); // true
 * ```
 */
export const BUILTIN_CHAT_TEMPLATE_NAMES = ["bitnet", "llama3", "plain"] as const;

/** Names of the built-in templates. */
export type BuiltinChatTemplate = (typeof BUILTIN_CHAT_TEMPLATE_NAMES)[number];

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
  plain: PLAIN_CHAT_TEMPLATE,
};

/**
 * True when `name` is one of {@link BUILTIN_CHAT_TEMPLATE_NAMES}.
 *
 * @example
 * ```ts
 * isBuiltinChatTemplate("bitnet"); // true
 * isBuiltinChatTemplate("{{ messages }}"); // false
 * ```
 */
export function isBuiltinChatTemplate(name: string): name is BuiltinChatTemplate {
  return (BUILTIN_CHAT_TEMPLATE_NAMES as readonly string[]).includes(name);
}

const compiled = new Map<string, Template>();

function compile(template: string): Template {
  let program = compiled.get(template);
  if (program !== undefined) return program;
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
  return program;
}

/**
 * Parses a Jinja chat template without rendering it; throws `TOKENIZER_BAD_TEMPLATE` when it does
 * not parse. Lets a caller refuse a bad template when it is given rather than at the first chat.
 *
 * @example
 * ```ts
 * checkChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}"); // fine
 * checkChatTemplate("{% for x in %}"); // throws TOKENIZER_BAD_TEMPLATE
 * ```
 */
export function checkChatTemplate(template: string): void {
  compile(template);
}

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
  const program = compile(template);
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
