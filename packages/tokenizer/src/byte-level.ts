// The GPT-2 byte-to-unicode map used by byte-level BPE (printable bytes map to themselves, the rest to U+0100..).

/** `BYTE_TO_CHAR[b]` is the one-character string byte `b` is written as in a byte-level vocabulary. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = printable ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return out;
})();

/** Char code (all are < 0x144) → byte, or -1 for characters outside the map. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const out = new Int16Array(0x200).fill(-1);
  BYTE_TO_CHAR.forEach((ch, b) => {
    out[ch.charCodeAt(0)] = b;
  });
  return out;
})();

/**
 * Bytes a byte-level token stands for, the way Hugging Face's ByteLevel decoder reads it: every
 * character mapped back to its byte, or — when any character is outside the map (added tokens
 * such as `<|eot_id|>` are plain text) — the token's own UTF-8 bytes.
 */
export function byteLevelTokenBytes(token: string): Uint8Array {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const code = token.charCodeAt(i);
    const byte = code < 0x200 ? CHAR_TO_BYTE[code]! : -1;
    if (byte < 0) return utf8(token);
    out[i] = byte;
  }
  return out;
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string (lone surrogates become U+FFFD). */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The byte-mapped form of a string: its UTF-8 bytes, each written as {@link BYTE_TO_CHAR}. */
export function toByteLevel(text: string): string {
  const bytes = encoder.encode(text);
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_CHAR[bytes[i]!]!;
  return out;
}
