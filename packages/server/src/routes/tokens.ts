// The llama-server-style token routes: POST /tokenize and POST /detokenize, in slices that never hold the event loop.
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "../errors.js";
import { writeJson } from "../http-answer.js";
import { detokenizeInSlices, MAX_PIECES, piecesInSlices, tokenizeInSlices } from "../prompt-tokens.js";
import { readJsonBody } from "../read-body.js";
import { badField, booleanField, checkKnownFields, stringField } from "../request-fields.js";
import type { ServerState } from "../server-state.js";
import type { RouteGroup } from "./route.js";

// Body fields of the token routes; anything else is refused (SERVER_UNKNOWN_FIELD).
const TOKENIZE_FIELDS: ReadonlySet<string> = new Set(["content", "add_special", "parse_special", "with_pieces"]);
const DETOKENIZE_FIELDS: ReadonlySet<string> = new Set(["tokens"]);

/**
 * `POST /tokenize` (`content`, `add_special`, `parse_special`, `with_pieces` for at most
 * `MAX_PIECES` tokens) and `POST /detokenize` (`tokens`).
 * @internal
 */
export function tokenRoutes(state: ServerState): RouteGroup {
  return {
    exact: [
      [
        "/tokenize",
        {
          name: "tokenize",
          method: "POST",
          public: false,
          needsEngine: true,
          async handle({ req, res, headers }, engine) {
            const body = await readJsonBody(req, state.settings.maxBodyBytes);
            checkKnownFields(body, TOKENIZE_FIELDS);
            const content = stringField(body, "content");
            if (content === undefined) throw badField("content", "a string", body["content"]);
            const encoding = { addSpecialTokens: booleanField(body, "add_special") ?? false, allowSpecial: booleanField(body, "parse_special") ?? true };
            const withPieces = booleanField(body, "with_pieces") === true;
            // In slices, so a few megabytes of text do not hold the event loop; with pieces, no further than the cap.
            const ids = await tokenizeInSlices(engine, content, encoding, withPieces ? MAX_PIECES + 1 : Infinity);
            if (withPieces && ids.length > MAX_PIECES) {
              throw new HaloError(ServerErrorCode.SERVER_BAD_REQUEST, `with_pieces answers for at most ${MAX_PIECES} tokens`, {
                field: "with_pieces",
                expected: `content of at most ${MAX_PIECES} tokens with with_pieces`,
                actual: `content of more than ${MAX_PIECES} tokens`,
                hint: "Leave with_pieces out for long content (the ids alone have no cap), or send the content in parts",
              });
            }
            const tokens = withPieces ? await piecesInSlices(engine, ids) : ids;
            writeJson(res, 200, { tokens }, headers);
            return { status: 200 };
          },
        },
      ],
      [
        "/detokenize",
        {
          name: "detokenize",
          method: "POST",
          public: false,
          needsEngine: true,
          async handle({ req, res, headers }, engine) {
            const body = await readJsonBody(req, state.settings.maxBodyBytes);
            checkKnownFields(body, DETOKENIZE_FIELDS);
            const tokens = body["tokens"];
            if (!Array.isArray(tokens) || tokens.some((id) => typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= engine.config.vocabSize)) {
              throw badField("tokens", `an array of token ids in [0, ${engine.config.vocabSize})`, tokens);
            }
            writeJson(res, 200, { content: await detokenizeInSlices(engine, tokens as number[]) }, headers);
            return { status: 200 };
          },
        },
      ],
    ],
  };
}
