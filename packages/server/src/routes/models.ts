// The models routes: GET /v1/models and GET /v1/models/{id} (the one served model, its card), and the `model` field check.
import type { Engine } from "@halo/engine";
import { HaloError } from "@halo/errors";
import { ServerErrorCode } from "../errors.js";
import { writeJson } from "../http-answer.js";
import { clipText } from "../request-fields.js";
import { decodePathSegment } from "../request-target.js";
import { templateInfo, type ServerState } from "../server-state.js";
import type { RouteGroup } from "./route.js";

/**
 * Refuses (`SERVER_UNKNOWN_MODEL`, 404) a `model` other than the one this server serves; no `model` is fine.
 * @internal
 */
export function checkModel(state: ServerState, requested: string | undefined): void {
  const id = state.modelId();
  if (requested === undefined || requested === id) return;
  throw new HaloError(ServerErrorCode.SERVER_UNKNOWN_MODEL, `the model '${clipText(requested, 64)}' does not exist on this server`, {
    field: "model",
    expected: `"${id}" (see GET /v1/models)`,
    actual: requested.length > 64 ? `a ${requested.length}-character name` : requested,
  });
}

function modelCard(state: ServerState, engine: Engine): Record<string, unknown> {
  const label = state.settings.modelLabel;
  return {
    id: state.modelId(),
    object: "model",
    created: Math.floor(state.startedAt / 1000),
    owned_by: "halo",
    meta: {
      backend: engine.backend,
      ...(engine.skippedBackends.length > 0 ? { skipped_backends: engine.skippedBackends } : {}),
      context_length: engine.contextLength,
      vocab_size: engine.config.vocabSize,
      chat_template: templateInfo(engine),
      parallel: state.parallel,
      ...(label !== undefined ? { label } : {}),
    },
  };
}

/**
 * `GET /v1/models` (a list of the one model) and `GET /v1/models/{id}` (its card, or 404 for another id).
 * @internal
 */
export function modelRoutes(state: ServerState): RouteGroup {
  return {
    exact: [
      [
        "/v1/models",
        {
          name: "models",
          method: "GET",
          public: false,
          needsEngine: true,
          async handle({ res, headers }, engine) {
            writeJson(res, 200, { object: "list", data: [modelCard(state, engine)] }, headers);
            return { status: 200 };
          },
        },
      ],
    ],
    prefixed: [
      [
        "/v1/models/",
        {
          name: "model",
          label: "/v1/models/{id}",
          method: "GET",
          public: false,
          needsEngine: true,
          async handle({ res, path, headers }, engine) {
            checkModel(state, decodePathSegment(path.slice("/v1/models/".length), "model"));
            writeJson(res, 200, modelCard(state, engine), headers);
            return { status: 200 };
          },
        },
      ],
    ],
  };
}
