// Incremental detokenizer: never emits half a UTF-8 character, finds stop strings across token boundaries.
import { HaloError } from "@halo/errors";
import { TokenizerErrorCode } from "./errors.js";

/** Options of {@link StreamDecoder}. */
export interface StreamDecoderOptions {
  /** Generation stops at the first of these; the stop string itself is never emitted. Default none. */
  readonly stopStrings?: readonly string[];
  /** Drop special tokens (BOS, `<|eot_id|>`) from the text. Default false. */
  readonly skipSpecialTokens?: boolean;
}

/**
 * Turns a stream of token ids into text pieces that are safe to show:
 *
 * - bytes of a character split across tokens are held until the character is complete
 *   (invalid bytes become U+FFFD exactly as {@link Tokenizer.decode} would make them), so the
 *   concatenation of everything emitted equals `decode(allIds)` up to the stop string;
 * - text that could be the start of a stop string is held back until it is known not to be;
 * - when a stop string completes, the text before it is emitted and {@link stopped} turns true.
 *
 * Created by `tokenizer.createStreamDecoder()`.
 *
 * @example
 * ```ts
 * const stream = tokenizer.createStreamDecoder({ stopStrings: ["\nUser:"] });
 * for (const id of generatedIds) {
 *   process.stdout.write(stream.push(id));
 *   if (stream.stopped) break;
 * }
 * process.stdout.write(stream.flush());
 * ```
 */
export class StreamDecoder {
  private readonly utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
  private readonly stopStrings: readonly string[];
  private held = "";
  private emittedText = "";
  private stopAt: string | null = null;
  private finished = false;

  /** @internal */
  constructor(
    private readonly bytesOf: (id: number) => Uint8Array | null,
    options: StreamDecoderOptions = {},
  ) {
    const stops = options.stopStrings ?? [];
    for (const stop of stops) {
      if (typeof stop !== "string" || stop.length === 0) {
        throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_ARGUMENT, "stop strings must be non-empty strings", {
          field: "stopStrings",
          actual: stop,
        });
      }
    }
    this.stopStrings = stops;
  }

  /** True once a stop string was found; later pushes emit nothing. */
  get stopped(): boolean {
    return this.stopAt !== null;
  }

  /** The stop string that ended the stream, or null. */
  get stopString(): string | null {
    return this.stopAt;
  }

  /** Everything emitted so far. */
  get text(): string {
    return this.emittedText;
  }

  /** Feeds one id or several; returns the text that became safe to show (possibly ""). */
  push(ids: number | readonly number[]): string {
    if (this.stopAt !== null || this.finished) return "";
    let text = "";
    if (typeof ids === "number") {
      const bytes = this.bytesOf(ids);
      if (bytes !== null) text = this.utf8.decode(bytes, { stream: true });
    } else {
      for (const id of ids) {
        const bytes = this.bytesOf(id);
        if (bytes !== null) text += this.utf8.decode(bytes, { stream: true });
      }
    }
    return this.release(this.held + text, false);
  }

  /** Ends the stream: emits held text (an incomplete final character becomes U+FFFD). */
  flush(): string {
    if (this.stopAt !== null || this.finished) return "";
    this.finished = true;
    return this.release(this.held + this.utf8.decode(), true);
  }

  private release(pending: string, final: boolean): string {
    let cut = -1;
    let found: string | null = null;
    for (const stop of this.stopStrings) {
      const at = pending.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        found = stop;
      }
    }
    let out: string;
    if (found !== null) {
      out = pending.slice(0, cut);
      this.held = "";
      this.stopAt = found;
    } else if (final) {
      out = pending;
      this.held = "";
    } else {
      const keep = this.partialStopLength(pending);
      out = pending.slice(0, pending.length - keep);
      this.held = pending.slice(pending.length - keep);
    }
    this.emittedText += out;
    return out;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
  private partialStopLength(text: string): number {
    let best = 0;
    for (const stop of this.stopStrings) {
      for (let n = Math.min(stop.length - 1, text.length); n > best; n--) {
        if (text.endsWith(stop.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
