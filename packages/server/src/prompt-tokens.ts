// Prompt admission before tokenizing (a byte bound on the token count) and tokenizing in slices that never hold the event loop.
import { rendersEveryMessage, type ChatMessage, type Engine } from "@halo/engine";
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "./errors.js";

/**
 * How much Unicode normalization can shrink text, in UTF-8 bytes: NFKC maps a 4-byte
 * mathematical letter (U+1D400 𝐀) to a 1-byte ASCII letter; Hangul jamo compose 9 bytes into 3;
 * Lowercase maps the 3-byte Kelvin sign to `k`. Byte-level BPE tokenizers (Llama-3, GPT-2) have no
 * normalizer and shrink nothing; the factor keeps the bound sound for those that do. (A `Replace`
 * normalizer that deletes text could shrink more; no tokenizer halo ships has one.)
 */
export const NORMALIZATION_SHRINK = 4;

/** Text longer than this (UTF-16 units) is encoded in slices with an event-loop turn between them. */
export const SLICE_CHARS = 16_384;

const tokenBytes = new WeakMap<Engine, Promise<number>>();
const splitSafe = new WeakMap<Engine, boolean>();

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The UTF-8 length of the longest token the engine's tokenizer decodes (special tokens included,
 * never below 4: a tokenizer's unknown-character token stands for one character of up to 4
 * bytes). Decoding a raw-byte token that is not valid UTF-8 yields U+FFFD (3 bytes) per byte at
 * most, which only overstates the length. Computed once per engine, in slices.
 * @internal
 */
export function longestTokenBytes(engine: Engine): Promise<number> {
  let known = tokenBytes.get(engine);
  if (known === undefined) {
    known = (async () => {
      let longest = 4;
      const started = { at: performance.now() };
      for (let id = 0; id < engine.config.vocabSize; id++) {
        try {
          longest = Math.max(longest, Buffer.byteLength(engine.detokenize([id])));
        } catch {
          // An id without a token (a gap in the vocabulary) never appears in an encoding.
        }
        if ((id & 1023) === 1023 && performance.now() - started.at > 10) {
          await yieldToLoop();
          started.at = performance.now();
        }
      }
      return longest;
    })();
    tokenBytes.set(engine, known);
  }
  return known;
}

/**
 * Refuses (`SERVER_CONTEXT_OVERFLOW`) a prompt of `bytes` UTF-8 bytes that cannot fit in the
 * context whatever its tokens are, before any tokenizing. The rule: every token stands for at most
 * `longest × NORMALIZATION_SHRINK` bytes of the prompt (`longest` = {@link longestTokenBytes}; the
 * decoded tokens of a prompt concatenate to its normalized text, which is at least
 * 1/NORMALIZATION_SHRINK of its bytes), so a prompt needs at least
 * `ceil(bytes / (longest × NORMALIZATION_SHRINK))` tokens; when that reaches the context (which
 * must keep room for one new token) it cannot fit. Prompts under the bound are tokenized and
 * checked exactly.
 * @internal
 */
export async function checkPromptBytes(engine: Engine, bytes: number, field: string): Promise<void> {
  const perToken = (await longestTokenBytes(engine)) * NORMALIZATION_SHRINK;
  const fewest = Math.ceil(bytes / perToken);
  if (fewest >= engine.contextLength) {
    throw overflow(engine, field, `${bytes} bytes, at least ${fewest} tokens (no token of this model stands for more than ${perToken} bytes)`);
  }
}

function overflow(engine: Engine, field: string, actual: string): HaloError {
  return new HaloError(ServerErrorCode.SERVER_CONTEXT_OVERFLOW, "the prompt does not fit in the model's context window", {
    field,
    expected: `fewer than ${engine.contextLength} prompt tokens (room for at least one new token)`,
    actual,
    hint: "Shorten the prompt, or start the server with a larger context length",
  });
}

// A slice boundary b (the right side starts at b) is either
//   newline rule: text[b-1] is "\n", text[b-2] is not whitespace, text[b] is a letter or digit
//                 (the newline stays on the left), or
//   space rule:   text[b] is a single " " between letters (text[b-1] and text[b+1]); the space
//                 goes right, with the word it prefixes.
// Why encoding the two sides apart gives the same ids, for the pre-tokenizers halo implements for
// byte-level BPE (Llama-3 and GPT-2 split patterns, Digits, Whitespace, Punctuation) without a
// prefix-adding step: BPE never merges across pre-tokenizer pieces, and in the full text a piece
// ends exactly at b. Newline rule: letter runs, digit groups and punctuation runs stop at the
// newline; the Llama-3 pieces `[\r\n]*` after punctuation and `\s*[\r\n]+` end at it (the next
// character is not a line break); GPT-2's `\s+(?!\S)` and `\s+` both take the lone newline; and
// the optional one-character prefix of a letter run (` ?\p{L}+`, `[^\r\n\p{L}\p{N}]?\p{L}+`) is
// never a newline. Space rule: the letter run on the left stops at the space, and ` ?\p{L}+` /
// `[^\r\n\p{L}\p{N}]?\p{L}+` take the space with the word on both sides. Matching of the left side
// is unchanged because every piece before b ends at or before b and none of them looks past it.
// Added (special) tokens of halo's models (`<|…|>`) contain no space or newline. A tokenizer that
// adds a prefix to a text (Prepend normalizer, add_prefix_space, Metaspace) would change the right
// side; the probe below detects that, and such a tokenizer is encoded in one piece.
function isBoundary(text: string, b: number): boolean {
  const at = text.charCodeAt(b);
  if (at === 32) {
    const before = text[b - 1];
    const after = text[b + 1];
    return before !== undefined && after !== undefined && /^\p{L}$/u.test(before) && /^\p{L}$/u.test(after);
  }
  if (text.charCodeAt(b - 1) !== 10) return false;
  const previous = text[b - 2];
  const next = text[b];
  return previous !== undefined && next !== undefined && !/\s/.test(previous) && /^[\p{L}\p{N}]$/u.test(next);
}

const PROBES = [
  "Hello.\nWorld",
  "a\nb",
  "x!\n1",
  "one two",
  "It's fine\nthen",
  "<|eot_id|>\nuser",
  "é\nÉ",
  "  1\n22",
  "def f():\n    return 1\nprint",
  "word word",
];

type EncodeOptions = { readonly addSpecialTokens?: boolean; readonly allowSpecial?: boolean };

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

function canSplit(engine: Engine): boolean {
  let known = splitSafe.get(engine);
  if (known === undefined) {
    known = PROBES.every((probe) => {
      for (let b = probe.length - 1; b > 0; b--) {
        if (!isBoundary(probe, b)) continue;
        for (const allowSpecial of [false, true]) {
          const options = { addSpecialTokens: false, allowSpecial };
          const whole = engine.tokenize(probe, options);
          const split = [...engine.tokenize(probe.slice(0, b), options), ...engine.tokenize(probe.slice(b), options)];
          if (!sameIds(whole, split)) return false;
        }
      }
      return true;
    });
    splitSafe.set(engine, known);
  }
  return known;
}

/** Prefix and suffix ids `options` add around any text (BOS, a post-processor's EOS), or null when they cannot be told apart. */
function specialWrap(engine: Engine, options: EncodeOptions): { prefix: number[]; suffix: number[] } | null {
  if (options.addSpecialTokens === false) return { prefix: [], suffix: [] };
  const inner = engine.tokenize("x", { ...options, addSpecialTokens: false });
  const outer = engine.tokenize("x", options);
  const extra = outer.length - inner.length;
  let found: { prefix: number[]; suffix: number[] } | null = null;
  for (let at = 0; at <= extra; at++) {
    if (!sameIds(outer.slice(at, at + inner.length), inner)) continue;
    if (found !== null) return null;
    found = { prefix: outer.slice(0, at), suffix: outer.slice(at + inner.length) };
  }
  return found;
}

/**
 * `engine.tokenize(text, options)`, the same ids, without holding the event loop for long: text
 * over {@link SLICE_CHARS} is cut at slice boundaries (see the note on `isBoundary`) and each
 * slice encoded in its own event-loop turn. A tokenizer that fails the boundary probe, or text
 * with no boundary, is encoded in one piece (its length is already bounded by
 * {@link checkPromptBytes}). With `stopAt`, stops after the slice that reaches `stopAt` ids and
 * returns the ids so far (a prefix of the full encoding, which has at least that many).
 * @internal
 */
export async function tokenizeInSlices(engine: Engine, text: string, options: EncodeOptions = {}, stopAt = Infinity): Promise<number[]> {
  if (text.length <= SLICE_CHARS || !canSplit(engine)) return engine.tokenize(text, options);
  const wrap = specialWrap(engine, options);
  if (wrap === null) return engine.tokenize(text, options);
  const inner = { ...options, addSpecialTokens: false };
  const out = [...wrap.prefix];
  let start = 0;
  while (start < text.length) {
    let end = text.length;
    if (text.length - start > SLICE_CHARS) {
      end = start + SLICE_CHARS;
      while (end < text.length && !isBoundary(text, end)) end++;
    }
    const ids = engine.tokenize(text.slice(start, end), inner);
    for (const id of ids) out.push(id);
    if (out.length >= stopAt) return out;
    start = end;
    if (start < text.length) await yieldToLoop();
  }
  for (const id of wrap.suffix) out.push(id);
  return out;
}

/** The most tokens `/tokenize` with `with_pieces` answers for (each id becomes an object with its text). */
export const MAX_PIECES = 16_384;

/** Ids per synchronous step of {@link detokenizeInSlices} and {@link piecesInSlices}. */
const DECODE_SLICE_IDS = 16_384;

/**
 * `engine.detokenize(ids)`, the same text, decoded {@link DECODE_SLICE_IDS} ids per event-loop
 * turn through the tokenizer's stream decoder (which holds back a character split across slices).
 * @internal
 */
export async function detokenizeInSlices(engine: Engine, ids: readonly number[]): Promise<string> {
  if (ids.length <= DECODE_SLICE_IDS || engine.tokenizer === null) return engine.detokenize(ids);
  const decoder = engine.tokenizer.createStreamDecoder();
  let text = "";
  for (let start = 0; start < ids.length; start += DECODE_SLICE_IDS) {
    if (start > 0) await yieldToLoop();
    text += decoder.push(ids.slice(start, start + DECODE_SLICE_IDS));
  }
  return text + decoder.flush();
}

/**
 * Each id with its own text (`/tokenize` `with_pieces`), {@link DECODE_SLICE_IDS} per event-loop
 * turn. Callers cap `ids` at {@link MAX_PIECES}.
 * @internal
 */
export async function piecesInSlices(engine: Engine, ids: readonly number[]): Promise<{ id: number; piece: string }[]> {
  const pieces: { id: number; piece: string }[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i > 0 && i % DECODE_SLICE_IDS === 0) await yieldToLoop();
    pieces.push({ id: ids[i]!, piece: engine.detokenize([ids[i]!]) });
  }
  return pieces;
}

/**
 * `engine.encodeChat(messages)`: the prompt ids `Engine.chat` feeds the model (rendered with the
 * engine's template, BOS per the tokenizer), with what a server adds around it. First a byte bound:
 * a prompt whose bytes cannot fit is refused (`SERVER_CONTEXT_OVERFLOW`) before it is tokenized —
 * and, with a built-in template (`rendersEveryMessage`: every message's trimmed content appears in
 * the rendered text), before it is rendered, from the messages' content bytes alone (rendering tens
 * of thousands of messages holds the event loop). Then, for a rendered text over
 * {@link SLICE_CHARS}, responsiveness: `engine.encodeRenderedChat` with the encoding done by
 * {@link tokenizeInSlices}, which gives the same ids. The text is rendered once: shorter texts go
 * through `engine.encodeRenderedChat(text)`, which is what `engine.encodeChat` does after rendering.
 * @internal
 */
export async function encodeChatPromptAsync(engine: Engine, messages: readonly ChatMessage[]): Promise<number[]> {
  if (rendersEveryMessage(engine.chatTemplate.source)) {
    let contentBytes = 0;
    for (const message of messages) contentBytes += Buffer.byteLength(message.content.trim());
    await checkPromptBytes(engine, contentBytes, "messages");
  }
  // Rendered once: the text is measured, then encoded as encodeChat encodes it (Engine.encodeRenderedChat).
  const text = engine.renderChat(messages);
  await checkPromptBytes(engine, Buffer.byteLength(text), "messages");
  if (text.length <= SLICE_CHARS) return engine.encodeRenderedChat(text);
  // Encoded whole (in slices): the chat context policy measures candidates by their token count.
  return engine.encodeRenderedChat(text, (rendered, options) => tokenizeInSlices(engine, rendered, options));
}

/**
 * Prompt ids of a text completion prompt (BOS per the tokenizer), refused (`SERVER_CONTEXT_OVERFLOW`)
 * from its bytes before tokenizing, or as soon as its slices reach the context; tokenized in slices.
 * @internal
 */
export async function encodeTextPromptAsync(engine: Engine, prompt: string): Promise<number[]> {
  await checkPromptBytes(engine, Buffer.byteLength(prompt), "prompt");
  const ids = await tokenizeInSlices(engine, prompt, {}, engine.contextLength);
  if (ids.length >= engine.contextLength) throw overflow(engine, "prompt", `at least ${ids.length} tokens`);
  return ids;
}
