// A tiny byte-level BPE trainer so synthetic models carry a real, working Llama-3-style tokenizer.json.

/** GPT-2 byte-to-unicode map: printable bytes map to themselves, the rest to U+0100.. in order. */
export function byteToUnicode(): string[] {
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = printable ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return out;
}

/** The Llama-3 pre-tokenizer split pattern (as in its tokenizer.json). */
export const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const TRAINING_TEXT = `The quick brown fox jumps over the lazy dog. A ternary model stores every weight as minus one,
zero or plus one, and scales each matrix by one number. The engine reads the weights once, quantises the
activations to eight bits for every token, and streams the answer back to the user. Hello world! What is the
capital of France? The capital of France is Paris. Numbers like 12345 and 2026 are split into groups of three.
function add(a, b) { return a + b; } // code is text too
Language models predict the next token from the tokens before it, one step at a time, and the server sends
each new piece of text as soon as it is ready.`;

/**
 * Trains `numMerges` byte-level BPE merges on a fixed English sample, splitting words the way the
 * Llama-3 pre-tokenizer does. Returns merges as `"a b"` strings over byte-mapped symbols, in rank
 * order. Deterministic.
 */
export function trainByteLevelBpe(numMerges: number): string[] {
  const map = byteToUnicode();
  const splitter = new RegExp(LLAMA3_SPLIT_PATTERN.replace("(?i:", "(?:"), "gu");
  const words = new Map<string, number>();
  for (const match of TRAINING_TEXT.matchAll(splitter)) {
    const piece = [...Buffer.from(match[0], "utf8")].map((b) => map[b]!).join("\u0000");
    words.set(piece, (words.get(piece) ?? 0) + 1);
  }
  let corpus = [...words.entries()].map(([w, n]) => ({ symbols: w.split("\u0000"), count: n }));
  const merges: string[] = [];
  const known = new Set<string>(map);
  while (merges.length < numMerges) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of corpus) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && best !== null && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === null) break;
    const [a, b] = best.split(" ") as [string, string];
    const merged = a + b;
    if (known.has(merged)) {
      // Already a token (a different split reached it): still a valid merge rule.
    }
    known.add(merged);
    merges.push(best);
    corpus = corpus.map(({ symbols, count }) => {
      const out: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(symbols[i]!);
      }
      return { symbols: out, count };
    });
  }
  return merges;
}
