// Which chat template a model chats with: the caller's, the file's own, or one inferred from architecture and vocabulary.
import { HaloError, isHaloError } from "@halo/errors";
import type { TokenizerPayload } from "@halo/h1b-format";
import { BUILTIN_CHAT_TEMPLATES, checkChatTemplate, isBuiltinChatTemplate, Tokenizer, type BuiltinChatTemplate } from "@halo/tokenizer";
import { EngineErrorCode } from "./errors.js";

/**
 * Where a {@link ChatTemplateChoice} came from: `option` (the caller named it: `loadModel`'s
 * `chatTemplate`, the CLI's `--chat-template`), `file` (the model file or its tokenizer carries
 * it), `inferred` (neither: chosen from the architecture and the vocabulary).
 */
export type ChatTemplateOrigin = "option" | "file" | "inferred";

/**
 * The chat template a model chats with, and why.
 *
 * @example
 * ```ts
 * const engine = await loadModel("tiny.h1b");
 * engine.chatTemplate; // { name: "bitnet", origin: "inferred", reason: "inferred: BitNet architecture with Llama-3 vocabulary", source: "{% for … %}", stopStrings: [] }
 * ```
 */
export interface ChatTemplateChoice {
  /**
   * A built-in name (`bitnet`, `llama3`, `plain`) when the template is one (also when a file or a
   * caller gives a built-in's exact source); otherwise `embedded` for a file's own Jinja and
   * `custom` for a caller's.
   */
  readonly name: BuiltinChatTemplate | "embedded" | "custom";
  /** Where it came from. */
  readonly origin: ChatTemplateOrigin;
  /** Why, in words: `from the model file`, `inferred: BitNet architecture with Llama-3 vocabulary`, … */
  readonly reason: string;
  /** The Jinja source that renders the messages. */
  readonly source: string;
  /**
   * Stop strings a chat with this template needs besides the model's end-of-turn tokens, which
   * `Engine.chat` and `Session.chat` add to the caller's `stop` when they render with this
   * template: `["\nuser:"]` for `plain` with a tokenizer that has no EOS token (turns then end
   * with a bare newline, and a model would go on to write the user's next turn); `[]` otherwise.
   */
  readonly stopStrings: readonly string[];
}

/** What ends the model's turn with the `plain` template when no EOS token does (the next turn's header). */
export const PLAIN_TURN_STOP = "\nuser:";

/**
 * True when `source` is a built-in template (its name or its exact Jinja). Each of them renders every message with its role
 * text and its content (trimmed, nothing else removed), so a message adds at least one token and
 * the rendered prompt holds at least the trimmed content's bytes: rules a caller may use to refuse
 * or shorten a conversation before rendering it. A file's or caller's Jinja may skip messages or
 * content, so neither rule is assumed for it.
 *
 * @example
 * ```ts
 * rendersEveryMessage(engine.chatTemplate.source); // true for bitnet, llama3, plain
 * ```
 */
export function rendersEveryMessage(source: string): boolean {
  return builtinOf(source) !== null;
}

/** The built-in template `template` names or spells out, or null. */
function builtinOf(template: string): BuiltinChatTemplate | null {
  return isBuiltinChatTemplate(template) ? template : builtinNamed(template);
}

/**
 * The {@link ChatTemplateChoice.stopStrings} of a template (name or source) rendered by `tokenizer`.
 * @internal
 */
export function templateStopStrings(source: string, tokenizer: Tokenizer | null): readonly string[] {
  return stopStringsFor(builtinOf(source) ?? "custom", () => tokenizer);
}

function stopStringsFor(name: ChatTemplateChoice["name"], tokenizer: () => Tokenizer | null): readonly string[] {
  if (name !== "plain") return [];
  const built = tokenizer();
  return built === null || built.eosTokenId === null ? [PLAIN_TURN_STOP] : [];
}

/** What {@link chooseChatTemplate} reads of a model (an `@halo/h1b-format` `HaloModel` fits). */
export interface ChatTemplateModel {
  readonly config: { readonly architecture: string };
  /** The Jinja template the model file carries, or null. */
  readonly chatTemplate: string | null;
  readonly tokenizer: TokenizerPayload | null;
}

// Special tokens that mark the Llama-3 vocabulary (BitNet-2B-4T's tokenizer is Llama-3's).
const LLAMA3_MARKERS = ["<|begin_of_text|>", "<|eot_id|>"] as const;

const ARCHITECTURE_NAMES: Readonly<Record<string, string>> = { bitnet: "BitNet", llama: "Llama" };

function builtinNamed(source: string): BuiltinChatTemplate | null {
  for (const [name, text] of Object.entries(BUILTIN_CHAT_TEMPLATES)) if (text === source) return name as BuiltinChatTemplate;
  return null;
}

function parseProblem(source: string): string | null {
  try {
    checkChatTemplate(source);
    return null;
  } catch (error) {
    if (!isHaloError(error)) throw error;
    return error.cause instanceof Error ? error.cause.message : error.message;
  }
}

function inferred(architecture: string, tokenizer: Tokenizer | null, note: string): ChatTemplateChoice {
  const missing = tokenizer === null ? [...LLAMA3_MARKERS] : LLAMA3_MARKERS.filter((token) => tokenizer.tokenToId(token) === null);
  const pick = (name: BuiltinChatTemplate, why: string): ChatTemplateChoice => ({
    name,
    origin: "inferred",
    reason: `${note}inferred: ${why}`,
    source: BUILTIN_CHAT_TEMPLATES[name],
    stopStrings: stopStringsFor(name, () => tokenizer),
  });
  if (missing.length === 0 && architecture === "bitnet") return pick("bitnet", "BitNet architecture with Llama-3 vocabulary");
  if (missing.length === 0 && architecture === "llama") return pick("llama3", "Llama architecture with Llama-3 vocabulary");
  const vocabulary = tokenizer === null ? "no tokenizer" : missing.length > 0 ? `no Llama-3 vocabulary (${missing.join(", ")} absent)` : "Llama-3 vocabulary";
  const end = tokenizer === null || tokenizer.eosTokenId === null ? "turns end with a newline (no EOS token)" : "turns end with EOS";
  return pick("plain", `${ARCHITECTURE_NAMES[architecture] ?? architecture} architecture with ${vocabulary}; plain fallback, ${end}`);
}

/**
 * Chooses the chat template a model chats with, in this order:
 * 1. `requested` (a built-in name or Jinja source), origin `option`;
 * 2. the template the model file carries, else the one its tokenizer carries (`tokenizer_config.json`), origin `file`
 *    — one that does not parse is passed over, and the reason says so;
 * 3. inferred from the architecture and vocabulary: `bitnet` (BitNet-b1.58-2B-4T's) for the BitNet architecture
 *    with the Llama-3 vocabulary (`<|begin_of_text|>` and `<|eot_id|>` present), `llama3` for the Llama
 *    architecture with that vocabulary, `plain` (`role: content` turns ended by EOS) for everything else.
 *
 * `tokenizer` defaults to one built from `model.tokenizer`; `loadModel` passes the one it built.
 * Throws `ENGINE_BAD_OPTION` for a `requested` that is not a non-empty string, and
 * `TOKENIZER_BAD_TEMPLATE` for requested Jinja that does not parse.
 *
 * @example
 * ```ts
 * const model = await openModel("tiny.h1b");
 * chooseChatTemplate(model).reason; // "inferred: BitNet architecture with Llama-3 vocabulary"
 * chooseChatTemplate(model, { requested: "plain" }).origin; // "option"
 * model.close();
 * ```
 */
export function chooseChatTemplate(
  model: ChatTemplateModel,
  options: { readonly requested?: string; readonly tokenizer?: Tokenizer | null } = {},
): ChatTemplateChoice {
  const { requested } = options;
  // Built only when needed (a 128k vocabulary takes a moment).
  let built: Tokenizer | null | undefined = options.tokenizer;
  const tokenizer = (): Tokenizer | null => {
    if (built === undefined) built = model.tokenizer === null ? null : Tokenizer.fromPayload(model.tokenizer);
    return built;
  };
  if (requested !== undefined) {
    if (typeof requested !== "string" || requested.trim() === "") {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "chatTemplate must be a built-in template name or Jinja source", {
        field: "chatTemplate",
        expected: `one of ${Object.keys(BUILTIN_CHAT_TEMPLATES).join(", ")}, or non-empty Jinja source`,
        actual: typeof requested === "string" ? JSON.stringify(requested) : typeof requested,
        hint: "Leave chatTemplate out to use the model's own template (or the one halo infers)",
      });
    }
    if (isBuiltinChatTemplate(requested)) {
      return {
        name: requested,
        origin: "option",
        reason: "chosen by name (chatTemplate option)",
        source: BUILTIN_CHAT_TEMPLATES[requested],
        stopStrings: stopStringsFor(requested, tokenizer),
      };
    }
    checkChatTemplate(requested);
    const name = builtinNamed(requested) ?? "custom";
    return {
      name,
      origin: "option",
      reason: "Jinja given by the caller (chatTemplate option)",
      source: requested,
      stopStrings: stopStringsFor(name, tokenizer),
    };
  }
  const own: readonly [() => string | null, string][] = [
    [() => model.chatTemplate, "the model file"],
    [() => tokenizer()?.chatTemplate ?? null, "the tokenizer's config"],
  ];
  let note = "";
  for (const [read, where] of own) {
    const source = read();
    if (source === null || source.trim() === "") continue;
    const problem = parseProblem(source);
    if (problem === null) {
      const name = builtinNamed(source) ?? "embedded";
      return { name, origin: "file", reason: `from ${where}`, source, stopStrings: stopStringsFor(name, tokenizer) };
    }
    note = `the template in ${where} does not parse (${problem}); `;
  }
  return inferred(model.config.architecture, tokenizer(), note);
}
