// Trains halo-tiny's byte-level BPE tokenizer (Llama-3 pre-tokenizer, 4096 ids) on work/train.txt,
// writes work/tokenizer.json + work/tokenizer_config.json, and encodes the corpus with halo's own
// tokenizer into work/train.u16 and work/heldout.u16 (little-endian uint16 ids; each document is
// <|begin_of_text|> tokens <|end_of_text|>).
//
// Run from the repository root after corpus.mjs: node packages/model-tiny/train/tokenizer.mjs
// Deterministic: merges are chosen by count, ties by the lexicographically smaller "a b" string.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { endianness } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  BITNET_CHAT_TEMPLATE,
  SYNTH_SPECIAL_TOKENS,
  byteToUnicode,
  llama3TokenizerJson,
  synthAddedTokens,
  synthSpecialIds,
} from "../../h1b-format/dist/index.js";
import { LLAMA3_SPLIT_PATTERN, Tokenizer, onigToJsRegExp } from "../../tokenizer/dist/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const WORK = join(HERE, "work");

/** Total vocabulary: 256 byte tokens + merges + the six special tokens at the top. */
const VOCAB_SIZE = 4096;
/** Longest context the tokenizer config advertises (the model's maxPositionEmbeddings). */
const MODEL_MAX_LENGTH = 1024;
/** Document separator written by corpus.mjs. */
const DOC_SEPARATOR = "\n\f\n";
/** Paragraphs checked for decode(encode(x)) === x, and against Hugging Face tokenizers. */
const ROUND_TRIP_SAMPLES = 200;
const HF_SAMPLES = 50;
/** Pair keys pack two ids below this bound. */
const KEY_BASE = 1 << 16;

function fail(message) {
  console.error(`tokenizer: ${message}`);
  process.exit(1);
}

function readDocs(name) {
  let text;
  try {
    text = readFileSync(join(WORK, name), "utf8");
  } catch {
    fail(`work/${name} not found: run node packages/model-tiny/train/corpus.mjs first`);
  }
  if (text.endsWith("\n")) text = text.slice(0, -1);
  return text.split(DOC_SEPARATOR).filter((d) => d !== "");
}

/** Splits text around special-token strings, calling `onText` for each plain stretch. */
function plainStretches(text, onText) {
  let rest = text;
  for (;;) {
    let at = -1;
    let len = 0;
    for (const s of SYNTH_SPECIAL_TOKENS) {
      const k = rest.indexOf(s);
      if (k >= 0 && (at < 0 || k < at)) {
        at = k;
        len = s.length;
      }
    }
    if (at < 0) {
      if (rest !== "") onText(rest);
      return;
    }
    if (at > 0) onText(rest.slice(0, at));
    rest = rest.slice(at + len);
  }
}

/**
 * Byte-level BPE training with incremental pair counts. Returns `{ tokens, merges }`: tokens[id] is
 * the byte-mapped surface (ids 0..255 the bytes in byteToUnicode order), merges the "a b" rules in
 * rank order, until `regularSize` distinct tokens exist.
 */
export function trainBpe(docs, regularSize) {
  const splitter = onigToJsRegExp(LLAMA3_SPLIT_PATTERN);
  const wordCounts = new Map();
  for (const doc of docs) {
    plainStretches(doc, (stretch) => {
      for (const m of stretch.matchAll(splitter)) wordCounts.set(m[0], (wordCounts.get(m[0]) ?? 0) + 1);
    });
  }
  const tokens = byteToUnicode();
  const tokenId = new Map(tokens.map((t, i) => [t, i]));
  const words = [];
  const counts = [];
  for (const [word, count] of [...wordCounts.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))) {
    words.push(Array.from(Buffer.from(word, "utf8")));
    counts.push(count);
  }
  const pairCount = new Map();
  const pairWords = new Map();
  const addPairs = (w, sign) => {
    const s = words[w];
    const c = counts[w] * sign;
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * KEY_BASE + s[i + 1];
      const n = (pairCount.get(key) ?? 0) + c;
      if (n === 0) pairCount.delete(key);
      else pairCount.set(key, n);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (set === undefined) pairWords.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);
  const merges = [];
  const pairString = (key) => `${tokens[Math.floor(key / KEY_BASE)]} ${tokens[key % KEY_BASE]}`;
  while (tokens.length < regularSize) {
    let best = -1;
    let bestCount = 0;
    let bestString = "";
    for (const [key, count] of pairCount) {
      if (count > bestCount) {
        best = key;
        bestCount = count;
        bestString = "";
      } else if (count === bestCount) {
        if (bestString === "") bestString = pairString(best);
        const s = pairString(key);
        if (s < bestString) {
          best = key;
          bestString = s;
        }
      }
    }
    if (best < 0) fail(`the corpus ran out of pairs after ${merges.length} merges (${tokens.length} tokens, need ${regularSize})`);
    const a = Math.floor(best / KEY_BASE);
    const b = best % KEY_BASE;
    const merged = tokens[a] + tokens[b];
    let c = tokenId.get(merged);
    if (c === undefined) {
      c = tokens.length;
      tokens.push(merged);
      tokenId.set(merged, c);
    }
    merges.push(`${tokens[a]} ${tokens[b]}`);
    const affected = [...pairWords.get(best)].sort((x, y) => x - y);
    pairWords.delete(best);
    for (const w of affected) {
      const s = words[w];
      let found = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) found = true;
      if (!found) continue;
      addPairs(w, -1);
      const out = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(c);
          i++;
        } else out.push(s[i]);
      }
      words[w] = out;
      addPairs(w, 1);
    }
    pairCount.delete(best);
  }
  return { tokens, merges, distinctWords: words.length };
}

/** tokenizer.json for the trained vocabulary: @halo/h1b-format's Llama-3 layout, specials at their synthSpecialIds. */
function tokenizerJson(tokens, merges) {
  const vocab = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const added = synthAddedTokens(VOCAB_SIZE);
  for (const token of added) vocab[token.content] = token.id;
  return llama3TokenizerJson({ added, vocab, merges, bos: { content: added[0].content, id: added[0].id } });
}

/** Deterministic PRNG (mulberry32) for picking verification samples. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A chat sample: the prompt exactly as BITNET_CHAT_TEMPLATE renders it, then the answer. */
const CHAT_SAMPLE = /^(User: [^]*?<\|eot_id\|>Assistant: )([^]*)$/;

/**
 * Encodes documents as <|begin_of_text|> tokens <|end_of_text|>. A chat sample's prompt and answer
 * are encoded separately, so its tokens are the ones inference sees: the rendered prompt ends in a
 * lone " " token after "Assistant:", and the model then generates the answer's first word.
 */
function encodeDocs(tokenizer, docs, bos, endOfText) {
  const ids = [];
  const options = { addSpecialTokens: false, allowSpecial: true };
  for (const doc of docs) {
    ids.push(bos);
    const chat = CHAT_SAMPLE.exec(doc);
    const parts = chat === null ? [doc] : [chat[1], chat[2]];
    const docIds = parts.flatMap((part) => tokenizer.encode(part, options));
    if (tokenizer.decode(docIds) !== doc) fail(`decode(encode(document)) changed the document starting ${JSON.stringify(doc.slice(0, 80))}`);
    for (const id of docIds) ids.push(id);
    ids.push(endOfText);
  }
  const out = new Uint16Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= VOCAB_SIZE) fail(`token id ${ids[i]} at ${i} is outside 0..${VOCAB_SIZE - 1}`);
    out[i] = ids[i];
  }
  return out;
}

async function main() {
  if (endianness() !== "LE") fail("the .u16 files are written little-endian from a Uint16Array; this machine is big-endian");
  const t0 = Date.now();
  const train = readDocs("train.txt");
  const heldout = readDocs("heldout.txt");
  const regularSize = VOCAB_SIZE - SYNTH_SPECIAL_TOKENS.length;
  const { tokens, merges, distinctWords } = trainBpe(train, regularSize);
  const t1 = Date.now();
  const json = JSON.stringify(tokenizerJson(tokens, merges));
  const config = {
    bos_token: "<|begin_of_text|>",
    eos_token: "<|eot_id|>",
    add_bos_token: true,
    chat_template: BITNET_CHAT_TEMPLATE,
    model_max_length: MODEL_MAX_LENGTH,
  };
  const configJson = JSON.stringify(config, null, 2) + "\n";
  writeFileSync(join(WORK, "tokenizer.json"), json);
  writeFileSync(join(WORK, "tokenizer_config.json"), configJson);

  const tokenizer = Tokenizer.fromJson(json, configJson);
  if (tokenizer.vocabSize !== VOCAB_SIZE) fail(`halo's tokenizer reports vocabSize ${tokenizer.vocabSize}, expected ${VOCAB_SIZE}`);
  const [bos, endOfText, , , eot] = synthSpecialIds(VOCAB_SIZE);
  if (tokenizer.tokenToId("<|begin_of_text|>") !== bos || tokenizer.tokenToId("<|eot_id|>") !== eot)
    fail("special token ids do not match synthSpecialIds(4096)");
  const trainIds = encodeDocs(tokenizer, train, bos, endOfText);
  const heldoutIds = encodeDocs(tokenizer, heldout, bos, endOfText);
  writeFileSync(join(WORK, "train.u16"), new Uint8Array(trainIds.buffer));
  writeFileSync(join(WORK, "heldout.u16"), new Uint8Array(heldoutIds.buffer));
  const t2 = Date.now();

  // Verification: round trip, special tokens, Hugging Face parity.
  const paragraphs = train.flatMap((d) => d.split("\n\n")).filter((p) => p.trim() !== "");
  const pick = rng(18);
  const samples = [];
  for (let k = 0; k < ROUND_TRIP_SAMPLES; k++) samples.push(paragraphs[Math.floor(pick() * paragraphs.length)]);
  samples.push("User: What is os.path?<|eot_id|>Assistant: A module.<|eot_id|>");
  for (const s of samples) {
    const ids = tokenizer.encode(s, { addSpecialTokens: false, allowSpecial: true });
    const back = tokenizer.decode(ids);
    if (back !== s) fail(`round trip changed a paragraph: ${JSON.stringify(s.slice(0, 80))} -> ${JSON.stringify(back.slice(0, 80))}`);
  }
  const chat = tokenizer.encode("Hi<|eot_id|>", { addSpecialTokens: false, allowSpecial: true });
  if (chat[chat.length - 1] !== eot) fail(`<|eot_id|> did not encode as the special id ${eot}: ${chat.join(",")}`);
  const chatDocs = train.filter((d) => d.startsWith("User: ")).length;
  const eotCount = trainIds.reduce((n, id) => n + (id === eot ? 1 : 0), 0);
  if (eotCount !== 2 * chatDocs) fail(`train.u16 holds ${eotCount} <|eot_id|> ids, expected ${2 * chatDocs} (two per chat sample)`);
  let hf = "not installed (node_modules/tokenizers)";
  let hfTokenizers;
  try {
    hfTokenizers = createRequire(import.meta.url)("tokenizers");
  } catch {
    hfTokenizers = null;
  }
  if (hfTokenizers !== null) {
    const reference = hfTokenizers.Tokenizer.fromString(json);
    for (let k = 0; k < HF_SAMPLES; k++) {
      const s = samples[k];
      const expected = (await reference.encode(s, null, { addSpecialTokens: false })).getIds();
      const actual = tokenizer.encode(s, { addSpecialTokens: false, allowSpecial: true });
      if (expected.length !== actual.length || expected.some((id, i) => id !== actual[i])) {
        fail(`halo and Hugging Face tokenizers disagree on ${JSON.stringify(s.slice(0, 80))}`);
      }
    }
    const chatSample = samples[samples.length - 1];
    const expected = (await reference.encode(chatSample, null, { addSpecialTokens: true })).getIds();
    const actual = tokenizer.encode(chatSample, { allowSpecial: true });
    if (expected.join(",") !== actual.join(",")) fail(`halo and Hugging Face disagree on the chat sample: ${expected} vs ${actual}`);
    hf = `identical ids on ${HF_SAMPLES} paragraphs + 1 chat sample (tokenizers npm)`;
  }
  const trainBytes = train.reduce((n, d) => n + Buffer.byteLength(d), 0);
  const heldoutBytes = heldout.reduce((n, d) => n + Buffer.byteLength(d), 0);
  const stats = {
    vocabSize: VOCAB_SIZE,
    merges: merges.length,
    duplicateMerges: merges.length - (tokens.length - 256),
    distinctWords,
    trainDocuments: train.length,
    chatDocuments: chatDocs,
    heldoutDocuments: heldout.length,
    trainTokens: trainIds.length,
    heldoutTokens: heldoutIds.length,
    trainBytesPerToken: +(trainBytes / (trainIds.length - 2 * train.length)).toFixed(3),
    heldoutBytesPerToken: +(heldoutBytes / (heldoutIds.length - 2 * heldout.length)).toFixed(3),
    roundTrip: `every document and ${samples.length} sampled paragraphs ok`,
    huggingFace: hf,
    trainSeconds: (t1 - t0) / 1000,
    encodeSeconds: (t2 - t1) / 1000,
    totalSeconds: (Date.now() - t0) / 1000,
  };
  writeFileSync(join(WORK, "tokenizer-stats.json"), JSON.stringify(stats, null, 2) + "\n");
  console.log(JSON.stringify(stats, null, 2));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
