// Building a loaded model's speculative decoding: the drafter from its files, then the step-cost calibration.
import { basename } from "node:path";
import { HaloError, isHaloError } from "@halo/errors";
import { readMedusa, type FloatTensor, type HaloModel } from "@halo/h1b-format";
import type { BackendCapabilities, LoadedModel } from "@halo/kernels";
import {
  createDraftModelDrafter,
  createMedusaDrafter,
  createNgramDrafter,
  DEFAULT_MAX_DRAFT,
  NGRAM_DEFAULT_MAX_DRAFT,
  SpeculativeErrorCode,
  type Drafter,
  type SpeculativeOptions,
} from "@halo/speculative";
import type { Engine } from "./engine.js";
import { Speculation } from "./speculation.js";

/** What {@link buildSpeculation} needs of the load in progress. @internal */
export interface SpeculationLoad {
  readonly model: HaloModel;
  readonly loaded: LoadedModel;
  readonly caps: Pick<BackendCapabilities, "outputs" | "hiddenRows">;
  /** The running backend's factory name (the draft model runs there unless `draftBackend` says otherwise), or null for a Backend object. */
  readonly backendName: string | null;
  readonly contextLength: number;
  readonly maxSequences: number;
  readonly verify: boolean;
  readonly signal?: AbortSignal;
  /** loadModel itself, for the draft model. */
  readonly loadDraft: (path: string, backend: string) => Promise<Engine>;
}

/**
 * Creates the drafter `options` names, checks it fits the model, and calibrates the cost model.
 * @internal
 */
export async function buildSpeculation(options: SpeculativeOptions, load: SpeculationLoad): Promise<Speculation> {
  const config = load.model.config;
  let drafter: Drafter;
  let draftEngine: Engine | null = null;
  switch (options.drafter) {
    case "ngram":
      drafter = createNgramDrafter(options.ngram ?? {});
      break;
    case "medusa":
      drafter = medusaDrafter(options.medusa!, load);
      break;
    case "draft-model": {
      draftEngine = await load.loadDraft(options.draftModel!, options.draftBackend ?? load.backendName ?? "auto");
      try {
        drafter = createDraftModelDrafter({
          model: draftEngine.loadedModel,
          vocabSize: config.vocabSize,
          source: `${basename(options.draftModel!)} (${draftEngine.backend})`,
          ownsModel: false,
        });
      } catch (error) {
        draftEngine.dispose();
        throw error;
      }
      break;
    }
  }
  const owned = draftEngine;
  const speculation = new Speculation(
    drafter,
    Math.min(options.maxDraft ?? (drafter.kind === "ngram" ? NGRAM_DEFAULT_MAX_DRAFT : DEFAULT_MAX_DRAFT), drafter.maxDraftTokens),
    options.policy ?? "auto",
    // The draft model's engine goes with the drafter.
    owned === null ? undefined : () => owned.dispose(),
  );
  try {
    await speculation.calibrate(load.loaded, load.caps.outputs.includes("argmax") ? "argmax" : "logits");
  } catch (error) {
    speculation.dispose();
    throw error;
  }
  return speculation;
}

function medusaDrafter(path: string, load: SpeculationLoad): Drafter {
  const config = load.model.config;
  if (!load.caps.hiddenRows) {
    throw new HaloError(SpeculativeErrorCode.SPECULATIVE_DRAFTER_MISMATCH, "Medusa heads need the model's hidden states, which this backend does not return", {
      field: "speculative.drafter",
      expected: "a backend whose capabilities().hiddenRows is true (reference, cpu)",
      actual: "capabilities().hiddenRows is false",
      hint: "Load the model on the cpu or reference backend, or use the ngram or draft-model drafter",
    });
  }
  let medusa: ReturnType<typeof readMedusa>;
  try {
    medusa = readMedusa(path, { hiddenDim: config.hiddenSize });
  } catch (cause) {
    if (!isHaloError(cause) || cause.code !== "H1B_BAD_DIMENSION") throw cause;
    throw new HaloError(SpeculativeErrorCode.SPECULATIVE_DRAFTER_MISMATCH, "the Medusa heads were trained for another hidden size", {
      path,
      field: "speculative.medusa",
      expected: `heads of hidden size ${config.hiddenSize} (the model's)`,
      actual: cause.actual ?? cause.message,
      hint: "Use the .h1b-medusa file trained for this model",
      cause,
    });
  }
  try {
    const head = load.model.lmHead ?? load.model.tokenEmbedding;
    return createMedusaDrafter({
      hiddenSize: config.hiddenSize,
      vocabSize: config.vocabSize,
      heads: medusa.heads.map((h) => ({ wIn: h.wIn.toFloat32(), wOut: h.wOut.toFloat32() })),
      outputNorm: load.model.outputNorm.toFloat32(),
      normEps: config.rmsNormEps,
      lmHead: halfBitsOrFloat(head),
      source: basename(path),
    });
  } finally {
    medusa.close();
  }
}

/** The LM head as half bits when stored as f16 (half the memory of float32), else decoded to float32. */
function halfBitsOrFloat(tensor: FloatTensor): Float32Array | Uint16Array {
  if (tensor.dtype !== "f16") return tensor.toFloat32();
  const bytes = tensor.bytes();
  const out = new Uint16Array(bytes.byteLength / 2);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}
