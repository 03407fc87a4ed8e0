// Writes the token ids `halo ppl` scores for a text (the engine's tokenize: BOS first, then the text) as little-endian
// uint16, so train.py's perplexity runs on exactly the ids halo runs on. Usage: heldout-ids.mjs <snapshot dir> <text> <out.u16>
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "../../tokenizer/dist/index.js";

const [snapshot, textPath, outPath] = process.argv.slice(2);
if (outPath === undefined) {
  console.error("usage: node packages/model-tiny/train/heldout-ids.mjs <hf snapshot dir> <text file> <out.u16>");
  process.exit(2);
}
const tokenizer = Tokenizer.fromJson(readFileSync(join(snapshot, "tokenizer.json"), "utf8"), readFileSync(join(snapshot, "tokenizer_config.json"), "utf8"));
const ids = tokenizer.encode(readFileSync(textPath, "utf8"));
if (ids.some((id) => id > 0xffff)) throw new Error("a token id does not fit uint16");
writeFileSync(outPath, new Uint8Array(Uint16Array.from(ids).buffer));
console.log(JSON.stringify({ tokens: ids.length, first: ids.slice(0, 4), out: outPath }));
