// Normalizers of tokenizer.json (Llama-3 has none; the common simple ones are implemented).
import { HaloError } from "@halo/errors";
import { TokenizerErrorCode } from "./errors.js";
import { escapeRegExp, onigToJsRegExp } from "./onig-regex.js";

/** Rewrites a text run before pre-tokenization. */
export type NormalizeFn = (text: string) => string;

type Json = Record<string, unknown>;

/** Builds a normalizer from the `normalizer` node of tokenizer.json (null → none). */
export function normalizerFromJson(node: unknown, path = "normalizer"): NormalizeFn | null {
  if (node === null || node === undefined) return null;
  if (typeof node !== "object" || Array.isArray(node)) {
    throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "normalizer is not an object", { field: path, actual: node });
  }
  const json = node as Json;
  const type = json["type"];
  switch (type) {
    case "Sequence": {
      const list = json["normalizers"];
      if (!Array.isArray(list)) {
        throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "Sequence normalizer has no list", {
          field: `${path}.normalizers`,
          expected: "an array",
          actual: list,
        });
      }
      const parts = list.map((n, i) => normalizerFromJson(n, `${path}.normalizers[${i}]`)).filter((n): n is NormalizeFn => n !== null);
      return (text) => parts.reduce((t, f) => f(t), text);
    }
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD":
      return (text) => text.normalize(type);
    case "Lowercase":
      return (text) => text.toLowerCase();
    case "Prepend": {
      const prepend = typeof json["prepend"] === "string" ? json["prepend"] : "";
      return (text) => (text.length > 0 ? prepend + text : text);
    }
    case "Replace": {
      const pattern = json["pattern"] as Json | undefined;
      const content = typeof json["content"] === "string" ? json["content"] : "";
      let regex: RegExp;
      if (pattern && typeof pattern["String"] === "string") regex = new RegExp(escapeRegExp(pattern["String"]), "gu");
      else if (pattern && typeof pattern["Regex"] === "string") regex = onigToJsRegExp(pattern["Regex"]);
      else throw new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, "Replace normalizer has no pattern", { field: `${path}.pattern` });
      return (text) => text.replace(regex, () => content);
    }
    default:
      throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, `normalizer type ${String(type)} is not implemented`, {
        field: `${path}.type`,
        expected: "Sequence | NFC | NFD | NFKC | NFKD | Lowercase | Prepend | Replace",
        actual: type,
      });
  }
}
