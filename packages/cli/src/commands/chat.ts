// `halo chat`: an interactive conversation — history, multi-line input, slash commands, Ctrl-C stops the answer.
import { createInterface } from "node:readline";
import { isHaloError } from "@halo/errors";
import type { ChatMessage, Engine } from "@halo/engine";
import { helpText, parseFlags, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { ExitCode } from "../main.js";
import { CONTEXT_SHIFT_FLAG, contextShiftFlag, type ContextShiftFlag } from "./context-shift-flag.js";
import { loadFromFlags, MODEL_FLAGS, samplingFlags, statsLine, type SamplingFlags } from "./model-options.js";
import { speculativeNotice } from "./speculative-flags.js";

const FLAGS: Record<string, FlagSpec> = {
  ...MODEL_FLAGS,
  "context-shift": CONTEXT_SHIFT_FLAG,
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** What the slash commands do (shown by `/help`). */
export const CHAT_COMMANDS = [
  "/system <text>  set the system prompt (keeps the conversation)",
  "/reset          forget the conversation (keeps the system prompt)",
  "/stats          token counts and speed of the last answer and the session, how full the context is, and speculative decoding's acceptance",
  "/help           this list",
  "/exit           leave (also /bye or Ctrl-D)",
  'Multi-line input: end a line with \\ to continue it, or wrap text in """ lines.',
  "Ctrl-C stops the current answer; at the prompt it clears the line; twice on an empty line quits.",
  "When the conversation fills the context, the oldest turns are dropped (the system prompt stays) and a note says so.",
].join("\n");

/** Help text of `halo chat`. */
export const chatHelp = helpText(
  "halo chat [--model <path|owner/name>] [options]",
  `Talks with the model in the terminal, keeping the conversation. Without --model it uses\nmicrosoft/bitnet-b1.58-2B-4T from the cache, pulling it on first use.\n\n${CHAT_COMMANDS}`,
  FLAGS,
  ["halo chat", 'halo chat --model tiny.halo --system "Answer in one sentence." --temperature 0', "halo chat --speculative ngram"],
);

/** Accumulates lines into one message: `\` continuations and `"""` blocks. */
export class MultiLineReader {
  private buffer: string[] = [];
  private inBlock = false;

  /** True while more lines are needed. */
  get pending(): boolean {
    return this.inBlock || this.buffer.length > 0;
  }

  /** Feeds one line; returns the finished input, or undefined while it continues. */
  push(line: string): string | undefined {
    if (this.inBlock) {
      if (line.trim() === '"""') {
        this.inBlock = false;
        return this.take();
      }
      this.buffer.push(line);
      return undefined;
    }
    if (this.buffer.length === 0 && line.trim() === '"""') {
      this.inBlock = true;
      return undefined;
    }
    if (line.endsWith("\\")) {
      this.buffer.push(line.slice(0, -1));
      return undefined;
    }
    this.buffer.push(line);
    return this.take();
  }

  /** Drops what was typed so far. */
  clear(): void {
    this.buffer = [];
    this.inBlock = false;
  }

  private take(): string {
    const text = this.buffer.join("\n");
    this.buffer = [];
    return text;
  }
}

interface Totals {
  answers: number;
  promptTokens: number;
  completionTokens: number;
  last: string | undefined;
  /** KV positions the last answer left in use (prompt + answer). */
  contextTokens: number;
  /** Messages dropped to fit the context, this session. */
  droppedMessages: number;
}

/** `the 2 oldest messages`, `the oldest message`. */
function oldest(count: number): string {
  return count === 1 ? "the oldest message" : `the ${count} oldest messages`;
}

async function answer(
  engine: Engine,
  messages: ChatMessage[],
  sampling: SamplingFlags & { readonly contextShift: ContextShiftFlag },
  signal: AbortSignal,
  ctx: CommandContext,
  totals: Totals,
  onDropped: (count: number) => void,
): Promise<string | undefined> {
  try {
    for await (const event of engine.chat(messages, { ...sampling, signal })) {
      if (event.type === "token-delta") ctx.stdout.write(event.text);
      else if (event.type === "request-start" && event.droppedMessages > 0) {
        // The engine dropped whole oldest turns; forget them here too, so the history matches what the model saw.
        onDropped(event.droppedMessages);
        totals.droppedMessages += event.droppedMessages;
        ctx.stderr.write(
          `halo chat: context full: dropped ${oldest(event.droppedMessages)} (the prompt is now ${event.contextTokens} of ${event.contextLength} tokens)\n`,
        );
      } else if (event.type === "request-end") {
        ctx.stdout.write(event.finishReason === "abort" ? " [stopped]\n" : "\n");
        if (event.contextFull) {
          const next = sampling.contextShift === "error" ? "/reset starts a new conversation" : "the next message drops the oldest turns";
          ctx.stderr.write(`halo chat: the answer was cut: the context is full (${event.contextTokens} of ${engine.contextLength} tokens); ${next}\n`);
        }
        totals.answers++;
        totals.promptTokens += event.usage.promptTokens;
        totals.completionTokens += event.usage.completionTokens;
        totals.contextTokens = event.contextTokens;
        totals.last = statsLine(event, engine.backend, engine.speculative?.label);
        return event.text;
      }
    }
  } catch (error) {
    if (!isHaloError(error)) throw error;
    if (error.code === "ENGINE_CONTEXT_OVERFLOW") {
      const what = sampling.contextShift === "error" ? "the conversation no longer fits" : "the message does not fit, even after dropping every older turn,";
      const ways = [
        "/reset starts a new conversation",
        "a shorter message or --system prompt fits",
        `a larger --context-length (now ${engine.contextLength}) gives more room`,
      ];
      if (sampling.contextShift === "error") ways.push("--context-shift drop-oldest drops the oldest turns instead");
      ctx.stderr.write(
        `halo chat: ${what} in the context window (${String(error.actual)}, room for ${engine.contextLength - 1}): ${ways.join("; ")} [${error.code}]\n`,
      );
    } else ctx.stderr.write(`halo chat: ${error.message} [${error.code}]\n`);
  }
  return undefined;
}

/** Runs `halo chat`. With piped (not terminal) input it answers every turn, printing each failure, and exits 1 when any turn failed. */
export async function chatCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseFlags("chat", argv, FLAGS);
  if (values["help"] === true) {
    ctx.stdout.write(chatHelp);
    return ExitCode.OK;
  }
  const sampling = { ...samplingFlags("chat", values), contextShift: contextShiftFlag("chat", values) ?? "drop-oldest" };
  const engine = await loadFromFlags("chat", values, ctx);
  const input = ctx.stdin ?? process.stdin;
  const terminal = input.isTTY === true;
  const rl = createInterface({ input, ...(terminal ? { output: process.stdout, terminal: true } : { terminal: false }) });
  let system = values["system"] as string | undefined;
  let history: ChatMessage[] = [];
  const totals: Totals = { answers: 0, promptTokens: 0, completionTokens: 0, last: undefined, contextTokens: 0, droppedMessages: 0 };
  const reader = new MultiLineReader();
  // Turns that failed (each printed its error): piped input goes on to its end, then exits 1 when any did.
  let failedTurns = 0;
  let generating: AbortController | undefined;
  let lastInterrupt = 0;
  const prompt = (): void => {
    if (!terminal) return;
    rl.setPrompt(reader.pending ? "... " : ">>> ");
    rl.prompt();
  };
  const onInterrupt = (): void => {
    if (generating !== undefined) {
      generating.abort();
      return;
    }
    const now = Date.now();
    if (!reader.pending && now - lastInterrupt < 2000) {
      rl.close();
      return;
    }
    lastInterrupt = now;
    reader.clear();
    ctx.stderr.write("\n(Ctrl-C again or /exit to leave)\n");
    prompt();
  };
  rl.on("SIGINT", onInterrupt);
  process.on("SIGINT", onInterrupt);
  const notice = speculativeNotice(engine);
  if (terminal) ctx.stderr.write(`halo chat (${engine.backend} backend${notice === null ? "" : `; ${notice}`}). /help for commands, /exit to leave.\n`);
  try {
    prompt();
    for await (const line of rl) {
      const text = reader.push(line);
      if (text === undefined) {
        prompt();
        continue;
      }
      const trimmed = text.trim();
      if (trimmed === "") {
        prompt();
        continue;
      }
      if (!reader.pending && trimmed.startsWith("/") && !trimmed.includes("\n")) {
        const [command, ...rest] = trimmed.split(/\s+/);
        if (command === "/exit" || command === "/bye" || command === "/quit") break;
        if (command === "/reset") {
          history = [];
          totals.contextTokens = 0;
          ctx.stdout.write("(conversation cleared)\n");
        } else if (command === "/system") {
          system = rest.length > 0 ? trimmed.slice(command.length).trim() : undefined;
          ctx.stdout.write(system === undefined ? "(system prompt removed)\n" : "(system prompt set)\n");
        } else if (command === "/stats") {
          ctx.stdout.write(
            `${totals.last ?? "no answer yet"}\nsession: ${totals.answers} answers, ${totals.promptTokens} prompt tokens, ${totals.completionTokens} answer tokens; ${history.length} messages in the conversation\n` +
              `context: ${totals.contextTokens} of ${engine.contextLength} tokens in use (last prompt + answer); ${totals.droppedMessages} old messages dropped to fit\n`,
          );
        } else if (command === "/help") {
          ctx.stdout.write(`${CHAT_COMMANDS}\n`);
        } else {
          ctx.stdout.write(`unknown command ${command}; /help lists them\n`);
        }
        prompt();
        continue;
      }
      const messages: ChatMessage[] = [
        ...(system !== undefined ? [{ role: "system" as const, content: system }] : []),
        ...history,
        { role: "user", content: text },
      ];
      generating = new AbortController();
      const reply = await answer(engine, messages, sampling, generating.signal, ctx, totals, (count) => history.splice(0, count));
      generating = undefined;
      if (reply !== undefined) history.push({ role: "user", content: text }, { role: "assistant", content: reply });
      else failedTurns++;
      prompt();
    }
  } finally {
    process.off("SIGINT", onInterrupt);
    rl.close();
    engine.dispose();
  }
  return !terminal && failedTurns > 0 ? ExitCode.ERROR : ExitCode.OK;
}
