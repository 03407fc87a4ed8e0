// Deterministic, varied test corpus for tokenizer parity: scripts, emoji, code, digits, whitespace, specials, surrogates.

/** A small seeded PRNG (mulberry32) so the corpus is identical on every run. */
export class CorpusRng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const ENGLISH = (
  "the quick brown fox jumps over lazy dog model weights ternary token engine server stream answer " +
  "hello world what is capital of France Paris numbers groups three language predict next step time " +
  "I you we they it's don't can't won't shouldn't I'm you're we've they'll she'd HELLO World IT'S DON'T"
).split(" ");
const SCRIPTS = [
  "日本語のテキストを分割します。東京は日本の首都です。",
  "中文分词测试：我们今天去北京。机器学习很有趣！",
  "한국어 문장입니다. 서울은 대한민국의 수도입니다.",
  "Русский текст: Привет, мир! Как дела? Ёжик в тумане.",
  "Ελληνικά: Καλημέρα κόσμε, τι κάνεις;",
  "العربية: مرحبا بالعالم، كيف حالك؟ ١٢٣٤٥٦٧٨٩٠",
  "עברית: שלום עולם, מה שלומך?",
  "हिन्दी: नमस्ते दुनिया, आप कैसे हैं? १२३४",
  "ไทย: สวัสดีชาวโลก คุณสบายดีไหม",
  "Tiếng Việt: Xin chào thế giới, bạn khỏe không?",
  "Deutsch: Größe, Straße, Übermäßig, ẞ GROSS",
  "Français: à l'école, où est l'hôtel? Ça va très bien.",
  "Español: ¿Qué tal? ¡Mañana será otro día!",
  "Türkçe: İstanbul ışık ğüşöç İI ıi",
  "Polski: Zażółć gęślą jaźń",
  "ქართული ენა, Հայերեն լեզու, አማርኛ ቋንቋ",
  "ᚠᚢᚦᚨᚱᚲ 𐌰𐌱𐌲 𝕳𝖊𝖑𝖑𝖔 𝒜𝒷𝒸 ℌℑℜ",
  "Combining: e\u0301 a\u0308 n\u0303 Z\u0335\u0321a\u0336\u0322l\u0334\u0327g\u0337o\u0338",
  "Kelvin \u212a long s \u017f ligatures \ufb00 \ufb01 \ufb05 x'\u017f x'\u212a",
];
const EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸🇬🇧", "❤️", "🧑🏿‍🚀", "👩‍❤️‍💋‍👨", "🫠", "🦀", "1️⃣", "#️⃣", "©️", "™", "☕", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👁‍🗨", "🐻‍❄️", "🤷‍♀️"];
const CODE = [
  "function add(a, b) {\n  return a + b;\n}\n",
  "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
  'fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!("{:?}", v);\n}\n',
  '{"key": [1, 2.5e-3, true, null], "nested": {"a": "b\\n"}}',
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
  '#include <stdio.h>\nint main(void){printf("%d\\n", 42);return 0;}\n',
  '<div class="x">&amp; &lt;tag&gt; <br/></div>',
  "x += 1; y -= 2; z *= 3; w /= 4; a **= 2; b //= 3; c ||= d ?? e;",
  "\tif (x) {\r\n\t\treturn;\r\n\t}\r\n",
  "const re = /^[a-z]+\\d{2,3}$/giu; // regex ${template} `backtick`",
];
const SPECIALS = [
  "<|begin_of_text|>",
  "<|end_of_text|>",
  "<|eot_id|>",
  "<|start_header_id|>",
  "<|end_header_id|>",
  "<|reserved_special_token_0|>",
  "<|reserved_special_token_250|>",
  "<|python_tag|>",
  "<|eom_id|>",
  "<|eot_id",
  "<|",
  "|>",
  "<|not_a_token|>",
  "<|EOT_ID|>",
  "<|<|eot_id|>|>",
];
const SPACES = [" ", "  ", "\t", "\n", "\r\n", "\n\n", "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\v", "\f", "\u200b", "\u2003", "\ufeff", "\r"];
const PUNCT = [
  ".",
  ",",
  "!",
  "?",
  ";",
  ":",
  "...",
  "—",
  "–",
  "'",
  '"',
  "(",
  ")",
  "[",
  "]",
  "«",
  "»",
  "„",
  "“",
  "”",
  "‘",
  "’",
  "'s",
  "'S",
  "'ll",
  "'LL",
  "'re",
  "'Ve",
  "'d",
  "'M",
  "'t",
];
const NUMBERS = ["0", "7", "42", "123", "1234", "12345", "3.14159", "1,000,000", "٣٤٥", "०१२", "１２３", "²³", "½", "Ⅻ", "1e10", "0x1F", "-17", "2026-11-23"];

function randomCodePoint(rng: CorpusRng): string {
  const r = rng.next();
  let cp: number;
  if (r < 0.3) cp = 0x20 + rng.int(0x60);
  else if (r < 0.5) cp = 0xa0 + rng.int(0x2000);
  else if (r < 0.75) cp = rng.int(0xd800);
  else if (r < 0.85) cp = 0xe000 + rng.int(0x2000);
  else if (r < 0.92) cp = 0x1f300 + rng.int(0x700);
  else cp = 0x10000 + rng.int(0x20000);
  return String.fromCodePoint(cp);
}

function englishSentence(rng: CorpusRng): string {
  const n = 3 + rng.int(15);
  let out = "";
  for (let i = 0; i < n; i++) {
    const word = rng.pick(ENGLISH);
    out += (i === 0 ? "" : rng.next() < 0.1 ? rng.pick(SPACES) : " ") + (rng.next() < 0.1 ? word.toUpperCase() : word);
    if (rng.next() < 0.15) out += rng.pick(PUNCT);
  }
  return out;
}

const GENERATORS: ReadonlyArray<(rng: CorpusRng) => string> = [
  englishSentence,
  (rng) => rng.pick(SCRIPTS).slice(rng.int(8)),
  (rng) => Array.from({ length: 1 + rng.int(6) }, () => rng.pick(EMOJI) + (rng.next() < 0.5 ? " " : "")).join(""),
  (rng) => rng.pick(CODE),
  (rng) => Array.from({ length: 1 + rng.int(120) }, () => String(rng.int(10))).join(""),
  (rng) => rng.pick(NUMBERS) + rng.pick([" ", "", "-", "."]) + rng.pick(NUMBERS),
  (rng) => Array.from({ length: 1 + rng.int(12) }, () => rng.pick(SPACES)).join("") + (rng.next() < 0.5 ? englishSentence(rng) : ""),
  (rng) => englishSentence(rng) + rng.pick(SPECIALS) + (rng.next() < 0.5 ? "\n\n" : "") + englishSentence(rng),
  (rng) => rng.pick(["a", "x", "é", "字", "ab", "😀", "-", " ", "1"]).repeat(50 + rng.int(1500)),
  (rng) => Array.from({ length: 40 + rng.int(400) }, () => String.fromCharCode(97 + rng.int(26))).join(""),
  (rng) => {
    const s = englishSentence(rng);
    const at = rng.int(s.length + 1);
    const lone = String.fromCharCode(0xd800 + rng.int(0x800));
    return s.slice(0, at) + lone + s.slice(at);
  },
  (rng) => Array.from({ length: 1 + rng.int(40) }, () => randomCodePoint(rng)).join(""),
  (rng) => String.fromCharCode(rng.int(0x20)) + englishSentence(rng) + String.fromCharCode(0x7f + rng.int(0x21)),
  (rng) => Array.from({ length: 2 + rng.int(5) }, () => rng.pick(GENERATORS)(rng)).join(rng.pick(["", " ", "\n"])),
];

/**
 * `count` strings, deterministic for a seed: English with contractions and case, 19 scripts,
 * emoji and ZWJ sequences, code, digit runs up to 120 digits, whitespace runs of 17 kinds,
 * special-token strings, words of up to 1,550 repeats, lone surrogates, random code points,
 * control characters, and mixtures of all of these.
 */
export function parityCorpus(count: number, seed = 0x5eed): string[] {
  const rng = new CorpusRng(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(GENERATORS[i % GENERATORS.length]!(rng));
  return out;
}
