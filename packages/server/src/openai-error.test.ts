import { describe, expect, it } from "vitest";
import { HaloError } from "@halo/errors";
import { SERVER_ERROR_HTTP, ServerErrorCode } from "./errors.js";
import { toOpenAiError } from "./openai-error.js";

describe("toOpenAiError", () => {
  it("gives every server code its status, type and code", () => {
    for (const { code } of ServerErrorCode.describe()) {
      const answer = toOpenAiError(new HaloError(code, "x", { field: "f" }));
      const kind = SERVER_ERROR_HTTP[code as keyof typeof SERVER_ERROR_HTTP];
      expect(answer.status).toBe(kind.status);
      expect(answer.body.error).toMatchObject({ type: kind.type, code: kind.code, param: "f", halo_code: code });
    }
  });

  it("maps engine and sampler refusals to 400 with snake_case params, other failures to 500", () => {
    expect(toOpenAiError(new HaloError("SAMPLER_BAD_OPTION", "bad", { field: "topP" }))).toMatchObject({
      status: 400,
      body: { error: { param: "top_p", code: "invalid_value" } },
    });
    expect(toOpenAiError(new HaloError("SAMPLER_VOCAB_MISMATCH", "bad", { field: "logitBias[9]" })).body.error.param).toBe("logit_bias[9]");
    expect(toOpenAiError(new HaloError("ENGINE_CONTEXT_OVERFLOW", "long")).body.error).toMatchObject({ code: "context_length_exceeded", param: "messages" });
    expect(toOpenAiError(new HaloError("KERNELS_NATIVE_FAILED", "oom")).status).toBe(500);
    expect(toOpenAiError(new Error("boom"))).toMatchObject({ status: 500, body: { error: { type: "api_error", halo_code: "SERVER_INTERNAL" } } });
  });

  it("words engine and sampler messages in the request's field names", () => {
    const answer = toOpenAiError(
      new HaloError("ENGINE_BAD_OPTION", "maxTokens must be a whole number in [0, 16777216]", { field: "maxTokens", expected: "an integer", actual: 1e9 }),
    );
    expect(answer.body.error.param).toBe("max_tokens");
    expect(answer.body.error.message).toContain("max_tokens must be");
    expect(answer.body.error.message).not.toMatch(/maxTokens/);
    expect(toOpenAiError(new HaloError("SAMPLER_BAD_OPTION", "topP out of range; repeatLastN too")).body.error.message).toBe(
      "top_p out of range; repeat_last_n too",
    );
  });

  it("a model file changed under the loaded model is a model failure: 500 model_error with the backend's message", () => {
    const message = "step: the model file changed while the model was loaded (/m/model.halo)";
    const answer = toOpenAiError(new HaloError("KERNELS_CPU_MODEL_FILE_CHANGED", message, { field: "step" }));
    expect(answer).toMatchObject({ status: 500, body: { error: { type: "api_error", code: "model_error", halo_code: "SERVER_MODEL_FAILED", param: null } } });
    expect(answer.body.error.message).toContain(message);
  });

  it("no candidates to sample (every logit NaN or -Infinity) is the model's fault: 500 model_error", () => {
    const answer = toOpenAiError(new HaloError("SAMPLER_NO_CANDIDATES", "no token can be sampled", { field: "logits" }));
    expect(answer).toMatchObject({ status: 500, body: { error: { type: "api_error", code: "model_error", halo_code: "SERVER_MODEL_FAILED", param: null } } });
  });
});
