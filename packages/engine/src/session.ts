// Sessions: a conversation that keeps its KV slot between turns and reuses the matching prefix.
import { HaloError } from "@halo/errors";
import type { ChatMessage } from "@halo/tokenizer";
import type { Engine } from "./engine.js";
import { EngineErrorCode } from "./errors.js";
import type { GenerateEvent } from "./events.js";
import { CHAT_OPTION_KEYS, checkGenerateOptions, checkTemplateVariables, type ChatOptions, type GenerateOptions } from "./generate-options.js";

/** Options of {@link Engine.createSession}. */
export interface SessionOptions {
  /** A system message placed first in the conversation. */
  readonly system?: string;
  /** Chat template (built-in name or Jinja source). Default: the engine's `chatTemplate`. */
  readonly template?: string;
  /** Template variables for every turn (`tools`, `date_string`, …); a turn's own `templateVariables` are merged over them. */
  readonly templateVariables?: Readonly<Record<string, unknown>>;
}

/** @internal How a generation continues a session's slot and reports back. */
export interface SlotContinuation {
  readonly slot: number;
  /** Positions already in the slot (the prompt continues from here). */
  readonly length: number;
  /** The tokens of those positions (a drafter looks for continuations in them too). */
  readonly prefix: readonly number[];
  /** Called when the generation ends (before its end event), with the tokens it sampled. */
  onEnd(generated: readonly number[], error: unknown): void;
  /** Set by the engine when the turn is submitted: cancels it (it ends at the next step boundary, then `onEnd` runs). */
  cancel?: () => void;
}

/**
 * A conversation with its own KV cache. Each {@link chat} turn renders the whole conversation
 * with the chat template, keeps the longest cached prefix that still matches the new tokens,
 * drops the rest, and runs only the new tokens — so a follow-up question costs its own tokens,
 * not the whole history. One turn at a time; the slot is held until {@link dispose}.
 */
export class Session {
  /** The conversation so far (assistant turns are added when they end). */
  readonly messages: ChatMessage[] = [];
  private cached: number[] = [];
  private slot: number;
  private busy = false;
  private disposed = false;
  /** The turn running now (its cancel handle), or null between turns. */
  private turn: SlotContinuation | null = null;
  private readonly template: string | undefined;
  private readonly templateVariables: Readonly<Record<string, unknown>> | undefined;

  /** @internal Use {@link Engine.createSession}. */
  constructor(
    private readonly engine: Engine,
    options: SessionOptions,
  ) {
    this.template = options.template;
    if (options.templateVariables !== undefined) checkTemplateVariables(options.templateVariables);
    this.templateVariables = options.templateVariables;
    if (options.system !== undefined) this.messages.push({ role: "system", content: options.system });
    try {
      this.slot = engine.allocateSessionSlot();
    } catch (cause) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "no free sequence slot for a new session", {
        field: "maxSequences",
        hint: "Dispose an idle session or load the model with a larger maxSequences",
        cause,
      });
    }
  }

  /** Tokens whose keys and values are cached in the session's slot. */
  get cachedTokens(): readonly number[] {
    return this.cached;
  }

  /**
   * Adds a user message (or several messages) and streams the assistant's answer, which is added
   * to {@link messages} when the turn ends (also on abort, with the text so far). When the
   * conversation no longer fits the context window, `options.contextShift` (default: drop the
   * oldest turns, keep the system prompt) shortens it and {@link messages} loses the dropped
   * turns too; the cached KV is reused up to the first token that changed (the system prompt).
   *
   * @example
   * ```ts
   * for await (const e of session.chat("And then?", { maxTokens: 64 })) {
   *   if (e.type === "request-start" && e.droppedMessages > 0) console.warn(`forgot the ${e.droppedMessages} oldest messages`);
   * }
   * ```
   */
  chat(content: string | readonly ChatMessage[], options: ChatOptions = {}): AsyncIterable<GenerateEvent> {
    checkGenerateOptions(options, CHAT_OPTION_KEYS, "chat");
    const added = typeof content === "string" ? [{ role: "user", content }] : [...content];
    const template = options.template ?? this.template;
    const tokenizer = this.requireReady();
    const conversation = [...this.messages, ...added];
    const templateOptions = this.engine.chatTemplateOptions(template, options.templateVariables, this.templateVariables);
    // Too long for the context: the policy drops old turns (the session forgets them too).
    const fit = this.engine.fitChat(conversation, options, templateOptions.template!, (kept) => tokenizer.encodeChat(kept, templateOptions));
    const stream = this.continueWith(fit.ids, this.engine.withTemplateStops(options, templateOptions.template!), fit.droppedMessages);
    this.messages.splice(0, this.messages.length, ...fit.messages);
    const messages = this.messages;
    return {
      async *[Symbol.asyncIterator]() {
        for await (const event of stream) {
          if (event.type === "request-end") messages.push({ role: "assistant", content: event.text });
          yield event;
        }
      },
    };
  }

  /** Continues the session with raw text (BOS not added) or token ids, without a chat template. */
  generate(prompt: string | readonly number[], options: GenerateOptions = {}): AsyncIterable<GenerateEvent> {
    checkGenerateOptions(options);
    const ids = typeof prompt === "string" ? this.requireReady().encode(prompt, { addSpecialTokens: this.cached.length === 0 }) : [...prompt];
    return this.continueWith([...this.cached, ...ids], options);
  }

  /** Forgets the conversation (keeps the system message) and the cached tokens. */
  reset(): void {
    this.checkIdle();
    const system = this.messages.find((m) => m.role === "system");
    this.messages.length = 0;
    if (system !== undefined) this.messages.push(system);
    this.engine.loadedModel.truncateSequence(this.slot, 0);
    this.cached = [];
  }

  /**
   * Frees the session's KV slot. Idempotent. During a turn, the turn is cancelled (its stream ends
   * with finish reason `abort`) and the slot is freed once the turn has left the scheduler, so no
   * other generation is given the slot while the turn still steps it.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.turn !== null) this.turn.cancel?.();
    else this.engine.freeSessionSlot(this.slot);
  }

  private continueWith(ids: number[], options: GenerateOptions, droppedMessages = 0): AsyncIterable<GenerateEvent> {
    this.checkIdle();
    // Longest cached prefix that still matches, leaving at least one token to run.
    let keep = 0;
    const limit = Math.min(this.cached.length, ids.length - 1);
    while (keep < limit && this.cached[keep] === ids[keep]) keep++;
    const model = this.engine.loadedModel;
    if (keep < model.sequenceLength(this.slot)) model.truncateSequence(this.slot, keep);
    const fresh = ids.slice(keep);
    this.busy = true;
    this.cached = ids.slice(0, keep);
    const turn: SlotContinuation = {
      slot: this.slot,
      length: keep,
      prefix: ids.slice(0, keep),
      onEnd: (generated) => {
        this.busy = false;
        this.turn = null;
        if (this.disposed) {
          // dispose() during the turn: the slot is free to give away only now.
          this.cached = [];
          this.engine.freeSessionSlot(this.slot);
          return;
        }
        // What the slot holds now: the prompt and every generated token that was fed back.
        this.cached = [...ids, ...generated].slice(0, model.sequenceLength(this.slot));
      },
    };
    this.turn = turn;
    try {
      return this.engine.runInSlot(fresh, options, turn, droppedMessages);
    } catch (error) {
      this.busy = false;
      this.turn = null;
      throw error;
    }
  }

  private requireReady() {
    this.checkIdle();
    const tokenizer = this.engine.tokenizer;
    if (tokenizer === null) {
      throw new HaloError(EngineErrorCode.ENGINE_NO_TOKENIZER, "this model has no tokenizer", {
        hint: "Pass `tokenizer` to loadModel, or use session.generate with token ids",
      });
    }
    return tokenizer;
  }

  private checkIdle(): void {
    if (this.disposed) {
      throw new HaloError(EngineErrorCode.ENGINE_DISPOSED, "the session was used after dispose()", { hint: "Create a new session" });
    }
    if (this.busy) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "the session is already generating", {
        hint: "Wait for the current turn's request-end event (or abort it) before the next turn",
      });
    }
  }
}
