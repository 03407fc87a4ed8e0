// Post-processors of tokenizer.json reduced to what they do to a single sequence of ids: ids before and after it.
import { HaloError } from "@halo/errors";
import { TokenizerErrorCode } from "./errors.js";

/** Ids added around a single sequence when `addSpecialTokens` is on. */
export interface SpecialWrap {
  readonly prefix: readonly number[];
  readonly suffix: readonly number[];
}

/** No ids added. */
export const NO_WRAP: SpecialWrap = { prefix: [], suffix: [] };

type Json = Record<string, unknown>;

function bad(path: string, summary: string, actual: unknown): HaloError {
  return new HaloError(TokenizerErrorCode.TOKENIZER_BAD_FIELD, summary, { field: path, actual });
}

function pairId(value: unknown, path: string): number {
  if (Array.isArray(value) && typeof value[1] === "number") return value[1];
  throw bad(path, "post-processor special token is not a [token, id] pair", value);
}

/**
 * Reads the `post_processor` node: TemplateProcessing (its `single` template), Bert/Roberta
 * processing, ByteLevel (adds nothing) and Sequence of these.
 */
export function postProcessorFromJson(node: unknown, path = "post_processor"): SpecialWrap {
  if (node === null || node === undefined) return NO_WRAP;
  if (typeof node !== "object" || Array.isArray(node)) throw bad(path, "post-processor is not an object", node);
  const json = node as Json;
  switch (json["type"]) {
    case "ByteLevel":
      return NO_WRAP;
    case "Sequence": {
      const list = json["processors"];
      if (!Array.isArray(list)) throw bad(`${path}.processors`, "Sequence post-processor has no list", list);
      const prefix: number[] = [];
      const suffix: number[] = [];
      list.forEach((p, i) => {
        const wrap = postProcessorFromJson(p, `${path}.processors[${i}]`);
        prefix.unshift(...wrap.prefix);
        suffix.push(...wrap.suffix);
      });
      return { prefix, suffix };
    }
    case "BertProcessing":
    case "RobertaProcessing":
      return { prefix: [pairId(json["cls"], `${path}.cls`)], suffix: [pairId(json["sep"], `${path}.sep`)] };
    case "TemplateProcessing": {
      const single = json["single"];
      const specials = (json["special_tokens"] ?? {}) as Record<string, { ids?: unknown }>;
      if (!Array.isArray(single)) throw bad(`${path}.single`, "TemplateProcessing has no single template", single);
      const prefix: number[] = [];
      const suffix: number[] = [];
      let seen = false;
      single.forEach((item: Json, i) => {
        const where = `${path}.single[${i}]`;
        if (item && typeof item === "object" && "Sequence" in item) {
          seen = true;
          return;
        }
        const name = (item?.["SpecialToken"] as Json | undefined)?.["id"];
        if (typeof name !== "string") throw bad(where, "template item is neither SpecialToken nor Sequence", item);
        const ids = specials[name]?.ids;
        if (!Array.isArray(ids) || !ids.every((id) => Number.isInteger(id))) {
          throw bad(`${path}.special_tokens.${name}`, "template names a special token without ids", specials[name] ?? "nothing");
        }
        (seen ? suffix : prefix).push(...(ids as number[]));
      });
      return { prefix, suffix };
    }
    default:
      throw new HaloError(TokenizerErrorCode.TOKENIZER_UNSUPPORTED, `post-processor type ${String(json["type"])} is not implemented`, {
        field: `${path}.type`,
        expected: "TemplateProcessing | ByteLevel | Sequence | BertProcessing | RobertaProcessing",
        actual: json["type"],
      });
  }
}
